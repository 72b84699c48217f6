"""Grid plans in the database: versions (draft → published → archived), edits with optimistic locking,
validation, publishing, export and the diff between versions.

Every edit names the ``revision`` of the draft it was made on. The revision is bumped with a conditional
``UPDATE … WHERE revision = :seen``, so of two planners editing the same draft the second is refused with a
:class:`~api.errors.ConflictError` (HTTP 409) instead of silently overwriting the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from api.audit import record
from api.errors import ConflictError, InputError, NotFoundError
from api.geometry import spatial
from api.models import BuildingUnit, Grid, MicroGrid, Plan, PlanVersion, utcnow
from api.security import Principal
from gis.model import GridPlan, GridRules
from gis.validate import Violation, validate_plan

WGS84 = "EPSG:4326"
_BATCH = 2000
_GRID_FIELDS = ("grid_code", "community_code", "households", "buildings", "status", "note")
_MICRO_FIELDS = ("microgrid_code", "grid_code", "households", "status", "note")
_UNIT_FIELDS = ("building_id", "unit", "floor_from", "floor_to", "households", "grid_code", "microgrid_code")


@dataclass(frozen=True)
class Move:
    """Move one building unit (by its id) to a micro-grid (and so to that micro-grid's grid)."""

    unit_id: int
    microgrid_code: str


@dataclass(frozen=True)
class Moved:
    """A unit that moved: moving it to ``from_microgrid`` undoes the move."""

    unit_id: int
    building_id: str
    households: int
    from_grid: str
    from_microgrid: str
    to_grid: str
    to_microgrid: str


def store_version(
    session: Session, who: Principal, plan: Plan, grid_plan: GridPlan, *, reason: str, parent_id: int | None
) -> PlanVersion:
    """Add ``grid_plan`` as the plan's next draft version."""
    number = (
        session.scalar(select(func.max(PlanVersion.number)).where(PlanVersion.plan_id == plan.id)) or 0
    ) + 1
    version = PlanVersion(
        plan_id=plan.id,
        number=number,
        status="draft",
        revision=1,
        parent_id=parent_id,
        rules=asdict(grid_plan.rules),
        reason=reason,
        created_by=who.username,
    )
    session.add(version)
    session.flush()
    insert_layers(
        session,
        version.id,
        grid_plan.grids.to_crs(WGS84),
        grid_plan.microgrids.to_crs(WGS84),
        grid_plan.building_units.to_crs(WGS84),
    )
    record(
        session,
        who,
        action="create_version",
        entity="plan_version",
        entity_id=version.id,
        after={"plan_id": plan.id, "number": number, "reason": reason, "grids": len(grid_plan.grids)},
    )
    return version


def insert_layers(
    session: Session,
    version_id: int,
    grids: gpd.GeoDataFrame,
    micros: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
) -> None:
    grid_rows = [{**_values(r, _GRID_FIELDS), **spatial(g)} for r, g in _records(grids, _GRID_FIELDS)]
    micro_rows = [{**_values(r, _MICRO_FIELDS), **spatial(g)} for r, g in _records(micros, _MICRO_FIELDS)]
    unit_rows = [{**_values(r, _UNIT_FIELDS), "geom": g} for r, g in _records(units, _UNIT_FIELDS)]
    for model, rows in ((Grid, grid_rows), (MicroGrid, micro_rows), (BuildingUnit, unit_rows)):
        for start in range(0, len(rows), _BATCH):
            session.execute(
                insert(model), [{**row, "version_id": version_id} for row in rows[start : start + _BATCH]]
            )


def _records(frame: gpd.GeoDataFrame, fields: tuple[str, ...]) -> list[tuple[dict[str, Any], Any]]:
    return list(zip(frame[list(fields)].to_dict("records"), frame.geometry, strict=True))


def _values(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = record[name]
        if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
            out[name] = None if name in ("floor_from", "floor_to") else ""
        elif name in ("households", "buildings", "unit", "floor_from", "floor_to"):
            out[name] = int(value)
        else:
            out[name] = str(value)
    return out


def get_plan(session: Session, plan_id: int) -> Plan:
    """The plan, or :class:`NotFoundError`."""
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise NotFoundError(f"plan {plan_id} does not exist", where={"plan_id": plan_id})
    return plan


def get_version(session: Session, plan_id: int, number: int) -> PlanVersion:
    """Version ``number`` of a plan, or :class:`NotFoundError`."""
    version = session.scalars(
        select(PlanVersion).where(PlanVersion.plan_id == plan_id, PlanVersion.number == number)
    ).first()
    if version is None:
        raise NotFoundError(
            f"plan {plan_id} has no version {number}", where={"plan_id": plan_id, "version": number}
        )
    return version


def claim_revision(session: Session, version: PlanVersion, seen: int) -> int:
    """Bump the draft's revision if it is still ``seen``; otherwise raise :class:`ConflictError` (409)."""
    if version.status != "draft":
        raise ConflictError(
            f"version {version.number} is {version.status}; only drafts can be edited — start a new draft",
            where={"version": version.number, "status": version.status},
        )
    result = session.execute(
        update(PlanVersion)
        .where(PlanVersion.id == version.id, PlanVersion.revision == seen)
        .values(revision=PlanVersion.revision + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        current = session.scalar(select(PlanVersion.revision).where(PlanVersion.id == version.id))
        raise ConflictError(
            f"version {version.number} was changed by someone else (revision {current}, you edited {seen}); "
            "reload and apply your edit again / 方案已被他人修改，请刷新后重试",
            where={"revision": seen, "current_revision": current},
        )
    session.refresh(version)
    return version.revision


def grids_by_code(session: Session, version_id: int, codes: set[str]) -> dict[str, Grid]:
    """The version's grids with the given codes."""
    rows = session.scalars(select(Grid).where(Grid.version_id == version_id, Grid.grid_code.in_(codes)))
    return {g.grid_code: g for g in rows}


def move_units(
    session: Session, who: Principal, version: PlanVersion, *, seen: int, moves: list[Move]
) -> tuple[int, list[Moved]]:
    """Move building units between micro-grids (and grids) of a draft; returns the new revision and the moves.

    Household counts follow the units. When a whole building leaves a micro-grid, its share of the micro-grid
    area (the part nearer to it than to the micro-grid's other buildings) moves with it, so grids and
    micro-grids still tile the community; the result can be checked with :func:`validate`. The units, their
    micro-grids and grids are read in one query each, so a stroke of many units costs little more than one;
    the whole request is one audit entry.
    """
    revision = claim_revision(session, version, seen)
    units = _units_by_id(session, version, [m.unit_id for m in moves])
    codes = {u.microgrid_code for u in units.values()} | {m.microgrid_code for m in moves}
    micros = _micros_by_code(session, version.id, codes)
    grids = grids_by_code(session, version.id, {m.grid_code for m in micros.values()})
    for move in moves:
        _check_move(who, move, units[move.unit_id], micros, grids)
    members = _members(session, version.id, micros)
    moved = [_apply_move(units[m.unit_id], micros, grids, members, m) for m in moves]
    moved = [m for m in moved if m.from_microgrid != m.to_microgrid]
    touched = {m.from_grid for m in moved} | {m.to_grid for m in moved}
    session.flush()
    _recount_buildings(session, version.id, [grids[code] for code in sorted(touched)])
    record(
        session,
        who,
        action="move_units",
        entity="plan_version",
        entity_id=version.id,
        before={"units": [{"id": m.unit_id, "microgrid_code": m.from_microgrid} for m in moved]},
        after={"units": [{"id": m.unit_id, "microgrid_code": m.to_microgrid} for m in moved]},
    )
    return revision, moved


def _units_by_id(session: Session, version: PlanVersion, ids: list[int]) -> dict[int, BuildingUnit]:
    rows = session.scalars(
        select(BuildingUnit).where(BuildingUnit.version_id == version.id, BuildingUnit.id.in_(set(ids)))
    )
    units = {u.id: u for u in rows}
    for unit_id in ids:
        if unit_id not in units:
            raise NotFoundError(
                f"building unit {unit_id} is not in version {version.number}", where={"unit_id": unit_id}
            )
    return units


def _micros_by_code(session: Session, version_id: int, codes: set[str]) -> dict[str, MicroGrid]:
    rows = session.scalars(
        select(MicroGrid).where(MicroGrid.version_id == version_id, MicroGrid.microgrid_code.in_(codes))
    )
    return {m.microgrid_code: m for m in rows}


def _check_move(
    who: Principal, move: Move, unit: BuildingUnit, micros: dict[str, MicroGrid], grids: dict[str, Grid]
) -> None:
    target = micros.get(move.microgrid_code)
    if target is None:
        raise InputError(
            f"micro-grid {move.microgrid_code} is not in this version",
            where={"field": "microgrid_code", "unit_id": move.unit_id},
        )
    source, goal = grids[micros[unit.microgrid_code].grid_code], grids[target.grid_code]
    if source.community_code != goal.community_code:
        raise InputError(
            f"micro-grid {target.microgrid_code} is in another community; a grid never crosses a community "
            "boundary / 不能跨社区调整",
            where={"field": "microgrid_code", "unit_id": move.unit_id},
        )
    for grid in (source, goal):
        who.require_territory(grid.community_code, "grid")
        if grid.locked:
            raise ConflictError(
                f"grid {grid.grid_code} is locked / 网格已锁定", where={"grid_code": grid.grid_code}
            )


def _members(
    session: Session, version_id: int, micros: dict[str, MicroGrid]
) -> dict[str, list[BuildingUnit]]:
    """The units of each micro-grid, read in one query through the (version, grid) index."""
    rows = session.scalars(
        select(BuildingUnit).where(
            BuildingUnit.version_id == version_id,
            BuildingUnit.grid_code.in_({m.grid_code for m in micros.values()}),
            BuildingUnit.microgrid_code.in_(set(micros)),
        )
    )
    members: dict[str, list[BuildingUnit]] = {code: [] for code in micros}
    for unit in rows:
        members[unit.microgrid_code].append(unit)
    return members


def _apply_move(
    unit: BuildingUnit,
    micros: dict[str, MicroGrid],
    grids: dict[str, Grid],
    members: dict[str, list[BuildingUnit]],
    move: Move,
) -> Moved:
    source, target = micros[unit.microgrid_code], micros[move.microgrid_code]
    moved = Moved(
        unit.id,
        unit.building_id,
        unit.households,
        unit.grid_code,
        unit.microgrid_code,
        target.grid_code,
        target.microgrid_code,
    )
    if source is not target:
        members[source.microgrid_code].remove(unit)
        _transfer_area(unit, members[source.microgrid_code], source, target, grids)
        _transfer_households(unit.households, source, target, grids)
        unit.grid_code, unit.microgrid_code = target.grid_code, target.microgrid_code
        members[target.microgrid_code].append(unit)
    return moved


def _recount_buildings(session: Session, version_id: int, grids: list[Grid]) -> None:
    for grid in grids:
        grid.buildings = int(
            session.scalar(
                select(func.count(func.distinct(BuildingUnit.building_id))).where(
                    BuildingUnit.version_id == version_id, BuildingUnit.grid_code == grid.grid_code
                )
            )
            or 0
        )


def _transfer_households(
    households: int, source: MicroGrid, target: MicroGrid, grids: dict[str, Grid]
) -> None:
    source.households -= households
    target.households += households
    for part in (source, target, grids[source.grid_code], grids[target.grid_code]):
        part.status = "edited"
        part.note = "edited by hand / 人工调整"
    grids[source.grid_code].households -= households
    grids[target.grid_code].households += households


def _transfer_area(
    unit: BuildingUnit,
    others: list[BuildingUnit],
    source: MicroGrid,
    target: MicroGrid,
    grids: dict[str, Grid],
) -> None:
    if unit.geom is None or any(o.building_id == unit.building_id for o in others) or source is target:
        return  # part of a building moves: the area stays where the rest of the building is
    cell = _cell_of(unit.geom, [o.geom for o in others if o.geom is not None], source.geom)
    if cell.is_empty:
        return
    set_geom(source, shapely.difference(source.geom, cell))
    set_geom(target, shapely.union(target.geom, cell))
    if source.grid_code != target.grid_code:
        set_geom(grids[source.grid_code], shapely.difference(grids[source.grid_code].geom, cell))
        set_geom(grids[target.grid_code], shapely.union(grids[target.grid_code].geom, cell))


def _cell_of(
    footprint: shapely.Geometry, others: list[shapely.Geometry], area: shapely.Geometry
) -> shapely.Geometry:
    """The part of ``area`` nearer to ``footprint`` than to any of ``others`` (a Voronoi cell of points)."""
    if not others:
        return area
    points = shapely.MultiPoint(
        [shapely.point_on_surface(footprint), *(shapely.point_on_surface(o) for o in others)]
    )
    cells = shapely.voronoi_polygons(points, extend_to=area)
    mine = [c for c in shapely.get_parts(cells) if c.contains(shapely.point_on_surface(footprint))]
    return shapely.intersection(mine[0], area) if mine else shapely.Polygon()


def set_geom(part: Grid | MicroGrid, geom: shapely.Geometry) -> None:
    """Give a grid or micro-grid a new (valid, polygonal) area; an emptied one keeps its old bounding box."""
    polygonal = _polygonal(shapely.make_valid(geom))
    if polygonal.is_empty:
        part.geom = polygonal
        return
    for name, value in spatial(polygonal).items():
        setattr(part, name, value)


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of ``geom`` (lines and points left by noding dropped)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def set_lock(
    session: Session, who: Principal, version: PlanVersion, *, seen: int, grid_code: str, locked: bool
) -> int:
    """Lock or unlock a grid of a draft (a locked grid keeps its units); returns the new revision."""
    revision = claim_revision(session, version, seen)
    grid = grids_by_code(session, version.id, {grid_code}).get(grid_code)
    if grid is None:
        raise NotFoundError(
            f"grid {grid_code} is not in version {version.number}", where={"grid_code": grid_code}
        )
    who.require_territory(grid.community_code, "grid")
    record(
        session,
        who,
        action="lock" if locked else "unlock",
        entity="grid",
        entity_id=grid.id,
        before={"locked": grid.locked},
        after={"locked": locked},
    )
    grid.locked = locked
    return revision


def load_plan(session: Session, version: PlanVersion) -> GridPlan:
    """The version as a :class:`gis.model.GridPlan` in WGS-84 (for validation and export)."""
    grids = _frame(session, Grid, version.id, _GRID_FIELDS)
    micros = _frame(session, MicroGrid, version.id, _MICRO_FIELDS)
    units = _frame(session, BuildingUnit, version.id, _UNIT_FIELDS)
    for column in ("floor_from", "floor_to"):
        units[column] = units[column].astype("Int64")
    return GridPlan(grids, micros, units, report=pd.DataFrame(), rules=GridRules(**version.rules))


def _frame(session: Session, model: type[Any], version_id: int, fields: tuple[str, ...]) -> gpd.GeoDataFrame:
    stmt = select(*(getattr(model, f) for f in fields), model.geom).where(model.version_id == version_id)
    rows = session.execute(stmt.order_by(model.id)).all()
    return gpd.GeoDataFrame(
        {f: [r[i] for r in rows] for i, f in enumerate(fields)}, geometry=[r[-1] for r in rows], crs=WGS84
    )


def validate(session: Session, version: PlanVersion, district: Any) -> list[Violation]:
    """Every rule the version breaks (empty when valid)."""
    return validate_plan(load_plan(session, version), district)


def publish(
    session: Session, who: Principal, version: PlanVersion, *, seen: int, violations: list[Violation]
) -> None:
    """Publish a valid draft; the previously published version of the plan is archived."""
    if violations:
        first = violations[0]
        raise InputError(
            f"version {version.number} breaks {len(violations)} rule(s), e.g. {first.layer} {first.code}: "
            f"{first.message}; fix them before publishing / 方案未通过校验",
            where={"layer": first.layer, "code": first.code, "rule": first.rule},
        )
    claim_revision(session, version, seen)
    session.execute(
        update(PlanVersion)
        .where(PlanVersion.plan_id == version.plan_id, PlanVersion.status == "published")
        .values(status="archived")
    )
    version.status, version.published_by, version.published_at = "published", who.username, utcnow()
    record(
        session,
        who,
        action="publish",
        entity="plan_version",
        entity_id=version.id,
        before={"status": "draft"},
        after={"status": "published", "number": version.number},
    )


def new_draft(session: Session, who: Principal, plan: Plan, base: PlanVersion, *, reason: str) -> PlanVersion:
    """A new draft copied from ``base`` (to edit a published plan)."""
    grid_plan = load_plan(session, base)
    version = store_version(session, who, plan, grid_plan, reason=reason, parent_id=base.id)
    locked = [
        g.grid_code for g in session.scalars(select(Grid).where(Grid.version_id == base.id, Grid.locked))
    ]
    if locked:
        session.execute(
            update(Grid).where(Grid.version_id == version.id, Grid.grid_code.in_(locked)).values(locked=True)
        )
    return version


def diff(session: Session, old: PlanVersion, new: PlanVersion) -> dict[str, Any]:
    """What changed from ``old`` to ``new``: grids added, removed or resized, units that moved, and for a map
    the building ids and grid codes whose assignment changed (``buildings_changed``, ``grids_changed``)."""
    old_grids = _grid_households(session, old.id)
    new_grids = _grid_households(session, new.id)
    before, after = _assignments(session, old.id), _assignments(session, new.id)
    resized = [
        {"grid_code": code, "households_before": old_grids[code], "households_after": new_grids[code]}
        for code in sorted(set(old_grids) & set(new_grids))
        if old_grids[code] != new_grids[code]
    ]
    changed_keys = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    touched = {g for k in changed_keys for g in (before.get(k, ("",))[0], after.get(k, ("",))[0]) if g}
    return {
        "from_version": old.number,
        "to_version": new.number,
        "grids_added": sorted(set(new_grids) - set(old_grids)),
        "grids_removed": sorted(set(old_grids) - set(new_grids)),
        "grids_resized": resized,
        "units_moved": _moved_units(before, after),
        "buildings_changed": sorted({str(k[0]) for k in changed_keys}),
        "grids_changed": sorted(touched | set(old_grids).symmetric_difference(new_grids)),
    }


def _grid_households(session: Session, version_id: int) -> dict[str, int]:
    rows = session.execute(select(Grid.grid_code, Grid.households).where(Grid.version_id == version_id))
    return {code: households for code, households in rows}


def _assignments(session: Session, version_id: int) -> dict[tuple[Any, ...], tuple[str, str]]:
    stmt = select(
        BuildingUnit.building_id,
        BuildingUnit.unit,
        BuildingUnit.floor_from,
        BuildingUnit.floor_to,
        BuildingUnit.grid_code,
        BuildingUnit.microgrid_code,
    ).where(BuildingUnit.version_id == version_id)
    return {tuple(r[:4]): (r[4], r[5]) for r in session.execute(stmt)}


def _moved_units(
    before: dict[tuple[Any, ...], tuple[str, str]], after: dict[tuple[Any, ...], tuple[str, str]]
) -> list[dict[str, Any]]:
    return [
        {
            "building_id": key[0],
            "unit": key[1],
            "floor_from": key[2],
            "floor_to": key[3],
            "from_grid": before[key][0],
            "to_grid": after[key][0],
            "from_microgrid": before[key][1],
            "to_microgrid": after[key][1],
        }
        for key in sorted(set(before) & set(after), key=str)
        if before[key] != after[key]
    ]
