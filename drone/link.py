"""The vehicle link: MAVLink to an ArduPilot vehicle (or ``skygrid sim-vehicle``) over UDP, TCP or serial.

Built on pymavlink, ArduPilot's own MAVLink library. dronekit is not used: its last release (2.9.2, 2019) does
not import on Python ≥ 3.10 and it has no maintainer; pymavlink is the library dronekit itself wraps.

The link follows ArduPilot's protocol behaviour: mission item 0 is home (the vehicle overwrites it and returns
its home there on download); missions, fences and rally points travel with the MAVLink mission protocol
(MISSION_COUNT → MISSION_REQUEST_INT → MISSION_ITEM_INT … → MISSION_ACK); on ArduCopter a mission starts with
``MAV_CMD_MISSION_START`` after arming (switching to AUTO on the ground does not take off).

Commands (:meth:`VehicleLink.upload_mission`, :meth:`VehicleLink.arm`, …) block until the vehicle answers,
retrying on timeouts, and raise a :class:`LinkError` whose message says in plain words what was refused and why.
Telemetry is an asyncio stream of frozen dataclasses (:meth:`VehicleLink.telemetry`); a silent vehicle shows up
there as :class:`LinkLost` and makes waiting commands raise :class:`LinkLostError`.

Example::

    with connect("udpout:127.0.0.1:14550") as link:
        link.upload_mission(items)
        link.set_mode("GUIDED")
        link.arm()
        link.start_mission()
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from pymavlink import mavutil
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from drone.model import MissionItem

__all__ = [
    "COPTER_MODES",
    "Attitude",
    "Battery",
    "CommandRejectedError",
    "ConnectionFailedError",
    "ItemReached",
    "LinkError",
    "LinkLost",
    "LinkLostError",
    "LinkRestored",
    "LinkSettings",
    "LinkTimeoutError",
    "MissionProgress",
    "MissionTransferError",
    "MissionType",
    "NotReadyError",
    "Position",
    "StatusText",
    "Telemetry",
    "VehicleLink",
    "VehicleState",
    "command_result_text",
    "connect",
    "mission_item_from_message",
    "mission_result_text",
    "open_connection",
    "read_messages",
    "send_mission_item",
]

MavMessage = Any  # a pymavlink message object (pymavlink ships no type information)
MavConnection = Any  # a pymavlink ``mavfile``


class MissionType(IntEnum):
    """MAV_MISSION_TYPE: which of the vehicle's three lists a transfer is about."""

    MISSION = 0
    FENCE = 1
    RALLY = 2


# ArduCopter's custom flight modes (HEARTBEAT.custom_mode), the names operators see in Mission Planner / QGC.
COPTER_MODES: dict[str, int] = {
    "STABILIZE": 0,
    "ACRO": 1,
    "ALT_HOLD": 2,
    "AUTO": 3,
    "GUIDED": 4,
    "LOITER": 5,
    "RTL": 6,
    "CIRCLE": 7,
    "LAND": 9,
    "DRIFT": 11,
    "SPORT": 13,
    "POSHOLD": 16,
    "BRAKE": 17,
    "SMART_RTL": 21,
}
_MODE_NAMES = {number: name for name, number in COPTER_MODES.items()}

_MISSION_RESULTS: dict[int, str] = {
    0: "accepted (已接受)",
    1: "the vehicle reported a generic error (飞控报告一般错误)",
    2: "coordinate frame not supported (不支持的坐标系)",
    3: "command not supported by this vehicle (飞控不支持该指令)",
    4: "mission does not fit in the vehicle's memory (航线超出飞控存储容量)",
    5: "an item has an invalid parameter (航点参数无效)",
    6: "param1 is invalid (参数1无效)",
    7: "param2 is invalid (参数2无效)",
    8: "param3 is invalid (参数3无效)",
    9: "param4 is invalid (参数4无效)",
    10: "latitude / x is invalid (纬度无效)",
    11: "longitude / y is invalid (经度无效)",
    12: "altitude / z is invalid (高度无效)",
    13: "an item arrived out of sequence (航点序号错乱)",
    14: "the vehicle is not accepting missions now (飞控当前拒绝接收航线)",
    15: "the transfer was cancelled (传输已取消)",
}

_COMMAND_RESULTS: dict[int, str] = {
    0: "accepted (已接受)",
    1: "temporarily rejected, try again later (暂时拒绝，请稍后重试)",
    2: "denied (被拒绝)",
    3: "not supported by this vehicle (飞控不支持)",
    4: "failed (执行失败)",
    5: "in progress (执行中)",
    6: "cancelled (已取消)",
    7: "only accepted as COMMAND_LONG (仅支持 COMMAND_LONG)",
    8: "only accepted as COMMAND_INT (仅支持 COMMAND_INT)",
    9: "coordinate frame not supported (不支持的坐标系)",
}

