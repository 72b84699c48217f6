"""Straighten the shared boundaries of grids and micro-grids without moving any building across them.

Grids and micro-grids are unions of tessellation cells built around buildings, so the boundary between two
neighbours zigzags along short cell edges. The zigzag costs perimeter, and so compactness (Polsby-Popper),
without separating anything that a straighter line between the same buildings would not.

Each shared boundary (a *chain*: the edges between two polygons from one junction to the next) is pulled
taut like a string whose ends are held. A bend of the chain is cut off when the triangle it spans holds no
vertex of any boundary; where building corners lie in it the chain wraps around them (their convex hull).
Community outlines stay where they are. Where a micro-grid boundary meets a grid boundary (a T-junction) the
junction slides along the micro-grid boundary's last edge, so a grid boundary is pulled taut as a whole rather
than piece by piece between micro-grids. Grid boundaries are pulled first, then the boundaries between
micro-grids of one grid. Then each junction of three or more polygons off the outlines moves towards the point
where its (now straight) first edges are shortest in sum, as far as the free space allows, and the chains that
end there are pulled again.

Only areas free of buildings change hands, so every building keeps its grid and micro-grid; both neighbours
of a chain are rebuilt from the same pulled chain, so the polygons still tile their community; grids are the
unions of their micro-grids. Footprints enter as their corners plus one rule: a chain edge that touches a
footprint never moves. Then no footprint edge crosses a moving chain edge, and a footprint can only reach into
a bend's triangle with a corner inside it (or, when the bend's middle vertex is one of its own corners,
through the angle there, which is tested too).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

Geoms = NDArray[np.object_]
Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]

_KEY_PER_M = 1000.0  # vertices are matched on a millimetre grid, as the tessellation is noded
_AREA_EPS_M2 = 1e-6
#: A cut must shorten its chain by this much; smaller gains are not worth another round.
GAIN_MIN_M = 0.05
#: Chain edges closer than this to a footprint never move (coordinates are kept to the millimetre).
TOUCH_M = 0.01
#: Kinds of edges: on an outline (never moved), between grids, between micro-grids of one grid.
_FIXED, _GRID, _MICRO = 0, 1, 2


def straighten_frames(
    grids: gpd.GeoDataFrame,
    micros: gpd.GeoDataFrame,
    atom_labels: tuple[Ints, Ints],
    grid_area: Mapping[int, str],
    footprints: Geoms,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Grids and micro-grids (``id`` and geometry, metric CRS) with their shared boundaries straightened.

    Args:
        grids: one row per grid id.
        micros: one row per micro-grid id.
        atom_labels: grid id and micro-grid id of every atom (building piece): they tie micro-grids to grids.
        grid_area: community code per grid id; community outlines never move.
        footprints: building footprints in the same CRS.

    Returns:
        The frames with new geometries, rows unchanged; a grid with a changed micro-grid is the union of its
        micro-grids.
    """
    atom_grid, atom_micro = atom_labels
    grid_row = pd.Series(np.arange(len(grids)), index=grids["id"].to_numpy())
    grid_of_micro = pd.Series(atom_grid, index=atom_micro).groupby(level=0).first()
    micro_grid = grid_row[grid_of_micro[micros["id"].to_numpy()].to_numpy()].to_numpy()
    areas = pd.factorize(np.array([grid_area[g] for g in grids["id"]], dtype=object))[0]
    new_micros, changed = straighten(micros.geometry.to_numpy(), micro_grid, areas, footprints)
    new_grids = grids.geometry.to_numpy().copy()
    redo = np.unique(micro_grid[changed])
    members = np.isin(micro_grid, redo)
    new_grids[redo] = union_by_grid(new_micros[members], micro_grid[members], len(grids))[redo]
    return grids.set_geometry(new_grids, crs=grids.crs), micros.set_geometry(new_micros, crs=micros.crs)


def straighten(micros: Geoms, micro_grid: Ints, grid_area: Ints, footprints: Geoms) -> tuple[Geoms, Mask]:
    """Micro-grids with their shared boundaries pulled taut around the buildings.

    Args:
        micros: micro-grid polygons in metres that tile their communities edge to edge, with identical
            vertices on shared edges (as unions of the cells of :func:`gis.graph.tessellate` have).
        micro_grid: grid index per micro-grid.
        grid_area: community index per grid.
        footprints: building footprints; none of them changes side.

    Returns:
        New micro-grid polygons in the same order, and which of them changed. A community with a micro-grid
        that is not a plain polygon, or whose straightened micro-grids fail a check (valid polygons covering
        the same area), keeps its micro-grids.

    Example:
        >>> step = shapely.LineString([(5, 0), (5, 4), (6, 4), (6, 10)])  # a kink between two grids
        >>> halves = shapely.get_parts(shapely.polygonize(shapely.get_parts(
        ...     shapely.union_all([shapely.box(0, 0, 10, 10).boundary, step]))))
        >>> new, changed = straighten(halves, np.array([0, 1]), np.array([0, 0]), np.empty(0, dtype=object))
        >>> float(shapely.length(halves).sum()), round(float(shapely.length(new).sum()), 2)  # 11 m -> 10.05 m
        (62.0, 60.1)
    """
    area = grid_area[micro_grid]
    usable = np.ones(int(area.max(initial=-1)) + 1, dtype=bool)
    usable[area[shapely.get_type_id(micros) != shapely.GeometryType.POLYGON]] = False
    members = np.flatnonzero(usable[area])
    rings = _Rings.of(micros[members])
    if rings.degenerate.any():
        usable[area[members[rings.degenerate]]] = False
        members = np.flatnonzero(usable[area])
        rings = _Rings.of(micros[members])
    result, changed = micros.copy(), np.zeros(len(micros), dtype=bool)
    if len(members) < 2:
        return result, changed
    straight, moved = _straighten_rings(rings, micro_grid[members], area[members], footprints)
    good = _checked(micros[members], straight, area[members]) & moved
    result[members[good]] = straight[good]
    changed[members[good]] = True
    return result, changed


def union_by_grid(micros: Geoms, micro_grid: Ints, n_grids: int) -> Geoms:
    """Grid polygons as the unions of their micro-grids (which share exact edges: a coverage union)."""
    grids = np.full(n_grids, shapely.Polygon(), dtype=object)
    order = np.argsort(micro_grid, kind="stable")
    bounds = np.r_[np.flatnonzero(_starts(micro_grid[order])), len(order)]
    for start, stop in itertools.pairwise(bounds.tolist()):
        grids[micro_grid[order[start]]] = shapely.coverage_union_all(micros[order[start:stop]])
    return grids


def _straighten_rings(rings: _Rings, grid: Ints, area: Ints, footprints: Geoms) -> tuple[Geoms, Mask]:
    """Polygons rebuilt from ``rings`` with every chain pulled taut, and which of them changed."""
    net = _Network.of(rings, grid, area)
    obstacles = _obstacles(rings, net, footprints)
    every = np.ones(len(net.chains), dtype=bool)
    for kind in (_GRID, _MICRO):
        _pull(net, obstacles, kind, every)
    moved = _relocate_junctions(rings, net, obstacles)
    if len(moved):
        ends = net.final.vertices[np.r_[net.final.start[:-1], net.final.start[1:] - 1]]
        again = np.isin(ends, moved).reshape(2, -1).sum(axis=0) > 0
        for kind in (_GRID, _MICRO):
            _pull(net, obstacles, kind, again)
    return _rebuild(rings, net, obstacles)


