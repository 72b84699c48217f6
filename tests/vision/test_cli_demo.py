"""``skygrid demo-patrol`` on the folder ``skygrid demo`` writes: mission, simulated flight, flags, score."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from drone.formats.qgc_plan import read_plan
from gis.cli import cli


def test_demo_patrol_needs_the_demo_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo-patrol", str(tmp_path)])
    assert result.exit_code != 0
    assert "demo_district.gpkg is missing" in result.output


@pytest.mark.slow
def test_demo_then_patrol_writes_a_mission_and_flags_in_grids(tmp_path: Path) -> None:
    runner = CliRunner()
    demo = runner.invoke(cli, ["demo", "-o", str(tmp_path), "--households", "10000", "--seed", "1"])
    assert demo.exit_code == 0, demo.output
    patrol = runner.invoke(cli, ["demo-patrol", str(tmp_path)])
    assert patrol.exit_code == 0, patrol.output

    mission = read_plan(tmp_path / "patrol.plan")
    assert len(mission.mission) > 10
    flags = gpd.read_file(tmp_path / "flags.gpkg", layer="flags")
    assert len(flags) > 0
    grids = gpd.read_file(tmp_path / "plan.gpkg", layer="grids")
    assert set(flags["grid_code"].dropna()) <= set(grids["grid_code"])
    assert (tmp_path / "patrol" / "truth.gpkg").is_file()
    assert "recall" in patrol.output.lower()

    again = runner.invoke(cli, ["demo-patrol", str(tmp_path)])
    assert again.exit_code != 0
    assert "exists already" in again.output
