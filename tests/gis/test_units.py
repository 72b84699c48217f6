"""Tests of :mod:`gis.units`: stairwell estimates and the split of buildings into atoms."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity

from gis.model import GridRules
from gis.units import Atoms, estimate_units, split_buildings

RULES = GridRules()  # micro-grids 50–80 households
CRS = "EPSG:32651"


def _frame(
    households: list[int],
    floors: list[int | None],
    units: list[int | None],
    geometry: list[shapely.Geometry] | None = None,
) -> gpd.GeoDataFrame:
    """Buildings side by side, each a 60 m x 12 m slab unless ``geometry`` is given."""
    if geometry is None:
        geometry = [shapely.box(100.0 * i, 0.0, 100.0 * i + 60.0, 12.0) for i in range(len(households))]
    return gpd.GeoDataFrame(
        {
            "households": households,
            "floors": pd.array(floors, dtype="Int64"),
            "units": pd.array(units, dtype="Int64"),
        },
        geometry=geometry,
        crs=CRS,
    )


# ---------------------------------------------------------------------------------------------- estimate_units


def test_estimate_units_prefers_given_units() -> None:
    frame = _frame([1000, 10], [6, 30], [3, 7])
    assert estimate_units(frame).tolist() == [3, 7]


@pytest.mark.parametrize(
    ("households", "floors", "expected"),
    [
        (48, 6, 4),  # walk-up: 48 / 6 floors / 2 per floor = 4
        (49, 6, 5),  # rounds up
        (80, 9, 5),  # 9 floors is still a walk-up: ceil(80 / 9 / 2) = 5
        (80, 10, 2),  # 10 floors is a high-rise: 80 / 10 / 4 = 2
        (560, 28, 5),  # ceil(560 / 28 / 4) = 5
        (4, None, 2),  # missing floors count as one floor: 4 / 1 / 2
        (0, 6, 1),  # at least one stairwell
        (1, 30, 1),
    ],
)
def test_estimate_units_from_households_per_floor(households: int, floors: int | None, expected: int) -> None:
    assert estimate_units(_frame([households], [floors], [None])).tolist() == [expected]


def test_estimate_units_ignores_zero_given_units() -> None:
    frame = _frame([48, 48], [6, 6], [0, None])
    assert estimate_units(frame).tolist() == [4, 4]


def test_estimate_units_accepts_object_na_column() -> None:
    frame = pd.DataFrame({"households": [48, 4], "floors": [6, 2], "units": [pd.NA, pd.NA]})
    assert estimate_units(frame).tolist() == [4, 1]


# --------------------------------------------------------------------------------------------- split_buildings

# (households, floors, units, split by stairwell, split by floor range, indivisible atom left)
BUILDINGS = [
    pytest.param(0, 6, None, False, False, False, id="empty"),
    pytest.param(40, 6, 2, True, False, False, id="40hh-2units"),  # 2*40 >= micro_min: split to balance
    pytest.param(20, 6, 2, False, False, False, id="20hh-2units-small"),  # small: kept whole, unit 0
    pytest.param(563, 28, 4, True, True, False, id="563hh-4units-28floors"),  # ~141 per stairwell
    pytest.param(132, 33, 1, False, True, False, id="132hh-1unit-33floors"),
    pytest.param(120, 1, 1, False, False, True, id="120hh-1floor-indivisible"),
    pytest.param(300, None, 1, False, False, True, id="300hh-no-floors-indivisible"),
    pytest.param(170, 2, 1, False, True, True, id="170hh-2floors-indivisible-halves"),
]
PARAMS = ("households", "floors", "units", "by_unit", "by_floor", "too_big")


def _one(households: int, floors: int | None, units: int | None) -> tuple[gpd.GeoDataFrame, Atoms]:
    frame = _frame([households], [floors], [units])
    return frame, split_buildings(frame, RULES)


@pytest.mark.parametrize(PARAMS, BUILDINGS)
def test_split_conserves_households_and_counts(
    households: int, floors: int | None, units: int | None, by_unit: bool, by_floor: bool, too_big: bool
) -> None:
    _, atoms = _one(households, floors, units)
    assert int(atoms.households.sum()) == households
    assert (atoms.households >= 0).all()
    assert (atoms.building == 0).all()
    assert bool((atoms.unit > 0).any()) == by_unit
    assert bool((atoms.floor_from > 0).any()) == by_floor


@pytest.mark.parametrize(PARAMS, BUILDINGS)
def test_split_floor_piece_counts(
    households: int, floors: int | None, units: int | None, by_unit: bool, by_floor: bool, too_big: bool
) -> None:
    _, atoms = _one(households, floors, units)
    for unit in np.unique(atoms.unit):
        rows = atoms.unit == unit
        stairwell = int(atoms.households[rows].sum())
        pieces = int(rows.sum())
        assert pieces <= max(floors or 1, 1)  # at most one piece per floor
        assert pieces >= min(floors or 1, -(-stairwell // RULES.micro_max))  # enough to fit when floors allow


@pytest.mark.parametrize(PARAMS, BUILDINGS)
def test_split_pieces_fit_or_are_indivisible(
    households: int, floors: int | None, units: int | None, by_unit: bool, by_floor: bool, too_big: bool
) -> None:
    _, atoms = _one(households, floors, units)
    over = atoms.households > RULES.micro_max
    assert (atoms.indivisible == over).all()
    assert bool(over.any()) == too_big
    # an atom is only left too big when it cannot be cut: one floor (or unknown floors) of one stairwell
    for i in np.flatnonzero(over):
        assert atoms.floor_from[i] == atoms.floor_to[i]
        assert floors is None or floors <= 1 or atoms.floor_from[i] > 0


@pytest.mark.parametrize(PARAMS, BUILDINGS)
def test_split_piece_areas_tile_the_footprint(
    households: int, floors: int | None, units: int | None, by_unit: bool, by_floor: bool, too_big: bool
) -> None:
    frame, atoms = _one(households, floors, units)
    footprint = frame.geometry.iloc[0]
    areas = shapely.area(atoms.geometry)
    assert areas.sum() == pytest.approx(footprint.area, rel=1e-6)
    assert (areas > 0).all()
    union = shapely.union_all(atoms.geometry)
    assert shapely.symmetric_difference(union, footprint).area < 1e-6 * footprint.area


@pytest.mark.parametrize(PARAMS, BUILDINGS)
def test_split_floor_ranges_are_contiguous(
    households: int, floors: int | None, units: int | None, by_unit: bool, by_floor: bool, too_big: bool
) -> None:
    _, atoms = _one(households, floors, units)
    for unit in np.unique(atoms.unit):
        rows = np.flatnonzero(atoms.unit == unit)
        lo, hi = atoms.floor_from[rows], atoms.floor_to[rows]
        if len(rows) == 1:
            assert lo[0] == hi[0] == 0  # spans all floors
            continue
        assert floors is not None
        assert lo[0] == 1
        assert hi[-1] == floors
        assert (lo[1:] == hi[:-1] + 1).all()
        assert (lo <= hi).all()


@pytest.mark.parametrize(PARAMS, BUILDINGS)
def test_split_unit_numbers(
    households: int, floors: int | None, units: int | None, by_unit: bool, by_floor: bool, too_big: bool
) -> None:
    _, atoms = _one(households, floors, units)
    if by_unit:
        assert units is not None
        assert sorted(set(atoms.unit.tolist())) == list(range(1, units + 1))
        assert (np.diff(atoms.unit) >= 0).all()  # ordered by stairwell
    else:
        assert (atoms.unit == 0).all()


def test_split_563_households_details() -> None:
    _, atoms = _one(563, 28, 4)
    per_unit = np.bincount(atoms.unit, weights=atoms.households)[1:]
    assert per_unit.tolist() == [141, 141, 141, 140]  # even shares, differing by at most one
    assert (atoms.households <= RULES.micro_max).all()
    assert not atoms.indivisible.any()


def test_split_single_stairwell_floor_shares_follow_floor_counts() -> None:
    _, atoms = _one(132, 33, 1)
    floors = atoms.floor_to - atoms.floor_from + 1
    assert floors.sum() == 33
    assert abs(int(floors[0]) - int(floors[1])) <= 1
    # 132 households over 33 floors is 4 per floor: each range holds 4 x its floors
    assert atoms.households.tolist() == (4 * floors).tolist()


def test_split_many_buildings_keeps_building_order_and_totals() -> None:
    households = [0, 40, 563, 132, 120, 75]
    frame = _frame(households, [6, 6, 28, 33, 1, 5], [None, 2, 4, 1, 1, None])
    atoms = split_buildings(frame, RULES)
    assert (np.diff(atoms.building) >= 0).all()
    assert np.bincount(atoms.building, weights=atoms.households).tolist() == households
    for b, footprint in enumerate(frame.geometry):
        pieces = atoms.geometry[atoms.building == b]
        assert shapely.area(pieces).sum() == pytest.approx(footprint.area, rel=1e-6)
    assert atoms.indivisible.tolist() == (atoms.households > RULES.micro_max).tolist()


def test_split_rotated_rectangle_pieces_lie_inside_footprint() -> None:
    footprint = shapely.affinity.rotate(shapely.box(0.0, 0.0, 72.0, 14.0), 33.0, origin=(0.0, 0.0))
    frame = _frame([563], [28], [4], geometry=[footprint])
    atoms = split_buildings(frame, RULES)
    assert sorted(set(atoms.unit.tolist())) == [1, 2, 3, 4]
    assert len(atoms) > 4  # floor ranges too
    tolerance = footprint.buffer(1e-4)
    for piece, unit in zip(atoms.geometry, atoms.unit, strict=True):
        assert tolerance.contains(piece)
        # equal slabs: a stairwell is a quarter of the footprint, cut evenly into its floor pieces
        share = footprint.area / 4 / int((atoms.unit == unit).sum())
        assert piece.area == pytest.approx(share, rel=1e-4)
    assert shapely.area(atoms.geometry).sum() == pytest.approx(footprint.area, rel=1e-6)
    # stairwells are cut across the long axis: each stairwell's two pieces together are ~72/4 m long
    stair = shapely.union_all(atoms.geometry[atoms.unit == 1])
    rect = shapely.oriented_envelope(stair)
    sides = np.hypot(*np.diff(shapely.get_coordinates(rect)[:3], axis=0).T)
    assert sorted(sides.round(3).tolist()) == pytest.approx([14.0, 18.0], abs=1e-3)


def test_split_pieces_do_not_overlap() -> None:
    frame = _frame([563], [28], [4])
    pieces = split_buildings(frame, RULES).geometry
    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces)):
            assert shapely.intersection(pieces[i], pieces[j]).area < 1e-3