def _checked(old: Geoms, new: Geoms, area: Ints) -> Mask:
    """Per polygon: whether its community passed the checks (valid polygons, the same total area)."""
    bad = ~shapely.is_valid(new) | (shapely.get_type_id(new) != shapely.GeometryType.POLYGON)
    n = int(area.max()) + 1
    before = np.bincount(area, weights=shapely.area(old), minlength=n)
    after = np.bincount(area, weights=np.where(bad, 0.0, shapely.area(new)), minlength=n)
    failed = np.bincount(area, weights=bad, minlength=n) > 0
    failed |= np.abs(after - before) > 1e-6 * before + 0.01
    ok: Mask = ~failed[area]
    return ok


# --- the coverage as rings of shared vertices --------------------------------------------------------------


@dataclass(frozen=True)
class _Rings:
    """Polygon rings as vertex ids (closing vertex dropped, interior on the left), with vertex coordinates."""

    xy: Floats
    vid: Ints
    ring: Ints  # ring per vertex position
    owner: Ints  # polygon per ring
    n_polys: int
    degenerate: Mask  # polygons with a ring of fewer than three distinct vertices

    @staticmethod
    def of(polys: Geoms) -> _Rings:
        rings, owner = shapely.get_rings(shapely.orient_polygons(polys), return_index=True)
        coords, ring = shapely.get_coordinates(rings, return_index=True)
        keep = ~_ends(ring)  # the closing vertex
        coords, ring = coords[keep], ring[keep]
        first, vid = _unique_points(coords)
        previous = np.r_[-1, vid[:-1]]
        previous[_starts(ring)] = vid[_ring_last(ring)][_starts(ring)]
        fresh = vid != previous  # a vertex equal to its predecessor on the millimetre grid goes
        vid, ring = vid[fresh], ring[fresh]
        degenerate = np.zeros(len(polys), dtype=bool)
        degenerate[owner[np.bincount(ring, minlength=len(rings)) < 3]] = True
        return _Rings(coords[first], vid, ring, owner, len(polys), degenerate)

    def following(self) -> Ints:
        """Per vertex position, the vertex after it in its ring."""
        after: Ints = np.r_[self.vid[1:], -1]
        last = _ends(self.ring)
        after[last] = self.vid[_ring_first(self.ring)][last]
        return after


def _unique_points(xy: Floats) -> tuple[Ints, Ints]:
    """Points equal on the millimetre grid as one: the first row of each, and each row's point (points
    numbered in the order of their first rows)."""
    keys = np.round(xy * _KEY_PER_M).astype(np.int64)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    group = np.cumsum(np.r_[True, np.any(keys[order][1:] != keys[order][:-1], axis=1)][: len(xy)]) - 1
    first = np.full(int(group.max(initial=-1)) + 1, len(xy), dtype=np.int64)
    np.minimum.at(first, group, order)
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    index = np.empty(len(xy), dtype=np.int64)
    index[order] = rank[group]
    return np.sort(first), index


def _starts(labels: Ints) -> Mask:
    """Per position of a run-labelled array: whether it starts its run."""
    starts: Mask = np.r_[True, labels[1:] != labels[:-1]][: len(labels)]
    return starts


def _ends(labels: Ints) -> Mask:
    """Per position of a run-labelled array: whether it ends its run."""
    ends: Mask = np.r_[labels[1:] != labels[:-1], True][: len(labels)]
    return ends


def _ring_last(ring: Ints) -> Ints:
    """Per position, the position of the last vertex of its ring."""
    stops = np.flatnonzero(_ends(ring))
    last: Ints = stops[np.searchsorted(stops, np.arange(len(ring)))]
    return last


def _ring_first(ring: Ints) -> Ints:
    """Per position, the position of the first vertex of its ring."""
    starts = np.flatnonzero(_starts(ring))
    first: Ints = starts[np.searchsorted(starts, np.arange(len(ring)), side="right") - 1]
    return first


# --- chains: the boundaries between two polygons, junction to junction -------------------------------------


@dataclass(frozen=True)
class _Chains:
    """Chains as one flat array of vertex ids: chain ``c`` is ``vertices[start[c]:start[c + 1]]``."""

    vertices: Ints
    start: Ints
    kind: Ints

    def __len__(self) -> int:
        return len(self.kind)

    def chain_of(self) -> Ints:
        """Chain index per entry of ``vertices``."""
        return np.repeat(np.arange(len(self)), np.diff(self.start))

    def inner(self) -> Mask:
        """Per entry of ``vertices``: whether it is neither the first nor the last of its chain."""
        inner = np.ones(len(self.vertices), dtype=bool)
        inner[self.start[:-1]] = False
        inner[self.start[1:] - 1] = False
        return inner

    def edges(self) -> tuple[Ints, Ints]:
        """Both ends of every chain edge."""
        first = np.flatnonzero(~np.isin(np.arange(len(self.vertices)), self.start[1:] - 1))
        return self.vertices[first], self.vertices[first + 1]

    @staticmethod
    def join(parts: list[_Chains]) -> _Chains:
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
        starts = [p.start[:-1] + o for p, o in zip(parts, offsets[:-1], strict=True)]
        return _Chains(
            np.concatenate([p.vertices for p in parts]),
            np.r_[np.concatenate(starts), offsets[-1]].astype(np.int64),
            np.concatenate([p.kind for p in parts]),
        )


@dataclass
class _Network:
    """The chains of the coverage as found (``chains``) and as pulled so far (``final``), the vertices where
    ring pieces start and end (``anchor``: junctions and T-junctions), the T-junctions (``tee``), the
    junctions off every outline whose edges all lie on chains (``free``: they may move), the vertices on an
    outline (``outline``) and the vertices that never move (``pinned``). The masks grow to the obstacle table
    once it is built."""

    chains: _Chains
    final: _Chains
    anchor: Mask
    tee: Mask
    free: Mask
    outline: Mask
    pinned: Mask

    @staticmethod
    def of(rings: _Rings, grid: Ints, area: Ints) -> _Network:
        start, stop, kind, left, right = _undirected(rings, grid, area)
        n = len(rings.xy)
        ends, kinds = np.r_[start, stop], np.r_[kind, kind]
        n_fixed, n_grid, n_micro = (np.bincount(ends, weights=kinds == k, minlength=n) for k in range(3))
        grid_pair = _pair_key(grid[left], grid[right], int(grid.max()) + 1)
        one_grid_pair = _same_pair(start, stop, grid_pair, kind == _GRID, n)
        one_micro_pair = _same_pair(start, stop, _pair_key(left, right, rings.n_polys), kind == _MICRO, n)
        through_grid = (n_grid == 2) & (n_fixed == 0) & (n_micro <= 1) & one_grid_pair
        through_micro = (n_micro == 2) & (n_grid == 0) & (n_fixed == 0) & one_micro_pair
        tee = through_grid & (n_micro == 1)
        anchor = ~(through_grid & ~tee) & ~through_micro
        parts = [
            _walk_chains(anchor, k, start[kind == k], stop[kind == k], through)
            for k, through in ((_GRID, through_grid), (_MICRO, through_micro))
        ]
        chains = _Chains.join(parts)
        chain_ends = np.bincount(
            np.r_[chains.start[:-1], chains.start[1:] - 1], minlength=len(chains.vertices)
        )
        ends_at = np.bincount(chains.vertices, weights=chain_ends, minlength=n)
        free = anchor & ~tee & (n_fixed == 0) & (n_grid + n_micro >= 3) & (ends_at == n_grid + n_micro)
        return _Network(chains, chains, anchor, tee, free, n_fixed > 0, np.zeros(n, dtype=bool))

    def extend(self, n: int) -> None:
        """Grow the vertex masks to ``n`` points (footprint corners are never anchors or junctions)."""
        grow = np.zeros(n - len(self.anchor), dtype=bool)
        self.anchor, self.tee = np.r_[self.anchor, grow], np.r_[self.tee, grow]
        self.free, self.outline = np.r_[self.free, grow], np.r_[self.outline, grow]


