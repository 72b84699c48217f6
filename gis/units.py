"""Split buildings into the atoms the gridder assigns: whole buildings, stairwells (单元) and floor ranges.

A building too big for a micro-grid is split by stairwell; a stairwell still too big is split by floor range.
Multi-stairwell buildings of at least half a micro-grid are split by stairwell too, so that micro-grids can be
balanced along stairwells (the partitioner keeps such buildings whole whenever the range allows). Each atom
gets a footprint piece: stairwells are slices across the building's long axis, floor ranges slices of their
stairwell, so the pieces tile the footprint and the plan stays a planar map.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from gis.model import GridRules

#: Households per floor per stairwell assumed when ``units`` is missing: walk-ups vs high-rises.
_HH_PER_FLOOR_UNIT_LOW = 2
_HH_PER_FLOOR_UNIT_HIGH = 4
_HIGH_RISE_FLOORS = 10


@dataclass(frozen=True)
class Atoms:
    """Parallel arrays describing the indivisible pieces of the district's buildings (metric CRS).

    Attributes:
        building: index of the parent building (row in the buildings frame) per atom.
        unit: stairwell number (1..n), 0 for a whole building.
        floor_from: first floor of a floor-range piece, 0 when the piece spans all floors.
        floor_to: last floor of a floor-range piece, 0 when the piece spans all floors.
        households: households per atom; per building they add up to the building's households.
        indivisible: True where the atom is above the micro-grid maximum and cannot be split further.
        geometry: footprint piece per atom.
    """

    building: NDArray[np.int64]
    unit: NDArray[np.int64]
    floor_from: NDArray[np.int64]
    floor_to: NDArray[np.int64]
    households: NDArray[np.int64]
    indivisible: NDArray[np.bool_]
    geometry: NDArray[np.object_]

    def __len__(self) -> int:
        return len(self.building)


def estimate_units(buildings: pd.DataFrame) -> NDArray[np.int64]:
    """Number of stairwells per building: the given ``units``, else estimated from households per floor.

    Example:
        >>> frame = pd.DataFrame({"households": [48, 4], "floors": [6, 2], "units": [pd.NA, pd.NA]})
        >>> estimate_units(frame).tolist()
        [4, 1]
    """
    households = buildings["households"].to_numpy(dtype=np.int64)
    floors = pd.to_numeric(buildings["floors"]).fillna(1).clip(lower=1).to_numpy(dtype=np.float64)
    per_unit = np.where(floors >= _HIGH_RISE_FLOORS, _HH_PER_FLOOR_UNIT_HIGH, _HH_PER_FLOOR_UNIT_LOW)
    estimated = np.maximum(1, np.ceil(households / floors / per_unit)).astype(np.int64)
    given = pd.to_numeric(buildings["units"]).to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(given) | (given < 1), estimated, given).astype(np.int64)


def split_buildings(buildings: gpd.GeoDataFrame, rules: GridRules) -> Atoms:
    """Split buildings (in a metric CRS) into atoms by stairwell and floor range.

    Args:
        buildings: the district's buildings, projected to metres.
        rules: the ranges; a piece above ``rules.micro_max`` households is split further when it can be.

    Returns:
        The atoms, ordered by building then stairwell then floor.
    """
    households = buildings["households"].to_numpy(dtype=np.int64)
    floors = pd.to_numeric(buildings["floors"]).fillna(0).to_numpy(dtype=np.int64)
    units = estimate_units(buildings)
    split_units = (units > 1) & ((households > rules.micro_max) | (2 * households >= rules.micro_min))
    units = np.where(split_units, units, 1)
    building, unit, unit_households = _split_by_unit(households, units)
    pieces = _floor_pieces(unit_households, floors[building], households[building] > rules.micro_max, rules)
    atoms_building = np.repeat(building, pieces)
    atoms_unit = np.repeat(unit, pieces)
    atom_households, floor_from, floor_to = _split_by_floor(unit_households, floors[building], pieces)
    geometry = _slice_footprints(buildings.geometry.to_numpy(), building, units, pieces)
    indivisible = atom_households > rules.micro_max
    return Atoms(atoms_building, atoms_unit, floor_from, floor_to, atom_households, indivisible, geometry)


def _split_by_unit(
    households: NDArray[np.int64], units: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Rows per stairwell: parent building, unit number (0 when unsplit) and an even share of households."""
    building = np.repeat(np.arange(len(households), dtype=np.int64), units)
    rank = rank_within(units)
    share = _even_shares(households[building], units[building], rank)
    unit = np.where(units[building] > 1, rank + 1, 0)
    return building, unit, share


