"""The vehicle link against the simulated copter over loopback UDP and TCP (real MAVLink on real sockets)."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from drone.link import (
    Battery,
    CommandRejectedError,
    ConnectionFailedError,
    ItemReached,
    LinkLost,
    LinkLostError,
    LinkSettings,
    LinkTimeoutError,
    MissionProgress,
    MissionTransferError,
    MissionType,
    NotReadyError,
    Position,
    StatusText,
    Telemetry,
    VehicleLink,
    VehicleState,
    command_result_text,
    connect,
    mission_result_text,
    open_connection,
    read_messages,
)
from drone.model import MissionItem
from drone.sim import SimSettings, SimVehicle

HOME_LAT, HOME_LON = 31.3, 120.6
FAST = LinkSettings(connect_timeout_s=3.0, heartbeat_timeout_s=1.0, reply_timeout_s=0.5, retries=3)


def square_mission(side_deg: float = 0.0004, altitude_m: float = 20.0) -> tuple[MissionItem, ...]:
    """Home, take-off, three corners of a ~40 m square, return to launch."""
    corners = [(side_deg, 0.0), (side_deg, side_deg), (0.0, side_deg)]
    items = [
        MissionItem(0, 16, 0, lat_deg=HOME_LAT, lon_deg=HOME_LON),
        MissionItem(1, 22, 3, altitude_m=altitude_m),
        MissionItem(2, 178, 2, param1=1.0, param2=8.0, param3=-1.0),
    ]
    for d_lat, d_lon in corners:
        lat, lon = round(HOME_LAT + d_lat, 7), round(HOME_LON + d_lon, 7)
        items.append(MissionItem(len(items), 16, 3, lat_deg=lat, lon_deg=lon, altitude_m=altitude_m))
    items.append(MissionItem(len(items), 20, 2))
    return tuple(items)


def fence_square(half_deg: float, inclusion: bool = True) -> tuple[MissionItem, ...]:
    command = 5001 if inclusion else 5002
    ring = [(-half_deg, -half_deg), (-half_deg, half_deg), (half_deg, half_deg), (half_deg, -half_deg)]
    return tuple(
        MissionItem(
            i,
            command,
            0,
            param1=4.0,
            lat_deg=round(HOME_LAT + d_lat, 7),
            lon_deg=round(HOME_LON + d_lon, 7),
            mission_type=1,
        )
        for i, (d_lat, d_lon) in enumerate(ring)
    )


@pytest.fixture
def sim() -> Iterator[SimVehicle]:
    settings = SimSettings(
        home_lat_deg=HOME_LAT, home_lon_deg=HOME_LON, home_altitude_amsl_m=5.0, speedup=100
    )
    with SimVehicle("udpin:127.0.0.1:0", settings) as vehicle:
        yield vehicle


@pytest.fixture
def link(sim: SimVehicle) -> Iterator[VehicleLink]:
    with connect(f"udpout:127.0.0.1:{sim.address[1]}", FAST) as vehicle_link:
        yield vehicle_link


def collect_until_landed(link: VehicleLink, timeout_s: float = 15.0) -> list[Telemetry]:
    """Every telemetry event from now until the vehicle disarms after having been armed."""

    async def follow() -> list[Telemetry]:
        seen: list[Telemetry] = []
        flew = False
        async for event in link.telemetry():
            seen.append(event)
            if isinstance(event, VehicleState):
                flew = flew or event.armed
                if flew and not event.armed:
                    return seen
        return seen

    return asyncio.run(asyncio.wait_for(follow(), timeout_s))


def take_off(link: VehicleLink, items: tuple[MissionItem, ...]) -> None:
    link.upload_mission(items)
    link.set_mode("GUIDED")
    link.arm()
    link.start_mission()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------- connecting


def test_connect_finds_the_vehicle_and_its_mode(link: VehicleLink) -> None:
    assert link.target_system == 1
    assert link.state is not None and link.state.mode == "STABILIZE" and not link.state.armed
    assert link.request_streams() == 6  # position, attitude, system status, battery, mission, landed state


@pytest.mark.parametrize(
    "url", ["udp:127.0.0.1", "http://127.0.0.1:14550", "tcp:host:99999", "serial:", "14550"]
)
def test_malformed_url_says_what_is_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="udpin:HOST:PORT"):
        connect(url, FAST)


def test_no_vehicle_fails_with_a_clear_error() -> None:
    with pytest.raises(ConnectionFailedError, match="no heartbeat from a vehicle"):
        connect("udpin:127.0.0.1:0", LinkSettings(connect_timeout_s=0.3))


def test_tcp_refused_is_a_connection_error() -> None:
    with SimVehicle("tcp:127.0.0.1:0", SimSettings(home_lat_deg=HOME_LAT, home_lon_deg=HOME_LON)) as sim:
        port = sim.address[1]
    with pytest.raises(ConnectionFailedError, match=f"tcp:127.0.0.1:{port}"):
        connect(f"tcp:127.0.0.1:{port}", FAST)


def test_serial_link_over_a_pseudo_terminal() -> None:
    """pyserial on a pty: the vehicle end writes MAVLink heartbeats of an ArduCopter in GUIDED."""
    vehicle_end, link_end = os.openpty()
    vehicle = mavlink2.MAVLink(None, srcSystem=3, srcComponent=1)
    stop = threading.Event()

    def heartbeats() -> None:
        while not stop.is_set():
            os.write(vehicle_end, vehicle.heartbeat_encode(2, 3, 1, 4, 3).pack(vehicle))
            time.sleep(0.05)

    beating = threading.Thread(target=heartbeats)
    beating.start()
    try:
        with connect(f"serial:{os.ttyname(link_end)}:57600", FAST) as link:
            assert link.target_system == 3
            assert link.state == VehicleState(armed=False, mode="GUIDED", system_status=3)
    finally:
        stop.set()
        beating.join()
        os.close(vehicle_end)
        os.close(link_end)


def test_missing_serial_device_is_a_connection_error() -> None:
    with pytest.raises(ConnectionFailedError, match="cannot open serial:/dev/nonexistent-skygrid"):
        connect("serial:/dev/nonexistent-skygrid:57600", FAST)


def test_result_codes_in_words() -> None:
    assert "coordinate frame" in mission_result_text(2)
    assert "param1" in mission_result_text(6)
    assert "denied" in command_result_text(2)
    assert "unknown" in mission_result_text(99) and "unknown" in command_result_text(99)


# ----------------------------------------------------------------------------------- mission protocol


def test_upload_then_download_gives_the_mission_back_with_home_in_slot_0(link: VehicleLink) -> None:
    items = square_mission()
    link.upload_mission(items)
    back = link.download_mission()
    assert back[1:] == items[1:]
    assert (back[0].lat_deg, back[0].lon_deg, back[0].altitude_m) == (HOME_LAT, HOME_LON, 5.0)


def test_fence_and_rally_travel_as_their_own_mission_types(link: VehicleLink) -> None:
    fence = fence_square(0.001) + tuple(
        MissionItem(4 + i, v.command, v.frame, 4.0, lat_deg=v.lat_deg, lon_deg=v.lon_deg, mission_type=1)
        for i, v in enumerate(fence_square(0.0001, inclusion=False))
    )
    rally = (MissionItem(0, 5100, 3, lat_deg=31.3002, lon_deg=120.6002, altitude_m=30.0, mission_type=2),)
    link.upload_mission(square_mission())
    link.upload_mission(fence, MissionType.FENCE)
    link.upload_mission(rally, MissionType.RALLY)
    assert link.download_mission(MissionType.FENCE) == fence
    assert link.download_mission(MissionType.RALLY) == rally
    assert len(link.download_mission()) == len(square_mission())
    link.clear_mission(MissionType.FENCE)
    assert link.download_mission(MissionType.FENCE) == ()


def test_upload_over_tcp() -> None:
    settings = SimSettings(home_lat_deg=HOME_LAT, home_lon_deg=HOME_LON)
    with (
        SimVehicle("tcp:127.0.0.1:0", settings) as sim,
        connect(f"tcp:127.0.0.1:{sim.address[1]}", FAST) as link,
    ):
        link.upload_mission(square_mission())
        assert link.download_mission()[1:] == square_mission()[1:]


@pytest.mark.parametrize(
    ("bad_item", "seq", "words"),
    [
        (MissionItem(2, 16, 3, param1=math.nan, lat_deg=31.3, lon_deg=120.6, altitude_m=20), 2, "param1"),
        (MissionItem(2, 31000, 3, lat_deg=31.3, lon_deg=120.6), 2, "command not supported"),
        (MissionItem(2, 16, 8, lat_deg=31.3, lon_deg=120.6), 2, "coordinate frame not supported"),
        (MissionItem(2, 16, 3, lat_deg=31.3, lon_deg=120.6, altitude_m=math.nan), 2, "altitude"),
    ],
)
def test_vehicle_refusal_is_reported_in_words(
    link: VehicleLink, bad_item: MissionItem, seq: int, words: str
) -> None:
    items = (*square_mission()[:2], bad_item)
    with pytest.raises(MissionTransferError, match=words) as refused:
        link.upload_mission(items)
    assert refused.value.seq == seq
    assert refused.value.mission_type is MissionType.MISSION


def test_nan_param4_is_accepted_where_ardupilot_accepts_it(link: VehicleLink) -> None:
    items = (
        *square_mission()[:2],
        MissionItem(2, 16, 3, param4=math.nan, lat_deg=31.3003, lon_deg=120.6, altitude_m=20),
    )
    link.upload_mission(items)
    assert math.isnan(link.download_mission()[2].param4)


def test_too_many_items_is_no_space(link: VehicleLink) -> None:
    fence = tuple(
        MissionItem(i, 5003, 0, param1=50.0, lat_deg=31.3, lon_deg=120.6, mission_type=1) for i in range(100)
    )
    with pytest.raises(MissionTransferError, match="does not fit"):
        link.upload_mission(fence, MissionType.FENCE)


def test_fence_polygon_missing_a_vertex_is_refused(link: VehicleLink) -> None:
    with pytest.raises(MissionTransferError, match="generic error"):
        link.upload_mission(fence_square(0.001)[:3], MissionType.FENCE)


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ((MissionItem(1, 16, 3),), "seq 1"),
        ((MissionItem(0, 16, 3, mission_type=1),), "mission type 1"),
    ],
)
def test_misnumbered_items_are_refused_before_sending(
    link: VehicleLink, items: tuple[MissionItem, ...], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        link.upload_mission(items)


# ---------------------------------------------------------------------------------------------- flying


def test_fly_a_mission_to_landing(sim: SimVehicle, link: VehicleLink) -> None:
    items = square_mission()
    take_off(link, items)
    events = collect_until_landed(link)
    reached = [e.seq for e in events if isinstance(e, ItemReached)]
    assert reached == [1, 3, 4, 5, 6]  # navigation items only, in order, RTL last
    texts = [e.text for e in events if isinstance(e, StatusText)]
    assert "Mission complete" in texts
    highest = max(e.relative_altitude_m for e in events if isinstance(e, Position))
    assert highest == pytest.approx(20.0, abs=0.5)
    batteries = [e for e in events if isinstance(e, Battery)]
    assert batteries[-1].remaining_percent is not None and batteries[-1].remaining_percent < 100
    assert any(isinstance(e, MissionProgress) and e.total == len(items) - 1 for e in events)
    landed = sim.pose()
    assert landed.altitude_agl_m == 0.0
    assert (landed.lat_deg, landed.lon_deg) == pytest.approx((HOME_LAT, HOME_LON), abs=1e-7)


def test_start_needs_an_armed_vehicle(link: VehicleLink) -> None:
    link.upload_mission(square_mission())
    with pytest.raises(NotReadyError, match="not armed"):
        link.start_mission()


def test_arming_in_auto_is_refused_with_the_autopilots_reason(link: VehicleLink) -> None:
    link.upload_mission(square_mission())
    link.set_mode("AUTO")
    with pytest.raises(CommandRejectedError, match="Mode not armable") as refused:
        link.arm()
    assert refused.value.command == 400 and refused.value.result == 4


def test_mission_without_takeoff_is_refused_on_the_ground(link: VehicleLink) -> None:
    items = square_mission()
    no_takeoff = (items[0], MissionItem(1, 16, 3, lat_deg=31.3003, lon_deg=120.6, altitude_m=20))
    link.upload_mission(no_takeoff)
    link.set_mode("GUIDED")
    link.arm()
    with pytest.raises(CommandRejectedError, match="Missing Takeoff Cmd"):
        link.start_mission()


def test_unknown_mode_name_is_refused_locally(link: VehicleLink) -> None:
    with pytest.raises(ValueError, match="unknown flight mode 'HOVER'"):
        link.set_mode("HOVER")


def test_pause_holds_position_and_resume_finishes(sim: SimVehicle, link: VehicleLink) -> None:
    take_off(link, square_mission(side_deg=0.002))
    wait_for(lambda: sim.pose().altitude_agl_m > 19.5)
    link.pause()
    time.sleep(0.1)
    held = sim.pose()
    time.sleep(0.2)  # 20 simulated seconds
    assert (sim.pose().lat_deg, sim.pose().lon_deg, sim.pose().altitude_agl_m) == (
        held.lat_deg,
        held.lon_deg,
        held.altitude_agl_m,
    )
    with pytest.raises(CommandRejectedError, match="failed"):
        link.pause()  # already paused
    link.resume()
    events = collect_until_landed(link, timeout_s=20.0)
    assert [e.seq for e in events if isinstance(e, ItemReached)][-1] == 6


def test_return_to_launch_mid_mission_lands_at_home(sim: SimVehicle, link: VehicleLink) -> None:
    take_off(link, square_mission(side_deg=0.003))
    wait_for(lambda: sim.pose().lat_deg > HOME_LAT + 0.001)
    link.return_to_launch()
    events = collect_until_landed(link, timeout_s=20.0)
    assert any(isinstance(e, VehicleState) and e.mode == "RTL" for e in events)
    assert not any(isinstance(e, ItemReached) and e.seq == 6 for e in events)
    landed = sim.pose()
    assert (landed.lat_deg, landed.lon_deg, landed.altitude_agl_m) == pytest.approx(
        (HOME_LAT, HOME_LON, 0.0), abs=1e-7
    )


def test_land_command_lands_where_the_vehicle_is(sim: SimVehicle, link: VehicleLink) -> None:
    take_off(link, square_mission(side_deg=0.003))
    wait_for(lambda: sim.pose().lat_deg > HOME_LAT + 0.001)
    link.land()
    collect_until_landed(link, timeout_s=20.0)
    assert sim.pose().altitude_agl_m == 0.0 and sim.pose().lat_deg > HOME_LAT + 0.001


# --------------------------------------------------------------------------------------- losing the link


def test_link_loss_is_an_event_and_fails_waiting_commands(sim: SimVehicle, link: VehicleLink) -> None:
    async def first_loss() -> LinkLost:
        async for event in link.telemetry():
            if isinstance(event, LinkLost):
                return event
        raise AssertionError("stream ended without LinkLost")

    sim.stop()
    lost = asyncio.run(asyncio.wait_for(first_loss(), 5.0))
    assert lost.silent_s > FAST.heartbeat_timeout_s
    assert link.lost
    with pytest.raises(LinkLostError, match="link lost"):
        link.download_mission()


def test_tcp_peer_closing_shows_as_link_loss() -> None:
    settings = SimSettings(home_lat_deg=HOME_LAT, home_lon_deg=HOME_LON)
    sim = SimVehicle("tcp:127.0.0.1:0", settings).start()
    with connect(f"tcp:127.0.0.1:{sim.address[1]}", FAST) as link:
        sim.stop()
        wait_for(lambda: link.lost, timeout_s=5.0)


def test_silent_vehicle_times_out_after_the_retries() -> None:
    """A vehicle that sends heartbeats but never answers the mission protocol."""
    mute = open_connection("udpin:127.0.0.1:0", source_system=7, source_component=1)
    stop = threading.Event()

    def heartbeats() -> None:
        while not stop.is_set():
            for _ in read_messages(mute, 0.05):
                pass  # learn the ground station's address, answer nothing
            mute.mav.heartbeat_send(2, 3, 0, 0, 3)

    beating = threading.Thread(target=heartbeats)
    beating.start()
    settings = LinkSettings(connect_timeout_s=3.0, reply_timeout_s=0.1, retries=2)
    try:
        with connect(f"udpout:127.0.0.1:{mute.port.getsockname()[1]}", settings) as link:
            assert link.target_system == 7
            with pytest.raises(LinkTimeoutError, match="mission upload: no answer from the vehicle after 2"):
                link.upload_mission(square_mission())
    finally:
        stop.set()
        beating.join()
        mute.close()


def test_our_connections_speak_mavlink2() -> None:
    conn = open_connection("udpin:127.0.0.1:0", source_system=255, source_component=190)
    try:
        packet = conn.mav.heartbeat_encode(6, 8, 0, 0, 4).pack(conn.mav)
        assert packet[0] == 0xFD  # MAVLink 2 start byte: mission_type and other extensions travel
    finally:
        conn.close()
