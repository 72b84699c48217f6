"""``skygrid tiles``: offline basemap packages, and single vector / orthomosaic tiles for debugging."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import geopandas as gpd

    from tiles.raster import TileFormat

_ZOOM = click.IntRange(0, 24)


@click.group("tiles")
def tiles() -> None:
    """Map tiles: offline basemap (PMTiles), vector tiles of a plan, orthomosaic tiles of a flight."""


@tiles.command("basemap")
@click.argument("district_path", metavar="DISTRICT.gpkg", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="OUT.pmtiles"
)
@click.option("--min-zoom", type=_ZOOM, default=10, show_default=True)
@click.option("--max-zoom", type=_ZOOM, default=17, show_default=True)
@click.option("--name", default="SkyGrid basemap", show_default=True, help="Name in the package metadata.")
def basemap(district_path: Path, output: Path, min_zoom: int, max_zoom: int, name: str) -> None:
    """Build an offline basemap (buildings, roads, water, green space) of a district with tippecanoe.

    离线底图: 由本辖区的建筑、道路、水系和绿地生成 PMTiles 文件。
    """
    from gis.errors import GisError
    from gis.io import read_district
    from tiles.errors import TilesError
    from tiles.pmtiles import basemap_layers, build_basemap

    try:
        district = read_district(district_path)
        layers = basemap_layers(district, green=_optional_layer(district_path, "green"))
        package = build_basemap(layers, output, min_zoom=min_zoom, max_zoom=max_zoom, name=name)
    except (GisError, TilesError) as error:
        raise click.ClickException(str(error)) from error
    counts = ", ".join(f"{len(frame)} {layer}" for layer, frame in layers.items())
    size_kib = output.stat().st_size / 1024
    click.echo(
        f"wrote {output} ({size_kib:.0f} KiB, z{package.header['min_zoom']}–{package.header['max_zoom']}): {counts}"
    )


@tiles.command("mvt")
@click.argument(
    "plan_path", metavar="PLAN.gpkg", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--district", "district_path", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("-z", "z", type=_ZOOM, required=True)
@click.option("-x", "x", type=click.IntRange(min=0), required=True)
@click.option("-y", "y", type=click.IntRange(min=0), required=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="OUT.mvt"
)
@click.option("--layers", "layer_names", help="Comma-separated layers (default: all), e.g. buildings,grids.")
def mvt(
    plan_path: Path, district_path: Path, z: int, x: int, y: int, output: Path, layer_names: str | None
) -> None:
    """Write one Mapbox Vector Tile of a plan (buildings, grids, micro-grids, communities, zones).

    输出一个矢量切片 (调试用)。
    """
    import mapbox_vector_tile

    from gis.demo import ZONE_LAYERS
    from gis.errors import GisError
    from gis.io import read_district, read_plan
    from tiles.errors import TilesError
    from tiles.mvt import VectorTileSource, plan_layers

    try:
        district = read_district(district_path)
        zones = {
            name: frame for name in ZONE_LAYERS if (frame := _optional_layer(district_path, name)) is not None
        }
        source = VectorTileSource.from_frames(plan_layers(read_plan(plan_path), district, zones=zones))
        selected = tuple(layer_names.split(",")) if layer_names else None
        data = source.tile(z, x, y, layers=selected)
    except (GisError, TilesError) as error:
        raise click.ClickException(str(error)) from error
    _write_atomically(output, data)
    decoded = mapbox_vector_tile.decode(data) if data else {}
    summary = ", ".join(f"{len(layer['features'])} {name}" for name, layer in decoded.items()) or "empty tile"
    click.echo(f"wrote {output} ({len(data)} bytes): {summary}")


@tiles.command("ortho")
@click.argument(
    "frame_dir", metavar="FRAME_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("-z", "z", type=_ZOOM, required=True)
@click.option("-x", "x", type=click.IntRange(min=0), required=True)
@click.option("-y", "y", type=click.IntRange(min=0), required=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="OUT.png/.webp"
)
@click.option(
    "--rule", type=click.Choice(["nearest_nadir", "latest"]), default="nearest_nadir", show_default=True
)
def ortho(frame_dir: Path, z: int, x: int, y: int, output: Path, rule: str) -> None:
    """Render one orthomosaic tile from a frame folder (``skygrid frames`` output).

    由航拍帧生成一个正射影像切片。
    """
    from drone.framedir import FrameDirError, FrameDirSource
    from tiles.errors import TilesError
    from tiles.raster import OrthoMosaic

    fmt: TileFormat = "webp" if output.suffix.lower() == ".webp" else "png"
    try:
        source = FrameDirSource(frame_dir)
        mosaic = OrthoMosaic.from_frames(source, rule="latest" if rule == "latest" else "nearest_nadir")
        data = mosaic.tile(z, x, y, fmt=fmt)
    except (FrameDirError, TilesError) as error:
        raise click.ClickException(str(error)) from error
    skipped = ", ".join(f"{count} {reason}" for reason, count in mosaic.skipped.items())
    if data is None:
        raise click.ClickException(
            f"no frame of {frame_dir} covers tile {z}/{x}/{y} (frames cover {mosaic.bounds}); nothing written"
        )
    _write_atomically(output, data)
    click.echo(
        f"wrote {output} from {len(mosaic.warps)} frames" + (f"; skipped {skipped}" if skipped else "")
    )


def _optional_layer(path: Path, layer: str) -> gpd.GeoDataFrame | None:
    """A layer of a GeoPackage if it has one (the demo's zones), else None."""
    import pyogrio

    if path.is_dir() or layer not in {str(row[0]) for row in pyogrio.list_layers(path)}:
        return None
    return pyogrio.read_dataframe(path, layer=layer)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


COMMANDS: list[click.Command] = [tiles]
