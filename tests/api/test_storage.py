"""Storage on both backends: migrations match the models, spatial index in step, geometry and times round-trip,
the audit chain shows tampering."""

from __future__ import annotations

from datetime import UTC, datetime

import shapely
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from api import audit
from api.db import Database, alembic_config, transaction, upgrade
from api.geometry import spatial
from api.models import AuditEntry, Base, Case, Community, District
from api.security import Principal
from api.spatial import in_bbox

WHO = Principal("tester", "admin", "")


def _district(session: object) -> District:
    row = District(name="d", code="320571", source="t", households=0, imported_by="t")
    session.add(row)  # type: ignore[attr-defined]
    session.flush()  # type: ignore[attr-defined]
    return row


def test_migration_matches_models(db: Database) -> None:
    with db.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    relevant = [d for d in diffs if not (isinstance(d, tuple) and d[0] in ("remove_table", "remove_index"))]
    assert relevant == []


def test_geometry_and_time_round_trip(db: Database) -> None:
    polygon = shapely.Polygon([(120.7, 31.3), (120.71, 31.3), (120.71, 31.31), (120.7, 31.3)])
    with transaction(db.write) as session:
        district = _district(session)
        session.add(Community(district_id=district.id, code="320571001001", name="社区", **spatial(polygon)))
    with db.read() as session:
        row = session.scalars(select(Community)).one()
        stored = session.scalars(select(District)).one()
    assert row.geom.equals_exact(polygon, 1e-12)
    assert (row.minx, row.miny, row.maxx, row.maxy) == (120.7, 31.3, 120.71, 31.31)
    assert stored.imported_at.tzinfo is not None
    assert abs((datetime.now(UTC) - stored.imported_at).total_seconds()) < 60


def _case(lon: float, lat: float) -> Case:
    return Case(
        category="clutter",
        state="reported",
        lon=lon,
        lat=lat,
        territory="320571",
        source="person",
        reported_by="t",
        **spatial(shapely.Point(lon, lat)),
    )


def test_spatial_index_follows_inserts_updates_and_deletes(db: Database) -> None:
    with transaction(db.write) as session:
        near, far = _case(120.70, 31.30), _case(121.5, 31.9)
        session.add_all([near, far])
    box = (120.69, 31.29, 120.71, 31.31)
    with db.read() as session:
        assert [c.id for c in session.scalars(in_bbox(session, Case, box))] == [near.id]
    with transaction(db.write) as session:
        moved = session.get(Case, far.id)
        assert moved is not None
        for name, value in spatial(shapely.Point(120.705, 31.305)).items():
            setattr(moved, name, value)
        gone = session.get(Case, near.id)
        session.delete(gone)
    with db.read() as session:
        assert [c.id for c in session.scalars(in_bbox(session, Case, box))] == [far.id]
    if db.backend == "sqlite":
        with db.read() as session:
            assert session.execute(text("SELECT id FROM cases_rtree")).scalars().all() == [far.id]


def test_audit_chain_verifies_and_shows_tampering(db: Database) -> None:
    with transaction(db.write) as session:
        for n in range(3):
            audit.record(
                session, WHO, action="edit", entity="thing", entity_id=n, before={"n": n}, after={"n": n + 1}
            )
    with db.read() as session:
        assert audit.verify(session) is None
        second = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()[1].id
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET username = 'mallory' WHERE id = :id"), {"id": second})
    with db.read() as session:
        broken = audit.verify(session)
    assert broken is not None and broken.entry_id == second and "changed" in broken.reason


def test_audit_chain_shows_a_deleted_entry(db: Database) -> None:
    with transaction(db.write) as session:
        entries = [audit.record(session, WHO, action="edit", entity="thing", entity_id=n) for n in range(3)]
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": entries[1].id})
    with db.read() as session:
        broken = audit.verify(session)
    assert broken is not None and broken.entry_id == entries[2].id


def test_failed_transaction_leaves_nothing(db: Database) -> None:
    try:
        with transaction(db.write) as session:
            _district(session)
            raise RuntimeError("crash mid-write")
    except RuntimeError:
        pass
    with db.read() as session:
        assert session.scalars(select(District)).all() == []


def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    command.downgrade(alembic_config(db.write_engine), "base")
    with db.engine.connect() as connection:
        left = [
            t
            for t in inspect(connection).get_table_names()
            if t != "alembic_version" and t != "spatial_ref_sys"
        ]
    assert left == []
    upgrade(db)
    with db.engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}
