"""Tests of :mod:`gis.validate` on a tiny hand-made plan, broken one rule at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gis.model import District, GridPlan, GridRules
from gis.validate import validate_plan

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


def _set(plan: GridPlan, layer: str, row: int, column: str, value: object) -> GridPlan:
    """A copy of ``plan`` with one cell of one layer changed."""
    frame = getattr(plan, layer).copy()
    frame.loc[row, column] = value
    return dataclasses.replace(plan, **{layer: frame})


def _drop_building(plan: GridPlan, building: str) -> GridPlan:
    units = plan.building_units
    return dataclasses.replace(plan, building_units=units.loc[units["building_id"] != building].copy())


MULTIPART = shapely.MultiPolygon([box(0, 0, 100, 90), box(0, 110, 100, 200)])
BOWTIE = shapely.Polygon([(X0, Y0), (X0 + 100, Y0 + 200), (X0 + 100, Y0), (X0, Y0 + 200)])
#: (rule expected, how the tiny plan is broken); each case breaks one rule (a few also break its neighbours).
BREAKS: list[tuple[str, Break]] = [
    ("gap", lambda p: _set(p, "grids", 0, "geometry", box(0, 0, 90, 200))),
    ("overlap", lambda p: _set(p, "grids", 0, "geometry", box(0, 0, 110, 200))),
    ("grid_not_connected", lambda p: _set(p, "grids", 0, "geometry", MULTIPART)),
    ("grid_invalid", lambda p: _set(p, "grids", 0, "geometry", BOWTIE)),
    ("microgrid_not_connected", lambda p: _set(p, "microgrids", 0, "geometry", MULTIPART)),
    ("grid_crosses_community", lambda p: _set(p, "grids", 1, "geometry", box(100, 0, 250, 200))),
    ("community_mismatch", lambda p: _set(p, "grids", 0, "community_code", COMMUNITIES[1])),
    ("unknown_community", lambda p: _set(p, "grids", 0, "community_code", "320508001009")),
    ("bad_grid_code", lambda p: _set(p, "grids", 0, "grid_code", "3205080010011")),
    ("bad_microgrid_code", lambda p: _set(p, "microgrids", 2, "microgrid_code", "3205080010010021")),
    ("duplicate_code", lambda p: _set(p, "microgrids", 1, "microgrid_code", "32050800100100101")),
    ("unknown_grid", lambda p: _set(p, "microgrids", 0, "grid_code", "320508001001009")),
    ("households_mismatch", lambda p: _set(p, "grids", 0, "households", 131)),
    ("households_mismatch", lambda p: _set(p, "microgrids", 0, "households", 61)),
    ("households_not_conserved", lambda p: _set(p, "building_units", 0, "households", 61)),
    ("building_missing", lambda p: _drop_building(p, "b3")),
    ("unknown_building", lambda p: _set(p, "building_units", 0, "building_id", "b99")),
    ("building_count_mismatch", lambda p: _set(p, "grids", 0, "buildings", 3)),
    ("grid_out_of_range", lambda p: dataclasses.replace(p, rules=dataclasses.replace(RULES, grid_min=140))),
    (
        "microgrid_out_of_range",
        lambda p: dataclasses.replace(p, rules=dataclasses.replace(RULES, micro_min=60)),
    ),
    ("unknown_status", lambda p: _set(p, "grids", 0, "status", "too_big")),
    ("microgrid_outside_grid", lambda p: _set(p, "microgrids", 0, "geometry", box(50, 0, 150, 100))),
    (
        "building_outside_microgrid",
        lambda p: _set(p, "building_units", 0, "microgrid_code", "32050800100100102"),
    ),
    ("microgrid_grid_mismatch", lambda p: _set(p, "building_units", 0, "grid_code", "320508001001002")),
    ("unit_unassigned", lambda p: _set(p, "building_units", 0, "microgrid_code", None)),
    ("unknown_microgrid", lambda p: _set(p, "building_units", 0, "microgrid_code", "32050800100100109")),
    ("duplicate_unit", lambda p: dataclasses.replace(p, building_units=pd.concat([p.building_units] * 2))),
]


def test_valid_plan_has_no_violation() -> None:
    plan, district = tiny_case()
    assert validate_plan(plan, district) == []


def test_crs_of_plan_and_district_may_differ() -> None:
    plan, district = tiny_case()
    geographic = dataclasses.replace(
        plan,
        grids=plan.grids.to_crs(4326),
        microgrids=plan.microgrids.to_crs(4326),
        building_units=plan.building_units.to_crs(4326),
    )
    assert validate_plan(geographic, district) == []
    district_4326 = dataclasses.replace(
        district, buildings=district.buildings.to_crs(4326), communities=district.communities.to_crs(4326)
    )
    assert validate_plan(plan, district_4326) == []


@pytest.mark.parametrize(
    ("rule", "breaks"), BREAKS, ids=[f"{i}-{rule}" for i, (rule, _) in enumerate(BREAKS)]
)
def test_each_broken_rule_is_reported(rule: str, breaks: Break) -> None:
    plan, district = tiny_case()
    violations = validate_plan(breaks(plan), district)
    assert rule in {v.rule for v in violations}, violations


def test_out_of_range_with_reason_is_accepted() -> None:
    plan, district = tiny_case()
    plan = dataclasses.replace(plan, rules=dataclasses.replace(RULES, grid_min=140))
    for row in (0, 2):  # 130 and 120 households, below 140
        plan = _set(plan, "grids", row, "status", "compound_kept_whole")
    assert validate_plan(plan, district) == []


def test_out_of_range_message_gives_numbers() -> None:
    plan, district = tiny_case()
    plan = _set(plan, "grids", 1, "households", 612)
    [violation] = [v for v in validate_plan(plan, district) if v.rule == "grid_out_of_range"]
    assert violation.layer == "grids"
    assert violation.code == "320508001001002"
    assert violation.message == (
        "grid 320508001001002 has 612 households, above the maximum 200, and status 'ok' gives no reason"
    )


def test_gap_reports_biggest_gap_in_plan_crs() -> None:
    plan, district = tiny_case()
    plan = _set(plan, "grids", 0, "geometry", box(0, 0, 90, 200))
    plan = dataclasses.replace(plan, grids=plan.grids.to_crs(4326))
    [gap] = [v for v in validate_plan(plan, district) if v.rule == "gap" and v.layer == "grids"]
    assert gap.code == COMMUNITIES[0]
    assert "2000.0 m²" in gap.message
    lon, lat = (float(t) for t in gap.message.rsplit("(", 1)[1].rstrip(")").split(", "))
    x, y = gpd.GeoSeries.from_xy([lon], [lat], crs=4326).to_crs(CRS).iloc[0].coords[0]
    assert shapely.box(X0 + 90, Y0, X0 + 100, Y0 + 200).contains(shapely.Point(x, y))


def test_violations_are_sorted() -> None:
    plan, district = tiny_case()
    plan = _set(plan, "grids", 0, "status", "too_big")
    plan = _set(plan, "building_units", 0, "households", 61)
    plan = _set(plan, "microgrids", 0, "geometry", box(50, 0, 150, 100))
    found = validate_plan(plan, district)
    keys = [(v.layer, v.rule, v.code or "") for v in found]
    assert keys == sorted(keys)
    assert {v.layer for v in found} == {"grids", "microgrids", "building_units"}
