"""Synthetic Chinese urban district: a realistic demo input for gridding, maps, drones and benchmarks.

The district is fictional but laid out like a new town in Suzhou: a grid of street blocks (330–450 m between
road centre lines) separated by 40 m arterials and 20 m secondary roads, a meandering river across it,
communities (社区) of 1,500–6,500 households (mostly 2,200–5,800) that tile the district along road and river
centre lines, walled compounds (小区) inside the blocks, and the building types of a Chinese city: 6-storey
walk-ups (多层), high-rise towers (高层), resettlement slabs (安置房), villas (别墅), schools, markets,
kindergartens and one community service centre per community. Alongside come the zones a vision model needs: parking bays, fire
lanes, green space and public space.

Everything is built in UTM 51N (metres) and converted to WGS-84 at the end. One ``numpy`` generator drives
every random choice, so a seed gives the same district on every run.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from shapely.geometry import Polygon, box

from gis.model import District

Array = NDArray[Any]
Columns = dict[str, Array]
Cell = tuple[int, int]

ORIGIN_LON = 120.70
ORIGIN_LAT = 31.30
METRIC_CRS = "EPSG:32651"
OUTPUT_CRS = "EPSG:4326"
MIN_HOUSEHOLDS = 10_000
MAX_HOUSEHOLDS = 2_000_000
DIVISION_PREFIX = "320571"
ZONE_LAYERS = ("parking", "fire_lanes", "green", "public_space")
LAYERS = ("buildings", "communities", "compounds", "roads", *ZONE_LAYERS)

_BLOCK_SPAN_M = (330.0, 450.0)
_RIVER_ROW_EXTRA_M = 60.0
_ROAD_WIDTH_M = {"arterial": 40.0, "secondary": 20.0}
_ROAD_SETBACK_M = 8.0
_KERB_PARKING_M = (1.0, 6.0)
_RIVER_SWING_M = 200.0
_RIVER_HALF_WIDTH_M = (15.0, 30.0)
_RIVER_STEP_M = 20.0
_GREENWAY_M = 20.0
_COMPOUND_LANE_M = 10.0
_WALL_SETBACK_M = 5.0
_MIN_COMPOUND_AREA_M2 = 4_000.0
_MAX_TILT_DEG = 4.0
_EXTRA_WIDTH_PER_HH_M = 4.0
_FIRE_LANE_OFFSET_M = 2.0
_FIRE_LANE_WIDTH_M = (4.0, 6.0)
_PARKING_DEPTH_M = 5.0
_PARKING_ROW_P = 0.6
_GREEN_MARGIN_M = 1.5
_MIN_ZONE_AREA_M2 = 10.0
_BLOCK_HOUSEHOLDS = 1_800
_BLOCK_CAPACITY = 4_000
_COMMUNITY_TARGET = (2_200, 5_800)
_RUN_LENGTHS = (1, 2, 3)
_RUN_P = (0.35, 0.5, 0.15)
_STREET_COMMUNITIES = (8, 16)
_ZERO_BLOCK_P = 0.3
_ZERO_BLOCK_MAX_HH = 3_000
_LANDMARK_FLOORS = 33
_LANDMARK_SHARE = 1.6
_LANDMARK_TOWERS = 4
_CORRECTION_PASSES = 12
_COMPOUND_SPLITS = ((1, 1), (2, 1), (1, 2), (3, 1), (1, 3), (2, 2))
_COMPOUND_SPLIT_P = (0.2, 0.2, 0.2, 0.1, 0.1, 0.2)
_DENSITY_ORDER = ("villa_mix", "walkup", "resettlement", "highrise", "highrise_dense")
_BLOCK_STYLES = {
    "villa_mix": ("villa", "walkup"),
    "walkup": ("walkup",),
    "resettlement": ("resettlement",),
    "highrise": ("highrise",),
    "highrise_dense": ("highrise_dense",),
}
#: footprint width and depth (m) and floors of the public buildings on a block's corner plot
_FACILITIES: dict[str, tuple[float, float, int]] = {
    "community_centre": (36.0, 22.0, 3),
    "kindergarten": (42.0, 28.0, 3),
    "market": (46.0, 30.0, 2),
}
_FACILITY_GAP_M = 12.0
_FACILITY_PLOT_EXTRA_M = 34.0

_NAME_HEADS = "星金银玉翠锦华新青碧桂荷莲月春秀明和安康泰瑞祥福乐兴盛丰嘉景清润澄静雅永丽宏"
_COMMUNITY_TAILS = "湖港塘桥湾浦泾庄里坊洲河溪浜滨林城苑园亭山岭泉汀渚堤渡埠"
_COMPOUND_MIDDLES = "桂湖苑庭园林山水溪枫竹兰梅松柏锦绣阳光悦澜韵馨翠华"
_COMPOUND_TAILS = (
    "苑",
    "园",
    "花园",
    "家园",
    "新村",
    "公寓",
    "雅苑",
    "华庭",
    "名邸",
    "水岸",
    "佳苑",
    "府",
    "湾",
)
_PHASES = ("", "二期", "三期", "四期", "五期", "六期", "七期", "八期", "九期")


@dataclass(frozen=True)
class DemoDistrict:
    """A generated district and its vision zones, all in EPSG:4326.

    Attributes:
        district: buildings, communities, compounds and roads, ready for gridding.
        zones: polygons by layer name (``parking``, ``fire_lanes``, ``green``, ``public_space``), each with
            columns ``zone_id`` and ``compound_id`` (None outside compounds).
    """

    district: District
    zones: dict[str, gpd.GeoDataFrame]


@dataclass(frozen=True)
class _Style:
    """Building type of a compound: footprint, spacing and household rules."""

    kind: str
    unit_width_m: float
    depth_m: tuple[float, float]
    row_gap_m: tuple[float, float]
    col_gap_m: float
    floors: tuple[int, int]
    units: tuple[int, ...]
    hh_per_floor: tuple[int, ...]
    model_per_compound: bool
    single_household: bool = False
    tunable: bool = False


_STYLES = {
    "walkup": _Style(
        "walkup", 13.0, (11.0, 13.0), (20.0, 25.0), 10.0, (6, 6), (2, 3, 3, 4, 4, 4, 5, 5), (2,), False
    ),
    "highrise": _Style(
        "highrise", 16.0, (16.0, 20.0), (38.0, 48.0), 22.0, (18, 33), (2, 3, 4), (2, 3, 4), True, tunable=True
    ),
    "resettlement": _Style(
        "resettlement",
        15.0,
        (13.0, 15.0),
        (26.0, 32.0),
        14.0,
        (11, 18),
        (3, 4, 5, 6),
        (2, 3),
        True,
        tunable=True,
    ),
    "villa": _Style(
        "villa", 12.0, (14.0, 16.0), (11.0, 13.0), 8.0, (2, 3), (1,), (1,), False, single_household=True
    ),
    "highrise_dense": _Style(
        "highrise", 16.0, (16.0, 20.0), (34.0, 40.0), 20.0, (26, 33), (3, 4), (3, 4), True, tunable=True
    ),
}
#: floors a building of each kind may have (the total correction keeps floors inside)
_FLOOR_RANGE = {"walkup": (6, 6), "highrise": (18, 33), "resettlement": (11, 18), "villa": (2, 3)}


@dataclass(frozen=True)
class _River:
    """Centre line ``y(x)`` and half width of the meandering river, in metres."""

    y0_m: float
    x0_m: float
    amplitude_m: tuple[float, float]
    wavelength_m: tuple[float, float]
    phase: tuple[float, float]
    width_wavelength_m: float
    width_phase: float

    def centre_y(self, x_m: Array) -> Array:
        """Return the centre line's y for each x."""
        y = np.full(np.shape(x_m), self.y0_m)
        for amp, lam, phase in zip(self.amplitude_m, self.wavelength_m, self.phase, strict=True):
            y += amp * np.sin(2 * np.pi * (x_m - self.x0_m) / lam + phase)
        return y

    def half_width_m(self, x_m: Array) -> Array:
        """Return half the river's width at each x (15–30 m)."""
        low, high = _RIVER_HALF_WIDTH_M
        wave = np.sin(2 * np.pi * (x_m - self.x0_m) / self.width_wavelength_m + self.width_phase)
        return low + (high - low) * 0.5 * (1.0 + wave)


