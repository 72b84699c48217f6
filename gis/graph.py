"""Space-filling cells around building pieces and the adjacency graph the partitioner works on.

Each atom (a building, stairwell or floor range) gets one cell: the Voronoi cells of points spread over its
footprint, merged, clipped to its community. The cells tile the community, so any union of cells that is
connected in the graph is one polygon, and grids built from cells tile the community without gaps or overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gis.units import rank_within

#: Spacing of the points spread over a footprint to seed its cell, metres.
SEED_SPACING_M = 12.0
_MAX_SEEDS_PER_SIDE = 6
#: Shared boundary below which two cells are not neighbours (a corner touch), metres.
MIN_SHARED_M = 0.05
#: Cost factor of cutting between two cells separated by a road, river or wall: cuts prefer them.
ROAD_CUT_FACTOR = 0.25
_PRECISION_M = 0.001


@dataclass(frozen=True)
class AtomGraph:
    """Atoms of one area as a weighted graph with their cells.

    Attributes:
        weights: households per atom.
        xy: cell centroid per atom, metres.
        area_m2: cell area per atom.
        boundary_m: length of the cell's boundary shared with no other cell (the area's outline).
        edges: neighbour pairs (i < j), shape (m, 2).
        edge_length_m: shared boundary length per edge.
        edge_cost: cutting cost per edge (length, discounted across roads).
        group: compound index per atom, -1 when the atom's building has no compound.
        building: building index per atom.
        indivisible: True where an atom is above the micro-grid maximum and cannot be split.
    """

    weights: NDArray[np.int64]
    xy: NDArray[np.float64]
    area_m2: NDArray[np.float64]
    boundary_m: NDArray[np.float64]
    edges: NDArray[np.int64]
    edge_length_m: NDArray[np.float64]
    edge_cost: NDArray[np.float64]
    group: NDArray[np.int64]
    building: NDArray[np.int64]
    indivisible: NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = len(self.weights)
        for name in ("xy", "area_m2", "boundary_m", "group", "building", "indivisible"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"AtomGraph.{name} has {len(getattr(self, name))} rows, expected {n}")
        if self.edges.shape != (len(self.edge_length_m), 2) or len(self.edge_cost) != len(self.edge_length_m):
            raise ValueError(f"AtomGraph edges {self.edges.shape} do not match their lengths/costs")

    def __len__(self) -> int:
        return len(self.weights)

    def subgraph(self, nodes: NDArray[np.int64]) -> AtomGraph:
        """The graph induced by ``nodes`` (indices), renumbered 0..len(nodes)-1 in the given order."""
        index = np.full(len(self), -1, dtype=np.int64)
        index[nodes] = np.arange(len(nodes))
        a, b = index[self.edges[:, 0]], index[self.edges[:, 1]]
        keep = (a >= 0) & (b >= 0)
        return AtomGraph(
            self.weights[nodes],
            self.xy[nodes],
            self.area_m2[nodes],
            self.boundary_m[nodes],
            np.column_stack([a[keep], b[keep]]),
            self.edge_length_m[keep],
            self.edge_cost[keep],
            self.group[nodes],
            self.building[nodes],
            self.indivisible[nodes],
        )

    def components(self) -> NDArray[np.int32]:
        """Connected-component label per atom."""
        return components(len(self), self.edges)


def components(n: int, edges: NDArray[np.int64]) -> NDArray[np.int32]:
    """Connected-component labels of an undirected graph of ``n`` nodes, numbered by their lowest node.

    The solver asks this hundreds of times per community on small graphs, so the sparse matrix is built
    directly in CSR form (a counting sort of the edges): scipy's COO conversion costs more than the search.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    rows = edges[:, 0]
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    columns = edges[np.argsort(rows, kind="stable"), 1].astype(np.int32)
    matrix = csr_matrix((np.ones(len(edges)), columns, indptr), shape=(n, n))
    labels: NDArray[np.int32] = connected_components(matrix, directed=False)[1].astype(np.int32)
    return labels


