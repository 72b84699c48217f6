"""Tests of :mod:`gis.metrics` on basic shapes and on the tiny hand-made plan of ``test_validate``."""

from __future__ import annotations

import dataclasses
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gis.metrics import (
    OVERALL,
    REPORT_COLUMNS,
    compound_integrity,
    feasible,
    polsby_popper,
    quality_report,
    share_in_range,
    tiling,
)
from gis.model import GridPlan
from tests.gis.tiny_plan import COMMUNITIES, CRS, MULTIPART, RULES, box, tiny_case, with_value


def _report(plan: GridPlan) -> pd.DataFrame:
    """Quality report of ``plan`` for the tiny district, indexed by community code."""
    _, district = tiny_case()
    return quality_report(plan, district).set_index("community_code")


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        (shapely.box(0, 0, 10, 10), math.pi / 4),  # square
        (shapely.Point(0, 0).buffer(100, quad_segs=256), 1.0),  # circle
        (shapely.box(0, 0, 1, 10), 4 * math.pi * 10 / 22**2),  # 1 x 10 rectangle, about 0.26
    ],
)
def test_polsby_popper_of_basic_shapes(geometry: shapely.Geometry, expected: float) -> None:
    [value] = polsby_popper(gpd.GeoSeries([geometry], crs=CRS))
    assert value == pytest.approx(expected, abs=1e-3)


def test_polsby_popper_projects_geographic_and_skips_empty() -> None:
    square = gpd.GeoSeries([box(0, 0, 200, 200), None, shapely.Polygon()], crs=CRS).to_crs(4326)
    values = polsby_popper(square)
    assert values[0] == pytest.approx(math.pi / 4, abs=1e-4)
    assert np.isnan(values[1:]).all()


def test_share_in_range() -> None:
    assert share_in_range(np.array([50, 80, 81, 49, 65]), 50, 80) == pytest.approx(0.6)
    assert share_in_range(pd.Series([300, 500]), 300, 500) == 1.0
    assert math.isnan(share_in_range(np.array([], dtype=int), 50, 80))


def test_feasible_totals() -> None:
    totals = np.array([0, 250, 299, 550, 600, 1000, 1001])
    assert feasible(totals, 300, 500).tolist() == [False, False, False, False, True, True, True]


def test_compound_integrity_on_tiny_plan() -> None:
    plan, district = tiny_case()
    assert compound_integrity(plan, district, max_households=200) == (2, 3)  # c2 spans two grids
    assert compound_integrity(plan, district, max_households=100) == (1, 1)  # only c3 (75) is small enough
    split = with_value(
        plan, "building_units", 1, "grid_code", "320508001001002"
    )  # b1 of c1 into another grid
    assert compound_integrity(split, district, max_households=200) == (1, 3)


def test_quality_report_of_tiny_plan() -> None:
    plan, _ = tiny_case()
    report = _report(plan)
    assert tuple(report.reset_index().columns) == REPORT_COLUMNS
    assert list(report.index) == [*COMMUNITIES, OVERALL]
    overall = report.loc[OVERALL]
    assert (overall["households"], overall["grids"], overall["microgrids"]) == (550, 4, 8)
    assert report["households"].tolist() == [285, 265, 550]
    for share in ("grids_in_range", "grids_in_range_feasible", "microgrids_in_range", "contiguous"):
        assert overall[share] == 1.0
    assert overall["households_conserved"]
    assert (overall["tiling_gap_m2"], overall["tiling_overlap_m2"], overall["crosses_community"]) == (0, 0, 0)
    assert overall["mean_pp_grids"] == pytest.approx(4 * math.pi * 20_000 / 600**2)
    assert overall["mean_pp_microgrids"] == pytest.approx(math.pi / 4)
    assert report["compounds_kept"].tolist() == pytest.approx([0.5, 1.0, 2 / 3])


def test_quality_report_in_geographic_crs_matches() -> None:
    plan, _ = tiny_case()
    geographic = dataclasses.replace(
        plan,
        grids=plan.grids.to_crs(4326),
        microgrids=plan.microgrids.to_crs(4326),
        building_units=plan.building_units.to_crs(4326),
    )
    expected, got = _report(plan), _report(geographic)
    assert got["tiling_gap_m2"].max() < 1e-3
    assert got["mean_pp_grids"].tolist() == pytest.approx(expected["mean_pp_grids"].tolist(), abs=1e-6)


