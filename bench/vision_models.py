"""Part 2 of ``bench/vision.py``: model speed per backend, and vehicles on real drone frames, sliced vs full frame.

1. **Speed.** Milliseconds per 640×640 tile (median of ``--repeats`` calls after warm-up, one tile per call,
   letterbox + network + decode + NMS) for ONNX Runtime (fp32 and the int8 file), OpenCV DNN (fp32) and
   ultralytics (``.pt``, only when the optional extra imports), all on the shared COCO YOLOv8n weights
   (``../shared/models``) and the same drone tile.
2. **Real frames.** On ``../shared/aerial_samples`` (20 nadir 1080p DJI frames from three clips), vehicle
   precision, recall, AP50 and the best recall at precision ≥ 60 %, with the full frame at 640 against sliced
   inference (640 tiles, 20 % overlap, plus the full frame, NMM). COCO ``car``/``motorcycle``/``bus``/``truck``
   and the labels' ``car``/``truck``/``bus``/``minibus`` are counted as one ``vehicle``; ``cyclist`` is left
   out. The labels are incomplete (SOURCES.md), so precision is a lower bound.
3. **Fine-tuning** (needs torch + ultralytics): 640 tiles of the training clips become a one-class YOLO
   dataset, the COCO weights are fine-tuned on it and exported to ONNX, and the validation clip is scored as
   in 2. The target is recall ≥ 80 % at precision ≥ 60 %. Without the extra, this part says why it was skipped.

"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from vision.detector import (
    DetectionParams,
    ModelError,
    OnnxDetector,
    OpenCvDetector,
    UltralyticsDetector,
    require_ultralytics,
)
from vision.evaluate import GroundTruth, evaluate_detections, read_yolo_labels
from vision.model import Detections, Detector
from vision.slicing import SlicedDetector, SliceParams, tile_windows
from vision.train import ReviewedImage, TrainParams, export_onnx, export_yolo_dataset, train_model

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
SAMPLES = SHARED / "aerial_samples"
VAL_CLIP = "DJI-00760"  # the summer clip; the two snowy clips train
COCO_VEHICLES = {"car": "vehicle", "motorcycle": "vehicle", "bus": "vehicle", "truck": "vehicle"}
LABEL_VEHICLES = {"car": "vehicle", "truck": "vehicle", "bus": "vehicle", "minibus": "vehicle"}
SCORE_FLOOR = 0.05  # detections kept for the precision-recall curve
OPERATING_SCORE = 0.25


@dataclass(frozen=True)
class Frame:
    """One labelled drone frame and the clip it comes from."""

    stem: str
    clip: str
    image: npt.NDArray[np.uint8]
    truth: GroundTruth


def load_frames() -> list[Frame]:
    names = tuple(SAMPLES.joinpath("aerial.names").read_text(encoding="utf-8").split())
    frames = []
    for path in sorted(SAMPLES.joinpath("images").glob("*.jpg")):
        image = cv2.imread(str(path))
        if image is None:
            raise SystemExit(f"cannot read {path}")
        truth = read_yolo_labels(
            SAMPLES / "labels" / f"{path.stem}.txt",
            frame_id=path.stem,
            width_px=image.shape[1],
            height_px=image.shape[0],
            class_names=names,
        )
        frames.append(Frame(path.stem, path.stem.rsplit("-", 1)[0], np.asarray(image, np.uint8), truth))
    return frames


# ------------------------------------------------------------------------------------------------ speed


def interleaved_ms(
    detectors: Sequence[Detector], tile: npt.NDArray[np.uint8], repeats: int
) -> list[tuple[float, float]]:
    """Median wall ms and median CPU ms (all threads) per call of each detector.

    The calls take turns, so a busy machine slows all of them alike; CPU time does not count waiting for a core.
    """
    for detector in detectors:
        for _ in range(3):
            detector.detect([tile], ["warm-up"])
    wall: list[list[float]] = [[] for _ in detectors]
    cpu: list[list[float]] = [[] for _ in detectors]
    for _ in range(repeats):
        for index, detector in enumerate(detectors):
            start, start_cpu = time.perf_counter(), time.process_time()
            detector.detect([tile], ["tile"])
            wall[index].append((time.perf_counter() - start) * 1000)
            cpu[index].append((time.process_time() - start_cpu) * 1000)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu, strict=True)]


def speed_rows(tile: npt.NDArray[np.uint8], repeats: int, threads: int) -> list[tuple[str, ...]]:
    cv2.setNumThreads(threads)
    backends: list[tuple[str, Callable[[], Detector]]] = [
        (
            "ONNX Runtime fp32",
            lambda: OnnxDetector(MODELS / "yolov8n_coco_rebuilt_fp32.onnx", threads=threads),
        ),
        (
            "ONNX Runtime int8",
            lambda: OnnxDetector(MODELS / "yolov8n_coco_int8_dynamic.onnx", threads=threads),
        ),
        ("OpenCV DNN fp32", lambda: OpenCvDetector(MODELS / "yolov8n_coco_rebuilt_fp32.onnx")),
        ("ultralytics .pt fp32", lambda: UltralyticsDetector(MODELS / "yolov8n_coco_rebuilt_fp32.pt")),
    ]
    loaded: list[tuple[str, Detector]] = []
    missing: list[tuple[str, ...]] = []
    for name, make in backends:
        try:
            loaded.append((name, make()))
        except ModelError as error:
            missing.append((name, f"not run: {error.__cause__ or error}", ""))
    timings = interleaved_ms([detector for _, detector in loaded], tile, repeats)
    measured = [
        (name, f"{ms:.1f}", f"{cpu:.1f}") for (name, _), (ms, cpu) in zip(loaded, timings, strict=True)
    ]
    return measured + missing


# ------------------------------------------------------------------------------------------------ quality


def detect_all(detector: Detector, frames: Sequence[Frame]) -> tuple[list[Detections], float]:
    start = time.perf_counter()
    found = [detector.detect([frame.image], [frame.stem])[0] for frame in frames]
    return found, (time.perf_counter() - start) / max(1, len(frames))


def quality_row(
    label: str, detector: Detector, frames: Sequence[Frame], class_map: dict[str, str]
) -> list[str]:
    found, seconds = detect_all(detector, frames)
    mapping = {**class_map, **LABEL_VEHICLES}
    report = evaluate_detections(found, [f.truth for f in frames], class_map=mapping, classes=["vehicle"])
    at_operating = [d.filter(d.scores >= OPERATING_SCORE) for d in found]
    operating = evaluate_detections(
        at_operating, [f.truth for f in frames], class_map=mapping, classes=["vehicle"]
    ).classes[0]
    recall_60, score_60 = report.curves["vehicle"].recall_at_precision(0.6)
    at_60 = f"{recall_60:.1%} (score ≥ {score_60:.2f})" if recall_60 > 0 else "never reaches P 60 %"
    vehicle = report.classes[0]
    return [
        label,
        str(vehicle.labelled),
        f"{operating.precision:.1%}",
        f"{operating.recall:.1%}",
        f"{vehicle.ap50:.3f}",
        at_60,
        f"{seconds:.2f}",
    ]


def zero_shot_rows(frames: Sequence[Frame]) -> list[list[str]]:
    params = DetectionParams(confidence=SCORE_FLOOR)
    coco = OnnxDetector(MODELS / "yolov8n_coco_rebuilt_fp32.onnx", params=params)
    sliced = SlicedDetector(coco, SliceParams(tile_px=640, overlap=0.2))
    val = [f for f in frames if f.clip == VAL_CLIP]
    return [
        quality_row("COCO, full frame, all 20", coco, frames, COCO_VEHICLES),
        quality_row("COCO, sliced, all 20", sliced, frames, COCO_VEHICLES),
        quality_row(f"COCO, full frame, val {VAL_CLIP}", coco, val, COCO_VEHICLES),
        quality_row(f"COCO, sliced, val {VAL_CLIP}", sliced, val, COCO_VEHICLES),
    ]


def tiles_of(frame: Frame) -> list[ReviewedImage]:
    """The frame's 640 tiles with the vehicles at least half inside each, as confirmed training images."""
    vehicle = np.asarray([name in LABEL_VEHICLES for name in frame.truth.labels()], bool).reshape(-1)
    boxes = frame.truth.boxes_xyxy[vehicle]
    tiles = []
    for x1, y1, x2, y2 in tile_windows(frame.image.shape[1], frame.image.shape[0], 640, 0.2).tolist():
        clipped = boxes.clip([x1, y1, x1, y1], [x2, y2, x2, y2])
        inside = np.prod(clipped[:, 2:] - clipped[:, :2], axis=1) >= 0.5 * np.prod(
            boxes[:, 2:] - boxes[:, :2], axis=1
        )
        local = (clipped[inside] - [x1, y1, x1, y1]).astype(np.float32)
        crop = np.ascontiguousarray(frame.image[y1:y2, x1:x2])
        ids = np.zeros(len(local), np.int64)
        tiles.append(ReviewedImage(f"{frame.stem}_{x1}_{y1}", crop, local, ids, "confirmed", frame.stem))
    return tiles