_MAV_CMD_NAMES: dict[int, str] = {
    20: "return to launch",
    21: "land",
    176: "set mode",
    193: "pause/continue",
    300: "mission start",
    400: "arm/disarm",
    511: "set message interval",
}

_FORCE_DISARM_MAGIC = 21196.0  # param2 of MAV_CMD_COMPONENT_ARM_DISARM that forces a disarm in flight
_GCS_COMPONENT = 190  # MAV_COMP_ID_MISSIONPLANNER
_MAV_TYPE_GCS = 6
_MAV_AUTOPILOT_INVALID = 8
_MODE_FLAG_SAFETY_ARMED = 128
_MODE_FLAG_CUSTOM_MODE_ENABLED = 1
_UINT16_UNKNOWN = 65535

# Messages the link asks the vehicle to stream (message id → interval in microseconds).
_STREAMS_US: dict[int, int] = {
    33: 200_000,  # GLOBAL_POSITION_INT
    30: 200_000,  # ATTITUDE
    1: 1_000_000,  # SYS_STATUS
    147: 1_000_000,  # BATTERY_STATUS
    42: 1_000_000,  # MISSION_CURRENT
    245: 1_000_000,  # EXTENDED_SYS_STATE
}


def mission_result_text(result: int) -> str:
    """A MAV_MISSION_RESULT in plain words (English and Chinese)."""
    return _MISSION_RESULTS.get(result, f"unknown mission result {result} (未知结果)")


def command_result_text(result: int) -> str:
    """A MAV_RESULT (COMMAND_ACK.result) in plain words (English and Chinese)."""
    return _COMMAND_RESULTS.get(result, f"unknown command result {result} (未知结果)")


# --------------------------------------------------------------------------------------------------- errors


class LinkError(Exception):
    """Anything that went wrong talking to the vehicle."""


class ConnectionFailedError(LinkError):
    """The connection could not be opened or no vehicle answered."""


class LinkTimeoutError(LinkError):
    """The vehicle did not answer an operation after all retries."""

    def __init__(self, operation: str, attempts: int, timeout_s: float) -> None:
        super().__init__(
            f"{operation}: no answer from the vehicle after {attempts} tries of {timeout_s:g} s "
            f"(飞控无响应，请检查链路)"
        )
        self.operation = operation


class LinkLostError(LinkError):
    """No heartbeat from the vehicle for longer than the link-loss timeout."""


class NotReadyError(LinkError):
    """The vehicle is not in a state where the command makes sense (for example not armed)."""


class MissionTransferError(LinkError):
    """The vehicle refused a mission, fence or rally transfer (a MISSION_ACK other than ACCEPTED)."""

    def __init__(self, operation: str, mission_type: MissionType, result: int, seq: int | None) -> None:
        where = "" if seq is None else f" at item {seq}"
        super().__init__(
            f"{mission_type.name.lower()} {operation} refused{where}: {mission_result_text(result)}"
        )
        self.operation = operation
        self.mission_type = mission_type
        self.result = result
        self.seq = seq


class CommandRejectedError(LinkError):
    """The vehicle answered a command with a COMMAND_ACK other than ACCEPTED."""

    def __init__(self, command: int, result: int, reasons: Sequence[str]) -> None:
        name = _MAV_CMD_NAMES.get(command, f"command {command}")
        said = f"; vehicle says: {'; '.join(reasons)}" if reasons else ""
        super().__init__(f"{name} refused: {command_result_text(result)}{said}")
        self.command = command
        self.result = result
        self.reasons = tuple(reasons)


# ------------------------------------------------------------------------------------------------ telemetry


@dataclass(frozen=True)
class Position:
    """GLOBAL_POSITION_INT: where the vehicle is, altitudes above mean sea level and above home."""

    time_boot_ms: int
    lat_deg: float
    lon_deg: float
    altitude_amsl_m: float
    relative_altitude_m: float
    velocity_north_m_s: float
    velocity_east_m_s: float
    velocity_down_m_s: float
    heading_deg: float | None


@dataclass(frozen=True)
class Attitude:
    """ATTITUDE in degrees (NED: yaw 0 = north, positive pitch = nose up)."""

    time_boot_ms: int
    roll_deg: float
    pitch_deg: float
    yaw_deg: float


@dataclass(frozen=True)
class Battery:
    """BATTERY_STATUS (or SYS_STATUS): pack voltage, current and what is left; ``None`` where unknown."""

    voltage_v: float | None
    current_a: float | None
    remaining_percent: int | None
    consumed_mah: float | None


@dataclass(frozen=True)
class MissionProgress:
    """MISSION_CURRENT: the item being flown; ``total`` is the last item's seq when the vehicle says it."""

    current_seq: int
    total: int | None