@dataclass(frozen=True)
class _Grid:
    """Road centre lines, their kinds and the river of the district, in metres."""

    xs: Array
    ys: Array
    x_kind: Array
    y_kind: Array
    river_row: int
    below: Polygon
    above: Polygon
    river: Polygon
    river_buffer: Polygon

    @property
    def envelope(self) -> Polygon:
        """The district's rectangle."""
        return box(self.xs[0], self.ys[0], self.xs[-1], self.ys[-1])


@dataclass(frozen=True)
class _CommunityPlan:
    """One community to build: its cells (blocks), code, name and household target."""

    code: str
    name: str
    cells: tuple[Cell, ...]
    target: int
    landmark: bool


@dataclass(frozen=True)
class _Block:
    """One street block being built: its buildable polygon and what it must hold."""

    polygon: Polygon
    community_code: str
    facilities: tuple[str, ...]
    landmark: bool


class _Table:
    """Column-wise accumulator of rows produced block by block."""

    def __init__(self) -> None:
        self._parts: dict[str, list[Array]] = {}

    def add(self, geometry: Any, **columns: Any) -> None:
        """Append rows: one per geometry; scalar columns are repeated."""
        geoms = np.asarray(geometry, dtype=object).reshape(-1)
        if not geoms.size:
            return
        self._parts.setdefault("geometry", []).append(geoms)
        for name, value in columns.items():
            self._parts.setdefault(name, []).append(_broadcast(value, geoms.size))

    def columns(self) -> Columns:
        """Return every column as one array."""
        return {name: np.concatenate(parts) for name, parts in self._parts.items()}

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts.get("geometry", []))


class _NamePool:
    """Unique Chinese names in random order from head × middle × tail, with 二期… once exhausted."""

    def __init__(
        self, middles: Sequence[str], tails: Sequence[str], rng: np.random.Generator, suffix: str = ""
    ) -> None:
        self._names = [h + m + t for h in _NAME_HEADS for m in middles if m != h for t in tails]
        self._suffix = suffix
        self._order = rng.permutation(len(self._names))
        self._count = 0

    def next(self) -> str:
        """Return the next unused name."""
        k, self._count = self._count, self._count + 1
        name = self._names[int(self._order[k % len(self._names)])]
        phase = k // len(self._names)
        extra = _PHASES[phase % len(_PHASES)] + ("" if phase < len(_PHASES) else str(phase))
        return name + extra + self._suffix


@dataclass
class _Sink:
    """Everything generated so far, in metres."""

    compound_names: _NamePool
    buildings: _Table = field(default_factory=_Table)
    communities: _Table = field(default_factory=_Table)
    compounds: _Table = field(default_factory=_Table)
    roads: _Table = field(default_factory=_Table)
    zones: dict[str, _Table] = field(default_factory=lambda: {k: _Table() for k in ZONE_LAYERS})

    def next_compound_id(self) -> str:
        """Return a fresh compound id (C0001, C0002, …)."""
        return f"C{len(self.compounds) + 1:04d}"


def make_demo_district(households: int = 50_000, *, seed: int = 0) -> DemoDistrict:
    """Generate a synthetic Chinese urban district of about ``households`` households.

    Args:
        households: target total households, 10,000 to 2,000,000; the result is within ±3 % of it.
        seed: seed of the random generator; the same seed gives the same district.

    Returns:
        The district (buildings, communities, compounds, roads) and its zones, in EPSG:4326.

    Raises:
        ValueError: if ``households`` is outside the supported range.
    """
    if not MIN_HOUSEHOLDS <= households <= MAX_HOUSEHOLDS:
        raise ValueError(
            f"households must be within {MIN_HOUSEHOLDS:,}..{MAX_HOUSEHOLDS:,}, got {households:,}"
        )
    rng = np.random.default_rng(seed)
    grid = _make_grid(households, rng)
    plans = _plan_communities(grid, households, rng)
    sink = _Sink(compound_names=_NamePool(_COMPOUND_MIDDLES, _COMPOUND_TAILS, rng))
    _add_roads(grid, sink)
    for plan in plans:
        _build_community(plan, grid, rng, sink)
    buildings = sink.buildings.columns()
    _correct_total(buildings, households, rng)
    return _assemble(sink, buildings, f"demo(households={households}, seed={seed})")


