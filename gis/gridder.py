"""Divide a district into grids (网格) and micro-grids (微网格): the orchestration of the gridding pipeline.

``make_plan`` projects the district to metres, splits buildings into atoms (:mod:`gis.units`), tiles each
community with one cell per atom (:mod:`gis.graph`), cuts each community into grids and each grid into
micro-grids (:mod:`gis.partition`), codes them (:mod:`gis.coding`), and converts back to the input's CRS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from tqdm import tqdm

from gis.coding import assign_codes
from gis.crs import local_metric_crs
from gis.graph import AtomGraph, build_graph, tessellate
from gis.metrics import quality_report
from gis.model import STATUS_OK, District, GridPlan, GridRules
from gis.notes import Level, part_status
from gis.partition import BalancedBisection, Partitioner, merge_arealess, part_counts
from gis.smooth import straighten_frames
from gis.units import Atoms, split_buildings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Parts:
    """Grid and micro-grid labels of every atom of the district, with the atoms' cells (metric CRS)."""

    cells: NDArray[np.object_]
    grid: NDArray[np.int64]
    micro: NDArray[np.int64]
    grid_status: dict[int, tuple[str, str]]
    micro_status: dict[int, tuple[str, str]]
    grid_community: dict[int, str]
    empty_areas: list[tuple[int, int, shapely.Geometry]]


def make_plan(
    district: District,
    rules: GridRules | None = None,
    *,
    previous: GridPlan | None = None,
    grid_partitioner: Partitioner | None = None,
    micro_partitioner: Partitioner | None = None,
    progress: bool = False,
) -> GridPlan:
    """Cut every community of ``district`` into grids and every grid into micro-grids.

    Args:
        district: buildings, communities and optional compounds and roads, in any CRS.
        rules: household ranges; defaults to grids of 300–500 and micro-grids of 50–80 households.
        previous: an earlier plan of the same district; grids and micro-grids that keep (most of) their
            households keep their codes.
        grid_partitioner: solver for grids; SkyGrid's :class:`~gis.partition.BalancedBisection` by default.
        micro_partitioner: solver for micro-grids; the same solver starting from whole buildings by default.
        progress: show a progress bar over communities.

    Returns:
        The plan, in the district's CRS.

    Example:
        >>> from gis.demo import make_demo_district
        >>> plan = make_plan(make_demo_district(10_000, seed=1).district)
        >>> bool((plan.grids["households"] <= 500).mean() > 0.9)
        True
    """
    rules = rules or GridRules()
    grid_solver = grid_partitioner or BalancedBisection(seed=rules.seed)
    micro_solver = micro_partitioner or BalancedBisection(seed=rules.seed, keep_groups=False)
    metric = local_metric_crs(district.buildings)
    buildings = district.buildings.to_crs(metric)
    atoms = split_buildings(buildings, rules)
    parts = _cut_district(district, atoms, buildings, rules, grid_solver, micro_solver, progress)
    plan = _to_input_crs(
        _assemble(district, buildings, atoms, parts, rules, previous), district.buildings.crs
    )
    return replace(plan, report=quality_report(plan, district))


def _cut_district(
    district: District,
    atoms: Atoms,
    buildings: gpd.GeoDataFrame,
    rules: GridRules,
    grid_solver: Partitioner,
    micro_solver: Partitioner,
    progress: bool,
) -> _Parts:
    metric = buildings.crs
    communities = district.communities.to_crs(metric).sort_values("community_code", kind="stable")
    barriers = None if district.roads is None else district.roads.to_crs(metric).geometry.to_numpy()
    atom_community = buildings["community_code"].to_numpy(dtype=object)[atoms.building]
    group = _group_index(buildings["compound_id"])[atoms.building]
    state = _CutState(len(atoms))
    rows = zip(communities["community_code"], communities.geometry, strict=True)
    for code, area in tqdm(list(rows), desc="gridding communities", unit="community", disable=not progress):
        members = np.flatnonzero(atom_community == code)
        cells = tessellate(atoms.geometry[members], area)
        graph = build_graph(
            cells,
            atoms.geometry[members],
            weights=atoms.households[members],
            group=group[members],
            building=atoms.building[members],
            indivisible=atoms.indivisible[members],
            barriers=barriers,
        )
        state.cells[members] = cells
        state.cut_community(str(code), area, members, graph, rules, grid_solver, micro_solver)
    return state.parts()


