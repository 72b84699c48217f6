"""Peer partitioners for the gridding benchmark: PySAL max-p, METIS and GerryChain's recursive tree partition.

Each peer implements the :class:`gis.partition.Partitioner` protocol on an :class:`gis.graph.AtomGraph`, so it
plugs into :func:`gis.gridder.make_plan` in place of SkyGrid's solver and gets the same atoms, the same cells
and the same metrics. Peers see atoms only (buildings, stairwells, floor ranges), not the compound grouping.

Every peer returns a dense label 0..k-1 for every atom, and one part for a graph of one atom or of at most
``high`` households. Peers are set up the way their own documentation suggests for a balanced, contiguous
partition; where a library cannot meet the range it is not helped beyond that (this is a comparison).
"""

from __future__ import annotations

import random
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from gis.graph import AtomGraph

Labels = NDArray[np.int64]


def part_count(total: int, low: int, high: int) -> int:
    """Number of parts a peer is asked for: total households over the middle of the range, at least 1."""
    return max(1, round(total / ((low + high) / 2)))


def dense(labels: NDArray[np.integer[Any]]) -> Labels:
    """Relabel to 0..k-1 in order of first appearance (peers may leave label numbers unused)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    result: Labels = rank[inverse.ravel()]
    return result


def one_part(graph: AtomGraph) -> Labels:
    """Every atom in part 0."""
    return np.zeros(len(graph), dtype=np.int64)


def trivial(graph: AtomGraph, high: int) -> bool:
    """Whether the graph is one part whatever the solver: at most one atom or ``high`` households."""
    return len(graph) <= 1 or int(graph.weights.sum()) <= high


def by_component(graph: AtomGraph, solve: Callable[[AtomGraph], Labels]) -> Labels:
    """Apply ``solve(subgraph) -> labels`` to each connected piece of ``graph`` and join the labels.

    Peers that need a connected graph (spanning trees, contiguous regions) get one piece at a time; a grid of
    a peer can be in several pieces, and its micro-grids are then cut piece by piece.
    """
    pieces = graph.components()
    if len(graph) == 0 or pieces.max() == 0:
        return dense(solve(graph))
    labels = np.zeros(len(graph), dtype=np.int64)
    offset = 0
    for piece in range(int(pieces.max()) + 1):
        nodes = np.flatnonzero(pieces == piece).astype(np.int64)
        sub = dense(solve(graph.subgraph(nodes)))
        labels[nodes] = sub + offset
        offset += int(sub.max()) + 1
    return labels


class CallTimeoutError(Exception):
    """A peer's single call ran past its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CallTimeoutError` in the block after ``seconds`` (main thread on POSIX only; else no limit)."""
    if (
        seconds <= 0
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CallTimeoutError(f"call ran past {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class PeerStats:
    """Counters a peer keeps across calls (reported by the benchmark)."""

    calls: int = 0
    failures: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class MaxPPeer:
    """PySAL spopt max-p regions (``MaxPHeuristic``): as many contiguous regions as possible of ≥ ``low``.

    Max-p has no upper bound; it maximises the number of regions whose households reach the threshold and
    then minimises within-region dissimilarity of the attributes, here the cell centroids (so regions are
    spatially compact). Its simulated-annealing phase can run for many minutes on a graph of a few dozen
    atoms, so each call is cut off after ``call_limit_s`` and then counts as a failure (one part). It needs a GeoDataFrame and a libpysal ``W``: the frame holds one point per atom and
    the ``W`` is built straight from the graph's edges.

    Args:
        top_n: candidate regions considered per enclave assignment.
        max_iterations_construction: construction-phase restarts.
        max_iterations_sa: simulated-annealing runs per constructed solution.
        seed: seeds numpy's global generator, which spopt uses.
        call_limit_s: seconds one call may take (0: no limit).
    """

    top_n: int = 2
    max_iterations_construction: int = 3
    max_iterations_sa: int = 1
    seed: int = 0
    call_limit_s: float = 30.0
    stats: PeerStats = field(default_factory=PeerStats)

    name = "maxp"

    def partition(self, graph: AtomGraph, low: int, high: int) -> Labels:
        """Return a part label per atom."""
        self.stats.calls += 1
        if trivial(graph, high) or int(graph.weights.sum()) < 2 * low:
            return one_part(graph)
        return by_component(graph, lambda sub: self._solve(sub, low, high))

    def _solve(self, graph: AtomGraph, low: int, high: int) -> Labels:
        if trivial(graph, high) or int(graph.weights.sum()) < 2 * low:
            return one_part(graph)
        import geopandas as gpd
        import libpysal
        from spopt.region import MaxPHeuristic

        neighbours: dict[int, list[int]] = {i: [] for i in range(len(graph))}
        for a, b in graph.edges.tolist():
            neighbours[a].append(b)
            neighbours[b].append(a)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = libpysal.weights.W(neighbours, silence_warnings=True)
            frame = gpd.GeoDataFrame(
                {"x": graph.xy[:, 0], "y": graph.xy[:, 1], "hh": graph.weights.astype(np.float64)},
                geometry=gpd.points_from_xy(graph.xy[:, 0], graph.xy[:, 1]),
            )
            np.random.seed(self.seed)
            model = MaxPHeuristic(
                frame,
                w,
                ["x", "y"],
                "hh",
                low,
                top_n=self.top_n,
                max_iterations_construction=self.max_iterations_construction,
                max_iterations_sa=self.max_iterations_sa,
            )
            try:
                with time_limit(self.call_limit_s):
                    model.solve()
            except Exception as error:
                self.stats.failures += 1
                if len(self.stats.notes) < 20:
                    self.stats.notes.append(f"{type(error).__name__} ({len(graph)} atoms): {error}"[:200])
                return one_part(graph)
        labels = getattr(model, "labels_", None)
        if labels is None:
            self.stats.failures += 1
            return one_part(graph)
        return dense(np.asarray(labels, dtype=np.int64))


@dataclass
class MetisPeer:
    """METIS k-way partitioning (pymetis) with household vertex weights and boundary-length edge weights.

    Asks for ``k = round(total / mid-range)`` parts with a load imbalance of ``ufactor`` thousandths (250:
    parts up to 25 % above the mean), and for contiguous parts where the graph is connected.

    Args:
        ufactor: allowed imbalance in 1/1000 of the mean part weight.
        contiguous: ask METIS for contiguous parts (only honoured on a connected graph).
        seed: METIS random seed.
    """

    ufactor: int = 250
    contiguous: bool = True
    seed: int = 0
    stats: PeerStats = field(default_factory=PeerStats)

    name = "metis"

    def partition(self, graph: AtomGraph, low: int, high: int) -> Labels:
        """Return a part label per atom."""
        self.stats.calls += 1
        if trivial(graph, high):
            return one_part(graph)
        import pymetis

        n = len(graph)
        k = min(part_count(int(graph.weights.sum()), low, high), n)
        if k <= 1:
            return one_part(graph)
        xadj, adjncy, eweights = _csr(graph)
        # METIS accepts zero vertex weights; weights are households as they are.
        vweights = graph.weights.astype(np.int64)
        connected = int(graph.components().max()) == 0
        options = pymetis.Options(ufactor=self.ufactor, seed=self.seed)
        try:
            _, parts = pymetis.part_graph(
                k,
                xadj=xadj.tolist(),
                adjncy=adjncy.tolist(),
                vweights=vweights.tolist(),
                eweights=eweights.tolist(),
                recursive=False,
                contiguous=self.contiguous and connected,
                options=options,
            )
        except Exception as error:
            self.stats.failures += 1
            if len(self.stats.notes) < 20:
                self.stats.notes.append(f"{type(error).__name__}: {error}"[:200])
            return one_part(graph)
        return dense(np.asarray(parts, dtype=np.int64))


def _csr(graph: AtomGraph) -> tuple[Labels, Labels, Labels]:
    """Symmetric CSR adjacency of the graph with shared boundary lengths as integer weights ≥ 1."""
    n = len(graph)
    src = np.concatenate([graph.edges[:, 0], graph.edges[:, 1]])
    dst = np.concatenate([graph.edges[:, 1], graph.edges[:, 0]])
    weight = np.maximum(np.rint(np.concatenate([graph.edge_length_m, graph.edge_length_m])), 1).astype(
        np.int64
    )
    order = np.lexsort((dst, src))
    xadj = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]).astype(np.int64)
    return xadj, dst[order].astype(np.int64), weight[order]