def _undirected(rings: _Rings, grid: Ints, area: Ints) -> tuple[Ints, Ints, Ints, Ints, Ints]:
    """Undirected edges: start, stop, kind, and the polygon on each side. An edge not shared by exactly two
    polygons, or shared across communities, is fixed."""
    a, b, owner = rings.vid, rings.following(), rings.owner[rings.ring]
    n = len(rings.xy)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.lexsort((owner, key))
    key, a, b, owner = key[order], a[order], b[order], owner[order]
    heads = np.flatnonzero(_starts(key))
    shared = np.diff(np.r_[heads, len(key)]) == 2
    left, right = owner[heads], owner[np.where(shared, heads + 1, heads)]
    shared &= (left != right) & (area[left] == area[right])
    kind = np.where(~shared, _FIXED, np.where(grid[left] != grid[right], _GRID, _MICRO)).astype(np.int64)
    return a[heads], b[heads], kind, left, np.where(shared, right, left)


def _pair_key(p: Ints, q: Ints, n: int) -> Ints:
    key: Ints = np.minimum(p, q) * n + np.maximum(p, q)
    return key


def _same_pair(start: Ints, stop: Ints, pair: Ints, mask: Mask, n: int) -> Mask:
    """Per vertex: whether all its edges of ``mask`` separate the same two polygons."""
    ends, keys = np.r_[start[mask], stop[mask]], np.r_[pair[mask], pair[mask]]
    low = np.full(n, np.iinfo(np.int64).max)
    high = np.full(n, -1)
    np.minimum.at(low, ends, keys)
    np.maximum.at(high, ends, keys)
    same: Mask = (low == high) | (high < 0)
    return same


def _walk_chains(anchor: Mask, kind: int, start: Ints, stop: Ints, through: Mask) -> _Chains:
    """The chains of ``kind`` edges: paths from a vertex that is not ``through`` to the next one.

    Every edge is followed both ways and ranked along its chain by pointer jumping; each chain is kept in
    the direction that starts at its lower vertex id. A closed loop (a polygon inside a single neighbour, or a
    chain from a junction back to it) stays as it is: its vertices become anchors.
    """
    tail, head = np.r_[start, stop], np.r_[stop, start]
    root, rank, ok = _rank(_following(tail, head, through))
    end = head[_last_edge(root, rank, ok)] if len(tail) else tail
    loop = ~ok | (tail[root] == end)
    anchor[tail[loop]] = True
    keep = np.flatnonzero(~loop & (tail[root] < end))
    edges = keep[np.lexsort((rank[keep], root[keep]))]
    first = _starts(root[edges])
    chain = np.cumsum(first) - 1
    offsets = (
        np.r_[0, np.cumsum(np.bincount(chain) + 1)].astype(np.int64) if len(edges) else np.zeros(1, np.int64)
    )
    vertices = np.empty(int(offsets[-1]), dtype=np.int64)
    vertices[offsets[:-1]] = tail[edges[first]]
    vertices[offsets[chain] + 1 + rank[edges]] = head[edges]
    return _Chains(vertices, offsets, np.full(len(offsets) - 1, kind, dtype=np.int64))


def _following(tail: Ints, head: Ints, through: Mask) -> Ints:
    """Per directed edge, the edge that continues it through its head (-1 where the head is a junction)."""
    if len(tail) == 0:
        return tail
    order = np.argsort(tail, kind="stable")
    first = np.searchsorted(tail[order], head)
    one = order[np.minimum(first, len(order) - 1)]
    other = order[np.minimum(first + 1, len(order) - 1)]
    following: Ints = np.where(through[head], np.where(head[one] != tail, one, other), -1)
    return following


def _rank(following: Ints) -> tuple[Ints, Ints, Mask]:
    """Per edge: the first edge of its chain, its position from there, and whether it has a first edge (the
    edges of a closed loop have none)."""
    up = np.arange(len(following))
    up[following[following >= 0]] = np.flatnonzero(following >= 0)
    return _jump(up)


def _jump(up: Ints) -> tuple[Ints, Ints, Mask]:
    """Pointer jumping over ``up`` (each item's predecessor; a first item points to itself): per item its
    first item, its distance from it, and whether it has one (items on a cycle do not)."""
    n = len(up)
    distance = (up != np.arange(n)).astype(np.int64)
    for _ in range(max(n, 1).bit_length() + 1):
        distance = distance + distance[up]
        up = up[up]
    return up, distance, (up[up] == up) & (distance < n)


def _last_edge(root: Ints, rank: Ints, ok: Mask) -> Ints:
    """Per edge, the last edge of its chain (meaningless where not ``ok``)."""
    best = np.full(len(root), -1, dtype=np.int64)
    np.maximum.at(best, root[ok], rank[ok])
    last_ones = ok & (rank == best[root])
    last = np.zeros(len(root), dtype=np.int64)
    last[root[last_ones]] = np.flatnonzero(last_ones)
    result: Ints = last[root]
    return result


# --- obstacles: the points a moving chain must respect ------------------------------------------------------


@dataclass
class _Obstacles:
    """Coverage vertices and footprint corners in one table (coverage vertices first, with their ids).

    ``on_chain`` marks the points that are boundary vertices now: no chain may sweep over them or pass
    through them. Footprint corners off every boundary are wrapped around; ``wedge`` holds each corner's two
    neighbours on every footprint ring it is on (rows from ``wedge_start``). T-junctions that slid are
    ``moved``: the main index knows them at their first place, a small second one at their current place.
    """

    xy: Floats
    tree: shapely.STRtree
    on_chain: Mask
    corner: Mask
    wedge_start: Ints
    wedge: Ints
    moved: Mask
    footprints: shapely.STRtree
    moved_tree: tuple[shapely.STRtree, Ints] | None = None

    def near(self, triangles: Geoms) -> tuple[Ints, Ints]:
        """(triangle, point) pairs of boundary vertices and footprint corners in each triangle's envelope."""
        query, point = self.tree.query(triangles)
        keep = ~self.moved[point]
        query, point = query[keep], point[keep]
        if self.moved_tree is not None:
            tree, ids = self.moved_tree
            extra_query, extra_point = tree.query(triangles)
            query, point = np.r_[query, extra_query], np.r_[point, ids[extra_point]]
        keep = self.on_chain[point] | self.corner[point]
        return query[keep], point[keep]

    def move(self, v: Ints, to: Floats) -> None:
        self.xy[v] = to
        self.moved[v] = True

    def refresh(self) -> None:
        """Index the moved T-junctions at their current place."""
        ids = np.flatnonzero(self.moved)
        self.moved_tree = (shapely.STRtree(shapely.points(self.xy[ids])), ids) if len(ids) else None


