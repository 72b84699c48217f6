"""A simulated multicopter behind a real MAVLink endpoint, speaking the subset of ArduCopter SITL that SkyGrid uses.

What it does, as ArduCopter does it:

- HEARTBEAT as a quadrotor with the ArduPilot autopilot and ArduCopter's custom modes (STABILIZE, GUIDED, LOITER,
  AUTO, RTL, LAND);
- mission, fence and rally upload/download with the MAVLink mission protocol (item 0 is home; items are checked
  as ArduPilot checks them: supported command and frame, NaN only in param4 of waypoint/loiter/land/takeoff);
- arming only in GUIDED, LOITER or STABILIZE and inside the fence; ``MAV_CMD_MISSION_START`` switches to AUTO and
  takes off (AUTO alone does not leave the ground); a mission armed on the ground must start with a takeoff;
- AUTO flight with a kinematic model (horizontal speed, climb and descent rates, 0.5 m/s final descent), at a
  configurable speed-up; pause/continue, RTL (climb to RTL altitude, return, land), LAND; landing disarms;
- GLOBAL_POSITION_INT, ATTITUDE, SYS_STATUS, BATTERY_STATUS (draining with flight time), MISSION_CURRENT,
  MISSION_ITEM_REACHED, EXTENDED_SYS_STATE, HOME_POSITION and STATUSTEXT, at rates in simulated time as SITL
  sends them (capped at the loop rate); SET_MESSAGE_INTERVAL is honoured;
- fence breach or low battery → RTL.

Terrain is flat at the home altitude. Camera and servo commands in a mission are accepted and have no effect,
except the gimbal pitch (DO_MOUNT_CONTROL, DO_GIMBAL_MANAGER_PITCHYAW), which shows in :meth:`SimVehicle.pose`.
The simulated camera renders frames from :meth:`SimVehicle.pose` and :meth:`SimVehicle.track`.

Example::

    with SimVehicle("udpin:127.0.0.1:14550", SimSettings(home_lat_deg=31.3, home_lon_deg=120.6, speedup=20)):
        ...  # connect with drone.link.connect("udpout:127.0.0.1:14550")
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from drone.link import (
    COPTER_MODES,
    mission_item_from_message,
    open_connection,
    read_messages,
    send_mission_item,
)
from drone.model import MissionItem, Pose

__all__ = ["SimSettings", "SimVehicle", "TrackPoint"]

MavMessage = Any

_M_PER_DEG = 111318.84502145034  # ArduPilot's LATLON_TO_M scaled to degrees
_NAN_PARAM4_OK = frozenset({16, 17, 19, 21, 22})  # waypoint, loiter unlimited/time, land, takeoff
_NAV_COMMANDS = frozenset({16, 17, 19, 20, 21, 22, 82, 93})
_DO_COMMANDS = frozenset(
    {112, 113, 114, 115, 177, 178, 183, 189, 195, 197, 201, 203, 205, 206, 214, 1000, 2000, 2001, 2500, 2501}
)
_FENCE_COMMANDS = frozenset({5000, 5001, 5002, 5003, 5004})
_RALLY_COMMANDS = frozenset({5100})
_MISSION_FRAMES = frozenset({0, 2, 3, 5, 6, 10, 11})
_FENCE_FRAMES = frozenset({0, 3, 5, 6})
_MAX_ITEMS = {0: 724, 1: 84, 2: 10}  # ArduCopter's storage on a typical board
_ARMABLE_MODES = frozenset({"STABILIZE", "GUIDED", "LOITER"})
_SIM_MODES = frozenset({"STABILIZE", "GUIDED", "LOITER", "AUTO", "RTL", "LAND"})
_MODE_NAMES = {number: name for name, number in COPTER_MODES.items()}
_LAND_FINAL_M = 10.0  # below this ArduCopter descends at LAND_SPEED

# MAV_MISSION_RESULT and MAV_RESULT numbers used here
_ACCEPTED, _ERROR, _UNSUPPORTED_FRAME, _UNSUPPORTED, _NO_SPACE = 0, 1, 2, 3, 4
_INVALID_PARAM1, _INVALID_SEQUENCE, _CANCELLED = 6, 13, 15
_RESULT_ACCEPTED, _RESULT_DENIED, _RESULT_UNSUPPORTED, _RESULT_FAILED = 0, 2, 3, 4

# MISSION_STATE (MISSION_CURRENT.mission_state)
_NO_MISSION, _NOT_STARTED, _ACTIVE, _PAUSED, _COMPLETE = 1, 2, 3, 4, 5

# Telemetry streams: name → (message id, default interval s)
_STREAMS: dict[str, tuple[int, float]] = {
    "position": (33, 0.1),
    "attitude": (30, 0.1),
    "sys_status": (1, 1.0),
    "battery": (147, 1.0),
    "mission_current": (42, 1.0),
    "extended_sys_state": (245, 1.0),
}


@dataclass(frozen=True)
class SimSettings:
    """Where the simulated copter starts and how it flies (ArduCopter defaults where they exist)."""

    home_lat_deg: float
    home_lon_deg: float
    home_altitude_amsl_m: float = 0.0
    speed_m_s: float = 10.0  # WPNAV_SPEED
    climb_rate_m_s: float = 2.5  # WPNAV_SPEED_UP
    descent_rate_m_s: float = 1.5  # WPNAV_SPEED_DN
    land_speed_m_s: float = 0.5  # LAND_SPEED, below 10 m
    rtl_altitude_m: float = 15.0  # RTL_ALT
    waypoint_radius_m: float = 2.0  # WPNAV_RADIUS
    speedup: float = 1.0
    endurance_s: float = 1500.0  # hover/cruise time on a full battery
    battery_capacity_mah: float = 5000.0
    battery_cells: int = 4
    battery_failsafe_percent: float = 10.0
    system_id: int = 1
    tick_s: float = 0.02  # wall-clock period of the simulation loop
    max_step_s: float = 0.05  # longest simulated step of the kinematic model

    def __post_init__(self) -> None:
        if not (-90.0 <= self.home_lat_deg <= 90.0 and -180.0 <= self.home_lon_deg <= 180.0):
            raise ValueError(
                f"home {self.home_lat_deg}, {self.home_lon_deg} is not a WGS-84 latitude, longitude in degrees"
            )
        for name in ("speed_m_s", "climb_rate_m_s", "descent_rate_m_s", "land_speed_m_s", "speedup"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SimSettings.{name} must be positive, got {getattr(self, name)}")
        if not self.endurance_s > 0 or not self.battery_capacity_mah > 0:
            raise ValueError("SimSettings.endurance_s and battery_capacity_mah must be positive")


@dataclass(frozen=True)
class TrackPoint:
    """One recorded point of the flown track: simulated seconds since start and the pose then."""

    time_s: float
    pose: Pose


# ------------------------------------------------------------------------------------------ mission checks


def check_item(item: MissionItem) -> int:
    """The MAV_MISSION_RESULT ArduPilot would give ``item`` on upload (0 = accepted)."""
    commands, frames = {
        0: (_NAV_COMMANDS | _DO_COMMANDS, _MISSION_FRAMES),
        1: (_FENCE_COMMANDS, _FENCE_FRAMES),
        2: (_RALLY_COMMANDS, _FENCE_FRAMES),
    }.get(item.mission_type, (frozenset(), frozenset()))
    if item.command not in commands:
        return _UNSUPPORTED
    if item.frame not in frames and item.command not in _DO_COMMANDS:
        return _UNSUPPORTED_FRAME
    for index, value in enumerate((item.param1, item.param2, item.param3, item.param4)):
        nan_ok = index == 3 and item.command in _NAN_PARAM4_OK
        if math.isnan(value) and not nan_ok:
            return _INVALID_PARAM1 + index
    if item.command in (5001, 5002) and item.param1 < 3:
        return _INVALID_PARAM1
    if not abs(item.lat_deg) <= 90.0:
        return 10
    if not abs(item.lon_deg) <= 180.0:
        return 11
    return 12 if math.isnan(item.altitude_m) else _ACCEPTED


def _fence_problem(items: Sequence[MissionItem]) -> str | None:
    """Why a fence upload is inconsistent (a polygon with fewer vertices than it declares), or None."""
    index = 0
    while index < len(items):
        item = items[index]
        if item.command not in (5001, 5002):
            index += 1
            continue
        count = int(item.param1)
        group = items[index : index + count]
        if len(group) < count or any(v.command != item.command or int(v.param1) != count for v in group):
            return f"Fence: polygon at item {index} declares {count} vertices but has fewer"
        index += count
    return None


# ------------------------------------------------------------------------------------------- flight model


@dataclass
class _Frame:
    """Local tangent frame at home: metres north/east, altitude above home."""

    lat0_deg: float
    lon0_deg: float

    def to_local(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        north = (lat_deg - self.lat0_deg) * _M_PER_DEG
        east = (lon_deg - self.lon0_deg) * _M_PER_DEG * math.cos(math.radians(self.lat0_deg))
        return north, east

    def to_global(self, north_m: float, east_m: float) -> tuple[float, float]:
        lat = self.lat0_deg + north_m / _M_PER_DEG
        lon = self.lon0_deg + east_m / (_M_PER_DEG * math.cos(math.radians(self.lat0_deg)))
        return lat, lon


class _Fence:
    """Fence polygons and circles in local metres; ``breached`` when outside every inclusion or inside an exclusion."""

    def __init__(self, items: Sequence[MissionItem], frame: _Frame) -> None:
        self.inclusions: list[BaseGeometry] = []
        self.exclusions: list[BaseGeometry] = []
        index = 0
        while index < len(items):
            item = items[index]
            if item.command in (5001, 5002):
                count = int(item.param1)
                ring = [frame.to_local(v.lat_deg, v.lon_deg)[::-1] for v in items[index : index + count]]
                self._add(item.command == 5001, Polygon(ring))
                index += count
                continue
            if item.command in (5003, 5004):
                east_north = frame.to_local(item.lat_deg, item.lon_deg)[::-1]
                self._add(item.command == 5003, Point(east_north).buffer(item.param1))
            index += 1

    def _add(self, inclusion: bool, shape: BaseGeometry) -> None:
        (self.inclusions if inclusion else self.exclusions).append(shape)

    def breached(self, north_m: float, east_m: float) -> bool:
        here = Point(east_m, north_m)
        if self.inclusions and not any(shape.covers(here) for shape in self.inclusions):
            return True
        return any(shape.contains(here) for shape in self.exclusions)


@dataclass
class _Events:
    """What the flight model wants said on the link after a step."""

    texts: list[tuple[int, str]] = field(default_factory=list)
    reached: list[int] = field(default_factory=list)

    def say(self, severity: int, text: str) -> None:
        self.texts.append((severity, text))


class _Flight:
    """The copter: kinematic state, flight modes, mission execution, battery and fence. No I/O."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.frame = _Frame(settings.home_lat_deg, settings.home_lon_deg)
        self.events = _Events()
        self.north_m = self.east_m = self.alt_m = 0.0
        self.velocity_ned = (0.0, 0.0, 0.0)
        self.yaw_deg = 0.0
        self.gimbal_pitch_deg = -90.0
        self.time_s = 0.0
        self.consumed_mah = 0.0
        self.armed = False
        self.on_ground = True
        self.mode = "STABILIZE"
        self.speed_m_s = settings.speed_m_s
        self.lists: dict[int, list[MissionItem]] = {0: [], 1: [], 2: []}
        self.fence: _Fence | None = None
        self.current = 0
        self.mission_state = _NO_MISSION
        self.auto_armed = False
        self._item_started = False
        self._target: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._hold_until_s = 0.0
        self._hold_delay_s = 0.0
        self._rtl_phase = ""
        self._jumps: dict[int, int] = {}

    # ---------------------------------------------------------------------------------- mission lists

    def home_item(self) -> MissionItem:
        return MissionItem(
            seq=0,
            command=16,
            frame=0,
            lat_deg=self.settings.home_lat_deg,
            lon_deg=self.settings.home_lon_deg,
            altitude_m=self.settings.home_altitude_amsl_m,
        )

    def stored(self, mission_type: int) -> list[MissionItem]:
        """The list as a download returns it: for the mission, item 0 is home."""
        items = self.lists[mission_type]
        if mission_type != 0:
            return items
        return [self.home_item(), *items[1:]]

    def install(self, mission_type: int, items: list[MissionItem]) -> None:
        self.lists[mission_type] = items
        if mission_type == 1:
            self.fence = _Fence(items, self.frame) if items else None
        if mission_type == 0:
            self.current = 0
            self.mission_state = _NOT_STARTED if len(items) > 1 else _NO_MISSION
            self._jumps.clear()
            if self.mode == "AUTO" and not self.on_ground:
                self._start_or_resume()

    # ------------------------------------------------------------------------------------ commands

    def arm(self) -> str | None:
        """Arm, or the reason why not (as ArduCopter words it)."""
        if self.armed:
            return None
        if self.mode not in _ARMABLE_MODES:
            return "Arm: Mode not armable"
        if self.fence is not None and self.fence.breached(self.north_m, self.east_m):
            return "PreArm: Vehicle outside fence"
        if self.remaining_percent() <= self.settings.battery_failsafe_percent:
            return "PreArm: Battery below minimum arming capacity"
        self.armed = True
        self.auto_armed = False
        return None

    def disarm(self, force: bool) -> str | None:
        if not self.on_ground and not force:
            return "Disarm: vehicle is flying"
        self.alt_m, self.on_ground = 0.0, True  # a forced disarm in the air ends on the ground
        self._disarm()
        return None

    def set_mode(self, mode: str) -> str | None:
        """Change flight mode, or the reason why not."""
        if mode not in _SIM_MODES:
            return f"Mode change to {mode} not supported by the simulator"
        if mode == "AUTO":
            problem = self._auto_problem()
            if problem is not None:
                return problem
        if self.mode == "AUTO" and mode != "AUTO" and self.mission_state == _ACTIVE:
            self.mission_state = _PAUSED
        self.mode = mode
        self._rtl_phase = ""
        if mode == "AUTO" and not self.on_ground:
            self._start_or_resume()
        return None

    def _auto_problem(self) -> str | None:
        if len(self.lists[0]) < 2:
            return "Auto: no mission"
        first = self.lists[0][1]
        if self.armed and self.on_ground and first.command != 22:
            return "Auto: Missing Takeoff Cmd"
        return None

    def mission_start(self) -> str | None:
        problem = self.set_mode("AUTO")
        if problem is not None:
            return problem
        self.auto_armed = True
        self._start_or_resume()
        return None

    def _start_or_resume(self) -> None:
        if self.mission_state == _ACTIVE:
            return
        if self.mission_state in (_NOT_STARTED, _COMPLETE) or self.current == 0:
            self._jumps.clear()
            self.go_to(1)
        self.mission_state = _ACTIVE

    def pause(self, resume: bool) -> bool:
        if self.mode != "AUTO":
            return False
        if resume and self.mission_state == _PAUSED:
            self.mission_state = _ACTIVE
            return True
        if not resume and self.mission_state == _ACTIVE:
            self.mission_state = _PAUSED
            self._hold()
            return True
        return False

    # --------------------------------------------------------------------------------------- stepping

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds of simulated time."""
        self.time_s += dt
        self.consumed_mah += self.current_a() * dt / 3.6
        if not self.armed:
            self.velocity_ned = (0.0, 0.0, 0.0)
            return
        self._step_mode(dt)
        self._check_failsafes()

    def _step_mode(self, dt: float) -> None:
        if self.mode == "AUTO" and self.mission_state == _ACTIVE and (self.auto_armed or not self.on_ground):
            self._step_auto(dt)
        elif self.mode == "RTL":
            self._step_rtl(dt)
        elif self.mode == "LAND":
            self._step_land(dt)
        else:
            self._hold()

    def _step_auto(self, dt: float) -> None:
        if self.current >= len(self.lists[0]):
            return
        item = self.lists[0][self.current]
        if self._execute(item, dt):
            if item.command in _NAV_COMMANDS:
                self.events.reached.append(item.seq)
                self.events.say(6, f"Reached command #{item.seq}")
            self._advance()

    def _execute(self, item: MissionItem, dt: float) -> bool:
        """Fly ``item`` for ``dt`` seconds; True when it is complete."""
        if not self._item_started:
            self._begin(item)
        if item.command == 20:
            return self._step_rtl(dt)
        if item.command == 21:
            return self._step_land(dt) if self._arrive(dt) else False
        if item.command in _NAV_COMMANDS:
            return self._arrive(dt) and self.time_s >= self._hold_until_s and item.command != 17
        return True

    def _begin(self, item: MissionItem) -> None:
        self._item_started = True
        self._rtl_phase = ""
        north, east = self.north_m, self.east_m
        if (item.lat_deg, item.lon_deg) != (0.0, 0.0) and item.command not in (22, 93):
            north, east = self.frame.to_local(item.lat_deg, item.lon_deg)
        altitude = self._relative_altitude(item) if item.command in (16, 17, 19, 22, 82) else self.alt_m
        self._target = (north, east, altitude)
        self._hold_until_s = math.inf
        if item.command in (16, 19, 82, 93):
            self._hold_delay_s = max(item.param1, 0.0)
        else:
            self._hold_delay_s = 0.0
        self._do_command(item)
        if item.command == 22:
            self.on_ground = False

    def _relative_altitude(self, item: MissionItem) -> float:
        if item.frame in (0, 5):  # above mean sea level
            return item.altitude_m - self.settings.home_altitude_amsl_m
        return item.altitude_m  # relative to home; terrain frames: flat terrain at home

    def _do_command(self, item: MissionItem) -> None:
        if item.command == 178 and item.param2 > 0:
            self.speed_m_s = item.param2
        elif item.command in (205, 1000):
            self.gimbal_pitch_deg = max(-90.0, min(30.0, item.param1))

    def _arrive(self, dt: float) -> bool:
        """Fly towards the item's target; once there, start its hold timer. True when at the target."""
        if not self._move_towards(self._target, dt):
            return False
        if math.isinf(self._hold_until_s):
            self._hold_until_s = self.time_s + self._hold_delay_s
        return True

    def _advance(self) -> None:
        following = self.current + 1
        items = self.lists[0]
        for _ in range(len(items)):  # follow DO_JUMPs, at most once round the list
            if following >= len(items) or items[following].command != 177:
                break
            jump = items[following]
            done = self._jumps.get(following, 0)
            if jump.param2 < 0 or done < jump.param2:
                self._jumps[following] = done + 1
                following = int(jump.param1)
            else:
                following += 1
        if following >= len(items):
            self._finish_mission()
        else:
            self.go_to(following)

    def go_to(self, seq: int) -> None:
        self.current = seq
        self._item_started = False

    def _finish_mission(self) -> None:
        self.mission_state = _COMPLETE
        self.events.say(6, "Mission complete")
        self._hold()
        if self.on_ground:
            self._disarm()

    def _step_rtl(self, dt: float) -> bool:
        """Climb to the RTL altitude, fly home, land. True once landed."""
        if not self._rtl_phase:
            self._rtl_phase = "climb"
            self._target = (self.north_m, self.east_m, max(self.alt_m, self.settings.rtl_altitude_m))
        if self._rtl_phase == "climb" and self._move_towards(self._target, dt):
            self._rtl_phase = "return"
            self._target = (0.0, 0.0, self._target[2])
        if self._rtl_phase == "return" and self._move_towards(self._target, dt):
            self._rtl_phase = "land"
        return self._rtl_phase == "land" and self._step_land(dt)

    def _step_land(self, dt: float) -> bool:
        """Descend where the vehicle is; on touchdown disarm. True once landed."""
        rate = self.settings.descent_rate_m_s if self.alt_m > _LAND_FINAL_M else self.settings.land_speed_m_s
        self.alt_m = max(0.0, self.alt_m - rate * dt)
        self.velocity_ned = (0.0, 0.0, rate)
        if self.alt_m > 0.0:
            return False
        self.on_ground = True
        self.velocity_ned = (0.0, 0.0, 0.0)
        self._disarm()
        return True

    def _disarm(self) -> None:
        if self.armed:
            self.armed = False
            self.auto_armed = False
            self.events.say(6, "Disarming motors")

    def _hold(self) -> None:
        self.velocity_ned = (0.0, 0.0, 0.0)

    def _move_towards(self, target: tuple[float, float, float], dt: float) -> bool:
        """Fly a straight line to ``target`` within the speed and climb/descent limits. True on arrival."""
        d_north, d_east, d_up = target[0] - self.north_m, target[1] - self.east_m, target[2] - self.alt_m
        horizontal = math.hypot(d_north, d_east)
        vertical_rate = self.settings.climb_rate_m_s if d_up > 0 else self.settings.descent_rate_m_s
        needed_s = max(horizontal / self.speed_m_s, abs(d_up) / vertical_rate)
        if needed_s <= dt:
            self.north_m, self.east_m, self.alt_m = target
            self.velocity_ned = (0.0, 0.0, 0.0)
            return True
        share = dt / needed_s
        self.north_m += d_north * share
        self.east_m += d_east * share
        self.alt_m += d_up * share
        self.velocity_ned = (d_north / needed_s, d_east / needed_s, -d_up / needed_s)
        if horizontal > 0.5:
            self.yaw_deg = math.degrees(math.atan2(d_east, d_north)) % 360.0
        self.on_ground = self.on_ground and self.alt_m <= 0.0
        return False

    def _check_failsafes(self) -> None:
        if self.on_ground or self.mode in ("RTL", "LAND"):
            return
        if self.fence is not None and self.fence.breached(self.north_m, self.east_m):
            self.events.say(2, "Fence breach: returning to launch")
            self.set_mode("RTL")
        elif self.remaining_percent() <= self.settings.battery_failsafe_percent:
            self.events.say(2, "Battery failsafe: returning to launch")
            self.set_mode("RTL")

    # ------------------------------------------------------------------------------------ readings

    def current_a(self) -> float:
        cruise_a = self.settings.battery_capacity_mah * 3.6 / self.settings.endurance_s
        if not self.armed:
            return 0.3
        return cruise_a * (0.1 if self.on_ground else 1.0)

    def remaining_percent(self) -> float:
        return max(0.0, 100.0 * (1.0 - self.consumed_mah / self.settings.battery_capacity_mah))

    def voltage_v(self) -> float:
        return self.settings.battery_cells * (3.3 + 0.9 * self.remaining_percent() / 100.0)

    def lat_lon(self) -> tuple[float, float]:
        return self.frame.to_global(self.north_m, self.east_m)

    def pitch_deg(self) -> float:
        ratio = min(1.0, math.hypot(self.velocity_ned[0], self.velocity_ned[1]) / self.settings.speed_m_s)
        return -15.0 * ratio if ratio > 0.0 else 0.0  # nose down in forward flight

    def pose(self) -> Pose:
        lat, lon = self.lat_lon()
        return Pose(
            lat_deg=lat,
            lon_deg=lon,
            altitude_agl_m=self.alt_m,
            altitude_amsl_m=self.settings.home_altitude_amsl_m + self.alt_m,
            yaw_deg=self.yaw_deg,
            pitch_deg=self.pitch_deg(),
            gimbal_yaw_deg=self.yaw_deg,
            gimbal_pitch_deg=self.gimbal_pitch_deg,
        )


