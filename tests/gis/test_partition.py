"""Tests of :mod:`gis.partition` on lattice graphs of unit-square cells with random household weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from gis.graph import AtomGraph, components
from gis.partition import (
    BalancedBisection,
    _bisect,
    _connected,
    _mean_pp,
    _neighbour_csr,
    _refine,
    _RefineState,
    _rejoin_groups,
    coarse_labels,
    coarsen,
    merge_arealess,
    part_counts,
    whole_nodes,
)

GRID = (300, 500)
MICRO = (50, 80)


def lattice(
    rows: int, cols: int, weights: NDArray[np.int64], group: NDArray[np.int64] | None = None, high: int = 500
) -> AtomGraph:
    """AtomGraph of a rows x cols grid of 1 m squares, 4-neighbour edges, one building per cell."""
    n = rows * cols
    index = np.arange(n).reshape(rows, cols)
    edges = np.vstack(
        [
            np.column_stack([index[:, :-1].ravel(), index[:, 1:].ravel()]),
            np.column_stack([index[:-1].ravel(), index[1:].ravel()]),
        ]
    ).astype(np.int64)
    r, c = np.divmod(np.arange(n), cols)
    outline = (r == 0).astype(float) + (r == rows - 1) + (c == 0) + (c == cols - 1)
    return AtomGraph(
        weights=np.asarray(weights, dtype=np.int64),
        xy=np.column_stack([c + 0.5, r + 0.5]).astype(np.float64),
        area_m2=np.ones(n),
        boundary_m=outline,
        edges=edges,
        edge_length_m=np.ones(len(edges)),
        edge_cost=np.ones(len(edges)),
        group=np.full(n, -1, dtype=np.int64) if group is None else group,
        building=np.arange(n, dtype=np.int64),
        indivisible=np.asarray(weights) > high,
    )


def random_lattice(rows: int, cols: int, seed: int, top: int = 30, high: int = 500) -> AtomGraph:
    weights = np.random.default_rng(seed).integers(1, top + 1, rows * cols).astype(np.int64)
    return lattice(rows, cols, weights, high=high)


def parts_connected(graph: AtomGraph, labels: NDArray[np.int64]) -> bool:
    return all(
        components(len(sub), sub.edges).max() == 0
        for sub in (graph.subgraph(np.flatnonzero(labels == p)) for p in range(int(labels.max()) + 1))
    )


def feasible(total: int, low: int, high: int) -> bool:
    return any(k * low <= total <= k * high for k in range(1, total // low + 1))


# ------------------------------------------------------------------------------------------------ part_counts


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (0, [1]),
        (250, [1]),  # below the minimum: one part, nothing to cut
        (500, [1]),
        (501, [1, 2]),  # infeasible: 1 x 501 is 0.2% over, 2 x 250.5 is 16.5% under
        (550, [2, 1]),  # docstring example: 2 x 275 is 8.3% under, 1 x 550 is 10% over
        (600, [2]),  # 2 x 300: the only feasible count
        (1000, [3, 2]),  # 3 x 333 is nearest 400, then 2 x 500
        (4000, [10, 11, 9, 12, 13, 8]),  # 400, then 364 (36 off the middle 400), 444 (44 off), ...
    ],
)
def test_part_counts_table(total: int, expected: list[int]) -> None:
    assert part_counts(total, *GRID) == expected


@pytest.mark.parametrize("total", range(501, 3001, 37))
def test_part_counts_feasible_first_and_bounded(total: int) -> None:
    low, high = GRID
    counts = part_counts(total, low, high)
    assert len(counts) >= 1
    assert len(set(counts)) == len(counts)
    ok = [k for k in counts if k * low <= total <= k * high]
    if feasible(total, low, high):
        assert ok == counts  # only feasible counts, and all of them
        assert sorted(counts) == [k for k in range(1, total // low + 1) if k * low <= total <= k * high]
        middle = (low + high) / 2
        best = min(range(1, total // low + 1), key=lambda k: (abs(total / k - middle), k))
        assert counts[0] == best
    else:
        assert ok == []
        assert sorted(counts) == [total // low, total // low + 1]  # the two neighbours of the gap


# ---------------------------------------------------------------------------------------------- solve: basics


def test_solve_small_total_is_one_part() -> None:
    graph = random_lattice(4, 4, seed=1, top=20)  # at most 320 households
    total = int(graph.weights.sum())
    assert total <= GRID[1]
    result = BalancedBisection().solve(graph, *GRID)
    assert result.labels.tolist() == [0] * len(graph)


@pytest.mark.parametrize(
    ("rows", "cols", "seed"), [(8, 10, 0), (10, 10, 1), (12, 15, 2), (5, 20, 3), (15, 15, 4)]
)
def test_solve_lattice_parts_connected_in_range_and_dense(rows: int, cols: int, seed: int) -> None:
    graph = random_lattice(rows, cols, seed)
    low, high = GRID
    total = int(graph.weights.sum())
    assert feasible(total, low, high)
    labels = BalancedBisection(seed=seed).solve(graph, low, high).labels
    k = int(labels.max()) + 1
    assert sorted(set(labels.tolist())) == list(range(k))
    assert k in part_counts(total, low, high)
    assert parts_connected(graph, labels)
    sums = np.bincount(labels, weights=graph.weights)
    assert sums.sum() == total
    assert sums.min() >= low and sums.max() <= high, sums


def test_solve_is_deterministic_for_a_seed() -> None:
    graph = random_lattice(12, 12, seed=7)
    first = BalancedBisection(seed=3).solve(graph, *GRID)
    second = BalancedBisection(seed=3).solve(graph, *GRID)
    assert first.level == second.level
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(BalancedBisection(seed=3).partition(graph, *GRID), first.labels)


@pytest.mark.parametrize(
    ("rows", "cols", "seed"), [(8, 10, 0), (10, 10, 1), (12, 15, 2), (15, 15, 4), (20, 8, 6), (4, 40, 7)]
)
def test_cut_styles_keep_the_range_and_never_lose_compactness(rows: int, cols: int, seed: int) -> None:
    graph = random_lattice(rows, cols, seed)
    low, high = GRID
    first = BalancedBisection(seed=seed, cut_styles=1).solve(graph, low, high).labels
    styled = BalancedBisection(seed=seed).solve(graph, low, high).labels
    sums = np.bincount(styled, weights=graph.weights)
    assert sums.min() >= low and sums.max() <= high, sums
    assert parts_connected(graph, styled)
    assert _mean_pp(graph, styled) >= _mean_pp(graph, first)


@pytest.mark.parametrize(("rows", "cols", "seed"), [(8, 10, 0), (20, 8, 6)])
def test_cut_styles_find_more_compact_grids(rows: int, cols: int, seed: int) -> None:
    graph = random_lattice(rows, cols, seed)
    first = BalancedBisection(seed=seed, cut_styles=1).solve(graph, *GRID).labels
    styled = BalancedBisection(seed=seed).solve(graph, *GRID).labels
    assert _mean_pp(graph, styled) > _mean_pp(graph, first) + 0.01


def test_cut_styles_leave_micro_grids_alone() -> None:
    graph = random_lattice(10, 10, seed=5, top=20, high=80)
    default = BalancedBisection(keep_groups=False).solve(graph, *MICRO).labels
    single = BalancedBisection(keep_groups=False, cut_styles=1).solve(graph, *MICRO).labels
    assert np.array_equal(default, single)


def test_reversed_sweeps_put_the_smaller_side_at_the_other_end() -> None:
    """With an odd part count the side with fewer parts lies where the sweep starts; reversed sweeps (a cut
    style of their own) start from the other end."""
    graph = lattice(1, 12, np.ones(12, dtype=np.int64))
    east = np.array([[1.0, 0.0]])
    forward = _bisect(graph, 3, 1, 10**6, east)
    backward = _bisect(graph, 3, 1, 10**6, -east)
    assert forward.tolist()[:4] == [0] * 4 and 0 not in forward.tolist()[4:]
    assert backward.tolist()[-4:] == [0] * 4 and 0 not in backward.tolist()[:-4]


def test_half_step_turn_lies_between_the_sweep_directions() -> None:
    solver = BalancedBisection(angles=4)  # a sweep step of 45°
    cosines = np.sum(solver._directions() * solver._directions(0.5), axis=1)
    assert np.allclose(np.degrees(np.arccos(cosines)), 22.5)


def test_solve_micro_range_keeps_parts_connected() -> None:
    graph = random_lattice(10, 10, seed=5, top=20, high=80)
    low, high = MICRO
    labels = BalancedBisection(keep_groups=False).solve(graph, low, high).labels
    assert parts_connected(graph, labels)
    assert int(labels.max()) + 1 in part_counts(int(graph.weights.sum()), low, high)
    sums = np.bincount(labels, weights=graph.weights)
    assert (sums >= low).mean() >= 0.9 and (sums <= high).mean() >= 0.9


def test_atom_heavier_than_high_is_its_own_out_of_range_part() -> None:
    weights = np.random.default_rng(11).integers(1, 31, 8 * 8).astype(np.int64)
    weights[27] = 900  # one tower block above the grid maximum
    graph = lattice(8, 8, weights)
    low, high = GRID
    labels = BalancedBisection().solve(graph, low, high).labels
    assert parts_connected(graph, labels)
    sums = np.bincount(labels, weights=graph.weights)
    assert sums.sum() == weights.sum()
    heavy_part = labels[27]
    assert sums[heavy_part] > high
    others = np.delete(sums, heavy_part)
    assert len(others) >= 1


# ------------------------------------------------------------------------------------------- compound groups


def _blocks(rows: int, cols: int, size: int) -> NDArray[np.int64]:
    r, c = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    blocks: NDArray[np.int64] = (r // size) * (cols // size) + c // size
    return blocks


@pytest.mark.parametrize(
    ("block_rows", "block_cols", "seed"), [(1, 4, 0), (2, 2, 1), (2, 3, 2), (3, 3, 3), (2, 4, 4)]
)
def test_solve_keeps_compounds_whole_when_feasible(block_rows: int, block_cols: int, seed: int) -> None:
    """4 x 4-atom compounds of 240–480 households: each fits a grid, so whole compounds are a solution."""
    size = 4
    rows, cols = block_rows * size, block_cols * size
    weights = np.random.default_rng(seed).integers(15, 31, rows * cols).astype(np.int64)
    group = _blocks(rows, cols, size)
    graph = lattice(rows, cols, weights, group=group)
    result = BalancedBisection(seed=seed).solve(graph, *GRID)
    assert result.level == "group"
    for g in range(int(group.max()) + 1):
        assert len(set(result.labels[group == g].tolist())) == 1, f"compound {g} split"
    assert parts_connected(graph, result.labels)
    sums = np.bincount(result.labels, weights=weights)
    assert sums.min() >= GRID[0] and sums.max() <= GRID[1]


def test_solve_keeps_ten_whole_compounds_of_310() -> None:
    """Ten compounds of 310 households: ten grids of one compound each are all in range (300–500)."""
    rows, cols = 2, 20
    group = _blocks(rows, cols, 2)  # ten 2 x 2 blocks in a row
    weights = np.where(np.arange(rows * cols) % 2 == 0, 77, 78).astype(np.int64)
    graph = lattice(rows, cols, weights, group=group)
    assert np.bincount(group, weights=weights).tolist() == [310.0] * 10
    labels = BalancedBisection().solve(graph, *GRID).labels
    for g in range(10):
        assert len(set(labels[group == g].tolist())) == 1, f"compound {g} split"


def test_compound_above_high_is_split() -> None:
    rows, cols = 4, 8
    weights = np.full(rows * cols, 25, dtype=np.int64)  # 800 households in all
    group = np.zeros(rows * cols, dtype=np.int64)  # one compound of 800 > 500
    graph = lattice(rows, cols, weights, group=group)
    labels = BalancedBisection().solve(graph, *GRID).labels
    assert int(labels.max()) + 1 == 2
    assert parts_connected(graph, labels)
    assert np.bincount(labels, weights=weights).tolist() == [400.0, 400.0]


def test_coarsen_merges_groups_that_fit() -> None:
    rows, cols = 2, 4
    weights = np.full(rows * cols, 100, dtype=np.int64)
    group = np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)  # two 2 x 2 blocks of 400
    graph = lattice(rows, cols, weights, group=group)
    mapping = coarse_labels(graph, "group", 500)
    assert mapping.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    coarse = coarsen(graph, mapping)
    assert coarse.weights.tolist() == [400, 400]
    assert coarse.edges.tolist() == [[0, 1]]
    assert coarse.edge_length_m.tolist() == [2.0]  # two unit edges between the blocks
    assert coarse_labels(graph, "group", 399).tolist() == list(range(8))  # too big: left as atoms
    assert coarse_labels(graph, "atom", 500).tolist() == list(range(8))


# ---------------------------------------------------------------------------------------------- property test


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    micro=st.booleans(),
)
def test_solve_property_connected_counted_conserved(rows: int, cols: int, seed: int, micro: bool) -> None:
    low, high = MICRO if micro else GRID
    weights = np.random.default_rng(seed).integers(0, 31, rows * cols).astype(np.int64)
    graph = lattice(rows, cols, weights, high=high)
    labels = BalancedBisection(seed=seed % 7, keep_groups=not micro).solve(graph, low, high).labels
    total = int(weights.sum())
    assert len(labels) == len(graph)
    k = int(labels.max()) + 1
    assert sorted(set(labels.tolist())) == list(range(k))
    assert parts_connected(graph, labels)
    assert k in part_counts(total, low, high)
    assert int(np.bincount(labels, weights=weights).sum()) == total


def _two_halves_with_compound(first_col: int, last_col: int) -> tuple[AtomGraph, NDArray[np.int64]]:
    """2 x 10 lattice of 40 households per cell, cut into columns 0-4 and 5-9; one compound over the given
    columns straddles the cut."""
    cols = np.tile(np.arange(10), 2)
    group = np.where((cols >= first_col) & (cols <= last_col), 0, -1).astype(np.int64)
    graph = lattice(2, 10, np.full(20, 40, dtype=np.int64), group=group)
    return graph, (cols >= 5).astype(np.int64)


def test_rejoin_moves_a_split_compound_into_one_part() -> None:
    graph, labels = _two_halves_with_compound(4, 5)  # 160 households, 80 on each side
    rejoined = _rejoin_groups(graph, labels, *GRID)
    assert len(np.unique(rejoined[graph.group == 0])) == 1
    weights = np.bincount(rejoined, weights=graph.weights)
    assert sorted(weights.tolist()) == [320, 480]
    assert parts_connected(graph, rejoined)


def test_rejoin_leaves_a_compound_split_when_joining_breaks_the_range() -> None:
    graph, labels = _two_halves_with_compound(3, 6)  # 320 households: either side would reach 560
    assert _rejoin_groups(graph, labels, *GRID).tolist() == labels.tolist()


def test_rejoin_repairs_the_range_by_moving_other_buildings() -> None:
    # 2 x 12 lattice of 25 households: columns 0-5 and 6-11 hold 300 each. The compound (row 0, columns 5-6)
    # straddles the cut; moving it wholly to the left leaves 325 | 275, and the repair hands the cell below
    # it (row 1, column 5) to the right: 300 | 300.
    cols = np.tile(np.arange(12), 2)
    rows = np.repeat(np.arange(2), 12)
    group = np.where((rows == 0) & ((cols == 5) | (cols == 6)), 0, -1).astype(np.int64)
    graph = lattice(2, 12, np.full(24, 25, dtype=np.int64), group=group)
    labels = (cols >= 6).astype(np.int64)
    rejoined = _rejoin_groups(graph, labels, *GRID)
    assert len(np.unique(rejoined[graph.group == 0])) == 1
    assert np.bincount(rejoined, weights=graph.weights).tolist() == [300.0, 300.0]
    assert parts_connected(graph, rejoined)


def test_refine_chain_fills_a_part_through_its_neighbour() -> None:
    # A path of 7 atoms in parts A | B | C = 75 | 60 | 45 (micro-grid range 50-80). No single move helps:
    # B's atom next to C (20) would leave B at 40. The chain moves it to C and A's atom next to B (15) to B.
    graph = lattice(1, 7, np.array([30, 30, 15, 40, 20, 25, 20], dtype=np.int64), high=MICRO[1])
    labels = np.array([0, 0, 0, 1, 1, 2, 2], dtype=np.int64)
    plain = _refine(graph, labels, *MICRO, passes=10)
    assert np.bincount(plain, weights=graph.weights).min() < MICRO[0]
    chained = _refine(graph, labels, *MICRO, passes=10, chains=True)
    assert chained.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert np.bincount(chained, weights=graph.weights).tolist() == [60.0, 55.0, 65.0]


def test_refine_chain_leaves_labels_when_no_chain_exists() -> None:
    # C (45) can only take from B (50), which has nothing to spare and no other neighbour to refill it.
    graph = lattice(1, 4, np.array([25, 25, 25, 20], dtype=np.int64), high=MICRO[1])
    labels = np.array([0, 0, 1, 1], dtype=np.int64)
    assert _refine(graph, labels, *MICRO, passes=10, chains=True).tolist() == labels.tolist()


@pytest.mark.parametrize(("rows", "cols", "seed"), [(6, 8, 0), (9, 9, 1), (5, 14, 2), (12, 10, 3)])
def test_refine_skipping_settled_nodes_changes_nothing(
    rows: int, cols: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A node that chose to stay is not weighed again until its own or a neighbouring part changes; weighing
    # every node every time must give the same labels.
    graph = random_lattice(rows, cols, seed, high=MICRO[1])
    rng = np.random.default_rng(seed)
    labels = (np.arange(rows * cols) % cols * 4 // cols + rng.integers(0, 2, rows * cols) * 4).astype(
        np.int64
    )
    labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    skipping = _refine(graph, labels, *MICRO, passes=10, chains=True)
    weigh = _RefineState.best_move

    def weigh_always(state: _RefineState, node: int) -> int | None:
        state._stays.clear()
        return weigh(state, node)

    monkeypatch.setattr(_RefineState, "best_move", weigh_always)
    assert _refine(graph, labels, *MICRO, passes=10, chains=True).tolist() == skipping.tolist()


def test_neighbour_csr_and_connected_sides() -> None:
    # A 2 x 3 lattice: 0 1 2 / 3 4 5.
    graph = lattice(2, 3, np.ones(6, dtype=np.int64))
    indptr, indices = _neighbour_csr(graph)
    assert [sorted(indices[indptr[v] : indptr[v + 1]]) for v in range(6)] == [
        [1, 3], [0, 2, 4], [1, 5], [0, 4], [1, 3, 5], [2, 4]
    ]  # fmt: skip
    csr = (indptr, indices)
    assert _connected(csr, np.array([1, 1, 1, 0, 0, 0], dtype=bool))
    assert not _connected(csr, np.array([1, 0, 1, 0, 0, 0], dtype=bool))
    assert _connected(csr, np.array([0, 0, 1, 0, 0, 0], dtype=bool))
    assert not _connected(csr, np.zeros(6, dtype=bool))


def test_coarse_labels_keep_ids_of_the_two_passes_apart() -> None:
    # Buildings {0,1} {2,3} {4,5} {6,7} on a path; compound 0 = {0..3} is too big (800) and stays as its two
    # buildings; compounds 1 = {4,5} and 2 = {6,7} fit. Four coarse nodes, none joining two of them.
    weights = np.array([200, 200, 200, 200, 100, 100, 100, 100], dtype=np.int64)
    graph = lattice(1, 8, weights, group=np.array([0, 0, 0, 0, 1, 1, 2, 2], dtype=np.int64))
    graph = replace(graph, building=np.array([0, 0, 1, 1, 2, 2, 3, 3], dtype=np.int64))
    assert coarse_labels(graph, "group", 500).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_whole_nodes_lock_whole_compounds_and_free_split_ones() -> None:
    graph = lattice(1, 6, np.full(6, 10, dtype=np.int64), group=np.array([0, 0, 1, 1, 1, -1], dtype=np.int64))
    nodes = whole_nodes(graph, np.array([0, 0, 0, 1, 1, 1], dtype=np.int64))  # compound 1 is split
    assert nodes[0] == nodes[1]  # compound 0 lies whole in part 0: one node
    assert len(set(nodes[2:].tolist())) == 4  # compound 1's atoms and the loose atom stay apart


def test_merge_arealess_joins_cellless_atoms_to_a_neighbour() -> None:
    graph = lattice(1, 4, np.full(4, 10, dtype=np.int64))
    graph = replace(graph, area_m2=np.array([1.0, 1.0, 0.0, 0.0]))
    merged = merge_arealess(graph, np.array([0, 0, 1, 1], dtype=np.int64))
    assert merged.tolist() == [0, 0, 0, 0]
    untouched = merge_arealess(graph, np.array([0, 1, 1, 1], dtype=np.int64))
    assert untouched.tolist() == [0, 1, 1, 1]