def _obstacles(rings: _Rings, net: _Network, footprints: Geoms) -> _Obstacles:
    """The obstacle table; pins the chain edges that touch a footprint and grows ``net``'s masks to it."""
    n = len(rings.xy)
    corners, before, after = _footprint_corners(footprints)
    first, ids = _unique_points(np.vstack([rings.xy, corners]))
    remap = np.full(len(first), -1, dtype=np.int64)
    remap[ids[:n]] = np.arange(n)  # a corner on a coverage vertex takes its id
    extra = np.flatnonzero(remap < 0)
    remap[extra] = n + np.arange(len(extra))
    xy = np.vstack([rings.xy, np.vstack([rings.xy, corners])[first[extra]]])
    corner_ids = remap[ids[n:]]
    order = np.argsort(corner_ids, kind="stable")
    wedge = np.column_stack([corner_ids[before], corner_ids[after]])[order]
    on_chain, corner = np.zeros(len(xy), dtype=bool), np.zeros(len(xy), dtype=bool)
    on_chain[:n], corner[corner_ids] = True, True
    net.extend(len(xy))
    footprint_tree = shapely.STRtree(footprints)
    net.pinned = _pinned(xy, net.chains, footprint_tree)
    return _Obstacles(
        xy=xy,
        tree=shapely.STRtree(shapely.points(xy)),
        on_chain=on_chain,
        corner=corner,
        wedge_start=np.searchsorted(corner_ids[order], np.arange(len(xy) + 1)),
        wedge=wedge,
        moved=np.zeros(len(xy), dtype=bool),
        footprints=footprint_tree,
    )


def _footprint_corners(footprints: Geoms) -> tuple[Floats, Ints, Ints]:
    """Corners of every footprint ring, with the index of each one's previous and next corner."""
    coords, ring = shapely.get_coordinates(shapely.get_rings(footprints), return_index=True)
    keep = ~_ends(ring)
    coords, ring = coords[keep], ring[keep]
    before, after = np.arange(len(ring)) - 1, np.arange(len(ring)) + 1
    first, last = _starts(ring), _ends(ring)
    before[first] = _ring_last(ring)[first]
    after[last] = _ring_first(ring)[last]
    return coords, before, after


def _pinned(xy: Floats, chains: _Chains, footprints: shapely.STRtree) -> Mask:
    """Ends of the chain edges that touch a footprint (or pass within :data:`TOUCH_M`): those edges never
    move, so no footprint edge ever crosses a moving chain edge."""
    pinned = np.zeros(len(xy), dtype=bool)
    start, stop = chains.edges()
    if len(start) and len(footprints.geometries):
        lines = shapely.linestrings(np.stack([xy[start], xy[stop]], axis=1))
        hit = footprints.query(lines, predicate="dwithin", distance=TOUCH_M)[0]
        pinned[start[hit]] = pinned[stop[hit]] = True
    return pinned


# --- pulling chains taut, round after round -----------------------------------------------------------------


@dataclass
class _Links:
    """The chains of one kind as linked vertices (a vertex inside a chain belongs to that chain alone)."""

    before: Ints
    after: Ints
    chain: Ints  # chain per inner vertex, -1 for every other vertex
    movable: Mask  # inner vertices that may move or go
    stuck: Mask  # bends that cannot be cut whatever else moves (until a neighbour moves)
    toward: Ints  # per T-junction, the next vertex on the micro-grid boundary that ends there

    @staticmethod
    def of(chains: _Chains, kind: int, net: _Network) -> _Links:
        n = len(net.anchor)
        before, after, owner = (np.full(n, -1, dtype=np.int64) for _ in range(3))
        chain_of = chains.chain_of()
        entries = np.flatnonzero(chains.inner() & (chains.kind[chain_of] == kind))
        inner = chains.vertices[entries]
        before[inner], after[inner] = chains.vertices[entries - 1], chains.vertices[entries + 1]
        owner[inner] = chain_of[entries]
        toward = np.full(n, -1, dtype=np.int64)
        micro = np.flatnonzero(chains.kind == _MICRO)
        for end, step in ((chains.start[micro], 1), (chains.start[micro + 1] - 1, -1)):
            tee = end[net.tee[chains.vertices[end]]]
            toward[chains.vertices[tee]] = chains.vertices[tee + step]
        movable = (owner >= 0) & ~net.pinned & (~net.tee | (toward >= 0))
        return _Links(before, after, owner, movable, np.zeros(n, dtype=bool), toward)

    def drop(self, gone: Ints) -> None:
        """Unlink ``gone`` (no two of them next to each other)."""
        a, b = self.before[gone], self.after[gone]
        self.after[a], self.before[b] = b, a  # a chain's first vertex gets an ``after`` no one reads
        self.chain[gone] = -1
        self.movable[gone] = False

    def replace(self, v: int, new: list[int], keep: bool) -> None:
        """Put ``new`` in the place of ``v`` (which is in ``new`` where ``keep``)."""
        for p, q in itertools.pairwise([int(self.before[v]), *new, int(self.after[v])]):
            self.after[p], self.before[q] = q, p
        self.chain[new] = self.chain[v]
        if not keep:
            self.chain[v] = -1
            self.movable[v] = False
        self.movable[new] = True
        self.stuck[new] = False

    def paths(self, chains: _Chains, kind: int) -> _Chains:
        """``chains`` with those of ``kind`` as linked now (ordered along each chain by pointer jumping)."""
        inner = np.flatnonzero(self.chain >= 0)
        index = np.full(len(self.chain), -1, dtype=np.int64)
        index[inner] = np.arange(len(inner))
        up = index[self.before[inner]]
        _, rank, _ = _jump(np.where(up >= 0, up, np.arange(len(inner))))
        linked = inner[np.lexsort((rank, self.chain[inner]))]
        mine = chains.kind == kind
        counts = np.diff(chains.start) - 2
        counts[mine] = np.bincount(self.chain[inner], minlength=len(chains))[mine]
        start = np.r_[0, np.cumsum(counts + 2)].astype(np.int64)
        vertices = np.empty(int(start[-1]), dtype=np.int64)
        vertices[start[:-1]] = chains.vertices[chains.start[:-1]]
        vertices[start[1:] - 1] = chains.vertices[chains.start[1:] - 1]
        chain_of = chains.chain_of()
        kept = np.flatnonzero(chains.inner() & ~mine[chain_of])
        vertices[kept - chains.start[chain_of[kept]] + start[chain_of[kept]]] = chains.vertices[kept]
        before_own = np.repeat(np.cumsum(counts[mine]) - counts[mine], counts[mine])
        vertices[start[self.chain[linked]] + 1 + np.arange(len(linked)) - before_own] = linked
        return _Chains(vertices, start, chains.kind)


def _pull(net: _Network, obstacles: _Obstacles, kind: int, scope: Mask) -> None:
    """Pull the chains of ``kind`` (of those in ``scope``) taut: cut bends round after round until none
    shortens its chain.

    Each round takes the bends smaller (by triangle area) than both neighbours, so no two are next to each
    other and the smallest go first, as in Visvalingam-Whyatt simplification. Bends of one round cannot get
    in each other's way: a bend is only cut when its triangle holds no boundary vertex, and then no other
    boundary, nor any other cut, reaches into it. Bends blocked by a boundary vertex are tried again once the
    rest has settled, as that vertex may have gone.
    """
    links = _Links.of(net.final, kind, net)
    active = links.movable & np.r_[scope, False][links.chain]
    while True:
        changes = 0
        while active.any():
            chosen = _smallest_bends(np.flatnonzero(active), links, obstacles.xy)
            active[chosen] = False
            touched = _cut_round(chosen, links, net, obstacles)
            changes += len(touched)
            active[touched] = links.movable[touched]
            links.stuck[touched] = False
        if changes == 0:
            break
        active = links.movable & ~links.stuck & np.r_[scope, False][links.chain]
    net.final = links.paths(net.final, kind)


