"""``skygrid detect`` (frames → flags on the map) and ``skygrid eval`` (flags against ground truth).

Heavy imports stay inside the commands so that ``skygrid --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

if TYPE_CHECKING:
    from drone.model import FrameSource
    from vision.detector import Backend
    from vision.model import Detector
    from vision.pipeline import Pipeline, PipelineReport

MODELS_DIR = Path(__file__).resolve().parent / "models"
BACKENDS = ("auto", "onnxruntime", "opencv", "ultralytics")
SKIP_REASONS_ZH = {
    "corrupt_frame": "损坏的帧",
    "pose_gap": "位姿缺失",
    "not_novel": "已覆盖区域",
    "already_processed": "上次已处理",
}


@click.command("detect")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Published plan GeoPackage (grids and micro-grids).",
)
@click.option(
    "--zones",
    "zones_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="GeoPackage with layers parking, fire_lanes, green, public_space (and buildings), e.g. the district.",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Flags GeoPackage."
)
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Detector (.onnx; .pt with the training extra). Default: the demo model in vision/models.")  # fmt: skip
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--slice/--no-slice", "sliced", default=True, show_default=True, help="Tiled inference at native resolution.")  # fmt: skip
@click.option("--full-frame/--tiles-only", "full_frame", default=None, help="Add a downscaled full-frame pass to the tiles (default: yes for --model, no for the demo model, which learnt objects at native scale).")  # fmt: skip
@click.option("--srt", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="DJI SRT for a video SOURCE.")  # fmt: skip
@click.option("--camera", "camera_key", help="Camera preset (default: from EXIF for photos, mavic3e for video).")  # fmt: skip
@click.option("--categories", "categories_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="City category table (CSV: class_name,code,name,name_en,standard).")  # fmt: skip
@click.option("--novelty", default=0.4, show_default=True, type=click.FloatRange(0.0, 1.0), help="Skip frames with less new ground than this share.")  # fmt: skip
@click.option("--min-score", default=0.25, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--fresh", is_flag=True, help="Forget an interrupted run's state and start over.")
def detect(
    source: Path,
    plan_path: Path,
    zones_path: Path,
    output: Path,
    model_path: Path | None,
    backend: str,
    sliced: bool,
    full_frame: bool | None,
    srt: Path | None,
    camera_key: str | None,
    categories_path: Path | None,
    novelty: float,
    min_score: float,
    fresh: bool,
) -> None:
    """Find violations in SOURCE (a frame folder, a photo folder or a video + SRT) and write them as flags.

    An interrupted run continues where it stopped when started again with the same SOURCE and output.
    找出违章（私搭乱建、乱堆物堆料、乱停放），写入网格案件线索。
    """
    from drone.framedir import FrameDirError
    from drone.sources import FrameSourceError
    from gis.errors import GisError
    from vision.detector import ModelError
    from vision.flags import FlagsError
    from vision.pipeline import PipelineError, state_path
    from vision.rules import ZonesError

    if fresh:
        state_path(output).unlink(missing_ok=True)
    try:
        detector = build_detector(model_path, backend, sliced, full_frame)
        pipeline = _pipeline(detector, plan_path, zones_path, categories_path, novelty, min_score)
        frames = _open_source(source, srt, camera_key)
        report = pipeline.run(frames, output, source_name=str(source.resolve()))
    except (
        GisError,
        ZonesError,
        FlagsError,
        ModelError,
        PipelineError,
        FrameDirError,
        FrameSourceError,
    ) as error:
        raise click.ClickException(str(error)) from error
    _echo_report(report, output)


def _pipeline(
    detector: Detector,
    plan_path: Path,
    zones_path: Path,
    categories_path: Path | None,
    novelty: float,
    min_score: float,
) -> Pipeline:
    from gis.crs import local_metric_crs
    from gis.io import read_plan
    from vision.flags import DEFAULT_SCHEME, read_scheme
    from vision.geolocate import Geolocator
    from vision.pipeline import Pipeline, PipelineConfig
    from vision.rules import PlanIndex, read_zones

    plan = read_plan(plan_path)
    crs = local_metric_crs(plan.grids)
    zones = read_zones(zones_path, crs)
    scheme = read_scheme(categories_path) if categories_path else DEFAULT_SCHEME
    return Pipeline(
        detector,
        Geolocator(crs, zones.buildings),
        zones,
        PlanIndex(plan, crs),
        scheme=scheme,
        config=PipelineConfig(novelty_min=novelty, min_score=min_score),
    )


def default_model() -> Path:
    """The committed demo-world model: the one ``.onnx`` file in ``vision/models``."""
    from vision.detector import ModelError

    models = sorted(MODELS_DIR.glob("*.onnx")) if MODELS_DIR.is_dir() else []
    if len(models) != 1:
        raise ModelError(f"no single default model in {MODELS_DIR} (found {len(models)}); pass --model")
    return models[0]


def build_detector(
    model_path: Path | None, backend: str = "auto", sliced: bool = True, full_frame: bool | None = None
) -> Detector:
    """The detector ``skygrid detect`` runs: ``model_path`` (else the demo model) on ``backend``, sliced into
    native-resolution tiles, plus a full-frame pass for any model but the demo model unless ``full_frame``
    says otherwise (the demo model learnt objects at native scale only)."""
    from vision.detector import load_detector
    from vision.slicing import SlicedDetector, SliceParams

    detector = load_detector(model_path or default_model(), backend=cast("Backend", backend))
    full = model_path is not None if full_frame is None else full_frame
    return SlicedDetector(detector, SliceParams(full_frame=full)) if sliced else detector


def _open_source(source: Path, srt: Path | None, camera_key: str | None) -> FrameSource:
    """The frame source for SOURCE: a frame folder, DJI photos, a video with its SRT or an MPEG-TS with KLV."""
    from drone.cameras import preset
    from drone.sources import SourceOptions, open_source

    try:
        camera = preset(camera_key).camera if camera_key else None
    except KeyError as error:
        raise click.BadParameter(str(error), param_hint="--camera") from None
    return open_source(source, SourceOptions(srt=srt, camera=camera))


def _echo_report(report: PipelineReport, output: Path) -> None:
    click.echo(
        f"读取 {report.frames_read} 帧, 处理 {report.frames_processed} 帧, 线索 {report.flags} 条 / "
        f"read {report.frames_read} frames, processed {report.frames_processed}, wrote {report.flags} flags "
        f"({report.tracks} tracked objects) to {output}"
    )
    for reason, count in sorted(report.skipped.items()):
        label = SKIP_REASONS_ZH.get(reason, "")
        click.echo(f"  skipped {count} × {reason} {label}".rstrip())
    if report.implausible:
        click.echo(f"  dropped {report.implausible} detections of a size their class cannot have / 尺寸不符")
    click.echo(
        f"  {report.frames_per_s():.1f} frames/s end to end, p95 latency {report.latency_p95_s():.2f} s"
    )
    for name, stage in report.stages.items():
        click.echo(
            f"  {name:>9}: {stage.items:>6} items, {stage.busy_s:7.2f} s busy, {stage.per_s():8.1f} /s"
        )


@click.command("eval")
@click.argument(
    "flags_path", metavar="FLAGS.gpkg", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--truth",
    "truth_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ground truth GeoPackage (layer objects), e.g. from simulate-patrol.",
)
@click.option("--match-m", default=3.0, show_default=True, type=click.FloatRange(min=0.0, min_open=True))
def eval_(flags_path: Path, truth_path: Path, match_m: float) -> None:
    """Score flags against ground truth: precision, recall, geolocation RMS and duplicates per category.

    按类别统计准确率、召回率、定位误差和重复率。
    """
    from vision.flags import FlagsError
    from vision.metrics_geo import TruthError, score_files

    try:
        scores = score_files(flags_path, truth_path, match_m=match_m)
    except (FlagsError, TruthError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(scores.table())


COMMANDS = [detect, eval_]