@dataclass(frozen=True)
class ItemReached:
    """MISSION_ITEM_REACHED: the vehicle finished mission item ``seq``."""

    seq: int


@dataclass(frozen=True)
class StatusText:
    """STATUSTEXT: a message from the autopilot (severity 0 emergency … 7 debug)."""

    severity: int
    text: str


@dataclass(frozen=True)
class VehicleState:
    """HEARTBEAT: armed, flight mode and MAV_STATE (3 standby, 4 active, 5 critical …)."""

    armed: bool
    mode: str
    system_status: int


@dataclass(frozen=True)
class LinkLost:
    """No heartbeat for ``silent_s`` seconds: the vehicle carries on with its mission or its failsafe."""

    silent_s: float


@dataclass(frozen=True)
class LinkRestored:
    """Heartbeats are arriving again after a :class:`LinkLost`."""


Telemetry = (
    Position
    | Attitude
    | Battery
    | MissionProgress
    | ItemReached
    | StatusText
    | VehicleState
    | LinkLost
    | LinkRestored
)


@dataclass(frozen=True)
class LinkSettings:
    """Timeouts and identities of the link (ground-station side)."""

    connect_timeout_s: float = 10.0
    heartbeat_timeout_s: float = 3.0  # silence after which the link counts as lost
    reply_timeout_s: float = 1.5  # wait for one answer before sending again
    retries: int = 5
    source_system: int = 255
    source_component: int = _GCS_COMPONENT

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "heartbeat_timeout_s", "reply_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LinkSettings.{name} must be positive, got {getattr(self, name)}")
        if self.retries < 1:
            raise ValueError(f"LinkSettings.retries must be at least 1, got {self.retries}")


# ------------------------------------------------------------------------------------ connection adapters

_URL_HELP = (
    "expected udpin:HOST:PORT, udpout:HOST:PORT, udp:HOST:PORT, tcp:HOST:PORT, tcpin:HOST:PORT "
    "or serial:DEVICE[:BAUD], e.g. udpin:0.0.0.0:14550 or serial:/dev/ttyUSB0:57600"
)
_NET_URL = re.compile(r"^(udpin|udpout|udp|tcp|tcpin):([^:]+):(\d{1,5})$")
_SERIAL_URL = re.compile(r"^serial:(.+?)(?::(\d+))?$")


class _PeerClosedError(OSError):
    """The TCP peer closed the connection (raised from pymavlink's EOF hooks instead of its prints)."""


def _raise_peer_closed() -> None:
    raise _PeerClosedError("the TCP peer closed the connection")


def open_connection(url: str, *, source_system: int, source_component: int) -> MavConnection:
    """Open a pymavlink connection speaking MAVLink 2 (the mission protocol needs its extension fields).

    Raises:
        ValueError: the URL is malformed (the message shows the accepted forms).
        ConnectionFailedError: the port or device could not be opened.
    """
    device, baud = parse_url(url)
    try:
        if device.startswith("tcp:"):
            # one attempt: pymavlink's own retry loop prints to stdout and sleeps
            conn = mavutil.mavlink_connection(
                device, source_system=source_system, source_component=source_component, retries=1
            )
        else:
            conn = mavutil.mavlink_connection(
                device, baud=baud, source_system=source_system, source_component=source_component
            )
    except OSError as error:
        raise ConnectionFailedError(f"cannot open {url}: {error.strerror or error} (无法打开链路)") from error
    _use_mavlink2(conn, source_system, source_component)
    if device.startswith("tcp:"):
        conn.handle_eof = _raise_peer_closed
        conn.handle_disconnect = _raise_peer_closed
    return conn


def parse_url(url: str) -> tuple[str, int]:
    """The pymavlink device and baud rate of a connection URL (``udp:`` means listening, like ``udpin:``).

    Raises:
        ValueError: the URL is none of the accepted forms; the message lists them.
    """
    net = _NET_URL.match(url)
    if net is not None:
        if not 0 <= int(net.group(3)) <= 65535:
            raise ValueError(f"connection URL {url!r}: port {net.group(3)} is out of range; {_URL_HELP}")
        scheme = "udpin" if net.group(1) == "udp" else net.group(1)
        return f"{scheme}:{net.group(2)}:{net.group(3)}", 115200
    serial = _SERIAL_URL.match(url)
    if serial is not None:
        return serial.group(1), int(serial.group(2) or 57600)
    raise ValueError(f"connection URL {url!r} is not understood; {_URL_HELP}")


def _use_mavlink2(conn: MavConnection, source_system: int, source_component: int) -> None:
    """Switch the connection to the MAVLink 2 ArduPilot dialect without pymavlink's environment switch."""
    conn.mav = mavlink2.MAVLink(conn, srcSystem=source_system, srcComponent=source_component)
    conn.mav.robust_parsing = True
    conn.WIRE_PROTOCOL_VERSION = "2.0"
    conn.first_byte = False


