"""A video file with its DJI SRT subtitle telemetry, aligned by time → posed frames.

Video is decoded with PyAV (FFmpeg), packet by packet, so a corrupt frame is skipped and counted instead of
ending the stream the way ``cv2.VideoCapture.read`` does; a truncated file yields the frames before the cut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from drone.model import Camera, Frame, StreamStats
from drone.sources import FrameSourceError, fit_camera, frame_id_prefix
from drone.srt import CHINA_STANDARD_TIME, SrtRecord, SrtTrack, parse_srt

log = logging.getLogger(__name__)

SRT_SUFFIXES = (".SRT", ".srt")


@dataclass(frozen=True, eq=False)
class DecodedFrame:
    """One decoded video frame: its index in decode order, its time from the stream start, BGR pixels."""

    index: int
    time_s: float
    image: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video: frame size, frame rate and recording start (when written)."""

    width_px: int
    height_px: int
    frames_per_s: float | None
    creation_time: datetime | None


def probe_video(url: str) -> VideoInfo:
    """Open ``url`` (a file path or an RTSP/RTMP/HTTP address) and read its video stream's header.

    Raises:
        FrameSourceError: it cannot be opened (missing, truncated before the index, not a video) or has no
            video stream.
    """
    try:
        container = av.open(url, timeout=10.0)
    except (av.error.FFmpegError, OSError) as error:
        raise FrameSourceError(
            f"{url}: cannot open the video ({error}); is it complete and a video?"
        ) from None
    with container:
        if not container.streams.video:
            raise FrameSourceError(f"{url}: has no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        created = _parse_creation_time(container.metadata.get("creation_time"))
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, rate, created)


def decode_video(url: str, stats: StreamStats) -> Iterator[DecodedFrame]:
    """Every decodable frame of the first video stream; corrupt packets and a cut-off end are counted in
    ``stats`` (``corrupt_frame``, ``unreadable_rest``) and the stream goes on or ends cleanly."""
    try:
        container = av.open(url, timeout=10.0)
    except (av.error.FFmpegError, OSError) as error:
        raise FrameSourceError(f"{url}: cannot open the video ({error})") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start_s = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            start_s = float(stream.start_time * stream.time_base)
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        index = 0
        for packet in _packets(container, stream, url, stats):
            for picture in _decode(packet, url, stats):
                time_s = picture.time - start_s if picture.time is not None else index / rate
                yield DecodedFrame(index, time_s, np.asarray(picture.to_ndarray(format="bgr24"), np.uint8))
                index += 1


def find_srt(video: Path) -> Path:
    """The SRT file DJI writes next to ``video`` (same name, ``.SRT`` or ``.srt``).

    Raises:
        FrameSourceError: there is none.
    """
    for suffix in SRT_SUFFIXES:
        candidate = video.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise FrameSourceError(f"{video}: no subtitle file {video.stem}.SRT next to it; give the SRT file")


class VideoSrtSource:
    """Frames of a DJI video posed by its SRT telemetry.

    Each frame takes the SRT cue that covers its time (plus ``time_offset_s``, for an SRT that runs ahead or
    behind). Frames before the first cue, more than ``max_gap_s`` after the cue that covers them (a telemetry
    gap), or without a height (old layouts; give ``altitude_agl_m``) are skipped and counted. ``every_s``
    keeps at most one frame per that many seconds of video.

    The frame clock is the SRT's clock where it has one, else the container's ``creation_time`` (UTC, written
    by DJI drones), else ``start_time``; a frame with none of these is skipped as ``no_clock``.
    """

    def __init__(
        self,
        video: Path,
        srt: Path | SrtTrack | None = None,
        *,
        camera: Camera,
        every_s: float = 0.0,
        time_offset_s: float = 0.0,
        max_gap_s: float = 1.5,
        altitude_agl_m: float | None = None,
        start_time: datetime | None = None,
        tz: tzinfo = CHINA_STANDARD_TIME,
    ) -> None:
        if every_s < 0 or max_gap_s <= 0:
            raise ValueError(f"every_s must be ≥ 0 and max_gap_s > 0, got {every_s} and {max_gap_s}")
        if not video.is_file():
            raise FrameSourceError(f"{video}: no such video file")
        self.video = video
        self.track = srt if isinstance(srt, SrtTrack) else parse_srt(srt or find_srt(video), tz=tz)
        self.info = probe_video(str(video))
        self.camera = fit_camera(camera, self.info.width_px, self.info.height_px)
        self.every_s = every_s
        self.time_offset_s = time_offset_s
        self.max_gap_s = max_gap_s
        self.altitude_agl_m = altitude_agl_m
        self.start_time = start_time or self.info.creation_time
        self._prefix = frame_id_prefix(video.name)
        self._stats = StreamStats()

    @property
    def stats(self) -> StreamStats:
        return self._stats

    def __iter__(self) -> Iterator[Frame]:
        self._stats = StreamStats()
        next_time_s = 0.0
        for decoded in decode_video(str(self.video), self._stats):
            if self.every_s and decoded.time_s < next_time_s - 1e-6:
                continue
            frame = self._frame(decoded)
            if frame is not None:
                next_time_s = decoded.time_s + self.every_s
                self._stats.frames += 1
                yield frame

    def _frame(self, decoded: DecodedFrame) -> Frame | None:
        srt_time_s = decoded.time_s + self.time_offset_s
        record = self.track.at(srt_time_s)
        reason = self._unusable(record, srt_time_s)
        if reason or record is None:
            self._stats.skip(reason or "no_telemetry")
            return None
        timestamp = self._clock(record, srt_time_s, decoded.time_s)
        if timestamp is None:
            self._stats.skip("no_clock")
            return None
        return Frame(
            frame_id=f"{self._prefix}-{decoded.index:06d}",
            timestamp=timestamp,
            image=decoded.image,
            pose=record.to_pose(altitude_agl_m=self.altitude_agl_m),
            camera=self.camera,
            source=f"video+srt:{self.video.name}",
        )

    def _unusable(self, record: SrtRecord | None, srt_time_s: float) -> str | None:
        if record is None:
            return "no_telemetry"
        if srt_time_s - record.video_time_s > self.max_gap_s:
            return "telemetry_gap"
        if record.relative_altitude_m is None and self.altitude_agl_m is None:
            return "no_altitude"
        return None

    def _clock(self, record: SrtRecord, srt_time_s: float, video_time_s: float) -> datetime | None:
        if record.timestamp is not None:
            return record.timestamp + timedelta(seconds=srt_time_s - record.video_time_s)
        if self.start_time is not None:
            return self.start_time + timedelta(seconds=video_time_s)
        return None


def _packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, url: str, stats: StreamStats
) -> Iterator[av.Packet[av.video.stream.VideoStream]]:
    """Demux packets; a container that breaks off (truncated file, dropped stream) ends the stream cleanly."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as error:
            log.warning("%s: the rest of the video cannot be read (%s)", url, error)
            stats.skip("unreadable_rest")
            return
        yield packet


def _decode(
    packet: av.Packet[av.video.stream.VideoStream], url: str, stats: StreamStats
) -> list[av.VideoFrame]:
    try:
        return list(packet.decode())
    except av.error.FFmpegError as error:
        log.warning("%s: corrupt frame at packet pts %s skipped (%s)", url, packet.pts, error)
        stats.skip("corrupt_frame")
        return []


def _parse_creation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        created = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=CHINA_STANDARD_TIME)
