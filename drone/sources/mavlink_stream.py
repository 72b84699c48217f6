"""A video (file, RTSP, RTMP) posed by MAVLink telemetry — a telemetry log (``.tlog``) or a live link.

Telemetry is read with pymavlink: ``GLOBAL_POSITION_INT`` (position, heights above home and sea level),
``ATTITUDE`` (vehicle yaw/pitch/roll) and the gimbal's ``GIMBAL_DEVICE_ATTITUDE_STATUS`` (quaternion; yaw in
the earth or vehicle frame by its flags) or ArduPilot's ``MOUNT_STATUS`` (centidegrees, yaw relative to the
vehicle). Gimbal yaw is turned into an earth-frame angle, so poses carry absolute gimbal angles.

Frames and telemetry meet on the wall clock (UTC seconds): a recorded video starts at ``video_start`` (or the
container's ``creation_time``); a live stream's frame is timed when it is decoded. ``clock_offset_s`` is added
to frame times to undo clock skew or stream latency. A frame before the first sample, or more than
``max_gap_s`` after the latest one, is skipped and counted.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymavlink import mavutil

from drone.link import LinkError, LinkSettings, open_connection
from drone.model import Camera, Frame, Pose, StreamStats
from drone.sources import FrameSourceError, fit_camera, frame_id_prefix
from drone.sources.video_srt import DecodedFrame, decode_video, probe_video

log = logging.getLogger(__name__)

MESSAGE_TYPES = ("GLOBAL_POSITION_INT", "ATTITUDE", "GIMBAL_DEVICE_ATTITUDE_STATUS", "MOUNT_STATUS")
_YAW_LOCK, _YAW_IN_VEHICLE_FRAME, _YAW_IN_EARTH_FRAME = 16, 32, 64
_UNKNOWN_HEADING = 65535


@dataclass(frozen=True)
class TelemetrySample:
    """The vehicle's state at ``time_s`` (UTC seconds): the latest position with the latest angles."""

    time_s: float
    pose: Pose


@dataclass(frozen=True)
class _Gimbal:
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    yaw_in_earth_frame: bool


class MavlinkTelemetry:
    """A time-ordered track of poses built from MAVLink messages as they arrive (thread-safe)."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._samples: list[TelemetrySample] = []
        self._attitude: tuple[float, float, float] | None = None  # yaw, pitch, roll in degrees
        self._gimbal: _Gimbal | None = None
        self._lock = threading.Lock()
        self._first = threading.Event()

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first position; True once there is one."""
        return self._first.wait(timeout_s)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, message: Any, time_s: float) -> None:
        """Take one pymavlink message received (or logged) at ``time_s``; other message types are ignored."""
        kind = message.get_type()
        if kind == "ATTITUDE":
            self._attitude = (
                math.degrees(message.yaw),
                math.degrees(message.pitch),
                math.degrees(message.roll),
            )
        elif kind == "GIMBAL_DEVICE_ATTITUDE_STATUS":
            self._gimbal = _gimbal_from_quaternion(message.q, message.flags)
        elif kind == "MOUNT_STATUS":
            self._gimbal = _Gimbal(
                message.pointing_c / 100, message.pointing_a / 100, message.pointing_b / 100, False
            )
        elif kind == "GLOBAL_POSITION_INT" and (message.lat or message.lon):
            self._append(TelemetrySample(time_s, self._pose(message)))

    def at(self, time_s: float) -> TelemetrySample | None:
        """The latest sample at or before ``time_s``, or None."""
        with self._lock:
            index = bisect.bisect_right(self._times, time_s) - 1
            return self._samples[index] if index >= 0 else None

    def _append(self, sample: TelemetrySample) -> None:
        with self._lock:
            index = bisect.bisect_right(self._times, sample.time_s)
            self._times.insert(index, sample.time_s)
            self._samples.insert(index, sample)
        self._first.set()

    def _pose(self, position: Any) -> Pose:
        heading = position.hdg / 100 if position.hdg != _UNKNOWN_HEADING else 0.0
        yaw, pitch, roll = self._attitude or (heading, 0.0, 0.0)
        pose = Pose(
            lat_deg=position.lat / 1e7,
            lon_deg=position.lon / 1e7,
            altitude_agl_m=position.relative_alt / 1000,
            altitude_amsl_m=position.alt / 1000,
            yaw_deg=yaw,
            pitch_deg=pitch,
            roll_deg=roll,
        )
        gimbal = self._gimbal
        if gimbal is None:
            return pose
        gimbal_yaw = gimbal.yaw_deg if gimbal.yaw_in_earth_frame else gimbal.yaw_deg + yaw
        return replace(
            pose,
            gimbal_yaw_deg=_wrap_deg(gimbal_yaw),
            gimbal_pitch_deg=gimbal.pitch_deg,
            gimbal_roll_deg=gimbal.roll_deg,
        )


def read_tlog(path: Path) -> MavlinkTelemetry:
    """The telemetry of a MAVLink telemetry log (``.tlog``: each message after its 8-byte µs UTC time).

    Raises:
        FrameSourceError: the file is missing or holds no GLOBAL_POSITION_INT.
    """
    if not path.is_file():
        raise FrameSourceError(f"{path}: no such telemetry log")
    telemetry = MavlinkTelemetry()
    connection = mavutil.mavlink_connection(str(path), robust_parsing=True)
    try:
        while (message := connection.recv_match(type=list(MESSAGE_TYPES))) is not None:
            telemetry.add(message, float(message._timestamp))
    finally:
        connection.close()
    if not len(telemetry):
        raise FrameSourceError(f"{path}: no GLOBAL_POSITION_INT message, so no positions to pose frames with")
    return telemetry