class _CutState:
    """Labels collected community by community (private accumulator of ``_cut_district``)."""

    def __init__(self, n: int) -> None:
        self.cells = np.full(n, shapely.Polygon(), dtype=object)
        self.grid = np.full(n, -1, dtype=np.int64)
        self.micro = np.full(n, -1, dtype=np.int64)
        self.grid_status: dict[int, tuple[str, str]] = {}
        self.micro_status: dict[int, tuple[str, str]] = {}
        self.grid_community: dict[int, str] = {}
        self.empty_areas: list[tuple[int, int, shapely.Geometry]] = []

    def cut_community(
        self,
        code: str,
        area: shapely.Geometry,
        members: NDArray[np.int64],
        graph: AtomGraph,
        rules: GridRules,
        grid_solver: Partitioner,
        micro_solver: Partitioner,
    ) -> None:
        if len(members) == 0:
            self._empty_community(code, area)
            return
        pieces = graph.components()
        total = int(graph.weights.sum())
        for piece in range(int(pieces.max()) + 1):
            nodes = np.flatnonzero(pieces == piece).astype(np.int64)
            sub = graph.subgraph(nodes)
            labels = merge_arealess(sub, grid_solver.partition(sub, rules.grid_min, rules.grid_max))
            for label in range(int(labels.max()) + 1):
                grid_nodes = nodes[labels == label]
                grid_id = self._new_grid(code, graph, grid_nodes, total, pieces.max() > 0, rules)
                self.grid[members[grid_nodes]] = grid_id
                self._cut_grid(members, graph, grid_nodes, rules, micro_solver)

    def _new_grid(
        self, code: str, graph: AtomGraph, nodes: NDArray[np.int64], total: int, split: bool, rules: GridRules
    ) -> int:
        grid_id = len(self.grid_community)
        self.grid_community[grid_id] = code
        self.grid_status[grid_id] = _status(
            "grid", graph, nodes, total, (rules.grid_min, rules.grid_max), split_area=split
        )
        return grid_id

    def _cut_grid(
        self,
        members: NDArray[np.int64],
        graph: AtomGraph,
        grid_nodes: NDArray[np.int64],
        rules: GridRules,
        micro_solver: Partitioner,
    ) -> None:
        sub = graph.subgraph(grid_nodes)
        labels = merge_arealess(sub, micro_solver.partition(sub, rules.micro_min, rules.micro_max))
        total = int(sub.weights.sum())
        for label in range(int(labels.max()) + 1):
            nodes = np.flatnonzero(labels == label)
            micro_id = len(self.micro_status)
            self.micro_status[micro_id] = _status(
                "micro", sub, nodes, total, (rules.micro_min, rules.micro_max)
            )
            self.micro[members[grid_nodes[nodes]]] = micro_id

    def _empty_community(self, code: str, area: shapely.Geometry) -> None:
        grid_id = len(self.grid_community)
        self.grid_community[grid_id] = code
        self.grid_status[grid_id] = part_status("grid", 0, 0, 0, 1, 1, split_area=False, feasible=False)
        micro_id = len(self.micro_status)
        self.micro_status[micro_id] = self.grid_status[grid_id]
        self.empty_areas.append((grid_id, micro_id, area))

    def parts(self) -> _Parts:
        return _Parts(
            self.cells,
            self.grid,
            self.micro,
            self.grid_status,
            self.micro_status,
            self.grid_community,
            self.empty_areas,
        )


def _status(
    kind: Level,
    graph: AtomGraph,
    nodes: NDArray[np.int64],
    total: int,
    limits: tuple[int, int],
    *,
    split_area: bool = False,
) -> tuple[str, str]:
    """Status and note of a part made of ``nodes`` out of an area of ``total`` households."""
    low, high = limits
    return part_status(
        kind,
        int(graph.weights[nodes].sum()),
        total,
        _largest_indivisible(graph, nodes),
        low,
        high,
        split_area=split_area,
        feasible=_feasible(total, low, high),
    )


