"""DJI SRT subtitle telemetry: every common layout → timestamped records → :class:`~drone.model.Pose`.

DJI drones write one subtitle cue per video frame (or per second) with the aircraft's position. Layouts seen
in the wild, all read here:

- bracketed (Mavic 3, Mini 3/4, Air 2S, Mavic Air 2, Mavic 2 Pro):
  ``[latitude: 31.3] [longitude: 120.6] [rel_alt: 80.0 abs_alt: 85.1]`` or ``[altitude: 117.0]``; the Mavic 2
  writes ``longtitude``; some add ``[gb_yaw: ..] [gb_pitch: ..] [gb_roll: ..]``;
- compact (Phantom 4 RTK / Pro, Mavic Mini): ``GPS (lon, lat, satellites), HOME (lon, lat, alt), H 85.8m,
  F.PRY (pitch°, roll°, yaw°), G.PRY (pitch°, roll°, yaw°)``;
- function style (Mavic Pro, Phantom 3/4): ``HOME(lon,lat) date`` and ``GPS(lon,lat,satellites)
  BAROMETER:1.9`` or ``Hb:1.9 Hs:1.9``;
- Matrice 300: ``GPS(lat,lon,altM) BAROMETER:0.3M``: latitude first, units on the numbers.

Heights: ``rel_alt``, bracketed ``altitude``, ``H``, ``BAROMETER`` and ``Hb`` are above the take-off point
(the bracketed ``altitude`` of Air 2S / Mavic 2 Pro files sits at 117–120 m in cruise: the 120 m height
limit, so it is relative); ``abs_alt`` is above sea level. The clock is the controller's local time and carries
no zone: it is read in ``tz`` (China Standard Time unless told otherwise).

A cue without a usable position (no GPS fix, cut off, garbled) is skipped and counted by reason; a file with
no usable cue at all raises :class:`SrtError` naming the file and line.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Literal

from drone.model import Pose

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
GpsOrder = Literal["auto", "lon_lat", "lat_lon"]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_CUE_NUMBER = re.compile(r"^\d+$")
_TIMECODE = re.compile(r"(\d+):(\d{2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{1,3})")
_DATE = re.compile(
    r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:[,.](\d{1,3}))?(?:,(\d{3}))?"
)
_TAG = re.compile(r"<[^>]*>")
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_KEY_VALUE = re.compile(rf"([A-Za-z_]+)\s*:\s*({_NUMBER})")
_FUNCTION = re.compile(r"\b(GPS|HOME|F\.PRY|G\.PRY)\s*\(([^()]*)\)")
_UNIT_NUMBER = re.compile(rf"^\s*({_NUMBER})\s*(°|[A-Za-z/]*)\s*$")
_PLAIN_HEIGHTS = (
    ("barometer", re.compile(rf"\bBAROMETER\s*:\s*({_NUMBER})")),
    ("hb", re.compile(rf"\bHb\s*:\s*({_NUMBER})")),
    ("h", re.compile(rf"(?:^|[\s,])H\s+({_NUMBER})\s*m\b")),
)


class SrtError(Exception):
    """An SRT file that gives no telemetry, or a bad cue when parsing strictly; names the file and line."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class SrtRecord:
    """One cue's telemetry. ``video_time_s`` is where the cue starts in the video.

    Layouts without time codes (old Mavic 2 firmware) get it from the clock, counted from the first cue.
    """

    line: int
    video_time_s: float
    timestamp: datetime | None
    lat_deg: float
    lon_deg: float
    relative_altitude_m: float | None = None
    absolute_altitude_m: float | None = None
    yaw_deg: float | None = None
    pitch_deg: float | None = None
    roll_deg: float | None = None
    gimbal_yaw_deg: float | None = None
    gimbal_pitch_deg: float | None = None
    gimbal_roll_deg: float | None = None

    def to_pose(self, *, altitude_agl_m: float | None = None) -> Pose:
        """The pose of this cue. ``altitude_agl_m`` stands in when the layout records no height.

        Raises:
            ValueError: the cue has no height above take-off and none was given.
        """
        height = self.relative_altitude_m if self.relative_altitude_m is not None else altitude_agl_m
        if height is None:
            raise ValueError(f"SRT cue at line {self.line} has no height above take-off; give one")
        return Pose(
            lat_deg=self.lat_deg,
            lon_deg=self.lon_deg,
            altitude_agl_m=height,
            altitude_amsl_m=self.absolute_altitude_m,
            yaw_deg=_or(self.yaw_deg, 0.0),
            pitch_deg=_or(self.pitch_deg, 0.0),
            roll_deg=_or(self.roll_deg, 0.0),
            gimbal_yaw_deg=_or(self.gimbal_yaw_deg, _or(self.yaw_deg, 0.0)),
            gimbal_pitch_deg=_or(self.gimbal_pitch_deg, -90.0),
            gimbal_roll_deg=_or(self.gimbal_roll_deg, 0.0),
        )


