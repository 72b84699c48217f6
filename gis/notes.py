"""Status reason codes and readable notes (Chinese, then English) for grids and micro-grids out of range."""

from __future__ import annotations

from typing import Literal

from gis.model import STATUS_OK

Level = Literal["grid", "micro"]


def part_status(
    level: Level,
    households: int,
    total: int,
    largest_indivisible: int,
    low: int,
    high: int,
    *,
    split_area: bool,
    feasible: bool,
) -> tuple[str, str]:
    """Status code and note of one grid (``level="grid"``) or micro-grid.

    Args:
        level: grid or micro-grid.
        households: households of this part.
        total: households of the parent area (community for grids, grid for micro-grids).
        largest_indivisible: households of the largest atom of this part that could not be split (0 if none).
        low: minimum of the range.
        high: maximum of the range.
        split_area: the parent area's cells are in several disconnected pieces.
        feasible: the parent total can be divided into parts inside the range.

    Returns:
        ``("ok", "")`` inside the range, else a reason code of :data:`gis.model.STATUS_REASONS` and a note.

    Example:
        >>> part_status("grid", 250, 250, 0, 300, 500, split_area=False, feasible=False)[0]
        'community_too_small'
    """
    if low <= households <= high:
        return STATUS_OK, ""
    parent = "社区 community" if level == "grid" else "网格 grid"
    numbers = f"{households} 户 households, range {low}–{high}"
    if total < low:
        code = "community_empty" if level == "grid" and total == 0 else _too_small(level)
        return (
            code,
            f"{parent} 共 {total} 户, 不足下限, 整体划为一个; {parent} has {total}, below {low} ({numbers})",
        )
    if not feasible:
        code = "community_infeasible" if level == "grid" else "grid_infeasible"
        return (
            code,
            f"{parent} 总户数 {total} 无法均分到范围内; total {total} cannot be divided in range ({numbers})",
        )
    if largest_indivisible > high:
        return "indivisible_building", (
            f"含 {largest_indivisible} 户的楼层/单元无法再拆分; a floor or stairwell of {largest_indivisible} "
            f"households cannot be split ({numbers})"
        )
    if split_area:
        return "disconnected_community", f"社区区域不连通, 分块划分; community area is in pieces ({numbers})"
    if level == "grid" and households > high:
        return "compound_kept_whole", f"保持小区完整导致超出范围; keeping compounds whole ({numbers})"
    return "no_balanced_cut", f"未找到范围内的连通划分; no connected cut in range found ({numbers})"


def _too_small(level: Level) -> str:
    return "community_too_small" if level == "grid" else "grid_too_small"
