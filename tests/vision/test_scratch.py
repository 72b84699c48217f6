"""The from-scratch detector: augmentation keeps boxes on their objects, assignment, export layout, a tiny
training run through ``skygrid train --backend scratch``, and the committed demo-world model on a rendered frame.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from drone.cameras import parse_camera
from drone.dataset import DatasetSettings, make_dataset, tile_camera
from drone.model import Pose
from drone.simcam import SimCamera
from drone.simsource import video_camera
from drone.world import CLASS_NAMES, World, build_world
from gis.cli import cli
from gis.demo import DemoDistrict, make_demo_district
from vision.detector import FloatArray, OnnxDetector, iou_matrix, load_detector
from vision.train import DatasetError, label_path, read_image, read_split

DEMO_MODEL = Path(__file__).parents[2] / "vision" / "models" / "demo_world.onnx"
NO_TORCH = importlib.util.find_spec("torch") is None
needs_torch = pytest.mark.skipif(NO_TORCH, reason="torch is not installed (the optional training extra)")


@pytest.fixture(scope="module")
def demo() -> DemoDistrict:
    return make_demo_district(10_000, seed=1)


@pytest.fixture(scope="module")
def tiny_dataset(demo: DemoDistrict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("scratch") / "ds"
    video = video_camera(parse_camera("mavic3e").camera)
    make_dataset(demo.district, demo.zones, video, output, DatasetSettings(images=12, image_px=192, seed=3))
    return output / "data.yaml"


def test_label_path_follows_the_yolo_rule() -> None:
    assert label_path(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path(Path("/images/d/images/x/b.png")) == Path("/images/d/labels/x/b.txt")
    assert label_path(Path("/d/flat/c.jpg")) == Path("/d/flat/c.txt")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("train: images/train\nval: images/val\n", "'names'"),  # no class names
        ("train: images/train\nnames: [car]\n", "no 'val' entry"),  # split missing
        ("train: images/train\nval: nowhere\nnames: [car]\n", "image folder"),  # folder missing
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_data_yaml_names_the_problem(tmp_path: Path, yaml_text: str, message: str) -> None:
    (tmp_path / "images" / "train").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "train" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    data = tmp_path / "data.yaml"
    data.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as raised:
        read_split(data, "val")
    assert str(data) in str(raised.value)


@needs_torch
@pytest.mark.parametrize("seed", range(6))
def test_augmented_boxes_stay_on_their_objects(seed: int) -> None:
    from vision.scratch import Sample, augment

    image = np.zeros((300, 400, 3), np.uint8)
    box = np.asarray([[150, 100, 230, 140]], np.float32)  # a white car-sized rectangle
    image[100:140, 150:230] = 255
    rng = np.random.default_rng(seed)
    for _ in range(5):
        out = augment(Sample(image, box, np.asarray([2])), 128, rng)
        assert out.image.shape == (128, 128, 3)
        if len(out.class_ids) == 0:
            continue
        assert out.class_ids.tolist() == [2]
        x0, y0, x1, y1 = np.round(out.boxes_xyxy[0]).astype(int)
        bright = out.image.max(axis=2) > 120  # HSV jitter dims white to no less than 60 %
        ys, xs = np.nonzero(bright)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx((x0, y0, x1, y1), abs=2)


@needs_torch
def test_assignment_picks_anchors_on_the_box_with_its_class() -> None:
    import torch

    from vision.scratch import STRIDES, anchor_centres, anchor_strides, assign

    image_px, classes = 128, 3
    centres, strides = anchor_centres(image_px), anchor_strides(image_px)
    anchors = len(strides)
    assert anchors == sum((image_px // s) ** 2 for s in STRIDES)
    gt = torch.tensor([[[40.0, 40.0, 72.0, 60.0]]])
    boxes = torch.cat([centres - 10, centres + 10], dim=1)[None]  # every anchor predicts a 20 px square
    scores = torch.full((1, anchors, classes), 0.5)
    result = assign(scores, boxes, centres, strides, (gt, torch.tensor([[1]]), torch.tensor([[True]])))
    chosen = result.foreground[0]
    assert 0 < int(chosen.sum()) <= 10
    near = (centres[chosen] - torch.tensor([56.0, 50.0])).abs().amax(dim=1)
    assert bool((near < strides[chosen] + 16).all())  # inside the box or within a stride of its centre
    assert bool((result.boxes[0, chosen] == gt[0, 0]).all())
    assert float(result.scores[0, chosen, 1].min()) > 0
    assert float(result.scores[0, :, [0, 2]].abs().sum()) == 0  # only the box's own class is a target
    assert float(result.scores[0, ~chosen].abs().sum()) == 0


@needs_torch
def test_export_has_the_yolov8_layout_and_matches_torch(tmp_path: Path) -> None:
    import torch

    from vision.scratch import ScratchDetector, YoloExport, export_onnx

    torch.manual_seed(0)
    model = ScratchDetector(len(CLASS_NAMES), width=0.25).eval()
    path = export_onnx(model, tmp_path / "m.onnx", CLASS_NAMES, 96)
    images = np.random.default_rng(0).random((2, 3, 96, 96), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: images})[0]
    with torch.no_grad():
        torch_out = YoloExport(model, 96)(torch.from_numpy(images)).numpy()
    assert onnx_out.shape == (2, 4 + len(CLASS_NAMES), 12**2 + 6**2 + 3**2)
    np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-3, atol=1e-3)
    assert ((onnx_out[:, 4:] >= 0) & (onnx_out[:, 4:] <= 1)).all()  # sigmoid scores
    assert (onnx_out[:, 2:4] > 0).all()  # widths and heights
    detector = OnnxDetector(path)
    assert detector.class_names == CLASS_NAMES and detector.input_px == (96, 96)
    net = cv2.dnn.readNetFromONNX(str(path))  # the fallback backend reads it too
    net.setInput(images[:1])
    np.testing.assert_allclose(net.forward(), onnx_out[:1], rtol=1e-3, atol=1e-3)


@needs_torch
def test_bad_settings_and_output_are_refused_before_training(tmp_path: Path) -> None:
    from vision.scratch import ScratchError, ScratchParams, train_scratch

    with pytest.raises(ScratchError, match="crop_px"):
        ScratchParams(crop_px=100)
    keep = tmp_path / "model.onnx"
    keep.write_bytes(b"previous model")
    with pytest.raises(ScratchError, match=r"\.onnx"):
        train_scratch(tmp_path / "data.yaml", tmp_path / "model.pt")
    with pytest.raises(DatasetError, match=r"data\.yaml"):
        train_scratch(tmp_path / "data.yaml", keep)
    assert keep.read_bytes() == b"previous model"  # nothing lost


@needs_torch
@pytest.mark.slow
def test_tiny_training_run_exports_a_model_the_detector_runs(tiny_dataset: Path, tmp_path: Path) -> None:
    output = tmp_path / "tiny.onnx"
    args = ["train", str(tiny_dataset), "--backend", "scratch", "--epochs", "1", "--imgsz", "192"]
    result = CliRunner().invoke(
        cli, [*args, "--crop", "128", "--batch", "4", "--threads", "1", "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.output and "mAP50" in result.output
    detector = load_detector(output)
    assert detector.class_names == CLASS_NAMES
    split = read_split(tiny_dataset, "val")
    image = read_image(split.images[0])
    [found] = detector.detect([image], ["val-0"])
    assert found.frame_id == "val-0"
    assert (found.boxes_xyxy >= 0).all() and (found.boxes_xyxy[:, 2:] <= 192).all()


# ------------------------------------------------------------------------------ the committed demo-world model


@pytest.fixture(scope="module")
def world(demo: DemoDistrict) -> World:
    return build_world(demo.district, demo.zones, seed=11)  # a world the demo model never saw


def _frames_over_cars(
    world: World, count: int
) -> Iterator[tuple[npt.NDArray[np.uint8], FloatArray, FloatArray]]:
    """Nadir frames from 80 m centred on ``count`` fully visible parked cars: image, that car, every car."""
    camera = tile_camera(video_camera(parse_camera("mavic3e").camera), 640)
    sim = SimCamera(world, camera, min_visible=0.05)  # truth for cars cut by the frame edge too
    cars = [o for o in world.objects if o.class_name == "car" and o.base_height_m == 0]
    yielded = 0
    for car in cars:
        centre = car.footprint.centroid
        lon, lat = world.to_wgs84(centre.x, centre.y)
        frame = sim.render(Pose(lat, lon, 80.0, gimbal_yaw_deg=30.0, gimbal_pitch_deg=-90.0), seed=1)
        target = [
            b.box_xyxy for b in frame.boxes if b.object_id == car.object_id and b.visible_fraction > 0.9
        ]
        if target:  # skip a car hidden under a tree or another object
            every = [b.box_xyxy for b in frame.boxes if b.class_name == "car"]
            yield frame.image, np.asarray(target, np.float32), np.asarray(every, np.float32)
            yielded += 1
        if yielded == count:
            return


@pytest.mark.skipif(not DEMO_MODEL.is_file(), reason="the demo-world model is not in this checkout")
def test_demo_model_finds_planted_cars_in_rendered_frames(world: World) -> None:
    detector = load_detector(DEMO_MODEL)
    assert detector.class_names == CLASS_NAMES
    assert DEMO_MODEL.stat().st_size <= 15 * 2**20
    hits = false_alarms = 0
    for index, (image, target, every_car) in enumerate(_frames_over_cars(world, 5)):
        [found] = detector.detect([image], [f"car-{index}"])
        cars = found.filter(np.asarray(found.labels()) == "car").boxes_xyxy
        hits += bool(len(cars) and iou_matrix(cars, target).max() >= 0.5)
        false_alarms += int((iou_matrix(cars, every_car).max(axis=1, initial=0.0) < 0.3).sum())
    assert hits >= 4
    assert false_alarms <= 2