def write_demo(demo: DemoDistrict, path: Path) -> None:
    """Write every layer of ``demo`` to one GeoPackage, atomically.

    The layers go to a temporary file beside ``path`` that replaces ``path`` only once complete, so readers
    never see a half-written file; the temporary file is removed on failure.

    Args:
        demo: the generated district.
        path: the GeoPackage to write (replaced if it exists).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}.gpkg")
    try:
        for name, frame in demo_layers(demo).items():
            frame.to_file(tmp, driver="GPKG", layer=name)
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
        raise


def demo_layers(demo: DemoDistrict) -> dict[str, gpd.GeoDataFrame]:
    """Return the layers of ``demo`` by GeoPackage layer name, in :data:`LAYERS` order."""
    district = demo.district
    return {
        "buildings": district.buildings,
        "communities": district.communities,
        "compounds": district.compounds,
        "roads": district.roads,
        **{name: demo.zones[name] for name in ZONE_LAYERS},
    }


# --- layout: grid of roads and the river -------------------------------------------------------------------


def _make_grid(households: int, rng: np.random.Generator) -> _Grid:
    nx, ny = _grid_shape(households)
    widths = rng.uniform(*_BLOCK_SPAN_M, nx)
    heights = rng.uniform(*_BLOCK_SPAN_M, ny)
    row = ny // 2
    heights[row - 1 : row + 1] += _RIVER_ROW_EXTRA_M
    x0, y0 = _origin_m()
    xs = x0 + np.concatenate([[0.0], np.cumsum(widths)])
    ys = y0 + np.concatenate([[0.0], np.cumsum(heights)])
    x_kind, y_kind = _line_kinds(nx, rng), _line_kinds(ny, rng)
    y_kind[row] = "river"
    return _grid_with_river(xs, ys, x_kind, y_kind, row, _make_river(xs[0], ys[row], rng))


def _grid_shape(households: int) -> tuple[int, int]:
    blocks = max(4, math.ceil(households / _BLOCK_HOUSEHOLDS))
    ny = max(2, round(math.sqrt(blocks)))
    return max(2, math.ceil(blocks / ny)), ny


def _origin_m() -> tuple[float, float]:
    to_metric = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
    x, y = to_metric.transform(ORIGIN_LON, ORIGIN_LAT)
    return float(round(x)), float(round(y))


def _line_kinds(n_blocks: int, rng: np.random.Generator) -> Array:
    """Kinds of the n+1 road lines: arterials at both ends and every 2–3 blocks, secondary in between."""
    kinds = np.full(n_blocks + 1, "secondary", dtype=object)
    kinds[[0, n_blocks]] = "arterial"
    line = int(rng.integers(2, 4))
    while line < n_blocks:
        kinds[line] = "arterial"
        line += int(rng.integers(2, 4))
    return kinds


def _make_river(x0_m: float, y0_m: float, rng: np.random.Generator) -> _River:
    return _River(
        y0_m=y0_m,
        x0_m=x0_m,
        amplitude_m=(rng.uniform(25.0, 45.0), rng.uniform(5.0, 12.0)),
        wavelength_m=(rng.uniform(1_200.0, 2_000.0), rng.uniform(400.0, 700.0)),
        phase=(rng.uniform(0.0, 2 * np.pi), rng.uniform(0.0, 2 * np.pi)),
        width_wavelength_m=rng.uniform(800.0, 1_500.0),
        width_phase=rng.uniform(0.0, 2 * np.pi),
    )


def _grid_with_river(xs: Array, ys: Array, x_kind: Array, y_kind: Array, row: int, river: _River) -> _Grid:
    """Finish the grid: the river band and the district halves on either side of its centre line."""
    samples = np.arange(xs[0], xs[-1], _RIVER_STEP_M)
    samples = samples[np.min(np.abs(samples[:, None] - xs[None, :]), axis=1) > 1.0]
    curve_x = np.union1d(samples, xs)
    curve = np.column_stack([curve_x, river.centre_y(curve_x)])
    below = Polygon(np.vstack([curve, [(xs[-1], ys[0]), (xs[0], ys[0])]]))
    above = Polygon(np.vstack([curve, [(xs[-1], ys[-1]), (xs[0], ys[-1])]]))
    band = _river_band(river, xs)
    return _Grid(xs, ys, x_kind, y_kind, row, below, above, band, band.buffer(_GREENWAY_M))


def _river_band(river: _River, xs: Array) -> Polygon:
    """The river's water surface: the centre line offset by its varying half width, clipped to the district."""
    x = np.arange(xs[0] - 100.0, xs[-1] + 100.0 + _RIVER_STEP_M, _RIVER_STEP_M)
    y = river.centre_y(x)
    slope = np.gradient(y, x)
    norm = np.hypot(1.0, slope)
    offset = river.half_width_m(x)[:, None] * np.column_stack([-slope / norm, 1.0 / norm])
    centre = np.column_stack([x, y])
    band = Polygon(np.vstack([centre + offset, (centre - offset)[::-1]]))
    return _largest_polygon(band.intersection(box(xs[0], y.min() - 1e3, xs[-1], y.max() + 1e3)))


def _cell(grid: _Grid, cell: Cell) -> Polygon:
    """The area a block owns up to the centre lines of its roads (and of the river)."""
    i, j = cell
    x0, x1, y0, y1 = grid.xs[i], grid.xs[i + 1], grid.ys[j], grid.ys[j + 1]
    if j == grid.river_row - 1:
        return _largest_polygon(box(x0, y0, x1, y1 + _RIVER_SWING_M).intersection(grid.below))
    if j == grid.river_row:
        return _largest_polygon(box(x0, y0 - _RIVER_SWING_M, x1, y1).intersection(grid.above))
    return box(x0, y0, x1, y1)


def _edge_box(grid: _Grid, cell: Cell, setback_m: float) -> Polygon:
    """The cell shrunk to ``setback_m`` beyond its road edges; river sides are left far out (clip later)."""
    i, j = cell

    def inset(kind: str) -> float:
        return -_RIVER_SWING_M if kind == "river" else _ROAD_WIDTH_M[kind] / 2 + setback_m

    return box(
        grid.xs[i] + inset(grid.x_kind[i]),
        grid.ys[j] + inset(grid.y_kind[j]),
        grid.xs[i + 1] - inset(grid.x_kind[i + 1]),
        grid.ys[j + 1] - inset(grid.y_kind[j + 1]),
    )


def _dry_side(grid: _Grid, cell: Cell, shape: Polygon) -> Any:
    """Clip ``shape`` to the cell's side of the river and outside the river's greenway."""
    j = cell[1]
    if j not in (grid.river_row - 1, grid.river_row):
        return shape
    side = grid.below if j == grid.river_row - 1 else grid.above
    return shape.intersection(side).difference(grid.river_buffer)


def _block_polygon(grid: _Grid, cell: Cell) -> Polygon:
    return _largest_polygon(_dry_side(grid, cell, _edge_box(grid, cell, _ROAD_SETBACK_M)))


