"""The skygrid command line as a user runs it: help, demo-district → grid → validate → export, errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from gis.cli import cli, main
from gis.io import read_plan, write_plan

SUBCOMMANDS = ["demo", "demo-district", "grid", "validate", "export"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


@pytest.fixture(scope="module")
def gridded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    district, plan = folder / "district.gpkg", folder / "plan.gpkg"
    runner = CliRunner()
    made = runner.invoke(cli, ["demo-district", "-o", str(district), "--households", "12000", "--seed", "5"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(cli, ["grid", str(district), "-o", str(plan), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "grids" in result.output
    return district, plan


def test_grid_writes_every_plan_layer(gridded: tuple[Path, Path]) -> None:
    _, plan = gridded
    for layer in ("grids", "microgrids", "building_units", "report"):
        assert len(gpd.read_file(plan, layer=layer)) > 0


def test_validate_passes_a_fresh_plan(gridded: tuple[Path, Path]) -> None:
    district, plan = gridded
    result = CliRunner().invoke(cli, ["validate", str(plan), "--district", str(district)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_validate_fails_a_broken_plan(gridded: tuple[Path, Path], tmp_path: Path) -> None:
    district, plan = gridded
    original = read_plan(plan)
    grids = original.grids.copy()
    grids.loc[0, "households"] = grids.loc[0, "households"] + 7
    broken = tmp_path / "broken.gpkg"
    write_plan(replace(original, grids=grids), broken)
    result = CliRunner().invoke(cli, ["validate", str(broken), "--district", str(district)])
    assert result.exit_code == 1
    assert "households" in result.output


@pytest.mark.parametrize(
    ("fmt", "target", "expected"),
    [
        ("geojson", "out_geojson", "grids.geojson"),
        ("shp", "out_shp", "grids.shp"),
        ("csv", "roster.csv", "roster.csv"),
        ("html", "map.html", "map.html"),
    ],
)
def test_export_formats(
    gridded: tuple[Path, Path], tmp_path: Path, fmt: str, target: str, expected: str
) -> None:
    district, plan = gridded
    out = tmp_path / target
    result = CliRunner().invoke(
        cli, ["export", str(plan), "-f", fmt, "-o", str(out), "--district", str(district)]
    )
    assert result.exit_code == 0, result.output
    written = out if out.suffix else out / expected
    assert written.exists()
    if fmt == "geojson":
        assert json.loads(written.read_text())["features"]


def test_bad_range_is_a_usage_error(gridded: tuple[Path, Path], tmp_path: Path) -> None:
    district, _ = gridded
    result = CliRunner().invoke(
        cli, ["grid", str(district), "-o", str(tmp_path / "p.gpkg"), "--grid", "300-500"]
    )
    assert result.exit_code == 2
    assert "MIN:MAX" in result.output
    assert not (tmp_path / "p.gpkg").exists()


def test_library_error_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    folder = tmp_path / "district"
    folder.mkdir()
    (folder / "buildings.geojson").write_text(empty.read_text())
    (folder / "communities.geojson").write_text(empty.read_text())
    monkeypatch.setattr("sys.argv", ["skygrid", "grid", str(folder), "-o", str(tmp_path / "plan.gpkg")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "buildings" in err
    assert not (tmp_path / "plan.gpkg").exists()


def test_no_straighten_keeps_the_staircase_boundaries_and_the_same_assignment(
    gridded: tuple[Path, Path], tmp_path: Path
) -> None:
    district, plan = gridded
    raw = tmp_path / "raw.gpkg"
    result = CliRunner().invoke(
        cli, ["grid", str(district), "-o", str(raw), "--seed", "2", "--no-straighten"]
    )
    assert result.exit_code == 0, result.output
    straight, stairs = read_plan(plan), read_plan(raw)
    assert (straight.rules.straighten_boundaries, stairs.rules.straighten_boundaries) == (True, False)
    assert stairs.grids.geometry.length.sum() > straight.grids.geometry.length.sum()
    households = sorted(straight.grids["households"]) == sorted(stairs.grids["households"])
    assert households and len(straight.building_units) == len(stairs.building_units)