def tessellate(footprints: NDArray[np.object_], area: shapely.Polygon) -> NDArray[np.object_]:
    """One cell per footprint, tiling ``area``.

    Args:
        footprints: atom footprints in metres.
        area: the polygon to tile (a community).

    Returns:
        Cells in footprint order; each is a Polygon (a footprint just outside ``area`` still gets the part of
        the area nearest to it), or empty where none of the area is nearest to the footprint.
    """
    if len(footprints) == 0:
        return np.empty(0, dtype=object)
    points, owner = _seed_points(footprints)
    extent = shapely.buffer(shapely.envelope(shapely.union(area, shapely.multipoints(points))), 10.0)
    if len(points) == 1:
        voronoi_cells = np.array([extent], dtype=object)
    else:
        voronoi = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=extent, ordered=True)
        voronoi_cells = shapely.get_parts(voronoi)
    cells = _merge_by_owner(voronoi_cells, owner, len(footprints))
    return _absorb_orphans(_carve(cells, footprints, area, (points, owner)), footprints)


def build_graph(
    cells: NDArray[np.object_],
    footprints: NDArray[np.object_],
    *,
    weights: NDArray[np.int64],
    group: NDArray[np.int64],
    building: NDArray[np.int64],
    indivisible: NDArray[np.bool_],
    barriers: NDArray[np.object_] | None = None,
) -> AtomGraph:
    """Neighbour graph of cells: an edge where two cells share a boundary, cheaper to cut across a barrier."""
    edges, length = _shared_edges(cells)
    xy = shapely.get_coordinates(shapely.centroid(np.where(shapely.is_empty(cells), footprints, cells)))
    cost = length * np.where(_crosses(xy, edges, barriers), ROAD_CUT_FACTOR, 1.0)
    shared = np.bincount(edges.ravel(), weights=np.repeat(length, 2), minlength=len(cells))
    outline = np.maximum(shapely.length(cells) - shared, 0.0)
    edges, length, cost = _link_isolated(xy, edges, length, cost, len(cells))
    area = shapely.area(cells)
    return AtomGraph(weights, xy, area, outline, edges, length, cost, group, building, indivisible)


def _seed_points(footprints: NDArray[np.object_]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """A lattice of points over each footprint's oriented rectangle, deduplicated; returns points and owners."""
    rect = shapely.oriented_envelope(footprints)
    ok = shapely.get_num_coordinates(rect) == 5
    corners = np.zeros((len(footprints), 3, 2))
    corners[ok] = shapely.get_coordinates(rect[ok]).reshape(-1, 5, 2)[:, :3]
    corners[~ok] = shapely.get_coordinates(shapely.centroid(footprints[~ok]))[:, None, :]
    side_a, side_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 1]
    na = np.clip(np.round(np.hypot(*side_a.T) / SEED_SPACING_M), 1, _MAX_SEEDS_PER_SIDE).astype(np.int64)
    nb = np.clip(np.round(np.hypot(*side_b.T) / SEED_SPACING_M), 1, _MAX_SEEDS_PER_SIDE).astype(np.int64)
    owner = np.repeat(np.arange(len(footprints)), na * nb)
    rank = rank_within(na * nb)
    i, j = rank % na[owner], rank // na[owner]
    points = (
        corners[owner, 0]
        + side_a[owner] * ((i + 0.5) / na[owner])[:, None]
        + side_b[owner] * ((j + 0.5) / nb[owner])[:, None]
    )
    inside = shapely.contains_xy(footprints[owner], points[:, 0], points[:, 1])
    surface = shapely.get_coordinates(shapely.point_on_surface(footprints))
    points = np.vstack([surface, points[inside]])
    owner = np.r_[np.arange(len(footprints)), owner[inside]]
    _, first = np.unique(np.round(points, 3), axis=0, return_index=True)
    first.sort()
    return points[first], owner[first]


