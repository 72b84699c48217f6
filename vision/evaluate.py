"""Detections against labelled boxes: precision, recall and mAP50 per class, as object detection benchmarks count.

Each detection, best score first, matches the unmatched labelled box of its class with the highest IoU of at
least ``iou_threshold`` (0.5 for mAP50); a match is a true positive, anything else a false positive, and a
labelled box left unmatched is a miss. Average precision is the area under the interpolated
precision-recall curve sampled at 101 recall points (the COCO rule). Class names can be mapped on both sides
(for example COCO ``car``/``bus``/``truck`` and a dataset's ``car``/``minibus`` onto one ``vehicle``).
Labels are read from YOLO text files (``class cx cy w h``, normalised); an empty file is an image with no
objects (a hard negative).

Example:
    >>> truth = read_yolo_labels(Path("labels/f1.txt"), frame_id="f1", width_px=1920, height_px=1080,
    ...                          class_names=("car", "bus"))  # doctest: +SKIP
    >>> report = evaluate_detections([detections], [truth])  # doctest: +SKIP
    >>> report.classes[0].ap50  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vision.detector import FloatArray, IntArray, iou_matrix
from vision.model import Detections

RECALL_POINTS = np.linspace(0.0, 1.0, 101)


class LabelError(ValueError):
    """A YOLO label file that cannot be read; the message names the file, the line and the field."""


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The labelled objects of one frame: N×4 xyxy pixel boxes and class ids indexing ``class_names``."""

    frame_id: str
    boxes_xyxy: FloatArray
    class_ids: IntArray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        count = len(self.class_ids)
        if self.boxes_xyxy.shape != (count, 4):
            raise ValueError(
                f"frame {self.frame_id}: boxes {self.boxes_xyxy.shape} and classes {self.class_ids.shape} disagree"
            )

    def labels(self) -> list[str]:
        """Class name of each labelled object."""
        return [self.class_names[int(i)] for i in self.class_ids]


def read_yolo_labels(
    path: Path, *, frame_id: str, width_px: int, height_px: int, class_names: tuple[str, ...]
) -> GroundTruth:
    """The boxes of one YOLO label file in pixels of a ``width_px`` × ``height_px`` image."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelError(f"{path}: cannot read the label file: {error}") from error
    rows = [_parse_label_line(path, number, line, len(class_names)) for number, line in _lines(text)]
    table = np.asarray(rows, np.float64).reshape(-1, 5)
    scale = np.asarray([width_px, height_px, width_px, height_px], np.float64)
    centre, size = table[:, 1:3], table[:, 3:5]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * scale
    return GroundTruth(frame_id, boxes.astype(np.float32), table[:, 0].astype(np.int64), class_names)


def _lines(text: str) -> Iterable[tuple[int, str]]:
    return ((number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip())


def _parse_label_line(path: Path, number: int, line: str, class_count: int) -> tuple[float, ...]:
    fields = line.split()
    where = f"{path}, line {number}"
    if len(fields) != 5:
        raise LabelError(f"{where}: expected 'class cx cy w h', got {len(fields)} fields: {line.strip()!r}")
    try:
        class_id, *values = int(fields[0]), *(float(field) for field in fields[1:])
    except ValueError as error:
        raise LabelError(f"{where}: not a number in {line.strip()!r}") from error
    if not 0 <= class_id < class_count:
        raise LabelError(
            f"{where}: class {class_id} is not one of the {class_count} classes 0–{class_count - 1}"
        )
    for name, value in zip(("cx", "cy", "w", "h"), values, strict=True):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise LabelError(f"{where}: {name} = {value} is outside 0–1 (YOLO labels are normalised)")
    if values[2] <= 0 or values[3] <= 0:
        raise LabelError(f"{where}: box has no area (w = {values[2]}, h = {values[3]})")
    return (float(class_id), *values)


@dataclass(frozen=True, eq=False)
class PrecisionRecallCurve:
    """Precision and recall after each detection of a class, best score first, with that detection's score."""

    scores: FloatArray
    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]

    def recall_at_precision(self, min_precision: float) -> tuple[float, float]:
        """The highest recall reached with precision ≥ ``min_precision``, and the score threshold giving it.

        (0.0, 1.0) when no threshold reaches that precision.
        """
        good = np.flatnonzero(self.precision >= min_precision)
        if len(good) == 0:
            return 0.0, 1.0
        best = good[np.argmax(self.recall[good])]
        return float(self.recall[best]), float(self.scores[best])


@dataclass(frozen=True)
class ClassMetrics:
    """One class's counts and scores: precision and recall over all the detections given, and AP at IoU 0.5."""

    class_name: str
    labelled: int
    detected: int
    true_positives: int
    precision: float
    recall: float
    ap50: float  # AP at the report's IoU threshold (0.5 unless changed)


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics per evaluated class, their mean AP, and each class's precision-recall curve."""

    classes: tuple[ClassMetrics, ...]
    curves: Mapping[str, PrecisionRecallCurve]
    iou_threshold: float

    @property
    def map50(self) -> float:
        """Mean AP over the classes that have labelled objects (NaN when none has)."""
        values = [metrics.ap50 for metrics in self.classes if metrics.labelled > 0]
        return float(np.mean(values)) if values else math.nan

    def table(self) -> str:
        """The metrics as a fixed-width text table, one line per class."""
        lines = [f"{'class':<16}{'labelled':>9}{'detected':>9}{'TP':>6}{'P':>7}{'R':>7}{'AP50':>7}"]
        lines += [
            f"{m.class_name:<16}{m.labelled:>9}{m.detected:>9}{m.true_positives:>6}"
            f"{m.precision:>7.3f}{m.recall:>7.3f}{m.ap50:>7.3f}"
            for m in self.classes
        ]
        return "\n".join([*lines, f"{'mAP50':<16}{self.map50:>51.3f}"])


