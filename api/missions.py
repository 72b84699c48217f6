"""Patrol missions over grids of a stored plan: planned by :func:`drone.planner.plan_grids`, kept in the
database (mission, sorties with their waypoints), written in every format :mod:`drone.formats` knows, previewed
as GeoJSON for the operator's map, and uploaded to a vehicle over MAVLink (:mod:`drone.link`).

Planning is deterministic, so a download, preview or upload re-plans from the stored parameters and gets the
same mission.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit import record
from api.errors import InputError, NotFoundError
from api.models import Mission, PlanVersion, Sortie, Zone
from api.plans import get_plan, grids_by_code, load_plan
from api.security import Principal
from drone.cameras import PRESETS, preset
from drone.coverage import MissionPlanError
from drone.formats import MissionFileError, write_mission
from drone.items import fence_items, rally_items, sortie_items
from drone.link import LinkError, LinkSettings, MissionType, connect
from drone.model import Mission as DroneMission
from drone.model import MissionItem, Waypoint
from drone.model import Sortie as DroneSortie
from drone.planner import MissionSettings, plan_grids
from drone.sim import SimSettings, SimVehicle
from drone.simsource import mission_poses

#: Download formats: file extension → media type.
FORMATS = {
    "plan": "application/json",
    "waypoints": "text/plain",
    "kmz": "application/vnd.google-earth.kmz",
    "geojson": "application/geo+json",
    "kml": "application/vnd.google-earth.kml+xml",
}


#: A vehicle connection: the project's simulator, or a MAVLink endpoint (see :func:`drone.link.connect`).
CONNECTION = re.compile(r"^(sim|(udp|udpin|udpout|tcp):[A-Za-z0-9.\-]+:\d{1,5}|serial:/[^:\s]+:\d{3,7})$")
#: No-fly zones this far (degrees) around the flown paths are shown in a preview.
PREVIEW_MARGIN_DEG = 0.005


@dataclass(frozen=True)
class MissionRequest:
    """What an operator asks for: grids of a plan version, a camera, an altitude, overlaps and a name."""

    plan_id: int
    version: int
    grid_codes: tuple[str, ...]
    altitude_m: float
    name: str
    camera: str = "mavic3e"
    front_overlap: float = 0.8
    side_overlap: float = 0.7

    def settings(self) -> MissionSettings:
        """The planner settings of this request; an unknown camera is an :class:`InputError`."""
        if self.camera not in PRESETS:
            raise InputError(
                f"unknown camera {self.camera!r}; known cameras: {', '.join(sorted(PRESETS))}",
                where={"field": "camera"},
            )
        try:
            return MissionSettings(
                camera=preset(self.camera).camera,
                altitude_m=self.altitude_m,
                front_overlap=self.front_overlap,
                side_overlap=self.side_overlap,
            )
        except (MissionPlanError, ValueError) as error:
            raise InputError(f"cannot plan this mission: {error}", where={"field": "altitude_m"}) from None


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
            settings=request.settings(),
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
        params={
            "plan_id": request.plan_id,
            "version": request.version,
            "altitude_m": request.altitude_m,
            "camera": request.camera,
            "front_overlap": request.front_overlap,
            "side_overlap": request.side_overlap,
        },
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
    """The request a stored coverage mission was planned from.

    Raises:
        InputError: the mission is a re-check mission (``params.kind == "recheck"``), planned from case points
            rather than grids; its files come from ``/api/v1/cases/recheck-missions/{id}/download``.
    """
    if row.params.get("kind") == "recheck":
        raise InputError(
            f"mission {row.id} is a re-check mission of open cases, not a coverage patrol; download it from "
            f"/api/v1/cases/recheck-missions/{row.id}/download / 复查任务请从案件复查下载",
            where={"mission_id": row.id},
        )
    return MissionRequest(
        plan_id=int(row.params["plan_id"]),
        version=int(row.params["version"]),
        grid_codes=tuple(row.grid_codes),
        altitude_m=float(row.params["altitude_m"]),
        name=row.name,
        camera=str(row.params.get("camera", "mavic3e")),
        front_overlap=float(row.params.get("front_overlap", 0.8)),
        side_overlap=float(row.params.get("side_overlap", 0.7)),
    )


def no_fly_zones(session: Session, row: Mission) -> gpd.GeoDataFrame | None:
    """The no-fly zones of the district a stored mission's plan belongs to."""
    return _no_fly(session, get_plan(session, int(row.params["plan_id"])).district_id)


