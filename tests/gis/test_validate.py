"""Tests of :mod:`gis.validate` on a tiny hand-made plan, broken one rule at a time."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gis.validate import validate_plan
from tests.gis.tiny_plan import (
    COMMUNITIES,
    CRS,
    MULTIPART,
    RULES,
    X0,
    Y0,
    Break,
    box,
    tiny_case,
    with_value,
    without_building,
)

BOWTIE = shapely.Polygon([(X0, Y0), (X0 + 100, Y0 + 200), (X0 + 100, Y0), (X0, Y0 + 200)])
#: (rule expected, how the tiny plan is broken); each case breaks one rule (a few also break its neighbours).
BREAKS: list[tuple[str, Break]] = [
    ("gap", lambda p: with_value(p, "grids", 0, "geometry", box(0, 0, 90, 200))),
    ("overlap", lambda p: with_value(p, "grids", 0, "geometry", box(0, 0, 110, 200))),
    ("grid_not_connected", lambda p: with_value(p, "grids", 0, "geometry", MULTIPART)),
    ("grid_invalid", lambda p: with_value(p, "grids", 0, "geometry", BOWTIE)),
    ("microgrid_not_connected", lambda p: with_value(p, "microgrids", 0, "geometry", MULTIPART)),
    ("grid_crosses_community", lambda p: with_value(p, "grids", 1, "geometry", box(100, 0, 250, 200))),
    ("community_mismatch", lambda p: with_value(p, "grids", 0, "community_code", COMMUNITIES[1])),
    ("unknown_community", lambda p: with_value(p, "grids", 0, "community_code", "320508001009")),
    ("bad_grid_code", lambda p: with_value(p, "grids", 0, "grid_code", "3205080010011")),
    ("bad_microgrid_code", lambda p: with_value(p, "microgrids", 2, "microgrid_code", "3205080010010021")),
    ("duplicate_code", lambda p: with_value(p, "microgrids", 1, "microgrid_code", "32050800100100101")),
    ("unknown_grid", lambda p: with_value(p, "microgrids", 0, "grid_code", "320508001001009")),
    ("households_mismatch", lambda p: with_value(p, "grids", 0, "households", 131)),
    ("households_mismatch", lambda p: with_value(p, "microgrids", 0, "households", 61)),
    ("households_not_conserved", lambda p: with_value(p, "building_units", 0, "households", 61)),
    ("building_missing", lambda p: without_building(p, "b3")),
    ("unknown_building", lambda p: with_value(p, "building_units", 0, "building_id", "b99")),
    ("building_count_mismatch", lambda p: with_value(p, "grids", 0, "buildings", 3)),
    ("grid_out_of_range", lambda p: dataclasses.replace(p, rules=dataclasses.replace(RULES, grid_min=140))),
    (
        "microgrid_out_of_range",
        lambda p: dataclasses.replace(p, rules=dataclasses.replace(RULES, micro_min=60)),
    ),
    ("unknown_status", lambda p: with_value(p, "grids", 0, "status", "too_big")),
    ("microgrid_outside_grid", lambda p: with_value(p, "microgrids", 0, "geometry", box(50, 0, 150, 100))),
    (
        "building_outside_microgrid",
        lambda p: with_value(p, "building_units", 0, "microgrid_code", "32050800100100102"),
    ),
    ("microgrid_grid_mismatch", lambda p: with_value(p, "building_units", 0, "grid_code", "320508001001002")),
    ("unit_unassigned", lambda p: with_value(p, "building_units", 0, "microgrid_code", None)),
    (
        "unknown_microgrid",
        lambda p: with_value(p, "building_units", 0, "microgrid_code", "32050800100100109"),
    ),
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
        plan = with_value(plan, "grids", row, "status", "no_balanced_cut")
    assert validate_plan(plan, district) == []


@pytest.mark.parametrize(
    ("status", "fact"),
    [
        ("community_too_small", "its community has 285 households"),
        ("community_empty", "its community has 285 households"),
        ("community_infeasible", "its community has 285 households"),
        ("indivisible_building", "its largest building unit has 70 households"),
        ("compound_kept_whole", "it is below the range"),
    ],
)
def test_reason_the_plan_disproves_is_reported(status: str, fact: str) -> None:
    """A hand-edited plan that kept a gridder's reason after the facts behind it changed does not pass."""
    plan, district = tiny_case()
    plan = dataclasses.replace(plan, rules=dataclasses.replace(RULES, grid_min=140))
    plan = with_value(plan, "grids", 0, "status", status)  # 130 households, below 140
    violations = [v for v in validate_plan(plan, district) if v.rule == "reason_untrue"]
    assert [v.code for v in violations] == ["320508001001001"]
    assert fact in violations[0].message


def test_reason_that_holds_is_accepted() -> None:
    plan, district = tiny_case()
    plan = dataclasses.replace(plan, rules=dataclasses.replace(RULES, grid_min=290, grid_max=300))
    community = plan.grids["community_code"].iloc[0]
    rows = plan.grids.index[plan.grids["community_code"] == community]
    for row in range(len(plan.grids)):
        reason = "community_too_small" if plan.grids.index[row] in rows else "no_balanced_cut"
        plan = with_value(plan, "grids", row, "status", reason)
    assert [v for v in validate_plan(plan, district) if v.rule == "reason_untrue"] == []


def test_out_of_range_message_gives_numbers() -> None:
    plan, district = tiny_case()
    plan = with_value(plan, "grids", 1, "households", 612)
    [violation] = [v for v in validate_plan(plan, district) if v.rule == "grid_out_of_range"]
    assert violation.layer == "grids"
    assert violation.code == "320508001001002"
    assert violation.message == (
        "grid 320508001001002 has 612 households, above the maximum 200, and status 'ok' gives no reason"
    )


def test_gap_reports_biggest_gap_in_plan_crs() -> None:
    plan, district = tiny_case()
    plan = with_value(plan, "grids", 0, "geometry", box(0, 0, 90, 200))
    plan = dataclasses.replace(plan, grids=plan.grids.to_crs(4326))
    [gap] = [v for v in validate_plan(plan, district) if v.rule == "gap" and v.layer == "grids"]
    assert gap.code == COMMUNITIES[0]
    assert "2000.0 m²" in gap.message
    lon, lat = (float(t) for t in gap.message.rsplit("(", 1)[1].rstrip(")").split(", "))
    x, y = gpd.GeoSeries.from_xy([lon], [lat], crs=4326).to_crs(CRS).iloc[0].coords[0]
    assert shapely.box(X0 + 90, Y0, X0 + 100, Y0 + 200).contains(shapely.Point(x, y))


def test_violations_are_sorted() -> None:
    plan, district = tiny_case()
    plan = with_value(plan, "grids", 0, "status", "too_big")
    plan = with_value(plan, "building_units", 0, "households", 61)
    plan = with_value(plan, "microgrids", 0, "geometry", box(50, 0, 150, 100))
    found = validate_plan(plan, district)
    keys = [(v.layer, v.rule, v.code or "") for v in found]
    assert keys == sorted(keys)
    assert {v.layer for v in found} == {"grids", "microgrids", "building_units"}