@pytest.mark.parametrize(
    ("geometry", "gap_m2", "overlap_m2"),
    [
        (box(0, 0, 90, 200), 2_000.0, 0.0),  # community gap; micro-grids stick out of the grid
        (box(0, 0, 110, 200), 2_000.0, 2_000.0),  # grids overlap; the wider grid has a micro-grid gap
    ],
)
def test_quality_report_measures_tiling(geometry: shapely.Geometry, gap_m2: float, overlap_m2: float) -> None:
    report = _report(with_value(tiny_case()[0], "grids", 0, "geometry", geometry))
    assert report.loc[COMMUNITIES[0], "tiling_gap_m2"] == pytest.approx(gap_m2)
    assert report.loc[COMMUNITIES[0], "tiling_overlap_m2"] == pytest.approx(overlap_m2)
    assert report.loc[COMMUNITIES[1], "tiling_gap_m2"] == pytest.approx(0.0)
    assert report.loc[OVERALL, "tiling_gap_m2"] == pytest.approx(gap_m2)


def test_quality_report_flags_breaches() -> None:
    plan, _ = tiny_case()
    plan = with_value(plan, "grids", 1, "geometry", box(100, 0, 250, 200))  # crosses into community B
    plan = with_value(plan, "microgrids", 7, "geometry", MULTIPART)
    plan = with_value(plan, "building_units", 0, "households", 61)
    report = _report(plan)
    assert report["crosses_community"].tolist() == [1, 0, 1]
    assert report["households_conserved"].tolist() == [False, True, False]
    assert report.loc[COMMUNITIES[1], "contiguous"] == pytest.approx(5 / 6)
    assert report.loc[OVERALL, "contiguous"] == pytest.approx(11 / 12)


def test_in_range_share_over_feasible_communities() -> None:
    plan, _ = tiny_case()
    rules = dataclasses.replace(RULES, grid_min=140, grid_max=150)  # 285 splits as 2 x 142.5; 265 cannot
    plan = dataclasses.replace(plan, rules=rules)
    plan = with_value(plan, "grids", 0, "status", "compound_kept_whole")
    report = _report(plan)
    assert report["grids_in_range"].tolist() == [0.0, 0.5, 0.25]  # only 145 of B is inside 140-150
    feasible_share = report["grids_in_range_feasible"].to_numpy(dtype=float)
    assert feasible_share[[0, 2]].tolist() == [0.0, 0.0]  # over community A only
    assert np.isnan(feasible_share[1])
    assert report["grids_ok_or_reason"].tolist() == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(("strip_m", "gap_m2"), [(0.0005, 0.0), (0.004, 0.0), (0.02, 0.02 * 1000)])
def test_tiling_drops_slivers_thinner_than_a_centimetre(strip_m: float, gap_m2: float) -> None:
    """Two grids that part by half a millimetre along a kilometre are not a gap; a 2 cm strip is."""
    parent = np.array([box(0, 0, 100, 1000)], dtype=object)
    children = np.array([box(0, 0, 50, 1000), box(50 + strip_m, 0, 100, 1000)], dtype=object)
    result = tiling(parent, children, np.array([0, 0]))
    assert result.gap_m2[0] == pytest.approx(gap_m2, rel=1e-3, abs=1e-6)


def test_tiling_measures_only_the_parents_left_uncovered() -> None:
    """A covered parent has an empty gap; the next one's missing strip is still found, at its own index."""
    parents = np.array([box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)], dtype=object)
    children = np.array([box(0, 0, 10, 10), box(20, 0, 27, 10), box(40, 0, 50, 5), box(40, 5, 50, 10)])
    result = tiling(parents, children, np.array([0, 1, 2, 2]))
    assert result.gap_m2.tolist() == pytest.approx([0.0, 30.0, 0.0])
    assert shapely.equals(result.gap[1], box(27, 0, 30, 10))
    assert shapely.is_empty(result.gap[[0, 2]]).all()