def _carve(
    cells: NDArray[np.object_],
    footprints: NDArray[np.object_],
    area: shapely.Geometry,
    seeds: tuple[NDArray[np.float64], NDArray[np.int64]],
) -> NDArray[np.object_]:
    """Clip cells to ``area`` and give every footprint wholly to its own cell, as an exact coverage.

    Voronoi cells of seed points only approximate the footprints (a neighbour's seed can be nearer to a
    corner). The outlines of the area, the cells and the footprints that stray out of their cells are noded
    together on a millimetre grid and polygonised; each face goes to the stray footprint it lies in, else to
    the owner of the seed point nearest to it (``seeds``: points and their owners), which is the cell it lies
    in even where GEOS returns a broken Voronoi cell (it can, for cocircular seeds: one cell becomes the whole
    frame). Faces share their edges exactly, so the cells they make tile the area with no slivers.
    """
    shapely.prepare(cells)
    stray = np.flatnonzero(~shapely.covers(cells, footprints))  # the others need no outline of their own
    lines = np.concatenate(
        [[shapely.boundary(area)], shapely.boundary(cells), shapely.boundary(footprints[stray])]
    )
    noded = shapely.union_all(lines[~shapely.is_empty(lines)], grid_size=_PRECISION_M)
    faces = shapely.get_parts(shapely.polygonize([noded]))  # whole: splitting it first costs a quarter more
    probe = shapely.point_on_surface(faces)
    snapped = shapely.set_precision(area, _PRECISION_M)
    shapely.prepare(snapped)
    inside = shapely.contains_properly(snapped, probe)
    faces, probe = faces[inside], probe[inside]
    owner = np.full(len(faces), -1, dtype=np.int64)
    if len(stray):
        _first_containing(owner, probe, footprints[stray])
        owner[owner >= 0] = stray[owner[owner >= 0]]
    unset = np.flatnonzero(owner < 0)
    points, seed_owner = seeds
    owner[unset] = seed_owner[cKDTree(points).query(shapely.get_coordinates(probe[unset]))[1]]
    return _merge_by_owner(faces, owner, len(cells))


def _first_containing(
    owner: NDArray[np.int64], points: NDArray[np.object_], polygons: NDArray[np.object_]
) -> None:
    """Set ``owner`` (in place) where still -1 to the lowest index of a polygon containing the point."""
    point_index, polygon_index = shapely.STRtree(polygons).query(points, predicate="within")
    order = np.lexsort((polygon_index, point_index))
    point_index, polygon_index = point_index[order], polygon_index[order]
    first = np.r_[True, point_index[1:] != point_index[:-1]]
    point_index, polygon_index = point_index[first], polygon_index[first]
    unset = owner[point_index] < 0
    owner[point_index[unset]] = polygon_index[unset]


def _merge_by_owner(cells: NDArray[np.object_], owner: NDArray[np.int64], n: int) -> NDArray[np.object_]:
    """Union the Voronoi cells of each owner's seed points; owners without seeds get an empty cell."""
    merged = np.full(n, shapely.Polygon(), dtype=object)
    counts = np.bincount(owner, minlength=n)
    single = counts[owner] == 1
    merged[owner[single]] = cells[single]
    if single.all():
        return merged
    multi_owner, group = np.unique(owner[~single], return_inverse=True)
    merged[multi_owner] = coverage_union_by(cells[~single], group, len(multi_owner))
    return merged


def coverage_union_by(
    geoms: NDArray[np.object_], group: NDArray[np.int64], n_groups: int
) -> NDArray[np.object_]:
    """Union of the geometries of each group 0..n_groups-1, which must form a coverage (share edges exactly).

    A few ``coverage_union_all`` calls over tables with a row per group (geometries in their given order,
    padded with None) replace thousands of per-group calls that cost more in Python than the unions do.
    Groups go into one table per power-of-two size class, so one big group cannot blow up the padding: the
    tables hold at most twice as many cells as there are geometries. A group without geometries is empty.

    Example:
        >>> boxes = np.array([shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6), shapely.box(1, 0, 2, 1)])
        >>> [g.area for g in coverage_union_by(boxes, np.array([0, 1, 0]), 2)]
        [2.0, 1.0]
    """
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=n_groups)
    rank, ordered_group, ordered = rank_within(counts), group[order], geoms[order]
    size_class = np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64)
    merged = np.full(n_groups, shapely.GeometryCollection(), dtype=object)
    for size in np.unique(size_class[counts > 0]).tolist():
        rows = np.flatnonzero((size_class == size) & (counts > 0))
        row_of = np.full(n_groups, -1, dtype=np.int64)
        row_of[rows] = np.arange(len(rows))
        member = row_of[ordered_group] >= 0
        table = np.full((len(rows), int(counts[rows].max())), None, dtype=object)
        table[row_of[ordered_group[member]], rank[member]] = ordered[member]
        merged[rows] = shapely.coverage_union_all(table, axis=1)
    return merged


