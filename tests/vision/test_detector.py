"""The YOLO detectors: decoding, NMS and letterboxing on a tiny built model; real COCO weights on drone frames."""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from tests.shared_data import shared_path
from tests.vision.tiny_onnx import INPUT_PX, anchor_table, build_tiny_yolo
from vision.detector import (
    DetectionParams,
    ModelError,
    OnnxDetector,
    OpenCvDetector,
    iou_matrix,
    letterbox,
    load_detector,
    nms,
    parse_class_names,
)
from vision.slicing import SlicedDetector, SliceParams

NAMES = {0: "car", 1: "shed"}
# (cx, cy, w, h, class, score) in input pixels of the 64 px model.
ROWS = [
    (20.0, 30.0, 10.0, 8.0, 0, 0.9),  # a car
    (21.0, 30.0, 10.0, 8.0, 0, 0.8),  # the same car again: suppressed by NMS
    (20.0, 30.0, 10.0, 8.0, 1, 0.7),  # a shed in the same place: another class, kept
    (45.0, 40.0, 6.0, 6.0, 0, 0.6),  # a second car
    (50.0, 20.0, 6.0, 6.0, 0, 0.1),  # below the confidence threshold
]


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return build_tiny_yolo(tmp_path / "tiny.onnx", anchor_table(ROWS, 2), names=NAMES)


def _white(width: int, height: int) -> npt.NDArray[np.uint8]:
    return np.full((height, width, 3), 255, np.uint8)


def _expected_boxes(width: int, height: int) -> npt.NDArray[np.float32]:
    """Where rows 0, 2 and 3 land in an image of this size, by the letterbox arithmetic."""
    scale = min(INPUT_PX / width, INPUT_PX / height)
    pad_x, pad_y = (INPUT_PX - width * scale) / 2, (INPUT_PX - height * scale) / 2
    rows = np.asarray([ROWS[i][:4] for i in (0, 2, 3)], np.float32)
    corners = np.concatenate([rows[:, :2] - rows[:, 2:] / 2, rows[:, :2] + rows[:, 2:] / 2], axis=1)
    boxes = (corners - [pad_x, pad_y, pad_x, pad_y]) / scale
    return boxes.clip(0, [width, height, width, height]).astype(np.float32)  # clipped to the image


def test_decodes_boxes_into_image_pixels_with_per_class_nms(tiny_model: Path) -> None:
    detector = OnnxDetector(tiny_model)
    [found] = detector.detect([_white(128, 64)], ["f1"])
    assert detector.class_names == ("car", "shed")
    assert found.frame_id == "f1"
    assert found.labels() == ["car", "shed", "car"]
    np.testing.assert_allclose(found.scores, [0.9, 0.7, 0.6], atol=1e-6)
    np.testing.assert_allclose(found.boxes_xyxy, _expected_boxes(128, 64), atol=1e-3)


def test_batch_gives_each_image_its_own_result(tiny_model: Path) -> None:
    detector = OnnxDetector(tiny_model, batch_size=4)
    assert detector.dynamic_batch
    black = np.zeros((64, 64, 3), np.uint8)
    results = detector.detect([_white(64, 64), black, _white(64, 128)], ["a", "b", "c"])
    assert [len(found) for found in results] == [3, 0, 3]
    assert [found.frame_id for found in results] == ["a", "b", "c"]
    np.testing.assert_allclose(results[2].boxes_xyxy, _expected_boxes(64, 128), atol=1e-3)


def test_static_batch_model_loops_and_agrees(tmp_path: Path, tiny_model: Path) -> None:
    static = build_tiny_yolo(
        tmp_path / "static.onnx", anchor_table(ROWS, 2), names=NAMES, dynamic_batch=False
    )
    images = [_white(64, 64), _white(80, 64)]
    looped = OnnxDetector(static).detect(images, ["a", "b"])
    batched = OnnxDetector(tiny_model).detect(images, ["a", "b"])
    assert not OnnxDetector(static).dynamic_batch
    for one, other in zip(looped, batched, strict=True):
        np.testing.assert_allclose(one.boxes_xyxy, other.boxes_xyxy, atol=1e-4)


