"""Grid plans: versions, grids, tallies, edits (moves by unit or building, lock, split, merge, re-grid a
selection), validation, publishing, diff, export and notice-board prints."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import plan_edits, plans
from api.deps import CurrentUser, IdPath, Offset, ReadSession, Service, ServiceDep, writing
from api.districts import load_district
from api.errors import NotFoundError
from api.models import BuildingUnit, District, Grid, Job, MicroGrid, Plan, PlanVersion
from api.plan_schemas import (
    EditResult,
    MergeRequest,
    MoveRequest,
    MoveResult,
    RegridRequest,
    RulesPublic,
    SplitRequest,
    TalliesPublic,
)
from api.schemas import (
    DraftRequest,
    ExportFormat,
    GridDetail,
    GridPublic,
    JobPublic,
    LockRequest,
    MicroGridPublic,
    PlanPublic,
    RevisionPublic,
    RevisionRequest,
    UnitPublic,
    ValidationPublic,
    VersionPublic,
    ViolationPublic,
)
from api.security import Principal
from gis import export as gis_export
from gis.model import GridRules

router = APIRouter(prefix="/api/v1/plans", tags=["plans"])
_MEDIA = {
    "csv": "text/csv",
    "html": "text/html",
    "geojson": "application/zip",
    "shp": "application/zip",
    "pdf": "application/zip",
    "png": "application/zip",
}


def _plan_in_scope(session: Any, who: Principal, plan_id: IdPath) -> Plan:
    plan = plans.get_plan(session, plan_id)
    district = session.get(District, plan.district_id)
    if district is None or not who.overlaps(district.code):
        raise NotFoundError(f"plan {plan_id} does not exist", where={"plan_id": plan_id})
    return plan


@router.get("", response_model=list[PlanPublic])
def list_plans(session: ReadSession, who: CurrentUser) -> list[PlanPublic]:
    """Plans of the districts in the caller's territory, with their versions."""
    out = []
    for plan in session.scalars(select(Plan).order_by(Plan.id)):
        district = session.get(District, plan.district_id)
        if district is not None and who.overlaps(district.code):
            out.append(_plan_public(session, plan))
    return out


def _plan_public(session: Session, plan: Plan) -> PlanPublic:
    versions = session.scalars(
        select(PlanVersion).where(PlanVersion.plan_id == plan.id).order_by(PlanVersion.number)
    )
    public = PlanPublic.model_validate(plan)
    public.versions = [VersionPublic.model_validate(v) for v in versions]
    return public


@router.get("/{plan_id}", response_model=PlanPublic)
def get_plan(session: ReadSession, who: CurrentUser, plan_id: IdPath) -> PlanPublic:
    """One plan with its versions."""
    return _plan_public(session, _plan_in_scope(session, who, plan_id))


@router.get("/{plan_id}/versions/{number}", response_model=VersionPublic)
def get_version(session: ReadSession, who: CurrentUser, plan_id: IdPath, number: IdPath) -> PlanVersion:
    """One version (status, revision, rules, who and why)."""
    _plan_in_scope(session, who, plan_id)
    return plans.get_version(session, plan_id, number)