def _absorb_orphans(cells: NDArray[np.object_], footprints: NDArray[np.object_]) -> NDArray[np.object_]:
    """Keep each cell's part that holds its footprint; give the other parts to the neighbour they touch most."""
    result = cells.copy()
    orphans: list[shapely.Geometry] = []
    for i in np.flatnonzero(shapely.get_num_geometries(cells) > 1):
        parts = shapely.get_parts(cells[i])
        parts = parts[shapely.area(parts) > 0]
        keep = int(
            np.argmax(shapely.area(shapely.intersection(parts, footprints[i])) + 1e-9 * shapely.area(parts))
        )
        result[i] = parts[keep]
        orphans.extend(np.delete(parts, keep))
    pending = sorted(orphans, key=lambda p: -shapely.area(p))
    while pending:
        left = [part for part in pending if not _give_to_neighbour(result, part)]
        if len(left) == len(pending):
            raise RuntimeError(f"{len(left)} cell parts touch no cell; the tessellation would leave gaps")
        pending = left
    return result


def _give_to_neighbour(cells: NDArray[np.object_], part: shapely.Geometry) -> bool:
    """Merge ``part`` into a neighbour cell (in place): the one sharing most boundary that stays one polygon.

    Returns False when the part touches no cell yet (its neighbours are orphans still to be placed). No area
    is ever dropped: when no neighbour gives a single polygon, the part joins the neighbour sharing the most
    boundary anyway (validation then reports that cell's grid as not connected).
    """
    near = shapely.STRtree(cells).query(part, predicate="intersects")
    if len(near) == 0:
        return False
    near = near[np.argsort(-shapely.length(shapely.intersection(cells[near], part)), kind="stable")]
    for target in near:
        merged = _drop_slivers(shapely.set_precision(shapely.union(cells[target], part), _PRECISION_M))
        if shapely.get_num_geometries(merged) == 1:
            cells[target] = merged
            return True
    cells[near[0]] = shapely.union(cells[near[0]], part)
    return True


def _drop_slivers(geom: shapely.Geometry, min_area_m2: float = 0.01) -> shapely.Geometry:
    parts = shapely.get_parts(geom)
    if len(parts) <= 1:
        return geom
    big = parts[shapely.area(parts) > min_area_m2]
    return big[0] if len(big) == 1 else geom


