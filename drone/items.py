"""Mission → MAVLink mission items (what goes over the link and into ``.plan``/``.waypoints`` files).

Each sortie becomes one mission: the home slot (seq 0, which ArduPilot overwrites with its own home), take-off,
speed, gimbal straight down, the waypoints with distance-triggered photos switched on and off
(``DO_SET_CAM_TRIGG_DIST``, each time with one photo at once, so a leg's photos span it end to end), single photos at a gimbal pitch with an optional hover (``NAV_DELAY``), and
return-to-launch. Fences and rally points are separate missions (mission types 1 and 2).

ArduPilot rejects NaN parameters except ``param4`` of navigation items, so nothing here writes NaN; every
unused parameter is 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from enum import IntEnum

from drone.model import GeoFencePolygon, Mission, MissionItem, Sortie, Waypoint, WaypointAction


class Cmd(IntEnum):
    """The MAV_CMD values used here (numbers from the MAVLink common message set)."""

    NAV_WAYPOINT = 16
    NAV_RETURN_TO_LAUNCH = 20
    NAV_TAKEOFF = 22
    NAV_DELAY = 93
    DO_CHANGE_SPEED = 178
    DO_MOUNT_CONTROL = 205
    DO_SET_CAM_TRIGG_DIST = 206
    IMAGE_START_CAPTURE = 2000
    NAV_FENCE_POLYGON_VERTEX_INCLUSION = 5001
    NAV_FENCE_POLYGON_VERTEX_EXCLUSION = 5002
    NAV_RALLY_POINT = 5100


class Frame(IntEnum):
    """MAV_FRAME values: absolute (home slot, fences), no position (DO commands), relative to home."""

    GLOBAL = 0
    MISSION = 2
    GLOBAL_RELATIVE_ALT = 3


class MissionType(IntEnum):
    """MAV_MISSION_TYPE values."""

    MISSION = 0
    FENCE = 1
    RALLY = 2


#: Navigation commands whose param4 may be NaN on ArduPilot (waypoint, loiters, land, take-off).
NAN_PARAM4_COMMANDS = frozenset({16, 17, 18, 19, 21, 22, 31})
_MOUNT_MODE_MAVLINK_TARGETING = 2.0


def sortie_items(sortie: Sortie, mission: Mission) -> tuple[MissionItem, ...]:
    """The MAVLink mission of one sortie, seq 0 being the home slot."""
    home = sortie.home
    raw: list[MissionItem] = [
        _item(Cmd.NAV_WAYPOINT, Frame.GLOBAL, lat=home.lat_deg, lon=home.lon_deg, alt=home.altitude_m),
        _item(
            Cmd.NAV_TAKEOFF,
            Frame.GLOBAL_RELATIVE_ALT,
            lat=home.lat_deg,
            lon=home.lon_deg,
            alt=mission.altitude_m,
        ),
        _item(Cmd.DO_CHANGE_SPEED, Frame.MISSION, p1=1.0, p2=sortie.cruise_speed_m_s, p3=-1.0),
        _mount(-90.0),
    ]
    for waypoint in sortie.waypoints:
        raw += _waypoint_items(waypoint, sortie.trigger_distance_m)
    raw.append(_item(Cmd.NAV_RETURN_TO_LAUNCH, Frame.MISSION))
    return renumber(raw)


def _waypoint_items(waypoint: Waypoint, trigger_distance_m: float) -> list[MissionItem]:
    items = [
        _item(
            Cmd.NAV_WAYPOINT,
            Frame.GLOBAL_RELATIVE_ALT,
            lat=waypoint.lat_deg,
            lon=waypoint.lon_deg,
            alt=waypoint.altitude_m,
        )
    ]
    if waypoint.action is WaypointAction.START_SURVEY:
        items.append(_item(Cmd.DO_SET_CAM_TRIGG_DIST, Frame.MISSION, p1=trigger_distance_m, p3=1.0))
    elif waypoint.action is WaypointAction.STOP_SURVEY:
        items.append(_item(Cmd.DO_SET_CAM_TRIGG_DIST, Frame.MISSION, p3=1.0))  # stop, with one last photo
    elif waypoint.action in (WaypointAction.PHOTO, WaypointAction.HOVER_PHOTO):
        items += [_mount(waypoint.gimbal_pitch_deg), _item(Cmd.IMAGE_START_CAPTURE, Frame.MISSION, p3=1.0)]
        if waypoint.action is WaypointAction.HOVER_PHOTO and waypoint.hover_s > 0:
            items.append(_item(Cmd.NAV_DELAY, Frame.MISSION, p1=waypoint.hover_s, p2=-1.0, p3=-1.0, p4=-1.0))
    return items


def _mount(pitch_deg: float) -> MissionItem:
    return _item(Cmd.DO_MOUNT_CONTROL, Frame.MISSION, p1=pitch_deg, alt=_MOUNT_MODE_MAVLINK_TARGETING)


def fence_items(fence: Iterable[GeoFencePolygon]) -> tuple[MissionItem, ...]:
    """Fence polygons as MAVLink fence items (mission type 1): one item per vertex, param1 the vertex count."""
    raw = []
    for polygon in fence:
        command = (
            Cmd.NAV_FENCE_POLYGON_VERTEX_INCLUSION
            if polygon.inclusion
            else Cmd.NAV_FENCE_POLYGON_VERTEX_EXCLUSION
        )
        count = float(len(polygon.vertices))
        raw += [
            _item(command, Frame.GLOBAL, p1=count, lat=lat, lon=lon, mission_type=MissionType.FENCE)
            for lon, lat in polygon.vertices
        ]
    return renumber(raw)


def rally_items(points: Iterable[Waypoint]) -> tuple[MissionItem, ...]:
    """Rally points as MAVLink rally items (mission type 2), altitude relative to home."""
    raw = [
        _item(
            Cmd.NAV_RALLY_POINT,
            Frame.GLOBAL_RELATIVE_ALT,
            lat=p.lat_deg,
            lon=p.lon_deg,
            alt=p.altitude_m,
            mission_type=MissionType.RALLY,
        )
        for p in points
    ]
    return renumber(raw)


def renumber(items: Sequence[MissionItem]) -> tuple[MissionItem, ...]:
    """The items with ``seq`` 0, 1, 2, … and ``current`` set on the first only."""
    return tuple(
        MissionItem(
            seq=i,
            command=it.command,
            frame=it.frame,
            param1=it.param1,
            param2=it.param2,
            param3=it.param3,
            param4=it.param4,
            lat_deg=it.lat_deg,
            lon_deg=it.lon_deg,
            altitude_m=it.altitude_m,
            current=i == 0,
            autocontinue=it.autocontinue,
            mission_type=it.mission_type,
        )
        for i, it in enumerate(items)
    )


def check_items(items: Iterable[MissionItem], where: str) -> None:
    """Raise ``ValueError`` naming the item if a parameter is NaN/infinite where ArduPilot would reject it."""
    for item in items:
        values = {
            "param1": item.param1,
            "param2": item.param2,
            "param3": item.param3,
            "param4": item.param4,
            "lat": item.lat_deg,
            "lon": item.lon_deg,
            "alt": item.altitude_m,
        }
        for name, value in values.items():
            if math.isfinite(value):
                continue
            if name == "param4" and math.isnan(value) and item.command in NAN_PARAM4_COMMANDS:
                continue
            raise ValueError(f"{where}: item {item.seq} (command {item.command}) has {name} = {value}")


def _item(
    command: Cmd,
    frame: Frame,
    *,
    p1: float = 0.0,
    p2: float = 0.0,
    p3: float = 0.0,
    p4: float = 0.0,
    lat: float = 0.0,
    lon: float = 0.0,
    alt: float = 0.0,
    mission_type: MissionType = MissionType.MISSION,
) -> MissionItem:
    return MissionItem(
        seq=0,
        command=int(command),
        frame=int(frame),
        param1=p1,
        param2=p2,
        param3=p3,
        param4=p4,
        lat_deg=lat,
        lon_deg=lon,
        altitude_m=alt,
        mission_type=int(mission_type),
    )