def _add_roads(grid: _Grid, sink: _Sink) -> None:
    env = grid.envelope
    for x, kind in zip(grid.xs, grid.x_kind, strict=True):
        half = _ROAD_WIDTH_M[kind] / 2
        sink.roads.add([box(x - half, grid.ys[0], x + half, grid.ys[-1]).intersection(env)], kind=kind)
    for y, kind in zip(grid.ys, grid.y_kind, strict=True):
        if kind != "river":
            half = _ROAD_WIDTH_M[kind] / 2
            sink.roads.add([box(grid.xs[0], y - half, grid.xs[-1], y + half).intersection(env)], kind=kind)
    sink.roads.add([grid.river], kind="river")


# --- communities -------------------------------------------------------------------------------------------


def _plan_communities(grid: _Grid, households: int, rng: np.random.Generator) -> list[_CommunityPlan]:
    runs = _fit_runs(_community_runs(grid, rng), households)
    sizes = np.array([len(cells) for _, cells in runs])
    targets = _community_targets(sizes, households, rng)
    numbers = _street_numbers(len(runs), rng)
    names = _NamePool(_COMMUNITY_TAILS, ("",), rng, suffix="社区")
    landmarks = _landmark_communities([len(cells) for _, cells in runs], [s for s, _ in numbers])
    return [
        _CommunityPlan(f"{DIVISION_PREFIX}{s:03d}{c:03d}", names.next(), tuple(cells), int(t), k in landmarks)
        for k, ((_, cells), t, (s, c)) in enumerate(zip(runs, targets, numbers, strict=True))
    ]


def _landmark_communities(sizes: list[int], streets: list[int]) -> set[int]:
    """One community per street office gets a landmark tower: its first with two or more blocks, else its first."""
    chosen: dict[int, int] = {}
    for k, (size, street) in enumerate(zip(sizes, streets, strict=True)):
        if street not in chosen or (size >= 2 and sizes[chosen[street]] < 2):
            chosen[street] = k
    return set(chosen.values())


def _regions(grid: _Grid) -> list[list[Cell]]:
    """Cells grouped by the arterials and the river around them, each in snake order; regions snake too."""
    col_groups = _split_at(grid.x_kind != "secondary")
    row_groups = _split_at(grid.y_kind != "secondary")
    regions = []
    for band, rows in enumerate(row_groups):
        for cols in col_groups if band % 2 == 0 else col_groups[::-1]:
            regions.append(_snake(cols, rows))
    return regions


def _split_at(separators: Array) -> list[Array]:
    return np.split(np.arange(len(separators) - 1), np.flatnonzero(separators[1:-1]) + 1)


def _snake(cols: Array, rows: Array) -> list[Cell]:
    cells: list[Cell] = []
    for k, j in enumerate(rows):
        cells += [(int(i), int(j)) for i in (cols if k % 2 == 0 else cols[::-1])]
    return cells


def _community_runs(grid: _Grid, rng: np.random.Generator) -> list[tuple[int, list[Cell]]]:
    """Cut every region's snake into runs of 1–3 cells; a run is one community."""
    runs = []
    for region, cells in enumerate(_regions(grid)):
        start = 0
        while start < len(cells):
            size = int(rng.choice(_RUN_LENGTHS, p=_RUN_P))
            runs.append((region, cells[start : start + size]))
            start += size
    return runs


def _fit_runs(runs: list[tuple[int, list[Cell]]], households: int) -> list[tuple[int, list[Cell]]]:
    """Merge or split runs until every community can get a household target inside its range."""
    low, high = _COMMUNITY_TARGET
    while low * len(runs) > households and _merge_smallest(runs):
        pass
    while households > sum(min(high, _BLOCK_CAPACITY * len(c)) for _, c in runs) and _split_largest(runs):
        pass
    return runs


def _merge_smallest(runs: list[tuple[int, list[Cell]]]) -> bool:
    pairs = [k for k in range(len(runs) - 1) if runs[k][0] == runs[k + 1][0]]
    if not pairs:
        return False
    k = min(pairs, key=lambda p: len(runs[p][1]) + len(runs[p + 1][1]))
    runs[k : k + 2] = [(runs[k][0], runs[k][1] + runs[k + 1][1])]
    return True


def _split_largest(runs: list[tuple[int, list[Cell]]]) -> bool:
    k = max(range(len(runs)), key=lambda p: len(runs[p][1]))
    region, cells = runs[k]
    if len(cells) < 2:
        return False
    half = len(cells) // 2
    runs[k : k + 1] = [(region, cells[:half]), (region, cells[half:])]
    return True


def _community_targets(sizes: Array, households: int, rng: np.random.Generator) -> Array:
    """Household targets proportional to block counts (jittered), clipped to the range, summing to the total."""
    low = np.full(sizes.size, min(float(_COMMUNITY_TARGET[0]), 0.97 * households / sizes.size))
    high = np.minimum(float(_COMMUNITY_TARGET[1]), _BLOCK_CAPACITY * sizes)
    weights = sizes * rng.uniform(0.75, 1.25, sizes.size)
    lo_s, hi_s = 0.0, 2.0 * households / weights.min()
    for _ in range(100):
        mid = (lo_s + hi_s) / 2
        lo_s, hi_s = (mid, hi_s) if np.clip(mid * weights, low, high).sum() < households else (lo_s, mid)
    targets: Array = np.round(np.clip(hi_s * weights, low, high)).astype(np.int64)
    return targets


