"""``skygrid`` subcommands of the vision package; heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.argument(
    "data_yaml", metavar="DATA.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--model",
    "base_model",
    default="yolov8n.yaml",
    show_default=True,
    help="Checkpoint to fine-tune (.pt) or architecture to train from scratch (.yaml).",
)
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--imgsz", "image_px", default=640, show_default=True, type=click.IntRange(min=32))
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, help="auto (GPU when present), cpu, 0, 0,1 …")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "-o", "--output", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs")
)
def train(
    data_yaml: Path,
    base_model: str,
    epochs: int,
    image_px: int,
    batch: int,
    device: str,
    seed: int,
    run_dir: Path,
) -> None:
    """Train a YOLO detector on a YOLO dataset (needs the optional torch + ultralytics extra)."""
    from vision.detector import ModelError
    from vision.train import TrainParams, train_model

    try:
        params = TrainParams(epochs=epochs, image_px=image_px, batch=batch, device=device, seed=seed)
        best = train_model(data_yaml, base_model=base_model, run_dir=run_dir, params=params)
    except (ModelError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"best checkpoint: {best}")


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