def finetune_rows(frames: Sequence[Frame], epochs: int, work: Path) -> list[list[str]] | str:
    try:
        require_ultralytics()
    except ModelError as error:
        return f"skipped: {error}"
    train = [tile for frame in frames if frame.clip != VAL_CLIP for tile in tiles_of(frame)]
    data = export_yolo_dataset(train, work / "dataset", class_names=("vehicle",), val_fraction=0.2)
    params = TrainParams(epochs=epochs, image_px=640, batch=8)
    best = train_model(
        data, base_model=str(MODELS / "yolov8n_coco_rebuilt_fp32.pt"), run_dir=work, params=params
    )
    model = export_onnx(best, work / "vehicle.onnx")
    tuned = OnnxDetector(model, params=DetectionParams(confidence=SCORE_FLOOR))
    val = [f for f in frames if f.clip == VAL_CLIP]
    return [
        quality_row(f"fine-tuned, full frame, val {VAL_CLIP}", tuned, val, {}),
        quality_row(f"fine-tuned, sliced, val {VAL_CLIP}", SlicedDetector(tuned, SliceParams()), val, {}),
    ]


# ------------------------------------------------------------------------------------------------ report


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


QUALITY_HEADER = (
    "run",
    "labelled",
    f"P @ {OPERATING_SCORE}",
    f"R @ {OPERATING_SCORE}",
    "AP50",
    "R @ P ≥ 60 %",
    "s/frame",
)


