"""``skygrid simulate-patrol`` and ``skygrid make-dataset`` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from drone.framedir import FrameDirSource
from drone.world import CLASS_NAMES
from gis.cli import cli
from gis.demo import make_demo_district, write_demo
from gis.gridder import make_plan
from gis.io import write_plan
from gis.model import GridRules


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("inputs")
    demo = make_demo_district(10_000, seed=1)
    district, plan_path = folder / "district.gpkg", folder / "plan.gpkg"
    write_demo(demo, district)
    plan = make_plan(demo.district, GridRules())
    write_plan(plan, plan_path)
    grids = plan.grids.to_crs(plan.grids.estimate_utm_crs())
    smallest = str(grids.loc[grids.area.idxmin(), "grid_code"])
    return district, plan_path, smallest


def test_simulate_patrol_writes_posed_frames_and_truth(
    inputs: tuple[Path, Path, str], tmp_path: Path
) -> None:
    district, plan, code = inputs
    out = tmp_path / "patrol"
    args = ["simulate-patrol", str(district), "--plan", str(plan), "--grid", code, "--seed", "2"]
    options = ["--altitude-m", "100", "--frame-width-px", "480", "--gimbal-pitch-deg", "-80", "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, *options])
    assert result.exit_code == 0, result.output
    frames = list(FrameDirSource(out))
    assert len(frames) > 5
    assert all(f.image.shape == (270, 480, 3) and f.pose.altitude_agl_m == 100.0 for f in frames)
    assert {f.pose.gimbal_pitch_deg for f in frames} == {-80.0}
    assert frames[0].timestamp.utcoffset() is not None
    truth = gpd.read_file(out / "truth.gpkg", layer="objects")
    assert truth.crs.to_epsg() == 4326 and len(truth) > 0
    assert {"category_code", "violation", "class_name", "object_id"} <= set(truth.columns)
    assert set(truth["category_code"]) <= {"0101", "0102", "0505", "0506", "0507"}
    assert (truth["sightings"] >= 1).all() and truth["sightings"].max() > 1  # overlapping frames
    labels = out / "labels"
    assert (labels / "classes.txt").read_text().split() == list(CLASS_NAMES)
    assert {p.stem for p in labels.glob("sim2-*.txt")} == {f.frame_id for f in frames}
    labelled = [line.split() for p in labels.glob("sim2-*.txt") for line in p.read_text().splitlines()]
    assert labelled and all(len(row) == 5 and 0 <= int(row[0]) < len(CLASS_NAMES) for row in labelled)
    assert f"{len(frames)} frames" in result.output and f"{len(truth)} objects seen" in result.output


def test_refuses_a_folder_with_files(inputs: tuple[Path, Path, str], tmp_path: Path) -> None:
    district, plan, code = inputs
    (tmp_path / "old.txt").write_text("keep")
    result = CliRunner().invoke(
        cli, ["simulate-patrol", str(district), "--plan", str(plan), "--grid", code, "-o", str(tmp_path)]
    )
    assert result.exit_code != 0 and "not empty" in result.output
    assert (tmp_path / "old.txt").read_text() == "keep"


def test_unknown_grid_code_is_named(inputs: tuple[Path, Path, str], tmp_path: Path) -> None:
    district, plan, _ = inputs
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["simulate-patrol", str(district), "--plan", str(plan), "--grid", "999", "-o", str(out)]
    )
    assert result.exit_code != 0 and "999" in result.output and "not in the plan" in result.output
    assert not (out / "truth.gpkg").exists()
    result = CliRunner().invoke(
        cli,
        [
            "simulate-patrol",
            str(district),
            "--plan",
            str(plan),
            "--grid",
            "999",
            "--gimbal-pitch-deg",
            "10",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code != 0 and "--gimbal-pitch-deg must be within -90..-20, got 10" in result.output


def test_district_without_zones_is_refused(inputs: tuple[Path, Path, str], tmp_path: Path) -> None:
    district, plan, code = inputs
    bare = tmp_path / "bare.gpkg"
    for layer in ("buildings", "communities"):
        gpd.read_file(district, layer=layer).to_file(bare, layer=layer)
    result = CliRunner().invoke(
        cli, ["simulate-patrol", str(bare), "--plan", str(plan), "--grid", code, "-o", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "zone layers missing: parking" in result.output


def test_make_dataset_command(inputs: tuple[Path, Path, str], tmp_path: Path) -> None:
    district, _, _ = inputs
    out = tmp_path / "ds"
    args = [
        "make-dataset",
        str(district),
        "-o",
        str(out),
        "--images",
        "3",
        "--image-px",
        "256",
        "--seed",
        "1",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (out / "data.yaml").is_file()
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 2
    assert len(list((out / "labels" / "val").glob("*.txt"))) == 1
    bad = CliRunner().invoke(cli, ["make-dataset", str(district), "-o", str(tmp_path / "x"), "--images", "1"])
    assert bad.exit_code != 0 and "images must be at least 2" in bad.output