def _shared_edges(cells: NDArray[np.object_]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Pairs of cells sharing more than :data:`MIN_SHARED_M` of boundary, with the shared length.

    Cells are snapped to a common precision, so two neighbours share identical boundary segments: matching
    segments is exact and fast. Where that leaves the cells in more pieces than geometry says (a vertex on
    one side only), the geometric intersection is used instead.
    """
    edges, length = _matching_segments(cells)
    if len(cells) > 1 and _touch_across(cells, components(len(cells), edges)):
        return _geometric_edges(cells)
    return edges, length


def _touch_across(cells: NDArray[np.object_], piece: NDArray[np.int32]) -> bool:
    """Whether two cells of different ``piece`` (components of the matched edges) touch.

    Only pairs whose boxes overlap across pieces are tested exactly; the matched edges usually join all
    cells into one piece, so usually none is.
    """
    left, right = shapely.STRtree(cells).query(cells)
    across = piece[left] != piece[right]
    return bool(shapely.intersects(cells[left[across]], cells[right[across]]).any())


def _matching_segments(cells: NDArray[np.object_]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    rings = shapely.get_rings(cells, return_index=True)
    coords, ring = shapely.get_coordinates(rings[0], return_index=True)
    owner = rings[1][ring]
    same_ring = ring[1:] == ring[:-1]
    start, stop, who = coords[:-1][same_ring], coords[1:][same_ring], owner[:-1][same_ring]
    key = np.round(np.concatenate([np.minimum(start, stop), np.maximum(start, stop)], axis=1) * 1000)
    lengths = np.hypot(*(stop - start).T)
    seg_id = row_ids(key.astype(np.int64))
    order = np.lexsort((who, seg_id))
    seg, own, seg_len = seg_id[order], who[order], lengths[order]
    pair = (seg[1:] == seg[:-1]) & (own[1:] != own[:-1])
    a, b = own[:-1][pair], own[1:][pair]
    pair_key, inverse = np.unique(np.minimum(a, b) * len(cells) + np.maximum(a, b), return_inverse=True)
    unique = np.column_stack([pair_key // len(cells), pair_key % len(cells)])
    total = np.bincount(inverse, weights=seg_len[:-1][pair], minlength=len(unique))
    keep = total > MIN_SHARED_M
    return unique[keep].reshape(-1, 2).astype(np.int64), np.asarray(total[keep], dtype=np.float64)


def row_ids(rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """Rank of each row among the distinct rows in lexicographic order: ``np.unique(rows, axis=0)``'s inverse,
    found with one integer lexsort (several times faster than ``unique`` on rows).

    Example:
        >>> row_ids(np.array([[2, 0], [1, 5], [2, 0], [1, 4]])).tolist()
        [2, 1, 2, 0]
    """
    ids = np.zeros(len(rows), dtype=np.int64)
    if len(rows) == 0:
        return ids
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    ids[order] = np.cumsum(np.r_[False, (ordered[1:] != ordered[:-1]).any(axis=1)])
    return ids


def _touching(cells: NDArray[np.object_]) -> NDArray[np.int64]:
    left, right = shapely.STRtree(cells).query(cells, predicate="intersects")
    keep = left < right
    return np.column_stack([left[keep], right[keep]]).astype(np.int64)


def _geometric_edges(cells: NDArray[np.object_]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    pairs = _touching(cells)
    left, right = pairs[:, 0], pairs[:, 1]
    length = shapely.length(
        shapely.intersection(shapely.boundary(cells[left]), shapely.boundary(cells[right]))
    )
    touch = length > MIN_SHARED_M
    return pairs[touch], length[touch]


def _crosses(
    xy: NDArray[np.float64], edges: NDArray[np.int64], barriers: NDArray[np.object_] | None
) -> NDArray[np.bool_]:
    """Whether the segment between two cells' centroids crosses a barrier (road, river, wall)."""
    crossing = np.zeros(len(edges), dtype=bool)
    if barriers is None or len(barriers) == 0 or len(edges) == 0:
        return crossing
    segments = shapely.linestrings(np.stack([xy[edges[:, 0]], xy[edges[:, 1]]], axis=1))
    # Barriers are the district's; only their parts near these segments can cross them, and the query
    # prepares every barrier it is given, so they are clipped to the segments' extent first. The segments lie
    # at least a metre inside the clipping box, so nothing clipping does on the box's border can matter.
    low, high = xy.min(axis=0) - 1.0, xy.max(axis=0) + 1.0
    near = shapely.clip_by_rect(barriers, low[0], low[1], high[0], high[1])
    _, hit = shapely.STRtree(segments).query(near[~shapely.is_empty(near)], predicate="intersects")
    crossing[hit] = True
    return crossing


def _link_isolated(
    xy: NDArray[np.float64],
    edges: NDArray[np.int64],
    length: NDArray[np.float64],
    cost: NDArray[np.float64],
    n: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Tie atoms without a cell (footprint outside the area) to their nearest atom with a zero-length edge."""
    lonely = np.setdiff1d(np.arange(n), edges.ravel())
    if n < 2 or len(lonely) == 0:
        return edges, length, cost
    others = np.setdiff1d(np.arange(n), lonely) if len(lonely) < n else np.arange(n)
    extra = []
    for i in lonely:
        candidates = others[others != i]
        j = int(candidates[np.argmin(np.hypot(*(xy[candidates] - xy[i]).T))])
        extra.append((min(i, j), max(i, j)))
    added = np.asarray(extra, dtype=np.int64)
    zeros = np.zeros(len(added))
    return np.vstack([edges, added]), np.r_[length, zeros], np.r_[cost, zeros]
