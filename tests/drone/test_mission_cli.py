"""``skygrid mission plan``: a patrol over two demo grids to every format, and bad input explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from drone.formats.qgc_plan import read_plan
from drone.formats.waypoints import read_waypoints
from gis.cli import cli
from gis.io import write_district, write_plan
from tests.drone.test_planner import demo, two_grids


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo plan and district written once as GeoPackages: (plan.gpkg, district.gpkg)."""
    district, plan = demo()
    root = tmp_path_factory.mktemp("mission_cli")
    write_plan(plan, root / "plan.gpkg")
    write_district(district.district, root / "district.gpkg")
    return root / "plan.gpkg", root / "district.gpkg"


def _plan(files: tuple[Path, Path], out: Path, *extra: str) -> tuple[int, str]:
    grids = [arg for code in two_grids() for arg in ("--grid", code)]
    result = CliRunner().invoke(cli, ["mission", "plan", str(files[0]), *grids, "-o", str(out), *extra])
    return result.exit_code, result.output


def test_plan_to_qgc_plan_and_read_back(files: tuple[Path, Path], tmp_path: Path) -> None:
    code, output = _plan(
        files, tmp_path / "patrol.plan", "--buildings", str(files[1]), "--home", "120.700,31.300"
    )
    assert code == 0, output
    assert "sortie 1" in output and "wrote" in output and "warning" not in output
    plan = read_plan(tmp_path / "patrol.plan")
    assert plan.mission[0].lon_deg == pytest.approx(120.700) and plan.mission[1].command == 22
    assert plan.mission[-1].command == 20
    assert any(item.command == 5001 for item in plan.fence)


@pytest.mark.parametrize("suffix", [".waypoints", ".kmz", ".geojson", ".kml"])
def test_every_format_is_written(files: tuple[Path, Path], tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"patrol{suffix}"
    code, output = _plan(files, out, "--camera", "mavic3e", "--altitude-m", "70", "--side-overlap", "0.6")
    assert code == 0, output
    assert "--buildings" in output  # the warning that towers are not avoided
    assert out.stat().st_size > 0
    if suffix == ".waypoints":
        assert max(item.altitude_m for item in read_waypoints(out)) == 70.0


def test_a_small_battery_writes_one_file_per_sortie(files: tuple[Path, Path], tmp_path: Path) -> None:
    code, output = _plan(files, tmp_path / "p.plan", "--battery-min", "4")
    assert code == 0, output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert len(written) > 1 and written[0] == "p-1.plan"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "999"], "999"),
        (["--home", "120.7"], "LON,LAT"),
        (["--altitude-m", "150"], "120"),
        (["--camera", "phantom9"], "neither a preset"),
        (["--no-fly", "/nonexistent.geojson"], "cannot read"),
    ],
)
def test_bad_input_is_explained_and_nothing_is_written(
    files: tuple[Path, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    code, output = _plan(files, tmp_path / "x.plan", *extra)
    assert code != 0
    assert message in output
    assert not (tmp_path / "x.plan").exists()


def test_unknown_output_format(files: tuple[Path, Path], tmp_path: Path) -> None:
    code, output = _plan(files, tmp_path / "x.docx")
    assert code == 2 and "unknown format" in output


def test_missing_plan_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["mission", "plan", str(tmp_path / "no.gpkg"), "--grid", "1", "-o", str(tmp_path / "x.plan")]
    )
    assert result.exit_code == 1 and "not found" in result.output


def test_mission_group_carries_the_upload_command() -> None:
    result = CliRunner().invoke(cli, ["mission", "--help"])
    assert result.exit_code == 0
    assert "plan" in result.output and "upload" in result.output
