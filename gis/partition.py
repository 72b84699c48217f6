"""Cut a graph of household-weighted atoms into connected, compact parts inside a household range.

The solver works in three steps:

1. **Coarsen**: atoms of one compound (or one building) become one node when the whole fits the maximum,
   so compounds and buildings stay whole unless they must be split.
2. **Bisect**: the area is cut in two recursively, each cut a sweep along one of several directions that
   leaves both sides connected, each side's total feasible for its number of parts, and the shortest
   boundary (cheaper along roads). For grids, the preferred number of parts is cut in several styles
   (sweeps turned or reversed, elongated sides penalised) and the most compact result is kept.
3. **Refine**: boundary nodes move between neighbouring parts when that brings a part into range or shortens
   the boundaries, never disconnecting a part.

When the coarse graph leaves a part out of range, the solver retries on a finer graph (buildings, then
atoms) and keeps the better result. On the finer graphs cuts inside a compound cost more, and afterwards each
split compound that fits one part is moved wholly into one of its parts; where that leaves a part out of
range, whole compounds and buildings of the neighbouring parts move to make room. A part the search leaves
out of range is finally repaired by a chain of moves through its neighbours (an ejection chain).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from gis.graph import AtomGraph, components

Coarsening = Literal["group", "building", "atom"]
_LEVELS: tuple[Coarsening, ...] = ("group", "building", "atom")
_CANDIDATES_CHECKED = 24
_BALANCE_WEIGHT = 0.35
_ROAD_WEIGHT = 0.5
#: Cost factor of a cut between two buildings of one compound on the finer levels: cuts avoid compounds.
COMPOUND_CUT_FACTOR = 4.0


class Partitioner(Protocol):
    """Anything that cuts an atom graph into parts of ``low``..``high`` households (peers included)."""

    def partition(self, graph: AtomGraph, low: int, high: int) -> NDArray[np.int64]:
        """Return a part label 0..k-1 per atom."""
        ...


@dataclass(frozen=True)
class PartitionResult:
    """Labels per atom and the coarsening level the labels were found at."""

    labels: NDArray[np.int64]
    level: Coarsening


_Scored = tuple[tuple[float, ...], PartitionResult]


class CutStyle(NamedTuple):
    """One way of running the recursive bisection.

    Attributes:
        turn: sweep directions turned by this many sweep steps (0.5: halfway between the usual ones).
        shape_weight: weight of the sides' elongation in each cut's score (:func:`_shape_costs`).
        reverse: sweeps run the other way, so with an odd part count the side with fewer parts changes end.
    """

    turn: float = 0.0
    shape_weight: float = 0.0
    reverse: bool = False


#: Cut styles tried for the preferred number of grids, the most compact result kept; the first is the plain
#: bisection. Chosen on the Suzhou district (seeds 0-3) and the 50k demo; further turns or weights gained nothing.
CUT_STYLES: tuple[CutStyle, ...] = (
    CutStyle(),
    CutStyle(turn=0.5),
    CutStyle(shape_weight=5.0),
    CutStyle(turn=0.5, shape_weight=5.0),
    CutStyle(reverse=True),
)
#: Where a labelling was found: coarsening level, its coarse graph (node per atom and graph), part count.
_Setting = tuple[Coarsening, tuple[NDArray[np.int64], AtomGraph], int]


@dataclass(frozen=True)
class BalancedBisection:
    """SkyGrid's solver: coarsen, recursive connected bisection, boundary refinement.

    Args:
        angles: sweep directions tried per cut (spread over 180°).
        refine_passes: maximum refinement sweeps over the boundary nodes.
        seed: offsets the sweep directions; same seed, same result.
        keep_groups: start from compounds kept whole (grids); False starts from buildings (micro-grids).
        max_part_counts: how many numbers of parts to try per coarsening level, best first.
        cut_styles: how many of :data:`CUT_STYLES` to try for the chosen number of parts, keeping the most
            compact result (grids only: micro-grids keep the first, as their compactness is no target).
    """

    angles: int = 12
    refine_passes: int = 10
    seed: int = 0
    keep_groups: bool = True
    max_part_counts: int = 6
    cut_styles: int = len(CUT_STYLES)

    def partition(self, graph: AtomGraph, low: int, high: int) -> NDArray[np.int64]:
        """Return a part label per atom (see :meth:`solve`)."""
        return self.solve(graph, low, high).labels

    def solve(self, graph: AtomGraph, low: int, high: int) -> PartitionResult:
        """Cut ``graph`` into connected parts of ``low``..``high`` households where possible.

        Args:
            graph: a connected atom graph.
            low: minimum households per part.
            high: maximum households per part.

        Returns:
            The best labelling found and the coarsening level it used.
        """
        total = int(graph.weights.sum())
        if total <= high or len(graph) <= 1:
            return PartitionResult(np.zeros(len(graph), dtype=np.int64), "group")
        best = self._compact(graph, low, high, *self._search(graph, low, high))
        return best[1] if best[0][:2] == (0.0, 0.0) else self._repaired(graph, low, high, best)

    def _repaired(self, graph: AtomGraph, low: int, high: int, best: _Scored) -> PartitionResult:
        """The best result with parts still out of range repaired by chains of moves, where that helps."""
        score, result = best
        if score[0] > 0:
            return result
        labels = _dense(_refine_whole(graph, result.labels, low, high, self.refine_passes, chains=True))
        if _score(graph, labels, low, high, groups=self.keep_groups) < score:
            return PartitionResult(labels, result.level)
        return result

    def _search(self, graph: AtomGraph, low: int, high: int) -> tuple[_Scored, _Setting | None]:
        """The best labelling over coarsening levels and part counts, with its score, and where it was found
        when that was with the first cut style only (None when it was the preferred, styled part count)."""
        best: tuple[_Scored, _Setting | None] | None = None
        levels = _LEVELS if self.keep_groups else _LEVELS[1:]
        for level in levels:
            coarse = self._coarse(graph, level, high)
            styles = self._styles(level)
            for index, k in enumerate(
                part_counts(int(graph.weights.sum()), low, high)[: self.max_part_counts]
            ):
                labels = self._solve_at(graph, level, coarse, k, low, high, styles[: 1 if index else None])
                score = _score(graph, labels, low, high, groups=self.keep_groups)
                if best is None or score < best[0][0]:
                    best = ((score, PartitionResult(labels, level)), (level, coarse, k) if index else None)
                if best[0][0][:4] == (0.0, 0.0, 0.0, 0.0):
                    return best
            # In range on this level, but splitting compounds: the other part counts of this level were
            # tried for fewer splits; a finer level would only split more.
            if best is not None and best[0][0][:2] == (0.0, 0.0):
                return best
        assert best is not None
        return best

    def _styles(self, level: Coarsening) -> tuple[CutStyle, ...]:
        """Cut styles to try for the preferred part count on ``level`` (other part counts: the first only).

        The cut length the search ranks by is a weak guide to compactness, and where a sweep starts decides
        much of the shape, so grids try several :data:`CUT_STYLES` and keep the most compact. Doing so for
        the preferred part count only keeps the cost down (it is the one usually kept). Micro-grids, whose
        compactness is no target, and the atom level, whose graph is the largest (on the 50k demo the styles
        there cost 0.25 s for +0.006 mean Polsby-Popper), keep the first style.
        """
        return CUT_STYLES[: self.cut_styles] if self.keep_groups and level != "atom" else CUT_STYLES[:1]

    def _compact(
        self, graph: AtomGraph, low: int, high: int, best: _Scored, setting: _Setting | None
    ) -> _Scored:
        """The search's best, or the most compact of the other cut styles where that scores no worse.

        Applies where the search settled on a part count other than the preferred one, which it tried with
        the first cut style only.
        """
        if setting is None or len(self._styles(setting[0])) == 1:
            return best
        level, coarse, k = setting
        labels = self._solve_at(graph, level, coarse, k, low, high, self._styles(level)[1:])
        score = _score(graph, labels, low, high, groups=True)
        if (score[:4], -_mean_pp(graph, labels)) < (best[0][:4], -_mean_pp(graph, best[1].labels)):
            return score, PartitionResult(labels, level)
        return best

    def _coarse(self, graph: AtomGraph, level: Coarsening, high: int) -> tuple[NDArray[np.int64], AtomGraph]:
        """Coarse node per atom and the coarse graph of ``level`` (made once per level, used for every k)."""
        mapping = coarse_labels(graph, level, high)
        coarse = coarsen(graph, mapping)
        if self.keep_groups and level != "group":
            coarse = _guard_groups(coarse)
        return mapping, coarse

    def _solve_at(
        self,
        graph: AtomGraph,
        level: Coarsening,
        coarsened: tuple[NDArray[np.int64], AtomGraph],
        k: int,
        low: int,
        high: int,
        styles: tuple[CutStyle, ...],
    ) -> NDArray[np.int64]:
        """Labels for ``k`` parts cut on the ``coarsened`` graph, the most compact of the cut ``styles``."""
        mapping, coarse = coarsened
        best: tuple[tuple[tuple[float, ...], float], NDArray[np.int64]] | None = None
        for style in styles:
            directions = self._directions(style.turn) * (-1.0 if style.reverse else 1.0)
            cut = _bisect(coarse, k, low, high, directions, style.shape_weight)
            cut = _refine(coarse, cut, low, high, self.refine_passes)
            key = (_range_misses(coarse, cut, low, high), -_mean_pp(coarse, cut))
            if best is None or key < best[0]:
                best = (key, cut)
        assert best is not None
        labels = best[1][mapping]
        if self.keep_groups and level != "group":
            labels = _rejoin_groups(graph, labels, low, high, self.refine_passes)
        return _dense(labels)

    def _directions(self, turn: float = 0.0) -> NDArray[np.float64]:
        """Sweep directions spread over 180°, offset by the seed and turned by ``turn`` sweep steps."""
        offset = (self.seed * 0.61803398875) % 1.0 + turn
        theta = (np.arange(self.angles) + offset) * math.pi / self.angles
        return np.column_stack([np.cos(theta), np.sin(theta)])


def part_counts(total: int, low: int, high: int) -> list[int]:
    """Numbers of parts to try for ``total`` households, best first.

    Feasible counts (``k*low <= total <= k*high``) come first, those nearest the middle of the range first;
    when none is feasible the two neighbours of the gap are returned, the one nearer the range first.

    Example:
        >>> part_counts(4000, 300, 500)
        [10, 11, 9, 12, 13, 8]
        >>> part_counts(550, 300, 500)
        [2, 1]
    """
    if total <= high:
        return [1]
    k_min, k_max = math.ceil(total / high), total // low
    if k_min <= k_max:
        middle = (low + high) / 2
        return sorted(range(k_min, k_max + 1), key=lambda k: (abs(total / k - middle), k))
    options = [k_max, k_min] if k_max >= 1 else [k_min]
    return sorted(options, key=lambda k: _relative_violation(total / k, low, high))


def merge_arealess(graph: AtomGraph, labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """Labels with every part that has no cell area merged into the neighbouring part it shares most edges with.

    Atoms whose footprint got no cell of its own (floor ranges of one stairwell share a footprint) have no
    area; a part made of such atoms only would have no polygon. Labels come back renumbered 0..k-1.

    Example:
        >>> from gis.graph import AtomGraph
        >>> edges = np.array([[0, 1], [1, 2]])
        >>> graph = AtomGraph(np.ones(3, dtype=np.int64), np.zeros((3, 2)), np.array([1.0, 1.0, 0.0]),
        ...     np.ones(3), edges, np.ones(2), np.ones(2), np.full(3, -1), np.arange(3), np.zeros(3, dtype=bool))
        >>> merge_arealess(graph, np.array([0, 1, 2])).tolist()
        [0, 1, 1]
    """
    labels = labels.copy()
    while True:
        area = np.bincount(labels, weights=graph.area_m2)
        present = np.unique(labels)
        empty = present[area[present] <= 0]
        if len(empty) == 0 or len(empty) == len(present):
            return _dense(labels)
        a, b = labels[graph.edges[:, 0]], labels[graph.edges[:, 1]]
        part = int(empty[0])
        touching = np.r_[b[a == part], a[b == part]]
        touching = touching[touching != part]
        if len(touching) == 0:
            return _dense(labels)
        labels[labels == part] = np.bincount(touching).argmax()


def coarse_labels(graph: AtomGraph, level: Coarsening, high: int) -> NDArray[np.int64]:
    """Coarse node per atom: connected pieces of one compound/building whose households fit ``high``."""
    label = np.arange(len(graph), dtype=np.int64)
    keys = {"atom": [], "building": [graph.building], "group": [graph.building, graph.group]}[level]
    for key in keys:
        same = (key[graph.edges[:, 0]] == key[graph.edges[:, 1]]) & (key[graph.edges[:, 0]] >= 0)
        comp = components(len(graph), graph.edges[same]).astype(np.int64)
        fits = (np.bincount(comp, weights=graph.weights)[comp] <= high) & (key >= 0)
        label = np.where(fits, int(label.max()) + 1 + comp, label)  # ids of this pass after all earlier ones
    return _dense(label)


def coarsen(graph: AtomGraph, mapping: NDArray[np.int64]) -> AtomGraph:
    """Collapse atoms sharing a coarse label into one node (weights summed, edges merged)."""
    n = int(mapping.max()) + 1 if len(mapping) else 0
    area = np.bincount(mapping, weights=graph.area_m2, minlength=n)
    mass = np.where(graph.area_m2 > 0, graph.area_m2, 1e-6)
    xy = (
        np.column_stack([np.bincount(mapping, weights=graph.xy[:, i] * mass, minlength=n) for i in (0, 1)])
        / np.bincount(mapping, weights=mass, minlength=n)[:, None]
    )
    a, b = mapping[graph.edges[:, 0]], mapping[graph.edges[:, 1]]
    keep = a != b
    pair_key, inverse = np.unique((np.minimum(a, b) * n + np.maximum(a, b))[keep], return_inverse=True)
    unique = np.column_stack([pair_key // max(n, 1), pair_key % max(n, 1)])
    first = np.zeros(n, dtype=np.int64)
    first[mapping[::-1]] = np.arange(len(mapping))[::-1]
    return AtomGraph(
        np.bincount(mapping, weights=graph.weights, minlength=n).astype(np.int64),
        _f64(xy),
        _f64(area),
        _f64(np.bincount(mapping, weights=graph.boundary_m, minlength=n)),
        unique.reshape(-1, 2).astype(np.int64),
        _f64(np.bincount(inverse.ravel(), weights=graph.edge_length_m[keep], minlength=len(unique))),
        _f64(np.bincount(inverse.ravel(), weights=graph.edge_cost[keep], minlength=len(unique))),
        graph.group[first],
        graph.building[first],
        np.bincount(mapping, weights=graph.indivisible, minlength=n) > 0,
    )


def _guard_groups(graph: AtomGraph) -> AtomGraph:
    """The graph with cuts inside a compound made :data:`COMPOUND_CUT_FACTOR` times dearer."""
    group_a, group_b = graph.group[graph.edges[:, 0]], graph.group[graph.edges[:, 1]]
    inside = (group_a == group_b) & (group_a >= 0)
    return replace(graph, edge_cost=np.where(inside, graph.edge_cost * COMPOUND_CUT_FACTOR, graph.edge_cost))


def _rejoin_groups(
    graph: AtomGraph, labels: NDArray[np.int64], low: int, high: int, passes: int = 10
) -> NDArray[np.int64]:
    """Move each split compound (of at most ``high`` households) wholly into one of its parts.

    The part holding most of its households is tried first. A move that leaves a part out of range is
    repaired by moving whole compounds, whole buildings and the atoms of split ones between the compound's
    parts (:func:`_refine_whole`); the move is kept only when no part ends up disconnected or further out of
    range. Parts may be left empty (the caller renumbers them).
    """
    labels = labels.copy()
    member = np.flatnonzero(graph.group >= 0)
    for group in np.unique(graph.group[member]):
        atoms = member[graph.group[member] == group]
        if graph.weights[atoms].sum() <= high and len(np.unique(labels[atoms])) > 1:
            labels = _rejoin_group(graph, labels, atoms, (low, high), passes)
    return labels


def _rejoin_group(
    graph: AtomGraph,
    labels: NDArray[np.int64],
    atoms: NDArray[np.int64],
    limits: tuple[int, int],
    passes: int,
) -> NDArray[np.int64]:
    """``labels`` with the compound of ``atoms`` in one of its parts, or unchanged when none can take it."""
    parts = _neighbour_parts(graph, labels, np.unique(labels[atoms]))
    nodes = np.flatnonzero(np.isin(labels, parts))
    index = np.full(len(graph), -1, dtype=np.int64)
    index[nodes] = np.arange(len(nodes))
    joined = _join_compound(
        graph.subgraph(nodes), np.searchsorted(parts, labels[nodes]), index[atoms], limits, passes
    )
    if joined is None:
        return labels
    result = labels.copy()
    result[nodes] = parts[joined]
    return result


def _neighbour_parts(
    graph: AtomGraph, labels: NDArray[np.int64], parts: NDArray[np.int64]
) -> NDArray[np.int64]:
    """``parts`` and the parts next to them, sorted."""
    a, b = labels[graph.edges[:, 0]], labels[graph.edges[:, 1]]
    touching = np.isin(a, parts) | np.isin(b, parts)
    return np.unique(np.concatenate([parts, a[touching], b[touching]]))


def _join_compound(
    sub: AtomGraph, labels: NDArray[np.int64], atoms: NDArray[np.int64], limits: tuple[int, int], passes: int
) -> NDArray[np.int64] | None:
    """Labels of ``sub`` (the compound's parts and their neighbours) with ``atoms`` in one part, the most
    compact of the ways that work (summed Polsby-Popper of the parts); None where none works."""
    low, high = limits
    held = np.bincount(labels[atoms], weights=sub.weights[atoms])
    before = _health(sub, labels, low, high)
    best: tuple[float, NDArray[np.int64]] | None = None
    for target in np.flatnonzero(held):
        trial = labels.copy()
        trial[atoms] = target
        after = _health(sub, trial, low, high)
        if after[0] == 0 and after[1] > 0:
            trial = _refine_whole(sub, trial, low, high, passes, chains=True)
            after = _health(sub, trial, low, high)
        if all(a <= b for a, b in zip(after, before, strict=True)):
            compactness = _compactness(sub, trial)
            if best is None or compactness > best[0]:
                best = (compactness, trial)
    return None if best is None else best[1]


def _range_misses(graph: AtomGraph, labels: NDArray[np.int64], low: int, high: int) -> tuple[int, int]:
    """Parts out of range and their total households out of range (bisection and refinement keep the parts
    connected, so this is all :func:`_score` would tell apart before the compactness)."""
    weight = np.bincount(labels, weights=graph.weights)
    violation = np.maximum(0, np.maximum(low - weight, weight - high))
    return int((violation > 0).sum()), int(violation.sum())


def _mean_pp(graph: AtomGraph, labels: NDArray[np.int64]) -> float:
    """Mean Polsby-Popper of the parts (see :func:`_compactness`), empty label numbers left out."""
    return _compactness(graph, labels) / len(np.unique(labels))


def _compactness(graph: AtomGraph, labels: NDArray[np.int64]) -> float:
    """Summed Polsby-Popper of the parts, from the cells' areas and the parts' outlines."""
    area, perimeter = _part_outlines(graph, labels)
    return sum(_pp(a, p) for a, p in zip(area.tolist(), perimeter.tolist(), strict=True))


def _part_outlines(
    graph: AtomGraph, labels: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Area and perimeter of each part: its cells' areas, and their outline plus the edges it is cut along."""
    parts = int(labels.max()) + 1
    cut = labels[graph.edges[:, 0]] != labels[graph.edges[:, 1]]
    ends = labels[graph.edges[cut].ravel()]
    perimeter = np.bincount(labels, weights=graph.boundary_m, minlength=parts)
    perimeter += np.bincount(ends, weights=np.repeat(graph.edge_length_m[cut], 2), minlength=parts)
    return _f64(np.bincount(labels, weights=graph.area_m2, minlength=parts)), _f64(perimeter)


def _health(graph: AtomGraph, labels: NDArray[np.int64], low: int, high: int) -> tuple[int, int, int]:
    """Disconnected parts, parts out of range and total households out of range, empty parts left out."""
    weight = np.bincount(labels, weights=graph.weights)[np.unique(labels)]
    violation = np.maximum(0, np.maximum(low - weight, weight - high))
    return _disconnected_parts(graph, labels), int((violation > 0).sum()), int(violation.sum())


def _refine_whole(
    graph: AtomGraph, labels: NDArray[np.int64], low: int, high: int, passes: int, *, chains: bool = False
) -> NDArray[np.int64]:
    """:func:`_refine` on the graph whose nodes are the compounds and buildings lying whole in one part
    (split ones stay atoms), so the refinement moves them whole and splits none."""
    mapping = whole_nodes(graph, labels)
    node_labels = np.zeros(int(mapping.max()) + 1, dtype=np.int64)
    node_labels[mapping] = labels
    return _refine(coarsen(graph, mapping), node_labels, low, high, passes, chains=chains)[mapping]


def whole_nodes(graph: AtomGraph, labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """Node per atom: one node per building, then per compound, whose atoms are connected in one part.

    Example:
        >>> from gis.graph import AtomGraph
        >>> edges = np.array([[0, 1], [1, 2], [2, 3]])
        >>> graph = AtomGraph(np.ones(4, dtype=np.int64), np.zeros((4, 2)), np.ones(4), np.ones(4), edges,
        ...     np.ones(3), np.ones(3), np.array([0, 0, 0, -1]), np.arange(4), np.zeros(4, dtype=bool))
        >>> whole_nodes(graph, np.array([0, 0, 1, 1])).tolist()  # compound 0 is split: atoms stay apart
        [0, 1, 2, 3]
        >>> whole_nodes(graph, np.array([0, 0, 0, 1])).tolist()
        [0, 0, 0, 1]
    """
    node = np.arange(len(graph), dtype=np.int64)
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    for key in (graph.building, graph.group):
        keyed = key >= 0
        same = keyed[a] & (key[a] == key[b]) & (labels[a] == labels[b])
        comp = components(len(graph), graph.edges[same]).astype(np.int64)
        pairs = np.unique(np.column_stack([key[keyed], comp[keyed]]), axis=0)
        pieces = np.bincount(pairs[:, 0], minlength=int(key.max(initial=0)) + 1)
        whole = keyed & (pieces[np.maximum(key, 0)] == 1)
        node = np.where(whole, int(node.max(initial=0)) + 1 + comp, node)
    return _dense(node)


def _parts_connected(graph: AtomGraph, labels: NDArray[np.int64], parts: NDArray[np.int64]) -> bool:
    """Whether each of ``parts`` that still has atoms is one connected piece."""
    nodes = np.flatnonzero(np.isin(labels, parts))
    sub = graph.subgraph(nodes)
    sub_labels = labels[nodes]
    same = sub_labels[sub.edges[:, 0]] == sub_labels[sub.edges[:, 1]]
    comp = components(len(sub), sub.edges[same])
    return len(np.unique(comp)) == len(np.unique(sub_labels))


def _bisect(
    graph: AtomGraph, k: int, low: int, high: int, directions: NDArray[np.float64], shape_weight: float = 0.0
) -> NDArray[np.int64]:
    """Recursive bisection into ``k`` parts; returns a label per node. ``shape_weight`` weighs the
    sides' elongation in each cut's score (:func:`_shape_costs`)."""
    labels = np.zeros(len(graph), dtype=np.int64)
    queue: deque[tuple[NDArray[np.int64], int]] = deque([(np.arange(len(graph), dtype=np.int64), k)])
    next_label = 0
    while queue:
        nodes, parts = queue.popleft()
        if parts == 1 or len(nodes) == 1:
            labels[nodes] = next_label
            next_label += 1
            continue
        left, right = _best_cut(graph.subgraph(nodes), parts, low, high, (directions, shape_weight))
        queue.append((nodes[left], parts // 2))
        queue.append((nodes[right], parts - parts // 2))
    return labels


def _best_cut(
    graph: AtomGraph, parts: int, low: int, high: int, sweep: tuple[NDArray[np.float64], float]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The best sweep cut of a graph into a side for ``parts // 2`` parts and one for the rest; ``sweep``
    holds the sweep directions and the shape weight."""
    orders, scores = _sweep_scores(graph, parts, low, high, sweep)
    flat = np.argsort(scores, axis=None, kind="stable")[:_CANDIDATES_CHECKED]
    neighbours = _neighbour_csr(graph)
    sides = []
    for index in flat:
        direction, position = divmod(int(index), scores.shape[1])
        side = np.zeros(len(graph), dtype=bool)
        side[orders[direction, : position + 1]] = True
        if _connected(neighbours, side) and _connected(neighbours, ~side):
            return np.flatnonzero(side), np.flatnonzero(~side)
        sides.append(side)
    side = _repair_sides(graph, sides[0])
    return np.flatnonzero(side), np.flatnonzero(~side)


def _sweep_scores(
    graph: AtomGraph, parts: int, low: int, high: int, sweep: tuple[NDArray[np.float64], float]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Sweep orders (one row per direction) and the score of every prefix cut (lower is better)."""
    directions, shape_weight = sweep
    total, k1 = float(graph.weights.sum()), parts // 2
    target = total * k1 / parts
    first_low = max(k1 * low, total - (parts - k1) * high)
    first_high = min(k1 * high, total - (parts - k1) * low)
    scale_m = math.sqrt(max(float(graph.area_m2.sum()), 1.0) / parts)
    orders = np.argsort(graph.xy @ directions.T, axis=0, kind="stable").T
    prefix = np.cumsum(graph.weights[orders], axis=1)[:, :-1].astype(np.float64)
    violation = np.maximum(0.0, np.maximum(first_low - prefix, prefix - first_high)) / (total / parts)
    balance = np.abs(prefix - target) / (total / parts)
    cut = _cut_costs(graph, orders) / scale_m
    scores = 100.0 * violation + cut + _BALANCE_WEIGHT * balance
    if shape_weight:  # the shape term costs a quarter of the sweep; skipped while it weighs nothing
        scores = scores + shape_weight * _shape_costs(graph, orders, k1, parts - k1)
    return orders, scores


def _shape_costs(
    graph: AtomGraph, orders: NDArray[np.int64], k_left: int, k_right: int
) -> NDArray[np.float64]:
    """Non-compactness of both sides of each prefix cut: moment of inertia over that of a disc, minus one."""
    area = graph.area_m2[orders] + 1e-9
    xy = graph.xy - graph.xy.mean(axis=0)
    x, y = xy[orders, 0], xy[orders, 1]
    sums = [np.cumsum(v, axis=1) for v in (area, area * x, area * y, area * (x**2 + y**2))]
    left = _inertia_ratio(*(s[:, :-1] for s in sums))
    right = _inertia_ratio(*(s[:, -1:] - s[:, :-1] for s in sums))
    return (left * k_left + right * k_right) / (k_left + k_right)


def _inertia_ratio(
    area: NDArray[np.float64], mx: NDArray[np.float64], my: NDArray[np.float64], m2: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Second moment about the centroid divided by a disc's (A²/2π); 1 for a disc, larger when elongated."""
    area = np.maximum(area, 1e-9)
    inertia = np.maximum(m2 - (mx**2 + my**2) / area, 0.0)
    return np.maximum(inertia / (area**2 / (2 * math.pi)) - 1.0, 0.0)


def _cut_costs(graph: AtomGraph, orders: NDArray[np.int64]) -> NDArray[np.float64]:
    """Cost of the edges crossing each prefix cut of each order (rows), cut after position 0..n-2."""
    rows, n = orders.shape
    position = np.empty_like(orders)
    np.put_along_axis(position, orders, np.broadcast_to(np.arange(n), (rows, n)), axis=1)
    a, b = position[:, graph.edges[:, 0]], position[:, graph.edges[:, 1]]
    offset = (np.arange(rows) * (n + 1))[:, None]
    cost = np.broadcast_to(graph.edge_cost, a.shape).ravel()
    delta = np.bincount((np.minimum(a, b) + offset).ravel(), weights=cost, minlength=rows * (n + 1))
    delta -= np.bincount((np.maximum(a, b) + offset).ravel(), weights=cost, minlength=rows * (n + 1))
    return _f64(np.cumsum(delta.reshape(rows, n + 1), axis=1)[:, : n - 1])


_Csr = tuple[list[int], list[int]]


def _neighbour_csr(graph: AtomGraph) -> _Csr:
    """Neighbours of every node as CSR lists (``indices[indptr[v]:indptr[v + 1]]``), built without a loop."""
    ends = np.concatenate([graph.edges[:, 0], graph.edges[:, 1]])
    others = np.concatenate([graph.edges[:, 1], graph.edges[:, 0]])
    indptr = np.zeros(len(graph) + 1, dtype=np.int64)
    np.cumsum(np.bincount(ends, minlength=len(graph)), out=indptr[1:])
    return indptr.tolist(), others[np.argsort(ends, kind="stable")].tolist()


def _connected(neighbours: _Csr, mask: NDArray[np.bool_]) -> bool:
    """Whether the nodes of ``mask`` form one connected, non-empty piece (depth-first search)."""
    nodes = np.flatnonzero(mask)
    if len(nodes) <= 1:
        return len(nodes) == 1
    indptr, indices = neighbours
    inside = mask.tolist()
    seen = {int(nodes[0])}
    stack = [int(nodes[0])]
    while stack:
        node = stack.pop()
        for other in indices[indptr[node] : indptr[node + 1]]:
            if inside[other] and other not in seen:
                seen.add(other)
                stack.append(other)
    return len(seen) == len(nodes)


def _repair_sides(graph: AtomGraph, side: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Make both sides connected: the minor pieces of each side join the other side."""
    for flip in (False, True):
        mask = side ^ flip
        nodes = np.flatnonzero(mask)
        comp = graph.subgraph(nodes).components()
        if len(nodes) and comp.max() > 0:
            keep = np.argmax(np.bincount(comp, weights=graph.area_m2[nodes] + 1e-9))
            side[nodes[comp != keep]] = flip
    if side.all() or not side.any():
        side[:] = False
        side[0] = True
    return side


def _refine(
    graph: AtomGraph, labels: NDArray[np.int64], low: int, high: int, passes: int, *, chains: bool = False
) -> NDArray[np.int64]:
    """Move boundary nodes between neighbouring parts to fix ranges, then to raise compactness; with
    ``chains``, parts still out of range are then repaired by chains of moves (:func:`_repair_ranges`)."""
    state = _RefineState(graph, labels, low, high)
    for _ in range(passes):
        moved = 0
        for node in _boundary_nodes(graph, state.labels).tolist():
            target = state.best_move(node)
            if target is not None:
                state.move(node, target)
                moved += 1
        if moved == 0:
            break
    if chains and any(w < low or w > high for w in state.weight):
        _repair_ranges(state)
    return state.labels


#: Longest chain of parts :func:`_repair_ranges` passes households along, and candidates tried per link.
_CHAIN_DEPTH = 3
_CHAIN_TRIES = 4


def _repair_ranges(state: _RefineState) -> None:
    """Bring parts into range by chains of moves (an ejection chain), where single moves cannot.

    A part below the minimum takes a node from a neighbour; when that leaves the neighbour below the minimum,
    the neighbour takes one from another part, and so on up to :data:`_CHAIN_DEPTH` parts. A part above the
    maximum gives nodes away the same way. Chains that fail are undone, so no part ends further out of range
    and every part stays connected.
    """
    state.log.clear()
    for part in range(len(state.weight)):
        while state.weight[part] < state.low and _chain(state, part, _CHAIN_DEPTH, {part}, fill=True):
            pass
        while state.weight[part] > state.high and _chain(state, part, _CHAIN_DEPTH, {part}, fill=False):
            pass


def _chain(state: _RefineState, part: int, depth: int, chain: set[int], *, fill: bool) -> bool:
    """Move one node into (``fill``) or out of ``part``, then repair the other part in turn; False when no
    chain of at most ``depth`` parts works (nothing is changed then)."""
    for node, other in _chain_candidates(state, part, chain, fill=fill):
        mark = len(state.log)
        state.move(node, part if fill else other)
        if _settled(state, other, depth, chain | {other}, fill=fill):
            return True
        state.undo(mark)
    return False


def _settled(state: _RefineState, part: int, depth: int, chain: set[int], *, fill: bool) -> bool:
    """Whether ``part``, which just gave (``fill``) or took a node, is in range or repaired by a chain."""
    low, high = state.low, state.high
    while (state.weight[part] < low) if fill else (state.weight[part] > high):
        if depth <= 1 or not _chain(state, part, depth - 1, chain, fill=fill):
            return False
    return True


def _chain_candidates(
    state: _RefineState, part: int, chain: set[int], *, fill: bool
) -> list[tuple[int, int]]:
    """(node, other part) pairs for a chain link: nodes of a neighbour moving into ``part`` (``fill``) or nodes
    of ``part`` moving out, keeping ``part`` within the range's other end and the giving part connected; those
    closest to what ``part`` needs first."""
    weights, labels = state.node_weight, state.label_of
    need = state.low - state.weight[part] if fill else state.weight[part] - state.high
    found: dict[tuple[int, int], int] = {}
    for node in np.flatnonzero(state.labels == part).tolist():
        for other in state.neighbours[node]:
            owner = labels[other]
            if owner == part or owner in chain:
                continue
            giver = other if fill else node
            w = weights[giver]
            after = state.weight[part] + (w if fill else -w)
            if w > 0 and (after <= state.high if fill else after >= state.low):
                found[(giver, owner)] = abs(need - w)
    ranked = sorted(found, key=lambda pair: (found[pair], pair))
    connected = (pair for pair in ranked if _stays_connected(state.neighbours, labels, pair[0]))
    return list(itertools.islice(connected, _CHAIN_TRIES))


_Links = dict[int, tuple[float, float]]


class _RefineState:
    """Parts' households, areas and perimeters, kept in step as nodes move (private to ``_refine``).

    The per-node and per-part values live in Python lists: the moves are decided one node at a time, and
    list items are several times faster to read and update than numpy scalars. ``labels`` (an array, for the
    vectorised queries) and ``label_of`` (a list) are kept equal.
    """

    def __init__(self, graph: AtomGraph, labels: NDArray[np.int64], low: int, high: int) -> None:
        self.graph, self.low, self.high = graph, low, high
        self.labels = labels.copy()
        self.label_of: list[int] = labels.tolist()
        self.log: list[tuple[int, int]] = []
        self.neighbours = _adjacency(graph)
        self.node_weight: list[int] = graph.weights.tolist()
        self._node_area: list[float] = graph.area_m2.tolist()
        self._node_outline: list[float] = graph.boundary_m.tolist()
        parts = int(labels.max()) + 1
        self.weight: list[int] = (
            np.bincount(labels, weights=graph.weights, minlength=parts).astype(int).tolist()
        )
        area, perimeter = _part_outlines(graph, labels)
        self.area: list[float] = area.tolist()
        self.perimeter: list[float] = perimeter.tolist()
        self._moves = 0
        #: Per part, the number of moves made when it last changed.
        self._changed = [0] * parts
        #: Per node that last chose to stay: the number of moves made then and the parts it weighed.
        self._stays: dict[int, tuple[int, list[int]]] = {}

    def best_move(self, node: int) -> int | None:
        """The part ``node`` should move to: range first, then compactness (Polsby-Popper); None to stay.

        A node that chose to stay is not weighed again until its own or a neighbouring part changes: the
        choice depends on nothing else, so the answer would be the same.
        """
        stayed = self._stays.get(node)
        if stayed is not None and all(self._changed[part] <= stayed[0] for part in stayed[1]):
            return None
        home, links = self.label_of[node], self._links(node)
        total = sum(length for length, _ in links.values())
        inside, inside_cost = links.pop(home, (0.0, 0.0))
        best, best_gain = None, (0.0, 1e-9)
        for part, (length, cost) in links.items():
            range_gain = self._range_gain(node, home, part)
            if range_gain < best_gain[0]:
                continue  # the shape cannot make up for a worse range
            shape = self._shape_gain(node, home, part, inside, length, total)
            road = _ROAD_WEIGHT * (cost - inside_cost) / max(self.perimeter[home], 1.0)
            gain = (range_gain, shape + road)
            if gain > best_gain:
                best, best_gain = part, gain
        if best is None or not _stays_connected(self.neighbours, self.label_of, node):
            self._stays[node] = (self._moves, [home, *links])
            return None
        return best

    def move(self, node: int, target: int) -> None:
        """Move ``node`` to part ``target``, updating households, areas and perimeters."""
        self.log.append((node, self.label_of[node]))
        self._apply(node, target)

    def undo(self, mark: int) -> None:
        """Take back the moves made since the log had ``mark`` entries, latest first."""
        while len(self.log) > mark:
            node, home = self.log.pop()
            self._apply(node, home)

    def _apply(self, node: int, target: int) -> None:
        home, links = self.label_of[node], self._links(node)
        total = sum(length for length, _ in links.values())
        inside, to_target = links.get(home, (0.0, 0.0))[0], links.get(target, (0.0, 0.0))[0]
        outline = self._node_outline[node]
        self.perimeter[home] += 2 * inside - total - outline
        self.perimeter[target] += total - 2 * to_target + outline
        self.weight[home] -= self.node_weight[node]
        self.weight[target] += self.node_weight[node]
        self.area[home] -= self._node_area[node]
        self.area[target] += self._node_area[node]
        self.labels[node] = self.label_of[node] = target
        self._moves += 1
        self._changed[home] = self._changed[target] = self._moves

    def _links(self, node: int) -> _Links:
        links: _Links = {}
        label_of = self.label_of
        for other, (length, cost) in self.neighbours[node].items():
            part = label_of[other]
            old = links.get(part, (0.0, 0.0))
            links[part] = (old[0] + length, old[1] + cost)
        return links

    def _range_gain(self, node: int, home: int, part: int) -> float:
        w = self.node_weight[node]
        low, high = self.low, self.high
        before = _violation(self.weight[home], low, high) + _violation(self.weight[part], low, high)
        after = _violation(self.weight[home] - w, low, high) + _violation(self.weight[part] + w, low, high)
        return float(before - after)

    def _shape_gain(
        self, node: int, home: int, part: int, inside: float, to_part: float, total: float
    ) -> float:
        """Change of the two parts' summed Polsby-Popper if ``node`` moves from ``home`` to ``part``."""
        a, outline = self._node_area[node], self._node_outline[node]
        home_p = self.perimeter[home] + 2 * inside - total - outline
        part_p = self.perimeter[part] + total - 2 * to_part + outline
        before = _pp(self.area[home], self.perimeter[home]) + _pp(self.area[part], self.perimeter[part])
        return _pp(self.area[home] - a, home_p) + _pp(self.area[part] + a, part_p) - before


def _pp(area: float, perimeter: float) -> float:
    return 4 * math.pi * area / perimeter**2 if perimeter > 0 else 0.0


def _stays_connected(neighbours: list[_Links], labels: list[int], node: int) -> bool:
    """Whether ``node``'s part stays connected (and non-empty) without it."""
    home = labels[node]
    same = [other for other in neighbours[node] if labels[other] == home]
    if not same:
        return False
    if len(same) == 1:
        return True
    seen, stack, goal = {same[0]}, [same[0]], set(same)
    while stack and not goal <= seen:
        current = stack.pop()
        for other in neighbours[current]:
            if other != node and other not in seen and labels[other] == home:
                seen.add(other)
                stack.append(other)
    return goal <= seen


def _adjacency(graph: AtomGraph) -> list[_Links]:
    """Per node: neighbour → (shared length, cutting cost)."""
    neighbours: list[_Links] = [{} for _ in range(len(graph))]
    rows = zip(graph.edges.tolist(), graph.edge_length_m.tolist(), graph.edge_cost.tolist(), strict=True)
    for (a, b), length, cost in rows:
        for x, y in ((a, b), (b, a)):
            old = neighbours[x].get(y, (0.0, 0.0))
            neighbours[x][y] = (old[0] + length, old[1] + cost)
    return neighbours


def _boundary_nodes(graph: AtomGraph, labels: NDArray[np.int64]) -> NDArray[np.int64]:
    cut = labels[graph.edges[:, 0]] != labels[graph.edges[:, 1]]
    return np.unique(graph.edges[cut].ravel())


def _violation(households: int, low: int, high: int) -> int:
    return max(0, low - households, households - high)


def _relative_violation(households: float, low: int, high: int) -> float:
    return max(0.0, (low - households) / low, (households - high) / high)


def _score(
    graph: AtomGraph, labels: NDArray[np.int64], low: int, high: int, *, groups: bool = True
) -> tuple[float, ...]:
    """Lower is better: disconnected parts, parts out of range, total violation, compounds split that
    would fit one part (when ``groups``), boundary cost."""
    weight = np.bincount(labels, weights=graph.weights)
    violation = np.maximum(0, np.maximum(low - weight, weight - high))
    cut = labels[graph.edges[:, 0]] != labels[graph.edges[:, 1]]
    return (
        float(_disconnected_parts(graph, labels)),
        float((violation > 0).sum()),
        float(violation.sum()),
        float(_split_groups(graph, labels, high) if groups else 0),
        float(graph.edge_cost[cut].sum()),
    )


def _split_groups(graph: AtomGraph, labels: NDArray[np.int64], high: int) -> int:
    """Compounds of at most ``high`` households whose atoms carry more than one label."""
    member = graph.group >= 0
    if not member.any():
        return 0
    group, label = graph.group[member], labels[member]
    size = np.bincount(group, weights=graph.weights[member])
    pairs = np.unique(np.column_stack([group, label]), axis=0)
    labels_per_group = np.bincount(pairs[:, 0], minlength=len(size))
    return int(((labels_per_group > 1) & (size <= high)).sum())


def _disconnected_parts(graph: AtomGraph, labels: NDArray[np.int64]) -> int:
    same = labels[graph.edges[:, 0]] == labels[graph.edges[:, 1]]
    comp = components(len(graph), graph.edges[same])
    return int(len(np.unique(comp)) - len(np.unique(labels)))


def _f64(values: NDArray[np.generic]) -> NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64)


def _dense(labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """Relabel to 0..k-1 in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]
