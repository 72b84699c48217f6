"""Reviewed images → YOLO dataset; a tiny training run and ONNX export when the optional extra is installed."""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import yaml
from click.testing import CliRunner

from gis.cli import cli
from vision.detector import OnnxDetector
from vision.train import (
    DatasetError,
    ReviewedImage,
    TrainParams,
    export_onnx,
    export_yolo_dataset,
    train_model,
)

NAMES = ("car", "棚屋")


def _ultralytics_missing() -> str | None:
    try:
        importlib.import_module("ultralytics")
    except ImportError as error:
        return f"the optional training extra is not importable here: {error}"
    return None


def _image(seed: int, size: int = 64) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def _reviewed(
    image_id: str, verdict: str = "confirmed", group: str = "", box: list[float] | None = None
) -> ReviewedImage:
    boxes = np.asarray([box or [8, 16, 40, 48]], np.float32)
    return ReviewedImage(image_id, _image(len(image_id)), boxes, np.asarray([1], np.int64), verdict, group)  # type: ignore[arg-type]


def test_writes_labels_hard_negatives_and_data_yaml(tmp_path: Path) -> None:
    reviewed = [
        _reviewed("a1", group="p1"),
        _reviewed("a2", "rejected", group="p1"),
        _reviewed("b1", group="p2"),
    ]
    data = export_yolo_dataset(reviewed, tmp_path / "ds", class_names=NAMES, val_fraction=0.5, seed=3)
    config = yaml.safe_load(data.read_text(encoding="utf-8"))
    assert config["names"] == {0: "car", 1: "棚屋"}
    assert (config["train"], config["val"]) == ("images/train", "images/val")
    labels = {path.stem: path for path in (tmp_path / "ds" / "labels").rglob("*.txt")}
    assert labels["a1"].read_text() == "1 0.375000 0.500000 0.500000 0.500000\n"
    assert labels["a2"].read_text() == ""  # rejected: a hard negative
    # One patrol stays on one side of the split.
    assert labels["a1"].parent == labels["a2"].parent != labels["b1"].parent
    for stem, path in labels.items():
        image = cv2.imread(str(tmp_path / "ds" / "images" / path.parent.name / f"{stem}.jpg"))
        assert image is not None and image.shape == (64, 64, 3)


def test_boxes_are_clipped_to_the_image(tmp_path: Path) -> None:
    reviewed = [_reviewed("a", box=[-10, -10, 32, 32]), _reviewed("b")]
    export_yolo_dataset(reviewed, tmp_path / "ds", class_names=NAMES, val_fraction=0.5)
    [label] = [p for p in (tmp_path / "ds" / "labels").rglob("a.txt")]
    assert label.read_text() == "1 0.250000 0.250000 0.500000 0.500000\n"


@pytest.mark.parametrize(
    ("reviewed", "message"),
    [
        (
            [_reviewed("a", box=[70, 70, 90, 90]), _reviewed("b")],
            r"image 'a', box 0: .* has no area inside the image",
        ),
        ([_reviewed("a", "maybe"), _reviewed("b")], "image 'a': verdict 'maybe' is not one of"),
        ([_reviewed("a", group="p"), _reviewed("b", group="p")], "need at least two groups"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, reviewed: list[ReviewedImage], message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        export_yolo_dataset(reviewed, tmp_path / "ds", class_names=NAMES)
    assert list(tmp_path.iterdir()) == []


def test_unknown_class_and_existing_folder_are_refused(tmp_path: Path) -> None:
    wrong = ReviewedImage(
        "a", _image(1), np.asarray([[1, 1, 9, 9]], np.float32), np.asarray([5]), "confirmed"
    )
    with pytest.raises(DatasetError, match="image 'a', box 0: class 5 is outside 0–1"):
        export_yolo_dataset([wrong, _reviewed("b")], tmp_path / "ds", class_names=NAMES)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="already exists and is not empty"):
        export_yolo_dataset([_reviewed("a"), _reviewed("b")], tmp_path / "ds", class_names=NAMES)
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"


def test_train_params_are_checked() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainParams(image_px=100)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        TrainParams(epochs=0)


def test_cli_explains_a_missing_training_extra(tmp_path: Path) -> None:
    reason = _ultralytics_missing()
    if reason is None:
        pytest.skip("ultralytics is installed here, so the message for its absence cannot be shown")
    data = export_yolo_dataset([_reviewed("a"), _reviewed("b")], tmp_path / "ds", class_names=NAMES)
    result = CliRunner().invoke(cli, ["train", str(data), "-o", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert "ultralytics cannot be imported" in result.output and "optional" in result.output


def _squares_dataset(root: Path) -> Path:
    """Bright squares (class 0) and dark squares (class 1) on grey, in two groups."""
    reviewed = []
    rng = np.random.default_rng(0)
    for index in range(8):
        image = np.full((64, 64, 3), 128, np.uint8)
        x, y = (int(v) for v in rng.integers(4, 40, 2))
        class_id = index % 2
        image[y : y + 20, x : x + 20] = 250 if class_id == 0 else 10
        boxes = np.asarray([[x, y, x + 20, y + 20]], np.float32)
        reviewed.append(
            ReviewedImage(f"sq{index}", image, boxes, np.asarray([class_id]), "confirmed", f"g{index % 4}")
        )
    return export_yolo_dataset(reviewed, root, class_names=("bright", "dark"), val_fraction=0.25)


@pytest.mark.slow
def test_tiny_training_run_and_onnx_export(tmp_path: Path) -> None:
    reason = _ultralytics_missing()
    if reason is not None:
        pytest.skip(reason)
    data = _squares_dataset(tmp_path / "ds")
    params = TrainParams(epochs=1, image_px=64, batch=4, device="cpu")
    best = train_model(data, base_model="yolov8n.yaml", run_dir=tmp_path / "runs", params=params)
    model = export_onnx(best, tmp_path / "model.onnx", image_px=64)
    detector = OnnxDetector(model)
    assert detector.class_names == ("bright", "dark")
    assert detector.dynamic_batch
    results = detector.detect([_image(1), _image(2)], ["a", "b"])
    assert [found.frame_id for found in results] == ["a", "b"]


def test_export_model_command_refuses_a_missing_checkpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["export-model", str(tmp_path / "absent.pt"), "-o", str(tmp_path / "m.onnx")]
    )
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "m.onnx").exists()