@dataclass(frozen=True)
class SrtTrack:
    """The records of one SRT file in video-time order, and the cues skipped by reason (with the first lines)."""

    path: str
    records: tuple[SrtRecord, ...]
    skipped: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def at(self, video_time_s: float) -> SrtRecord | None:
        """The record whose cue covers ``video_time_s`` (the latest starting at or before it), or None."""
        index = bisect.bisect_right(self._times, video_time_s) - 1
        return self.records[index] if index >= 0 else None

    @cached_property
    def _times(self) -> list[float]:
        return [record.video_time_s for record in self.records]


@dataclass(frozen=True)
class _Cue:
    line: int
    start_s: float | None
    timestamp: datetime | None
    body: str


def parse_srt(
    path: Path, *, tz: tzinfo = CHINA_STANDARD_TIME, gps_order: GpsOrder = "auto", strict: bool = False
) -> SrtTrack:
    """Read a DJI SRT file of any layout.

    Args:
        path: the ``.SRT`` file.
        tz: the zone of the drone's clock (DJI writes local time without a zone).
        gps_order: ``auto`` reads ``GPS(…)`` as latitude first only in the Matrice layout (units on the
            numbers), else longitude first; force either order for odd firmware.
        strict: raise on the first bad cue instead of skipping and counting it.

    Raises:
        SrtError: the file is empty, undecodable as text, has no cue with a position, or (strict) a bad cue.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SrtError(f"cannot read the file ({error.strerror})", path=str(path)) from None
    return parse_srt_text(_decode(data), name=str(path), tz=tz, gps_order=gps_order, strict=strict)


def parse_srt_text(
    text: str,
    *,
    name: str = "<srt>",
    tz: tzinfo = CHINA_STANDARD_TIME,
    gps_order: GpsOrder = "auto",
    strict: bool = False,
) -> SrtTrack:
    """:func:`parse_srt` on text already in memory; ``name`` is used in messages."""
    if not text.strip():
        raise SrtError("the file is empty: no subtitle cues", path=name)
    records: list[SrtRecord] = []
    skipped: dict[str, int] = {}
    problems: list[str] = []
    first_clock: datetime | None = None
    for cue in _cues(text, tz):
        first_clock = first_clock or cue.timestamp
        record = _record(cue, first_clock, gps_order)
        if isinstance(record, SrtRecord):
            records.append(record)
            continue
        if strict:
            raise SrtError(f"cue skipped: {record.replace('_', ' ')}", path=name, line=cue.line)
        skipped[record] = skipped.get(record, 0) + 1
        problems.append(f"{name}:{cue.line}: {record.replace('_', ' ')}")
    if not records:
        summary = ", ".join(f"{count} {reason}" for reason, count in skipped.items()) or "no cues"
        raise SrtError(f"no subtitle cue with a usable position ({summary})", path=name, line=1)
    records.sort(key=lambda record: record.video_time_s)  # stable: file order where times tie
    return SrtTrack(name, tuple(records), skipped, tuple(problems[:20]))


def _decode(data: bytes) -> str:
    """Text of an SRT file: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8 (bad bytes replaced)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _cues(text: str, tz: tzinfo) -> list[_Cue]:
    """Split into cues at blank lines; each keeps its first line number, time code, clock and text body."""
    cues: list[_Cue] = []
    block: list[tuple[int, str]] = []
    for number, raw in enumerate([*text.splitlines(), ""], start=1):
        line = raw.strip().lstrip("\ufeff")
        if line:
            block.append((number, line))
        elif block:
            cues.append(_cue(block, tz))
            block = []
    return cues


def _cue(block: list[tuple[int, str]], tz: tzinfo) -> _Cue:
    lines = [text for _, text in block]
    if _CUE_NUMBER.match(lines[0]):
        lines = lines[1:]
    start_s: float | None = None
    if lines and (timecode := _TIMECODE.search(lines[0])):
        start_s = _seconds(*timecode.groups()[:4])
        lines = lines[1:]
    body = _TAG.sub(" ", " ".join(lines))
    date = _DATE.search(body)
    return _Cue(block[0][0], start_s, _clock(date, tz) if date else None, body)


