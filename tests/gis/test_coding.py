"""Tests of :mod:`gis.coding`: reading order, sequence numbers and codes kept from a previous plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from gis.coding import GRID_DIGITS, MICRO_DIGITS, match_previous, number_parts, reading_order
from gis.errors import PlanError

PARENT = "320508001001"


def _cells(rows: int, cols: int, size: float = 100.0) -> list[shapely.Polygon]:
    """A rows x cols block of squares listed south row first, east to west (the reverse of reading order)."""
    return [
        shapely.box(c * size, r * size, (c + 1) * size, (r + 1) * size)
        for r in range(rows)
        for c in reversed(range(cols))
    ]


# ----------------------------------------------------------------------------------------------- reading_order


def test_reading_order_docstring_example() -> None:
    boxes = [shapely.box(10, 0, 20, 10), shapely.box(0, 0, 10, 10), shapely.box(0, 10, 10, 20)]
    assert reading_order(boxes).tolist() == [2, 1, 0]


def test_reading_order_north_row_first_west_to_east() -> None:
    cells = _cells(3, 4)
    order = reading_order(cells)
    centres = np.array([(c.centroid.x, c.centroid.y) for c in cells])[order]
    expected = sorted(centres.tolist(), key=lambda xy: (-xy[1], xy[0]))
    assert centres.tolist() == expected
    assert sorted(order.tolist()) == list(range(12))


def test_reading_order_tolerates_ragged_rows() -> None:
    """Parts of one row whose centres differ by less than a row height stay in one row, west to east."""
    parts = [
        shapely.box(200, 5, 300, 105),  # east, slightly higher
        shapely.box(0, 0, 100, 100),  # west
        shapely.box(100, -10, 200, 90),  # middle, slightly lower
        shapely.box(0, -200, 100, -100),  # next row south
    ]
    assert reading_order(parts).tolist() == [1, 2, 0, 3]


def test_reading_order_empty() -> None:
    assert reading_order([]).tolist() == []


# ------------------------------------------------------------------------------------------------ number_parts


def test_number_parts_zero_padded_in_reading_order() -> None:
    cells = _cells(2, 3)
    ids = [10 + i for i in range(len(cells))]
    codes = number_parts(PARENT, ids, cells, GRID_DIGITS)
    order = reading_order(cells)
    assert [codes[ids[i]] for i in order] == [f"{PARENT}{n:03d}" for n in range(1, 7)]
    assert all(len(code) == len(PARENT) + 3 for code in codes.values())
    micro = number_parts(f"{PARENT}001", ids[:2], cells[:2], MICRO_DIGITS)
    assert sorted(micro.values()) == [f"{PARENT}00101", f"{PARENT}00102"]


def test_number_parts_reuses_kept_codes_and_fills_free_numbers() -> None:
    cells = _cells(1, 5)  # listed east to west: reading order is ids 4, 3, 2, 1, 0
    ids = [0, 1, 2, 3, 4]
    kept = {2: f"{PARENT}002", 0: f"{PARENT}007"}
    codes = number_parts(PARENT, ids, cells, GRID_DIGITS, kept)
    assert codes[2] == f"{PARENT}002"
    assert codes[0] == f"{PARENT}007"
    # the others take 1, 3, 4 in reading order (west first), skipping the kept 2
    assert (codes[4], codes[3], codes[1]) == (f"{PARENT}001", f"{PARENT}003", f"{PARENT}004")
    assert len(set(codes.values())) == 5


def test_number_parts_all_kept() -> None:
    cells = _cells(1, 2)
    kept = {0: f"{PARENT}005", 1: f"{PARENT}009"}
    assert number_parts(PARENT, [0, 1], cells, GRID_DIGITS, kept) == kept


def test_number_parts_rejects_more_than_999() -> None:
    cells = _cells(1, 1000, size=1.0)
    with pytest.raises(PlanError, match="999"):
        number_parts(PARENT, list(range(1000)), cells, GRID_DIGITS)
    codes = number_parts(PARENT, list(range(999)), cells[:999], GRID_DIGITS)
    assert max(codes.values()) == f"{PARENT}999"


def test_number_parts_rejects_when_kept_codes_use_up_numbers() -> None:
    cells = _cells(1, 100, size=1.0)
    kept = {i: f"G{i + 1:02d}" for i in range(99)}  # 01..99 all kept: no number left for id 99
    with pytest.raises(PlanError):
        number_parts("G", list(range(100)), cells, MICRO_DIGITS, kept)


# ---------------------------------------------------------------------------------------------- match_previous


def _rows(key: str, rows: list[tuple[object, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[key, "building_id", "households"])


def test_match_previous_identical_parts_keep_codes() -> None:
    new = _rows("grid_id", [(0, "a", 100), (0, "b", 100), (1, "c", 200)])
    old = _rows("grid_code", [("P001", "c", 200), ("P002", "a", 100), ("P002", "b", 100)])
    kept = match_previous(new, old, "grid_id", "grid_code", {0: "P", 1: "P"})
    assert kept == {0: "P002", 1: "P001"}


@pytest.mark.parametrize(
    ("new_b", "keeps"),
    [
        (100, True),  # shared 100 / union 200 = 0.5: kept
        (101, False),  # shared 100 / union 201 < 0.5: not kept
        (0, True),  # identical
    ],
)
def test_match_previous_jaccard_threshold(new_b: int, keeps: bool) -> None:
    rows: list[tuple[object, str, int]] = [(0, "a", 100)]
    if new_b:
        rows.append((0, "b", new_b))
    new = _rows("grid_id", rows)
    old = _rows("grid_code", [("P001", "a", 100)])
    kept = match_previous(new, old, "grid_id", "grid_code", {0: "P"})
    assert kept == ({0: "P001"} if keeps else {})


def test_match_previous_counts_households_per_building() -> None:
    """A building split in stairwells counts once with its summed households on each side."""
    new = _rows("micro_id", [(0, "a", 30), (0, "a", 30), (1, "b", 60)])
    old = _rows("microgrid_code", [("P01", "a", 60), ("P02", "b", 20)])
    kept = match_previous(new, old, "micro_id", "microgrid_code", {0: "P", 1: "P"})
    assert kept == {0: "P01"}  # b: 20 shared of 60 -> 1/3


def test_match_previous_code_taken_once_by_best_match() -> None:
    # old P001 = {a: 100, b: 50}; new 0 = {a: 100, b: 50} (Jaccard 1); new 1 = {a: 100} (100 / 150)
    new = _rows("grid_id", [(0, "a", 100), (0, "b", 50), (1, "a", 100)])
    old = _rows("grid_code", [("P001", "a", 100), ("P001", "b", 50)])
    kept = match_previous(new, old, "grid_id", "grid_code", {0: "P", 1: "P"})
    assert kept == {0: "P001"}


def test_match_previous_tie_gives_code_to_one_part() -> None:
    # a 100-household building now split across two parts of 50: both overlap the old part by 0.5
    new = _rows("grid_id", [(0, "a", 50), (1, "a", 50)])
    old = _rows("grid_code", [("P001", "a", 100)])
    kept = match_previous(new, old, "grid_id", "grid_code", {0: "P", 1: "P"})
    assert list(kept.values()) == ["P001"]
    assert set(kept) <= {0, 1}


def test_match_previous_one_part_keeps_one_code() -> None:
    # new 0 overlaps old P001 by 190/200 and old P002 by 100/200: both qualify, the better one is kept
    new = _rows("grid_id", [(0, "a", 100), (0, "b", 100)])
    old = _rows("grid_code", [("P001", "a", 100), ("P001", "b", 90), ("P002", "b", 100)])
    kept = match_previous(new, old, "grid_id", "grid_code", {0: "P"})
    assert kept == {0: "P001"}


def test_match_previous_respects_prefix() -> None:
    new = _rows("grid_id", [(0, "a", 100), (1, "b", 100)])
    old = _rows("grid_code", [("C1001", "a", 100), ("C1002", "b", 100)])
    # part 0 now belongs to community C2: it cannot inherit a C1 code; part 1 stays in C1
    kept = match_previous(new, old, "grid_id", "grid_code", {0: "C2", 1: "C1"})
    assert kept == {1: "C1002"}


def test_match_previous_no_common_buildings() -> None:
    new = _rows("grid_id", [(0, "a", 100)])
    old = _rows("grid_code", [("P001", "z", 100)])
    assert match_previous(new, old, "grid_id", "grid_code", {0: "P"}) == {}
