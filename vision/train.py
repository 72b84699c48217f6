"""Grow a detector: reviewed flags as a YOLO dataset, training with ultralytics, export to ONNX with class names.

Training and export need the optional extra (torch + ultralytics), imported only inside these functions; the
dataset exporter needs nothing beyond OpenCV. A city grows its own model this way: inspectors confirm or
reject flags, confirmed boxes become labels and rejected images become hard negatives (an image with an
empty label file teaches the model what is *not* a violation), and the model is fine-tuned on them.

Example:
    >>> data = export_yolo_dataset(reviewed, Path("dataset"), class_names=("car", "shed"))  # doctest: +SKIP
    >>> best = train_model(data, base_model="yolov8n.pt", epochs=30, run_dir=Path("runs"))  # doctest: +SKIP
    >>> export_onnx(best, Path("model.onnx"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from vision.detector import (
    DetectionParams,
    FloatArray,
    IntArray,
    ModelError,
    OnnxDetector,
    require_ultralytics,
)
from vision.evaluate import EvaluationReport, GroundTruth, LabelError, evaluate_detections, read_yolo_labels
from vision.model import Detections

log = logging.getLogger(__name__)

Verdict = Literal["confirmed", "rejected"]
VERDICTS: tuple[Verdict, ...] = ("confirmed", "rejected")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A dataset that cannot be written or read; the message names the image or file and what was wrong."""


@dataclass(frozen=True, eq=False)
class ReviewedImage:
    """One reviewed image (a frame or an evidence crop) with its boxes in its own pixels and the verdict.

    ``group`` keeps related images on one side of the train/validation split (a patrol, a clip): neighbouring
    frames look alike, so splitting them apart would overstate validation scores.
    """

    image_id: str
    image_bgr: npt.NDArray[np.uint8]
    boxes_xyxy: FloatArray
    class_ids: IntArray
    verdict: Verdict
    group: str = ""


