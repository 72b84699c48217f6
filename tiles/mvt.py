"""Mapbox Vector Tiles of a district and its plan: buildings, grids, micro-grids, zones and flags.

:class:`VectorTileSource` projects every layer to Web Mercator once (a :class:`LayerGeometry`, which
sources with the same geometries share), indexes it with an STRtree, encodes its property values once and
simplifies each feature of a detailed layer (grids, micro-grids, green space) once per zoom, when a tile first
needs it; a tile then costs one index query per layer, a vectorised clip in GEOS of the features that cross
its edge, and one pass of the numpy encoder of :mod:`tiles.mvt_encode` over all its layers (which maps to
tile units as it reads the coordinates).
Coordinates are WGS-84 in storage; tiles are EPSG:3857 as every web map expects.

Example:
    >>> import geopandas as gpd
    >>> from shapely.geometry import box
    >>> grids = gpd.GeoDataFrame({"grid_code": ["320571001001001"]},
    ...                          geometry=[box(120.70, 31.30, 120.71, 31.31)], crs="EPSG:4326")
    >>> source = VectorTileSource.from_frames({"grids": grids}, {"grids": LayerSpec(("grid_code",))})
    >>> tile = source.tile(14, 13685, 6690)
    >>> import mapbox_vector_tile
    >>> mapbox_vector_tile.decode(tile)["grids"]["features"][0]["properties"]
    {'grid_code': '320571001001001'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import geopandas as gpd
import mercantile
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from gis.model import District, GridPlan
from tiles.errors import TileLayerError, TileOutsideBoundsError
from tiles.mvt_encode import Properties, TileGrid, encode_layers, encode_tile

__all__ = [
    "DEFAULT_LAYER_SPECS",
    "TILE_EXTENT",
    "LayerGeometry",
    "LayerSpec",
    "VectorTileSource",
    "buildings_with_codes",
    "check_tile",
    "plan_layers",
]

WEB_MERCATOR = "EPSG:3857"
TILE_EXTENT = 4096
#: a feature is kept this far (tile units) outside its tile so that strokes and labels do not break at edges
DEFAULT_BUFFER = 64
MAX_ZOOM = 24
#: geometries with at most this many vertices are never simplified (footprints, bays)
_SIMPLE_VERTICES = 8
#: zooms for which detailed layers are simplified once, up front
_LEVEL_ZOOMS = (10, 16)


@dataclass(frozen=True)
class LayerSpec:
    """How one layer goes into tiles.

    Args:
        properties: columns written as feature properties (others are dropped to keep tiles small).
        min_zoom: the layer is absent from tiles below this zoom (buildings clutter a z10 tile).
        simplify: simplification tolerance in tile units (1/4096 of a tile), so it scales with the zoom.
        id_column: a column of positive integers written as the feature id (e.g. a database row id);
            default: the feature's row in the frame + 1.
    """

    properties: tuple[str, ...] = ()
    min_zoom: int = 0
    simplify: float = 1.0
    id_column: str | None = None


#: what the web pages show per layer; ``plan_layers`` builds frames with these columns
DEFAULT_LAYER_SPECS: Mapping[str, LayerSpec] = {
    "buildings": LayerSpec(("building_id", "households", "floors", "grid_code", "microgrid_code"), 13, 0.5),
    "grids": LayerSpec(("grid_code", "community_code", "households", "status"), 0),
    "microgrids": LayerSpec(("microgrid_code", "grid_code", "households", "status"), 12),
    "communities": LayerSpec(("community_code", "name"), 0),
    "parking": LayerSpec(("zone_id",), 14),
    "fire_lanes": LayerSpec(("zone_id",), 14),
    "green": LayerSpec(("zone_id",), 13),
    "public_space": LayerSpec(("zone_id",), 13),
    "flags": LayerSpec(("flag_id", "category", "status", "confidence"), 10),
}


@dataclass(frozen=True, eq=False)
class LayerGeometry:
    """A layer's geometries in Web Mercator with their index: the costly part of preparing a layer, which
    sources whose layers have the same geometries share (a district's buildings under every revision of a
    plan: only their grid codes change). Build with :meth:`of`.

    Attributes:
        spec: the spec it was made for (its simplification and zooms).
        present: which rows of the input have a geometry (rows without one are never drawn).
        geometries: the present geometries, projected.
        tree: their index.
        vertex_counts: vertices per geometry.
        bounds: each geometry's box (minx, miny, maxx, maxy): a feature whose box lies inside a tile's clip
            box needs no clipping (simplifying a geometry never takes it outside its box).
        level_zooms: zooms at which every geometry is simplified once, on first use, and kept (detailed
            layers only): neighbouring tiles then share the simplified edge and no tile pays twice.
        levels: zoom → each geometry simplified for it (None until a tile needs it).
    """

    spec: LayerSpec
    present: npt.NDArray[np.bool_]
    geometries: npt.NDArray[np.object_]
    tree: shapely.STRtree
    vertex_counts: npt.NDArray[np.int_]
    bounds: npt.NDArray[np.float64]
    level_zooms: frozenset[int]
    levels: dict[int, npt.NDArray[np.object_]]

    @classmethod
    def of(cls, name: str, frame: gpd.GeoDataFrame, spec: LayerSpec) -> LayerGeometry:
        """Project and index the geometry of layer ``name`` (any CRS).

        Raises:
            TileLayerError: the frame has no CRS.
        """
        if frame.crs is None:
            raise TileLayerError(f"layer {name}: the frame has no CRS; set one (SkyGrid stores EPSG:4326)")
        projected = frame.geometry.to_crs(WEB_MERCATOR).to_numpy()
        present = ~(shapely.is_missing(projected) | shapely.is_empty(projected))
        geometries = projected[present]
        vertex_counts = shapely.get_num_coordinates(geometries)
        zooms = _level_zooms(vertex_counts, spec)
        tree = shapely.STRtree(geometries)
        return cls(spec, present, geometries, tree, vertex_counts, shapely.bounds(geometries), zooms, {})


@dataclass(frozen=True, eq=False)
class _Layer:
    """One layer: its geometry and the properties of its features."""

    name: str
    shape: LayerGeometry
    properties: Properties
    source_rows: npt.NDArray[np.int64]  # feature id - 1 of each geometry (its frame row, or its id column)

    @property
    def spec(self) -> LayerSpec:
        return self.shape.spec


@dataclass(frozen=True, eq=False)
class VectorTileSource:
    """Layers ready for tiling; build with :meth:`from_frames`, then call :meth:`tile` for any z/x/y.

    The object is immutable and holds no global state, so one source can serve many threads. A new plan
    version means a new source (and a new cache key, see :mod:`tiles.cache`).
    """

    layers: tuple[_Layer, ...]
    extent: int = TILE_EXTENT
    buffer: int = DEFAULT_BUFFER
    _by_name: dict[str, _Layer] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {layer.name: layer for layer in self.layers})

    @classmethod
    def from_frames(
        cls,
        frames: Mapping[str, gpd.GeoDataFrame],
        specs: Mapping[str, LayerSpec] | None = None,
        *,
        geometries: Mapping[str, LayerGeometry] | None = None,
        extent: int = TILE_EXTENT,
        buffer: int = DEFAULT_BUFFER,
    ) -> VectorTileSource:
        """Project and index each frame (layer name → frame, in any CRS); ``specs`` default to the defaults.

        ``geometries`` gives layers whose geometry is already prepared (made by :meth:`LayerGeometry.of`
        from the same rows, in the same order): only their properties are read from the frame.

        Raises:
            TileLayerError: a frame has no CRS, lacks a property column its spec names, or does not match
                the prepared geometry given for it.
        """
        specs = DEFAULT_LAYER_SPECS if specs is None else specs
        prepared = geometries or {}
        layers = tuple(
            _prepare_layer(name, frame, specs.get(name, LayerSpec()), prepared.get(name))
            for name, frame in frames.items()
        )
        return cls(layers, extent, buffer)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the layers, in the order they are written into tiles."""
        return tuple(layer.name for layer in self.layers)

    def tile(self, z: int, x: int, y: int, *, layers: tuple[str, ...] | None = None) -> bytes:
        """Encode tile z/x/y (XYZ scheme) as MVT protobuf bytes; an empty tile is ``b""``.

        A feature's id is its row in the source frame + 1 (or its spec's ``id_column``), the same in every
        tile, so a web map can key feature state (selection, painting) on it.

        Args:
            z, x, y: the tile.
            layers: the layers to include (default: all), e.g. ``("buildings", "grids")``.

        Raises:
            TileOutsideBoundsError: z/x/y is not a tile of the pyramid.
            TileLayerError: a requested layer is unknown.
        """
        check_tile(z, x, y)
        bounds = mercantile.xy_bounds(x, y, z)
        box_m = (bounds.left, bounds.bottom, bounds.right, bounds.top)
        scale = self.extent / (bounds.right - bounds.left)
        chosen = [layer for layer in self._selected(layers) if z >= layer.spec.min_zoom]
        picked = [self._pick(layer, box_m, z, scale) for layer in chosen]
        grid = TileGrid(bounds.left, bounds.top, scale, -scale)
        named = [(layer.name, shapes) for layer, (_, shapes) in zip(chosen, picked, strict=True)]
        encoded = encode_layers(named, grid)
        if not any(len(layer.rows) for layer in encoded):
            return b""
        features = [
            (
                replace(layer, rows=source.source_rows[hits[layer.rows]]),
                source.properties.take(hits[layer.rows]),
            )
            for source, (hits, _), layer in zip(chosen, picked, encoded, strict=True)
        ]
        return encode_tile(features, extent=self.extent)

    def _selected(self, names: tuple[str, ...] | None) -> tuple[_Layer, ...]:
        if names is None:
            return self.layers
        unknown = [name for name in names if name not in self._by_name]
        if unknown:
            raise TileLayerError(
                f"unknown layer(s) {', '.join(unknown)}; this source has {list(self._by_name)}"
            )
        return tuple(self._by_name[name] for name in names)

    def _pick(
        self, layer: _Layer, bounds: tuple[float, float, float, float], z: int, scale: float
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.object_]]:
        """A layer's features in a tile: their rows (found by the index) and their geometry, simplified and
        clipped with the buffer."""
        minx, miny, maxx, maxy = bounds
        pad = self.buffer / scale
        hits = np.sort(layer.shape.tree.query(shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)))
        return hits, _clipped(layer.shape, hits, _simplified(layer.shape, hits, z, scale), bounds, pad)