def evaluate_detections(
    detections: Sequence[Detections],
    truths: Sequence[GroundTruth],
    *,
    iou_threshold: float = 0.5,
    class_map: Mapping[str, str] | None = None,
    classes: Sequence[str] | None = None,
) -> EvaluationReport:
    """Precision, recall and AP per class for the detections of the labelled frames (matched by frame id).

    ``class_map`` renames classes on both sides before matching (names not in it are kept). ``classes`` are
    the class names to evaluate, by default every labelled class name; detections of other classes are ignored.
    Frames with labels but no detections count their objects as missed.
    """
    by_frame = _detections_by_frame(detections, {truth.frame_id for truth in truths})
    mapping = dict(class_map or {})
    names = tuple(classes) if classes is not None else _truth_names(truths, mapping)
    matches: dict[str, list[tuple[FloatArray, npt.NDArray[np.bool_]]]] = {name: [] for name in names}
    labelled = dict.fromkeys(names, 0)
    for truth in truths:
        found = by_frame.get(truth.frame_id)
        for name in names:
            truth_boxes = _boxes_of(truth.boxes_xyxy, truth.labels(), name, mapping)
            labelled[name] += len(truth_boxes)
            if found is not None:
                matches[name].append(_match_frame(found, name, mapping, truth_boxes, iou_threshold))
    results = {name: _class_metrics(name, labelled[name], matches[name]) for name in names}
    return EvaluationReport(
        tuple(metrics for metrics, _ in results.values()),
        {name: curve for name, (_, curve) in results.items()},
        iou_threshold,
    )


def _detections_by_frame(detections: Sequence[Detections], truth_frames: set[str]) -> dict[str, Detections]:
    by_frame: dict[str, Detections] = {}
    for found in detections:
        if found.frame_id not in truth_frames:
            raise ValueError(f"detections for frame {found.frame_id!r}, which has no labels")
        if found.frame_id in by_frame:
            raise ValueError(f"frame {found.frame_id!r} has detections twice")
        by_frame[found.frame_id] = found
    return by_frame


def _truth_names(truths: Sequence[GroundTruth], mapping: Mapping[str, str]) -> tuple[str, ...]:
    names = (mapping.get(name, name) for truth in truths for name in truth.class_names)
    return tuple(dict.fromkeys(names))


def _boxes_of(boxes: FloatArray, labels: Sequence[str], name: str, mapping: Mapping[str, str]) -> FloatArray:
    keep = np.asarray([mapping.get(label, label) == name for label in labels], bool).reshape(-1)
    selected: FloatArray = boxes[keep]
    return selected


def _match_frame(
    found: Detections, name: str, mapping: Mapping[str, str], truth_boxes: FloatArray, iou_threshold: float
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Scores of this class's detections in one frame and whether each is a true positive."""
    keep = np.asarray([mapping.get(label, label) == name for label in found.labels()], bool).reshape(-1)
    order = np.argsort(-found.scores[keep], kind="stable")
    boxes, scores = found.boxes_xyxy[keep][order], found.scores[keep][order]
    ious = iou_matrix(boxes, truth_boxes)
    taken = np.zeros(len(truth_boxes), bool)
    hits = np.zeros(len(boxes), bool)
    for index in range(len(boxes)):
        candidates = np.where(taken, -1.0, ious[index]) if len(truth_boxes) else np.zeros(0)
        if len(candidates) and candidates.max() >= iou_threshold:
            taken[int(candidates.argmax())] = True
            hits[index] = True
    return scores, hits


def _class_metrics(
    name: str, labelled: int, matches: Sequence[tuple[FloatArray, npt.NDArray[np.bool_]]]
) -> tuple[ClassMetrics, PrecisionRecallCurve]:
    scores = np.concatenate([s for s, _ in matches] or [np.zeros(0, np.float32)]).astype(np.float32)
    hits = np.concatenate([h for _, h in matches] or [np.zeros(0, bool)])
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], hits[order]
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / labelled if labelled else np.zeros(len(hits))
    curve = PrecisionRecallCurve(scores, precision.astype(np.float64), recall.astype(np.float64))
    tp = int(hits.sum())
    metrics = ClassMetrics(
        class_name=name,
        labelled=labelled,
        detected=len(hits),
        true_positives=tp,
        precision=tp / len(hits) if len(hits) else 0.0,
        recall=tp / labelled if labelled else 0.0,
        ap50=_average_precision(curve) if labelled else math.nan,
    )
    return metrics, curve


def _average_precision(curve: PrecisionRecallCurve) -> float:
    """Area under the precision envelope, sampled at 101 recall points (COCO)."""
    if len(curve.recall) == 0:
        return 0.0
    envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
    positions = np.searchsorted(curve.recall, RECALL_POINTS, side="left")
    sampled = np.where(positions < len(envelope), envelope[np.minimum(positions, len(envelope) - 1)], 0.0)
    return float(sampled.mean())
