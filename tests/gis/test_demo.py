"""Tests of the synthetic demo district: totals, determinism, geometry rules, zones and the GeoPackage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from gis.demo import (
    LAYERS,
    METRIC_CRS,
    ZONE_LAYERS,
    DemoDistrict,
    demo_layers,
    make_demo_district,
    write_demo,
)
from gis.model import BUILDING_COLUMNS, COMMUNITY_COLUMNS, COMPOUND_COLUMNS, District

SMALL_HOUSEHOLDS = 12_000
LARGE_HOUSEHOLDS = 200_000
COMMUNITY_RANGE = (1_500, 6_500)


@pytest.fixture(scope="module")
def small() -> DemoDistrict:
    return make_demo_district(SMALL_HOUSEHOLDS, seed=3)


@pytest.fixture(scope="module")
def metric(small: DemoDistrict) -> dict[str, gpd.GeoDataFrame]:
    """Every layer of the small district in metres."""
    return {name: frame.to_crs(METRIC_CRS) for name, frame in demo_layers(small).items()}


@pytest.fixture(scope="module")
def large() -> DemoDistrict:
    return make_demo_district(LARGE_HOUSEHOLDS, seed=7)


def _community_households(demo: DemoDistrict) -> pd.Series[Any]:
    totals: pd.Series[Any] = demo.district.buildings.groupby("community_code")["households"].sum()
    return totals


def _compounds(demo: DemoDistrict) -> gpd.GeoDataFrame:
    assert demo.district.compounds is not None
    return demo.district.compounds


def _roads(demo: DemoDistrict) -> gpd.GeoDataFrame:
    assert demo.district.roads is not None
    return demo.district.roads


def _overlap_area_m2(left: gpd.GeoDataFrame, right: gpd.GeoDataFrame, same: bool = False) -> float:
    """Total area where a row of ``left`` overlaps a (different, when ``same``) row of ``right``."""
    left_idx, right_idx = right.sindex.query(left.geometry, predicate="intersects")
    if same:
        keep = left_idx != right_idx
        left_idx, right_idx = left_idx[keep], right_idx[keep]
    cut = shapely.intersection(left.geometry.values[left_idx], right.geometry.values[right_idx])
    return float(shapely.area(cut).sum())


@pytest.mark.parametrize(("households", "seed"), [(10_000, 0), (17_500, 1), (30_000, 2)])
def test_total_households_within_three_percent(households: int, seed: int) -> None:
    demo = make_demo_district(households, seed=seed)
    assert abs(demo.district.households - households) <= 0.03 * households


def test_large_district_keeps_every_promise(large: DemoDistrict) -> None:
    buildings = large.district.buildings
    assert abs(large.district.households - LARGE_HOUSEHOLDS) <= 0.03 * LARGE_HOUSEHOLDS
    per_community = _community_households(large)
    assert per_community.between(*COMMUNITY_RANGE).all()
    assert len(per_community) == len(large.district.communities)
    assert (buildings["households"] > 500).sum() >= 2
    assert (buildings["households"] / buildings["units"] > 80).sum() >= 50
    assert set(buildings["kind"]) >= {"walkup", "highrise", "resettlement", "community_centre"}


def test_same_seed_gives_the_same_district() -> None:
    first, second = make_demo_district(10_000, seed=5), make_demo_district(10_000, seed=5)
    for name, frame in demo_layers(first).items():
        assert_geodataframe_equal(frame, demo_layers(second)[name])


def test_different_seeds_give_different_districts() -> None:
    first, second = make_demo_district(10_000, seed=5), make_demo_district(10_000, seed=6)
    a, b = first.district.buildings, second.district.buildings
    assert len(a) != len(b) or not a.geometry.geom_equals_exact(b.geometry, 1e-9).all()


def test_rejects_households_out_of_range() -> None:
    with pytest.raises(ValueError, match="households"):
        make_demo_district(5_000)


def test_district_validates_and_is_in_wgs84(small: DemoDistrict) -> None:
    district = small.district
    rebuilt = District(district.buildings, district.communities, district.compounds, district.roads, "again")
    assert rebuilt.households == district.households
    for name, frame in demo_layers(small).items():
        assert frame.crs == "EPSG:4326", name
    lon, lat = district.communities.union_all().centroid.coords[0]
    assert 120.69 < lon < 120.80
    assert 31.29 < lat < 31.40


def test_building_columns_follow_the_contract(small: DemoDistrict) -> None:
    buildings = small.district.buildings
    assert set(BUILDING_COLUMNS) <= set(buildings.columns)
    assert buildings["building_id"].is_unique
    assert buildings["households"].dtype == np.int64
    assert str(buildings["floors"].dtype) == "Int64"
    assert str(buildings["units"].dtype) == "Int64"
    assert not buildings["households_estimated"].any()
    assert (buildings["units"] >= 1).all()
    assert (buildings.geom_type == "Polygon").all()
    assert set(buildings["community_code"]) <= set(small.district.communities["community_code"])
    compound_ids = buildings["compound_id"].dropna()
    assert set(compound_ids) <= set(_compounds(small)["compound_id"])


def test_communities_compounds_and_roads_have_codes_and_names(small: DemoDistrict) -> None:
    communities, compounds = small.district.communities, _compounds(small)
    assert set(COMMUNITY_COLUMNS) <= set(communities.columns)
    assert set(COMPOUND_COLUMNS) <= set(compounds.columns)
    codes = communities["community_code"]
    assert codes.is_unique
    assert codes.str.fullmatch(r"320571\d{6}").all()
    assert communities["name"].is_unique
    assert communities["name"].str.endswith("社区").all()
    assert compounds["compound_id"].is_unique
    assert compounds["name"].is_unique
    assert set(_roads(small)["kind"]) == {"arterial", "secondary", "river"}


def test_communities_tile_the_district(metric: dict[str, gpd.GeoDataFrame]) -> None:
    communities = metric["communities"]
    assert (communities.geom_type == "Polygon").all()
    envelope = shapely.box(*communities.total_bounds)
    covered = communities.union_all()
    assert abs(covered.area - envelope.area) <= 1e-6 * envelope.area
    assert abs(communities.area.sum() - envelope.area) <= 1e-6 * envelope.area
    assert _overlap_area_m2(communities, communities, same=True) < 1.0


def test_every_building_lies_in_exactly_its_own_community(metric: dict[str, gpd.GeoDataFrame]) -> None:
    buildings, communities = metric["buildings"], metric["communities"]
    joined = buildings.sjoin(communities, predicate="within", lsuffix="b", rsuffix="c")
    assert len(joined) == len(buildings)
    assert joined["building_id"].is_unique
    assert (joined["community_code_b"] == joined["community_code_c"]).all()


def test_buildings_lie_inside_their_compound(metric: dict[str, gpd.GeoDataFrame]) -> None:
    buildings = metric["buildings"].dropna(subset=["compound_id"])
    walls = metric["compounds"].set_index("compound_id").geometry
    assert buildings.geometry.within(walls.loc[buildings["compound_id"]], align=False).all()


def test_buildings_touch_no_road_river_or_other_building(metric: dict[str, gpd.GeoDataFrame]) -> None:
    buildings, roads = metric["buildings"], metric["roads"]
    assert not len(buildings.sjoin(roads, predicate="intersects"))
    left, right = buildings.sindex.query(buildings.geometry, predicate="intersects")
    assert (left == right).all()


def test_community_households_are_in_range(small: DemoDistrict) -> None:
    per_community = _community_households(small)
    assert len(per_community) == len(small.district.communities)
    assert per_community.between(*COMMUNITY_RANGE).all()


def test_building_mix_has_big_towers_busy_stairwells_and_public_buildings(small: DemoDistrict) -> None:
    buildings = small.district.buildings
    households = buildings["households"]
    assert (households > 500).any()
    assert (households / buildings["units"] > 80).sum() >= 3
    assert (households == 0).any()
    centres = buildings[buildings["kind"] == "community_centre"]
    assert sorted(centres["community_code"]) == sorted(small.district.communities["community_code"])
    assert (buildings.loc[buildings["kind"] == "walkup", "floors"] == 6).all()
    public = buildings[households == 0]
    assert public["compound_id"].isna().all()
    assert (public["units"] == 1).all()


def test_zones_have_ids_owners_and_stay_off_buildings(
    small: DemoDistrict, metric: dict[str, gpd.GeoDataFrame]
) -> None:
    compound_ids = set(_compounds(small)["compound_id"])
    for name in ZONE_LAYERS:
        zone = small.zones[name]
        assert len(zone), name
        assert {"zone_id", "compound_id"} <= set(zone.columns)
        assert zone["zone_id"].is_unique
        assert (zone.geom_type == "Polygon").all()
        assert set(zone["compound_id"].dropna()) <= compound_ids
        assert _overlap_area_m2(metric[name], metric["buildings"]) < 1.0, name
    assert small.zones["fire_lanes"]["compound_id"].notna().all()


def test_write_demo_round_trips_all_layers(small: DemoDistrict, tmp_path: Path) -> None:
    target = tmp_path / "demo.gpkg"
    write_demo(small, target)
    write_demo(small, target)  # replaces an existing file
    assert sorted(pyogrio.list_layers(target)[:, 0]) == sorted(LAYERS)
    for name, frame in demo_layers(small).items():
        back = gpd.read_file(target, layer=name)
        assert len(back) == len(frame), name
        assert set(frame.columns) <= set(back.columns), name
    buildings = gpd.read_file(target, layer="buildings")
    assert int(buildings["households"].sum()) == small.district.households
    assert [p.name for p in tmp_path.iterdir()] == ["demo.gpkg"]


def test_write_demo_leaves_nothing_behind_on_failure(
    small: DemoDistrict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_to_file = gpd.GeoDataFrame.to_file
    calls: list[str] = []

    def flaky_to_file(frame: gpd.GeoDataFrame, *args: Any, **kwargs: Any) -> None:
        calls.append(kwargs["layer"])
        if len(calls) == 3:
            raise OSError("disk full")
        real_to_file(frame, *args, **kwargs)

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", flaky_to_file)
    with pytest.raises(OSError, match="disk full"):
        write_demo(small, tmp_path / "demo.gpkg")
    assert list(tmp_path.iterdir()) == []
