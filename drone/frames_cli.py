"""``skygrid frames SOURCE -o DIR``: any footage with telemetry → a frame folder of posed frames."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from drone.model import Camera, FrameSource, StreamStats
    from drone.sources import SourceOptions

# Chinese names of the skip reasons, for the operators who read the summary.
REASONS_ZH = {
    "corrupt_frame": "损坏的视频帧",
    "unreadable_rest": "视频截断",
    "no_telemetry": "无遥测",
    "telemetry_gap": "遥测中断",
    "no_altitude": "无相对高度",
    "no_clock": "无时间",
    "no_gps": "无GPS",
    "no_camera_model": "无相机参数",
    "unreadable_image": "图像无法读取",
    "missing_image": "图像缺失",
    "bad_record": "记录损坏",
    "duplicate_frame_id": "帧编号重复",
    "bad_klv": "KLV元数据损坏",
}


@click.command("frames")
@click.argument("source")
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Frame folder."
)
@click.option(
    "--srt", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="DJI SRT of a video."
)
@click.option(
    "--tlog", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="MAVLink telemetry log."
)
@click.option(
    "--mavlink",
    "mavlink_url",
    help="Live MAVLink link for a stream: udpin:0.0.0.0:14550, tcp:HOST:5760 or serial:/dev/ttyUSB0:57600.",
)
@click.option(
    "--camera",
    "camera_spec",
    help="Preset or W_MMxH_MM:FOCAL_MM:W_PXxH_PX (default: EXIF for photos, mavic3e for video).",
)
@click.option(
    "--every-s", type=click.FloatRange(min=0.0), default=0.0, show_default=True, help="Frame interval."
)
@click.option("--altitude-agl-m", type=float, help="Height above take-off where the telemetry has none.")
@click.option(
    "--ground-amsl-m", type=float, help="Ground height above sea level for KLV without frame centre."
)
@click.option("--time-offset-s", type=float, default=0.0, show_default=True, help="Telemetry clock skew.")
@click.option(
    "--max-gap-s",
    type=click.FloatRange(min=0.0, min_open=True),
    default=1.5,
    show_default=True,
    help="Skip frames further than this from their telemetry.",
)
@click.option(
    "--start-time", type=click.DateTime(), help="Recording start (local time) when nothing else says."
)
@click.option("--utc-offset-h", type=float, default=8.0, show_default=True, help="Zone of the drone's clock.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=92, show_default=True)
def frames(
    source: str,
    output: Path,
    srt: Path | None,
    tlog: Path | None,
    mavlink_url: str | None,
    camera_spec: str | None,
    every_s: float,
    altitude_agl_m: float | None,
    ground_amsl_m: float | None,
    time_offset_s: float,
    max_gap_s: float,
    start_time: datetime | None,
    utc_offset_h: float,
    jpeg_quality: int,
) -> None:
    """Turn SOURCE into a frame folder DIR (frames.jsonl + images/) of posed, timestamped frames.

    SOURCE is detected: a frame folder, a folder of DJI photos, an MPEG-TS with MISB ST 0601 KLV, or a video
    with its DJI SRT (next to it or given with --srt). A video or an rtsp:// / rtmp:// stream is posed by
    MAVLink telemetry with --tlog FILE or --mavlink URL. Frames that cannot be posed are skipped and counted;
    a live stream runs until Ctrl-C.
    """
    from drone.sources import SourceOptions

    tz = timezone(timedelta(hours=utc_offset_h))
    options = SourceOptions(
        srt=srt,
        tlog=tlog,
        camera=_camera(camera_spec) if camera_spec else None,
        every_s=every_s,
        altitude_agl_m=altitude_agl_m,
        ground_amsl_m=ground_amsl_m,
        time_offset_s=time_offset_s,
        max_gap_s=max_gap_s,
        start_time=start_time.replace(tzinfo=tz) if start_time else None,
        tz=tz,
    )
    with ExitStack() as resources:
        stream = _open(source, options, mavlink_url, resources)
        written = _write(stream, output, jpeg_quality)
    _report(stream.stats, written, output)
    if stream.stats.frames == 0:
        raise click.ClickException(f"no frame of {source} could be posed (没有可用的帧)")


def _open(source: str, options: SourceOptions, mavlink_url: str | None, resources: ExitStack) -> FrameSource:
    from drone.sources import FrameSourceError, open_source
    from drone.sources.mavlink_stream import LiveTelemetry
    from drone.srt import SrtError

    try:
        live = resources.enter_context(LiveTelemetry(mavlink_url)) if mavlink_url else None
        return open_source(source, options, live=live)
    except (FrameSourceError, SrtError) as error:
        raise click.ClickException(str(error)) from None


def _write(stream: FrameSource, output: Path, jpeg_quality: int) -> StreamStats | None:
    """Write the frames; None when the user stopped a live stream with Ctrl-C (what was written stays)."""
    from drone.framedir import FrameDirError, write_frame_dir
    from drone.sources import FrameSourceError
    from drone.srt import SrtError

    try:
        return write_frame_dir(stream, output, jpeg_quality=jpeg_quality)
    except (FrameSourceError, SrtError, FrameDirError) as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        click.echo("已停止 / stopped")
        return None


def _report(source: StreamStats, written: StreamStats | None, output: Path) -> None:
    count = written.frames if written else source.frames
    click.echo(f"已写入 {count} 帧 / wrote {count} frames to {output}")
    _echo_skips(source, "source")
    if written:
        _echo_skips(written, "writer")


def _camera(spec: str) -> Camera:
    from drone.cameras import parse_camera

    try:
        return parse_camera(spec).camera
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--camera") from None


def _echo_skips(stats: StreamStats, where: str) -> None:
    for reason, count in sorted(stats.skipped.items()):
        label = REASONS_ZH.get(reason, "")
        click.echo(f"skipped {count} ({where}: {reason}{' ' + label if label else ''})")


COMMANDS: list[click.Command] = [frames]
