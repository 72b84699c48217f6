"""MPEG-TS with MISB ST 0601 (UAS Datalink Local Set) KLV metadata → posed frames, read with PyAV.

OpenCV cannot read data streams; PyAV demuxes the KLV data stream next to the video. Each KLV packet is a
UAS Datalink Local Set: the 16-byte universal key ``06 0E 2B 34 02 0B 01 01 0E 01 03 01 01 00 00 00``, a BER
length, then tag-length-value items with BER-OID tags and BER lengths, ending in the checksum (tag 1), a
16-bit running sum over every byte of the packet before the checksum value. Items read here:

====  ==============================  ========================================================
tag   item                            encoding (ST 0601)
====  ==============================  ========================================================
2     precision time stamp            uint64 µs since 1970-01-01 UTC
5/6/7 platform heading/pitch/roll     uint16 0..360°, int16 ±20°, int16 ±50°
13/14 sensor latitude/longitude       int32 ±90°, ±180°
15    sensor true altitude (MSL)      uint16 -900..19000 m
18/19 sensor relative azimuth/elev.   uint32 0..360°, int32 ±180°
20    sensor relative roll            uint32 0..360°
25    frame centre elevation (MSL)    uint16 -900..19000 m (ground height → height above ground)
====  ==============================  ========================================================

A packet with a wrong checksum, a cut-off item or no position is skipped and counted as ``bad_klv``.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av

from drone.model import Camera, Frame, Pose, StreamStats
from drone.sources import FrameSourceError, fit_camera, frame_id_prefix
from drone.sources.video_srt import DecodedFrame, decode_video, probe_video

log = logging.getLogger(__name__)

UAS_LOCAL_SET_KEY = bytes.fromhex("060E2B34020B01010E01030101000000")
TAG_CHECKSUM = 1
_INT32_SPAN = 4294967294.0
_UINT16_SPAN = 65535.0
_INT16_SPAN = 65534.0
_UINT32_SPAN = 4294967295.0


class KlvError(ValueError):
    """A KLV packet that is not a valid UAS Datalink Local Set; says what is wrong."""


@dataclass(frozen=True)
class UasDatalink:
    """The items of one UAS Datalink Local Set that pose a frame (``None`` where the packet lacks them)."""

    timestamp: datetime
    sensor_lat_deg: float
    sensor_lon_deg: float
    sensor_altitude_m: float | None = None  # above mean sea level
    platform_heading_deg: float | None = None
    platform_pitch_deg: float | None = None
    platform_roll_deg: float | None = None
    sensor_relative_azimuth_deg: float | None = None
    sensor_relative_elevation_deg: float | None = None
    sensor_relative_roll_deg: float | None = None
    frame_center_elevation_m: float | None = None  # ground height above mean sea level


def _unsigned(span: float, low: float, high: float) -> Callable[[bytes], float | None]:
    def decode(value: bytes) -> float | None:
        return low + int.from_bytes(value, "big") * (high - low) / span

    return decode


def _signed(span: float, half_range: float) -> Callable[[bytes], float | None]:
    def decode(value: bytes) -> float | None:
        raw = int.from_bytes(value, "big", signed=True)
        if raw == -(1 << (8 * len(value) - 1)):  # the reserved "out of range" value
            return None
        return raw * 2 * half_range / span

    return decode


_DECODERS: dict[int, tuple[str, int, Callable[[bytes], float | None]]] = {
    5: ("platform_heading_deg", 2, _unsigned(_UINT16_SPAN, 0.0, 360.0)),
    6: ("platform_pitch_deg", 2, _signed(_INT16_SPAN, 20.0)),
    7: ("platform_roll_deg", 2, _signed(_INT16_SPAN, 50.0)),
    13: ("sensor_lat_deg", 4, _signed(_INT32_SPAN, 90.0)),
    14: ("sensor_lon_deg", 4, _signed(_INT32_SPAN, 180.0)),
    15: ("sensor_altitude_m", 2, _unsigned(_UINT16_SPAN, -900.0, 19000.0)),
    18: ("sensor_relative_azimuth_deg", 4, _unsigned(_UINT32_SPAN, 0.0, 360.0)),
    19: ("sensor_relative_elevation_deg", 4, _signed(_INT32_SPAN, 180.0)),
    20: ("sensor_relative_roll_deg", 4, _unsigned(_UINT32_SPAN, 0.0, 360.0)),
    25: ("frame_center_elevation_m", 2, _unsigned(_UINT16_SPAN, -900.0, 19000.0)),
}


def checksum(data: bytes) -> int:
    """ST 0601 checksum: 16-bit sum of the bytes, even positions in the high byte."""
    total = 0
    for index, byte in enumerate(data):
        total += byte << (8 * ((index + 1) % 2))
    return total & 0xFFFF


def split_local_sets(data: bytes) -> Iterator[bytes]:
    """Every whole UAS Datalink Local Set (key to end of value) in ``data``; stray bytes between are ignored."""
    start = data.find(UAS_LOCAL_SET_KEY)
    while start >= 0:
        try:
            length, value_at = _ber_length(data, start + len(UAS_LOCAL_SET_KEY))
        except KlvError:
            return
        end = value_at + length
        if end > len(data):
            return
        yield data[start:end]
        start = data.find(UAS_LOCAL_SET_KEY, end)


def parse_local_set(packet: bytes) -> UasDatalink:
    """Decode one UAS Datalink Local Set (starting at its key), checking its checksum.

    Raises:
        KlvError: wrong key, cut-off item, bad checksum, or no time stamp or sensor position.
    """
    if not packet.startswith(UAS_LOCAL_SET_KEY):
        raise KlvError("not a UAS Datalink Local Set (wrong universal key)")
    length, offset = _ber_length(packet, len(UAS_LOCAL_SET_KEY))
    if offset + length > len(packet):
        raise KlvError(f"packet cut off: {len(packet) - offset} of {length} value bytes")
    items = _items(packet, offset, offset + length)
    _check(packet, items)
    return _datalink(items)


def _items(packet: bytes, start: int, end: int) -> dict[int, tuple[int, bytes]]:
    """tag → (offset of the item's tag byte, value)."""
    items: dict[int, tuple[int, bytes]] = {}
    offset = start
    while offset < end:
        item_at = offset
        tag, offset = _ber_oid(packet, offset, end)
        length, offset = _ber_length(packet, offset, end)
        if offset + length > end:
            raise KlvError(f"item {tag} cut off: needs {length} bytes, {end - offset} left")
        items[tag] = (item_at, packet[offset : offset + length])
        offset += length
    return items


def _check(packet: bytes, items: dict[int, tuple[int, bytes]]) -> None:
    if TAG_CHECKSUM not in items:
        raise KlvError("no checksum item (tag 1)")
    item_at, value = items[TAG_CHECKSUM]
    if len(value) != 2:
        raise KlvError(f"checksum item has {len(value)} bytes, expected 2")
    expected = checksum(packet[: item_at + 2])
    if int.from_bytes(value, "big") != expected:
        raise KlvError(f"checksum mismatch: packet says {value.hex()}, computed {expected:04x}")


def _datalink(items: dict[int, tuple[int, bytes]]) -> UasDatalink:
    if 2 not in items or len(items[2][1]) != 8:
        raise KlvError("no precision time stamp (tag 2)")
    timestamp = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int.from_bytes(items[2][1], "big"))
    values: dict[str, float | None] = {}
    for tag, (name, size, decode) in _DECODERS.items():
        if tag in items:
            value = items[tag][1]
            if len(value) != size:
                raise KlvError(f"item {tag} has {len(value)} bytes, expected {size}")
            values[name] = decode(value)
    lat, lon = values.pop("sensor_lat_deg", None), values.pop("sensor_lon_deg", None)
    if lat is None or lon is None:
        raise KlvError("no sensor latitude/longitude (tags 13, 14)")
    return UasDatalink(timestamp, lat, lon, **values)


