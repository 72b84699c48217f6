"""``skygrid detect`` and ``skygrid eval`` end to end on a frame folder, with a tiny real ONNX model."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

from drone.framedir import write_frame_dir
from gis.io import write_layers, write_plan
from tests.vision import scene
from tests.vision.tiny_onnx import INPUT_PX, anchor_table, build_tiny_yolo
from vision.cli_detect import detect, eval_
from vision.flags import read_flags_frame


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("detect")
    zones = scene.zones()
    layers = {
        name: gpd.GeoDataFrame(geometry=[getattr(zones, name)], crs=scene.CRS).to_crs("EPSG:4326")
        for name in ("parking", "fire_lanes", "green", "public_space")
    }
    layers["buildings"] = zones.buildings.assign(floors=6).to_crs("EPSG:4326")
    write_layers(root / "zones.gpkg", layers)
    write_plan(scene.plan(), root / "plan.gpkg")
    white = np.full((scene.CAMERA.image_height_px, scene.CAMERA.image_width_px, 3), 255, np.uint8)
    frames = [
        f.__class__(f.frame_id, f.timestamp, white, f.pose, f.camera, f.source) for f in scene.frames(20.0)
    ]
    write_frame_dir(frames, root / "patrol")
    # one car box in the middle of every (white) image: 0.9 score, 34 × 14 px in the frame, which at the
    # scene's 60 m (0.133 m per pixel) is a car's 4.5 × 1.9 m
    table = anchor_table([(INPUT_PX / 2, INPUT_PX / 2, 3.4, 1.4, 0, 0.9)], classes=2)
    build_tiny_yolo(root / "tiny.onnx", table, names={0: "car", 1: "person"})
    write_layers(root / "truth.gpkg", {"objects": scene.truth()})
    return {"root": root, "zones": root / "zones.gpkg", "plan": root / "plan.gpkg", "patrol": root / "patrol"}


def _detect(inputs: dict[str, Path], output: Path, *extra: str) -> tuple[int, str]:
    args = [str(inputs["patrol"]), "--plan", str(inputs["plan"]), "--zones", str(inputs["zones"])]
    args += [
        "-o",
        str(output),
        "--model",
        str(inputs["root"] / "tiny.onnx"),
        "--no-slice",
        "--novelty",
        "0",
        *extra,
    ]
    result = CliRunner().invoke(detect, args)
    return result.exit_code, result.output


def test_detect_writes_flags_with_grids_and_evidence_then_resumes(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    output = tmp_path / "flags.gpkg"
    code, text = _detect(inputs, output)
    assert code == 0, text
    flags = read_flags_frame(output)
    frames = len(scene.frames(20.0))
    assert f"read {frames} frames, processed {frames}, wrote {len(flags)} flags" in text
    assert len(flags) > 0 and set(flags["class_name"]) == {"car"}
    assert set(flags["rule"]) <= {"vehicle_outside_bay", "vehicle_in_fire_lane", "vehicle_on_green"}
    assert set(flags["microgrid_code"]) <= {scene.MICRO_WEST, scene.MICRO_EAST}
    assert all((tmp_path / path).is_file() for path in flags["evidence"])
    code, text = _detect(inputs, output)
    assert code == 0 and f"skipped {frames} × already_processed" in text
    assert read_flags_frame(output)["flag_id"].tolist() == flags["flag_id"].tolist()
    code, text = _detect(inputs, output, "--fresh")
    assert code == 0 and "already_processed" not in text


def test_eval_prints_scores_per_category(inputs: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "flags.gpkg"
    assert _detect(inputs, output)[0] == 0
    result = CliRunner().invoke(eval_, [str(output), "--truth", str(inputs["root"] / "truth.gpkg")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["category", "truth", "flags"]
    assert {line.split()[0] for line in lines[1:]} == {"0101", "0102", "0505", "0506", "0507", "all"}


@pytest.mark.parametrize(
    ("swap", "message"),
    [
        ("zones", "missing zone layer(s)"),
        ("plan", "missing layer(s)"),
    ],
)
def test_bad_inputs_fail_with_a_clear_message(
    inputs: dict[str, Path], tmp_path: Path, swap: str, message: str
) -> None:
    wrong = tmp_path / "wrong.gpkg"
    write_layers(wrong, {"other": scene.truth()})
    changed = {**inputs, swap: wrong}
    code, text = _detect(changed, tmp_path / "flags.gpkg")
    assert code == 1 and message in text and "wrong.gpkg" in text
    assert not (tmp_path / "flags.gpkg").exists()


def test_eval_names_a_missing_truth_layer(inputs: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "flags.gpkg"
    assert _detect(inputs, output)[0] == 0
    result = CliRunner().invoke(eval_, [str(output), "--truth", str(inputs["zones"])])
    assert result.exit_code == 1 and "no layer 'objects'" in result.output