def read_messages(conn: MavConnection, timeout_s: float) -> Iterator[MavMessage]:
    """Wait up to ``timeout_s`` for data, then yield every complete message that arrived (bad data dropped)."""
    if not conn.select(timeout_s):
        return
    while True:
        msg = conn.recv_msg()
        if msg is None:
            return
        if msg.get_type() != "BAD_DATA":
            yield msg


def mission_item_from_message(msg: MavMessage) -> MissionItem:
    """A MISSION_ITEM_INT (lat/lon in 1e-7 degrees) or MISSION_ITEM (float degrees) as a :class:`MissionItem`."""
    scale = 1e-7 if msg.get_type() == "MISSION_ITEM_INT" else 1.0
    return MissionItem(
        seq=int(msg.seq),
        command=int(msg.command),
        frame=int(msg.frame),
        param1=float(msg.param1),
        param2=float(msg.param2),
        param3=float(msg.param3),
        param4=float(msg.param4),
        lat_deg=round(float(msg.x) * scale, 7),
        lon_deg=round(float(msg.y) * scale, 7),
        altitude_m=float(msg.z),
        current=bool(msg.current),
        autocontinue=bool(msg.autocontinue),
        mission_type=int(getattr(msg, "mission_type", 0)),
    )


def send_mission_item(conn: MavConnection, item: MissionItem, target: tuple[int, int]) -> None:
    """Send ``item`` as MISSION_ITEM_INT to ``target`` (system, component)."""
    conn.mav.mission_item_int_send(
        target[0],
        target[1],
        item.seq,
        item.frame,
        item.command,
        int(item.current),
        int(item.autocontinue),
        item.param1,
        item.param2,
        item.param3,
        item.param4,
        round(item.lat_deg * 1e7),
        round(item.lon_deg * 1e7),
        item.altitude_m,
        item.mission_type,
    )


def _is_vehicle_heartbeat(msg: MavMessage) -> bool:
    return bool(
        msg.get_type() == "HEARTBEAT"
        and msg.type != _MAV_TYPE_GCS
        and msg.autopilot != _MAV_AUTOPILOT_INVALID
    )


def _telemetry_from(msg: MavMessage) -> Telemetry | None:
    kind = msg.get_type()
    converter = _CONVERTERS.get(kind)
    return None if converter is None else converter(msg)


def _position(msg: MavMessage) -> Position:
    return Position(
        time_boot_ms=int(msg.time_boot_ms),
        lat_deg=msg.lat * 1e-7,
        lon_deg=msg.lon * 1e-7,
        altitude_amsl_m=msg.alt / 1000.0,
        relative_altitude_m=msg.relative_alt / 1000.0,
        velocity_north_m_s=msg.vx / 100.0,
        velocity_east_m_s=msg.vy / 100.0,
        velocity_down_m_s=msg.vz / 100.0,
        heading_deg=None if msg.hdg == _UINT16_UNKNOWN else msg.hdg / 100.0,
    )


def _attitude(msg: MavMessage) -> Attitude:
    return Attitude(
        time_boot_ms=int(msg.time_boot_ms),
        roll_deg=math.degrees(msg.roll),
        pitch_deg=math.degrees(msg.pitch),
        yaw_deg=math.degrees(msg.yaw) % 360.0,
    )


def _battery_status(msg: MavMessage) -> Battery:
    cells_mv = [v for v in msg.voltages if v != _UINT16_UNKNOWN]
    return Battery(
        voltage_v=sum(cells_mv) / 1000.0 if cells_mv else None,
        current_a=None if msg.current_battery < 0 else msg.current_battery / 100.0,
        remaining_percent=None if msg.battery_remaining < 0 else int(msg.battery_remaining),
        consumed_mah=None if msg.current_consumed < 0 else float(msg.current_consumed),
    )


def _mission_current(msg: MavMessage) -> MissionProgress:
    total = int(getattr(msg, "total", _UINT16_UNKNOWN))
    return MissionProgress(current_seq=int(msg.seq), total=None if total in (0, _UINT16_UNKNOWN) else total)


def _status_text(msg: MavMessage) -> StatusText:
    text = msg.text
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return StatusText(severity=int(msg.severity), text=str(text).rstrip("\x00"))


def _vehicle_state(msg: MavMessage) -> VehicleState:
    mode = _MODE_NAMES.get(int(msg.custom_mode), f"MODE{msg.custom_mode}")
    armed = bool(msg.base_mode & _MODE_FLAG_SAFETY_ARMED)
    return VehicleState(armed=armed, mode=mode, system_status=int(msg.system_status))