def export_yolo_dataset(
    images: Sequence[ReviewedImage],
    output_dir: Path,
    *,
    class_names: tuple[str, ...],
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """Writes an ultralytics YOLO dataset (images/, labels/, data.yaml) and returns the ``data.yaml`` path.

    Confirmed images get one label line per box; rejected images an empty label file. The folder appears
    whole or not at all; an existing non-empty ``output_dir`` is refused.
    """
    if output_dir.exists() and any(output_dir.iterdir()):
        raise DatasetError(f"{output_dir}: already exists and is not empty; choose a new folder")
    for image in images:
        _check_image(image, len(class_names))
    val_groups = _validation_groups(images, val_fraction, seed)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        for image in images:
            _write_sample(staging, image, "val" if _group_of(image) in val_groups else "train")
        _write_data_yaml(staging / "data.yaml", class_names)
        if output_dir.exists():
            output_dir.rmdir()
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir / "data.yaml"


def _check_image(image: ReviewedImage, class_count: int) -> None:
    where = f"image {image.image_id!r}"
    if image.verdict not in VERDICTS:
        raise DatasetError(f"{where}: verdict {image.verdict!r} is not one of {', '.join(VERDICTS)}")
    shape = image.image_bgr.shape
    if image.image_bgr.dtype != np.uint8 or len(shape) != 3 or shape[2] != 3:
        raise DatasetError(f"{where}: expected an H×W×3 uint8 BGR image, got {shape} {image.image_bgr.dtype}")
    if image.boxes_xyxy.shape != (len(image.class_ids), 4):
        raise DatasetError(
            f"{where}: boxes {image.boxes_xyxy.shape} and classes {image.class_ids.shape} disagree"
        )
    if image.verdict == "rejected":
        return
    bad_class = (image.class_ids < 0) | (image.class_ids >= class_count)
    if bad_class.any():
        index = int(np.flatnonzero(bad_class)[0])
        raise DatasetError(
            f"{where}, box {index}: class {image.class_ids[index]} is outside 0–{class_count - 1}"
        )
    clipped = _clip(image.boxes_xyxy, shape[1], shape[0])
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if empty.any():
        index = int(np.flatnonzero(empty)[0])
        raise DatasetError(
            f"{where}, box {index}: {image.boxes_xyxy[index].tolist()} has no area inside the image"
        )


def _clip(boxes: FloatArray, width: int, height: int) -> FloatArray:
    clipped: FloatArray = boxes.astype(np.float32).clip(0, [width, height, width, height])
    return clipped


def _group_of(image: ReviewedImage) -> str:
    return image.group or image.image_id


def _validation_groups(images: Sequence[ReviewedImage], val_fraction: float, seed: int) -> set[str]:
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    groups = sorted({_group_of(image) for image in images})
    if len(groups) < 2:
        raise DatasetError(
            f"need at least two groups (or images) to split training from validation, got {len(groups)}"
        )
    count = min(len(groups) - 1, max(1, round(len(groups) * val_fraction)))
    chosen = np.random.default_rng(seed).choice(len(groups), size=count, replace=False)
    return {groups[int(index)] for index in chosen}


def _write_sample(root: Path, image: ReviewedImage, split: str) -> None:
    stem = _safe_stem(image.image_id)
    height, width = image.image_bgr.shape[:2]
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".jpg", image.image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise DatasetError(f"image {image.image_id!r}: JPEG encoding failed")
    (root / "images" / split / f"{stem}.jpg").write_bytes(encoded.tobytes())
    lines = [] if image.verdict == "rejected" else _label_lines(image, width, height)
    (root / "labels" / split / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")


def _safe_stem(image_id: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in image_id)


def _label_lines(image: ReviewedImage, width: int, height: int) -> list[str]:
    boxes = _clip(image.boxes_xyxy, width, height)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / [width, height]
    size = (boxes[:, 2:] - boxes[:, :2]) / [width, height]
    return [
        f"{int(class_id)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
        for class_id, (cx, cy), (w, h) in zip(image.class_ids, centre, size, strict=True)
    ]


def _write_data_yaml(path: Path, class_names: tuple[str, ...]) -> None:
    # No ``path:`` key: ultralytics then resolves the folders next to data.yaml, so the dataset can move.
    # JSON strings are valid YAML double-quoted scalars, so any class name (Chinese too) is quoted safely.
    names = "".join(f"  {index}: {json.dumps(name)}\n" for index, name in enumerate(class_names))
    path.write_text(f"train: images/train\nval: images/val\nnames:\n{names}", encoding="utf-8")


@dataclass(frozen=True, kw_only=True)
class TrainParams:
    """Training settings; ``device`` ``auto`` takes the first GPU when torch sees one, else the CPU."""

    epochs: int = 50
    image_px: int = 640
    batch: int = 16
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    patience: int = 50

    def __post_init__(self) -> None:
        for name in ("epochs", "image_px", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.image_px % 32:
            raise ValueError(f"image_px must be a multiple of 32 (the YOLO stride), got {self.image_px}")


def train_model(
    data_yaml: Path, *, base_model: str, run_dir: Path, params: TrainParams | None = None
) -> Path:
    """Trains with ultralytics and returns the best checkpoint (``.pt``).

    ``base_model`` is a checkpoint to fine-tune (``.pt``) or an architecture to train from scratch
    (``yolov8n.yaml``, ``yolo11n.yaml``).
    """
    params = params or TrainParams()
    if not data_yaml.is_file():
        raise ModelError(f"{data_yaml}: dataset description not found")
    ultralytics = require_ultralytics()
    model = ultralytics.YOLO(base_model)
    model.train(
        data=str(data_yaml),
        epochs=params.epochs,
        imgsz=params.image_px,
        batch=params.batch,
        device=_resolve_device(params.device),
        seed=params.seed,
        workers=params.workers,
        patience=params.patience,
        project=str(run_dir.resolve()),
        name="train",
        exist_ok=True,
        plots=False,
        verbose=False,
    )
    best = Path(model.trainer.best)
    if not best.is_file():
        raise ModelError(f"training finished without a checkpoint at {best}")
    return best


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    torch: Any = importlib.import_module("torch")
    return "0" if torch.cuda.is_available() else "cpu"


def export_onnx(weights: Path, output: Path, *, image_px: int = 640, dynamic_batch: bool = True) -> Path:
    """Exports an ultralytics checkpoint to ONNX at ``output`` (class names in its metadata), checked by loading.

    The file appears whole or not at all.
    """
    if not weights.is_file():
        raise ModelError(f"{weights}: checkpoint not found")
    ultralytics = require_ultralytics()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export.", dir=output.parent) as scratch:
        staged = Path(scratch) / weights.name
        shutil.copyfile(weights, staged)
        exported = Path(
            ultralytics.YOLO(str(staged)).export(
                format="onnx", imgsz=image_px, dynamic=dynamic_batch, simplify=True, verbose=False
            )
        )
        OnnxDetector(exported)  # refuses a file without class names or with an unexpected output
        os.replace(exported, output)
    log.info("exported %s → %s", weights, output)
    return output


@dataclass(frozen=True)
class YoloSplit:
    """The image files of one split of a YOLO dataset, their label files and the class names."""

    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    class_names: tuple[str, ...]


def read_split(data_yaml: Path, split: str) -> YoloSplit:
    """The images of ``split`` (``train`` or ``val``) that a YOLO ``data.yaml`` lists (a folder or a list of them).

    Folders resolve against the optional ``path`` key, itself relative to the file's own folder.
    """
    config = _read_yaml(data_yaml)
    names = _class_names(data_yaml, config.get("names"))
    root = data_yaml.parent / str(config.get("path", ""))
    entries = config.get(split)
    if entries is None:
        raise DatasetError(f"{data_yaml}: no {split!r} entry")
    folders = [root / str(entry) for entry in (entries if isinstance(entries, list) else [entries])]
    images = tuple(path for folder in folders for path in _images_in(data_yaml, folder))
    if not images:
        raise DatasetError(
            f"{data_yaml}: the {split!r} folders hold no images: {', '.join(map(str, folders))}"
        )
    return YoloSplit(images, tuple(label_path(path) for path in images), names)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # comes with the training extra

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"{path}: cannot read the dataset description: {error}") from error
    if not isinstance(config, dict):
        raise DatasetError(f"{path}: expected a mapping with train, val and names")
    return config


def _class_names(path: Path, names: Any) -> tuple[str, ...]:
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names or sorted(names) != list(range(len(names))):
        raise DatasetError(f"{path}: 'names' must list the classes or map 0..n-1 to them, got {names!r}")
    return tuple(str(names[index]) for index in range(len(names)))


def _images_in(data_yaml: Path, folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{data_yaml}: image folder {folder} not found")
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)


def label_path(image: Path) -> Path:
    """The label file of an image, by the YOLO rule: ``…/images/…/x.jpg`` → ``…/labels/…/x.txt``."""
    parts = list(image.parts)
    if "images" not in parts[:-1]:
        return image.with_suffix(".txt")
    parts[len(parts) - 2 - parts[-2::-1].index("images")] = "labels"
    return Path(*parts).with_suffix(".txt")


def evaluate_model(
    model: Path, data_yaml: Path, *, split: str = "val", confidence: float = 0.001, batch: int = 8
) -> EvaluationReport:
    """Precision, recall and AP50 per class of an ONNX model on one split of a YOLO dataset (whole images).

    Precision and recall count every detection at or above ``confidence``: keep it low for AP, raise it to
    the operating threshold for precision and recall.
    """
    data = read_split(data_yaml, split)
    detector = OnnxDetector(model, params=DetectionParams(confidence=confidence))
    found: list[Detections] = []
    truths: list[GroundTruth] = []
    for start in range(0, len(data.images), batch):
        paths = data.images[start : start + batch]
        images = [read_image(path) for path in paths]
        ids = [str(path) for path in paths]
        found += detector.detect(images, ids)
        truths += [
            label_truth(label, frame_id, image.shape[1], image.shape[0], data.class_names)
            for label, frame_id, image in zip(data.labels[start : start + batch], ids, images, strict=True)
        ]
    return evaluate_detections(found, truths, classes=data.class_names)


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """A BGR image from a file, or a :class:`DatasetError` naming it."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    return np.asarray(image, np.uint8)


def label_truth(label: Path, frame_id: str, width: int, height: int, names: tuple[str, ...]) -> GroundTruth:
    """The labelled boxes; no label file means no objects, as YOLO tools read it."""
    if not label.exists():
        return GroundTruth(frame_id, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), names)
    try:
        return read_yolo_labels(label, frame_id=frame_id, width_px=width, height_px=height, class_names=names)
    except LabelError as error:
        raise DatasetError(str(error)) from error