def test_half_precision_model_gives_the_same_boxes(tmp_path: Path, tiny_model: Path) -> None:
    half = build_tiny_yolo(tmp_path / "half.onnx", anchor_table(ROWS, 2), names=NAMES, half=True)
    [ours] = OnnxDetector(half).detect([_white(128, 64)], ["a"])
    [full] = OnnxDetector(tiny_model).detect([_white(128, 64)], ["a"])
    assert ours.boxes_xyxy.dtype == np.float32
    np.testing.assert_allclose(ours.boxes_xyxy, full.boxes_xyxy, atol=0.1)
    np.testing.assert_allclose(ours.scores, full.scores, atol=1e-3)


def test_opencv_backend_agrees_with_onnxruntime(tiny_model: Path) -> None:
    image = _white(100, 64)
    [ours] = OnnxDetector(tiny_model).detect([image], ["a"])
    [theirs] = OpenCvDetector(tiny_model).detect([image], ["a"])
    np.testing.assert_allclose(theirs.boxes_xyxy, ours.boxes_xyxy, atol=1e-3)
    np.testing.assert_array_equal(theirs.class_ids, ours.class_ids)


def test_thresholds_change_what_is_kept(tiny_model: Path) -> None:
    image = [_white(64, 64)]
    low = OnnxDetector(tiny_model, params=DetectionParams(confidence=0.05)).detect(image, ["a"])[0]
    loose_nms = OnnxDetector(tiny_model, params=DetectionParams(iou_threshold=0.95)).detect(image, ["a"])[0]
    capped = OnnxDetector(tiny_model, params=DetectionParams(max_detections=1)).detect(image, ["a"])[0]
    assert len(low) == 4 and len(loose_nms) == 4 and len(capped) == 1


def test_nms_keeps_best_of_each_overlapping_group_per_class() -> None:
    boxes = np.asarray([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.asarray([0.5, 0.9, 0.8, 0.3], np.float32)
    classes = np.asarray([0, 0, 1, 0], np.int64)
    assert nms(boxes, scores, classes, 0.5).tolist() == [1, 2, 3]


def test_iou_matrix_known_values() -> None:
    a = np.asarray([[0, 0, 10, 10]], np.float32)
    b = np.asarray([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]], atol=1e-6)


def test_letterbox_pads_grey_and_keeps_aspect() -> None:
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, :, 2] = 200  # red in BGR
    tensor, box = letterbox(image, (64, 64))
    assert tensor.shape == (3, 64, 64) and box.scale == pytest.approx(0.64)
    assert tensor[0, 32, 32] == pytest.approx(200 / 255)  # red comes first after BGR → RGB
    assert tensor[0, 0, 32] == pytest.approx(114 / 255)  # padding above the image


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("{0: 'car', 1: 'bus'}", None),
        ("['car', 'bus']", None),
        ("{0: 'car', 2: 'bus'}", "must map 0..n-1"),
        ("car, bus", "not a dict literal"),
    ],
)
def test_parse_class_names(names: str, message: str | None) -> None:
    if message is None:
        assert parse_class_names(names, "m.onnx") == ("car", "bus")
    else:
        with pytest.raises(ModelError, match=message):
            parse_class_names(names, "m.onnx")


def test_model_without_names_is_refused(tmp_path: Path) -> None:
    path = build_tiny_yolo(tmp_path / "anon.onnx", anchor_table(ROWS, 2), names=None)
    with pytest.raises(ModelError, match=r"anon\.onnx: no 'names'"):
        OnnxDetector(path)


