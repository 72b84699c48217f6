"""Patrol missions over grids: plan, read, download for the vehicle or ground station."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from api import missions
from api.deps import CurrentUser, IdPath, ReadSession, ServiceDep, writing
from api.errors import NotFoundError
from api.models import Mission, Sortie

router = APIRouter(prefix="/api/v1/missions", tags=["missions"])
MissionFormat = Literal["plan", "waypoints", "kmz", "geojson", "kml"]


class MissionCreate(BaseModel):
    plan_id: int = Field(ge=1, le=2**31 - 1)
    version: int = Field(ge=1, le=2**31 - 1)
    grid_codes: list[Annotated[str, Field(pattern=r"^\d{15}$")]] = Field(min_length=1, max_length=50)
    altitude_m: float = Field(default=80.0, gt=10, le=120, description="above the take-off point")
    name: str = Field(default="patrol", min_length=1, max_length=128)


class SortiePublic(BaseModel):
    index: int
    waypoints: list[list[float]]


class MissionPublic(BaseModel):
    id: int
    name: str
    grid_codes: list[str]
    params: dict[str, float | int]
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
        body.plan_id, body.version, tuple(dict.fromkeys(body.grid_codes)), body.altitude_m, body.name
    )
    with writing(service) as session:
        row = missions.store_mission(session, who, request)
        return _public(session, row)


def _mission(session: ReadSession, mission_id: int) -> Mission:
    row = session.get(Mission, mission_id)
    if row is None:
        raise NotFoundError(f"mission {mission_id} does not exist", where={"mission_id": mission_id})
    return row


@router.get("/{mission_id}", response_model=MissionPublic)
def get_mission(session: ReadSession, who: CurrentUser, mission_id: IdPath) -> MissionPublic:
    """A mission with its sorties' waypoints (lon, lat, altitude_m)."""
    return _public(session, _mission(session, mission_id))


@router.get("/{mission_id}/download", response_class=FileResponse)
def download(
    session: ReadSession,
    who: CurrentUser,
    mission_id: IdPath,
    tasks: BackgroundTasks,
    format: Annotated[
        MissionFormat, Query(description="QGC .plan, .waypoints, DJI .kmz, GeoJSON, KML")
    ] = "plan",
) -> FileResponse:
    """The mission as a file for the ground station or vehicle (a zip when there are several sorties)."""
    row = _mission(session, mission_id)
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
