"""Cases and their closed loop, photos, the case board, per-grid statistics and trend, re-check missions."""

from __future__ import annotations

import io
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import cases, dashboard, recheck
from api.case_schemas import BoardCase, CaseBoard, CategoryPublic, RecheckMission, RecheckRequest, TrendWeek
from api.deps import CurrentUser, IdPath, Offset, ReadSession, Service, ServiceDep, writing
from api.errors import InputError, NotFoundError, TooLargeError
from api.missions import FORMATS
from api.models import Case, CaseClock, CaseEvent, Sortie, utcnow
from api.schemas import (
    CaseAction,
    CaseCreate,
    CaseDetail,
    CaseFiled,
    CasePublic,
    DuplicatePublic,
    GridStats,
)
from api.security import Principal
from api.workflow import FINAL_STATES, STATES, is_overdue

router = APIRouter(prefix="/api/v1", tags=["cases"])
_PHOTO_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


def case_public(case: Case, now: datetime) -> CasePublic:
    """A case with its overdue flag."""
    public = CasePublic.model_validate(case)
    public.overdue = is_overdue(state=case.state, due=case.due_at, now=now)
    return public


def _suggestions(session: Any, case: Case) -> list[DuplicatePublic]:
    return [
        DuplicatePublic(case_id=other.id, distance_m=round(distance, 1), state=other.state)
        for other, distance in cases.duplicates(session, case)
    ]


def file_case(service: Service, who: Principal, report: cases.Report) -> CaseFiled:
    """File a case and return it with duplicate suggestions (same category, open, within 250 m)."""
    with writing(service) as session:
        case = cases.file_case(session, who, service.limits, report, categories=service.categories)
        suggestions = _suggestions(session, case)
    return CaseFiled(**case_public(case, utcnow()).model_dump(), duplicate_suggestions=suggestions)


@router.post("/cases", response_model=CaseFiled, status_code=201)
def report_case(service: ServiceDep, who: CurrentUser, body: CaseCreate) -> CaseFiled:
    """A person's report: files a case in state ``reported``."""
    return file_case(
        service,
        who,
        cases.Report(
            body.category, body.lon, body.lat, body.priority, body.description, body.address, source="person"
        ),
    )


@router.get("/cases", response_model=list[CasePublic])
def list_cases(
    session: ReadSession,
    who: CurrentUser,
    state: Annotated[str | None, Query(description=f"open, or one of {', '.join(STATES)}")] = None,
    category: str | None = None,
    grid_code: str | None = None,
    overdue: bool | None = None,
    sort: Literal["newest", "due"] = "newest",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CasePublic]:
    """Cases visible to the caller, newest first or nearest deadline first, with filters."""
    stmt = cases.visible(who)
    if state == "open":
        stmt = stmt.where(Case.state.not_in(FINAL_STATES))
    elif state is not None:
        stmt = stmt.where(Case.state == state)
    if category is not None:
        stmt = stmt.where(Case.category == category)
    if grid_code is not None:
        stmt = stmt.where(Case.grid_code == grid_code)
    now = utcnow()
    if overdue is not None:
        late = Case.due_at.is_not(None) & (Case.due_at < now) & Case.state.not_in(FINAL_STATES)
        stmt = stmt.where(late if overdue else ~late)
    keys = (Case.id.desc(),) if sort == "newest" else (Case.due_at.is_(None), Case.due_at, Case.id)
    rows = session.scalars(stmt.order_by(*keys).offset(offset).limit(limit))
    return [case_public(c, now) for c in rows]


@router.get("/categories", response_model=list[CategoryPublic])
def categories(service: ServiceDep) -> list[CategoryPublic]:
    """The case categories (code, names, standard, urgency, minutes to handle per level)."""
    return [
        CategoryPublic(**{**vars(c), "handle_minutes": dict(c.handle_minutes)})
        for c in service.categories.by_code.values()
    ]


@router.get("/cases/board", response_model=CaseBoard)
def case_board(
    session: ReadSession, who: CurrentUser, limit: Annotated[int, Query(ge=1, le=500)] = 200
) -> CaseBoard:
    """Open cases by level (``undispatched`` before dispatch), overdue on top, then by deadline."""
    now = utcnow()
    columns = dashboard.board(session, who, now=now, limit=limit)
    return CaseBoard(
        now=now,
        **{
            name: [BoardCase(**case_public(c, now).model_dump(), seconds_left=left) for c, left in rows]
            for name, rows in columns.items()
        },
    )


@router.post("/cases/recheck-mission", response_model=RecheckMission, status_code=201)
def recheck_mission(service: ServiceDep, who: CurrentUser, body: RecheckRequest) -> RecheckMission:
    """A drone mission to the open cases of ``grid_codes`` (hover and photograph each), kept as a mission."""
    who.require("inspector", "operator")
    home = (body.home_lon, body.home_lat) if body.home_lon is not None and body.home_lat is not None else None
    request = recheck.RecheckRequest(
        tuple(dict.fromkeys(body.grid_codes)), body.camera, body.altitude_m, home
    )
    with writing(service) as session:
        row, case_ids = recheck.store_recheck(session, who, request, service.settings.data_dir)
        sorties = session.scalars(select(Sortie).where(Sortie.mission_id == row.id)).all()
        base = f"/api/v1/cases/recheck-missions/{row.id}/download"
        return RecheckMission(
            mission_id=row.id,
            case_ids=case_ids,
            sorties=len(sorties),
            waypoints=sum(len(s.waypoints) for s in sorties),
            downloads={fmt: f"{base}?format={fmt}" for fmt in FORMATS},
        )


