"""Cases and their closed loop, flags from the detector, photos, and per-grid statistics."""

from __future__ import annotations

import io
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, File, Query, UploadFile
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import cases
from api.deps import CurrentUser, IdPath, Offset, ReadSession, Service, ServiceDep, writing
from api.errors import InputError, NotFoundError, TooLargeError
from api.geometry import spatial
from api.models import Case, CaseClock, CaseEvent, Flag, utcnow
from api.schemas import (
    CaseAction,
    CaseCreate,
    CaseDetail,
    CaseFiled,
    CasePublic,
    DuplicatePublic,
    FlagCreate,
    FlagPublic,
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
        case = cases.file_case(session, who, service.limits, report)
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
    state: Annotated[str | None, Query(description=f"one of {', '.join(STATES)}")] = None,
    category: str | None = None,
    grid_code: str | None = None,
    overdue: bool | None = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CasePublic]:
    """Cases visible to the caller, newest first, with filters."""
    stmt = select(Case)
    if who.role in ("grid_worker", "handling_unit"):
        stmt = stmt.where(Case.assignee_staff_id == (who.staff_id or -1))
    elif who.territory:
        stmt = stmt.where(Case.territory.startswith(who.territory))
    if state is not None:
        stmt = stmt.where(Case.state == state)
    if category is not None:
        stmt = stmt.where(Case.category == category)
    if grid_code is not None:
        stmt = stmt.where(Case.grid_code == grid_code)
    now = utcnow()
    if overdue is not None:
        late = Case.due_at.is_not(None) & (Case.due_at < now) & Case.state.not_in(FINAL_STATES)
        stmt = stmt.where(late if overdue else ~late)
    rows = session.scalars(stmt.order_by(Case.id.desc()).offset(offset).limit(limit))
    return [case_public(c, now) for c in rows]


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


@router.post("/flags", response_model=FlagPublic, status_code=201)
def add_flag(service: ServiceDep, who: CurrentUser, body: FlagCreate) -> Flag:
    """A detector's finding: stored as a flag and filed as a case (source ``flag``) for inspectors to triage."""
    who.require("operator", "inspector")
    with writing(service) as session:
        grid_code, territory = cases.locate(session, body.lon, body.lat)
        flag = Flag(
            category=body.category,
            score=body.score,
            lon=body.lon,
            lat=body.lat,
            grid_code=grid_code,
            territory=territory,
            flight_id=body.flight_id,
            status="new",
            **spatial(shapely.Point(body.lon, body.lat)),
        )
        session.add(flag)
        session.flush()
        case = cases.file_case(
            session,
            who,
            service.limits,
            cases.Report(body.category, body.lon, body.lat, source="flag", flag_id=flag.id),
        )
        flag.case_id = case.id
    return flag


@router.get("/flags", response_model=list[FlagPublic])
def list_flags(
    session: ReadSession,
    who: CurrentUser,
    status: str | None = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Flag]:
    """Flags in the caller's territory; ``status=rejected`` lists the hard negatives kept for training."""
    stmt = select(Flag).where(Flag.territory.startswith(who.territory))
    if status is not None:
        stmt = stmt.where(Flag.status == status)
    return list(session.scalars(stmt.order_by(Flag.id.desc()).offset(offset).limit(limit)))


@router.get("/stats/grids", response_model=list[GridStats])
def grid_stats(session: ReadSession, who: CurrentUser) -> list[dict[str, Any]]:
    """Per grid: cases by category, open, overdue, closed, on-time rate and mean hours to close."""
    return cases.grid_statistics(session, who, now=utcnow())
