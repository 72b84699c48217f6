"""The simulated world: planted objects, their zones and violation flags, determinism, ground-truth file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from drone.world import (
    CATEGORY_BY_CLASS,
    CLASS_NAMES,
    World,
    WorldError,
    _road_lines,
    _stalls,
    build_world,
    is_violation,
    read_zones,
    truth_frame,
    write_truth,
)
from gis.demo import DemoDistrict, make_demo_district, write_demo


@pytest.fixture(scope="module")
def demo() -> DemoDistrict:
    return make_demo_district(10_000, seed=1)


@pytest.fixture(scope="module")
def world(demo: DemoDistrict) -> World:
    return build_world(demo.district, demo.zones, seed=3)


def _zone_union(world: World, name: str) -> shapely.Geometry:
    return shapely.union_all(world.surfaces[name].geometry.to_numpy())


def test_every_class_is_planted_with_violations_and_look_alikes(world: World) -> None:
    classes = Counter(o.class_name for o in world.objects)
    assert set(classes) == set(CLASS_NAMES)
    flags = Counter((o.class_name, o.violation) for o in world.objects)
    assert flags[("car", False)] > 0 and flags[("car", True)] > 0  # in bays and outside them
    assert flags[("garbage", False)] > 0 and flags[("garbage", True)] > 0
    assert {o.zone for o in world.objects if o.class_name in ("shed", "steel_shack")} >= {"roof", "green"}
    assert all(o.category_code == CATEGORY_BY_CLASS[o.class_name] for o in world.objects)


def test_violation_flags_follow_the_zone_the_footprint_lies_in(world: World) -> None:
    parking = _zone_union(world, "parking")
    public = shapely.union_all([_zone_union(world, "public_space"), _zone_union(world, "fire_lanes")])
    for obj in world.objects:
        if obj.class_name in ("car", "motorbike"):
            in_bay = obj.footprint.intersection(parking).area >= 0.5 * obj.footprint.area
            assert obj.violation is (not in_bay), obj
        elif obj.class_name in ("clutter", "garbage"):
            assert obj.violation is bool(public.contains(obj.footprint.centroid)), obj
        else:
            assert obj.violation, obj


def test_rule_table() -> None:
    assert not is_violation("car", "parking")
    assert is_violation("car", "fire_lanes") and is_violation("motorbike", "green")
    assert is_violation("shed", "green") and is_violation("steel_shack", "roof")
    assert is_violation("garbage", "public_space") and not is_violation("clutter", "compound")


def test_ground_objects_do_not_overlap_buildings_or_each_other(world: World) -> None:
    ground = [o.footprint for o in world.objects if o.base_height_m == 0]
    tree = shapely.STRtree(ground)
    pairs = tree.query(ground, predicate="intersects")
    assert np.all(pairs[0] == pairs[1])
    assert not shapely.intersects(shapely.union_all(world.buildings.geometry.to_numpy()), ground).any()


def test_roof_objects_stand_on_their_building_at_its_height(world: World) -> None:
    roof_objects = [o for o in world.objects if o.zone == "roof"]
    assert roof_objects
    for obj in roof_objects:
        hosts = world.buildings[world.buildings.contains(obj.footprint)]
        assert len(hosts) == 1
        assert obj.base_height_m == pytest.approx(float(hosts["height_m"].iloc[0]))


def test_same_seed_same_world_other_seed_other_world(demo: DemoDistrict) -> None:
    lon, lat = demo.district.buildings.to_crs(4326).geometry.iloc[20].centroid.coords[0]
    area = shapely.box(lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002)
    first, again, other = (build_world(demo.district, demo.zones, seed=s, area_wgs84=area) for s in (3, 3, 4))
    assert len(first.objects) > 20
    assert [(o.object_id, o.class_name, o.footprint.wkb, o.colour_bgr) for o in again.objects] == [
        (o.object_id, o.class_name, o.footprint.wkb, o.colour_bgr) for o in first.objects
    ]
    assert again.trees.geometry.to_wkb().tolist() == first.trees.geometry.to_wkb().tolist()
    assert [o.footprint.wkb for o in other.objects] != [o.footprint.wkb for o in first.objects]


def test_area_limits_the_world_and_local_crs_is_centred_on_it(demo: DemoDistrict) -> None:
    lon, lat = demo.district.buildings.to_crs(4326).geometry.iloc[10].centroid.coords[0]
    area = shapely.box(lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001)
    world = build_world(demo.district, demo.zones, seed=0, area_wgs84=area)
    east, north = world.to_local(lon, lat)
    assert abs(east) < 120 and abs(north) < 120
    assert all(world.area.contains(o.footprint.centroid) for o in world.objects if o.base_height_m == 0)
    back = world.to_wgs84(east, north)
    assert back == pytest.approx((lon, lat), abs=1e-9)


def test_truth_file_round_trips_in_wgs84(world: World, tmp_path: Path) -> None:
    path = tmp_path / "truth.gpkg"
    chosen = {o.object_id: i + 1 for i, o in enumerate(world.objects[:50])}
    write_truth(world, path, sightings=chosen)
    truth = gpd.read_file(path, layer="objects")
    assert truth.crs.to_epsg() == 4326
    assert set(truth["object_id"]) == set(chosen)
    assert {"category_code", "violation", "class_name", "object_id"} <= set(truth.columns)
    assert truth["violation"].dtype == bool
    back = truth.to_crs(world.crs).set_index("object_id")
    for obj in world.objects[:50]:
        assert back.loc[obj.object_id, "geometry"].centroid.distance(obj.footprint.centroid) < 1e-3
        assert back.loc[obj.object_id, "category_code"] == obj.category_code
        assert back.loc[obj.object_id, "sightings"] == chosen[obj.object_id]


def test_failed_truth_write_leaves_nothing_behind(world: World, tmp_path: Path) -> None:
    target = tmp_path / "truth.gpkg"
    target.mkdir()  # a folder where the file should go: the final move fails
    with pytest.raises(OSError):
        write_truth(world, target)
    assert target.is_dir() and list(tmp_path.iterdir()) == [target]


def test_truth_frame_has_one_row_per_object(world: World) -> None:
    assert len(truth_frame(world)) == len(world.objects)


def test_missing_zone_layers_are_named(demo: DemoDistrict, tmp_path: Path) -> None:
    with pytest.raises(WorldError, match="green"):
        build_world(demo.district, {k: v for k, v in demo.zones.items() if k != "green"})
    path = tmp_path / "district.gpkg"
    write_demo(demo, path)
    assert set(read_zones(path)) == {"parking", "fire_lanes", "green", "public_space"}
    only = tmp_path / "only_buildings.gpkg"
    demo.district.buildings.to_file(only, layer="buildings")
    with pytest.raises(WorldError, match=r"only_buildings.gpkg: zone layers missing: parking, fire_lanes"):
        read_zones(only)
    with pytest.raises(WorldError, match="file not found"):
        read_zones(tmp_path / "absent.gpkg")


def test_zone_layer_without_crs_is_named(demo: DemoDistrict) -> None:
    zones = dict(demo.zones)
    zones["green"] = gpd.GeoDataFrame(geometry=list(zones["green"].geometry))
    with pytest.raises(WorldError, match="layer green has no CRS"):
        build_world(demo.district, zones)


def test_area_without_buildings_is_an_error(demo: DemoDistrict) -> None:
    with pytest.raises(WorldError, match="no buildings"):
        build_world(demo.district, demo.zones, area_wgs84=shapely.box(10.0, 10.0, 10.001, 10.001))


def test_painted_lines_stall_dividers_and_lanes_that_stop_at_crossings(world: World) -> None:
    kinds = Counter(world.markings["kind"])
    assert kinds["stall"] > 0 and kinds["lane"] > 0 and kinds["centre"] > 0
    parking = _zone_union(world, "parking").buffer(0.01)
    stalls = world.markings[world.markings["kind"] == "stall"].geometry
    assert stalls.within(parking).all()
    roads = list(world.surfaces["roads"].geometry)
    for line in world.markings[world.markings["kind"] != "stall"].geometry:
        hosts = [road for road in roads if road.buffer(0.01).contains(line)]
        assert len(hosts) == 1  # inside its own road and never painted across another


@pytest.mark.parametrize(
    "strip",
    [
        shapely.box(0.0, 0.0, 50.0, 5.0),  # along x
        shapely.box(0.0, 0.0, 5.0, 50.0),  # along y
        shapely.Polygon([(0, 0), (0, 5), (50, 5), (50, 0)]),  # clockwise
        shapely.affinity.rotate(shapely.box(0.0, 0.0, 50.0, 5.0), 33.0),
    ],
)
def test_stalls_and_lanes_lie_inside_strips_and_roads_of_any_orientation(strip: shapely.Polygon) -> None:
    stalls = _stalls(gpd.GeoDataFrame(geometry=[strip]))
    assert len(stalls) == 20  # 50 m / 2.5 m
    assert all(strip.buffer(1e-6).contains(stall.polygon) for stall in stalls)
    road = strip.buffer(7.5, join_style="mitre")  # a 20 m wide road around the strip
    lines = _road_lines(gpd.GeoDataFrame(geometry=[road]))
    assert {kind for _, kind in lines} == {"centre", "lane"}
    assert all(road.buffer(1e-6).contains(line) for line, _ in lines)
    centre = next(line for line, kind in lines if kind == "centre")
    assert centre.distance(road.centroid) < 0.2