def _simplified(
    shape: LayerGeometry, hits: npt.NDArray[np.intp], z: int, scale: float
) -> npt.NDArray[np.object_]:
    """The selected geometries simplified for zoom ``z``: at a level zoom each is simplified once, the
    first time a tile needs it, and kept (a zoom's first tile pays for its own features only, not for the
    whole layer); at other zooms they are simplified now.

    Geometries of few vertices (footprints, parking bays) are left as they are at other zooms: simplifying
    them costs time and saves nothing.
    """
    spec = shape.spec
    if z in shape.level_zooms:
        level = shape.levels.get(z)
        if level is None:  # two threads may both make it: the dict keeps one
            level = shape.levels.setdefault(z, np.full(len(shape.geometries), None, dtype=object))
        todo = hits[shapely.is_missing(level[hits])]
        if len(todo):  # two threads may both fill an entry: with the same geometry
            level[todo] = shapely.simplify(
                shape.geometries[todo], _level_tolerance(spec, z), preserve_topology=False
            )
        result: npt.NDArray[np.object_] = level[hits]
        return result
    shapes = shape.geometries[hits]
    if spec.simplify <= 0:
        return shapes
    complex_ = shape.vertex_counts[hits] > _SIMPLE_VERTICES
    if complex_.any():
        shapes = shapes.copy()
        shapes[complex_] = shapely.simplify(shapes[complex_], spec.simplify / scale, preserve_topology=False)
    return shapes


