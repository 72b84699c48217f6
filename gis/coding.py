"""Grid and micro-grid codes: parent code + sequence, numbered west→east, north→south, stable across edits.

A grid code is the community's 12-digit division code plus a 3-digit sequence; a micro-grid code is its grid
code plus a 2-digit sequence. Parts are numbered in reading order (rows from north to south, west to east
within a row), as local grid-coding standards do. When a previous plan is given, a part that keeps at least
half of its households (Jaccard overlap of households ≥ 0.5) keeps its old code, and new parts take the next
free numbers, so re-gridding after an edit does not renumber grids that did not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.errors import PlanError
from gis.model import GridPlan

#: Minimum household Jaccard overlap for a new part to keep a previous part's code.
KEEP_CODE_OVERLAP = 0.5
GRID_DIGITS = 3
MICRO_DIGITS = 2


def reading_order(geoms: Sequence[shapely.Geometry] | np.ndarray) -> np.ndarray:
    """Indices of ``geoms`` (metric CRS) in reading order: north→south rows, west→east within a row.

    The row height is the square root of the median area, so a row holds parts of about one part's height.

    Example:
        >>> boxes = [shapely.box(10, 0, 20, 10), shapely.box(0, 0, 10, 10), shapely.box(0, 10, 10, 20)]
        >>> reading_order(boxes).tolist()
        [2, 1, 0]
    """
    array = np.asarray(geoms, dtype=object)
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    xy = shapely.get_coordinates(shapely.point_on_surface(array))
    row_m = max(float(np.sqrt(np.median(shapely.area(array)))), 1e-9)
    rows = np.floor((xy[:, 1].max() - xy[:, 1]) / row_m)
    return np.lexsort((xy[:, 0], rows)).astype(np.int64)


def number_parts(
    parent: str,
    ids: Sequence[int],
    geoms: Sequence[shapely.Geometry],
    digits: int,
    kept: Mapping[int, str] | None = None,
) -> dict[int, str]:
    """Codes ``parent + sequence`` for ``ids``; ``kept`` codes are reused, the rest numbered after them.

    Raises:
        PlanError: more parts than the sequence digits allow.
    """
    kept = dict(kept or {})
    used = {int(code[len(parent) :]) for code in kept.values()}
    order = reading_order(geoms)
    codes = dict(kept)
    free = (n for n in range(1, 10**digits) if n not in used)
    for index in order:
        if ids[index] not in codes:
            sequence = next(free, None)
            if sequence is None:
                raise PlanError(
                    f"{parent}: more than {10**digits - 1} parts cannot be coded with {digits} digits"
                )
            codes[ids[index]] = f"{parent}{sequence:0{digits}d}"
    return codes


def match_previous(
    new: pd.DataFrame, previous: pd.DataFrame, new_key: str, old_key: str, prefix: Mapping[int, str]
) -> dict[int, str]:
    """Previous code kept by each new part that overlaps it by at least :data:`KEEP_CODE_OVERLAP`.

    Args:
        new: rows of (``new_key``, building_id, households) of the new plan.
        previous: rows of (``old_key``, building_id, households) of the previous plan.
        new_key: column of new part ids.
        old_key: column of previous codes.
        prefix: required code prefix (the parent's code) per new id.
    """
    a = new.groupby([new_key, "building_id"], as_index=False)["households"].sum()
    b = previous.groupby([old_key, "building_id"], as_index=False)["households"].sum()
    pairs = a.merge(b, on="building_id", suffixes=("_new", "_old"))
    pairs["shared"] = np.minimum(pairs["households_new"], pairs["households_old"])
    overlap = pairs.groupby([new_key, old_key], as_index=False)["shared"].sum()
    size_new = a.groupby(new_key)["households"].sum()
    size_old = b.groupby(old_key)["households"].sum()
    union = size_new.reindex(overlap[new_key]).to_numpy() + size_old.reindex(overlap[old_key]).to_numpy()
    overlap["jaccard"] = overlap["shared"] / np.maximum(union - overlap["shared"], 1)
    overlap = overlap[overlap["jaccard"] >= KEEP_CODE_OVERLAP].sort_values("jaccard", ascending=False)
    kept: dict[int, str] = {}
    taken: set[str] = set()
    for part, code in zip(overlap[new_key], overlap[old_key], strict=True):
        if part not in kept and code not in taken and str(code).startswith(prefix[int(part)]):
            kept[int(part)] = str(code)
            taken.add(str(code))
    return kept


def assign_codes(
    grids: gpd.GeoDataFrame,
    micros: gpd.GeoDataFrame,
    grid_community: Mapping[int, str],
    units: pd.DataFrame,
    previous: GridPlan | None,
) -> tuple[dict[int, str], dict[int, str]]:
    """Codes of every grid id and micro-grid id (``grids``/``micros`` have columns ``id`` and geometry).

    ``units`` has columns grid_id, micro_id, building_id, households.
    """
    kept_grids: dict[int, str] = {}
    if previous is not None:
        kept_grids = match_previous(units, previous.building_units, "grid_id", "grid_code", grid_community)
    grid_codes: dict[int, str] = {}
    grid_position = _position_of(grids["id"])
    for community, ids in _ids_by_parent(grids["id"], grid_community).items():
        geoms = grids.geometry.to_numpy()[[grid_position[i] for i in ids]]
        kept = {i: kept_grids[i] for i in ids if i in kept_grids}
        grid_codes |= number_parts(community, ids, geoms, GRID_DIGITS, kept)
    micro_grid = units.groupby("micro_id")["grid_id"].first()
    micro_parent = {int(m): grid_codes[int(g)] for m, g in zip(micro_grid.index, micro_grid, strict=True)}
    micro_parent |= {
        int(m): grid_codes[int(m_grid)] for m, m_grid in _empty_micro_parents(micros, units).items()
    }
    kept_micros: dict[int, str] = {}
    if previous is not None:
        kept_micros = match_previous(
            units, previous.building_units, "micro_id", "microgrid_code", micro_parent
        )
    micro_codes: dict[int, str] = {}
    micro_position = _position_of(micros["id"])
    for grid_code, ids in _ids_by_parent(micros["id"], micro_parent).items():
        geoms = micros.geometry.to_numpy()[[micro_position[i] for i in ids]]
        kept = {i: kept_micros[i] for i in ids if i in kept_micros}
        micro_codes |= number_parts(grid_code, ids, geoms, MICRO_DIGITS, kept)
    return grid_codes, micro_codes


def _ids_by_parent(ids: pd.Series, parent: Mapping[int, str]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for part in ids.tolist():
        grouped.setdefault(parent[int(part)], []).append(int(part))
    return dict(sorted(grouped.items()))


def _position_of(ids: pd.Series) -> dict[int, int]:
    """Row position of each id, built once per layer (a lookup per parent made numbering quadratic)."""
    return {int(v): i for i, v in enumerate(ids.tolist())}


def _empty_micro_parents(micros: gpd.GeoDataFrame, units: pd.DataFrame) -> dict[int, int]:
    """Micro-grids without building units (empty communities): their grid id is stored on the frame."""
    if "grid_id" not in micros.columns:
        return {}
    known = set(units["micro_id"].tolist())
    rows = micros[~micros["id"].isin(known)]
    return {int(m): int(g) for m, g in zip(rows["id"], rows["grid_id"], strict=True)}