# ------------------------------------------------------------------------------------------ MAVLink side


@dataclass
class _Upload:
    """A mission upload in progress (the vehicle asks for items one by one)."""

    mission_type: int
    count: int
    peer: tuple[int, int]
    items: list[MissionItem] = field(default_factory=list)
    last_request_s: float = 0.0
    started_s: float = 0.0


_REQUEST_RESEND_S = 1.0
_UPLOAD_TIMEOUT_S = 8.0


class SimVehicle:
    """The simulated copter on a MAVLink endpoint. ``start()`` (or ``with``) runs it on a background thread.

    Args:
        url: where to listen: ``udpin:HOST:PORT`` (a ground station sends to it with ``udpout:``),
            ``udpout:HOST:PORT`` (it sends to a ground station listening with ``udpin:``), ``tcp:HOST:PORT`` or
            ``tcpin:HOST:PORT`` (listens; ground stations connect with ``tcp:``, as to ArduPilot SITL).
            Port 0 picks a free port; :attr:`address` tells which.
        settings: home, speeds, speed-up and battery.
    """

    def __init__(self, url: str, settings: SimSettings) -> None:
        self.url = url
        self.settings = settings
        self._flight = _Flight(settings)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pose = self._flight.pose()
        self._track: list[TrackPoint] = []
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._upload: _Upload | None = None
        self._peers: set[tuple[int, int]] = set()
        self._intervals = {name: interval for name, (_, interval) in _STREAMS.items()}
        self._next_send = dict.fromkeys(_STREAMS, 0.0)
        self._handlers: dict[str, Callable[[MavMessage], None]] = {
            "MISSION_COUNT": self._on_mission_count,
            "MISSION_ITEM_INT": self._on_mission_item,
            "MISSION_REQUEST_LIST": self._on_request_list,
            "MISSION_REQUEST_INT": self._on_request_item,
            "MISSION_REQUEST": self._on_request_item,
            "MISSION_CLEAR_ALL": self._on_clear_all,
            "MISSION_SET_CURRENT": self._on_set_current,
            "COMMAND_LONG": self._on_command,
            "SET_MODE": self._on_set_mode,
        }

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> SimVehicle:
        """Open the endpoint and start simulating."""
        scheme, _, rest = self.url.partition(":")
        listen_url = {"tcp": "tcpin", "udp": "udpin"}.get(scheme, scheme) + ":" + rest
        self._conn = open_connection(listen_url, source_system=self.settings.system_id, source_component=1)
        self._thread = threading.Thread(target=self._run, name=f"sim-vehicle {self.url}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop simulating and close the endpoint (ground stations see the link go silent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> SimVehicle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the endpoint is bound to (useful with port 0)."""
        sock = getattr(self._conn, "listen", None) or self._conn.port
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    # -------------------------------------------------------------------------------------- readings

    def pose(self) -> Pose:
        """The vehicle's current pose (thread-safe; altitude AGL over flat terrain at the home altitude)."""
        with self._lock:
            return self._pose

    def track(self) -> tuple[TrackPoint, ...]:
        """Every pose flown while armed, one per simulation step (``max_step_s``), with its simulated time."""
        with self._lock:
            return tuple(self._track)

    # ---------------------------------------------------------------------------------------- the loop

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self._simulate((now - last) * self.settings.speedup)
            last = now
            self._check_upload(now)
            self._send_events()
            self._send_streams(now)
            for msg in read_messages(self._conn, self.settings.tick_s):
                self._handle(msg)
            self._send_events()

    def _simulate(self, sim_dt: float) -> None:
        steps = max(1, math.ceil(sim_dt / self.settings.max_step_s))
        flown: list[TrackPoint] = []
        for _ in range(steps):
            armed = self._flight.armed
            self._flight.step(sim_dt / steps)
            if armed or self._flight.armed:  # the touchdown that disarms is on the track too
                flown.append(TrackPoint(time_s=self._flight.time_s, pose=self._flight.pose()))
        pose = self._flight.pose()
        with self._lock:
            self._pose = pose
            self._track.extend(flown)

    def _handle(self, msg: MavMessage) -> None:
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        if msg.get_type() == "HEARTBEAT" and peer not in self._peers:
            self._peers.add(peer)
            self._send_heartbeat()  # greet a new ground station at once instead of at the next 1 Hz beat
        target = getattr(msg, "target_system", None)
        if target not in (None, 0, self.settings.system_id):
            return
        handler = self._handlers.get(msg.get_type())
        if handler is not None:
            handler(msg)

    # ------------------------------------------------------------------------------- mission upload

    def _on_mission_count(self, msg: MavMessage) -> None:
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        mission_type = int(msg.mission_type)
        if mission_type not in _MAX_ITEMS:
            self._mav.mission_ack_send(*peer, _UNSUPPORTED, mission_type)
        elif msg.count > _MAX_ITEMS[mission_type]:
            self._mav.mission_ack_send(*peer, _NO_SPACE, mission_type)
        elif msg.count == 0:
            self._flight.install(mission_type, [])
            self._mav.mission_ack_send(*peer, _ACCEPTED, mission_type)
        else:
            now = time.monotonic()
            self._upload = _Upload(mission_type, int(msg.count), peer, started_s=now)
            self._request_next(now)

    def _request_next(self, now: float) -> None:
        upload = self._upload
        assert upload is not None
        upload.last_request_s = now
        self._mav.mission_request_int_send(*upload.peer, len(upload.items), upload.mission_type)

    def _on_mission_item(self, msg: MavMessage) -> None:
        upload = self._upload
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        if upload is None or int(msg.mission_type) != upload.mission_type:
            self._mav.mission_ack_send(*peer, _ERROR, int(msg.mission_type))
            return
        expected = len(upload.items)
        if msg.seq < expected:
            return  # a repeat of an item already stored: the ground station missed our request
        item = mission_item_from_message(msg)
        result = _INVALID_SEQUENCE if msg.seq > expected else check_item(item)
        if result != _ACCEPTED:
            self._abort_upload(result)
            return
        upload.items.append(item)
        if len(upload.items) < upload.count:
            self._request_next(time.monotonic())
        else:
            self._finish_upload(upload)

    def _finish_upload(self, upload: _Upload) -> None:
        self._upload = None
        problem = _fence_problem(upload.items) if upload.mission_type == 1 else None
        if problem is not None:
            self._text(3, problem)
            self._mav.mission_ack_send(*upload.peer, _ERROR, upload.mission_type)
            return
        self._flight.install(upload.mission_type, upload.items)
        self._mav.mission_ack_send(*upload.peer, _ACCEPTED, upload.mission_type)

    def _abort_upload(self, result: int) -> None:
        upload = self._upload
        assert upload is not None
        self._upload = None
        self._mav.mission_ack_send(*upload.peer, result, upload.mission_type)

    def _check_upload(self, now: float) -> None:
        upload = self._upload
        if upload is None or now - upload.last_request_s < _REQUEST_RESEND_S:
            return
        if now - upload.started_s > _UPLOAD_TIMEOUT_S:
            self._text(4, "Mission upload timeout")
            self._abort_upload(_CANCELLED)
        else:
            self._request_next(now)

    # ----------------------------------------------------------------------------- mission download

    def _on_request_list(self, msg: MavMessage) -> None:
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        items = self._flight.stored(int(msg.mission_type)) if msg.mission_type in _MAX_ITEMS else []
        self._mav.mission_count_send(*peer, len(items), int(msg.mission_type))

    def _on_request_item(self, msg: MavMessage) -> None:
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        mission_type = int(msg.mission_type)
        items = self._flight.stored(mission_type) if mission_type in _MAX_ITEMS else []
        if not 0 <= msg.seq < len(items):
            self._mav.mission_ack_send(*peer, _INVALID_SEQUENCE, mission_type)
            return
        send_mission_item(self._conn, items[msg.seq], peer)

    def _on_clear_all(self, msg: MavMessage) -> None:
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        if msg.mission_type in _MAX_ITEMS:
            self._flight.install(int(msg.mission_type), [])
        self._mav.mission_ack_send(*peer, _ACCEPTED, int(msg.mission_type))

    def _on_set_current(self, msg: MavMessage) -> None:
        if 0 < msg.seq < len(self._flight.lists[0]):
            self._flight.go_to(int(msg.seq))
            self._send_mission_current()

    # ---------------------------------------------------------------------------------------- commands

    def _on_command(self, msg: MavMessage) -> None:
        params = (msg.param1, msg.param2, msg.param3, msg.param4, msg.param5, msg.param6, msg.param7)
        try:
            problem, result = self._run_command(int(msg.command), params)
        except (ValueError, OverflowError) as error:  # e.g. NaN where a mode number belongs
            problem, result = f"Command {msg.command}: bad parameter: {error}", _RESULT_FAILED
        if problem is not None:
            self._text(2, problem)
        self._mav.command_ack_send(msg.command, result, 0, 0, msg.get_srcSystem(), msg.get_srcComponent())

    def _run_command(self, command: int, params: Sequence[float]) -> tuple[str | None, int]:
        """Carry out a COMMAND_LONG: (the reason it failed or None, MAV_RESULT)."""
        flight = self._flight
        if command == 400:
            force = abs(params[1] - 21196.0) < 0.5
            return self._result(flight.arm() if params[0] >= 0.5 else flight.disarm(force))
        if command == 176:
            name = _MODE_NAMES.get(int(params[1]), f"MODE{int(params[1])}")
            return self._result(flight.set_mode(name))
        if command == 300:
            return self._result(flight.mission_start())
        if command == 193:
            return (None, _RESULT_ACCEPTED) if flight.pause(params[0] >= 0.5) else (None, _RESULT_FAILED)
        if command in (20, 21):
            return self._result(flight.set_mode("RTL" if command == 20 else "LAND"))
        if command == 511:
            return None, self._set_interval(int(params[0]), params[1])
        if command in (410, 512):
            self._send_home()
            return None, _RESULT_ACCEPTED
        return None, _RESULT_UNSUPPORTED

    @staticmethod
    def _result(problem: str | None) -> tuple[str | None, int]:
        return problem, _RESULT_ACCEPTED if problem is None else _RESULT_FAILED

    def _on_set_mode(self, msg: MavMessage) -> None:
        name = _MODE_NAMES.get(int(msg.custom_mode), f"MODE{msg.custom_mode}")
        problem = self._flight.set_mode(name)
        if problem is not None:
            self._text(2, problem)

    def _set_interval(self, message_id: int, interval_us: float) -> int:
        if not math.isfinite(interval_us):
            return _RESULT_DENIED
        for name, (stream_id, default_s) in _STREAMS.items():
            if stream_id == message_id:
                self._intervals[name] = (
                    default_s if interval_us == 0 else math.inf if interval_us < 0 else interval_us / 1e6
                )
                return _RESULT_ACCEPTED
        return _RESULT_DENIED

    # ---------------------------------------------------------------------------------------- sending

    @property
    def _mav(self) -> Any:
        return self._conn.mav

    def _text(self, severity: int, text: str) -> None:
        self._mav.statustext_send(severity, text.encode("utf-8")[:50])

    def _send_events(self) -> None:
        events = self._flight.events
        for seq in events.reached:
            self._mav.mission_item_reached_send(seq)
        for severity, text in events.texts:
            self._text(severity, text)
        if events.reached:
            self._send_mission_current()
        self._flight.events = _Events()

    def _send_streams(self, now: float) -> None:
        if now >= self._next_send.get("heartbeat", 0.0):
            self._send_heartbeat()
            self._next_send["heartbeat"] = now + self._wall_interval(1.0)
        senders = {
            "position": self._send_position,
            "attitude": self._send_attitude,
            "sys_status": self._send_sys_status,
            "battery": self._send_battery,
            "mission_current": self._send_mission_current,
            "extended_sys_state": self._send_extended_state,
        }
        for name, send in senders.items():
            if now >= self._next_send[name]:
                send()
                self._next_send[name] = now + self._wall_interval(self._intervals[name])

    def _wall_interval(self, interval_s: float) -> float:
        """Streams run on simulated time as in SITL, but no faster than the simulation loop."""
        return max(interval_s / self.settings.speedup, self.settings.tick_s)

    def _send_heartbeat(self) -> None:
        flight = self._flight
        base_mode = 1 | 16 | 8 | (128 if flight.armed else 0)  # custom mode, stabilize, guided, armed
        status = 4 if flight.armed else 3  # MAV_STATE_ACTIVE / STANDBY
        self._mav.heartbeat_send(2, 3, base_mode, COPTER_MODES[flight.mode], status)

    def _boot_ms(self) -> int:
        return int(self._flight.time_s * 1000) & 0xFFFFFFFF

    def _send_position(self) -> None:
        flight = self._flight
        lat, lon = flight.lat_lon()
        v_n, v_e, v_d = flight.velocity_ned
        self._mav.global_position_int_send(
            self._boot_ms(),
            round(lat * 1e7),
            round(lon * 1e7),
            round((self.settings.home_altitude_amsl_m + flight.alt_m) * 1000),
            round(flight.alt_m * 1000),
            round(v_n * 100),
            round(v_e * 100),
            round(v_d * 100),
            round(flight.yaw_deg * 100) % 36000,
        )

    def _send_attitude(self) -> None:
        flight = self._flight
        yaw = math.radians(flight.yaw_deg)
        yaw = yaw - 2 * math.pi if yaw > math.pi else yaw
        self._mav.attitude_send(self._boot_ms(), 0.0, math.radians(flight.pitch_deg()), yaw, 0.0, 0.0, 0.0)

    def _send_sys_status(self) -> None:
        flight = self._flight
        self._mav.sys_status_send(
            0, 0, 0, 100, round(flight.voltage_v() * 1000), round(flight.current_a() * 100),
            round(flight.remaining_percent()), 0, 0, 0, 0, 0, 0,
        )  # fmt: skip

    def _send_battery(self) -> None:
        flight = self._flight
        cell_mv = round(flight.voltage_v() * 1000 / self.settings.battery_cells)
        cells = [cell_mv] * self.settings.battery_cells + [65535] * (10 - self.settings.battery_cells)
        self._mav.battery_status_send(
            0, 0, 0, 32767, cells, round(flight.current_a() * 100), round(flight.consumed_mah), -1,
            round(flight.remaining_percent()),
        )  # fmt: skip

    def _send_mission_current(self) -> None:
        flight = self._flight
        total = max(0, len(flight.lists[0]) - 1)
        self._mav.mission_current_send(flight.current, total, flight.mission_state)

    def _send_extended_state(self) -> None:
        flight = self._flight
        landed = 1 if flight.on_ground else 4 if flight.velocity_ned[2] > 0.1 and flight.mode == "LAND" else 2
        self._mav.extended_sys_state_send(0, landed)

    def _send_home(self) -> None:
        settings = self.settings
        self._mav.home_position_send(
            round(settings.home_lat_deg * 1e7), round(settings.home_lon_deg * 1e7),
            round(settings.home_altitude_amsl_m * 1000), 0.0, 0.0, 0.0, [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0,
        )  # fmt: skip