def _clipped(
    shape: LayerGeometry,
    hits: npt.NDArray[np.intp],
    shapes: npt.NDArray[np.object_],
    bounds: tuple[float, float, float, float],
    pad: float,
) -> npt.NDArray[np.object_]:
    """``shapes`` (the geometries at ``hits``) clipped to the tile's box grown by ``pad``; those wholly
    inside it are kept as they are (most features of a tile: clipping them would only copy them)."""
    minx, miny, maxx, maxy = bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad
    box = shape.bounds[hits]
    crossing = (box[:, 0] < minx) | (box[:, 1] < miny) | (box[:, 2] > maxx) | (box[:, 3] > maxy)
    if not crossing.any():
        return shapes
    result = shapes.copy()
    result[crossing] = shapely.clip_by_rect(shapes[crossing], minx, miny, maxx, maxy)
    return result


def check_tile(z: int, x: int, y: int) -> None:
    """Raise :class:`TileOutsideBoundsError` unless z/x/y is a tile of the XYZ pyramid (0 ≤ z ≤ 24)."""
    if not 0 <= z <= MAX_ZOOM:
        raise TileOutsideBoundsError(f"zoom {z} is outside 0–{MAX_ZOOM}")
    side = 1 << z
    if not (0 <= x < side and 0 <= y < side):
        raise TileOutsideBoundsError(
            f"tile {z}/{x}/{y} does not exist: x and y must lie in 0–{side - 1} at zoom {z}"
        )