class LiveTelemetry:
    """Telemetry from a live MAVLink link, collected by a background thread while it is open; use as a context
    manager. ``url`` takes the vehicle link's forms (:func:`drone.link.parse_url`): ``udpin:0.0.0.0:14550``,
    ``tcp:HOST:5760``, ``serial:/dev/ttyUSB0:57600``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.telemetry = MavlinkTelemetry()
        self._stop = threading.Event()
        try:
            ids = LinkSettings()
            self._connection = open_connection(
                url, source_system=ids.source_system, source_component=ids.source_component
            )
        except (LinkError, ValueError) as error:
            raise FrameSourceError(f"{url}: cannot open the MAVLink link ({error})") from None
        self._thread = threading.Thread(target=self._run, name=f"mavlink {url}", daemon=True)

    def __enter__(self) -> LiveTelemetry:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._connection.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._connection.recv_match(type=list(MESSAGE_TYPES), blocking=True, timeout=0.2)
            if message is not None:
                self.telemetry.add(message, time.time())


class MavlinkVideoSource:
    """Frames of a video posed by MAVLink telemetry.

    Args:
        video: a file path or an ``rtsp://`` / ``rtmp://`` address.
        telemetry: a ``.tlog`` path, a :class:`MavlinkTelemetry` already read, or a :class:`LiveTelemetry`.
        camera: the camera that recorded the video (fitted to the frame size).
        video_start: when the video started (for recorded files without ``creation_time``); live streams
            (a :class:`LiveTelemetry`) time frames when they are decoded instead.
        clock_offset_s: added to every frame time before looking up telemetry.
        max_gap_s: the longest a frame may be after its telemetry sample.
        every_s: keep at most one frame per this many seconds.
        first_position_timeout_s: how long a live stream waits for the link's first position before it
            gives up with :class:`FrameSourceError`.
    """

    def __init__(
        self,
        video: str,
        telemetry: Path | MavlinkTelemetry | LiveTelemetry,
        *,
        camera: Camera,
        video_start: datetime | None = None,
        clock_offset_s: float = 0.0,
        max_gap_s: float = 1.0,
        every_s: float = 0.0,
        first_position_timeout_s: float = 10.0,
    ) -> None:
        info = probe_video(video)
        self.video = video
        self.live = isinstance(telemetry, LiveTelemetry)
        self.telemetry = _telemetry(telemetry)
        self.camera = fit_camera(camera, info.width_px, info.height_px)
        start = video_start or info.creation_time
        if start is None and not self.live:
            raise FrameSourceError(f"{video}: no creation_time in the file; give the time the video started")
        self.video_start_s = start.timestamp() if start else 0.0
        self.clock_offset_s = clock_offset_s
        self.max_gap_s = max_gap_s
        self.every_s = every_s
        self.first_position_timeout_s = first_position_timeout_s
        self._prefix = frame_id_prefix(Path(video).name if "://" not in video else "stream")
        self._stats = StreamStats()

    @property
    def stats(self) -> StreamStats:
        return self._stats

    def __iter__(self) -> Iterator[Frame]:
        self._stats = StreamStats()
        if self.live and not self.telemetry.wait(self.first_position_timeout_s):
            raise FrameSourceError(
                f"no GLOBAL_POSITION_INT from the MAVLink link within {self.first_position_timeout_s:g} s"
            )
        next_time_s = -math.inf
        for decoded in decode_video(self.video, self._stats):
            time_s = (time.time() if self.live else self.video_start_s + decoded.time_s) + self.clock_offset_s
            if time_s < next_time_s - 1e-6:
                continue
            frame = self._frame(decoded, time_s)
            if frame is not None:
                next_time_s = time_s + self.every_s
                self._stats.frames += 1
                yield frame

    def _frame(self, decoded: DecodedFrame, time_s: float) -> Frame | None:
        sample = self.telemetry.at(time_s)
        if sample is None:
            self._stats.skip("no_telemetry")
            return None
        if time_s - sample.time_s > self.max_gap_s:
            self._stats.skip("telemetry_gap")
            return None
        return Frame(
            frame_id=f"{self._prefix}-{decoded.index:06d}",
            timestamp=datetime.fromtimestamp(time_s, UTC),
            image=decoded.image,
            pose=sample.pose,
            camera=self.camera,
            source=f"mavlink:{self.video}",
        )


def _telemetry(telemetry: Path | MavlinkTelemetry | LiveTelemetry) -> MavlinkTelemetry:
    if isinstance(telemetry, LiveTelemetry):
        return telemetry.telemetry
    if isinstance(telemetry, MavlinkTelemetry):
        return telemetry
    return read_tlog(telemetry)


def _gimbal_from_quaternion(q: Any, flags: int) -> _Gimbal:
    """Euler angles (ZYX, degrees) of a MAVLink gimbal quaternion [w, x, y, z]."""
    w, x, y, z = (float(v) for v in q)
    roll = math.degrees(math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x)))))
    yaw = math.degrees(math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
    earth = bool(flags & _YAW_IN_EARTH_FRAME) or (
        bool(flags & _YAW_LOCK) and not flags & _YAW_IN_VEHICLE_FRAME
    )
    return _Gimbal(yaw, pitch, roll, earth)


def _wrap_deg(angle: float) -> float:
    """Angle in (-180, 180]."""
    wrapped = math.fmod(angle + 180.0, 360.0)
    return (wrapped + 360.0 if wrapped <= 0 else wrapped) - 180.0
