"""The gridder end to end: golden tiny district, infeasible cases, stable codes, invariants, real data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.gridder import _union_groups, make_plan
from gis.model import District, GridPlan, GridRules
from gis.validate import validate_plan

CRS = "EPSG:32651"
SUZHOU = Path(__file__).resolve().parents[3] / "shared" / "data" / "suzhou_district.gpkg"


def _district(rows: list[dict[str, object]], communities: dict[str, shapely.Polygon]) -> District:
    buildings = gpd.GeoDataFrame(
        {
            "building_id": [str(r["id"]) for r in rows],
            "households": np.array([r["hh"] for r in rows], dtype=np.int64),
            "households_estimated": False,
            "floors": pd.Series([r.get("floors", 6) for r in rows], dtype="Int64"),
            "units": pd.Series([r.get("units") for r in rows], dtype="Int64"),
            "compound_id": [r.get("compound") for r in rows],
            "community_code": [r["community"] for r in rows],
        },
        geometry=[r["geom"] for r in rows],
        crs=CRS,
    )
    comms = gpd.GeoDataFrame(
        {"community_code": list(communities), "name": [f"社区{i}" for i in range(len(communities))]},
        geometry=list(communities.values()),
        crs=CRS,
    )
    return District(buildings, comms)


def _row_of_buildings(
    x0: float, y0: float, n: int, hh: int, community: str, compound: str | None, prefix: str
) -> list[dict[str, object]]:
    return [
        {
            "id": f"{prefix}{i}",
            "hh": hh,
            "units": 1,
            "compound": compound,
            "community": community,
            "geom": shapely.box(x0 + i * 30, y0, x0 + i * 30 + 20, y0 + 12),
        }
        for i in range(n)
    ]


A, B, C = "320508001001", "320508001002", "320508001003"


@pytest.fixture(scope="module")
def tiny() -> District:
    """Community A: two compounds of 6 buildings x 60 households, west and east; B: 250 households; C: 550."""
    rows = []
    for half, x0 in (("W", 10.0), ("E", 210.0)):
        rows += _row_of_buildings(x0, 40, 3, 60, A, f"K{half}", f"A{half}1-")
        rows += _row_of_buildings(x0, 200, 3, 60, A, f"K{half}", f"A{half}2-")
    rows += _row_of_buildings(410, 100, 5, 50, B, None, "B-")
    rows += _row_of_buildings(20, 330, 11, 50, C, None, "C-")
    communities = {
        A: shapely.box(0, 0, 400, 300),
        B: shapely.box(400, 0, 600, 300),
        C: shapely.box(0, 300, 600, 400),
    }
    return _district(rows, communities)


@pytest.fixture(scope="module")
def tiny_plan(tiny: District) -> GridPlan:
    return make_plan(tiny)


def test_tiny_plan_is_valid(tiny: District, tiny_plan: GridPlan) -> None:
    assert validate_plan(tiny_plan, tiny) == []


def test_golden_compounds_become_grids_numbered_west_to_east(tiny_plan: GridPlan) -> None:
    units = tiny_plan.building_units
    grid_of = units.set_index("building_id")["grid_code"]
    west = {grid_of[f"AW{r}-{i}"] for r in (1, 2) for i in range(3)}
    east = {grid_of[f"AE{r}-{i}"] for r in (1, 2) for i in range(3)}
    assert west == {A + "001"}
    assert east == {A + "002"}
    grids = tiny_plan.grids.set_index("grid_code")
    assert grids.loc[A + "001", "households"] == 360
    assert grids.loc[A + "001", "buildings"] == 6


def test_golden_micro_grids_of_one_building_each(tiny_plan: GridPlan) -> None:
    micros = tiny_plan.microgrids[tiny_plan.microgrids["grid_code"] == A + "001"]
    assert sorted(micros["households"]) == [60] * 6
    assert list(micros["microgrid_code"]) == [f"{A}001{i:02d}" for i in range(1, 7)]


def test_small_community_is_one_grid_with_reason(tiny_plan: GridPlan) -> None:
    grid = tiny_plan.grids[tiny_plan.grids["community_code"] == B]
    assert len(grid) == 1
    assert grid.iloc[0]["status"] == "community_too_small"
    assert "250" in grid.iloc[0]["note"]


def test_infeasible_community_has_reason(tiny_plan: GridPlan) -> None:
    grids = tiny_plan.grids[tiny_plan.grids["community_code"] == C]
    assert grids["households"].sum() == 550
    assert set(grids["status"]) == {"community_infeasible"}


def test_grids_tile_communities(tiny: District, tiny_plan: GridPlan) -> None:
    for code, area in zip(tiny.communities["community_code"], tiny.communities.geometry, strict=True):
        union = shapely.union_all(
            tiny_plan.grids[tiny_plan.grids["community_code"] == code].geometry.to_numpy()
        )
        assert abs(union.area - area.area) < 1e-3
        assert shapely.symmetric_difference(union, area).area < 1e-3


def test_same_input_and_seed_same_plan(tiny: District, tiny_plan: GridPlan) -> None:
    again = make_plan(tiny)
    assert again.grids["grid_code"].tolist() == tiny_plan.grids["grid_code"].tolist()
    assert shapely.equals_exact(
        again.grids.geometry.to_numpy(), tiny_plan.grids.geometry.to_numpy(), 1e-9
    ).all()
    pd.testing.assert_frame_equal(
        pd.DataFrame(again.building_units.drop(columns="geometry")),
        pd.DataFrame(tiny_plan.building_units.drop(columns="geometry")),
    )


def test_regridding_keeps_codes_of_unchanged_grids(tiny: District, tiny_plan: GridPlan) -> None:
    extra = _row_of_buildings(410, 250, 1, 40, B, None, "NEW-")
    buildings = pd.concat([tiny.buildings, _district(extra, {}).buildings], ignore_index=True)
    edited = District(gpd.GeoDataFrame(buildings, crs=CRS), tiny.communities)
    again = make_plan(edited, previous=tiny_plan)
    old = tiny_plan.building_units.groupby("building_id")["grid_code"].agg(frozenset)
    new = again.building_units.groupby("building_id")["grid_code"].agg(frozenset)
    assert (new.reindex(old.index) == old).all()
    assert new["NEW-0"] == frozenset({B + "001"})


def test_tower_is_split_by_stairwell_and_floor(tmp_path: Path) -> None:
    tower = {
        "id": "T",
        "hh": 600,
        "floors": 30,
        "units": 4,
        "community": A,
        "geom": shapely.box(50, 50, 110, 75),
    }
    rows = [tower, *_row_of_buildings(20, 200, 6, 50, A, None, "S-")]
    district = _district(rows, {A: shapely.box(0, 0, 300, 300)})
    plan = make_plan(district)
    units = plan.building_units[plan.building_units["building_id"] == "T"]
    assert units["households"].sum() == 600
    assert set(units["unit"]) <= {1, 2, 3, 4}
    assert units["grid_code"].nunique() >= 2
    assert validate_plan(plan, district) == []


def test_union_groups_unions_only_the_groups_needed() -> None:
    pieces = np.array(
        [shapely.box(0, 0, 1, 1), shapely.box(5, 0, 6, 1), shapely.box(1, 0, 2, 1)], dtype=object
    )
    group = np.array([0, 1, 0], dtype=np.int64)
    joined = _union_groups(pieces, group, np.array([True, True]))
    assert shapely.equals(joined[0], shapely.box(0, 0, 2, 1))
    assert joined[1] is pieces[1]
    first_only = _union_groups(pieces, group, np.array([False, True]))
    assert first_only[0] is pieces[0]


def test_plan_in_geographic_crs_comes_back_in_it(tiny: District) -> None:
    wgs = District(tiny.buildings.to_crs(4326), tiny.communities.to_crs(4326))
    plan = make_plan(wgs)
    assert plan.grids.crs == wgs.buildings.crs
    assert validate_plan(plan, wgs) == []


@st.composite
def _random_district(draw: st.DrawFn) -> District:
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    cols, rows_n = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    communities = {
        f"3205080010{i:02d}": shapely.box(
            i % cols * 500, i // cols * 400, (i % cols + 1) * 500, (i // cols + 1) * 400
        )
        for i in range(cols * rows_n)
    }
    rows = []
    for code, box in communities.items():
        x0, y0 = box.bounds[:2]
        for j, (x, y) in enumerate(rng.uniform([10, 10], [470, 380], size=(rng.integers(5, 60), 2))):
            size = rng.uniform(8, 25)
            geom = shapely.box(x0 + x, y0 + y, x0 + x + size, y0 + y + size * 0.6)
            rows.append(
                {
                    "id": f"{code}-{j}",
                    "hh": int(rng.integers(0, 120)),
                    "floors": int(rng.integers(1, 30)),
                    "units": int(rng.integers(1, 4)),
                    "community": code,
                    "geom": geom,
                    "compound": f"K{code}-{j % 4}",
                }
            )
    district = _district(rows, communities)
    keep = ~district.buildings.geometry.overlaps(district.buildings.geometry.union_all().buffer(0)) | True
    frame = district.buildings[keep]
    footprints = frame.geometry.to_numpy()
    tree = shapely.STRtree(footprints)
    left, right = tree.query(footprints, predicate="intersects")
    clash = np.zeros(len(frame), dtype=bool)
    clash[left[left > right]] = True
    return District(gpd.GeoDataFrame(frame[~clash], crs=CRS), district.communities)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_district())
def test_invariants_on_random_districts(district: District) -> None:
    plan = make_plan(district)
    assert validate_plan(plan, district) == []
    conserved = plan.building_units.groupby("building_id")["households"].sum()
    expected = district.buildings.set_index("building_id")["households"]
    assert (conserved.reindex(expected.index) == expected).all()


@pytest.mark.skipif(
    not SUZHOU.exists(), reason=f"real district not present at {SUZHOU} (../shared is absent)"
)
def test_suzhou_district_meets_rules() -> None:
    from gis.io import read_district

    district = read_district(SUZHOU)
    plan = make_plan(district)
    assert validate_plan(plan, district) == []
    overall = plan.report.set_index("community_code").loc["overall"]
    assert overall["households_conserved"]
    assert overall["grids_in_range_feasible"] >= 0.99
    assert overall["microgrids_in_range"] >= 0.95
    assert overall["contiguous"] == 1.0
    assert overall["compounds_kept"] >= 0.97  # issue 2's target on this district


def test_unseen_demo_district_validates() -> None:
    from gis.demo import make_demo_district

    district = make_demo_district(15_000, seed=11).district
    plan = make_plan(district, GridRules(seed=3))
    assert validate_plan(plan, district) == []
    overall = plan.report.set_index("community_code").loc["overall"]
    assert overall["grids_in_range_feasible"] >= 0.95
