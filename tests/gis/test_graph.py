"""Tests of :mod:`gis.graph`: cells that tile a community and the neighbour graph built on them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import shapely
import shapely.affinity
from numpy.typing import NDArray

from gis.graph import (
    ROAD_CUT_FACTOR,
    AtomGraph,
    _carve,
    _merge_by_owner,
    _seed_points,
    _shared_edges,
    _touch_across,
    build_graph,
    components,
    coverage_union_by,
    row_ids,
    tessellate,
)

SQUARE = shapely.box(0.0, 0.0, 200.0, 200.0)
L_SHAPE = shapely.Polygon([(0, 0), (200, 0), (200, 60), (60, 60), (60, 200), (0, 200)])
U_SHAPE = shapely.Polygon(
    [(0, 0), (240, 0), (240, 200), (180, 200), (180, 60), (60, 60), (60, 200), (0, 200)]
)


def _boxes(rects: Sequence[tuple[float, float, float, float]]) -> NDArray[np.object_]:
    return np.array([shapely.box(*r) for r in rects], dtype=object)


def _grid_of_boxes() -> NDArray[np.object_]:
    """20 buildings of 30 m x 20 m in a 4 x 5 layout inside :data:`SQUARE`."""
    return _boxes([(x + 5, y + 5, x + 35, y + 25) for x in range(0, 200, 50) for y in range(0, 200, 40)])


def _graph(
    cells: NDArray[np.object_], footprints: NDArray[np.object_], barriers: NDArray[np.object_] | None = None
) -> AtomGraph:
    n = len(cells)
    return build_graph(
        cells,
        footprints,
        weights=np.full(n, 10, dtype=np.int64),
        group=np.full(n, -1, dtype=np.int64),
        building=np.arange(n, dtype=np.int64),
        indivisible=np.zeros(n, dtype=bool),
        barriers=barriers,
    )


def _assert_tiles(cells: NDArray[np.object_], area: shapely.Polygon) -> None:
    """Cells cover ``area`` without gaps and without overlaps."""
    assert shapely.union_all(cells).area == pytest.approx(area.area, abs=1e-3)
    assert shapely.symmetric_difference(shapely.union_all(cells), area).area < 1e-3
    assert shapely.area(cells).sum() == pytest.approx(area.area, abs=1e-3)  # no double counting
    tree = shapely.STRtree(cells)
    left, right = tree.query(cells, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j:
            assert shapely.intersection(cells[i], cells[j]).area <= 1e-3, (i, j)


# ------------------------------------------------------------------------------------------------- tessellate


def test_tessellate_square_tiles_the_community() -> None:
    footprints = _grid_of_boxes()
    cells = tessellate(footprints, SQUARE)
    assert len(cells) == len(footprints)
    _assert_tiles(cells, SQUARE)


def test_tessellate_cells_are_polygons_holding_their_footprints() -> None:
    footprints = _grid_of_boxes()
    cells = tessellate(footprints, SQUARE)
    assert all(isinstance(cell, shapely.Polygon) and not cell.is_empty for cell in cells)
    assert _held(cells, footprints) == pytest.approx(1.0)


def test_tessellate_rotated_and_touching_footprints() -> None:
    """Stairwell slabs of one building touch each other; each cell still holds most of its own slab."""
    slabs = [shapely.box(20 + 15 * i, 80, 35 + 15 * i, 95) for i in range(6)]
    rotated = [shapely.affinity.rotate(shapely.box(120, 120, 170, 135), 35)]
    footprints = np.array(slabs + rotated, dtype=object)
    cells = tessellate(footprints, SQUARE)
    _assert_tiles(cells, SQUARE)
    assert _held(cells, footprints) == pytest.approx(1.0)


def test_tessellate_long_slab_beside_a_tower_keeps_its_corners() -> None:
    """A neighbour's seed points can be nearer a footprint's corner than its own; the cell still holds it all."""
    slab = shapely.box(10, 10, 190, 22)  # long and thin: its seeds run along its middle
    tower = shapely.box(60, 23, 140, 103)  # big, 1 m away: its seeds reach close to the slab
    footprints = np.array([slab, tower, shapely.box(10, 150, 30, 170)], dtype=object)
    cells = tessellate(footprints, SQUARE)
    _assert_tiles(cells, SQUARE)
    assert _held(cells, footprints) == pytest.approx(1.0)
    assert all(isinstance(cell, shapely.Polygon) for cell in cells)


def _held(cells: NDArray[np.object_], footprints: NDArray[np.object_]) -> float:
    """The smallest share of a footprint inside its own cell."""
    return float((shapely.area(shapely.intersection(cells, footprints)) / shapely.area(footprints)).min())


@pytest.mark.parametrize(
    ("area", "rects"),
    [
        pytest.param(
            L_SHAPE,
            [(10, 10 + 40 * i, 50, 30 + 40 * i) for i in range(5)]
            + [(70 + 40 * i, 10, 100 + 40 * i, 50) for i in range(3)],
            id="L",
        ),
        pytest.param(
            U_SHAPE,
            [(10, 20 + 40 * i, 50, 40 + 40 * i) for i in range(4)]
            + [(190, 20 + 40 * i, 230, 40 + 40 * i) for i in range(4)]
            + [(80, 10, 160, 40)],
            id="U",
        ),
    ],
)
def test_tessellate_concave_community_has_no_gaps(
    area: shapely.Polygon, rects: Sequence[tuple[float, float, float, float]]
) -> None:
    footprints = _boxes(rects)
    cells = tessellate(footprints, area)
    _assert_tiles(cells, area)
    assert all(isinstance(cell, shapely.Polygon) for cell in cells)
    # every cell lies in the community, none reaches across the notch of the L / U
    assert all(area.buffer(1e-3).contains(cell) for cell in cells)
    graph = _graph(cells, footprints)
    assert components(len(graph), graph.edges).max() == 0


def test_tessellate_empty_input() -> None:
    assert len(tessellate(np.empty(0, dtype=object), SQUARE)) == 0


def test_footprint_far_outside_gets_empty_cell_and_an_edge() -> None:
    inside = [(10, 10, 40, 40), (100, 10, 140, 40), (10, 150, 40, 180), (150, 150, 180, 180)]
    footprints = _boxes([*inside, (1000, 1000, 1020, 1020)])
    cells = tessellate(footprints, SQUARE)
    assert shapely.is_empty(cells).tolist() == [False, False, False, False, True]
    _assert_tiles(cells[:4], SQUARE)
    graph = _graph(cells, footprints)
    outside = 4
    touching = (graph.edges == outside).any(axis=1)
    assert touching.sum() == 1  # tied to its nearest atom, not isolated
    assert graph.edges[touching][0].tolist() == [3, 4]  # the nearest one, at (165, 165)
    assert graph.edge_length_m[touching][0] == 0.0
    assert graph.xy[outside].tolist() == pytest.approx([1010.0, 1010.0])  # footprint centroid
    assert graph.area_m2[outside] == 0.0
    assert components(len(graph), graph.edges).max() == 0


def test_footprint_just_outside_still_tiles() -> None:
    """A building across the community's edge (assigned by code) must not open a gap or overlap."""
    inside = [(10, 10, 40, 40), (100, 10, 140, 40), (10, 150, 40, 180), (150, 150, 180, 180)]
    footprints = _boxes([*inside, (205, 50, 215, 60)])
    cells = tessellate(footprints, SQUARE)
    _assert_tiles(cells, SQUARE)
    graph = _graph(cells, footprints)
    assert components(len(graph), graph.edges).max() == 0