def write_files(mission: DroneMission, folder: Path, fmt: str) -> list[Path]:
    """Write ``mission`` as ``fmt`` into ``folder`` (one file per sortie for per-sortie formats)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return write_mission(mission, folder / f"mission.{fmt}")
    except MissionFileError as error:
        raise InputError(str(error), where={"field": "format"}) from None


# --- preview ---------------------------------------------------------------------------------------------


def preview(mission: DroneMission, no_fly: gpd.GeoDataFrame | None, camera_key: str) -> dict[str, Any]:
    """The mission as a GeoJSON FeatureCollection for a map, with a ``summary``.

    Features carry ``kind``: ``path`` (one LineString per sortie, from take-off back to it), ``photo`` (each
    trigger point), ``takeoff`` and ``no_fly`` (zones near the paths).
    """
    features: list[dict[str, Any]] = []
    photos = 0
    for sortie in mission.sorties:
        features.append(_path_feature(sortie))
        points = _photo_points(mission, sortie.index)
        photos += len(points)
        features += [_feature("Point", [lon, lat], kind="photo", sortie=sortie.index) for lon, lat in points]
    homes = {(s.home.lon_deg, s.home.lat_deg) for s in mission.sorties}
    features += [_feature("Point", [lon, lat], kind="takeoff") for lon, lat in sorted(homes)]
    features += _no_fly_features(no_fly, features)
    summary = {
        "sorties": len(mission.sorties),
        "photos": photos,
        "distance_m": round(sum(s.distance_m for s in mission.sorties), 1),
        "flight_time_s": round(sum(s.estimated_duration_s for s in mission.sorties), 1),
        "altitude_m": mission.altitude_m,
        "camera": {"id": camera_key, "name": mission.camera.name},
    }
    return {"type": "FeatureCollection", "features": features, "summary": summary}


def _feature(geometry_type: str, coordinates: Any, **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": geometry_type, "coordinates": coordinates},
        "properties": properties,
    }


def _path_feature(sortie: DroneSortie) -> dict[str, Any]:
    home = [sortie.home.lon_deg, sortie.home.lat_deg]
    line = [home, *([w.lon_deg, w.lat_deg] for w in sortie.waypoints), home]
    return _feature(
        "LineString",
        line,
        kind="path",
        sortie=sortie.index,
        flight_time_s=round(sortie.estimated_duration_s, 1),
        distance_m=round(sortie.distance_m, 1),
    )


def _photo_points(mission: DroneMission, index: int) -> list[tuple[float, float]]:
    one = replace(mission, sorties=tuple(s for s in mission.sorties if s.index == index))
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return [(pose.lon_deg, pose.lat_deg) for _, pose in mission_poses(one, start=start)]


def _no_fly_features(no_fly: gpd.GeoDataFrame | None, shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if no_fly is None or not shown:
        return []
    coordinates = [
        c
        for f in shown
        for c in (f["geometry"]["coordinates"] if f["geometry"]["type"] == "LineString" else [])
    ]
    if not coordinates:
        return []
    lons, lats = [c[0] for c in coordinates], [c[1] for c in coordinates]
    area = shapely.box(min(lons), min(lats), max(lons), max(lats)).buffer(PREVIEW_MARGIN_DEG)
    near = no_fly[no_fly.geometry.intersects(area)]
    return [
        {
            "type": "Feature",
            "geometry": shapely.geometry.mapping(geom),
            "properties": {"kind": "no_fly", "zone_id": zid},
        }
        for zid, geom in zip(near["zone_id"], near.geometry, strict=True)
    ]


def cameras() -> list[dict[str, Any]]:
    """The camera presets an operator chooses from."""
    return [
        {
            "id": key,
            "name": p.camera.name,
            "sensor_width_mm": p.camera.sensor_width_mm,
            "sensor_height_mm": p.camera.sensor_height_mm,
            "focal_length_mm": p.camera.focal_length_mm,
            "image_width_px": p.camera.image_width_px,
            "image_height_px": p.camera.image_height_px,
        }
        for key, p in PRESETS.items()
    ]


# --- upload to a vehicle ---------------------------------------------------------------------------------


class UploadError(RuntimeError):
    """The vehicle did not take the mission, or gave back something else; the message says why."""


def check_connection(connection: str) -> str:
    """``connection`` when it is ``sim`` or a MAVLink endpoint; an :class:`InputError` otherwise."""
    if not CONNECTION.match(connection):
        raise InputError(
            f"connection {connection!r} is not understood; use sim, udp:HOST:PORT, tcp:HOST:PORT or "
            "serial:DEVICE:BAUD (e.g. tcp:127.0.0.1:5760, serial:/dev/ttyUSB0:57600)",
            where={"field": "connection"},
        )
    return connection


def upload_to_vehicle(
    mission: DroneMission, connection: str, *, sortie: int = 0, connect_timeout_s: float = 10.0
) -> dict[str, int]:
    """Upload one sortie, the fence and the rally points, read each back and compare.

    Returns the items uploaded per list (``mission`` without the home slot, ``fence``, ``rally``).

    Raises:
        UploadError: the sortie does not exist, the link failed, the vehicle refused, or the read-back differs.
    """
    if not 0 <= sortie < len(mission.sorties):
        raise UploadError(f"the mission has {len(mission.sorties)} sortie(s); there is no sortie {sortie}")
    chosen = mission.sorties[sortie]
    parts = {
        MissionType.MISSION: sortie_items(chosen, mission),
        MissionType.FENCE: fence_items(mission.fence),
        MissionType.RALLY: rally_items(mission.rally_points),
    }
    with _vehicle(connection, chosen.home) as url:
        try:
            with connect(url, LinkSettings(connect_timeout_s=connect_timeout_s)) as link:
                counts = {}
                for kind, items in parts.items():
                    if items:
                        link.upload_mission(items, kind)
                        _verify(kind, items, link.download_mission(kind))
                        counts[kind.name.lower()] = len(items) - (1 if kind is MissionType.MISSION else 0)
        except (LinkError, OSError, ValueError) as error:
            raise UploadError(f"link {connection}: {error}") from error
    return counts


@contextmanager
def _vehicle(connection: str, home: Waypoint) -> Iterator[str]:
    """The URL to connect to: ``connection`` itself, or a simulator vehicle started on loopback for ``sim``."""
    if connection != "sim":
        yield connection
        return
    vehicle = SimVehicle(
        "udpin:127.0.0.1:0", SimSettings(home_lat_deg=home.lat_deg, home_lon_deg=home.lon_deg)
    )
    vehicle.start()
    try:
        yield f"udpout:127.0.0.1:{vehicle.address[1]}"
    finally:
        vehicle.stop()


def _verify(kind: MissionType, sent: tuple[MissionItem, ...], back: tuple[MissionItem, ...]) -> None:
    skip = 1 if kind is MissionType.MISSION else 0  # ArduPilot keeps its own home in slot 0
    if len(back) != len(sent) or not all(map(_same_item, sent[skip:], back[skip:])):
        raise UploadError(
            f"the {kind.name.lower()} read back from the vehicle differs from what was sent "
            f"({len(back)} items back, {len(sent)} sent) / 上传校验失败"
        )


def _same_item(sent: MissionItem, back: MissionItem) -> bool:
    """Equal as far as MAVLink carries it: params and altitude as float32, lat/lon in 1e-7 degrees."""

    def close(a: float, b: float, tolerance: float) -> bool:
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=tolerance)

    header = (sent.seq, sent.command, sent.frame, sent.mission_type)
    params = ("param1", "param2", "param3", "param4", "altitude_m")
    return (
        header == (back.seq, back.command, back.frame, back.mission_type)
        and all(close(getattr(sent, name), getattr(back, name), 1e-6) for name in params)
        and close(sent.lat_deg, back.lat_deg, 1.5e-7)
        and close(sent.lon_deg, back.lon_deg, 1.5e-7)
    )
