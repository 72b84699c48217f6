"""Flags from the detector and their review: the queue, decisions, duplicate candidates, evidence images and
the export of rejected flags as training negatives."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated

import shapely
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import review
from api.case_schemas import FlagQueue, FlagReview, ReviewResult
from api.cases import locate
from api.categories import CategoryTable
from api.deps import CurrentUser, IdPath, Offset, ReadSession, Service, ServiceDep, writing
from api.errors import InputError
from api.geometry import spatial
from api.models import Flag
from api.schemas import FlagCreate, FlagPublic
from api.security import Principal

router = APIRouter(prefix="/api/v1/flags", tags=["flags"])


def flag_public(flag: Flag, categories: CategoryTable) -> FlagPublic:
    """A flag with its category names and whether it has evidence and frame images."""
    public = FlagPublic.model_validate(flag)
    category = categories.get(flag.category)
    if category is not None:
        public.category_zh, public.category_en = category.name_zh, category.name_en
    public.has_evidence, public.has_frame = flag.evidence_path is not None, flag.frame_path is not None
    return public


@router.post("", response_model=FlagPublic, status_code=201)
def add_flag(service: ServiceDep, who: CurrentUser, body: FlagCreate) -> FlagPublic:
    """A detector's finding, stored as a new flag for inspectors to review (paths inside the data folder)."""
    who.require("operator", "inspector")
    service.categories.require(body.category)
    review.check_data_path(body.evidence_path, "evidence_path")
    review.check_data_path(body.frame_path, "frame_path")
    with writing(service) as session:
        grid_code, territory = locate(session, body.lon, body.lat)
        flag = Flag(
            **body.model_dump(),
            grid_code=grid_code,
            territory=territory,
            status=review.NEW,
            **spatial(shapely.Point(body.lon, body.lat)),
        )
        session.add(flag)
        session.flush()
        return flag_public(flag, service.categories)


@router.get("", response_model=list[FlagPublic])
def list_flags(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    status: str | None = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FlagPublic]:
    """Flags in the caller's territory, newest first; ``status=rejected`` lists the hard negatives."""
    stmt = select(Flag).where(Flag.territory.startswith(who.territory))
    if status is not None:
        stmt = stmt.where(Flag.status == status)
    rows = session.scalars(stmt.order_by(Flag.id.desc()).offset(offset).limit(limit))
    return [flag_public(f, service.categories) for f in rows]


@router.get("/queue", response_model=FlagQueue)
def review_queue(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    order: review.QueueOrder = "oldest",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> FlagQueue:
    """New flags awaiting review in the caller's territory (oldest or most severe first) and their number."""
    total, flags = review.queue(session, who, order=order, offset=offset, limit=limit)
    return FlagQueue(total=total, offset=offset, flags=[flag_public(f, service.categories) for f in flags])


@router.get("/rejected/export", response_class=Response)
def export_rejected(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 5000,
) -> Response:
    """Rejected flags as a zip of YOLO background images (evidence crops, empty label files, a list and a CSV)."""
    who.require("inspector", "operator")
    data = review.negatives_zip(review.rejected_flags(session, who, limit), service.settings.data_dir)
    headers = {"Content-Disposition": 'attachment; filename="rejected-flags-negatives.zip"'}
    return Response(data, media_type="application/zip", headers=headers)


@router.get("/{flag_id}", response_model=FlagPublic)
def get_flag(service: ServiceDep, session: ReadSession, who: CurrentUser, flag_id: IdPath) -> FlagPublic:
    """One flag of the caller's territory."""
    return flag_public(review.get_flag(session, who, flag_id), service.categories)


@router.get("/{flag_id}/duplicates", response_model=list[review.Candidate])
def duplicate_candidates(session: ReadSession, who: CurrentUser, flag_id: IdPath) -> list[review.Candidate]:
    """Open cases and new flags of the same category within 250 m (at most 5, nearest first)."""
    flag = review.get_flag(session, who, flag_id)
    return review.candidates(session, who, flag)


@router.post("/{flag_id}/review", response_model=ReviewResult)
def review_flag(service: ServiceDep, who: CurrentUser, flag_id: IdPath, body: FlagReview) -> ReviewResult:
    """Decide a new flag; 409 when someone else decided it first."""
    who.require("inspector")
    with writing(service) as session:
        flag = review.get_flag(session, who, flag_id)
        changed = _decide(service, session, who, flag, body)
        return ReviewResult(flags=[flag_public(f, service.categories) for f in changed])


def _decide(service: Service, session: Session, who: Principal, flag: Flag, body: FlagReview) -> list[Flag]:
    rules = review.Rules(who, service.limits, service.categories)
    if body.action == "accept_frame":
        return review.accept_frame(session, rules, flag)
    if body.action == "accept":
        review.accept(session, rules, flag, body.note)
    elif body.action == "reject":
        review.reject(session, who, flag, body.note)
    elif body.action == "duplicate":
        review.mark_duplicate(
            session, who, flag, of_case=body.duplicate_of_case, of_flag=body.duplicate_of_flag
        )
    elif body.category is None:
        raise InputError("recategorize needs the new category", where={"field": "category"})
    else:
        review.recategorize(session, who, service.categories, flag, body.category)
    return [flag]


@router.get("/{flag_id}/evidence.jpg", response_class=FileResponse)
def evidence(service: ServiceDep, session: ReadSession, who: CurrentUser, flag_id: IdPath) -> FileResponse:
    """The evidence crop of the flag."""
    flag = review.get_flag(session, who, flag_id)
    return _image(review.data_file(service.settings.data_dir, flag.evidence_path, "evidence"))


@router.get("/{flag_id}/frame.jpg", response_class=FileResponse)
def frame(service: ServiceDep, session: ReadSession, who: CurrentUser, flag_id: IdPath) -> FileResponse:
    """The full frame the flag was seen in (``frame_box`` of the flag marks it)."""
    flag = review.get_flag(session, who, flag_id)
    return _image(review.data_file(service.settings.data_dir, flag.frame_path, "frame"))


def _image(path: Path) -> FileResponse:
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})
