"""The simulated copter: ArduPilot's item checks, fence and battery failsafes, poses and track, raw protocol."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Iterator

import pytest

from drone.link import (
    Attitude,
    CommandRejectedError,
    ItemReached,
    LinkSettings,
    MissionType,
    Position,
    StatusText,
    Telemetry,
    VehicleLink,
    VehicleState,
    connect,
    open_connection,
)
from drone.model import MissionItem
from drone.sim import SimSettings, SimVehicle
from drone.sim.vehicle import check_item
from tests.drone.test_link import (
    HOME_LAT,
    HOME_LON,
    collect_until_landed,
    fence_square,
    square_mission,
    take_off,
    wait_for,
)

FAST = LinkSettings(connect_timeout_s=3.0, heartbeat_timeout_s=1.0, reply_timeout_s=0.5, retries=3)


def start_sim(**overrides: float) -> SimVehicle:
    settings = SimSettings(home_lat_deg=HOME_LAT, home_lon_deg=HOME_LON, speedup=100, **overrides)  # type: ignore[arg-type]
    return SimVehicle("udpin:127.0.0.1:0", settings).start()


@pytest.fixture
def sim() -> Iterator[SimVehicle]:
    vehicle = start_sim(home_altitude_amsl_m=5.0)
    yield vehicle
    vehicle.stop()


@pytest.fixture
def link(sim: SimVehicle) -> Iterator[VehicleLink]:
    with connect(f"udpout:127.0.0.1:{sim.address[1]}", FAST) as vehicle_link:
        yield vehicle_link


def waypoint(seq: int, d_lat: float, altitude_m: float = 20.0, frame: int = 3) -> MissionItem:
    return MissionItem(
        seq, 16, frame, lat_deg=round(HOME_LAT + d_lat, 7), lon_deg=HOME_LON, altitude_m=altitude_m
    )


# ------------------------------------------------------------------------------------------ item checks


@pytest.mark.parametrize(
    ("item", "result"),
    [
        (MissionItem(1, 16, 3, lat_deg=31.3, lon_deg=120.6, altitude_m=30), 0),
        (MissionItem(1, 16, 3, param4=math.nan, lat_deg=31.3, lon_deg=120.6), 0),  # NaN yaw: keep heading
        (MissionItem(1, 22, 3, param4=math.nan, altitude_m=30), 0),
        (MissionItem(1, 178, 2, param2=math.nan), 6 + 1),  # NaN param2 of a DO command
        (MissionItem(1, 206, 2, param4=math.nan), 6 + 3),  # NaN param4 outside nav items
        (MissionItem(1, 16, 3, param3=math.nan, lat_deg=31.3, lon_deg=120.6), 6 + 2),
        (MissionItem(1, 16, 3, lat_deg=91.0, lon_deg=120.6), 10),
        (MissionItem(1, 16, 3, lat_deg=31.3, lon_deg=181.0), 11),
        (MissionItem(1, 16, 4, lat_deg=31.3, lon_deg=120.6), 2),  # MAV_FRAME_LOCAL_NED
        (MissionItem(1, 5001, 0, lat_deg=31.3, lon_deg=120.6), 3),  # fence vertex in the mission list
        (MissionItem(0, 5001, 0, param1=2.0, lat_deg=31.3, lon_deg=120.6, mission_type=1), 6),
        (MissionItem(0, 5100, 3, lat_deg=31.3, lon_deg=120.6, altitude_m=30, mission_type=2), 0),
        (MissionItem(0, 16, 3, lat_deg=31.3, lon_deg=120.6, mission_type=2), 3),
    ],
)
def test_items_are_checked_as_ardupilot_checks_them(item: MissionItem, result: int) -> None:
    assert check_item(item) == result


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"home_lat_deg": 120.6, "home_lon_deg": 31.3}, "not a WGS-84"),
        ({"speedup": 0.0}, "speedup must be positive"),
        ({"speed_m_s": -1.0}, "speed_m_s must be positive"),
        ({"endurance_s": 0.0}, "endurance_s"),
    ],
)
def test_bad_settings_say_which_field(overrides: dict[str, float], words: str) -> None:
    arguments = {"home_lat_deg": HOME_LAT, "home_lon_deg": HOME_LON, **overrides}
    with pytest.raises(ValueError, match=words):
        SimSettings(**arguments)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- flight model


def test_track_and_pose_follow_the_flight_and_the_gimbal(sim: SimVehicle, link: VehicleLink) -> None:
    items = (
        *square_mission()[:2],
        MissionItem(2, 205, 2, param1=-45.0, altitude_m=2.0),  # DO_MOUNT_CONTROL: gimbal pitch -45°
        waypoint(3, 0.0005),
        MissionItem(4, 20, 2),
    )
    assert sim.track() == ()
    take_off(link, items)
    collect_until_landed(link)
    track = sim.track()
    times = [point.time_s for point in track]
    assert times == sorted(times) and len(track) > 10
    assert max(p.pose.altitude_agl_m for p in track) == pytest.approx(20.0)
    assert max(p.pose.lat_deg for p in track) == pytest.approx(HOME_LAT + 0.0005, abs=1e-7)
    northbound = [p.pose for p in track if p.pose.lat_deg > HOME_LAT + 0.0001 and p.pose.pitch_deg < 0]
    assert northbound and all(pose.gimbal_pitch_deg == -45.0 for pose in northbound)
    assert all(pose.yaw_deg == pytest.approx(0.0, abs=1.0) for pose in northbound[:3])
    assert sim.pose().altitude_amsl_m == 5.0


def test_altitude_above_sea_level_is_converted_to_above_home(sim: SimVehicle, link: VehicleLink) -> None:
    items = (*square_mission()[:2], waypoint(2, 0.0003, altitude_m=45.0, frame=0), MissionItem(3, 20, 2))
    take_off(link, items)
    collect_until_landed(link)
    at_waypoint = [
        p.pose for p in sim.track() if p.pose.lat_deg == pytest.approx(HOME_LAT + 0.0003, abs=1e-8)
    ]
    assert at_waypoint and at_waypoint[0].altitude_agl_m == pytest.approx(40.0)  # 45 m AMSL, home at 5 m


def test_do_jump_repeats_the_items_in_between(link: VehicleLink) -> None:
    items = (
        *square_mission()[:2],
        waypoint(2, 0.0002),
        waypoint(3, 0.0004),
        MissionItem(4, 177, 2, param1=2.0, param2=2.0),  # jump to item 2, twice
        MissionItem(5, 20, 2),
    )
    take_off(link, items)
    events = collect_until_landed(link)
    assert [e.seq for e in events if isinstance(e, ItemReached)] == [1, 2, 3, 2, 3, 2, 3, 5]


def test_hover_delay_takes_its_simulated_time(sim: SimVehicle, link: VehicleLink) -> None:
    items = (
        *square_mission()[:2],
        waypoint(2, 0.0003),
        MissionItem(3, 93, 2, param1=30.0, param2=-1.0, param3=-1.0, param4=-1.0),
        MissionItem(4, 20, 2),
    )
    take_off(link, items)
    collect_until_landed(link)
    there = [p.time_s for p in sim.track() if p.pose.lat_deg == pytest.approx(HOME_LAT + 0.0003, abs=1e-8)]
    assert 30.0 <= there[-1] - there[0] < 32.0


def test_mission_without_rtl_ends_hovering(sim: SimVehicle, link: VehicleLink) -> None:
    take_off(link, (*square_mission()[:2], waypoint(2, 0.0003)))
    wait_for(lambda: sim.pose().lat_deg == pytest.approx(HOME_LAT + 0.0003, abs=1e-8))
    time.sleep(0.2)  # 20 simulated seconds later it is still up there, armed
    assert sim.pose().altitude_agl_m == pytest.approx(20.0)
    assert link.state is not None and link.state.armed and link.state.mode == "AUTO"
    with pytest.raises(CommandRejectedError, match="flying"):
        link.disarm()
    link.land()
    collect_until_landed(link)
    assert sim.pose().altitude_agl_m == 0.0


def test_fence_breach_returns_to_launch(sim: SimVehicle, link: VehicleLink) -> None:
    link.upload_mission(fence_square(0.0005), MissionType.FENCE)  # ±55 m around home
    take_off(link, (*square_mission()[:2], waypoint(2, 0.002), MissionItem(3, 20, 2)))
    events = collect_until_landed(link)
    assert any(isinstance(e, StatusText) and "Fence breach" in e.text for e in events)
    assert any(isinstance(e, VehicleState) and e.mode == "RTL" for e in events)
    assert not any(isinstance(e, ItemReached) and e.seq == 2 for e in events)
    furthest = max(p.pose.lat_deg for p in sim.track())
    assert HOME_LAT + 0.0005 < furthest < HOME_LAT + 0.0006  # caught within a step of the boundary
    assert sim.pose().lat_deg == pytest.approx(HOME_LAT, abs=1e-7)


def test_arming_inside_an_exclusion_zone_is_refused(link: VehicleLink) -> None:
    link.upload_mission(fence_square(0.0002, inclusion=False), MissionType.FENCE)
    link.set_mode("GUIDED")
    with pytest.raises(CommandRejectedError, match="outside fence"):
        link.arm()


def test_low_battery_returns_to_launch() -> None:
    sim = start_sim(endurance_s=60.0, battery_failsafe_percent=40.0)
    try:
        with connect(f"udpout:127.0.0.1:{sim.address[1]}", FAST) as link:
            take_off(link, (*square_mission()[:2], waypoint(2, 0.004), MissionItem(3, 20, 2)))
            events = collect_until_landed(link)
    finally:
        sim.stop()
    assert any(isinstance(e, StatusText) and "Battery failsafe" in e.text for e in events)
    assert not any(isinstance(e, ItemReached) and e.seq == 2 for e in events)


def test_message_interval_can_switch_a_stream_off(link: VehicleLink) -> None:
    before = asyncio.run(events_for(link, 0.2))
    link.command(511, 30.0, -1.0)  # SET_MESSAGE_INTERVAL: ATTITUDE off
    time.sleep(0.05)
    after = asyncio.run(events_for(link, 0.2))
    assert any(isinstance(e, Attitude) for e in before)
    assert any(isinstance(e, Position) for e in after)
    assert not any(isinstance(e, Attitude) for e in after)


async def events_for(link: VehicleLink, seconds: float) -> list[Telemetry]:
    """The telemetry that arrives within ``seconds``."""
    seen: list[Telemetry] = []

    async def gather() -> None:
        async for event in link.telemetry():
            seen.append(event)

    task = asyncio.create_task(gather())
    await asyncio.sleep(seconds)
    task.cancel()
    return seen


# ------------------------------------------------------------------------------------- raw protocol


def test_sim_can_send_to_a_listening_ground_station() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = SimSettings(home_lat_deg=HOME_LAT, home_lon_deg=HOME_LON)
    with (
        SimVehicle(f"udpout:127.0.0.1:{port}", settings),
        connect(f"udpin:127.0.0.1:{port}", FAST) as link,
    ):
        assert link.download_mission()[0].lat_deg == HOME_LAT


def test_upload_requests_are_repeated_when_items_do_not_come(sim: SimVehicle) -> None:
    gcs = open_connection(f"udpout:127.0.0.1:{sim.address[1]}", source_system=255, source_component=190)
    try:
        gcs.mav.mission_count_send(1, 1, 3, 0)
        first = gcs.recv_match(type="MISSION_REQUEST_INT", blocking=True, timeout=2.0)
        again = gcs.recv_match(type="MISSION_REQUEST_INT", blocking=True, timeout=2.0)
        assert first is not None and again is not None and first.seq == again.seq == 0
    finally:
        gcs.close()


def test_stray_item_is_answered_with_an_error(sim: SimVehicle) -> None:
    gcs = open_connection(f"udpout:127.0.0.1:{sim.address[1]}", source_system=255, source_component=190)
    try:
        gcs.mav.mission_item_int_send(1, 1, 0, 3, 16, 0, 1, 0, 0, 0, 0, 313000000, 1206000000, 20.0, 0)
        ack = gcs.recv_match(type="MISSION_ACK", blocking=True, timeout=2.0)
        assert ack is not None and ack.type == 1  # MAV_MISSION_ERROR: no upload in progress
    finally:
        gcs.close()


def test_malformed_command_is_refused_and_the_vehicle_lives_on(sim: SimVehicle, link: VehicleLink) -> None:
    with pytest.raises(CommandRejectedError, match="bad parameter"):
        link.command(176, 1.0, math.nan)  # DO_SET_MODE with NaN for the mode number
    with pytest.raises(CommandRejectedError, match="denied"):
        link.command(511, 30.0, math.inf)  # SET_MESSAGE_INTERVAL with an infinite interval
    link.set_mode("GUIDED")
    assert link.state is not None and link.state.mode == "GUIDED"