def _feasible(total: int, low: int, high: int) -> bool:
    return any(k * low <= total <= k * high for k in part_counts(total, low, high))


def _largest_indivisible(graph: AtomGraph, nodes: NDArray[np.int64]) -> int:
    heavy = nodes[graph.indivisible[nodes]]
    return int(graph.weights[heavy].max()) if len(heavy) else 0


def _group_index(compound_id: pd.Series) -> NDArray[np.int64]:
    codes, _ = pd.factorize(compound_id, use_na_sentinel=True)
    return codes.astype(np.int64)


def _assemble(
    district: District,
    buildings: gpd.GeoDataFrame,
    atoms: Atoms,
    parts: _Parts,
    rules: GridRules,
    previous: GridPlan | None,
) -> GridPlan:
    units = _building_units(buildings, atoms, parts)
    grids = _dissolve(parts.cells, parts.grid, buildings.crs)
    micros = _dissolve(parts.cells, parts.micro, buildings.crs)
    if rules.straighten_boundaries:
        labels, footprints = (parts.grid, parts.micro), buildings.geometry.to_numpy()
        grids, micros = straighten_frames(grids, micros, labels, parts.grid_community, footprints)
    grids, micros = _add_empty_areas(grids, micros, parts, buildings.crs)
    grid_codes, micro_codes = assign_codes(grids, micros, parts.grid_community, units, previous)
    grids = _grid_frame(grids, parts, units, grid_codes)
    micros = _micro_frame(micros, parts, units, micro_codes)
    units["grid_code"] = units.pop("grid_id").map(grid_codes)
    units["microgrid_code"] = units.pop("micro_id").map(micro_codes)
    return GridPlan(grids, micros, units, pd.DataFrame(), rules)


def _dissolve(cells: NDArray[np.object_], labels: NDArray[np.int64], crs: object) -> gpd.GeoDataFrame:
    """Union of the cells of each label (id → polygon), unions snapped to a millimetre grid."""
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
    stops = np.r_[starts[1:], len(order)]
    ids = labels[order][starts]
    geoms = [shapely.coverage_union_all(cells[order[a:b]]) for a, b in zip(starts, stops, strict=True)]
    return gpd.GeoDataFrame({"id": ids}, geometry=_single_polygons(geoms), crs=crs)


def _single_polygons(geoms: Iterable[shapely.Geometry]) -> list[shapely.Geometry]:
    """Drop sliver parts left by snapping so a connected union is a Polygon; real multi-parts stay."""
    result = []
    for geom in geoms:
        parts = shapely.get_parts(geom)
        big = parts[shapely.area(parts) > 0.01] if len(parts) > 1 else parts
        result.append(big[0] if len(big) == 1 else shapely.multipolygons(big))
    return result


