"""Flight altitude against buildings: the legal ceiling, and towers along the path.

Light drones in China may fly at most 120 m above ground, so that is the default ceiling. A path must never
pass over a building less than ``clearance_m`` below the flight; buildings that tall become no-fly holes of
the coverage area (:func:`tall_buildings`), and :func:`lowest_safe_altitude_m` checks a finished path.
Heights come from a ``height_m`` (or ``height``) column, else from ``floors`` × ``floor_height_m``.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from drone.coverage import XY, MissionPlanError

#: The legal ceiling for light drones in China, metres above ground.
CEILING_M = 120.0
#: Storey height used when only floors are known.
FLOOR_HEIGHT_M = 3.0
#: Height assumed for a building with neither height nor floors (a six-storey block).
UNKNOWN_HEIGHT_M = 6 * FLOOR_HEIGHT_M


def check_altitude_m(altitude_m: float, ceiling_m: float = CEILING_M) -> float:
    """Return ``altitude_m`` if it is positive and not above ``ceiling_m`` (itself at most 120 m).

    Raises:
        MissionPlanError: it is not.
    """
    if not 0 < ceiling_m <= CEILING_M:
        raise MissionPlanError(f"ceiling {ceiling_m} m must be in (0, {CEILING_M:.0f}] m above ground")
    if not 0 < altitude_m <= ceiling_m:
        raise MissionPlanError(
            f"altitude {altitude_m} m is outside (0, {ceiling_m:.0f}] m above ground "
            f"(飞行高度须在 {ceiling_m:.0f} 米以内)"
        )
    return altitude_m


def building_heights_m(buildings: gpd.GeoDataFrame, floor_height_m: float = FLOOR_HEIGHT_M) -> pd.Series:
    """Height of each building in metres: ``height_m``/``height`` where given, else floors × storey height."""
    heights = pd.Series(np.nan, index=buildings.index, dtype="float64")
    for column in ("height_m", "height"):
        if column in buildings.columns:
            heights = heights.fillna(pd.to_numeric(buildings[column], errors="coerce").astype("float64"))
    if "floors" in buildings.columns:
        floors = pd.to_numeric(buildings["floors"], errors="coerce").astype("float64")
        heights = heights.fillna(floors * floor_height_m)
    return heights.fillna(UNKNOWN_HEIGHT_M)


def tall_buildings(buildings: gpd.GeoDataFrame, altitude_m: float, clearance_m: float) -> list[BaseGeometry]:
    """Footprints of buildings whose roof is less than ``clearance_m`` below ``altitude_m``: no-fly holes."""
    heights = building_heights_m(buildings).to_numpy()
    tall = heights + clearance_m > altitude_m
    return list(buildings.geometry.to_numpy()[tall])


def lowest_safe_altitude_m(
    vertices: Sequence[XY], buildings: gpd.GeoDataFrame, clearance_m: float, corridor_m: float = 5.0
) -> float:
    """The tallest building within ``corridor_m`` of the path, plus ``clearance_m`` (clearance alone if none)."""
    if len(vertices) < 2 or buildings.empty:
        return clearance_m
    corridor = shapely.LineString(vertices).buffer(corridor_m)
    near = buildings.geometry.intersects(corridor).to_numpy()
    if not near.any():
        return clearance_m
    return float(building_heights_m(buildings).to_numpy()[near].max()) + clearance_m
