"""Patrol missions over grids: plan, read, preview on the map, download for the ground station, upload to a
vehicle; and the camera presets to plan with."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from api import flights, missions, recheck
from api.deps import CurrentUser, IdPath, ReadSession, ServiceDep, writing
from api.errors import NotFoundError
from api.flight_schemas import CameraPublic, JobRef, MissionPreview, UploadRequest
from api.models import Mission, Sortie
from api.security import Principal
from drone.cameras import PRESETS

router = APIRouter(prefix="/api/v1/missions", tags=["missions"])
cameras_router = APIRouter(prefix="/api/v1/cameras", tags=["missions"])
MissionFormat = Literal["plan", "waypoints", "kmz", "geojson", "kml"]


class MissionCreate(BaseModel):
    plan_id: int = Field(ge=1, le=2**31 - 1)
    version: int = Field(ge=1, le=2**31 - 1)
    grid_codes: list[Annotated[str, Field(pattern=r"^\d{15}$")]] = Field(min_length=1, max_length=50)
    altitude_m: float = Field(default=80.0, gt=10, le=120, description="above the take-off point")
    name: str = Field(default="patrol", min_length=1, max_length=128)
    camera: str = Field(default="mavic3e", description=f"camera preset: {', '.join(PRESETS)}")
    front_overlap: float = Field(default=0.8, ge=0.0, le=0.95, description="photo overlap along the line")
    side_overlap: float = Field(default=0.7, ge=0.0, le=0.95, description="photo overlap between lines")


class SortiePublic(BaseModel):
    index: int
    waypoints: list[list[float]]


class MissionPublic(BaseModel):
    id: int
    name: str
    grid_codes: list[str]
    params: dict[str, float | int | str]
    created_by: str
    sorties: list[SortiePublic]


def _public(session: ReadSession, row: Mission) -> MissionPublic:
    sorties = session.scalars(select(Sortie).where(Sortie.mission_id == row.id).order_by(Sortie.index))
    return MissionPublic(
        id=row.id,
        name=row.name,
        grid_codes=list(row.grid_codes),
        params=row.params,
        created_by=row.created_by,
        sorties=[SortiePublic(index=s.index, waypoints=s.waypoints) for s in sorties],
    )


@router.post("", response_model=MissionPublic, status_code=201)
def plan(service: ServiceDep, who: CurrentUser, body: MissionCreate) -> MissionPublic:
    """Plan a patrol over grids of a plan version (no-fly zones avoided) and keep it."""
    who.require("operator")
    request = missions.MissionRequest(
        body.plan_id,
        body.version,
        tuple(dict.fromkeys(body.grid_codes)),
        body.altitude_m,
        body.name,
        camera=body.camera,
        front_overlap=body.front_overlap,
        side_overlap=body.side_overlap,
    )
    with writing(service) as session:
        row = missions.store_mission(session, who, request)
        return _public(session, row)


def _stored(session: ReadSession, mission_id: int) -> Mission:
    row = session.get(Mission, mission_id)
    if row is None:
        raise NotFoundError(f"mission {mission_id} does not exist", where={"mission_id": mission_id})
    return row


def _mission(session: ReadSession, who: Principal, mission_id: int) -> Mission:
    """The mission if one of its grids overlaps the caller's territory (404 otherwise)."""
    row = _stored(session, mission_id)
    if not any(who.overlaps(str(code)) for code in row.grid_codes):
        raise NotFoundError(f"mission {mission_id} does not exist", where={"mission_id": mission_id})
    return row


@router.get("/{mission_id}", response_model=MissionPublic)
def get_mission(session: ReadSession, who: CurrentUser, mission_id: IdPath) -> MissionPublic:
    """A mission with its sorties' waypoints (lon, lat, altitude_m)."""
    return _public(session, _mission(session, who, mission_id))


@router.get("/{mission_id}/download", response_class=FileResponse)
def download(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    mission_id: IdPath,
    tasks: BackgroundTasks,
    format: Annotated[
        MissionFormat, Query(description="QGC .plan, .waypoints, DJI .kmz, GeoJSON, KML")
    ] = "plan",
) -> FileResponse:
    """The mission as a file for the ground station or vehicle (a zip when there are several sorties)."""
    row = _mission(session, who, mission_id)
    if row.params.get("kind") == "recheck":
        path, media_type, name = recheck.download(service.settings.data_dir, row, format)
        return FileResponse(path, media_type=media_type, filename=name)
    mission = missions.plan_mission(session, missions.request_of(row))
    work = Path(tempfile.mkdtemp(prefix="mission-"))
    tasks.add_task(shutil.rmtree, work, True)
    files = missions.write_files(mission, work / "out", format)
    if len(files) == 1:
        return FileResponse(
            files[0], media_type=missions.FORMATS[format], filename=f"mission{row.id}.{format}"
        )
    archive = shutil.make_archive(str(work / "mission"), "zip", work / "out")
    return FileResponse(archive, media_type="application/zip", filename=f"mission{row.id}-{format}.zip")


def _in_territory(who: Principal, row: Mission) -> Mission:
    for code in row.grid_codes:
        who.require_territory(str(code), "grid")
    return row


@router.get("/{mission_id}/preview", response_model=MissionPreview)
def preview(session: ReadSession, who: CurrentUser, mission_id: IdPath) -> dict[str, object]:
    """The planned paths (one per sortie), photo points, take-off and nearby no-fly zones as GeoJSON, with a
    summary (sorties, photos, distance, flight time, altitude, camera)."""
    row = _mission(session, who, mission_id)
    request = missions.request_of(row)
    mission = missions.plan_mission(session, request)
    return missions.preview(mission, missions.no_fly_zones(session, row), request.camera)


@router.post("/{mission_id}/upload", response_model=JobRef, status_code=202)
def upload(
    service: ServiceDep, who: CurrentUser, mission_id: IdPath, body: UploadRequest, tasks: BackgroundTasks
) -> JobRef:
    """Upload a sortie with the fence and rally points to a vehicle over MAVLink and read it back (a job).

    ``sim`` starts the simulator vehicle on loopback for this upload. Poll ``/api/v1/jobs/{job_id}``: a dropped
    link or a refused upload ends the job ``failed`` with the reason.
    """
    who.require("operator")
    connection = missions.check_connection(body.connection)
    with writing(service) as session:
        _in_territory(who, _stored(session, mission_id))
        job = flights.new_job(
            session,
            who,
            "upload",
            {"mission_id": mission_id, "connection": connection, "sortie": body.sortie},
        )
    tasks.add_task(
        flights.run_upload_job,
        service,
        job_id=job.id,
        mission_id=mission_id,
        connection=connection,
        sortie=body.sortie,
    )
    return JobRef(job_id=job.id)


@cameras_router.get("", response_model=list[CameraPublic])
def list_cameras(who: CurrentUser) -> list[dict[str, object]]:
    """The camera presets to plan a mission with (sensor and focal length in mm, image size in px)."""
    return missions.cameras()