@dataclass
class GerryChainPeer:
    """GerryChain's ``recursive_tree_part``: random spanning trees cut into parts within ±``epsilon``.

    Asks for ``k = round(total / mid-range)`` parts of ``total / k`` households each. When it cannot balance
    a graph it raises; the peer then returns one part and counts a failure.

    Args:
        epsilon: allowed relative deviation from the target households per part.
        max_attempts: spanning trees tried per cut before giving up (GerryChain's default is 100,000,
            which can take hours on a graph that has no balanced cut).
        seed: seed of GerryChain's random generator, restarted on every call.
    """

    epsilon: float = 0.25
    max_attempts: int = 2000
    seed: int = 0
    stats: PeerStats = field(default_factory=PeerStats)

    name = "gerrychain"

    def partition(self, graph: AtomGraph, low: int, high: int) -> Labels:
        """Return a part label per atom."""
        self.stats.calls += 1
        if trivial(graph, high):
            return one_part(graph)
        return by_component(graph, lambda sub: self._solve(sub, low, high))

    def _solve(self, graph: AtomGraph, low: int, high: int) -> Labels:
        total = int(graph.weights.sum())
        k = min(part_count(total, low, high), len(graph))
        if trivial(graph, high) or k <= 1:
            return one_part(graph)
        import networkx as nx
        from gerrychain import Graph
        from gerrychain.partition import recursive_tree_part
        from gerrychain.tree import bipartition_tree

        nx_graph: Any = nx.Graph()
        nx_graph.add_nodes_from((i, {"hh": int(h)}) for i, h in enumerate(graph.weights.tolist()))
        nx_graph.add_edges_from(graph.edges.tolist())
        cut = partial(bipartition_tree, max_attempts=self.max_attempts, warn_attempts=10 * self.max_attempts)
        random.seed(self.seed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assignment = recursive_tree_part(
                    Graph.from_networkx(nx_graph),
                    range(k),
                    pop_target=total / k,
                    pop_col="hh",
                    epsilon=self.epsilon,
                    bipartition_tree_fn=cut,
                    rng=self.seed,
                )
        except Exception as error:
            self.stats.failures += 1
            if len(self.stats.notes) < 20:
                self.stats.notes.append(f"{type(error).__name__}: {error}"[:200])
            return one_part(graph)
        labels = np.full(len(graph), -1, dtype=np.int64)
        for node, part in assignment.items():
            labels[cast(int, node)] = cast(int, part)
        if (labels < 0).any():
            self.stats.failures += 1
            return one_part(graph)
        return dense(labels)


PEERS: dict[str, type[MaxPPeer] | type[MetisPeer] | type[GerryChainPeer]] = {
    "maxp": MaxPPeer,
    "metis": MetisPeer,
    "gerrychain": GerryChainPeer,
}