# ------------------------------------------------------------------------------------------------ build_graph


def test_build_graph_edges_are_ordered_pairs_of_neighbours() -> None:
    footprints = _grid_of_boxes()
    cells = tessellate(footprints, SQUARE)
    graph = _graph(cells, footprints)
    assert graph.edges.shape[1] == 2
    assert (graph.edges[:, 0] < graph.edges[:, 1]).all()
    assert len(np.unique(graph.edges, axis=0)) == len(graph.edges)
    assert (graph.edge_length_m > 0).all()
    assert (graph.edge_cost == graph.edge_length_m).all()  # no barriers given
    for (i, j), length in zip(graph.edges.tolist(), graph.edge_length_m.tolist(), strict=True):
        shared = shapely.intersection(shapely.boundary(cells[i]), shapely.boundary(cells[j])).length
        assert shared == pytest.approx(length, abs=1e-3)
    assert graph.area_m2.sum() == pytest.approx(SQUARE.area, abs=1e-3)
    # the outline is what is not shared: its total is the community's perimeter
    assert graph.boundary_m.sum() == pytest.approx(SQUARE.length, abs=1e-2)
    assert components(len(graph), graph.edges).max() == 0


def test_build_graph_corner_touch_is_no_edge() -> None:
    """Four quadrant cells meeting at one point: the diagonal pairs are not neighbours."""
    cells = _boxes([(0, 0, 100, 100), (100, 0, 200, 100), (0, 100, 100, 200), (100, 100, 200, 200)])
    graph = _graph(cells, cells)
    assert sorted(map(tuple, graph.edges.tolist())) == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert graph.edge_length_m.tolist() == pytest.approx([100.0] * 4)


