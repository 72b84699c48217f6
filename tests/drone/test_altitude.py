"""Altitude: the 120 m ceiling, building heights, tall buildings as holes, the safe altitude along a path."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from drone.altitude import (
    CEILING_M,
    UNKNOWN_HEIGHT_M,
    building_heights_m,
    check_altitude_m,
    lowest_safe_altitude_m,
    tall_buildings,
)
from drone.coverage import MissionPlanError


def _buildings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "height_m": [None, 95.0, None, None],
            "floors": pd.Series([6, None, 33, None], dtype="Int64"),
        },
        geometry=[
            shapely.box(0, 0, 20, 10),
            shapely.box(100, 0, 120, 20),
            shapely.box(200, 0, 220, 20),
            shapely.box(300, 0, 310, 10),
        ],
        crs="EPSG:32651",
    )


def test_heights_prefer_the_height_column_then_floors_then_a_default() -> None:
    assert building_heights_m(_buildings()).tolist() == [18.0, 95.0, 99.0, UNKNOWN_HEIGHT_M]


def test_buildings_within_clearance_of_the_flight_become_holes() -> None:
    holes = tall_buildings(_buildings(), altitude_m=80.0, clearance_m=20.0)
    assert [h.bounds[0] for h in holes] == [100.0, 200.0]
    assert tall_buildings(_buildings(), altitude_m=120.0, clearance_m=20.0) == []


def test_safe_altitude_is_the_tallest_building_along_the_path_plus_clearance() -> None:
    buildings = _buildings()
    assert lowest_safe_altitude_m([(-10.0, 5.0), (50.0, 5.0)], buildings, 20.0) == 38.0
    assert lowest_safe_altitude_m([(-10.0, 5.0), (250.0, 5.0)], buildings, 20.0) == 119.0
    assert lowest_safe_altitude_m([(0.0, 100.0), (300.0, 100.0)], buildings, 20.0) == 20.0


@pytest.mark.parametrize("altitude_m", [0.0, -5.0, CEILING_M + 1])
def test_altitudes_outside_the_legal_range_are_refused(altitude_m: float) -> None:
    with pytest.raises(MissionPlanError, match="120"):
        check_altitude_m(altitude_m)


def test_a_lower_ceiling_is_honoured() -> None:
    assert check_altitude_m(60.0, ceiling_m=60.0) == 60.0
    with pytest.raises(MissionPlanError, match="60"):
        check_altitude_m(61.0, ceiling_m=60.0)
    with pytest.raises(MissionPlanError, match="ceiling"):
        check_altitude_m(80.0, ceiling_m=150.0)