def _floor_pieces(
    households: NDArray[np.int64], floors: NDArray[np.int64], big: NDArray[np.bool_], rules: GridRules
) -> NDArray[np.int64]:
    """How many floor ranges each stairwell is cut into, at most one per floor.

    Stairwells of small buildings are cut into pieces of at most half the micro-grid minimum, so that two or
    three pieces combine into the range. Stairwells of ``big`` buildings (above a micro-grid: towers that
    fill whole micro-grids with their pieces alone) are cut finer, into at most half the range's width, so
    that sums of pieces step through the range in more than one way: pieces of 21 reach only 63 in 50–80,
    and sixteen of them (336 households) cannot make five micro-grids; pieces of at most 15 can. Pieces that
    end up in the same micro-grid are merged back into one row of the plan.
    """
    piece = np.where(big, max(1, (rules.micro_max - rules.micro_min) // 2), max(1, rules.micro_min // 2))
    needed = np.maximum(1, -(-households // piece))
    return np.where(floors > 0, np.minimum(needed, np.maximum(floors, 1)), 1).astype(np.int64)


def _split_by_floor(
    households: NDArray[np.int64], floors: NDArray[np.int64], pieces: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Households and floor range per floor piece; households follow the number of floors of each range."""
    parent = np.repeat(np.arange(len(households), dtype=np.int64), pieces)
    rank = rank_within(pieces)
    split = pieces[parent] > 1
    floor_count = _even_shares(floors[parent], pieces[parent], rank)
    floor_to = _cumsum_within(floor_count, pieces)
    floor_from = floor_to - floor_count + 1
    share = _proportional_shares(households, floors, floor_to, parent)
    return (
        np.where(split, share, households[parent]),
        np.where(split, floor_from, 0),
        np.where(split, floor_to, 0),
    )


def _cumsum_within(values: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Cumulative sum of ``values`` restarting at each group of ``counts`` consecutive rows."""
    total = np.cumsum(values)
    before = np.concatenate(([0], total[:-1]))[np.cumsum(counts) - counts]
    result: NDArray[np.int64] = (total - np.repeat(before, counts)).astype(np.int64)
    return result


def _proportional_shares(
    households: NDArray[np.int64],
    floors: NDArray[np.int64],
    floor_to: NDArray[np.int64],
    parent: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Integer households up to each floor range's top, differenced: exact totals, shares by floor count."""
    total_floors = np.maximum(floors[parent], 1)
    cumulative = (households[parent] * floor_to) // total_floors
    previous = np.concatenate(([0], cumulative[:-1]))
    first = np.concatenate(([True], parent[1:] != parent[:-1]))
    return np.where(first, cumulative, cumulative - previous).astype(np.int64)


def rank_within(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """0, 1, … within each run when ``counts[i]`` rows are repeated for item ``i``.

    Example:
        >>> rank_within(np.array([2, 3])).tolist()
        [0, 1, 0, 1, 2]
    """
    rank: NDArray[np.int64] = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    return rank


def _even_shares(
    total: NDArray[np.int64], parts: NDArray[np.int64], rank: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Split ``total`` into ``parts`` integers differing by at most one; ``rank`` picks the share."""
    base = total // parts
    return (base + (rank < total - base * parts)).astype(np.int64)


def _slice_footprints(
    footprints: NDArray[np.object_],
    building: NDArray[np.int64],
    units: NDArray[np.int64],
    pieces: NDArray[np.int64],
) -> NDArray[np.object_]:
    """Footprint pieces: stairwells across the long axis, then floor ranges across each stairwell."""
    stairwells = _slice(footprints[building], units[building], rank_within(units))
    stair_index = np.repeat(np.arange(len(building)), pieces)
    return _slice(stairwells[stair_index], pieces[stair_index], rank_within(pieces))


_SLAB_MARGIN = 0.01


def _slice(
    polygons: NDArray[np.object_], count: NDArray[np.int64], rank: NDArray[np.int64]
) -> NDArray[np.object_]:
    """Cut each polygon into ``count`` equal slabs across its oriented long axis and return slab ``rank``."""
    result = polygons.copy()
    todo = np.flatnonzero(count > 1)
    if len(todo) == 0:
        return result
    rect = shapely.oriented_envelope(polygons[todo])
    corners = shapely.get_coordinates(rect).reshape(len(todo), -1, 2)[:, :4]
    edge_a, edge_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 1]
    long_is_a = np.hypot(*edge_a.T) >= np.hypot(*edge_b.T)
    axis = np.where(long_is_a[:, None], edge_a, edge_b)
    across = np.where(long_is_a[:, None], edge_b, edge_a)
    # Slabs reach 1% past the envelope's outer sides (rounding must not leave a sliver of the polygon
    # outside every slab); the cuts between slabs are shared exactly, so the pieces tile the polygon.
    origin = corners[:, 0] - across * _SLAB_MARGIN
    across = across * (1 + 2 * _SLAB_MARGIN)
    first, last = rank[todo, None] == 0, rank[todo, None] == count[todo, None] - 1
    start = np.where(first, -_SLAB_MARGIN, rank[todo, None] / count[todo, None])
    stop = np.where(last, 1 + _SLAB_MARGIN, (rank[todo, None] + 1) / count[todo, None])
    ring = np.stack(
        [
            origin + axis * start,
            origin + axis * stop,
            origin + axis * stop + across,
            origin + axis * start + across,
        ],
        axis=1,
    )
    slabs = shapely.polygons(ring)
    pieces = shapely.intersection(polygons[todo], slabs)
    result[todo] = np.where(shapely.is_empty(pieces), slabs, pieces)
    return result