def models_report(repeats: int, threads: int, finetune_epochs: int) -> str:
    """Part 2 as Markdown: backend speed per tile, zero-shot COCO and the fine-tuned model on real frames."""
    if not MODELS.is_dir() or not SAMPLES.is_dir():
        return f"## Detector models\n\nNot run: needs {MODELS} and {SAMPLES} (developer data), not found."
    frames = load_frames()
    tile = np.ascontiguousarray(frames[0].image[:640, :640])
    speed = table(("backend", "wall ms / tile", "CPU ms / tile"), speed_rows(tile, repeats, threads))
    sections = [
        f"## Speed: ms per 640 tile ({threads} threads, median of {repeats}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, other work included)\n\n{speed}",
        "## Vehicles on real drone frames, COCO YOLOv8n zero-shot\n\n"
        + table(QUALITY_HEADER, zero_shot_rows(frames)),
    ]
    with tempfile.TemporaryDirectory(prefix="skygrid-finetune-") as work:
        tuned = finetune_rows(frames, finetune_epochs, Path(work))
    target = "Target: recall ≥ 80 % at precision ≥ 60 % on the validation clip."
    body = tuned if isinstance(tuned, str) else table(QUALITY_HEADER, tuned)
    sections.append(f"## Fine-tuned from the COCO weights\n\n{target}\n\n{body}")
    return "\n\n".join(sections)