def _smallest_bends(candidates: Ints, links: _Links, xy: Floats) -> Ints:
    """Candidates whose bend (triangle area) is smaller than both neighbours' (ties by vertex id)."""
    a, b = links.before[candidates], links.after[candidates]
    area = np.abs(_turns(xy[a], xy[candidates], xy[b]))
    key = np.full(len(xy), np.inf)
    key[candidates] = area
    beats_a = (area < key[a]) | ((area == key[a]) & (candidates < a))
    beats_b = (area < key[b]) | ((area == key[b]) & (candidates < b))
    chosen: Ints = candidates[beats_a & beats_b]
    return chosen


@dataclass(frozen=True)
class _Bends:
    """Bends (a, v, b) with the points in their closed triangles, corners left out, as (bend, point)
    pairs: ``on_side`` where the point lies on side a-v or v-b, ``on_base`` where on side a-b."""

    a: Ints
    v: Ints
    b: Ints
    turn: Floats  # twice the signed area
    query: Ints
    point: Ints
    on_side: Mask
    on_base: Mask

    @staticmethod
    def of(obstacles: _Obstacles, a: Ints, v: Ints, b: Ints) -> _Bends:
        xy = obstacles.xy
        pa, pv, pb = xy[a], xy[v], xy[b]
        turn = _turns(pa, pv, pb)
        query, point = obstacles.near(shapely.polygons(np.stack([pa, pv, pb, pa], axis=1)))
        keep = (point != a[query]) & (point != v[query]) & (point != b[query])
        query, point = query[keep], point[keep]
        sign, q = np.sign(turn[query]), xy[point]
        d1 = sign * _turns(pa[query], pv[query], q)
        d2 = sign * _turns(pv[query], pb[query], q)
        d3 = sign * _turns(pb[query], pa[query], q)
        inside = (d1 > -_AREA_EPS_M2) & (d2 > -_AREA_EPS_M2) & (d3 > -_AREA_EPS_M2)
        on_side = (d1[inside] <= _AREA_EPS_M2) | (d2[inside] <= _AREA_EPS_M2)
        return _Bends(a, v, b, turn, query[inside], point[inside], on_side, d3[inside] <= _AREA_EPS_M2)

    def count(self, weights: Mask | None = None) -> Ints:
        """Per bend, how many of its points (those of ``weights``) lie in its triangle."""
        counts: Ints = np.bincount(self.query, weights=weights, minlength=len(self.v)).astype(np.int64)
        return counts


def _cut_round(chosen: Ints, links: _Links, net: _Network, obstacles: _Obstacles) -> Ints:
    """Cut the chosen bends that can be cut; returns the vertices next to a change (to look at again).

    A bend whose triangle is empty loses its middle vertex; one with footprint corners in it wraps around
    them; a T-junction slides. A bend with a boundary vertex in it waits (that vertex may move), one with a
    footprint corner on its sides or reaching in at its middle vertex is stuck until a neighbour moves.
    """
    bends = _Bends.of(obstacles, links.before[chosen], chosen, links.after[chosen])
    points = bends.count()
    waiting = bends.count(obstacles.on_chain[bends.point]) > 0
    blocked = (bends.count(bends.on_side & ~obstacles.on_chain[bends.point]) > 0) | _wedge_blocks(
        obstacles, bends
    )
    flat = np.abs(bends.turn) <= _AREA_EPS_M2
    tee = net.tee[chosen]
    empty = ~tee & (flat | ((points == 0) & ~blocked))
    links.stuck[chosen[~empty & ~waiting & (blocked | (flat & tee))]] = True
    gone = chosen[empty]
    links.drop(gone)
    obstacles.on_chain[gone] = False
    wrap = ~empty & ~waiting & ~blocked & ~flat
    touched = [
        bends.a[empty],
        bends.b[empty],
        _wrap_few(np.flatnonzero(wrap & (points <= 1)), bends, links, obstacles),
    ]
    touched += [_wrap(i, bends, links, obstacles) for i in np.flatnonzero(wrap & (points > 1)).tolist()]
    obstacles.refresh()
    return np.concatenate(touched).astype(np.int64)


def _wedge_blocks(obstacles: _Obstacles, bends: _Bends) -> Mask:
    """Per bend: whether its middle vertex is a corner of a footprint that reaches into the triangle.

    The chain's edges at that corner lie outside the footprint, so the footprint reaches in exactly when one
    of its edges there points strictly into the triangle's angle, or when both run along the angle's sides
    (then the direction between them points in).
    """
    start, stop = obstacles.wedge_start[bends.v], obstacles.wedge_start[bends.v + 1]
    counts = stop - start
    bend = np.repeat(np.arange(len(bends.v)), counts)
    rows = (
        np.arange(int(counts.sum()))
        - np.repeat(np.cumsum(counts) - counts, counts)
        + np.repeat(start, counts)
    )
    xy = obstacles.xy
    pv, pa, pb, turn = xy[bends.v[bend]], xy[bends.a[bend]], xy[bends.b[bend]], bends.turn[bend]
    d1, d2 = xy[obstacles.wedge[rows, 0]] - pv, xy[obstacles.wedge[rows, 1]] - pv
    middle = d1 / np.maximum(_norm(d1), 1e-12)[:, None] + d2 / np.maximum(_norm(d2), 1e-12)[:, None]
    hit = np.zeros(len(bend), dtype=bool)
    for d in (d1, d2, middle):
        hit |= _within_angles(pv, pa, pb, pv + d, turn)
    blocked: Mask = np.bincount(bend[hit], minlength=len(bends.v)) > 0
    return blocked


def _wrap_few(idx: Ints, bends: _Bends, links: _Links, obstacles: _Obstacles) -> Ints:
    """Cut the bends ``idx``, each with at most one footprint corner in its triangle (most bends, so this is
    vectorised); returns the vertices next to a change."""
    xy = obstacles.xy
    a, v, b = bends.a[idx], bends.v[idx], bends.b[idx]
    corner = np.full(len(bends.v), -1, dtype=np.int64)
    corner[bends.query[~bends.on_base]] = bends.point[~bends.on_base]  # one on side a-b changes nothing
    corner = corner[idx]
    via = np.where(corner[:, None] >= 0, xy[np.maximum(corner, 0)], xy[b])
    tee = links.toward[v] >= 0
    pw = xy[np.maximum(links.toward[v], 0)]
    to, past_corner, slid = _slide_few((xy[a], xy[v], xy[b], bends.turn[idx]), via, pw)
    gain = _norm(xy[v] - xy[a]) + _norm(xy[b] - xy[v]) - _norm(via - xy[a]) - _norm(xy[b] - via)
    ok = (gain >= GAIN_MIN_M) & (~tee | slid)
    links.stuck[v[~ok]] = True
    drop = ok & ~tee & (corner < 0)
    links.drop(v[drop])
    obstacles.on_chain[v[drop]] = False
    obstacles.move(v[ok & tee], to[ok & tee])
    for i in np.flatnonzero(ok & (corner >= 0)).tolist():
        new = [int(corner[i])]
        if tee[i]:
            new = [*new, int(v[i])] if past_corner[i] else [int(v[i]), *new]
        else:
            obstacles.on_chain[v[i]] = False
        obstacles.on_chain[corner[i]] = True
        links.replace(int(v[i]), new, keep=bool(tee[i]))
    touched: Ints = np.concatenate([a[ok], b[ok], corner[ok & (corner >= 0)]])
    return touched