def _street_numbers(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(street office, community) numbers: consecutive communities grouped into offices of 8–16."""
    numbers: list[tuple[int, int]] = []
    street = 1
    while len(numbers) < n:
        size = int(rng.integers(_STREET_COMMUNITIES[0], _STREET_COMMUNITIES[1] + 1))
        numbers += [(street, k) for k in range(1, size + 1)]
        street += 1
    return numbers[:n]


def _build_community(plan: _CommunityPlan, grid: _Grid, rng: np.random.Generator, sink: _Sink) -> None:
    """Build every block of one community, sharing its household target among the residential blocks."""
    polygon = _largest_polygon(shapely.union_all([_cell(grid, c) for c in plan.cells]))
    sink.communities.add([polygon], community_code=plan.code, name=plan.name)
    zero = _zero_block(plan, rng)
    weights = rng.uniform(0.7, 1.3, len(plan.cells))
    if zero >= 0:
        weights[zero] = 0.0
    if plan.landmark:
        weights[0] *= _LANDMARK_SHARE
    remaining = float(plan.target)
    for k, cell in enumerate(plan.cells):
        _add_cell_zones(grid, cell, sink)
        host = k == 0
        block = _Block(_block_polygon(grid, cell), plan.code, _facilities(host, rng), plan.landmark and host)
        if k == zero:
            _build_public_block(block, rng, sink)
            continue
        remaining -= _build_residential_block(block, remaining * weights[k] / weights[k:].sum(), rng, sink)


def _zero_block(plan: _CommunityPlan, rng: np.random.Generator) -> int:
    """Index of a block without households (school or park), or -1."""
    n = len(plan.cells)
    if n < 2 or plan.target > (n - 1) * _ZERO_BLOCK_MAX_HH or rng.random() >= _ZERO_BLOCK_P:
        return -1
    return int(rng.integers(1, n))


def _facilities(host: bool, rng: np.random.Generator) -> tuple[str, ...]:
    chosen = ["community_centre"] if host else []
    if rng.random() < 0.4:
        chosen.append("kindergarten")
    if rng.random() < 0.25:
        chosen.append("market")
    return tuple(chosen)


def _add_cell_zones(grid: _Grid, cell: Cell, sink: _Sink) -> None:
    """Kerbside parking along secondary roads and the riverside greenway of one cell."""
    region = _dry_side(grid, cell, _edge_box(grid, cell, 0.0))
    strips = np.asarray(_kerb_strips(grid, cell), dtype=object)
    _add_zone(sink, "parking", shapely.intersection(strips, region), None)
    if cell[1] in (grid.river_row - 1, grid.river_row):
        bank = _cell(grid, cell).intersection(_edge_box(grid, cell, 0.0)).intersection(grid.river_buffer)
        _add_zone(sink, "green", np.asarray([bank.difference(grid.river)], dtype=object), None)


def _kerb_strips(grid: _Grid, cell: Cell) -> list[Polygon]:
    i, j = cell
    x0, y0, x1, y1 = _edge_box(grid, cell, 0.0).bounds
    near, far = _KERB_PARKING_M
    s = _ROAD_SETBACK_M
    strips = []
    if grid.x_kind[i] == "secondary":
        strips.append(box(x0 + near, y0 + s, x0 + far, y1 - s))
    if grid.x_kind[i + 1] == "secondary":
        strips.append(box(x1 - far, y0 + s, x1 - near, y1 - s))
    if grid.y_kind[j] == "secondary":
        strips.append(box(x0 + s, y0 + near, x1 - s, y0 + far))
    if grid.y_kind[j + 1] == "secondary":
        strips.append(box(x0 + s, y1 - far, x1 - s, y1 - near))
    return strips


# --- public blocks and facilities --------------------------------------------------------------------------


def _build_public_block(block: _Block, rng: np.random.Generator, sink: _Sink) -> None:
    if rng.random() < 0.6:
        _build_school(block, rng, sink)
    else:
        _build_park(block, sink)


def _build_school(block: _Block, rng: np.random.Generator, sink: _Sink) -> None:
    """A school campus: two rows of teaching buildings, a forecourt and a sports field."""
    inner = block.polygon.buffer(-15.0)
    cx, cy = inner.centroid.x, inner.centroid.y
    x = cx + np.array([-100.0, -30.0, 40.0] * 2)
    y = cy + np.repeat([30.0, 76.0], 3)
    halls = shapely.box(x, y, x + 60.0, y + 16.0)
    halls = halls[shapely.within(halls, inner)]
    _add_buildings(sink, halls, "school", rng.integers(4, 6, halls.size), block.community_code)
    _add_zone(sink, "green", np.asarray([box(cx - 90, cy - 95, cx + 90, cy + 5).intersection(inner)]), None)
    _add_zone(
        sink,
        "public_space",
        np.asarray([box(cx - 100, cy + 10, cx + 100, cy + 24).intersection(inner)]),
        None,
    )


def _build_park(block: _Block, sink: _Sink) -> None:
    cx, cy = block.polygon.centroid.x, block.polygon.centroid.y
    plaza = box(cx - 30, cy - 20, cx + 30, cy + 20).intersection(block.polygon)
    _add_zone(sink, "green", np.asarray([block.polygon.difference(plaza)], dtype=object), None)
    _add_zone(sink, "public_space", np.asarray([plaza], dtype=object), None)


def _add_buildings(sink: _Sink, geoms: Array, kind: str, floors: Any, community_code: str) -> None:
    """Add public buildings: no households, one entrance, outside compounds."""
    sink.buildings.add(
        geoms,
        households=0,
        floors=floors,
        units=1,
        hh_per_floor=0,
        compound_id=None,
        community_code=community_code,
        kind=kind,
        tunable=False,
    )


def _place_facilities(block: _Block, rng: np.random.Generator, sink: _Sink) -> Polygon:
    """Put the block's public buildings on a corner plot; return the block without the plot."""
    if not block.facilities:
        return block.polygon
    dims = [_FACILITIES[name] for name in block.facilities]
    width = sum(w + _FACILITY_GAP_M for w, _, _ in dims)
    height = max(d for _, d, _ in dims) + _FACILITY_PLOT_EXTRA_M
    plot = _corner_plot(block.polygon, width, height, rng)
    if plot is None:
        return block.polygon
    _add_facilities(plot, block, sink)
    rest = block.polygon.difference(plot.buffer(_COMPOUND_LANE_M, join_style="mitre"))
    return _largest_polygon(rest)


def _corner_plot(
    polygon: Polygon, width_m: float, height_m: float, rng: np.random.Generator
) -> Polygon | None:
    minx, miny, maxx, maxy = polygon.bounds
    corners = [
        (minx, miny),
        (maxx - width_m, miny),
        (minx, maxy - height_m),
        (maxx - width_m, maxy - height_m),
    ]
    for k in rng.permutation(4):
        x, y = corners[int(k)]
        plot = box(x, y, x + width_m, y + height_m)
        if polygon.contains(plot):
            return plot
    return None


def _add_facilities(plot: Polygon, block: _Block, sink: _Sink) -> None:
    """Public buildings side by side on the plot, each with its plaza towards the nearer block edge."""
    minx, miny, _, maxy = plot.bounds
    south = miny <= block.polygon.bounds[1] + 1e-6
    x = minx + _FACILITY_GAP_M / 2
    for name in block.facilities:
        w, d, floors = _FACILITIES[name]
        if south:
            hall, plaza = box(x, maxy - 4 - d, x + w, maxy - 4), box(x, miny + 4, x + w, maxy - 8 - d)
        else:
            hall, plaza = box(x, miny + 4, x + w, miny + 4 + d), box(x, miny + 8 + d, x + w, maxy - 4)
        _add_buildings(sink, np.asarray([hall], dtype=object), name, floors, block.community_code)
        _add_zone(sink, "public_space", np.asarray([plaza], dtype=object), None)
        x += w + _FACILITY_GAP_M


# --- residential blocks ------------------------------------------------------------------------------------


def _build_residential_block(block: _Block, target: float, rng: np.random.Generator, sink: _Sink) -> int:
    """Fill a block with compounds and buildings close to ``target`` households; return the households."""
    rest = _place_facilities(block, rng, sink)
    split = _split_compounds(rest, block.landmark, rng)
    best: tuple[list[Polygon], tuple[str, ...], Columns] = ([], (), _empty_slots())
    for kind in _kind_candidates(target, block.landmark, rng):
        parts = [rest] if kind == "highrise_dense" else split
        styles = tuple(_BLOCK_STYLES[kind][min(k, len(_BLOCK_STYLES[kind]) - 1)] for k in range(len(parts)))
        slots = _block_slots(parts, styles, block.landmark, rng)
        if slots["hh"].sum() > best[2]["hh"].sum():
            best = parts, styles, slots
        if slots["hh"].sum() >= target:
            break
    parts, styles, slots = best
    return _emit_residential(parts, styles, slots, _fill(slots, target), block, rng, sink)


def _kind_candidates(target: float, landmark: bool, rng: np.random.Generator) -> list[str]:
    """Block kinds to try, the first drawn by the households needed, then denser ones."""
    if landmark:
        return ["highrise_dense"]
    if target >= 2_600:
        first = str(rng.choice(["highrise", "resettlement"], p=[0.55, 0.45]))
    elif target >= 1_300:
        first = str(rng.choice(["resettlement", "highrise", "walkup"], p=[0.4, 0.3, 0.3]))
    elif target >= 450:
        first = str(rng.choice(["walkup", "villa_mix"], p=[0.7, 0.3]))
    else:
        first = "villa_mix"
    return list(_DENSITY_ORDER[_DENSITY_ORDER.index(first) :])


def _split_compounds(rest: Polygon, landmark: bool, rng: np.random.Generator) -> list[Polygon]:
    """Split the block into 1–4 walled compounds separated by lanes."""
    nx, ny = (1, 1) if landmark else _COMPOUND_SPLITS[rng.choice(len(_COMPOUND_SPLITS), p=_COMPOUND_SPLIT_P)]
    minx, miny, maxx, maxy = rest.bounds
    xs, ys = _cuts(minx, maxx, nx, rng), _cuts(miny, maxy, ny, rng)
    half = _COMPOUND_LANE_M / 2
    parts = []
    for a in range(nx):
        for b in range(ny):
            x0, x1 = xs[a] + half * (a > 0), xs[a + 1] - half * (a < nx - 1)
            y0, y1 = ys[b] + half * (b > 0), ys[b + 1] - half * (b < ny - 1)
            part = _largest_polygon(box(x0, y0, x1, y1).intersection(rest))
            if part is not None and part.area >= _MIN_COMPOUND_AREA_M2:
                parts.append(part)
    return parts


def _cuts(low: float, high: float, n: int, rng: np.random.Generator) -> Array:
    fractions = np.cumsum(rng.uniform(0.8, 1.2, n))
    return low + (high - low) * np.concatenate([[0.0], fractions / fractions[-1]])


def _block_slots(
    parts: list[Polygon], styles: tuple[str, ...], landmark: bool, rng: np.random.Generator
) -> Columns:
    """Candidate buildings of every compound of the block, with household counts and fill priorities."""
    slots = [
        _compound_slots(part, k, _STYLES[style], landmark and k == 0, rng)
        for k, (part, style) in enumerate(zip(parts, styles, strict=True))
    ]
    return _concat(slots) if slots else _concat([_empty_slots()])


def _compound_slots(
    part: Polygon, index: int, style: _Style, landmark: bool, rng: np.random.Generator
) -> Columns:
    """Candidate buildings of one compound: a slightly rotated grid of rows kept where it fits the walls."""
    depth_m = rng.uniform(*style.depth_m)
    model = _compound_model(style, part, landmark, rng)
    choices = np.asarray(style.units if model is None else model[0])
    slot_len_m = float(np.max(_length_m(style, choices, model)))
    pitch_y_m = depth_m + rng.uniform(*style.row_gap_m)
    frame, lx, ly, row = _slot_grid(part, slot_len_m + style.col_gap_m, pitch_y_m, rng)
    n = lx.size
    slots: Columns = {name: np.full(n, value) for name, value in frame.items()}
    slots |= {"lx": lx, "ly": ly, "row": row + index * 10_000, "compound": np.full(n, index)}
    slots |= {
        "depth": np.full(n, depth_m),
        "slot_len": np.full(n, slot_len_m),
        "col_gap": np.full(n, style.col_gap_m),
    }
    slots |= _building_draws(style, model, n, rng)
    slots["priority"] = np.hypot(lx, ly) / max(float(np.hypot(lx, ly).max()), 1.0) + rng.uniform(0, 0.05, n)
    footprints = _rects(slots, lx, ly, slots["length"] / 2, slots["depth"] / 2)
    inside = shapely.within(footprints, _prepared_inset(part))
    return _finish_slots(_take(slots, inside), style, landmark)


def _building_draws(
    style: _Style, model: tuple[int, int] | None, n: int, rng: np.random.Generator
) -> Columns:
    """Stairwells, households per floor, floors, length and type of ``n`` candidate buildings."""
    units = rng.choice(style.units, n) if model is None else np.full(n, model[0])
    return {
        "units": units,
        "hh_per_floor": np.full(n, style.hh_per_floor[0] if model is None else model[1]),
        "floors": rng.integers(style.floors[0], style.floors[1] + 1, n),
        "length": _length_m(style, units, model),
        "kind": np.full(n, style.kind, dtype=object),
        "tunable": np.full(n, style.tunable),
    }


def _compound_model(
    style: _Style, part: Polygon, landmark: bool, rng: np.random.Generator
) -> tuple[int, int] | None:
    """The (stairwells, households per floor per stairwell) design of a compound's towers, fitted to it."""
    if not style.model_per_compound:
        return None
    units = 4 if landmark else int(rng.choice(style.units))
    hpf = 4 if landmark else int(rng.choice(style.hh_per_floor))
    minx, miny, maxx, maxy = part.bounds
    room_m = min(maxx - minx, maxy - miny) - 2 * _WALL_SETBACK_M - 8.0
    unit_m = float(_length_m(style, np.asarray(1), (1, hpf)))
    return max(style.units[0], min(units, int(room_m // unit_m))), hpf


def _length_m(style: _Style, units: Array, model: tuple[int, int] | None) -> Array:
    hpf = style.hh_per_floor[0] if model is None else model[1]
    return units * (style.unit_width_m + _EXTRA_WIDTH_PER_HH_M * (hpf - style.hh_per_floor[0]))


def _slot_grid(
    part: Polygon, pitch_x_m: float, pitch_y_m: float, rng: np.random.Generator
) -> tuple[dict[str, float], Array, Array, Array]:
    """A grid of slot centres covering ``part`` in a local frame rotated a few degrees about its centre."""
    minx, miny, maxx, maxy = part.bounds
    half = 0.5 * math.hypot(maxx - minx, maxy - miny)
    nx, ny = int(2 * half // pitch_x_m) + 1, int(2 * half // pitch_y_m) + 1
    xs = (np.arange(nx) - (nx - 1) / 2 + rng.uniform(-0.5, 0.5)) * pitch_x_m
    ys = (np.arange(ny) - (ny - 1) / 2 + rng.uniform(-0.5, 0.5)) * pitch_y_m
    lx, ly = np.meshgrid(xs, ys)
    row = np.broadcast_to(np.arange(ny)[:, None], lx.shape)
    angle = math.radians(rng.uniform(-_MAX_TILT_DEG, _MAX_TILT_DEG))
    frame = {"ox": (minx + maxx) / 2, "oy": (miny + maxy) / 2, "cos": math.cos(angle), "sin": math.sin(angle)}
    return frame, lx.ravel(), ly.ravel(), row.ravel()


def _prepared_inset(part: Polygon) -> Any:
    inset = part.buffer(-_WALL_SETBACK_M, join_style="mitre")
    shapely.prepare(inset)
    return inset


def _finish_slots(slots: Columns, style: _Style, landmark: bool) -> Columns:
    """Mark the landmark tower (most prominent slot, top floor) and compute households."""
    slots["landmark"] = np.zeros(slots["lx"].size, dtype=bool)
    if landmark and slots["lx"].size:
        top = int(np.argmax(slots["priority"]))
        slots["floors"][top] = _LANDMARK_FLOORS
        slots["landmark"][top] = True
        slots["priority"][top] = np.inf
        slots["tunable"][:] = False
    products = slots["floors"] * slots["units"] * slots["hh_per_floor"]
    slots["hh"] = np.ones_like(products) if style.single_household else products
    return slots


def _empty_slots() -> Columns:
    names = ("ox", "oy", "cos", "sin", "lx", "ly", "length", "depth", "slot_len", "col_gap", "priority")
    slots: Columns = {name: np.zeros(0) for name in names}
    ints = ("row", "units", "hh_per_floor", "floors", "compound", "hh")
    slots |= {name: np.zeros(0, dtype=np.int64) for name in ints}
    slots |= {"kind": np.zeros(0, dtype=object), "tunable": np.zeros(0, bool), "landmark": np.zeros(0, bool)}
    return slots


def _fill(slots: Columns, target: float) -> Array:
    """Keep buildings in priority order (outer rows first, so compound centres stay green) up to ``target``.

    A landmark block keeps its landmark and at least a few more of its towers, whatever the target.
    """
    order = np.argsort(-slots["priority"], kind="stable")
    cumulative = np.concatenate([[0], np.cumsum(slots["hh"][order])])
    count = int(np.argmin(np.abs(cumulative - target)))
    if slots["landmark"].any():
        count = min(max(count, _LANDMARK_TOWERS), order.size)
    keep = np.zeros(order.size, dtype=bool)
    keep[order[:count]] = True
    return keep


def _emit_residential(
    parts: list[Polygon],
    styles: tuple[str, ...],
    slots: Columns,
    keep: Array,
    block: _Block,
    rng: np.random.Generator,
    sink: _Sink,
) -> int:
    """Add the block's compounds, kept buildings and their zones; return the households added."""
    occupied = np.bincount(slots["compound"][keep], minlength=len(parts)) > 0
    ids = np.full(len(parts), None, dtype=object)
    for k, part in enumerate(parts):
        if not occupied[k]:
            _add_zone(sink, "green", np.asarray([part], dtype=object), None)
            continue
        ids[k] = sink.next_compound_id()
        name = sink.compound_names.next()
        sink.compounds.add(
            [part], compound_id=ids[k], name=name, kind=styles[k], community_code=block.community_code
        )
    kept = _take(slots, keep)
    _add_slot_buildings(kept, ids, block.community_code, sink)
    walls = np.asarray(parts, dtype=object)
    _add_row_zones(kept, walls, ids, rng, sink)
    _add_slot_greens(_take(slots, ~keep & occupied[slots["compound"]]), walls, ids, sink)
    return int(kept["hh"].sum())


def _add_slot_buildings(kept: Columns, ids: Array, community_code: str, sink: _Sink) -> None:
    geoms = _rects(kept, kept["lx"], kept["ly"], kept["length"] / 2, kept["depth"] / 2)
    sink.buildings.add(
        geoms,
        households=kept["hh"],
        floors=kept["floors"],
        units=kept["units"],
        hh_per_floor=kept["hh_per_floor"],
        compound_id=ids[kept["compound"]],
        community_code=community_code,
        kind=kept["kind"],
        tunable=kept["tunable"],
    )


def _add_row_zones(kept: Columns, walls: Array, ids: Array, rng: np.random.Generator, sink: _Sink) -> None:
    """A fire lane in front of every row of buildings, and parking bays beside most lanes (not for villas)."""
    if not kept["lx"].size:
        return
    _, first, inverse = np.unique(kept["row"], return_index=True, return_inverse=True)
    x_lo = np.full(first.size, np.inf)
    x_hi = np.full(first.size, -np.inf)
    np.minimum.at(x_lo, inverse, kept["lx"] - kept["length"] / 2)
    np.maximum.at(x_hi, inverse, kept["lx"] + kept["length"] / 2)
    head = _take(kept, first)
    mid, half = (x_lo + x_hi) / 2, (x_hi - x_lo) / 2
    lane_w = rng.uniform(*_FIRE_LANE_WIDTH_M, first.size)
    lane_top = head["ly"] - head["depth"] / 2 - _FIRE_LANE_OFFSET_M
    wall, owner = walls[head["compound"]], ids[head["compound"]]
    lanes = _rects(head, mid, lane_top - lane_w / 2, half, lane_w / 2)
    _add_zone(sink, "fire_lanes", shapely.intersection(lanes, wall), owner)
    bays = (head["kind"] != "villa") & (rng.random(first.size) < _PARKING_ROW_P)
    bay_y = lane_top - lane_w - 0.5 - _PARKING_DEPTH_M / 2
    strips = _rects(head, mid, bay_y, half, np.full(first.size, _PARKING_DEPTH_M / 2))
    _add_zone(sink, "parking", shapely.intersection(strips[bays], wall[bays]), owner[bays])


def _add_slot_greens(dropped: Columns, walls: Array, ids: Array, sink: _Sink) -> None:
    """Lawns where building slots of an occupied compound stay empty, merged along their rows."""
    half_x = (dropped["slot_len"] + dropped["col_gap"]) / 2 + 0.01
    half_y = dropped["depth"] / 2 + _GREEN_MARGIN_M
    greens = _rects(dropped, dropped["lx"], dropped["ly"], half_x, half_y)
    owners = np.unique(dropped["compound"])
    lawns = [shapely.union_all(greens[dropped["compound"] == k]) for k in owners]
    _add_zone(
        sink, "green", shapely.intersection(np.asarray(lawns, dtype=object), walls[owners]), ids[owners]
    )


# --- totals and output -------------------------------------------------------------------------------------


def _correct_total(buildings: Columns, target: int, rng: np.random.Generator) -> None:
    """Add or remove whole floors of towers and resettlement slabs until the total is close to ``target``."""
    hh, floors = buildings["households"], buildings["floors"]
    per_floor = buildings["units"] * buildings["hh_per_floor"]
    tunable = buildings["tunable"].astype(bool)
    low, high = _floor_limits(buildings["kind"])
    for _ in range(_CORRECTION_PASSES):
        diff = target - int(hh.sum())
        step = int(np.sign(diff))
        room = tunable & (floors + step >= low) & (floors + step <= high)
        chosen = rng.permutation(np.flatnonzero(room))
        chosen = chosen[np.cumsum(per_floor[chosen]) <= abs(diff)]
        if step == 0 or not chosen.size:
            return
        floors[chosen] += step
        hh[chosen] += step * per_floor[chosen]


def _floor_limits(kinds: Array) -> tuple[Array, Array]:
    low = np.zeros(kinds.size, dtype=np.int64)
    high = np.zeros(kinds.size, dtype=np.int64)
    for kind, (first, last) in _FLOOR_RANGE.items():
        mask = kinds == kind
        low[mask], high[mask] = first, last
    return low, high


def _assemble(sink: _Sink, b: Columns, source: str) -> DemoDistrict:
    n = b["geometry"].size
    buildings = _frame(
        b["geometry"],
        building_id=_ids("B", n, 6),
        households=b["households"].astype(np.int64),
        households_estimated=np.zeros(n, dtype=bool),
        floors=pd.array(b["floors"].astype(np.int64), dtype="Int64"),
        units=pd.array(b["units"].astype(np.int64), dtype="Int64"),
        compound_id=b["compound_id"],
        community_code=b["community_code"].astype(str),
        kind=b["kind"].astype(str),
    )
    district = District(
        buildings=buildings,
        communities=_table_frame(sink.communities, ("community_code", "name")),
        compounds=_table_frame(sink.compounds, ("compound_id", "name", "kind", "community_code")),
        roads=_table_frame(sink.roads, ("kind",)),
        source=source,
    )
    zones = {name: _zone_frame(sink.zones[name], name) for name in ZONE_LAYERS}
    return DemoDistrict(district=district, zones=zones)


def _zone_frame(table: _Table, name: str) -> gpd.GeoDataFrame:
    c = table.columns()
    prefix = {"parking": "PK", "fire_lanes": "FL", "green": "GR", "public_space": "PS"}[name]
    return _frame(c["geometry"], zone_id=_ids(prefix, c["geometry"].size, 6), compound_id=c["compound_id"])


def _table_frame(table: _Table, names: tuple[str, ...]) -> gpd.GeoDataFrame:
    c = table.columns()
    return _frame(c["geometry"], **{name: c[name] for name in names})


def _frame(geometry: Array, **columns: Any) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(geometry, crs=METRIC_CRS))
    return frame.to_crs(OUTPUT_CRS)


def _ids(prefix: str, n: int, width: int) -> Array:
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{k:0{width}d}" for k in range(1, n + 1)], dtype=object)


# --- small geometry and array helpers ----------------------------------------------------------------------


def _rects(frame: Columns, cx: Array, cy: Array, hx: Array, hy: Array) -> Array:
    """Rectangles given in each row's local frame (origin ``ox, oy``, rotation ``cos, sin``), in metres."""
    corner_x = np.stack([cx - hx, cx + hx, cx + hx, cx - hx], axis=1)
    corner_y = np.stack(np.broadcast_arrays(cy - hy, cy - hy, cy + hy, cy + hy), axis=1)
    cos, sin = frame["cos"][:, None], frame["sin"][:, None]
    wx = frame["ox"][:, None] + cos * corner_x - sin * corner_y
    wy = frame["oy"][:, None] + sin * corner_x + cos * corner_y
    return np.asarray(shapely.polygons(np.stack([wx, wy], axis=-1)), dtype=object).reshape(-1)


def _add_zone(sink: _Sink, layer: str, geoms: Array, compound_ids: Array | None) -> None:
    """Add the polygon parts of ``geoms`` (slivers and non-polygons dropped) to a zone layer."""
    geoms = np.asarray(geoms, dtype=object).reshape(-1)
    owners = np.full(geoms.size, None, dtype=object) if compound_ids is None else np.asarray(compound_ids)
    parts, index = shapely.get_parts(geoms, return_index=True)
    good = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= _MIN_ZONE_AREA_M2)
    sink.zones[layer].add(parts[good], compound_id=owners[index[good]])


def _largest_polygon(geom: Any) -> Any:
    """The largest polygon part of ``geom``, or None when it has none."""
    parts = shapely.get_parts(np.asarray([geom], dtype=object))
    parts = parts[shapely.get_type_id(parts) == 3]
    return parts[int(np.argmax(shapely.area(parts)))] if parts.size else None


def _broadcast(value: Any, n: int) -> Array:
    array = np.asarray(value, dtype=object if value is None or isinstance(value, str) else None)
    return np.full(n, value, dtype=array.dtype) if array.ndim == 0 else array


def _take(columns: Columns, index: Array) -> Columns:
    return {name: values[index] for name, values in columns.items()}


def _concat(parts: list[Columns]) -> Columns:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