@router.get("/cases/recheck-missions/{mission_id}/download", response_class=FileResponse)
def recheck_download(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    mission_id: IdPath,
    format: Literal["plan", "waypoints", "kmz", "geojson", "kml"] = "plan",
) -> FileResponse:
    """The re-check mission as a file: QGC ``.plan``, ``.waypoints``, DJI ``.kmz``, GeoJSON or KML."""
    row = recheck.recheck_mission(session, who, mission_id)
    path, media_type, name = recheck.download(service.settings.data_dir, row, format)
    return FileResponse(path, media_type=media_type, filename=name)


@router.get("/cases/{case_id}", response_model=CaseDetail)
def get_case(session: ReadSession, who: CurrentUser, case_id: IdPath) -> CaseDetail:
    """One case with its events, per-level clocks and duplicate suggestions."""
    case = _visible_case(session, who, case_id)
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
    clocks = session.scalars(select(CaseClock).where(CaseClock.case_id == case.id).order_by(CaseClock.id))
    return CaseDetail.model_validate(
        {
            **case_public(case, utcnow()).model_dump(),
            "events": list(events),
            "clocks": list(clocks),
            "duplicate_suggestions": _suggestions(session, case) if case.state not in FINAL_STATES else [],
        }
    )


def _visible_case(session: Session, who: Principal, case_id: IdPath) -> Case:
    case = session.get(Case, case_id)
    if case is None or not cases.can_see(who, case):
        raise NotFoundError(f"case {case_id} does not exist", where={"case_id": case_id})
    return case


@router.post("/cases/{case_id}/actions", response_model=CasePublic)
def act(service: ServiceDep, who: CurrentUser, case_id: IdPath, body: CaseAction) -> CasePublic:
    """Take one step of the closed loop; 409 for a step the state or role does not allow, or a stale revision."""
    with writing(service) as session:
        case = _visible_case(session, who, case_id)
        _check_photos(service, case.id, body.photos)
        step = cases.Step(
            body.action, body.revision, body.level, body.staff_id, body.note, body.photos, body.duplicate_of
        )
        case = cases.act(session, who, service.limits, case, step)
    return case_public(case, utcnow())


def _photo_dir(service: Service, case_id: IdPath) -> Path:
    return service.settings.data_dir / "photos" / str(case_id)


def _check_photos(service: Service, case_id: IdPath, names: list[str]) -> None:
    folder = _photo_dir(service, case_id)
    for name in names:
        if Path(name).name != name or not (folder / name).is_file():
            raise InputError(f"photo {name!r} was not uploaded for case {case_id}", where={"field": "photos"})


@router.post("/cases/{case_id}/photos", status_code=201)
def upload_photo(
    service: ServiceDep,
    who: CurrentUser,
    case_id: IdPath,
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP photo of the handling")],
) -> dict[str, str]:
    """Upload a photo for a case; returns the name to list in the ``handle`` action's ``photos``."""
    with service.db.read() as reading:
        _visible_case(reading, who, case_id)
    data = file.file.read(service.settings.max_upload_bytes + 1)
    if len(data) > service.settings.max_upload_bytes:
        raise TooLargeError(
            f"photo exceeds {service.settings.max_upload_bytes} bytes", where={"field": "file"}
        )
    suffix = _image_suffix(data, file.filename or "photo")
    folder = _photo_dir(service, case_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(8)}{suffix}"
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)
    return {"photo": name}


def _image_suffix(data: bytes, filename: str) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise InputError(f"{filename}: not a readable image", where={"file": filename}) from None
    if kind not in _PHOTO_FORMATS:
        raise InputError(
            f"{filename}: {kind} images are not accepted; use JPEG, PNG or WebP", where={"file": filename}
        )
    return _PHOTO_FORMATS[kind]


@router.get("/stats/grids", response_model=list[GridStats])
def grid_stats(session: ReadSession, who: CurrentUser) -> list[dict[str, Any]]:
    """Per grid: cases by category, open, overdue, closed, on-time rate and mean hours to close."""
    return cases.grid_statistics(session, who, now=utcnow())


@router.get("/stats/trend", response_model=list[TrendWeek])
def trend(
    session: ReadSession,
    who: CurrentUser,
    grid_code: Annotated[list[str] | None, Query(description="grids to count (all when none)")] = None,
    weeks: Annotated[int, Query(ge=1, le=104)] = 8,
) -> list[TrendWeek]:
    """Weekly cases filed and closed (on time), mean hours to close, for the last ``weeks`` weeks."""
    rows = dashboard.weekly_trend(session, who, grid_codes=grid_code or [], weeks=weeks, now=utcnow())
    return [TrendWeek(**vars(row)) for row in rows]
