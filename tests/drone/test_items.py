"""Mission → MAVLink items: commands, frames, survey triggers, photos, fence and rally, no NaN."""

from __future__ import annotations

import math

import pytest
from pymavlink.dialects.v20 import common as mavlink

from drone.cameras import PRESETS
from drone.items import Cmd, Frame, MissionType, check_items, fence_items, rally_items, sortie_items
from drone.model import GeoFencePolygon, Mission, MissionItem, Sortie, Waypoint, WaypointAction

HOME = Waypoint(120.70, 31.30, 0.0)


def _mission(waypoints: tuple[Waypoint, ...]) -> Mission:
    sortie = Sortie(0, HOME, waypoints, 8.0, 16.9, 300.0, 2000.0)
    return Mission("t", PRESETS["mavic3e"].camera, 80.0, (sortie,))


def _survey() -> Mission:
    return _mission(
        (
            Waypoint(120.701, 31.301, 80.0, WaypointAction.START_SURVEY),
            Waypoint(120.702, 31.301, 80.0, WaypointAction.STOP_SURVEY),
            Waypoint(120.702, 31.302, 80.0),
        )
    )


@pytest.mark.parametrize("member", list(Cmd))
def test_command_numbers_match_pymavlink(member: Cmd) -> None:
    assert getattr(mavlink, f"MAV_CMD_{member.name}") == member.value


def test_frames_and_mission_types_match_pymavlink() -> None:
    assert Frame.GLOBAL == mavlink.MAV_FRAME_GLOBAL
    assert Frame.MISSION == mavlink.MAV_FRAME_MISSION
    assert Frame.GLOBAL_RELATIVE_ALT == mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT
    assert MissionType.FENCE == mavlink.MAV_MISSION_TYPE_FENCE
    assert MissionType.RALLY == mavlink.MAV_MISSION_TYPE_RALLY


def test_survey_sortie_items() -> None:
    mission = _survey()
    items = sortie_items(mission.sorties[0], mission)
    commands = [it.command for it in items]
    assert [it.seq for it in items] == list(range(len(items)))
    assert items[0].command == Cmd.NAV_WAYPOINT and items[0].frame == Frame.GLOBAL and items[0].current
    assert (items[0].lat_deg, items[0].lon_deg) == (31.30, 120.70)
    assert commands[1] == Cmd.NAV_TAKEOFF and items[1].altitude_m == 80.0
    assert commands[-1] == Cmd.NAV_RETURN_TO_LAUNCH
    speed = items[commands.index(Cmd.DO_CHANGE_SPEED)]
    assert speed.param2 == 8.0
    triggers = [it for it in items if it.command == Cmd.DO_SET_CAM_TRIGG_DIST]
    assert [(t.param1, t.param3) for t in triggers] == [
        (16.9, 1.0),
        (0.0, 1.0),
    ]  # one photo at start and stop
    assert commands.count(Cmd.NAV_WAYPOINT) == 4  # home + three waypoints
    check_items(items, "test")
    assert not any(math.isnan(v) for it in items for v in (it.param1, it.param2, it.param3, it.param4))


def test_hover_photo_sets_gimbal_captures_and_waits() -> None:
    waypoint = Waypoint(
        120.701, 31.301, 40.0, WaypointAction.HOVER_PHOTO, hover_s=6.0, gimbal_pitch_deg=-45.0
    )
    mission = _mission((waypoint,))
    commands = [(it.command, it) for it in sortie_items(mission.sorties[0], mission)]
    after = [c for c, _ in commands[commands.index(next(x for x in commands if x[1].lat_deg == 31.301)) :]]
    assert after[:4] == [Cmd.NAV_WAYPOINT, Cmd.DO_MOUNT_CONTROL, Cmd.IMAGE_START_CAPTURE, Cmd.NAV_DELAY]
    mount = next(it for c, it in commands[4:] if c == Cmd.DO_MOUNT_CONTROL)
    assert mount.param1 == -45.0
    delay = next(it for c, it in commands if c == Cmd.NAV_DELAY)
    assert delay.param1 == 6.0


def test_fence_items_count_vertices_per_polygon() -> None:
    fence = (
        GeoFencePolygon(((120.0, 31.0), (120.1, 31.0), (120.1, 31.1), (120.0, 31.1)), inclusion=True),
        GeoFencePolygon(((120.05, 31.05), (120.06, 31.05), (120.06, 31.06)), inclusion=False),
    )
    items = fence_items(fence)
    assert [it.command for it in items] == [5001] * 4 + [5002] * 3
    assert [it.param1 for it in items] == [4.0] * 4 + [3.0] * 3
    assert all(it.mission_type == MissionType.FENCE for it in items)
    assert [it.seq for it in items] == list(range(7))
    assert (items[1].lon_deg, items[1].lat_deg) == (120.1, 31.0)


def test_rally_items() -> None:
    items = rally_items((Waypoint(120.7, 31.3, 30.0), Waypoint(120.8, 31.3, 35.0)))
    assert [(it.command, it.mission_type, it.altitude_m) for it in items] == [
        (5100, 2, 30.0),
        (5100, 2, 35.0),
    ]


def test_nan_is_refused_except_in_param4_of_navigation_items() -> None:
    check_items([MissionItem(seq=0, command=16, frame=3, param4=math.nan)], "ok")
    with pytest.raises(ValueError, match=r"item 3 .*param1"):
        check_items([MissionItem(seq=3, command=16, frame=3, param1=math.nan)], "bad")
    with pytest.raises(ValueError, match="param4"):
        check_items([MissionItem(seq=0, command=178, frame=2, param4=math.nan)], "bad")
