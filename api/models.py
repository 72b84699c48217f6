"""Database tables (SQLAlchemy 2, typed): districts and their layers, grid plans and versions, staff, zones,
missions, flights, detections, flags, cases, users, jobs and the audit log.

Coordinates are WGS-84. Spatial tables carry a :class:`~api.geometry.Geometry` column plus a bounding box
(see :mod:`api.geometry`). Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import shapely
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from api.geometry import Geometry, UtcDateTime

#: Tables with a geometry, a bounding box and (on SQLite) an R*Tree index.
SPATIAL_TABLES = (
    "communities",
    "compounds",
    "buildings",
    "roads",
    "zones",
    "grids",
    "microgrids",
    "flags",
    "cases",
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same on both backends."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: UtcDateTime(),
    }


class Spatial:
    """Mixin: a WGS-84 geometry and its bounding box."""

    geom: Mapped[shapely.Geometry] = mapped_column(Geometry())
    minx: Mapped[float] = mapped_column(Float)
    miny: Mapped[float] = mapped_column(Float)
    maxx: Mapped[float] = mapped_column(Float)
    maxy: Mapped[float] = mapped_column(Float)


# --- users, staff, audit, jobs -------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    territory: Mapped[str] = mapped_column(String(32), default="")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Staff(Base):
    """A grid worker, grid head or handling unit that cases are dispatched to."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(32))
    territory: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One change, append-only; ``hash`` = SHA-256 of the previous hash and this entry's canonical JSON."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any] | None] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Job(Base):
    """A background job (gridding) with its progress from 0 to 1."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


# --- districts ---------------------------------------------------------------------------------------------


class District(Base):
    __tablename__ = "districts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(12), index=True)
    source: Mapped[str] = mapped_column(String(255))
    households: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class Community(Spatial, Base):
    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("district_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(String(128))


class Compound(Spatial, Base):
    __tablename__ = "compounds"
    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"), index=True)
    compound_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(128))


class Building(Spatial, Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("district_id", "building_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"), index=True)
    building_id: Mapped[str] = mapped_column(String(64))
    households: Mapped[int] = mapped_column(Integer)
    households_estimated: Mapped[bool] = mapped_column(Boolean)
    floors: Mapped[int | None] = mapped_column(Integer)
    units: Mapped[int | None] = mapped_column(Integer)
    compound_id: Mapped[str | None] = mapped_column(String(64))
    community_code: Mapped[str | None] = mapped_column(String(12))


class Road(Spatial, Base):
    __tablename__ = "roads"
    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str | None] = mapped_column(String(32))


class Zone(Spatial, Base):
    """Parking, fire lane, green, public space or no-fly area."""

    __tablename__ = "zones"
    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    zone_id: Mapped[str | None] = mapped_column(String(64))
    compound_id: Mapped[str | None] = mapped_column(String(64))


# --- plans -------------------------------------------------------------------------------------------------


class Plan(Base):
    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanVersion(Base):
    """One version of a plan: draft, published or archived; ``revision`` counts edits (optimistic locking)."""

    __tablename__ = "plan_versions"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    revision: Mapped[int] = mapped_column(Integer, default=1)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    rules: Mapped[dict[str, Any]] = mapped_column()
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(64))
    published_at: Mapped[datetime | None] = mapped_column()


class Grid(Spatial, Base):
    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("version_id", "grid_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id", ondelete="CASCADE"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    community_code: Mapped[str] = mapped_column(String(12))
    households: Mapped[int] = mapped_column(Integer)
    buildings: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    locked: Mapped[bool] = mapped_column(Boolean, default=False)


class MicroGrid(Spatial, Base):
    __tablename__ = "microgrids"
    __table_args__ = (UniqueConstraint("version_id", "microgrid_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id", ondelete="CASCADE"), index=True)
    microgrid_code: Mapped[str] = mapped_column(String(17))
    grid_code: Mapped[str] = mapped_column(String(15))
    households: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")


class BuildingUnit(Base):
    """Assignment of a building (or a stairwell / floor range of it) to a grid and micro-grid."""

    __tablename__ = "building_units"
    __table_args__ = (
        Index("ix_building_units_version_grid", "version_id", "grid_code"),
        Index("ix_building_units_version_building", "version_id", "building_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id", ondelete="CASCADE"), index=True)
    building_id: Mapped[str] = mapped_column(String(64))
    unit: Mapped[int] = mapped_column(Integer)
    floor_from: Mapped[int | None] = mapped_column(Integer)
    floor_to: Mapped[int | None] = mapped_column(Integer)
    households: Mapped[int] = mapped_column(Integer)
    grid_code: Mapped[str] = mapped_column(String(15))
    microgrid_code: Mapped[str] = mapped_column(String(17))
    geom: Mapped[shapely.Geometry | None] = mapped_column(Geometry())


# --- missions, flights, detections -------------------------------------------------------------------------


class Mission(Base):
    __tablename__ = "missions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    grid_codes: Mapped[list[Any]] = mapped_column()
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sortie(Base):
    __tablename__ = "sorties"
    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int] = mapped_column(ForeignKey("missions.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    waypoints: Mapped[list[Any]] = mapped_column()


class Flight(Base):
    __tablename__ = "flights"
    id: Mapped[int] = mapped_column(primary_key=True)
    mission_id: Mapped[int | None] = mapped_column(ForeignKey("missions.id"))
    source_kind: Mapped[str] = mapped_column(String(32))
    source_uri: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Frame(Base):
    """A frame of a flight: the image file on disk and where it was taken."""

    __tablename__ = "frames"
    id: Mapped[int] = mapped_column(primary_key=True)
    flight_id: Mapped[int] = mapped_column(ForeignKey("flights.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    taken_at: Mapped[datetime | None] = mapped_column()
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    altitude_m: Mapped[float | None] = mapped_column(Float)


class Detection(Base):
    __tablename__ = "detections"
    id: Mapped[int] = mapped_column(primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    box_xyxy: Mapped[list[Any]] = mapped_column()
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)


class Flag(Spatial, Base):
    """A detector's (or a person's) finding awaiting review; confirmed flags become cases."""

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    detection_id: Mapped[int | None] = mapped_column(ForeignKey("detections.id"))
    flight_id: Mapped[int | None] = mapped_column(ForeignKey("flights.id"))
    category: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    territory: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # what the vision pipeline found (see vision.flags.Flag); paths are relative to the data folder
    microgrid_code: Mapped[str | None] = mapped_column(String(17))
    class_name: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(64))
    severity: Mapped[int | None] = mapped_column(Integer)
    sightings: Mapped[int | None] = mapped_column(Integer)
    first_seen: Mapped[datetime | None] = mapped_column()
    last_seen: Mapped[datetime | None] = mapped_column()
    evidence_path: Mapped[str | None] = mapped_column(Text)
    frame_path: Mapped[str | None] = mapped_column(Text)
    frame_box: Mapped[list[Any] | None] = mapped_column()
    error_m: Mapped[float | None] = mapped_column(Float)


# --- cases -------------------------------------------------------------------------------------------------


class Case(Spatial, Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(64), index=True)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    state: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str | None] = mapped_column(Text)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    territory: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(16))
    flag_id: Mapped[int | None] = mapped_column(ForeignKey("flags.id", use_alter=True))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    level: Mapped[str | None] = mapped_column(String(16))
    assignee_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    first_receiver_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    reported_by: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    due_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class CaseEvent(Base):
    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    level: Mapped[str | None] = mapped_column(String(16))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    photos: Mapped[list[Any]] = mapped_column(default=list)


class CaseClock(Base):
    """Time a case spends at one level (compound, community, street), with that level's deadline."""

    __tablename__ = "case_clocks"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column()
    due_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