def test_output_not_matching_the_classes_is_refused(tmp_path: Path) -> None:
    path = build_tiny_yolo(tmp_path / "three.onnx", anchor_table(ROWS, 2), names={0: "a", 1: "b", 2: "c"})
    with pytest.raises(ModelError, match="6 channels, expected 4 boxes \\+ 3 classes"):
        OnnxDetector(path)


def test_missing_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_detector(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"corrupt\.onnx: ONNX Runtime cannot load it"):
        load_detector(corrupt)
    with pytest.raises(ModelError, match=r"needs an \.onnx model"):
        load_detector(tmp_path / "model.bin", backend="opencv")


def test_bad_images_are_refused(tiny_model: Path) -> None:
    detector = OnnxDetector(tiny_model)
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        detector.detect([np.zeros((64, 64), np.uint8)], ["gray"])
    with pytest.raises(ValueError, match="2 images but 1 frame ids"):
        detector.detect([_white(64, 64), _white(64, 64)], ["a"])


def _read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return np.asarray(image, np.uint8)


def _vehicle_labels(stem: str, width: int, height: int) -> npt.NDArray[np.float32]:
    rows = np.loadtxt(shared_path("aerial_samples", "labels", f"{stem}.txt"), ndmin=2)
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


@pytest.mark.parametrize("model", ["yolov8n_coco_rebuilt_fp32.onnx", "yolov8n_coco_int8_dynamic.onnx"])
def test_coco_cars_on_a_real_drone_frame_overlap_labelled_vehicles(model: str) -> None:
    frame = _read(shared_path("aerial_samples", "images", "DJI-00760-00021.jpg"))
    crop = np.ascontiguousarray(frame[360:1080, 640:1920])  # 1280×720: four tiles and the full pass
    detector = OnnxDetector(shared_path("models", model), params=DetectionParams(confidence=0.2))
    assert detector.class_names[2] == "car" and len(detector.class_names) == 80
    [found] = SlicedDetector(detector, SliceParams(tile_px=640, overlap=0.2)).detect(
        [crop], ["DJI-00760-00021"]
    )
    vehicles = found.filter(np.isin(found.class_ids, [2, 5, 7]))  # car, bus, truck
    labelled = _vehicle_labels("DJI-00760-00021", 1920, 1080) - np.asarray([640, 360, 640, 360], np.float32)
    best_iou = iou_matrix(vehicles.boxes_xyxy, labelled).max(axis=1)
    # COCO weights are weak from above (../shared/models/SOURCES.md), but tiles let them find some vehicles.
    assert (best_iou >= 0.3).sum() >= 5
    assert ((found.boxes_xyxy >= 0) & (found.boxes_xyxy <= [1280, 720, 1280, 720])).all()


def test_opencv_dnn_matches_onnxruntime_on_coco_weights() -> None:
    model = shared_path("models", "yolov8n_coco_rebuilt_fp32.onnx")
    image = _read(shared_path("aerial_samples", "images", "DJI-00760-00021.jpg"))[0:640, 640:1280]
    params = DetectionParams(confidence=0.2)
    [ours] = OnnxDetector(model, params=params).detect([np.ascontiguousarray(image)], ["tile"])
    [theirs] = OpenCvDetector(model, params=params).detect([np.ascontiguousarray(image)], ["tile"])
    assert len(ours) > 0 and len(theirs) == len(ours)
    np.testing.assert_allclose(theirs.boxes_xyxy, ours.boxes_xyxy, atol=0.5)
    np.testing.assert_allclose(theirs.scores, ours.scores, atol=1e-3)


def test_pt_model_without_the_training_extra_says_how_to_install_it(tmp_path: Path) -> None:
    try:
        importlib.import_module("ultralytics")
    except ImportError:
        pass
    else:
        pytest.skip("ultralytics is installed here, so the message for its absence cannot be shown")
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"checkpoint")
    with pytest.raises(ModelError, match=r"ultralytics cannot be imported .*optional"):
        load_detector(weights)