def _slide_few(
    bend: tuple[Floats, Floats, Floats, Floats], via: Floats, pw: Floats
) -> tuple[Floats, Mask, Mask]:
    """Where T-junctions go (rows): from ``pv`` along the line from their micro-grid neighbour ``pw``, into
    the bend's triangle, onto the path a-via-b (via = b for the straight path). Returns the place, whether
    it lies past ``via``, and whether the slide works (it must stay short of ``pw`` when going towards it)."""
    pa, pv, pb, turn = bend
    outward = _within_angles(pv, pa, pb, 2 * pv - pw, turn)
    inward = _within_angles(pv, pa, pb, pw, turn)
    direction = np.where(outward[:, None], pv - pw, pw - pv)
    first, second = _ray_hits(pv, direction, pa, via), _ray_hits(pv, direction, via, pb)
    t = np.minimum(first, second)
    works = (outward | inward) & (t < np.where(outward, np.inf, 1.0 - 1e-9))
    return pv + np.where(np.isfinite(t), t, 0.0)[:, None] * direction, second < first, works


def _wrap(i: int, bends: _Bends, links: _Links, obstacles: _Obstacles) -> Ints:
    """Cut bend ``i`` around the footprint corners in its triangle (sliding it if it is a T-junction);
    returns the vertices next to the change, none where it cannot be cut."""
    a, v, b, turn = int(bends.a[i]), int(bends.v[i]), int(bends.b[i]), float(bends.turn[i])
    xy = obstacles.xy
    hull = _hull(xy[a], xy[b], turn, bends.point[bends.query == i], xy)
    path = np.vstack([xy[a], xy[hull].reshape(-1, 2), xy[b]])
    target = xy[v]
    if links.toward[v] >= 0:
        slid = _slide(path, (xy[a], xy[v], xy[b], turn), xy[links.toward[v]])
        if slid is None:
            links.stuck[v] = True
            return np.zeros(0, dtype=np.int64)
        segment, target = slid
        hull = [*hull[:segment], v, *hull[segment:]]
    if (
        math.dist(xy[a], xy[v]) + math.dist(xy[v], xy[b]) - float(_norm(np.diff(path, axis=0)).sum())
        < GAIN_MIN_M
    ):
        links.stuck[v] = True
        return np.zeros(0, dtype=np.int64)
    if links.toward[v] >= 0:
        obstacles.move(np.array([v]), target[None, :])
    else:
        obstacles.on_chain[v] = False
    obstacles.on_chain[hull] = True
    links.replace(v, hull, keep=links.toward[v] >= 0)
    return np.array([a, b, *hull], dtype=np.int64)


def _hull(pa: Floats, pb: Floats, turn: float, inside: Ints, xy: Floats) -> list[int]:
    """The points of ``inside`` on the taut path from a to b around them: their hull on the bend's side."""
    axis = (pb - pa) / max(math.hypot(*(pb - pa)), 1e-12)
    rel = xy[inside] - pa
    order = inside[np.lexsort((np.abs(rel[:, 0] * axis[1] - rel[:, 1] * axis[0]), rel @ axis))]
    sign = 1.0 if turn > 0 else -1.0
    chain: list[int] = []
    points: list[Floats] = [pa]
    for index in [*order.tolist(), -1]:
        p = pb if index < 0 else xy[index]
        while len(points) >= 2 and sign * _cross(points[-2], points[-1], p) <= 0:
            points.pop()
            chain.pop()
        points.append(p)
        chain.append(index)
    return chain[:-1]


def _slide(path: Floats, bend: tuple[Floats, Floats, Floats, float], pw: Floats) -> tuple[int, Floats] | None:
    """Where a T-junction goes along the line from its micro-grid neighbour ``pw`` onto ``path`` (the
    segment it lands on, the place), as :func:`_slide_few` does for one corner or none; None where it
    cannot."""
    pa, pv, pb, turn = bend
    rows = len(path) - 1
    one = (np.tile(pa, (rows, 1)), np.tile(pv, (rows, 1)), np.tile(pb, (rows, 1)), np.full(rows, turn))
    to, _, works = _slide_one(one, path, np.tile(pw, (rows, 1)))
    if not works.any():
        return None
    return int(np.argmax(works)), to[int(np.argmax(works))]


def _slide_one(
    bend: tuple[Floats, Floats, Floats, Floats], path: Floats, pw: Floats
) -> tuple[Floats, Mask, Mask]:
    """Per segment of ``path`` (rows), where the T-junction lands on it, if it does so first."""
    pa, pv, pb, turn = bend
    outward = _within_angles(pv, pa, pb, 2 * pv - pw, turn)
    inward = _within_angles(pv, pa, pb, pw, turn)
    direction = np.where(outward[:, None], pv - pw, pw - pv)
    t = _ray_hits(pv, direction, path[:-1], path[1:])
    first = t == t.min()
    works = first & np.isfinite(t) & (outward | inward) & (t < np.where(outward, np.inf, 1.0 - 1e-9))
    return pv + np.where(np.isfinite(t), t, 0.0)[:, None] * direction, first, works


def _turns(pa: Floats, pv: Floats, pb: Floats) -> Floats:
    """Twice the signed area of each triangle (a, v, b); rows of points."""
    turns: Floats = (pv[:, 0] - pa[:, 0]) * (pb[:, 1] - pa[:, 1]) - (pv[:, 1] - pa[:, 1]) * (
        pb[:, 0] - pa[:, 0]
    )
    return turns


def _cross(o: Floats, p: Floats, q: Floats) -> float:
    return float((p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0]))


def _norm(d: Floats) -> Floats:
    norm: Floats = np.hypot(d[:, 0], d[:, 1])
    return norm


def _within_angles(pv: Floats, pa: Floats, pb: Floats, q: Floats, turn: Floats) -> Mask:
    """Per row: whether ``q`` lies strictly inside the angle at ``pv`` between the rays to ``pa``, ``pb``."""
    sign = np.sign(turn)
    inside: Mask = (sign * _turns(pv, q, pa) > 0) & (sign * _turns(pv, pb, q) > 0)
    return inside


