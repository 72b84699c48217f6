"""Request and response bodies of the API (pydantic), one family per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.security import ROLES
from api.workflow import LEVELS, PRIORITIES

Role = Literal["admin", "planner", "operator", "inspector", "grid_worker", "handling_unit"]
Level = Literal["compound", "community", "street"]
Priority = Literal["normal", "urgent"]
StaffKind = Literal["grid_worker", "grid_head", "handling_unit"]
ExportFormat = Literal["geojson", "shp", "csv", "html", "pdf", "png"]
#: Largest integer accepted anywhere (ids, revisions, counts): every backend stores it.
MAX_INT = 2**31 - 1
Int = Annotated[int, Field(ge=0, le=MAX_INT)]
Lon = Field(ge=-180, le=180, description="WGS-84 longitude in degrees")
Lat = Field(ge=-90, le=90, description="WGS-84 latitude in degrees")
assert set(ROLES) == set(Role.__args__) and set(LEVELS) == set(Level.__args__)  # type: ignore[attr-defined]
assert set(PRIORITIES) == set(Priority.__args__)  # type: ignore[attr-defined]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    """Every 4xx body: what was wrong and where."""

    error: str
    detail: str
    where: dict[str, Any] = {}


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[\w.\-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: Role
    territory: str = Field(default="", pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})?$")
    staff_id: Int | None = None


class UserPublic(Orm):
    id: int
    username: str
    role: str
    territory: str
    staff_id: int | None
    active: bool


class StaffCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    kind: StaffKind
    phone: str | None = Field(default=None, max_length=32)
    territory: str = Field(pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$")


class StaffPublic(Orm):
    id: int
    name: str
    kind: str
    phone: str | None
    territory: str


class DistrictPublic(Orm):
    id: int
    name: str
    code: str
    source: str
    households: int
    imported_by: str
    imported_at: datetime


class GridRequest(BaseModel):
    """Grid a district (a new plan) or re-grid it as the next draft of an existing plan."""

    name: str = Field(default="plan", min_length=1, max_length=128)
    plan_id: Int | None = None
    reason: str = Field(default="", max_length=2000)
    grid_min: int = Field(le=MAX_INT, default=300, gt=0)
    grid_max: int = Field(le=MAX_INT, default=500, gt=0)
    micro_min: int = Field(le=MAX_INT, default=50, gt=0)
    micro_max: int = Field(le=MAX_INT, default=80, gt=0)
    seed: int = Field(default=0, ge=0, le=MAX_INT)


class JobPublic(Orm):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    result: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


class VersionPublic(Orm):
    id: int
    number: int
    status: str
    revision: Int
    parent_id: int | None
    reason: str
    rules: dict[str, Any]
    created_by: str
    created_at: datetime
    published_by: str | None
    published_at: datetime | None


class PlanPublic(Orm):
    id: int
    district_id: int
    name: str
    created_by: str
    created_at: datetime
    versions: list[VersionPublic] = []


class GridPublic(Orm):
    grid_code: str
    community_code: str
    households: int
    buildings: int
    status: str
    note: str
    locked: bool
    geometry: dict[str, Any] | None = None


class MicroGridPublic(Orm):
    microgrid_code: str
    grid_code: str
    households: int
    status: str
    note: str
    geometry: dict[str, Any] | None = None


class UnitPublic(Orm):
    id: int
    building_id: str
    unit: int
    floor_from: int | None
    floor_to: int | None
    households: int
    grid_code: str
    microgrid_code: str


class GridDetail(GridPublic):
    microgrids: list[MicroGridPublic]
    units: list[UnitPublic]


class LockRequest(BaseModel):
    revision: Int
    locked: bool = True


class RevisionRequest(BaseModel):
    revision: Int


class DraftRequest(BaseModel):
    from_version: Int
    reason: str = Field(min_length=1, max_length=2000)


class RevisionPublic(BaseModel):
    revision: Int


class ViolationPublic(BaseModel):
    rule: str
    layer: str
    code: str | None
    message: str


class ValidationPublic(BaseModel):
    valid: bool
    violations: list[ViolationPublic]


#: A case category code of :mod:`api.categories` (GB/T 30428.2, e.g. ``0505``); checked against the table.
CategoryCode = Annotated[
    str,
    Field(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z_]+$", description="category code, e.g. 0505"),
]
#: A file path relative to the data folder (not absolute; one escaping the folder is refused on use).
DataPath = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^/\\:][^\\:]*$")]


class CaseCreate(BaseModel):
    category: CategoryCode
    lon: float = Lon
    lat: float = Lat
    priority: Priority = "normal"
    description: str = Field(default="", max_length=4000)
    address: str | None = Field(default=None, max_length=500)


class FlagCreate(BaseModel):
    """A detector's finding; paths are relative to the data folder, ``frame_box`` is xyxy px in the frame."""

    category: CategoryCode
    lon: float = Lon
    lat: float = Lat
    score: float | None = Field(default=None, ge=0, le=1)
    flight_id: Int | None = None
    class_name: str | None = Field(default=None, max_length=64)
    rule: str | None = Field(default=None, max_length=64)
    severity: int | None = Field(default=None, ge=1, le=3)
    sightings: int | None = Field(default=None, ge=1, le=MAX_INT)
    first_seen: AwareDatetime | None = None
    last_seen: AwareDatetime | None = None
    evidence_path: DataPath | None = None
    frame_path: DataPath | None = None
    frame_box: list[Annotated[float, Field(ge=0, le=100_000)]] | None = Field(
        default=None, min_length=4, max_length=4
    )
    error_m: float | None = Field(default=None, ge=0, le=10_000)


