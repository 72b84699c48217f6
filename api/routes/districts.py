"""District import (GeoPackage or zipped Shapefiles) and gridding jobs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, UploadFile
from sqlalchemy import select

from api.audit import record
from api.deps import CurrentUser, IdPath, ReadSession, ServiceDep, writing
from api.districts import read_upload, store_district, unpack_upload
from api.errors import NotFoundError, TooLargeError
from api.jobs import run_grid_job
from api.models import District, Job
from api.schemas import DistrictPublic, GridRequest, JobPublic

router = APIRouter(prefix="/api/v1", tags=["districts"])
_CHUNK = 1 << 20


@router.post("/districts", response_model=DistrictPublic, status_code=201)
def import_district(
    service: ServiceDep,
    who: CurrentUser,
    file: Annotated[UploadFile, File(description="GeoPackage (.gpkg) or zipped Shapefiles (.zip)")],
    name: Annotated[str, Form(min_length=1, max_length=128)],
) -> District:
    """Import a district; a bad file gives 422 naming file, layer, row and field, and changes nothing."""
    who.require("planner")
    filename = Path(file.filename or "upload").name
    uploads = service.settings.data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=uploads) as work:
        saved = Path(work) / filename
        _save(file, saved, service.settings.max_upload_bytes)
        source = unpack_upload(
            saved, filename, Path(work) / "unpacked", max_bytes=service.settings.max_upload_bytes
        )
        district = read_upload(source, filename)
        with writing(service) as session:
            row = store_district(session, who, district, name=name, source=source, filename=filename)
            record(
                session,
                who,
                action="import_district",
                entity="district",
                entity_id=row.id,
                after={"name": name, "code": row.code, "households": row.households, "file": filename},
            )
    return row


def _save(upload: UploadFile, target: Path, max_bytes: int) -> None:
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise TooLargeError(
                    f"upload exceeds the limit of {max_bytes} bytes / 文件过大", where={"file": target.name}
                )
            out.write(chunk)


@router.get("/districts", response_model=list[DistrictPublic])
def list_districts(session: ReadSession, who: CurrentUser) -> list[District]:
    """Districts that overlap the caller's territory."""
    rows = session.scalars(select(District).order_by(District.id))
    return [d for d in rows if who.overlaps(d.code)]


@router.get("/districts/{district_id}", response_model=DistrictPublic)
def get_district(session: ReadSession, who: CurrentUser, district_id: IdPath) -> District:
    """One district."""
    district = session.get(District, district_id)
    if district is None or not who.overlaps(district.code):
        raise NotFoundError(f"district {district_id} does not exist", where={"district_id": district_id})
    return district


@router.post("/districts/{district_id}/grid", response_model=JobPublic, status_code=202)
def grid_district(
    service: ServiceDep, who: CurrentUser, district_id: IdPath, body: GridRequest, tasks: BackgroundTasks
) -> Job:
    """Start gridding the district as a background job; poll ``/jobs/{id}`` for progress."""
    who.require("planner")
    with writing(service) as session:
        district = session.get(District, district_id)
        if district is None:
            raise NotFoundError(f"district {district_id} does not exist", where={"district_id": district_id})
        who.require_territory(district.code, "district")
        job = Job(
            kind="grid",
            status="queued",
            progress=0.0,
            message="queued / 排队中",
            params=body.model_dump(),
            created_by=who.username,
        )
        session.add(job)
        session.flush()
    tasks.add_task(
        run_grid_job, service, who, job_id=job.id, district_id=district_id, params=body.model_dump()
    )
    return job


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(session: ReadSession, who: CurrentUser, job_id: IdPath) -> Job:
    """A job's status and progress."""
    job = session.get(Job, job_id)
    if job is None or (job.created_by != who.username and who.role != "admin"):
        raise NotFoundError(f"job {job_id} does not exist", where={"job_id": job_id})
    return job
