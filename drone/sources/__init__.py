"""Frame sources: adapters that turn recorded or live drone footage into posed :class:`~drone.model.Frame` s.

Each module is one adapter and implements :class:`~drone.model.FrameSource` (iterate for frames, read
``stats`` for what was skipped and why):

- :mod:`drone.sources.video_srt`: a video file plus its DJI SRT subtitle telemetry;
- :mod:`drone.sources.photos`: a folder of DJI photos (EXIF GPS + DJI XMP angles and heights);
- :mod:`drone.sources.mavlink_stream`: a video (file, RTSP, RTMP) plus MAVLink telemetry (tlog or live link);
- :mod:`drone.sources.klv`: MPEG-TS with MISB ST 0601 KLV metadata;
- :class:`drone.framedir.FrameDirSource`: a frame folder written earlier.

:func:`open_source` picks the adapter for a path or address. Adapters are imported when used, so importing
this package stays cheap. Problems with the input as a whole raise :class:`FrameSourceError`; problems with
one frame are skipped and counted, never raised mid-stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from drone.model import Camera, Frame, FrameSource, StreamStats
from drone.srt import CHINA_STANDARD_TIME

if TYPE_CHECKING:
    from drone.sources.mavlink_stream import LiveTelemetry

DEFAULT_VIDEO_CAMERA = "mavic3e"
TS_SUFFIXES = frozenset({".ts", ".m2ts", ".mts"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FrameSourceError(Exception):
    """A source that cannot be read at all (missing file, no video stream, no telemetry); names the input."""


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source beyond its path; each adapter takes the options that apply to it.

    ``camera`` None means: from EXIF for photos, the ``mavic3e`` preset for video. ``start_time`` is when a
    video started where neither its telemetry nor its container says so. ``position_wait_s`` is how long a
    stream on a live MAVLink link waits for the link's first position.
    """

    srt: Path | None = None
    tlog: Path | None = None
    camera: Camera | None = None
    every_s: float = 0.0
    altitude_agl_m: float | None = None
    ground_amsl_m: float | None = None
    time_offset_s: float = 0.0
    max_gap_s: float = 1.5
    start_time: datetime | None = None
    tz: tzinfo = CHINA_STANDARD_TIME
    position_wait_s: float = 10.0


def open_source(
    source: str | Path, options: SourceOptions | None = None, *, live: LiveTelemetry | None = None
) -> FrameSource:
    """The frame source for ``source``, by what it is.

    A video or stream address with ``options.tlog`` or a ``live`` MAVLink link is posed by MAVLink; a folder
    is a frame folder or a photo folder; an MPEG-TS with a KLV stream (and no SRT given) is read as MISB
    ST 0601; any other video is read with its DJI SRT.

    Raises:
        FrameSourceError: the source does not exist or is none of these.
    """
    options = options or SourceOptions()
    if options.tlog is not None and live is not None:
        raise FrameSourceError(f"{source}: give a telemetry log or a live MAVLink link, not both")
    telemetry = live if live is not None else options.tlog
    if telemetry is not None:
        return _mavlink_source(str(source), options, telemetry)
    path = Path(source)
    if "://" in str(source) or not path.exists():
        raise FrameSourceError(f"{source}: no such file or folder (a stream needs MAVLink telemetry)")
    if path.is_dir():
        return _folder_source(path, options)
    if path.suffix.lower() in TS_SUFFIXES and options.srt is None:
        from drone.sources.klv import KlvVideoSource, has_klv_stream

        if has_klv_stream(path):
            return KlvVideoSource(
                path,
                camera=_video_camera(options),
                max_gap_s=options.max_gap_s,
                time_offset_s=options.time_offset_s,
                ground_amsl_m=options.ground_amsl_m,
                every_s=options.every_s,
            )
    from drone.sources.video_srt import VideoSrtSource

    return VideoSrtSource(
        path,
        options.srt,
        camera=_video_camera(options),
        every_s=options.every_s,
        time_offset_s=options.time_offset_s,
        max_gap_s=options.max_gap_s,
        altitude_agl_m=options.altitude_agl_m,
        start_time=options.start_time,
        tz=options.tz,
    )


class ThinnedSource:
    """A source thinned to at most one frame per ``every_s`` seconds of frame time."""

    def __init__(self, source: FrameSource, every_s: float) -> None:
        self.source = source
        self.every_s = every_s

    @property
    def stats(self) -> StreamStats:
        return self.source.stats

    def __iter__(self) -> Iterator[Frame]:
        next_time: datetime | None = None
        for frame in self.source:
            if next_time is not None and frame.timestamp < next_time - timedelta(microseconds=1):
                continue
            next_time = frame.timestamp + timedelta(seconds=self.every_s)
            yield frame


def fit_camera(camera: Camera, width_px: int, height_px: int) -> Camera:
    """``camera`` as it records frames of ``width_px`` × ``height_px``.

    Video modes use the full sensor width and crop its height to the frame's aspect ratio (DJI 16:9 video
    from a 4:3 sensor), so the focal length and sensor width stay and the pixel pitch follows the frame.
    """
    if (camera.image_width_px, camera.image_height_px) == (width_px, height_px):
        return camera
    return Camera(
        name=f"{camera.name} @ {width_px}x{height_px}",
        sensor_width_mm=camera.sensor_width_mm,
        sensor_height_mm=camera.sensor_width_mm * height_px / width_px,
        focal_length_mm=camera.focal_length_mm,
        image_width_px=width_px,
        image_height_px=height_px,
    )


def frame_id_prefix(name: str) -> str:
    """A file-name-safe prefix for frame ids made from a file or stream name (``DJI_0001.MP4`` → ``DJI_0001``)."""
    stem = _UNSAFE.sub("_", name.rsplit(".", 1)[0] if "." in name else name).strip("._-")
    return stem[:64] or "frame"


def _folder_source(folder: Path, options: SourceOptions) -> FrameSource:
    from drone.framedir import INDEX_NAME, FrameDirSource
    from drone.sources.photos import PhotoFolderSource, is_photo_folder

    source: FrameSource
    if (folder / INDEX_NAME).is_file():
        source = FrameDirSource(folder)
    elif is_photo_folder(folder):
        source = PhotoFolderSource(
            folder, camera=options.camera, altitude_agl_m=options.altitude_agl_m, tz=options.tz
        )
    else:
        raise FrameSourceError(f"{folder}: neither a frame folder ({INDEX_NAME}) nor a folder of JPEG photos")
    return ThinnedSource(source, options.every_s) if options.every_s else source


def _mavlink_source(source: str, options: SourceOptions, telemetry: Path | LiveTelemetry) -> FrameSource:
    from drone.sources.mavlink_stream import MavlinkVideoSource

    return MavlinkVideoSource(
        source,
        telemetry,
        camera=_video_camera(options),
        video_start=options.start_time,
        clock_offset_s=options.time_offset_s,
        max_gap_s=options.max_gap_s,
        every_s=options.every_s,
        first_position_timeout_s=options.position_wait_s,
    )


def _video_camera(options: SourceOptions) -> Camera:
    from drone.cameras import preset

    return options.camera or preset(DEFAULT_VIDEO_CAMERA).camera