class FlagPublic(Orm):
    id: int
    category: str
    category_zh: str | None = None
    category_en: str | None = None
    score: float | None
    lon: float
    lat: float
    grid_code: str | None
    microgrid_code: str | None
    territory: str
    status: str
    case_id: int | None
    flight_id: int | None
    class_name: str | None
    rule: str | None
    severity: int | None
    sightings: int | None
    first_seen: datetime | None
    last_seen: datetime | None
    frame_box: list[float] | None
    error_m: float | None
    has_evidence: bool = False
    has_frame: bool = False
    created_at: datetime


class CaseAction(BaseModel):
    action: Literal[
        "triage",
        "register",
        "reject",
        "mark_duplicate",
        "dispatch",
        "start",
        "handle",
        "verify",
        "close",
        "fail_check",
        "escalate",
    ]
    revision: Int
    level: Level | None = None
    staff_id: Int | None = None
    note: str = Field(default="", max_length=4000)
    photos: list[str] = Field(default_factory=list, max_length=20)
    duplicate_of: Int | None = None


class CasePublic(Orm):
    id: int
    category: str
    priority: str
    state: str
    description: str
    address: str | None
    lon: float
    lat: float
    grid_code: str | None
    territory: str
    source: str
    flag_id: int | None
    duplicate_of: int | None
    level: str | None
    assignee_staff_id: int | None
    first_receiver_staff_id: int | None
    reported_by: str
    revision: Int
    due_at: datetime | None
    overdue: bool = False
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class EventPublic(Orm):
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str
    level: str | None
    staff_id: int | None
    note: str
    photos: list[str]


class ClockPublic(Orm):
    level: str
    started_at: datetime
    due_at: datetime
    ended_at: datetime | None


class DuplicatePublic(BaseModel):
    case_id: int
    distance_m: float
    state: str


class CaseDetail(CasePublic):
    events: list[EventPublic]
    clocks: list[ClockPublic]
    duplicate_suggestions: list[DuplicatePublic]


class CaseFiled(CasePublic):
    duplicate_suggestions: list[DuplicatePublic]


class GridStats(BaseModel):
    code: str
    cases: int
    by_category: dict[str, int]
    open: int
    overdue: int
    closed: int
    on_time_rate: float | None
    mean_hours_to_close: float | None


class AuditPublic(Orm):
    id: int
    at: datetime
    username: str
    role: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str


class AuditVerify(BaseModel):
    intact: bool
    entries: int
    broken_at: int | None = None
    reason: str | None = None
