"""Offline basemap packages: build a .pmtiles with tippecanoe from a demo district and read tiles back."""

from __future__ import annotations

import gzip
from pathlib import Path

import mapbox_vector_tile
import mercantile
import pytest

from gis.demo import DemoDistrict, make_demo_district
from tiles.errors import PackageError, TileOutsideBoundsError
from tiles.pmtiles import BasemapPackage, basemap_layers, build_basemap, find_tippecanoe


def _tippecanoe() -> Path:
    try:
        return find_tippecanoe()
    except PackageError as error:
        pytest.skip(f"tippecanoe binary absent: {error}")


@pytest.fixture(scope="module")
def demo() -> DemoDistrict:
    return make_demo_district(10_000, seed=1)


@pytest.fixture(scope="module")
def package(demo: DemoDistrict, tmp_path_factory: pytest.TempPathFactory) -> BasemapPackage:
    binary = _tippecanoe()
    layers = basemap_layers(demo.district, green=demo.zones["green"])
    output = tmp_path_factory.mktemp("basemap") / "district.pmtiles"
    return build_basemap(layers, output, min_zoom=12, max_zoom=15, name="测试底图", tippecanoe=binary)


def test_layers_split_water_from_roads(demo: DemoDistrict) -> None:
    layers = basemap_layers(demo.district, green=demo.zones["green"])
    assert set(layers) == {"buildings", "roads", "water", "green"}
    assert set(layers["water"]["kind"]) == {"river"}
    assert "river" not in set(layers["roads"]["kind"])
    assert len(layers["buildings"]) == len(demo.district.buildings)


def test_header_and_metadata(package: BasemapPackage, demo: DemoDistrict) -> None:
    assert package.header["tile_type"] == "mvt"
    assert (package.header["min_zoom"], package.header["max_zoom"]) == (12, 15)
    west, _, _, north = demo.district.buildings.total_bounds
    assert package.header["min_lon_e7"] / 1e7 <= west + 1e-3
    assert package.header["max_lat_e7"] / 1e7 >= north - 1e-3
    assert package.metadata["name"] == "测试底图"
    names = {layer["id"] for layer in package.metadata["vector_layers"]}
    assert names == {"buildings", "roads", "water", "green"}


def test_tile_decodes_to_the_district(package: BasemapPackage, demo: DemoDistrict) -> None:
    building = demo.district.buildings.iloc[0]
    centre = building.geometry.centroid
    tile = mercantile.tile(centre.x, centre.y, 15)
    stored = package.tile(tile.z, tile.x, tile.y)
    assert stored is not None
    data = package.decoded_tile(tile.z, tile.x, tile.y)
    assert data is not None
    if package.compressed:
        assert gzip.decompress(stored) == data
    layers = mapbox_vector_tile.decode(data)
    ids = {feature["properties"]["building_id"] for feature in layers["buildings"]["features"]}
    assert building["building_id"] in ids


def test_missing_tiles_and_ranges(package: BasemapPackage) -> None:
    far = mercantile.tile(2.35, 48.85, 14)
    assert package.tile(far.z, far.x, far.y) is None
    assert package.tile(3, 6, 3) is None  # below the package's zooms
    with pytest.raises(TileOutsideBoundsError):
        package.tile(15, -1, 0)
    assert package.read_range(0, 7) == b"PMTiles"
    size = package.path.stat().st_size
    assert len(package.read_range(size - 10, 100)) == 10
    with pytest.raises(PackageError, match="non-negative"):
        package.read_range(-1, 5)


def test_bad_archives_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="missing"):
        BasemapPackage.open(tmp_path / "absent.pmtiles")
    fake = tmp_path / "fake.pmtiles"
    fake.write_bytes(b"NOTPMTILES" + bytes(200))
    with pytest.raises(PackageError, match="not a readable PMTiles"):
        BasemapPackage.open(fake)


def test_failed_build_keeps_the_old_file(demo: DemoDistrict, tmp_path: Path) -> None:
    binary = _tippecanoe()
    output = tmp_path / "basemap.pmtiles"
    output.write_bytes(b"previous package")
    with pytest.raises(PackageError, match="no layers"):
        build_basemap({}, output, tippecanoe=binary)
    with pytest.raises(PackageError, match="zoom range"):
        build_basemap(basemap_layers(demo.district), output, min_zoom=16, max_zoom=12, tippecanoe=binary)
    no_crs = demo.district.buildings.set_crs(None, allow_override=True)
    with pytest.raises(PackageError, match="layer buildings: the frame has no CRS"):
        build_basemap({"buildings": no_crs}, output, tippecanoe=binary)
    with pytest.raises(PackageError, match="tippecanoe failed with exit code 1"):
        build_basemap(basemap_layers(demo.district), output, tippecanoe=Path("/bin/false"))
    assert output.read_bytes() == b"previous package"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["basemap.pmtiles"]


def test_tippecanoe_errors_are_reported(demo: DemoDistrict, tmp_path: Path) -> None:
    binary = _tippecanoe()
    with pytest.raises(PackageError, match=r"tippecanoe failed with exit code \d+: .*absent"):
        build_basemap(basemap_layers(demo.district), tmp_path / "absent" / "x.pmtiles", tippecanoe=binary)


def test_missing_binary_is_reported(demo: DemoDistrict, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="cannot run tippecanoe"):
        build_basemap(basemap_layers(demo.district), tmp_path / "x.pmtiles", tippecanoe=tmp_path / "nope")
