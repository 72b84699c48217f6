"""``skygrid`` subcommands of the vision package; heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command("train")
@click.argument(
    "data_yaml", metavar="DATA.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--backend",
    type=click.Choice(["ultralytics", "scratch"]),
    default="ultralytics",
    show_default=True,
    help="ultralytics (optional extra), or scratch: the project's own small detector in plain torch.",
)
@click.option(
    "--model",
    "base_model",
    default="yolov8n.yaml",
    show_default=True,
    help="ultralytics: checkpoint to fine-tune (.pt) or architecture to train from scratch (.yaml).",
)
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--imgsz",
    "image_px",
    default=640,
    show_default=True,
    type=click.IntRange(min=32),
    help="Network input side (scratch: of the exported model).",
)
@click.option(
    "--crop",
    "crop_px",
    default=320,
    show_default=True,
    type=click.IntRange(min=64),
    help="scratch: side of the training crops, at the images' own pixel scale.",
)
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--lr",
    default=2e-3,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="scratch: peak learning rate (AdamW, cosine decay).",
)
@click.option(
    "--threads", default=2, show_default=True, type=click.IntRange(min=1), help="scratch: CPU threads."
)
@click.option(
    "--device", default="auto", show_default=True, help="ultralytics: auto (GPU when present), cpu, 0 …"
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="ultralytics: run folder (default runs); scratch: the .onnx file (default model.onnx).",
)
def train(data_yaml: Path, backend: str, output: Path | None, **options: Any) -> None:
    """Train a YOLO detector on a YOLO dataset (DATA.yaml as ultralytics reads it).

    The ultralytics backend needs the optional torch + ultralytics extra and writes a checkpoint; the scratch
    backend needs only torch, trains the project's own small detector from random weights and writes an
    ONNX model that `skygrid detect` runs, then reports precision, recall and mAP50 on the val split.
    """
    from vision.detector import ModelError

    try:
        if backend == "scratch":
            _train_scratch(data_yaml, output or Path("model.onnx"), options)
        else:
            _train_ultralytics(data_yaml, output or Path("runs"), options)
    except (ModelError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _train_ultralytics(data_yaml: Path, run_dir: Path, options: dict[str, Any]) -> None:
    from vision.train import TrainParams, train_model

    params = TrainParams(
        epochs=options["epochs"],
        image_px=options["image_px"],
        batch=options["batch"],
        device=options["device"],
        seed=options["seed"],
    )
    best = train_model(data_yaml, base_model=options["base_model"], run_dir=run_dir, params=params)
    click.echo(f"best checkpoint: {best}")


def _train_scratch(data_yaml: Path, output: Path, options: dict[str, Any]) -> None:
    try:
        from vision.scratch import ScratchParams, train_scratch
    except ImportError as error:
        raise click.ClickException(f"the scratch backend needs torch (pip install torch): {error}") from error
    from vision.train import evaluate_model

    params = ScratchParams(
        epochs=options["epochs"],
        batch=options["batch"],
        crop_px=options["crop_px"],
        export_px=options["image_px"],
        lr=options["lr"],
        threads=options["threads"],
        seed=options["seed"],
    )
    result = train_scratch(
        data_yaml,
        output,
        params,
        on_epoch=lambda e: click.echo(
            f"epoch {e.epoch}/{params.epochs}: loss {e.loss:.3f} (box {e.box_loss:.3f}, cls {e.cls_loss:.3f}), "
            f"{e.seconds:.0f} s"
        ),
    )
    click.echo(f"wrote {result.model_path} ({result.parameters:,} parameters)")
    click.echo("validation split, detections scoring at least 0.25:")
    click.echo(evaluate_model(result.model_path, data_yaml, confidence=0.25).table())


@click.command("export-model")
@click.argument("weights", metavar="WEIGHTS.pt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help=".onnx file."
)
@click.option("--imgsz", "image_px", default=640, show_default=True, type=click.IntRange(min=32))
@click.option(
    "--dynamic/--static", default=True, show_default=True, help="Dynamic batch size (batched tiles)."
)
def export_model(weights: Path, output: Path, image_px: int, dynamic: bool) -> None:
    """Export a trained checkpoint to ONNX, class names in its metadata, for `skygrid detect`."""
    from vision.detector import ModelError
    from vision.train import export_onnx

    try:
        written = export_onnx(weights, output, image_px=image_px, dynamic_batch=dynamic)
    except ModelError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {written}")


COMMANDS: list[click.Command] = [train, export_model]
