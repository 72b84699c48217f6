"""``skygrid tiles``: basemap, mvt and ortho commands on real files, and their error messages."""

from __future__ import annotations

from pathlib import Path

import mapbox_vector_tile
import mercantile
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from drone.framedir import write_frame_dir
from gis.cli import cli
from gis.demo import make_demo_district, write_demo
from gis.gridder import make_plan
from gis.io import read_district, write_plan
from gis.model import GridRules
from tests.tiles.test_raster import LAT0, LON0, _frame
from tiles.errors import PackageError
from tiles.pmtiles import BasemapPackage, find_tippecanoe


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["tiles", *args])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    district = folder / "district.gpkg"
    write_demo(make_demo_district(10_000, seed=3), district)
    plan = folder / "plan.gpkg"
    write_plan(make_plan(read_district(district), GridRules()), plan)
    return district, plan


def _centre_tile(district: Path, zoom: int) -> mercantile.Tile:
    west, south, east, north = read_district(district).buildings.total_bounds
    return mercantile.tile((west + east) / 2, (south + north) / 2, zoom)


def test_mvt_writes_a_decodable_tile(files: tuple[Path, Path], tmp_path: Path) -> None:
    district, plan = files
    tile = _centre_tile(district, 15)
    output = tmp_path / "t.mvt"
    result = _run("mvt", str(plan), "--district", str(district), "-z", "15", "-x", str(tile.x), "-y", str(tile.y),
                  "-o", str(output), "--layers", "grids,parking")  # fmt: skip
    assert result.exit_code == 0, result.output
    layers = mapbox_vector_tile.decode(output.read_bytes())
    assert set(layers) == {"grids", "parking"}
    assert f"{len(layers['grids']['features'])} grids" in result.output


def test_mvt_errors_name_the_problem(files: tuple[Path, Path], tmp_path: Path) -> None:
    district, plan = files
    output = tmp_path / "t.mvt"
    result = _run(
        "mvt", str(plan), "--district", str(district), "-z", "2", "-x", "9", "-y", "0", "-o", str(output)
    )
    assert result.exit_code != 0
    assert "tile 2/9/0 does not exist" in result.output
    result = _run(
        "mvt", str(district), "--district", str(district), "-z", "2", "-x", "0", "-y", "0", "-o", str(output)
    )
    assert "missing layer(s) grids" in result.output
    assert not output.exists()


def test_basemap_builds_a_package(files: tuple[Path, Path], tmp_path: Path) -> None:
    try:
        find_tippecanoe()
    except PackageError as error:
        pytest.skip(f"tippecanoe binary absent: {error}")
    district, _ = files
    output = tmp_path / "base.pmtiles"
    result = _run("basemap", str(district), "-o", str(output), "--min-zoom", "12", "--max-zoom", "14")
    assert result.exit_code == 0, result.output
    package = BasemapPackage.open(output)
    assert package.header["max_zoom"] == 14
    assert "green" in result.output and "water" in result.output


def test_ortho_renders_a_tile_from_a_frame_folder(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    write_frame_dir([_frame(0.0, 0.0)], frames)
    tile = mercantile.tile(LON0, LAT0, 19)
    output = tmp_path / "ortho.webp"
    result = _run("ortho", str(frames), "-z", "19", "-x", str(tile.x), "-y", str(tile.y), "-o", str(output))
    assert result.exit_code == 0, result.output
    assert Image.open(output).format == "WEBP"
    far = mercantile.tile(LON0 + 0.05, LAT0, 19)
    result = _run(
        "ortho", str(frames), "-z", "19", "-x", str(far.x), "-y", str(far.y), "-o", str(tmp_path / "x.png")
    )
    assert result.exit_code != 0 and "no frame of" in result.output
    assert not (tmp_path / "x.png").exists()