def _add_empty_areas(
    grids: gpd.GeoDataFrame, micros: gpd.GeoDataFrame, parts: _Parts, crs: object
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Communities without buildings are one grid and one micro-grid covering the whole community."""
    empty = parts.empty_areas
    if not empty:
        return grids, micros
    areas = [area for _, _, area in empty]
    extra_grids = gpd.GeoDataFrame({"id": [g for g, _, _ in empty]}, geometry=areas, crs=crs)
    extra_micros = gpd.GeoDataFrame(
        {"id": [m for _, m, _ in empty], "grid_id": [g for g, _, _ in empty]}, geometry=areas, crs=crs
    )
    return (
        gpd.GeoDataFrame(pd.concat([grids, extra_grids], ignore_index=True), crs=crs),
        gpd.GeoDataFrame(pd.concat([micros, extra_micros], ignore_index=True), crs=crs),
    )


def _building_units(buildings: gpd.GeoDataFrame, atoms: Atoms, parts: _Parts) -> gpd.GeoDataFrame:
    """One row per building, stairwell or floor range actually split between micro-grids."""
    frame = pd.DataFrame(
        {
            "b": atoms.building,
            "unit": atoms.unit,
            "floor_from": atoms.floor_from,
            "floor_to": atoms.floor_to,
            "households": atoms.households,
            "grid_id": parts.grid,
            "micro_id": parts.micro,
        }
    )
    whole_building = frame.groupby("b")["micro_id"].transform("nunique") == 1
    whole_stair = frame.groupby(["b", "unit"])["micro_id"].transform("nunique") == 1
    frame.loc[whole_building, ["unit", "floor_from", "floor_to"]] = 0
    frame.loc[whole_stair, ["floor_from", "floor_to"]] = 0
    keys = ["b", "unit", "floor_from", "floor_to", "grid_id", "micro_id"]
    grouped = frame.groupby(keys, sort=True)
    merged = grouped["households"].sum().reset_index()
    whole = merged["unit"].eq(0).to_numpy()
    geometry = _union_groups(atoms.geometry, np.asarray(grouped.ngroup(), dtype=np.int64), ~whole)
    geometry[whole] = buildings.geometry.to_numpy()[merged.loc[whole, "b"].to_numpy()]
    merged["geometry"] = geometry
    merged.insert(0, "building_id", buildings["building_id"].to_numpy()[merged.pop("b").to_numpy()])
    for column in ("floor_from", "floor_to"):
        merged[column] = merged[column].astype("Int64").mask(merged[column] == 0)
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=buildings.crs)


def _union_groups(
    geoms: NDArray[np.object_], group: NDArray[np.int64], needed: NDArray[np.bool_]
) -> NDArray[np.object_]:
    """Per group (0..k-1): its one geometry, or the union of its geometries (in row order) where ``needed``.

    Groups not ``needed`` get their first geometry; only the few pieces of a split building that end up
    together are unioned, so no per-group Python call is made for the thousands of single pieces.
    """
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=len(needed))
    first = np.cumsum(counts) - counts
    result: NDArray[np.object_] = geoms[order[first]]
    for g in np.flatnonzero((counts > 1) & needed).tolist():
        result[g] = shapely.union_all(geoms[order[first[g] : first[g] + counts[g]]], grid_size=0.001)
    return result


def _grid_frame(
    grids: gpd.GeoDataFrame, parts: _Parts, units: gpd.GeoDataFrame, codes: dict[int, str]
) -> gpd.GeoDataFrame:
    stats = units.groupby("grid_id").agg(
        households=("households", "sum"), buildings=("building_id", "nunique")
    )
    ids = grids["id"].to_numpy()
    frame = gpd.GeoDataFrame(
        {
            "grid_code": [codes[i] for i in ids],
            "community_code": [parts.grid_community[i] for i in ids],
            "households": stats["households"].reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
            "buildings": stats["buildings"].reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
            "status": [parts.grid_status[i][0] for i in ids],
            "note": [parts.grid_status[i][1] for i in ids],
        },
        geometry=grids.geometry.to_numpy(),
        crs=grids.crs,
    )
    return frame.sort_values("grid_code", ignore_index=True)


def _micro_frame(
    micros: gpd.GeoDataFrame,
    parts: _Parts,
    units: gpd.GeoDataFrame,
    codes: dict[int, str],
) -> gpd.GeoDataFrame:
    households = units.groupby("micro_id")["households"].sum()
    ids = micros["id"].to_numpy()
    frame = gpd.GeoDataFrame(
        {
            "microgrid_code": [codes[i] for i in ids],
            "grid_code": [codes[i][:-2] for i in ids],
            "households": households.reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
            "status": [parts.micro_status[i][0] for i in ids],
            "note": [parts.micro_status[i][1] for i in ids],
        },
        geometry=micros.geometry.to_numpy(),
        crs=micros.crs,
    )
    return frame.sort_values("microgrid_code", ignore_index=True)


def _to_input_crs(plan: GridPlan, crs: object) -> GridPlan:
    if plan.grids.crs == crs:
        return plan
    return GridPlan(
        plan.grids.to_crs(crs),
        plan.microgrids.to_crs(crs),
        plan.building_units.to_crs(crs),
        plan.report,
        plan.rules,
    )


__all__ = ["STATUS_OK", "make_plan"]
