"""QGroundControl ``.plan`` files (JSON): mission items, geofence polygons and rally points.

QGC keeps the home position apart (``plannedHomePosition``) and numbers the items from 1; :func:`read_plan`
puts it back as item 0, so what it returns is exactly what goes over MAVLink. QGC writes NaN parameters as
``null``; :func:`read_plan` reads ``null`` as NaN in param4 of navigation items (where ArduPilot accepts it)
and as 0 elsewhere. File format: https://docs.qgroundcontrol.com/master/en/qgc-dev-guide/file_formats/plan.html
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drone.formats import MissionFileError, atomic_write, sortie_paths
from drone.items import (
    NAN_PARAM4_COMMANDS,
    Cmd,
    Frame,
    MissionType,
    check_items,
    fence_items,
    rally_items,
    renumber,
    sortie_items,
)
from drone.model import Mission, MissionItem

_FIRMWARE_ARDUPILOT = 3
_VEHICLE_QUADROTOR = 2
_ALTITUDE_MODE_RELATIVE = 1


@dataclass(frozen=True)
class PlanFile:
    """What a ``.plan`` holds, as MAVLink items: the mission (seq 0 = home), the fence and the rally points."""

    mission: tuple[MissionItem, ...]
    fence: tuple[MissionItem, ...] = ()
    rally: tuple[MissionItem, ...] = ()
    cruise_speed_m_s: float = 10.0


def write_plan(mission: Mission, path: Path) -> list[Path]:
    """Write one ``.plan`` per sortie (fence and rally points in each); returns the paths written."""
    paths = sortie_paths(Path(path), len(mission.sorties))
    fence, rally = fence_items(mission.fence), rally_items(mission.rally_points)
    files = {
        target: plan_json(
            PlanFile(sortie_items(sortie, mission), fence, rally, sortie.cruise_speed_m_s), str(target)
        ).encode("utf-8")
        for target, sortie in zip(paths, mission.sorties, strict=True)
    }
    atomic_write(files)
    return paths


def plan_json(plan: PlanFile, where: str = "<plan>") -> str:
    """The ``.plan`` JSON text of ``plan``.

    Raises:
        MissionFileError: an item has a NaN where ArduPilot rejects one, or the mission has no home item.
    """
    for items in (plan.mission, plan.fence, plan.rally):
        try:
            check_items(items, where)
        except ValueError as error:
            raise MissionFileError(str(error)) from None
    if not plan.mission:
        raise MissionFileError(f"{where}: a mission needs at least its home item (seq 0)")
    home = plan.mission[0]
    document = {
        "fileType": "Plan",
        "version": 1,
        "groundStation": "QGroundControl",
        "mission": {
            "version": 2,
            "firmwareType": _FIRMWARE_ARDUPILOT,
            "vehicleType": _VEHICLE_QUADROTOR,
            "cruiseSpeed": plan.cruise_speed_m_s,
            "hoverSpeed": 5,
            "plannedHomePosition": [home.lat_deg, home.lon_deg, home.altitude_m],
            "items": [_simple_item(item) for item in plan.mission[1:]],
        },
        "geoFence": {"version": 2, "circles": [], "polygons": _fence_polygons(plan.fence)},
        "rallyPoints": {"version": 2, "points": [[r.lat_deg, r.lon_deg, r.altitude_m] for r in plan.rally]},
    }
    return json.dumps(document, indent=4, ensure_ascii=False, allow_nan=False)


def _simple_item(item: MissionItem) -> dict[str, Any]:
    params = [item.param1, item.param2, item.param3, item.param4, item.lat_deg, item.lon_deg, item.altitude_m]
    return {
        "AMSLAltAboveTerrain": None,
        "Altitude": item.altitude_m,
        "AltitudeMode": _ALTITUDE_MODE_RELATIVE,
        "autoContinue": item.autocontinue,
        "command": item.command,
        "doJumpId": item.seq,
        "frame": item.frame,
        "params": [None if math.isnan(p) else p for p in params],
        "type": "SimpleItem",
    }


def _fence_polygons(items: tuple[MissionItem, ...]) -> list[dict[str, Any]]:
    polygons: list[dict[str, Any]] = []
    i = 0
    while i < len(items):
        count = int(items[i].param1)
        vertices = items[i : i + count]
        polygons.append(
            {
                "inclusion": items[i].command == Cmd.NAV_FENCE_POLYGON_VERTEX_INCLUSION,
                "polygon": [[v.lat_deg, v.lon_deg] for v in vertices],
                "version": 1,
            }
        )
        i += max(count, 1)
    return polygons


def read_plan(path: str | Path) -> PlanFile:
    """Read a QGroundControl ``.plan`` (ours or QGC's own) as MAVLink items.

    Raises:
        MissionFileError: the file is missing, not JSON, not a plan, or an item is malformed; the message
            names the file and the item.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissionFileError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MissionFileError(f"{path}: not a JSON .plan file: {error}") from None
    if not isinstance(document, dict) or document.get("fileType") != "Plan":
        raise MissionFileError(f"{path}: not a QGroundControl plan (fileType is not 'Plan')")
    try:
        mission = document["mission"]
        home = _home_item(mission["plannedHomePosition"])
        items = [_parse_item(raw, index, path) for index, raw in enumerate(mission["items"], start=1)]
        fence = _parse_fence(document.get("geoFence", {}).get("polygons", []))
        rally = _parse_rally(document.get("rallyPoints", {}).get("points", []))
        speed = float(mission.get("cruiseSpeed", 10.0))
    except (KeyError, TypeError, ValueError) as error:
        raise MissionFileError(f"{path}: malformed plan: {type(error).__name__} {error}") from None
    return PlanFile(renumber([home, *items]), fence, rally, speed)


def _home_item(position: list[float]) -> MissionItem:
    lat, lon, alt = (float(v) for v in position)
    return MissionItem(
        seq=0,
        command=int(Cmd.NAV_WAYPOINT),
        frame=int(Frame.GLOBAL),
        lat_deg=lat,
        lon_deg=lon,
        altitude_m=alt,
    )


def _parse_item(raw: dict[str, Any], index: int, path: Path) -> MissionItem:
    if raw.get("type") != "SimpleItem":
        raise MissionFileError(
            f"{path}: mission item {index} is a {raw.get('type')!r}; only SimpleItem is read "
            "(re-save complex items such as surveys as waypoints in QGroundControl)"
        )
    command = int(raw["command"])
    params = raw["params"]
    if len(params) != 7:
        raise MissionFileError(f"{path}: mission item {index} has {len(params)} params, expected 7")
    values = [_param(p, slot, command) for slot, p in enumerate(params)]
    return MissionItem(
        seq=index,
        command=command,
        frame=int(raw["frame"]),
        param1=values[0],
        param2=values[1],
        param3=values[2],
        param4=values[3],
        lat_deg=values[4],
        lon_deg=values[5],
        altitude_m=values[6],
        autocontinue=bool(raw.get("autoContinue", True)),
    )


def _param(value: float | None, slot: int, command: int) -> float:
    if value is None:
        return math.nan if slot == 3 and command in NAN_PARAM4_COMMANDS else 0.0
    return float(value)


def _parse_fence(polygons: list[dict[str, Any]]) -> tuple[MissionItem, ...]:
    items = []
    for polygon in polygons:
        command = (
            Cmd.NAV_FENCE_POLYGON_VERTEX_INCLUSION
            if polygon["inclusion"]
            else Cmd.NAV_FENCE_POLYGON_VERTEX_EXCLUSION
        )
        vertices = polygon["polygon"]
        items += [
            MissionItem(
                seq=0,
                command=int(command),
                frame=int(Frame.GLOBAL),
                param1=float(len(vertices)),
                lat_deg=float(lat),
                lon_deg=float(lon),
                mission_type=int(MissionType.FENCE),
            )
            for lat, lon in vertices
        ]
    return renumber(items)


def _parse_rally(points: list[list[float]]) -> tuple[MissionItem, ...]:
    items = [
        MissionItem(
            seq=0,
            command=int(Cmd.NAV_RALLY_POINT),
            frame=int(Frame.GLOBAL_RELATIVE_ALT),
            lat_deg=float(lat),
            lon_deg=float(lon),
            altitude_m=float(alt),
            mission_type=int(MissionType.RALLY),
        )
        for lat, lon, alt in points
    ]
    return renumber(items)
