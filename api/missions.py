"""Patrol missions over grids of a stored plan: planned by :func:`drone.planner.plan_grids`, kept in the
database (mission, sorties with their waypoints), and written in every format :mod:`drone.formats` knows.

Planning is deterministic, so a download re-plans from the stored parameters and gets the same mission.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit import record
from api.errors import InputError, NotFoundError
from api.models import Mission, PlanVersion, Sortie, Zone
from api.plans import get_plan, grids_by_code, load_plan
from api.security import Principal
from drone.coverage import MissionPlanError
from drone.formats import MissionFileError, write_mission
from drone.model import Mission as DroneMission
from drone.planner import MissionSettings, plan_grids

#: Download formats: file extension → media type.
FORMATS = {
    "plan": "application/json",
    "waypoints": "text/plain",
    "kmz": "application/vnd.google-earth.kmz",
    "geojson": "application/geo+json",
    "kml": "application/vnd.google-earth.kml+xml",
}


@dataclass(frozen=True)
class MissionRequest:
    """What an operator asks for: grids of a plan version, an altitude and a name."""

    plan_id: int
    version: int
    grid_codes: tuple[str, ...]
    altitude_m: float
    name: str


def plan_mission(session: Session, request: MissionRequest) -> DroneMission:
    """Plan the mission of ``request`` (no-fly zones of the district are avoided)."""
    plan = get_plan(session, request.plan_id)
    version = session.scalars(
        select(PlanVersion).where(PlanVersion.plan_id == plan.id, PlanVersion.number == request.version)
    ).first()
    if version is None:
        raise NotFoundError(f"plan {plan.id} has no version {request.version}", where={"field": "version"})
    no_fly = _no_fly(session, plan.district_id)
    try:
        mission = plan_grids(
            load_plan(session, version),
            list(request.grid_codes),
            settings=MissionSettings(altitude_m=request.altitude_m),
            no_fly=no_fly,
        )
    except MissionPlanError as error:
        raise InputError(f"cannot plan this mission: {error}", where={"field": "grid_codes"}) from None
    return mission


def _no_fly(session: Session, district_id: int) -> gpd.GeoDataFrame | None:
    zones = session.scalars(select(Zone).where(Zone.district_id == district_id, Zone.kind == "no_fly")).all()
    if not zones:
        return None
    return gpd.GeoDataFrame(
        {"zone_id": [z.zone_id for z in zones]}, geometry=[z.geom for z in zones], crs=4326
    )


def store_mission(session: Session, who: Principal, request: MissionRequest) -> Mission:
    """Plan and store a mission over grids in the caller's territory."""
    version = session.scalars(
        select(PlanVersion).where(
            PlanVersion.plan_id == request.plan_id, PlanVersion.number == request.version
        )
    ).first()
    if version is not None:
        found = grids_by_code(session, version.id, set(request.grid_codes))
        for code in request.grid_codes:
            who.require_territory(found[code].community_code if code in found else code, "grid")
    mission = plan_mission(session, request)
    row = Mission(
        name=request.name,
        grid_codes=list(request.grid_codes),
        params={"plan_id": request.plan_id, "version": request.version, "altitude_m": request.altitude_m},
        created_by=who.username,
    )
    session.add(row)
    session.flush()
    for sortie in mission.sorties:
        session.add(Sortie(mission_id=row.id, index=sortie.index, waypoints=_waypoints(sortie)))
    record(
        session,
        who,
        action="plan_mission",
        entity="mission",
        entity_id=row.id,
        after={"grid_codes": list(request.grid_codes), "sorties": len(mission.sorties)},
    )
    return row


def _waypoints(sortie: Any) -> list[Any]:
    return [[w.lon_deg, w.lat_deg, w.altitude_m] for w in sortie.waypoints]


def request_of(row: Mission) -> MissionRequest:
    """The request a stored mission was planned from."""
    return MissionRequest(
        plan_id=int(row.params["plan_id"]),
        version=int(row.params["version"]),
        grid_codes=tuple(row.grid_codes),
        altitude_m=float(row.params["altitude_m"]),
        name=row.name,
    )


def write_files(mission: DroneMission, folder: Path, fmt: str) -> list[Path]:
    """Write ``mission`` as ``fmt`` into ``folder`` (one file per sortie for per-sortie formats)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return write_mission(mission, folder / f"mission.{fmt}")
    except MissionFileError as error:
        raise InputError(str(error), where={"field": "format"}) from None