def _ber_length(data: bytes, offset: int, end: int | None = None) -> tuple[int, int]:
    """(length, offset after it) of a BER short- or long-form length."""
    end = len(data) if end is None else end
    if offset >= end:
        raise KlvError("length missing at the end of the packet")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if size == 0 or size > 8 or offset + 1 + size > end:
        raise KlvError(f"bad BER length at byte {offset}")
    return int.from_bytes(data[offset + 1 : offset + 1 + size], "big"), offset + 1 + size


def _ber_oid(data: bytes, offset: int, end: int) -> tuple[int, int]:
    """(tag, offset after it) of a BER-OID tag (7 bits per byte, high bit = more bytes follow)."""
    tag = 0
    while offset < end:
        byte = data[offset]
        tag = (tag << 7) | (byte & 0x7F)
        offset += 1
        if byte < 0x80:
            return tag, offset
    raise KlvError("tag cut off at the end of the packet")


def to_pose(datalink: UasDatalink, *, ground_amsl_m: float | None = None) -> Pose | None:
    """The pose of a datalink; None when its height above ground is unknown.

    Height above ground is the sensor's MSL altitude less the ground's: the packet's frame centre elevation,
    else ``ground_amsl_m``. Sensor angles in ST 0601 are relative to the platform.
    """
    ground = (
        datalink.frame_center_elevation_m if datalink.frame_center_elevation_m is not None else ground_amsl_m
    )
    if datalink.sensor_altitude_m is None or ground is None:
        return None
    azimuth = datalink.sensor_relative_azimuth_deg or 0.0
    roll = datalink.sensor_relative_roll_deg or 0.0
    return Pose(
        lat_deg=datalink.sensor_lat_deg,
        lon_deg=datalink.sensor_lon_deg,
        altitude_agl_m=datalink.sensor_altitude_m - ground,
        altitude_amsl_m=datalink.sensor_altitude_m,
        yaw_deg=datalink.platform_heading_deg or 0.0,
        pitch_deg=datalink.platform_pitch_deg or 0.0,
        roll_deg=datalink.platform_roll_deg or 0.0,
        gimbal_yaw_deg=azimuth - 360.0 if azimuth > 180.0 else azimuth,
        gimbal_pitch_deg=_or(datalink.sensor_relative_elevation_deg, -90.0),
        gimbal_roll_deg=roll - 360.0 if roll > 180.0 else roll,
        gimbal_absolute=False,
    )