def test_road_between_rows_makes_crossing_cheaper() -> None:
    south = [(10 + 40 * i, 20, 40 + 40 * i, 40) for i in range(5)]
    north = [(10 + 40 * i, 160, 40 + 40 * i, 180) for i in range(5)]
    footprints = _boxes(south + north)
    cells = tessellate(footprints, SQUARE)
    road = np.array([shapely.box(-10, 95, 210, 105)], dtype=object)
    graph = _graph(cells, footprints, barriers=road)
    crossing = (graph.edges[:, 0] < 5) != (graph.edges[:, 1] < 5)
    assert crossing.any() and (~crossing).any()
    assert graph.edge_cost[crossing] == pytest.approx(ROAD_CUT_FACTOR * graph.edge_length_m[crossing])
    assert (graph.edge_cost[crossing] < graph.edge_length_m[crossing]).all()
    assert (graph.edge_cost[~crossing] == graph.edge_length_m[~crossing]).all()


# ------------------------------------------------------------------------------------------------- AtomGraph


def _path_graph(n: int) -> AtomGraph:
    edges = np.column_stack([np.arange(n - 1), np.arange(1, n)]).astype(np.int64)
    return AtomGraph(
        weights=np.arange(n, dtype=np.int64) * 10,
        xy=np.column_stack([np.arange(n, dtype=float), np.zeros(n)]),
        area_m2=np.ones(n),
        boundary_m=np.full(n, 2.0),
        edges=edges,
        edge_length_m=np.arange(1, n, dtype=float),
        edge_cost=np.arange(1, n, dtype=float) / 2,
        group=np.full(n, -1, dtype=np.int64),
        building=np.arange(n, dtype=np.int64) + 100,
        indivisible=np.arange(n) == 2,
    )


@pytest.mark.parametrize("field", ["xy", "area_m2", "boundary_m", "group", "building", "indivisible"])
def test_atom_graph_rejects_mismatched_node_arrays(field: str) -> None:
    good = _path_graph(4)
    values = {name: getattr(good, name) for name in AtomGraph.__dataclass_fields__}
    values[field] = values[field][:-1]
    with pytest.raises(ValueError, match=field):
        AtomGraph(**values)


@pytest.mark.parametrize("field", ["edges", "edge_length_m", "edge_cost"])
def test_atom_graph_rejects_mismatched_edge_arrays(field: str) -> None:
    good = _path_graph(4)
    values = {name: getattr(good, name) for name in AtomGraph.__dataclass_fields__}
    values[field] = values[field][:-1]
    with pytest.raises(ValueError, match="edges"):
        AtomGraph(**values)


def test_atom_graph_rejects_edges_of_wrong_shape() -> None:
    good = _path_graph(4)
    values = {name: getattr(good, name) for name in AtomGraph.__dataclass_fields__}
    values["edges"] = good.edges.ravel()[:3].reshape(3, 1)
    with pytest.raises(ValueError, match="edges"):
        AtomGraph(**values)


def test_subgraph_renumbers_in_given_order() -> None:
    graph = _path_graph(5)  # 0-1-2-3-4
    sub = graph.subgraph(np.array([3, 2, 4], dtype=np.int64))
    assert len(sub) == 3
    assert sub.weights.tolist() == [30, 20, 40]
    assert sub.building.tolist() == [103, 102, 104]
    assert sub.indivisible.tolist() == [False, True, False]
    assert sub.xy[:, 0].tolist() == [3.0, 2.0, 4.0]
    # edges 2-3 (length 3) and 3-4 (length 4) survive as {0, 1} and {0, 2}; 1-2 and 0-1 are dropped
    pairs = {
        frozenset((int(a), int(b))): float(c) for (a, b), c in zip(sub.edges, sub.edge_length_m, strict=True)
    }
    assert pairs == {frozenset((0, 1)): 3.0, frozenset((0, 2)): 4.0}
    assert sorted(sub.edge_cost.tolist()) == [1.5, 2.0]
    assert sub.components().tolist() == [0, 0, 0]


def test_subgraph_of_disconnected_nodes() -> None:
    sub = _path_graph(5).subgraph(np.array([0, 4], dtype=np.int64))
    assert sub.edges.shape == (0, 2)
    assert len(sub.edge_length_m) == len(sub.edge_cost) == 0
    assert sub.components().tolist() == [0, 1]


