"""A tiny hand-made district of two communities and the valid plan for it, shared by the gis tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import geopandas as gpd
import pandas as pd
import shapely

from gis.model import District, GridPlan, GridRules

CRS = "EPSG:32651"  # UTM 51N, Suzhou
X0, Y0 = 280_000.0, 3_460_000.0
COMMUNITIES = ("320508001001", "320508001002")
HOUSEHOLDS = (60, 70, 75, 80, 65, 55, 70, 75)  # per micro-grid, one building each
COMPOUNDS = ("c1", "c1", "c2", None, "c2", None, None, "c3")
RULES = GridRules(grid_min=100, grid_max=200, micro_min=50, micro_max=80)


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    """A rectangle in local metres from the fixture's origin."""
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def tiny_case() -> tuple[GridPlan, District]:
    """Two 200 m square communities, each cut into 2 grids of 2 micro-grids with one building each.

    Grids hold 130, 155, 120 and 145 households (rules 100–200, micro-grids 50–80); building 7 is split
    into two stairwells. Compounds: c1 (buildings 0, 1) kept in one grid, c2 (2, 4) across two grids
    and communities, c3 (7) kept.
    """
    grid_rows, micro_rows, building_rows, unit_rows = [], [], [], []
    for g in range(4):
        community, x = COMMUNITIES[g // 2], 100.0 * g
        grid_code = f"{community}{g % 2 + 1:03d}"
        grid_hh = HOUSEHOLDS[2 * g] + HOUSEHOLDS[2 * g + 1]
        grid_rows.append((grid_code, community, grid_hh, 2, "ok", "", box(x, 0, x + 100, 200)))
        for m in range(2):
            b, y = 2 * g + m, 100.0 * m
            micro_code = f"{grid_code}{m + 1:02d}"
            micro_rows.append((micro_code, grid_code, HOUSEHOLDS[b], "ok", "", box(x, y, x + 100, y + 100)))
            footprint = box(x + 40, y + 40, x + 60, y + 60)
            building_rows.append((f"b{b}", HOUSEHOLDS[b], False, 6, 2, COMPOUNDS[b], community, footprint))
            shares = [(1, 40), (2, 35)] if b == 7 else [(0, HOUSEHOLDS[b])]
            for unit, hh in shares:
                unit_rows.append((f"b{b}", unit, pd.NA, pd.NA, hh, grid_code, micro_code, footprint))
    return _plan(grid_rows, micro_rows, unit_rows), _district(building_rows)


def _frame(rows: Sequence[tuple[object, ...]], columns: tuple[str, ...]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        [r[:-1] for r in rows], columns=list(columns), geometry=[r[-1] for r in rows], crs=CRS
    )


def _plan(
    grids: Sequence[tuple[object, ...]],
    micro: Sequence[tuple[object, ...]],
    units: Sequence[tuple[object, ...]],
) -> GridPlan:
    unit_frame = _frame(
        units, ("building_id", "unit", "floor_from", "floor_to", "households", "grid_code", "microgrid_code")
    )
    unit_frame[["floor_from", "floor_to"]] = unit_frame[["floor_from", "floor_to"]].astype("Int64")
    return GridPlan(
        grids=_frame(grids, ("grid_code", "community_code", "households", "buildings", "status", "note")),
        microgrids=_frame(micro, ("microgrid_code", "grid_code", "households", "status", "note")),
        building_units=unit_frame,
        report=pd.DataFrame(),
        rules=RULES,
    )


def _district(buildings: Sequence[tuple[object, ...]]) -> District:
    columns = (
        "building_id",
        "households",
        "households_estimated",
        "floors",
        "units",
        "compound_id",
        "community_code",
    )
    communities = gpd.GeoDataFrame(
        {"community_code": list(COMMUNITIES), "name": ["东区", "西区"]},
        geometry=[box(0, 0, 200, 200), box(200, 0, 400, 200)],
        crs=CRS,
    )
    return District(buildings=_frame(buildings, columns), communities=communities)


Break = Callable[[GridPlan], GridPlan]


def with_value(plan: GridPlan, layer: str, row: int, column: str, value: object) -> GridPlan:
    """A copy of ``plan`` with one cell of one layer changed."""
    frame = getattr(plan, layer).copy()
    frame.loc[row, column] = value
    return dataclasses.replace(plan, **{layer: frame})


def without_building(plan: GridPlan, building: str) -> GridPlan:
    units = plan.building_units
    return dataclasses.replace(plan, building_units=units.loc[units["building_id"] != building].copy())


MULTIPART = shapely.MultiPolygon([box(0, 0, 100, 90), box(0, 110, 100, 200)])