def _prepare_layer(
    name: str, frame: gpd.GeoDataFrame, spec: LayerSpec, shape: LayerGeometry | None
) -> _Layer:
    wanted = (*spec.properties, *([spec.id_column] if spec.id_column else []))
    missing = [column for column in wanted if column not in frame.columns]
    if missing:
        raise TileLayerError(
            f"layer {name}: property column(s) {', '.join(missing)} missing; has {list(frame.columns)}"
        )
    if shape is None:
        shape = LayerGeometry.of(name, frame, spec)
    elif shape.spec != spec or len(shape.present) != len(frame):
        raise TileLayerError(
            f"layer {name}: the prepared geometry was made from {len(shape.present)} rows with {shape.spec}, "
            f"not from these {len(frame)} rows with {spec}"
        )
    present = shape.present
    columns = {column: frame[column].to_numpy()[present] for column in spec.properties}
    properties = Properties.from_columns(columns, int(present.sum()))
    return _Layer(name, shape, properties, _feature_ids(name, frame, spec, present) - 1)


def _feature_ids(
    name: str, frame: gpd.GeoDataFrame, spec: LayerSpec, present: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Feature id of each present geometry: its ``id_column`` value, else its row in the frame + 1."""
    if spec.id_column is None:
        return np.flatnonzero(present).astype(np.int64) + 1
    ids = pd.to_numeric(frame[spec.id_column], errors="coerce").to_numpy(dtype=float)[present]
    if not (np.isfinite(ids).all() and (ids >= 1).all() and (ids == np.round(ids)).all()):
        raise TileLayerError(f"layer {name}: id column {spec.id_column} must hold positive integers")
    result: npt.NDArray[np.int64] = ids.astype(np.int64)
    return result


def _level_zooms(vertex_counts: npt.NDArray[np.int_], spec: LayerSpec) -> frozenset[int]:
    """The zooms maps mostly ask for, when the layer has detailed geometry: each is simplified as a whole.

    Simplifying the whole layer once per zoom (rather than every tile's clip) costs a little memory, makes
    tiles cheaper, and gives neighbouring tiles the same simplified edge.
    """
    if spec.simplify <= 0 or len(vertex_counts) == 0 or vertex_counts.mean() <= _SIMPLE_VERTICES:
        return frozenset()
    return frozenset(range(max(spec.min_zoom, _LEVEL_ZOOMS[0]), _LEVEL_ZOOMS[1] + 1))


def _level_tolerance(spec: LayerSpec, z: int) -> float:
    """The simplification tolerance of a level zoom in Web Mercator metres."""
    world_m = 2 * math.pi * 6378137.0
    return spec.simplify * world_m / (2.0**z * TILE_EXTENT)


def plan_layers(
    plan: GridPlan,
    district: District,
    *,
    zones: Mapping[str, gpd.GeoDataFrame] | None = None,
    flags: gpd.GeoDataFrame | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    """The standard tile layers of a plan: buildings (with the grid and micro-grid they belong to), grids,
    micro-grids, communities, the vision zones and the detector's flags, with :data:`DEFAULT_LAYER_SPECS` columns.

    A building split between grids (by stairwell or floor) carries the codes of its largest part.
    """
    layers: dict[str, gpd.GeoDataFrame] = {
        "buildings": buildings_with_codes(district.buildings, plan.building_units),
        "grids": plan.grids,
        "microgrids": plan.microgrids,
        "communities": district.communities,
    }
    layers.update(zones or {})
    if flags is not None:
        layers["flags"] = flags
    return layers


def buildings_with_codes(buildings: gpd.GeoDataFrame, units: pd.DataFrame) -> gpd.GeoDataFrame:
    """``buildings`` (a new frame, every column kept) with the ``grid_code`` and ``microgrid_code`` of each
    building's largest unit by households (ties: the first unit); None for a building without units.
    """
    main = (
        pd.DataFrame(units[["building_id", "households", "grid_code", "microgrid_code"]])
        .sort_values(["building_id", "households"], ascending=[True, False], kind="stable")
        .drop_duplicates("building_id")
        .set_index("building_id")
    )
    codes = main.reindex(buildings["building_id"].to_numpy())
    result = buildings.copy()
    result["grid_code"] = codes["grid_code"].to_numpy()
    result["microgrid_code"] = codes["microgrid_code"].to_numpy()
    return result