def _ray_hits(origin: Floats, direction: Floats, start: Floats, stop: Floats) -> Floats:
    """Per row: the ray's parameter where it crosses segment start-stop strictly inside it, else inf."""
    edge, rel = stop - start, start - origin
    denom = direction[:, 0] * edge[:, 1] - direction[:, 1] * edge[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (rel[:, 0] * edge[:, 1] - rel[:, 1] * edge[:, 0]) / denom
        s = (rel[:, 0] * direction[:, 1] - rel[:, 1] * direction[:, 0]) / denom
    ok = (np.abs(denom) > 1e-12) & (t > 1e-9) & (s > 1e-6) & (s < 1 - 1e-6)
    hits: Floats = np.where(ok, t, np.inf)
    return hits


# --- moving junctions ---------------------------------------------------------------------------------------

#: Weiszfeld steps towards the point nearest a junction's neighbours (a few metres at most remain).
_MEDIAN_STEPS = 8
#: Fractions of the way to that point that are tried, the longest first.
_STEP_FRACTIONS = (1.0, 0.5, 0.25)
#: A moved junction keeps this far from its neighbours, so no two boundary vertices merge.
_NEIGHBOUR_GAP_M = 0.5


def _relocate_junctions(rings: _Rings, net: _Network, obstacles: _Obstacles) -> Ints:
    """Move the free junctions towards the point nearest their neighbours on the pulled chains; returns
    those that moved.

    A taut chain runs straight from its junction to its first vertex, so the junction's chains are shortest
    where the sum of the distances to those neighbours is least (their geometric median). A move sweeps the
    triangles (old place, new place, neighbour); it is taken only where they hold no boundary vertex or
    footprint corner, their new sides cross no boundary edge and they overlap no footprint, so the polygons
    still tile and every building keeps its side. Moves are checked against the boundaries as they were, so
    of two moves whose envelopes meet only the one that gains more goes.
    """
    junction, neighbour = _junction_ends(net)
    if len(junction) == 0:
        return junction
    xy = obstacles.xy
    group, row_group = np.unique(junction, return_inverse=True)
    start = xy[group]
    target = _median(start, xy[neighbour], row_group)
    nearby = _Nearby.of(obstacles, _Edges.of(rings, net, xy), (junction, neighbour, target[row_group]))
    place, gain = start.copy(), np.zeros(len(group))
    for fraction in _STEP_FRACTIONS:
        to = start + fraction * (target - start)
        tried = np.where(gain == 0, _move_gain(start, to, xy[neighbour], row_group), 0.0)
        wanted = tried[row_group] >= GAIN_MIN_M
        safe = nearby.safe(obstacles, (junction, neighbour, to[row_group]), wanted)
        bad = np.bincount(row_group, weights=~safe, minlength=len(group)) > 0
        bad |= ~_same_order(start, to, xy[neighbour], row_group)
        take = (tried >= GAIN_MIN_M) & ~bad
        place[take], gain[take] = to[take], tried[take]
    chosen = _without_conflicts(place, gain, xy[neighbour], row_group)
    obstacles.move(group[chosen], place[chosen])
    obstacles.refresh()
    moved: Ints = group[chosen]
    return moved


def _junction_ends(net: _Network) -> tuple[Ints, Ints]:
    """Per end of a pulled chain at a free junction that is not pinned: the junction and the vertex next to it."""
    chains = net.final
    first, last = chains.start[:-1], chains.start[1:] - 1
    ends = np.r_[chains.vertices[first], chains.vertices[last]]
    neighbours = np.r_[chains.vertices[first + 1], chains.vertices[last - 1]]
    keep = net.free[ends] & ~net.pinned[ends]
    return ends[keep], neighbours[keep]


def _median(start: Floats, points: Floats, group: Ints) -> Floats:
    """Per group, the point nearest in total distance to its ``points`` (Weiszfeld's iteration from ``start``)."""
    place = start
    for _ in range(_MEDIAN_STEPS):
        weight = 1.0 / np.maximum(_norm(points - place[group]), 1e-6)
        total = np.bincount(group, weights=weight, minlength=len(start))
        x = np.bincount(group, weights=weight * points[:, 0], minlength=len(start))
        y = np.bincount(group, weights=weight * points[:, 1], minlength=len(start))
        place = np.column_stack([x, y]) / total[:, None]
    return place


def _move_gain(start: Floats, to: Floats, points: Floats, group: Ints) -> Floats:
    """Per group, how much shorter the edges to its points get from ``start`` to ``to``; -inf where ``to``
    comes closer than :data:`_NEIGHBOUR_GAP_M` to one of them."""
    now, then = _norm(points - start[group]), _norm(points - to[group])
    n = len(start)
    gain: Floats = np.bincount(group, weights=now - then, minlength=n).astype(np.float64)
    gain[np.bincount(group, weights=then < _NEIGHBOUR_GAP_M, minlength=n) > 0] = -np.inf
    return gain


@dataclass(frozen=True)
class _Edges:
    """Every boundary edge now, the pulled chains' and the outlines' (between two outline vertices), indexed."""

    tree: shapely.STRtree
    start: Ints
    stop: Ints

    @staticmethod
    def of(rings: _Rings, net: _Network, xy: Floats) -> _Edges:
        start, stop = net.final.edges()
        a, b = rings.vid, rings.following()
        outline = net.outline[a] & net.outline[b]
        start, stop = np.r_[start, a[outline]], np.r_[stop, b[outline]]
        return _Edges(
            shapely.STRtree(shapely.linestrings(np.stack([xy[start], xy[stop]], axis=1))), start, stop
        )


@dataclass(frozen=True)
class _Nearby:
    """What may be in the way of the junction moves (rows: junction, neighbour, farthest place): as (row,
    item) pairs, the boundary vertices and footprint corners, the boundary edges (but the junction's own,
    which go) and the footprints in the envelope of the triangle that the move's edge sweeps. A shorter move
    sweeps part of that triangle, so one look-up serves every step tried."""

    point: tuple[Ints, Ints]
    edge: tuple[Ints, Ints]
    footprint: tuple[Ints, Ints]
    edges: _Edges

    @staticmethod
    def of(obstacles: _Obstacles, edges: _Edges, move: tuple[Ints, Ints, Floats]) -> _Nearby:
        junction, neighbour, to = move
        xy = obstacles.xy
        triangles = shapely.polygons(np.stack([xy[junction], to, xy[neighbour], xy[junction]], axis=1))
        row, point = obstacles.near(triangles)
        keep = (point != junction[row]) & (point != neighbour[row])
        row_e, edge = edges.tree.query(triangles)
        keep_e = (edges.start[edge] != junction[row_e]) & (edges.stop[edge] != junction[row_e])
        return _Nearby(
            (row[keep], point[keep]),
            (row_e[keep_e], edge[keep_e]),
            obstacles.footprints.query(triangles),
            edges,
        )

    def safe(self, obstacles: _Obstacles, move: tuple[Ints, Ints, Floats], wanted: Mask) -> Mask:
        """Per row (junction, neighbour, new place; rows not ``wanted`` count as unsafe): whether the
        triangle that the edge sweeps is free: no boundary vertex or footprint corner in it, no boundary
        edge across its new sides, no footprint overlapping it."""
        junction, neighbour, to = move
        xy = obstacles.xy
        pv, pn = xy[junction], xy[neighbour]
        row, point = self.point
        sign, q = np.sign(_turns(pv, to, pn))[row], xy[point]
        inside = (
            (sign * _turns(pv[row], to[row], q) > -_AREA_EPS_M2)
            & (sign * _turns(to[row], pn[row], q) > -_AREA_EPS_M2)
            & (sign * _turns(pn[row], pv[row], q) > -_AREA_EPS_M2)
        )
        bad = ~wanted | (np.bincount(row[inside], minlength=len(junction)) > 0)
        row, edge = self.edge
        ea, eb = xy[self.edges.start[edge]], xy[self.edges.stop[edge]]
        for a, b in ((pv[row], to[row]), (to[row], pn[row])):
            bad[row[_cross_properly(a, b, ea, eb)]] = True
        row, footprint = self.footprint
        look = ~bad[row]
        triangles = shapely.polygons(np.stack([pv, to, pn, pv], axis=1))
        geoms = obstacles.footprints.geometries[footprint[look]]
        bad[row[look][shapely.relate_pattern(triangles[row[look]], geoms, "2********")]] = True
        safe: Mask = ~bad
        return safe


def _cross_properly(a: Floats, b: Floats, c: Floats, d: Floats) -> Mask:
    """Per row: whether segments a-b and c-d cross at a point inside both."""
    cross: Mask = (np.sign(_turns(a, b, c)) * np.sign(_turns(a, b, d)) < 0) & (
        np.sign(_turns(c, d, a)) * np.sign(_turns(c, d, b)) < 0
    )
    return cross


def _same_order(start: Floats, to: Floats, points: Floats, group: Ints) -> Mask:
    """Per group: whether its points lie in the same cyclic order round ``to`` as round ``start`` (so the
    polygons between its edges keep their places)."""
    n, rows = len(start), np.arange(len(group))
    counts = np.bincount(group, minlength=n)
    offsets = np.cumsum(counts) - counts
    rank = []
    for origin in (start, to):
        d = points - origin[group]
        order = np.lexsort((np.arctan2(d[:, 1], d[:, 0]), group))
        position = np.empty_like(rows)
        position[order] = rows - offsets[group[order]]
        rank.append(position)
    shift = (rank[1] - rank[0]) % np.maximum(counts[group], 1)
    low, high = np.full(n, len(group)), np.full(n, -1)
    np.minimum.at(low, group, shift)
    np.maximum.at(high, group, shift)
    same: Mask = low >= high
    return same


def _without_conflicts(place: Floats, gain: Floats, points: Floats, group: Ints) -> Ints:
    """The moves (gain > 0) to take: by gain, each one whose envelope (old place, new place, neighbours)
    meets no envelope of a move taken before it."""
    n = len(place)
    low = np.column_stack([np.full(n, np.inf), np.full(n, np.inf)])
    high = -low
    np.minimum.at(low, group, points)
    np.maximum.at(high, group, points)
    low, high = np.minimum(low, place), np.maximum(high, place)
    moving = np.flatnonzero(gain > 0)
    boxes = shapely.box(low[moving, 0], low[moving, 1], high[moving, 0], high[moving, 1])
    first, second = shapely.STRtree(boxes).query(boxes)
    order = np.lexsort((second, first))
    first, second = first[order], second[order]
    blocked = np.zeros(len(moving), dtype=bool)
    partners = np.split(second, np.searchsorted(first, np.arange(1, len(moving))))
    for i in np.lexsort((moving, -gain[moving])).tolist():
        if not blocked[i]:
            blocked[partners[i]] = True
            blocked[i] = False
    return moving[~blocked]


# --- rebuilding the polygons --------------------------------------------------------------------------------


def _rebuild(rings: _Rings, net: _Network, obstacles: _Obstacles) -> tuple[Geoms, Mask]:
    """Polygons from the rings with each piece along a chain replaced by the chain as pulled, and which
    polygons changed.

    A ring is cut at its anchors into pieces. A piece that runs along a chain (known by its first edge)
    becomes the stretch of the pulled chain between the same two anchors; any other piece is its anchor.
    """
    xy = obstacles.xy
    at = np.flatnonzero(net.anchor[rings.vid])
    ring = rings.ring[at]
    later = np.r_[at[1:], 0]
    wrap = _ends(ring)
    later[wrap] = at[np.searchsorted(ring, ring[wrap])]  # a ring's last anchor closes onto its first
    chain, direction = _pieces(net, rings.vid[at], rings.following()[at], len(xy))
    base, step, length = _stretches(net, chain, direction, (rings.vid[at], rings.vid[later]), len(xy))
    pool = np.r_[net.final.vertices, np.arange(len(xy))]
    offsets = np.repeat(np.cumsum(length) - length, length)
    vertices = pool[
        np.repeat(base, length) + np.repeat(step, length) * (np.arange(int(length.sum())) - offsets)
    ]
    linear = shapely.linearrings(xy[vertices], indices=np.repeat(ring, length))
    along = chain >= 0
    touched = _changed_chains(net, obstacles.moved)[chain[along]]
    changed = np.bincount(rings.owner[ring[along]], weights=touched, minlength=rings.n_polys) > 0
    return _polygons(linear, rings.owner, rings.n_polys), changed


def _pieces(net: _Network, anchor: Ints, following: Ints, n: int) -> tuple[Ints, Ints]:
    """Per ring piece (its anchor and the vertex after it): the chain it runs along (-1 for none) and the
    direction (1 along the chain, -1 against it)."""
    old = net.chains
    chain_of = old.chain_of()
    at = np.flatnonzero(net.anchor[old.vertices])
    forward = at[~np.isin(at, old.start[1:] - 1)]
    backward = at[~np.isin(at, old.start[:-1])]
    keys = np.r_[
        old.vertices[forward] * n + old.vertices[forward + 1],
        old.vertices[backward] * n + old.vertices[backward - 1],
    ]
    chains = np.r_[chain_of[forward], chain_of[backward], -1]  # the last one: no chain
    directions = np.r_[np.ones(len(forward)), -np.ones(len(backward)), 1].astype(np.int64)
    found = _lookup(keys, anchor * n + following)
    return chains[found], directions[found]


def _lookup(keys: Ints, wanted: Ints) -> Ints:
    """Per wanted key, its index in ``keys`` (unique), or -1."""
    order = np.argsort(keys)
    at = np.minimum(np.searchsorted(keys[order], wanted), max(len(keys) - 1, 0))
    found: Ints = np.full(len(wanted), -1, dtype=np.int64)
    if len(keys):
        hit = keys[order][at] == wanted
        found[hit] = order[at[hit]]
    return found


def _stretches(
    net: _Network, chain: Ints, direction: Ints, anchors: tuple[Ints, Ints], n: int
) -> tuple[Ints, Ints, Ints]:
    """Per ring piece: where its vertices start in the pool (pulled chains, then every point), the step
    and how many (from its anchor up to, not including, the next anchor)."""
    start, stop = anchors
    new = net.final
    at = np.flatnonzero(net.anchor[new.vertices])
    keys = new.chain_of()[at] * n + new.vertices[at]
    order = np.argsort(keys)
    keys, positions = keys[order], at[order]
    along = chain >= 0
    first = positions[np.searchsorted(keys, chain[along] * n + start[along])]
    last = positions[np.searchsorted(keys, chain[along] * n + stop[along])]
    base = len(new.vertices) + start
    length = np.ones(len(chain), dtype=np.int64)
    base[along], length[along] = first, np.abs(last - first)
    return base, np.where(along, direction, 1), length


def _changed_chains(net: _Network, moved: Mask) -> Mask:
    """Per chain: whether pulling it changed its vertices or moved one of them."""
    old, new = net.chains, net.final
    changed: Mask = np.diff(old.start) != np.diff(new.start)
    old_chain = old.chain_of()
    same = np.flatnonzero(~changed[old_chain])
    differs = (
        old.vertices[same] != new.vertices[new.start[old_chain[same]] + same - old.start[old_chain[same]]]
    )
    changed |= np.bincount(old_chain[same], weights=differs, minlength=len(old)) > 0
    changed |= np.bincount(new.chain_of(), weights=moved[new.vertices], minlength=len(new)) > 0
    return changed


def _polygons(linear: Geoms, owner: Ints, n: int) -> Geoms:
    """Polygons from their rings (shell first, then holes, polygon after polygon)."""
    shell = _starts(owner)
    polys: Geoms = shapely.polygons(linear[shell])
    for p in np.unique(owner[~shell]).tolist():
        members = np.flatnonzero(owner == p)
        polys[p] = shapely.Polygon(linear[members[0]], list(linear[members[1:]]))
    return polys