def _record(cue: _Cue, first_clock: datetime | None, gps_order: GpsOrder) -> SrtRecord | str:
    """The cue's record, or the reason it is skipped."""
    values = _values(cue.body)
    position = _position(values, gps_order)
    if isinstance(position, str):
        return position
    video_time_s = cue.start_s
    if video_time_s is None and cue.timestamp is not None and first_clock is not None:
        video_time_s = (cue.timestamp - first_clock).total_seconds()
    if video_time_s is None:
        return "no_time"
    return SrtRecord(
        line=cue.line,
        video_time_s=video_time_s,
        timestamp=cue.timestamp,
        lat_deg=position[0],
        lon_deg=position[1],
        relative_altitude_m=_first(values, "rel_alt", "altitude", "h", "barometer", "hb"),
        absolute_altitude_m=_first(values, "abs_alt", "gps_alt"),
        pitch_deg=values.get("f_pitch"),
        roll_deg=values.get("f_roll"),
        yaw_deg=values.get("f_yaw"),
        gimbal_pitch_deg=_first(values, "g_pitch", "gb_pitch"),
        gimbal_roll_deg=_first(values, "g_roll", "gb_roll"),
        gimbal_yaw_deg=_first(values, "g_yaw", "gb_yaw"),
    )


def _values(body: str) -> dict[str, float]:
    """Every number the cue names, one lower-case key per quantity (``latitude``, ``rel_alt``, ``f_yaw`` …)."""
    values: dict[str, float] = {}
    for bracket in _BRACKET.findall(body):
        for key, number in _KEY_VALUE.findall(bracket):
            values[key.lower()] = float(number)
    for name, arguments in _FUNCTION.findall(body):
        parts = [_UNIT_NUMBER.match(part) for part in arguments.split(",")]
        if all(parts):
            _function_values(name, [(float(p[1]), p[2]) for p in parts if p], values)
        elif name == "GPS":  # GPS(N/A,N/A,3): no fix yet
            values["gps_unavailable"] = 1.0
    for key, pattern in _PLAIN_HEIGHTS:
        if found := pattern.search(body):
            values[key] = float(found[1])
    if "longtitude" in values:
        values.setdefault("longitude", values.pop("longtitude"))
    return values


def _function_values(name: str, numbers: list[tuple[float, str]], values: dict[str, float]) -> None:
    if name == "GPS" and len(numbers) >= 2:
        values["gps_a"], values["gps_b"] = numbers[0][0], numbers[1][0]
        if len(numbers) >= 3 and numbers[2][1].lower() == "m":
            values["gps_latitude_first"] = 1.0
            if numbers[2][0] != 0.0:  # the Matrice writes 0.0M when it has no GPS height
                values["gps_alt"] = numbers[2][0]
    elif name in ("F.PRY", "G.PRY") and len(numbers) == 3:
        prefix = name[0].lower()
        values[f"{prefix}_pitch"], values[f"{prefix}_roll"], values[f"{prefix}_yaw"] = (n for n, _ in numbers)


def _position(values: dict[str, float], gps_order: GpsOrder) -> tuple[float, float] | str:
    """(lat, lon) in degrees, or why there is none."""
    if "latitude" in values and "longitude" in values:
        lat, lon = values["latitude"], values["longitude"]
    elif "gps_a" in values:
        latitude_first = gps_order == "lat_lon" or (gps_order == "auto" and "gps_latitude_first" in values)
        a, b = values["gps_a"], values["gps_b"]
        lat, lon = (a, b) if latitude_first else (b, a)
        if gps_order == "auto" and abs(lat) > 90 >= abs(lon):
            lat, lon = lon, lat
    else:
        return "no_gps_fix" if "gps_unavailable" in values else "no_position"
    if lat == 0.0 and lon == 0.0:
        return "no_gps_fix"
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "position_out_of_range"
    return lat, lon


def _first(values: dict[str, float], *keys: str) -> float | None:
    return next((values[key] for key in keys if key in values and math.isfinite(values[key])), None)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _seconds(hours: str, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def _clock(found: re.Match[str], tz: tzinfo) -> datetime | None:
    year, month, day, hour, minute, second, milli, micro = found.groups()
    microseconds = int((milli or "0").ljust(3, "0")) * 1000 + int(micro or "0")
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), microseconds, tzinfo=tz
        )
    except ValueError:
        return None
