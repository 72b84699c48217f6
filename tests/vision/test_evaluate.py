"""Precision, recall and AP50 of detections against YOLO labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.shared_data import shared_path
from vision.evaluate import GroundTruth, LabelError, evaluate_detections, read_yolo_labels
from vision.model import Detections

NAMES = ("car", "bus")


def _truth(frame_id: str, boxes: list[list[float]], classes: list[int]) -> GroundTruth:
    return GroundTruth(
        frame_id, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64), NAMES
    )


def _found(frame_id: str, boxes: list[list[float]], scores: list[float], classes: list[int]) -> Detections:
    return Detections(
        frame_id,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(classes, np.int64),
        NAMES,
    )


TRUTH = _truth("f1", [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])


def test_perfect_detections_score_one() -> None:
    report = evaluate_detections(
        [_found("f1", [[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 0])], [TRUTH]
    )
    car = report.classes[0]
    assert (car.precision, car.recall, car.ap50) == (1.0, 1.0, 1.0)
    assert report.map50 == 1.0  # bus has no labels, so it does not count in the mean


def test_known_precision_recall_and_ap() -> None:
    # Best first: a hit, a miss, a hit → PR points (0.5, 1), (0.5, 0.5), (1, 2/3).
    found = _found("f1", [[0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 31, 31]], [0.9, 0.8, 0.7], [0, 0, 0])
    car = evaluate_detections([found], [TRUTH]).classes[0]
    assert (car.labelled, car.detected, car.true_positives) == (2, 3, 2)
    assert car.precision == pytest.approx(2 / 3) and car.recall == 1.0
    assert car.ap50 == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)


def test_a_second_box_on_the_same_object_is_a_false_positive() -> None:
    found = _found("f1", [[0, 0, 10, 10], [0, 0, 10, 11]], [0.9, 0.8], [0, 0])
    car = evaluate_detections([found], [TRUTH]).classes[0]
    assert (car.true_positives, car.precision, car.recall) == (1, 0.5, 0.5)


def test_iou_threshold_decides_a_match() -> None:
    shifted = _found("f1", [[4, 0, 14, 10]], [0.9], [0])  # IoU 6/14 ≈ 0.43 with the first car
    assert evaluate_detections([shifted], [TRUTH]).classes[0].true_positives == 0
    assert evaluate_detections([shifted], [TRUTH], iou_threshold=0.4).classes[0].true_positives == 1


def test_wrong_class_misses_unless_mapped_together() -> None:
    truth = _truth("f1", [[0, 0, 10, 10]], [0])
    found = _found("f1", [[0, 0, 10, 10]], [0.9], [1])
    split = {m.class_name: m for m in evaluate_detections([found], [truth]).classes}
    assert split["car"].recall == 0.0 and split["bus"].precision == 0.0
    merged = evaluate_detections([found], [truth], class_map={"car": "vehicle", "bus": "vehicle"})
    assert [(m.class_name, m.recall, m.precision) for m in merged.classes] == [("vehicle", 1.0, 1.0)]


def test_frames_without_detections_count_as_missed_and_unknown_frames_are_refused() -> None:
    other = _truth("f2", [[5, 5, 9, 9]], [1])
    report = evaluate_detections([_found("f1", [[0, 0, 10, 10]], [0.9], [0])], [TRUTH, other])
    bus = report.classes[1]
    assert (bus.labelled, bus.recall, bus.ap50) == (1, 0.0, 0.0)
    with pytest.raises(ValueError, match="frame 'f9', which has no labels"):
        evaluate_detections([_found("f9", [], [], [])], [TRUTH])


def test_recall_at_precision_picks_the_threshold() -> None:
    found = _found("f1", [[0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 31, 31]], [0.9, 0.8, 0.7], [0, 0, 0])
    curve = evaluate_detections([found], [TRUTH]).curves["car"]
    assert curve.recall_at_precision(0.6) == pytest.approx((1.0, 0.7))
    assert curve.recall_at_precision(0.9) == pytest.approx((0.5, 0.9))
    assert curve.recall_at_precision(1.01) == (0.0, 1.0)


def test_reads_yolo_labels_into_pixels(tmp_path: Path) -> None:
    path = tmp_path / "f1.txt"
    path.write_text("0 0.5 0.5 0.2 0.4\n\n1 0.1 0.1 0.1 0.1\n")
    truth = read_yolo_labels(path, frame_id="f1", width_px=200, height_px=100, class_names=NAMES)
    np.testing.assert_allclose(truth.boxes_xyxy, [[80, 30, 120, 70], [10, 5, 30, 15]])
    assert truth.labels() == ["car", "bus"]
    (tmp_path / "empty.txt").write_text("")
    empty = read_yolo_labels(
        tmp_path / "empty.txt", frame_id="e", width_px=10, height_px=10, class_names=NAMES
    )
    assert empty.boxes_xyxy.shape == (0, 4)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "line 2: expected 'class cx cy w h', got 4 fields"),
        ("7 0.5 0.5 0.2 0.2", "line 2: class 7 is not one of the 2 classes"),
        ("0 0.5 1.5 0.2 0.2", "line 2: cy = 1.5 is outside 0–1"),
        ("0 0.5 0.5 0 0.2", r"line 2: box has no area \(w = 0.0"),
        ("car 0.5 0.5 0.2 0.2", "line 2: not a number"),
    ],
)
def test_bad_label_lines_are_reported_with_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(LabelError, match=rf"bad\.txt, {message}"):
        read_yolo_labels(path, frame_id="b", width_px=10, height_px=10, class_names=NAMES)


def test_missing_label_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match=r"absent\.txt: cannot read"):
        read_yolo_labels(tmp_path / "absent.txt", frame_id="a", width_px=10, height_px=10, class_names=NAMES)


def test_shared_aerial_labels_are_readable() -> None:
    folder = shared_path("aerial_samples")
    names = tuple(folder.joinpath("aerial.names").read_text().split())
    truths = [
        read_yolo_labels(path, frame_id=path.stem, width_px=1920, height_px=1080, class_names=names)
        for path in sorted(folder.joinpath("labels").glob("*.txt"))
    ]
    report = evaluate_detections([], truths, class_map=dict.fromkeys(names, "vehicle"))
    assert report.classes[0].labelled == 385  # the count SOURCES.md gives
    assert report.classes[0].recall == 0.0
