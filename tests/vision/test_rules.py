"""Each map rule on a small hand-made zones GeoPackage, the plan lookup and the category scheme."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry.base import BaseGeometry

from gis.io import write_layers
from gis.model import UNIT_COLUMNS, GridPlan
from vision.flags import DEFAULT_SCHEME, Category
from vision.rules import PlanIndex, Zones, ZonesError, judge, read_zones

UTM51 = pyproj.CRS.from_epsg(32651)
X0, Y0 = 300_000.0, 3_465_000.0


def _box(x1: float, y1: float, x2: float, y2: float) -> BaseGeometry:
    return shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)


def _layer(geometries: list[BaseGeometry], **columns: list[object]) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame({"zone_id": range(len(geometries)), **columns}, geometry=geometries, crs=UTM51)
    return frame.to_crs("EPSG:4326")  # stored in WGS-84 as the demo district writes it


LAYOUT = {
    "parking": [_box(0, 0, 20, 5)],
    "fire_lanes": [_box(0, 10, 50, 15)],
    "green": [_box(60, 0, 100, 40)],
    "public_space": [_box(0, 50, 40, 90)],
    "buildings": [_box(120, 0, 160, 20)],
}


@pytest.fixture(scope="module")
def zones_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zones") / "zones.gpkg"
    layers = {name: _layer(geoms) for name, geoms in LAYOUT.items() if name != "buildings"}
    layers["buildings"] = _layer(LAYOUT["buildings"], floors=[6])
    write_layers(path, layers)
    return path


@pytest.fixture(scope="module")
def zones(zones_path: Path) -> Zones:
    return read_zones(zones_path, UTM51)


def _object(x: float, y: float, size_m: float = 2.0) -> BaseGeometry:
    return _box(x - size_m / 2, y - size_m / 2, x + size_m / 2, y + size_m / 2)


@pytest.mark.parametrize(
    ("class_name", "x", "y", "rule", "severity", "code"),
    [
        ("car", 10, 2.5, None, 0, ""),
        ("car", 10, 4.6, None, 0, ""),  # 70 % of the footprint in the bay
        ("car", 10, 5.4, "vehicle_outside_bay", 1, "0505"),  # 30 % in the bay
        ("car", 10, 12.5, "vehicle_in_fire_lane", 3, "0505"),
        ("car", 80, 20, "vehicle_on_green", 2, "0505"),
        ("car", 30, 30, "vehicle_outside_bay", 1, "0505"),
        ("motorbike", 30, 30, "vehicle_outside_bay", 1, "0506"),
        ("motorbike", 5, 12, "vehicle_in_fire_lane", 3, "0506"),
        ("shed", 80, 20, "structure_on_green", 2, "0101"),
        ("steel_shack", 20, 70, "structure_on_public_space", 2, "0101"),
        ("shed", 140, 10, "structure_on_roof", 1, "0101"),
        ("steel_shack", 30, 30, "structure_unregistered", 1, "0101"),
        ("clutter", 25, 12.5, "clutter_in_fire_lane", 3, "0507"),
        ("garbage", 20, 70, "clutter_in_public_space", 1, "0102"),
        ("garbage", 30, 30, None, 0, ""),
        ("person", 30, 30, None, 0, ""),
    ],
)
def test_each_rule(
    zones: Zones, class_name: str, x: float, y: float, rule: str | None, severity: int, code: str
) -> None:
    verdict = judge(class_name, _object(x, y), zones)
    if rule is None:
        assert verdict is None
        return
    assert verdict is not None
    assert (verdict.rule, verdict.severity, verdict.category.code) == (rule, severity, code)
    assert verdict.category.standard.startswith("GB/T 30428.2")


def test_structure_matching_a_registered_footprint_is_no_violation(zones: Zones) -> None:
    detected_building = _box(121, 1, 158, 19)
    assert judge("steel_shack", detected_building, zones) is None


def test_clutter_in_a_corridor_when_the_city_maps_corridors(zones: Zones) -> None:
    with_corridor = Zones(
        crs=zones.crs,
        parking=zones.parking,
        fire_lanes=zones.fire_lanes,
        green=zones.green,
        public_space=zones.public_space,
        corridors=_box(25, 25, 35, 35),
        buildings=zones.buildings,
    )
    verdict = judge("clutter", _object(30, 30), with_corridor)
    assert verdict is not None and verdict.rule == "clutter_in_corridor"
    assert judge("clutter", _object(30, 30), zones) is None


def test_a_city_can_remap_categories(zones: Zones) -> None:
    scheme = DEFAULT_SCHEME.with_overrides({"car": Category("0599", "车辆乱停", "vehicle", "local-2024")})
    verdict = judge("car", _object(30, 30), zones, scheme)
    assert verdict is not None and (verdict.category.code, verdict.category.standard) == (
        "0599",
        "local-2024",
    )
    assert DEFAULT_SCHEME.category("car") == Category("0505", "机动车乱停放", "illegal car parking")


def test_building_heights_come_from_floors(zones: Zones) -> None:
    assert zones.buildings["height_m"].tolist() == [18.0]
    assert zones.buildings.crs == UTM51


def test_missing_zone_layer_is_named(tmp_path: Path) -> None:
    path = tmp_path / "partial.gpkg"
    write_layers(path, {"parking": _layer(LAYOUT["parking"]), "green": _layer(LAYOUT["green"])})
    with pytest.raises(ZonesError, match=r"partial\.gpkg: missing zone layer\(s\) fire_lanes, public_space"):
        read_zones(path, UTM51)


def test_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ZonesError, match="not found"):
        read_zones(tmp_path / "absent.gpkg", UTM51)
    bad = tmp_path / "bad.gpkg"
    bad.write_text("not a geopackage")
    with pytest.raises(ZonesError, match=r"bad\.gpkg: cannot open"):
        read_zones(bad, UTM51)


def _plan() -> GridPlan:
    status = {"status": ["ok"], "note": [""]}
    grids = gpd.GeoDataFrame(
        {
            "grid_code": ["320571001001001"],
            "community_code": ["320571001001"],
            "households": [400],
            "buildings": [1],
        }
        | status,
        geometry=[_box(0, 0, 200, 100)],
        crs=UTM51,
    ).to_crs("EPSG:4326")
    micro = gpd.GeoDataFrame(
        {"microgrid_code": ["32057100100100101"], "grid_code": ["320571001001001"], "households": [60]}
        | status,
        geometry=[_box(0, 0, 100, 100)],
        crs=UTM51,
    ).to_crs("EPSG:4326")
    units = gpd.GeoDataFrame({c: [] for c in UNIT_COLUMNS}, geometry=[], crs="EPSG:4326")
    return GridPlan(grids, micro, units, pd.DataFrame())


@pytest.mark.parametrize(
    ("x", "y", "grid", "micro"),
    [
        (50, 50, "320571001001001", "32057100100100101"),
        (150, 50, "320571001001001", None),
        (500, 50, None, None),
    ],
)
def test_plan_index_places_points(x: float, y: float, grid: str | None, micro: str | None) -> None:
    place = PlanIndex(_plan(), UTM51).place(shapely.Point(X0 + x, Y0 + y))
    assert (place.grid_code, place.microgrid_code) == (grid, micro)
