"""The synthetic YOLO dataset: layout, labels that match the simulator's truth, splits, determinism."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import pytest
import yaml

from drone.dataset import DatasetError, DatasetSettings, make_dataset, tile_camera, yolo_lines
from drone.model import Camera
from drone.simcam import TruthBox
from drone.world import CLASS_NAMES
from gis.demo import DemoDistrict, make_demo_district

VIDEO = Camera("video", 17.3, 17.3 * 9 / 16, 12.29, 1920, 1080)
SETTINGS = DatasetSettings(images=16, val_fraction=0.25, image_px=320, seed=5)


@pytest.fixture(scope="module")
def demo() -> DemoDistrict:
    return make_demo_district(10_000, seed=1)


@pytest.fixture(scope="module")
def dataset(
    demo: DemoDistrict, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Counter[str]]]:
    output = tmp_path_factory.mktemp("dataset") / "ds"
    counts = make_dataset(demo.district, demo.zones, VIDEO, output, SETTINGS)
    return output, counts


def _labels(folder: Path) -> dict[str, list[list[float]]]:
    return {
        path.stem: [[float(v) for v in line.split()] for line in path.read_text().splitlines()]
        for path in sorted(folder.glob("*.txt"))
    }


def test_layout_and_data_yaml(dataset: tuple[Path, dict[str, Counter[str]]]) -> None:
    output, _ = dataset
    data = yaml.safe_load((output / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASS_NAMES)) and data["nc"] == 6
    assert "path" not in data  # folders resolve against data.yaml's own folder
    for split, size in (("train", 12), ("val", 4)):
        images = sorted(p.stem for p in (output / data[split]).glob("*.jpg"))
        assert len(images) == size
        assert images == sorted(p.stem for p in (output / "labels" / split).glob("*.txt"))
        image = cv2.imread(str(output / data[split] / f"{images[0]}.jpg"))
        assert image is not None and image.shape == (320, 320, 3)


def test_labels_are_valid_yolo_lines_and_cover_every_class(
    dataset: tuple[Path, dict[str, Counter[str]]],
) -> None:
    output, counts = dataset
    seen: Counter[str] = Counter()
    for split in ("train", "val"):
        for rows in _labels(output / "labels" / split).values():
            for cls, cx, cy, w, h in rows:
                assert cls == int(cls) and 0 <= cls < len(CLASS_NAMES)
                assert 0 < w <= 1 and 0 < h <= 1
                assert cx - w / 2 + 1e-6 >= 0 and cx + w / 2 - 1e-6 <= 1
                assert cy - h / 2 + 1e-6 >= 0 and cy + h / 2 - 1e-6 <= 1
                seen[CLASS_NAMES[int(cls)]] += 1
    assert seen == counts["train"] + counts["val"]
    assert set(counts["train"]) == set(CLASS_NAMES)


def test_same_seed_same_labels(
    demo: DemoDistrict, dataset: tuple[Path, dict[str, Counter[str]]], tmp_path: Path
) -> None:
    output, _ = dataset
    small = DatasetSettings(images=3, val_fraction=0.25, image_px=320, seed=5)
    again = tmp_path / "again"
    make_dataset(demo.district, demo.zones, VIDEO, again, small)
    first = _labels(output / "labels" / "train")
    for name, rows in _labels(again / "labels" / "train").items():
        assert rows == first[name]


def test_yolo_lines_normalise_boxes_and_drop_slivers() -> None:
    boxes = (
        TruthBox("a", "shed", (10.0, 20.0, 50.0, 40.0), 1.0),
        TruthBox("b", "car", (0.0, 0.0, 2.0, 30.0), 1.0),  # 2 px wide: too thin to learn from
    )
    assert yolo_lines(boxes, 100, 80) == ["2 0.300000 0.375000 0.400000 0.250000"]


def test_tile_camera_keeps_the_video_pixel_scale() -> None:
    tile = tile_camera(VIDEO, 640)
    assert tile.intrinsics()[0, 0] == pytest.approx(VIDEO.intrinsics()[0, 0])
    assert tile.gsd_m_px(80.0) == pytest.approx(VIDEO.gsd_m_px(80.0))
    assert (tile.image_width_px, tile.image_height_px) == (640, 640)


def test_bad_settings_and_used_folder_are_refused(demo: DemoDistrict, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="images must be at least 2"):
        DatasetSettings(images=1)
    with pytest.raises(DatasetError, match="val_fraction"):
        DatasetSettings(val_fraction=1.0)
    with pytest.raises(DatasetError, match="altitude range"):
        DatasetSettings(altitude_m=(100.0, 60.0))
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder"):
        make_dataset(demo.district, demo.zones, VIDEO, used, DatasetSettings(images=2))
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
