"""Tests of :func:`gis.notes.part_status`: one case per branch, in the order the function decides."""

from __future__ import annotations

import pytest

from gis.model import STATUS_OK, STATUS_REASONS
from gis.notes import Level, part_status

# (level, households, total, largest_indivisible, low, high, split_area, feasible, expected code)
CASES = [
    pytest.param("grid", 400, 1000, 0, 300, 500, False, True, "ok", id="ok-grid"),
    pytest.param("micro", 80, 400, 0, 50, 80, False, True, "ok", id="ok-micro-at-max"),
    pytest.param("grid", 300, 300, 0, 300, 500, False, True, "ok", id="ok-grid-at-min"),
    # in range wins over everything else, even an indivisible atom or a split area
    pytest.param("micro", 60, 600, 90, 50, 80, True, False, "ok", id="ok-despite-flags"),
    pytest.param("grid", 0, 0, 0, 300, 500, False, False, "community_empty", id="community_empty"),
    pytest.param("grid", 0, 0, 0, 1, 1, False, False, "community_empty", id="community_empty-gridder-call"),
    pytest.param(
        "grid", 250, 250, 0, 300, 500, False, False, "community_too_small", id="community_too_small"
    ),
    pytest.param("micro", 40, 40, 0, 50, 80, False, False, "grid_too_small", id="grid_too_small"),
    pytest.param("micro", 0, 0, 0, 50, 80, False, False, "grid_too_small", id="grid_too_small-empty"),
    # too small wins over an indivisible atom
    pytest.param("grid", 250, 250, 600, 300, 500, True, False, "community_too_small", id="too_small-first"),
    pytest.param(
        "grid", 550, 550, 0, 300, 500, False, False, "community_infeasible", id="community_infeasible"
    ),
    pytest.param("micro", 90, 90, 0, 50, 80, False, False, "grid_infeasible", id="grid_infeasible"),
    # infeasible wins over an indivisible atom
    pytest.param("micro", 90, 90, 90, 50, 80, False, False, "grid_infeasible", id="infeasible-first"),
    pytest.param(
        "micro", 120, 300, 120, 50, 80, False, True, "indivisible_building", id="indivisible_building"
    ),
    pytest.param(
        "grid", 700, 1400, 700, 300, 500, True, True, "indivisible_building", id="indivisible-first"
    ),
    # an indivisible atom within the maximum does not explain a part out of range
    pytest.param("micro", 90, 300, 80, 50, 80, False, True, "no_balanced_cut", id="indivisible-at-max"),
    pytest.param(
        "grid", 200, 1000, 0, 300, 500, True, True, "disconnected_community", id="disconnected_community"
    ),
    pytest.param("micro", 40, 400, 0, 50, 80, True, True, "disconnected_community", id="disconnected-micro"),
    pytest.param(
        "grid", 560, 1000, 0, 300, 500, False, True, "compound_kept_whole", id="compound_kept_whole"
    ),
    pytest.param(
        "grid", 250, 1000, 0, 300, 500, False, True, "no_balanced_cut", id="no_balanced_cut-grid-low"
    ),
    pytest.param(
        "micro", 90, 400, 0, 50, 80, False, True, "no_balanced_cut", id="no_balanced_cut-micro-high"
    ),
]


@pytest.mark.parametrize(
    ("level", "households", "total", "largest", "low", "high", "split_area", "feasible", "code"), CASES
)
def test_part_status_branches(
    level: Level,
    households: int,
    total: int,
    largest: int,
    low: int,
    high: int,
    split_area: bool,
    feasible: bool,
    code: str,
) -> None:
    status, note = part_status(
        level, households, total, largest, low, high, split_area=split_area, feasible=feasible
    )
    assert status == code
    if status == STATUS_OK:
        assert note == ""
        return
    assert status in STATUS_REASONS
    assert note
    assert f"{households} 户" in note  # the part's own households, Chinese first
    assert f"{households} households" in note or f"{households} 户 households" in note
    assert f"{low}–{high}" in note  # the range it missed


def test_every_non_ok_code_is_reachable_or_manual() -> None:
    """The table above covers every reason code except the editor's manual one."""
    codes = {case.values[-1] for case in CASES}
    assert set(STATUS_REASONS) - codes == {"edited"}
    assert codes - set(STATUS_REASONS) == {STATUS_OK}


def test_notes_name_the_parent_total_and_the_indivisible_size() -> None:
    _, small = part_status("grid", 250, 250, 0, 300, 500, split_area=False, feasible=False)
    assert "社区" in small and "250" in small
    _, grid_small = part_status("micro", 40, 40, 0, 50, 80, split_area=False, feasible=False)
    assert "网格" in grid_small
    _, infeasible = part_status("grid", 550, 550, 0, 300, 500, split_area=False, feasible=False)
    assert "550" in infeasible
    _, indivisible = part_status("micro", 120, 300, 117, 50, 80, split_area=False, feasible=True)
    assert "117" in indivisible and "120" in indivisible