def has_klv_stream(video: Path) -> bool:
    """True when ``video`` opens and carries a KLV data stream."""
    try:
        with av.open(str(video)) as container:
            return any(_is_klv(stream) for stream in container.streams.data)
    except (av.error.FFmpegError, OSError):
        return False


def read_klv_track(video: Path, stats: StreamStats) -> list[tuple[float, UasDatalink]]:
    """(time from the video's start in s, datalink) for every valid Local Set, in time order.

    Invalid ones are counted in ``stats`` as ``bad_klv``.
    """
    track: list[tuple[float, UasDatalink]] = []
    with av.open(str(video)) as container:
        streams = [s for s in container.streams.data if _is_klv(s)]
        if not streams:
            raise FrameSourceError(f"{video}: no KLV data stream")
        origin_s = _video_origin_s(container)
        for packet in container.demux(streams[0]):
            if packet.pts is None or packet.time_base is None or not packet.size:
                continue
            time_s = float(packet.pts * packet.time_base) - origin_s
            track.extend((time_s, datalink) for datalink in _datalinks(bytes(packet), video, stats))
    track.sort(key=lambda item: item[0])
    return track


class KlvVideoSource:
    """Frames of an MPEG-TS posed by its MISB ST 0601 KLV stream.

    Each frame takes the latest Local Set at or before its time (plus ``time_offset_s``); frames before the
    first one, more than ``max_gap_s`` after it, or without a height above ground are skipped and counted;
    ``every_s`` keeps at most one frame per that many seconds of video.
    The frame clock is the Local Set's precision time stamp, advanced by the time since it.
    """

    def __init__(
        self,
        video: Path,
        *,
        camera: Camera,
        max_gap_s: float = 1.5,
        time_offset_s: float = 0.0,
        ground_amsl_m: float | None = None,
        every_s: float = 0.0,
    ) -> None:
        if not video.is_file():
            raise FrameSourceError(f"{video}: no such video file")
        info = probe_video(str(video))
        self.video = video
        self.camera = fit_camera(camera, info.width_px, info.height_px)
        self.max_gap_s = max_gap_s
        self.time_offset_s = time_offset_s
        self.ground_amsl_m = ground_amsl_m
        self.every_s = every_s
        self._prefix = frame_id_prefix(video.name)
        self._stats = StreamStats()

    @property
    def stats(self) -> StreamStats:
        return self._stats

    def __iter__(self) -> Iterator[Frame]:
        self._stats = StreamStats()
        track = read_klv_track(self.video, self._stats)
        times = [time_s for time_s, _ in track]
        next_time_s = -math.inf
        for decoded in decode_video(str(self.video), self._stats):
            if decoded.time_s < next_time_s - 1e-6:
                continue
            frame = self._frame(decoded, track, times)
            if frame is not None:
                next_time_s = decoded.time_s + self.every_s
                self._stats.frames += 1
                yield frame

    def _frame(
        self, decoded: DecodedFrame, track: list[tuple[float, UasDatalink]], times: list[float]
    ) -> Frame | None:
        time_s = decoded.time_s + self.time_offset_s
        index = bisect.bisect_right(times, time_s + 1e-6) - 1
        if index < 0:
            self._stats.skip("no_telemetry")
            return None
        klv_time_s, datalink = track[index]
        if time_s - klv_time_s > self.max_gap_s:
            self._stats.skip("telemetry_gap")
            return None
        pose = to_pose(datalink, ground_amsl_m=self.ground_amsl_m)
        if pose is None:
            self._stats.skip("no_altitude")
            return None
        return Frame(
            frame_id=f"{self._prefix}-{decoded.index:06d}",
            timestamp=datalink.timestamp + timedelta(seconds=max(0.0, time_s - klv_time_s)),
            image=decoded.image,
            pose=pose,
            camera=self.camera,
            source=f"klv:{self.video.name}",
        )


def _datalinks(data: bytes, video: Path, stats: StreamStats) -> Iterator[UasDatalink]:
    found = False
    for packet in split_local_sets(data):
        found = True
        try:
            yield parse_local_set(packet)
        except KlvError as error:
            log.warning("%s: KLV packet skipped: %s", video, error)
            stats.skip("bad_klv")
    if not found:
        log.warning("%s: data packet without a UAS Datalink Local Set skipped", video)
        stats.skip("bad_klv")


def _is_klv(stream: av.stream.Stream) -> bool:
    return stream.name == "klv"


def _video_origin_s(container: av.container.InputContainer) -> float:
    if not container.streams.video:
        return 0.0
    stream = container.streams.video[0]
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