def test_components_labels() -> None:
    edges = np.array([[0, 1], [2, 3], [3, 4]], dtype=np.int64)
    labels = components(6, edges)
    assert labels[0] == labels[1]
    assert labels[2] == labels[3] == labels[4]
    assert len({int(labels[0]), int(labels[2]), int(labels[5])}) == 3
    assert len(components(0, np.zeros((0, 2), dtype=np.int64))) == 0


def _reference_components(n: int, edges: NDArray[np.int64]) -> list[int]:
    """Labels by depth-first search from each unlabelled node in order (components numbered by lowest node)."""
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges.tolist():
        neighbours[a].append(b)
        neighbours[b].append(a)
    labels = [-1] * n
    for start in range(n):
        if labels[start] < 0:
            label, stack = max(labels) + 1, [start]
            labels[start] = label
            while stack:
                for other in neighbours[stack.pop()]:
                    if labels[other] < 0:
                        labels[other] = label
                        stack.append(other)
    return labels


@pytest.mark.parametrize("seed", range(6))
def test_components_match_a_plain_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    edges = rng.integers(0, n, (int(rng.integers(0, 2 * n)), 2)).astype(np.int64)  # repeats, loops, any order
    assert components(n, edges).tolist() == _reference_components(n, edges)


@pytest.mark.parametrize("seed", range(6))
def test_row_ids_rank_rows_like_numpy_unique(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(-3, 4, (int(rng.integers(1, 80)), 4)).astype(np.int64)
    _, expected = np.unique(rows, axis=0, return_inverse=True)
    assert row_ids(rows).tolist() == expected.ravel().tolist()
    assert len(row_ids(np.zeros((0, 4), dtype=np.int64))) == 0


def test_unmatched_segments_fall_back_to_geometry() -> None:
    # B has a vertex on the shared side that A lacks: no segment matches, yet the cells touch along 1 m.
    a = shapely.box(0, 0, 1, 1)
    b = shapely.Polygon([(1, 0), (2, 0), (2, 1), (1, 1), (1, 0.5)])
    far = shapely.box(5, 5, 6, 6)
    cells = np.array([a, b, far], dtype=object)
    assert _touch_across(cells, np.array([0, 1, 2], dtype=np.int32))
    assert not _touch_across(cells, np.array([0, 0, 1], dtype=np.int32))
    edges, length = _shared_edges(cells)
    assert edges.tolist() == [[0, 1]]
    assert length.tolist() == pytest.approx([1.0])


def test_carve_survives_a_broken_voronoi_cell() -> None:
    # GEOS can return one Voronoi cell as the whole frame (seen for cocircular lattice seeds). Faces go to the
    # owner of the nearest seed, so the cells come out as if the diagram were right.
    area = shapely.box(0, 0, 90, 30)
    footprints = np.array([shapely.box(5 + 30 * i, 10, 25 + 30 * i, 20) for i in range(3)], dtype=object)
    points, owner = _seed_points(footprints)
    voronoi = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=area, ordered=True)
    cells = _merge_by_owner(shapely.get_parts(voronoi), owner, len(footprints))
    expected = _carve(cells, footprints, area, (points, owner))
    broken = cells.copy()
    broken[0] = shapely.box(-100, -100, 200, 200)
    carved = _carve(broken, footprints, area, (points, owner))
    assert shapely.area(carved).tolist() == pytest.approx(shapely.area(expected).tolist())
    assert shapely.area(carved).sum() == pytest.approx(area.area)
    assert shapely.covers(carved, footprints).all()


def test_coverage_union_by_merges_each_group() -> None:
    """Groups out of order and of sizes in different size classes each get their union; none is empty."""
    squares = np.array([shapely.box(x, 0, x + 1, 1) for x in range(8)], dtype=object)
    merged = coverage_union_by(squares, np.array([2, 0, 0, 2, 2, 4, 4, 3]), 6)  # sizes 2, 0, 3, 1, 2, 0
    assert shapely.equals(merged[0], shapely.box(1, 0, 3, 1))
    assert shapely.equals(merged[2], shapely.union_all(squares[[0, 3, 4]]))
    assert shapely.get_num_geometries(merged[2]) == 2  # square 0 does not touch squares 3-4
    assert shapely.equals(merged[3], squares[7])
    assert shapely.equals(merged[4], shapely.box(5, 0, 7, 1))
    assert shapely.is_empty(merged[[1, 5]]).all()