@router.get("/{plan_id}/versions/{number}/grids", response_model=list[GridPublic])
def list_grids(
    session: ReadSession,
    who: CurrentUser,
    plan_id: IdPath,
    number: IdPath,
    community_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    geometry: bool = False,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[GridPublic]:
    """Grids of a version, in code order; ``geometry=true`` adds GeoJSON geometries (WGS-84)."""
    _plan_in_scope(session, who, plan_id)
    version = plans.get_version(session, plan_id, number)
    stmt = select(Grid).where(Grid.version_id == version.id)
    if community_code is not None:
        stmt = stmt.where(Grid.community_code == community_code)
    if who.territory:
        stmt = stmt.where(Grid.grid_code.startswith(who.territory[:15]))
    rows = session.scalars(stmt.order_by(Grid.grid_code).offset(offset).limit(limit))
    return [_grid_public(g, geometry) for g in rows]


def _grid_public(grid: Grid, geometry: bool) -> GridPublic:
    public = GridPublic.model_validate(grid)
    public.geometry = shapely.geometry.mapping(grid.geom) if geometry else None
    return public


@router.get("/{plan_id}/versions/{number}/grids/{grid_code}", response_model=GridDetail)
def get_grid(
    session: ReadSession, who: CurrentUser, plan_id: IdPath, number: IdPath, grid_code: str
) -> GridDetail:
    """One grid with its geometry, micro-grids and building units."""
    _plan_in_scope(session, who, plan_id)
    version = plans.get_version(session, plan_id, number)
    grid = plans.grids_by_code(session, version.id, {grid_code}).get(grid_code)
    if grid is None or (not who.covers(grid.grid_code) and not grid.grid_code.startswith(who.territory)):
        raise NotFoundError(f"grid {grid_code} is not in version {number}", where={"grid_code": grid_code})
    micros = session.scalars(
        select(MicroGrid)
        .where(MicroGrid.version_id == version.id, MicroGrid.grid_code == grid_code)
        .order_by(MicroGrid.microgrid_code)
    )
    units = session.scalars(
        select(BuildingUnit)
        .where(BuildingUnit.version_id == version.id, BuildingUnit.grid_code == grid_code)
        .order_by(BuildingUnit.id)
    )
    return GridDetail(
        **_grid_public(grid, True).model_dump(),
        microgrids=[
            MicroGridPublic.model_validate(m).model_copy(
                update={"geometry": shapely.geometry.mapping(m.geom)}
            )
            for m in micros
        ],
        units=[UnitPublic.model_validate(u) for u in units],
    )


@router.post("/{plan_id}/versions/{number}/moves", response_model=MoveResult)
def move_units(
    service: ServiceDep, who: CurrentUser, plan_id: IdPath, number: IdPath, body: MoveRequest
) -> MoveResult:
    """Move building units (or whole buildings) to other micro-grids or grids of a draft, in one transaction.

    Answers the new revision, each unit moved with where it came from (to undo), and the tallies of every grid
    the moves touched with the gridding rules checked (range, one piece, inside its community). 409 when the
    draft changed since ``revision``; nothing moves when any move is refused.
    """
    who.require("planner")
    with writing(service) as session:
        _plan_in_scope(session, who, plan_id)
        version = plans.get_version(session, plan_id, number)
        moves = plan_edits.resolve_moves(session, version, body.moves)
        revision, moved = plans.move_units(session, who, version, seen=body.revision, moves=moves)
        touched = {m.from_grid for m in moved} | {m.to_grid for m in moved}
        grids = plan_edits.tallies(session, version, touched)
    return MoveResult(revision=revision, moved=list(moved), grids=grids)


@router.get("/{plan_id}/versions/{number}/tallies", response_model=TalliesPublic)
def tallies(session: ReadSession, who: CurrentUser, plan_id: IdPath, number: IdPath) -> TalliesPublic:
    """Every grid of the version in the caller's territory with its micro-grids, households and warnings."""
    _plan_in_scope(session, who, plan_id)
    version = plans.get_version(session, plan_id, number)
    rules = RulesPublic.model_validate(version.rules)
    grids = [g for g in plan_edits.tallies(session, version) if g.grid_code.startswith(who.territory[:15])]
    return TalliesPublic(revision=version.revision, status=version.status, rules=rules, grids=grids)


@router.post("/{plan_id}/versions/{number}/merge", response_model=EditResult)
def merge_grids(
    service: ServiceDep, who: CurrentUser, plan_id: IdPath, number: IdPath, body: MergeRequest
) -> EditResult:
    """Merge the second grid into the first: adjacent, same community, at most the maximum (422 otherwise)."""
    who.require("planner")
    keep, absorb = body.grid_codes
    with writing(service) as session:
        _plan_in_scope(session, who, plan_id)
        version = plans.get_version(session, plan_id, number)
        revision, _ = plan_edits.merge_grids(
            session, who, version, seen=body.revision, keep=keep, absorb=absorb
        )
        grids = plan_edits.tallies(session, version, [keep])
    return EditResult(revision=revision, removed=[absorb], grids=grids)


@router.post("/{plan_id}/versions/{number}/grids/{grid_code}/split", response_model=EditResult)
def split_grid(
    service: ServiceDep,
    who: CurrentUser,
    plan_id: IdPath,
    number: IdPath,
    grid_code: str,
    body: SplitRequest,
) -> EditResult:
    """Split a grid in two along a drawn ``line``, or where the gridder cuts it best; the first part keeps the
    code. 422 when the line does not cut the grid into two parts with buildings on both sides."""
    who.require("planner")
    with writing(service) as session:
        _plan_in_scope(session, who, plan_id)
        version = plans.get_version(session, plan_id, number)
        _require_grids_in_territory(session, who, version, [grid_code])
        selection = plan_edits.read_selection(session, version, [grid_code], seen=body.revision)
        rules = GridRules(**version.rules)
        if body.line is not None:
            grid_plan = plan_edits.split_by_line(selection, body.line, rules)
        else:
            grid_plan = plan_edits.grid_selection(selection, plan_edits.split_rules(selection, rules))
        revision, made, removed = plan_edits.replace_selection(session, who, version, selection, grid_plan)
        grids = plan_edits.tallies(session, version, made)
    return EditResult(revision=revision, removed=removed, grids=grids)


def _require_grids_in_territory(
    session: Session, who: Principal, version: PlanVersion, codes: list[str]
) -> None:
    for grid in plans.grids_by_code(session, version.id, set(codes)).values():
        who.require_territory(grid.community_code, "grid")


@router.post("/{plan_id}/versions/{number}/regrid", response_model=JobPublic, status_code=202)
def regrid(
    service: ServiceDep,
    who: CurrentUser,
    plan_id: IdPath,
    number: IdPath,
    body: RegridRequest,
    tasks: BackgroundTasks,
) -> Job:
    """Re-run the gridder on the selected grids as a background job (poll ``/api/v1/jobs/{id}``); the other
    grids stay as they are. 409 at once when the draft is not at ``revision``."""
    who.require("planner")
    with writing(service) as session:
        _plan_in_scope(session, who, plan_id)
        version = plans.get_version(session, plan_id, number)
        _require_grids_in_territory(session, who, version, body.grid_codes)
        plan_edits.read_selection(session, version, body.grid_codes, seen=body.revision)  # checks it early
        if version.status != "draft" or version.revision != body.revision:
            plans.claim_revision(session, version, body.revision)  # raises the usual 409
        job = Job(
            kind="regrid",
            status="queued",
            params={"plan_id": plan_id, "version": number, "grid_codes": body.grid_codes},
            created_by=who.username,
        )
        session.add(job)
        session.flush()
    tasks.add_task(
        plan_edits.run_regrid_job,
        service,
        who,
        job_id=job.id,
        plan_id=plan_id,
        number=number,
        codes=list(body.grid_codes),
        seen=body.revision,
    )
    return job


@router.post("/{plan_id}/versions/{number}/grids/{grid_code}/lock", response_model=RevisionPublic)
def lock_grid(
    service: ServiceDep, who: CurrentUser, plan_id: IdPath, number: IdPath, grid_code: str, body: LockRequest
) -> RevisionPublic:
    """Lock (or unlock) a grid of a draft: a locked grid's units cannot be moved."""
    who.require("planner")
    with writing(service) as session:
        _plan_in_scope(session, who, plan_id)
        version = plans.get_version(session, plan_id, number)
        revision = plans.set_lock(
            session, who, version, seen=body.revision, grid_code=grid_code, locked=body.locked
        )
    return RevisionPublic(revision=revision)


@router.get("/{plan_id}/versions/{number}/validation", response_model=ValidationPublic)
def validate_version(
    session: ReadSession, who: CurrentUser, plan_id: IdPath, number: IdPath
) -> ValidationPublic:
    """Check the version against every plan rule (tiling, ranges, households, codes)."""
    plan = _plan_in_scope(session, who, plan_id)
    version = plans.get_version(session, plan_id, number)
    violations = plans.validate(session, version, load_district(session, plan.district_id))
    return ValidationPublic(
        valid=not violations,
        violations=[
            ViolationPublic(rule=v.rule, layer=v.layer, code=v.code, message=v.message) for v in violations
        ],
    )


@router.post("/{plan_id}/versions/{number}/publish", response_model=VersionPublic)
def publish(
    service: ServiceDep, who: CurrentUser, plan_id: IdPath, number: IdPath, body: RevisionRequest
) -> PlanVersion:
    """Publish a valid draft (422 listing the first broken rule otherwise); the old published one is archived."""
    who.require("planner")
    with writing(service) as session:
        plan = _plan_in_scope(session, who, plan_id)
        district = session.get(District, plan.district_id)
        who.require_territory(district.code if district else None, "district")
        version = plans.get_version(session, plan_id, number)
        violations = plans.validate(session, version, load_district(session, plan.district_id))
        plans.publish(session, who, version, seen=body.revision, violations=violations)
    return version


@router.post("/{plan_id}/versions", response_model=VersionPublic, status_code=201)
def new_draft(service: ServiceDep, who: CurrentUser, plan_id: IdPath, body: DraftRequest) -> PlanVersion:
    """Start a new draft from an existing version (who, when and why are recorded)."""
    who.require("planner")
    with writing(service) as session:
        plan = _plan_in_scope(session, who, plan_id)
        base = plans.get_version(session, plan_id, body.from_version)
        return plans.new_draft(session, who, plan, base, reason=body.reason)


@router.get("/{plan_id}/diff")
def diff(
    session: ReadSession,
    who: CurrentUser,
    plan_id: IdPath,
    from_version: Annotated[int, Query(ge=1, le=2**31 - 1)],
    to_version: Annotated[int, Query(ge=1, le=2**31 - 1)],
) -> dict[str, Any]:
    """Grids added, removed and resized, and building units moved, between two versions."""
    _plan_in_scope(session, who, plan_id)
    return plans.diff(
        session,
        plans.get_version(session, plan_id, from_version),
        plans.get_version(session, plan_id, to_version),
    )


@router.get("/{plan_id}/versions/{number}/export", response_class=FileResponse)
def export(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    plan_id: IdPath,
    number: IdPath,
    tasks: BackgroundTasks,
    format: ExportFormat = "geojson",
) -> FileResponse:
    """Download the version as GeoJSON, Shapefile or print maps (zip), a CSV roster or an offline HTML map."""
    plan = _plan_in_scope(session, who, plan_id)
    version = plans.get_version(session, plan_id, number)
    grid_plan = plans.load_plan(session, version)
    district = load_district(session, plan.district_id)
    work = Path(tempfile.mkdtemp(prefix="export-", dir=_exports_dir(service)))
    tasks.add_task(shutil.rmtree, work, True)
    path = _write_export(grid_plan, district, format, work)
    name = f"plan{plan_id}-v{number}{path.suffix}"
    return FileResponse(path, media_type=_MEDIA[format], filename=name)


@router.get("/{plan_id}/versions/{number}/grids/{grid_code}/print", response_class=FileResponse)
def print_grid(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    plan_id: IdPath,
    number: IdPath,
    grid_code: str,
    tasks: BackgroundTasks,
    format: Literal["pdf", "png"] = "pdf",
) -> FileResponse:
    """The grid's A4 notice-board map (PDF, or a 300 dpi PNG); ``export?format=pdf`` prints every grid."""
    plan = _plan_in_scope(session, who, plan_id)
    version = plans.get_version(session, plan_id, number)
    if grid_code not in plans.grids_by_code(session, version.id, {grid_code}):
        raise NotFoundError(f"grid {grid_code} is not in version {number}", where={"grid_code": grid_code})
    grid_plan = plans.load_plan(session, version)
    district = load_district(session, plan.district_id)
    work = Path(tempfile.mkdtemp(prefix="print-", dir=_exports_dir(service)))
    tasks.add_task(shutil.rmtree, work, True)
    path = gis_export.export_print_maps(grid_plan, work, district, fmt=format, grid_codes=[grid_code])[0]
    media = "application/pdf" if format == "pdf" else "image/png"
    return FileResponse(path, media_type=media, filename=f"grid-{grid_code}-v{number}.{format}")


def _exports_dir(service: Service) -> Path:
    folder = service.settings.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_export(grid_plan: Any, district: Any, fmt: str, work: Path) -> Path:
    if fmt == "csv":
        return gis_export.export_roster(grid_plan, work / "roster.csv", district)
    if fmt == "html":
        return gis_export.export_html_map(grid_plan, work / "map.html", district)
    out = work / "out"
    if fmt == "geojson":
        gis_export.export_geojson(grid_plan, out)
    elif fmt == "shp":
        gis_export.export_shapefile(grid_plan, out)
    else:
        gis_export.export_print_maps(grid_plan, out, district, fmt="pdf" if fmt == "pdf" else "png")
    return Path(shutil.make_archive(str(work / fmt), "zip", out))