_CONVERTERS: dict[str, Callable[[MavMessage], Telemetry]] = {
    "GLOBAL_POSITION_INT": _position,
    "ATTITUDE": _attitude,
    "BATTERY_STATUS": _battery_status,
    "MISSION_CURRENT": _mission_current,
    "MISSION_ITEM_REACHED": lambda msg: ItemReached(seq=int(msg.seq)),
    "STATUSTEXT": _status_text,
}


# --------------------------------------------------------------------------------------------------- link


class _LostSignal:
    """Put into a waiting command's inbox when the link is lost."""


_LOST = _LostSignal()
_Inbox = queue.Queue[MavMessage]


class VehicleLink:
    """An open link to one vehicle: commands block until answered; telemetry streams asynchronously.

    A background thread reads the connection, sends the ground station's 1 Hz heartbeat and watches the
    vehicle's heartbeat. Use :func:`connect` to open one; close it (or use ``with``) when done.
    """

    def __init__(self, conn: MavConnection, url: str, settings: LinkSettings) -> None:
        self._conn = conn
        self.url = url
        self.settings = settings
        self._target = (0, 0)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._inboxes: list[tuple[frozenset[str], _Inbox]] = []
        self._streams: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Telemetry | None]]] = []
        self._found = threading.Event()
        self._closed = threading.Event()
        self._closed_by_peer = threading.Event()
        self._last_heartbeat_s = time.monotonic()
        self._lost = False
        self._state: VehicleState | None = None
        self._position: Position | None = None
        self._thread = threading.Thread(target=self._run, name=f"mavlink {url}", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> VehicleLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reader thread, end telemetry streams and close the connection."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(timeout=2.0)
        with self._lock:
            streams = list(self._streams)
        for loop, stream in streams:
            with contextlib.suppress(RuntimeError):  # the stream's event loop is already closed
                loop.call_soon_threadsafe(stream.put_nowait, None)
        self._conn.close()

    def wait_for_vehicle(self, timeout_s: float) -> None:
        """Block until the first vehicle heartbeat, or raise :class:`ConnectionFailedError`."""
        if not self._found.wait(timeout_s):
            raise ConnectionFailedError(
                f"no heartbeat from a vehicle on {self.url} within {timeout_s:g} s — is it powered and is the "
                "URL right? (未收到飞控心跳，请检查连接地址)"
            )

    @property
    def target_system(self) -> int:
        """The vehicle's MAVLink system id (0 before its first heartbeat)."""
        return self._target[0]

    @property
    def state(self) -> VehicleState | None:
        """The last heartbeat's armed state and mode."""
        with self._lock:
            return self._state

    @property
    def position(self) -> Position | None:
        """The last GLOBAL_POSITION_INT."""
        with self._lock:
            return self._position

    @property
    def lost(self) -> bool:
        """True while no heartbeat has arrived for longer than ``heartbeat_timeout_s``."""
        with self._lock:
            return self._lost

    # ------------------------------------------------------------------------------- mission protocol

    def upload_mission(
        self, items: Sequence[MissionItem], mission_type: MissionType = MissionType.MISSION
    ) -> None:
        """Replace the vehicle's mission (or fence, or rally points) with ``items``, numbered 0..n-1.

        Raises:
            ValueError: the items are not numbered 0..n-1 or belong to another mission type.
            MissionTransferError: the vehicle refused an item or the count (reason in words).
            LinkTimeoutError, LinkLostError: the vehicle stopped answering.
        """
        _check_numbering(items, mission_type)
        with self._inbox("MISSION_REQUEST_INT", "MISSION_REQUEST", "MISSION_ACK") as inbox:
            self._to_vehicle("mission_count_send", len(items), int(mission_type))
            self._serve_requests(inbox, items, mission_type)

    def _serve_requests(self, inbox: _Inbox, items: Sequence[MissionItem], mission_type: MissionType) -> None:
        last_seq: int | None = None
        attempts = 0
        while True:
            msg = self._next(inbox, mission_type)
            if msg is None:
                attempts += 1
                if attempts >= self.settings.retries:
                    raise LinkTimeoutError(f"{mission_type.name.lower()} upload", attempts, self._wait_s)
                self._resend_upload(items, mission_type, last_seq)
                continue
            attempts = 0
            if msg.get_type() == "MISSION_ACK":
                if msg.type != 0:
                    raise MissionTransferError("upload", mission_type, int(msg.type), last_seq)
                if len(items) == 0 or last_seq == len(items) - 1:
                    return
                continue
            if not 0 <= msg.seq < len(items):
                raise MissionTransferError("upload", mission_type, 13, int(msg.seq))
            last_seq = int(msg.seq)
            self._send_item(items[last_seq])

    def _resend_upload(
        self, items: Sequence[MissionItem], mission_type: MissionType, seq: int | None
    ) -> None:
        if seq is None:
            self._to_vehicle("mission_count_send", len(items), int(mission_type))
        else:
            self._send_item(items[seq])

    def download_mission(self, mission_type: MissionType = MissionType.MISSION) -> tuple[MissionItem, ...]:
        """Read the vehicle's mission (item 0 is home on ArduPilot), fence or rally points.

        Raises:
            MissionTransferError, LinkTimeoutError, LinkLostError.
        """
        with self._inbox("MISSION_COUNT", "MISSION_ITEM_INT", "MISSION_ACK") as inbox:
            count_msg = self._request(
                inbox,
                "mission_request_list_send",
                (int(mission_type),),
                mission_type,
                lambda msg: msg.get_type() == "MISSION_COUNT",
                f"{mission_type.name.lower()} download",
            )
            items = tuple(self._download_item(inbox, seq, mission_type) for seq in range(count_msg.count))
        self._to_vehicle("mission_ack_send", 0, int(mission_type))
        return items

    def _download_item(self, inbox: _Inbox, seq: int, mission_type: MissionType) -> MissionItem:
        msg = self._request(
            inbox,
            "mission_request_int_send",
            (seq, int(mission_type)),
            mission_type,
            lambda msg: msg.get_type() == "MISSION_ITEM_INT" and msg.seq == seq,
            f"{mission_type.name.lower()} download of item {seq}",
        )
        return mission_item_from_message(msg)

    def clear_mission(self, mission_type: MissionType = MissionType.MISSION) -> None:
        """Delete the vehicle's mission, fence or rally points."""
        with self._inbox("MISSION_ACK") as inbox:
            ack = self._request(
                inbox,
                "mission_clear_all_send",
                (int(mission_type),),
                mission_type,
                lambda msg: True,
                f"{mission_type.name.lower()} clear",
            )
        if ack.type != 0:
            raise MissionTransferError("clear", mission_type, int(ack.type), None)

    def _request(
        self,
        inbox: _Inbox,
        name: str,
        args: tuple[object, ...],
        mission_type: MissionType,
        wanted: Callable[[MavMessage], bool],
        operation: str,
    ) -> MavMessage:
        """Send, wait for a wanted answer, resend on timeout; a refusing MISSION_ACK raises during a download."""
        for _attempt in range(self.settings.retries):
            self._to_vehicle(name, *args)
            deadline = time.monotonic() + self._wait_s
            while (msg := self._next(inbox, mission_type, deadline)) is not None:
                if wanted(msg):
                    return msg
                if msg.get_type() == "MISSION_ACK" and msg.type != 0:
                    raise MissionTransferError("download", mission_type, int(msg.type), None)
        raise LinkTimeoutError(operation, self.settings.retries, self._wait_s)

    # ---------------------------------------------------------------------------------------- commands

    def arm(self) -> None:
        """Arm the motors (MAV_CMD_COMPONENT_ARM_DISARM). ArduCopter arms in GUIDED or LOITER, not in AUTO."""
        self.command(400, 1.0)
        self._assume(armed=True)

    def disarm(self, *, force: bool = False) -> None:
        """Disarm; ``force`` disarms even in flight (the vehicle falls)."""
        self.command(400, 0.0, _FORCE_DISARM_MAGIC if force else 0.0)
        self._assume(armed=False)

    def set_mode(self, mode: str) -> None:
        """Switch to an ArduCopter flight mode by name (GUIDED, AUTO, LOITER, RTL, LAND, …)."""
        number = COPTER_MODES.get(mode.upper())
        if number is None:
            raise ValueError(f"unknown flight mode {mode!r}; known: {', '.join(COPTER_MODES)}")
        self.command(176, float(_MODE_FLAG_CUSTOM_MODE_ENABLED), float(number))
        self._assume(mode=mode.upper())

    def _assume(self, **changes: Any) -> None:
        """Record what an accepted command changed, before the next heartbeat (1 Hz on ArduPilot) says so."""
        with self._lock:
            if self._state is not None:
                self._state = replace(self._state, **changes)

    def start_mission(self) -> None:
        """Start the uploaded mission (MAV_CMD_MISSION_START): switches to AUTO and takes off when armed."""
        state = self.state
        if state is None or not state.armed:
            raise NotReadyError(
                "mission start: the vehicle is not armed — arm it first (飞机未解锁，请先解锁)"
            )
        self.command(300, 0.0, 0.0)

    def pause(self) -> None:
        """Hold position and pause the mission (MAV_CMD_DO_PAUSE_CONTINUE 0)."""
        self.command(193, 0.0)

    def resume(self) -> None:
        """Continue the paused mission (MAV_CMD_DO_PAUSE_CONTINUE 1)."""
        self.command(193, 1.0)

    def return_to_launch(self) -> None:
        """Fly home and land (MAV_CMD_NAV_RETURN_TO_LAUNCH)."""
        self.command(20)

    def land(self) -> None:
        """Land where the vehicle is (MAV_CMD_NAV_LAND)."""
        self.command(21)

    def command(self, command: int, *params: float) -> None:
        """Send COMMAND_LONG (up to 7 params) and wait for its COMMAND_ACK.

        Raises:
            CommandRejectedError: the vehicle refused; the message carries its status texts about why.
            LinkTimeoutError, LinkLostError.
        """
        padded = [*params, *([0.0] * (7 - len(params)))]
        with self._inbox("COMMAND_ACK", "STATUSTEXT") as inbox:
            reasons: list[str] = []
            for confirmation in range(self.settings.retries):
                self._to_vehicle("command_long_send", command, confirmation, *padded)
                result = self._await_ack(inbox, command, reasons)
                if result == 0:
                    return
                if result is not None:
                    raise CommandRejectedError(command, result, reasons)
        name = _MAV_CMD_NAMES.get(command, f"command {command}")
        raise LinkTimeoutError(name, self.settings.retries, self._wait_s)

    def _await_ack(self, inbox: _Inbox, command: int, reasons: list[str]) -> int | None:
        deadline = time.monotonic() + self._wait_s
        while (msg := self._next(inbox, None, deadline)) is not None:
            if msg.get_type() == "STATUSTEXT":
                text = _status_text(msg)
                if text.severity <= 4:  # warning or worse: the autopilot's reason for a refusal
                    reasons.append(text.text)
            elif msg.command == command and msg.result != 5:  # 5: in progress, keep waiting
                return int(msg.result)
        return None

    # --------------------------------------------------------------------------------------- telemetry

    async def telemetry(self) -> AsyncIterator[Telemetry]:
        """Every telemetry message as a frozen dataclass, until the link is closed.

        Link loss arrives as :class:`LinkLost` (and :class:`LinkRestored` when heartbeats return); the stream
        goes on either way, so the caller decides what a silent vehicle means.
        """
        loop = asyncio.get_running_loop()
        stream: asyncio.Queue[Telemetry | None] = asyncio.Queue()
        with self._lock:
            self._streams.append((loop, stream))
            current = self._state
        try:
            if current is not None:
                yield current
            while (item := await stream.get()) is not None:
                yield item
        finally:
            with self._lock:
                self._streams.remove((loop, stream))

    # -------------------------------------------------------------------------------------- internals

    @property
    def _wait_s(self) -> float:
        return self.settings.reply_timeout_s

    @contextlib.contextmanager
    def _inbox(self, *types: str) -> Iterator[_Inbox]:
        if self.lost:
            raise LinkLostError(self._lost_message())
        inbox: _Inbox = queue.Queue()
        entry = (frozenset(types), inbox)
        with self._lock:
            self._inboxes.append(entry)
        try:
            yield inbox
        finally:
            with self._lock:
                self._inboxes.remove(entry)

    def _next(
        self, inbox: _Inbox, mission_type: MissionType | None, deadline: float | None = None
    ) -> MavMessage | None:
        """The next message for this operation, or None at the deadline; raises when the link is lost."""
        end = time.monotonic() + self._wait_s if deadline is None else deadline
        while (left := end - time.monotonic()) > 0:
            try:
                msg = inbox.get(timeout=left)
            except queue.Empty:
                return None
            if msg is _LOST:
                raise LinkLostError(self._lost_message())
            if mission_type is None or getattr(msg, "mission_type", 0) == int(mission_type):
                return msg
        return None

    def _lost_message(self) -> str:
        return (
            f"link lost: no heartbeat from the vehicle on {self.url} for more than "
            f"{self.settings.heartbeat_timeout_s:g} s (链路中断)"
        )

    def _send(self, name: str, *args: object) -> None:
        """Call the MAVLink encoder's ``name`` (e.g. ``heartbeat_send``) under the send lock.

        Raises:
            LinkLostError: the connection is closed (a TCP vehicle hung up).
        """
        try:
            with self._send_lock:
                getattr(self._conn.mav, name)(*args)
        except OSError as error:
            self._closed_by_peer.set()
            raise LinkLostError(
                f"link lost: the connection {self.url} was closed ({error}) (链路中断)"
            ) from error

    def _to_vehicle(self, name: str, *args: object) -> None:
        """Send a message addressed to the vehicle (target system and component first)."""
        self._send(name, *self._target, *args)

    def _send_item(self, item: MissionItem) -> None:
        try:
            with self._send_lock:
                send_mission_item(self._conn, item, self._target)
        except OSError as error:
            self._closed_by_peer.set()
            raise LinkLostError(
                f"link lost: the connection {self.url} was closed ({error}) (链路中断)"
            ) from error

    def _run(self) -> None:
        next_heartbeat = 0.0
        while not self._closed.is_set():
            now = time.monotonic()
            self._watch_heartbeat(now)
            if self._closed_by_peer.is_set():  # nothing more will come: the watchdog reports the loss
                time.sleep(0.05)
                continue
            try:
                if now >= next_heartbeat:
                    self._send("heartbeat_send", _MAV_TYPE_GCS, _MAV_AUTOPILOT_INVALID, 0, 0, 4)
                    next_heartbeat = now + 1.0
                for msg in read_messages(self._conn, 0.05):
                    self._dispatch(msg)
            except (OSError, LinkLostError):
                self._closed_by_peer.set()

    def _watch_heartbeat(self, now: float) -> None:
        silent_s = now - self._last_heartbeat_s
        if not self._found.is_set() or self._lost or silent_s <= self.settings.heartbeat_timeout_s:
            return
        with self._lock:
            self._lost = True
            inboxes = [inbox for _, inbox in self._inboxes]
        for inbox in inboxes:
            inbox.put(_LOST)
        self._publish(LinkLost(silent_s=silent_s))

    def _dispatch(self, msg: MavMessage) -> None:
        if _is_vehicle_heartbeat(msg):
            self._on_heartbeat(msg)
        if msg.get_srcSystem() != self._target[0]:
            return
        if getattr(msg, "target_system", 0) not in (0, self.settings.source_system):
            return  # an answer to another ground station on the same network
        kind = msg.get_type()
        with self._lock:
            inboxes = [inbox for types, inbox in self._inboxes if kind in types]
        for inbox in inboxes:
            inbox.put(msg)
        telemetry = _telemetry_from(msg)
        if isinstance(telemetry, Position):
            with self._lock:
                self._position = telemetry
        if telemetry is not None:
            self._publish(telemetry)

    def _on_heartbeat(self, msg: MavMessage) -> None:
        first = not self._found.is_set()
        if first:
            self._target = (msg.get_srcSystem(), msg.get_srcComponent())
        elif msg.get_srcSystem() != self._target[0]:
            return
        state = _vehicle_state(msg)
        with self._lock:
            self._last_heartbeat_s = time.monotonic()
            restored, self._lost = self._lost, False
            changed, self._state = state != self._state, state
        if first:
            self._found.set()
        if restored:
            self._publish(LinkRestored())
        if changed:
            self._publish(state)

    def request_streams(self) -> int:
        """Ask the vehicle to stream the telemetry this link reports (MAV_CMD_SET_MESSAGE_INTERVAL).

        Waits up to one reply timeout for the answers, so that no late COMMAND_ACK of these requests is
        taken for the answer to a later command; returns how many streams the vehicle accepted.
        """
        with self._inbox("COMMAND_ACK") as inbox:
            for message_id, interval_us in _STREAMS_US.items():
                self._to_vehicle(
                    "command_long_send", 511, 0, float(message_id), float(interval_us), 0, 0, 0, 0, 0
                )
            answers: list[int] = []
            deadline = time.monotonic() + self._wait_s
            while len(answers) < len(_STREAMS_US) and (msg := self._next(inbox, None, deadline)) is not None:
                if msg.command == 511:
                    answers.append(int(msg.result))
        return answers.count(0)

    def _publish(self, item: Telemetry) -> None:
        with self._lock:
            streams = list(self._streams)
        for loop, stream in streams:
            with contextlib.suppress(RuntimeError):  # the stream's event loop closed meanwhile
                loop.call_soon_threadsafe(stream.put_nowait, item)


def _check_numbering(items: Sequence[MissionItem], mission_type: MissionType) -> None:
    for index, item in enumerate(items):
        if item.seq != index:
            raise ValueError(f"mission item {index} has seq {item.seq}; items must be numbered 0..n-1")
        if item.mission_type != int(mission_type):
            raise ValueError(
                f"mission item {index} is of mission type {item.mission_type}, uploading {mission_type.name}"
            )


def connect(url: str, settings: LinkSettings | None = None) -> VehicleLink:
    """Open ``url`` and wait for the vehicle's first heartbeat.

    Args:
        url: ``udpin:HOST:PORT`` (listen, as for SITL/MAVProxy output), ``udpout:HOST:PORT`` (send first),
            ``tcp:HOST:PORT`` (ArduPilot SITL listens on tcp:127.0.0.1:5760), ``serial:DEVICE[:BAUD]``.
        settings: timeouts and retries.

    Raises:
        ValueError: malformed URL. ConnectionFailedError: cannot open, or no vehicle heartbeat in time.
    """
    chosen = settings or LinkSettings()
    conn = open_connection(url, source_system=chosen.source_system, source_component=chosen.source_component)
    link = VehicleLink(conn, url, chosen)
    try:
        link.wait_for_vehicle(chosen.connect_timeout_s)
        link.request_streams()
    except LinkError:
        link.close()
        raise
    return link
