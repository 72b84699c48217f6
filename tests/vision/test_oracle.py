"""The ORACLE test detector itself: it must see what a camera sees, or the map-side benchmark would mislead."""

from __future__ import annotations

import geopandas as gpd
import shapely

from tests.vision import scene
from tests.vision.oracle import OracleDetector, TruthObject

CAR = TruthObject("car", "car", shapely.box(-2.2, 29.1, 2.2, 30.9), 0.0, 1.6)


def _boxes(buildings: gpd.GeoDataFrame | None) -> int:
    frame = scene.frames()[0]  # camera above (-10, 15) at 60 m
    oracle = OracleDetector(
        [CAR], {frame.frame_id: (frame.pose, frame.camera)}, scene.geolocator(), buildings=buildings
    )
    return len(oracle.detect([frame.image], [frame.frame_id])[0])


def test_an_object_behind_a_tall_building_is_not_seen() -> None:
    tower = gpd.GeoDataFrame(
        {"height_m": [55.0]}, geometry=[shapely.box(-8.0, 20.0, 0.0, 27.0)], crs=scene.CRS
    )
    low = gpd.GeoDataFrame({"height_m": [3.0]}, geometry=[shapely.box(-8.0, 20.0, 0.0, 27.0)], crs=scene.CRS)
    assert _boxes(None) == 1
    assert _boxes(low) == 1
    assert _boxes(tower) == 0


def test_an_object_outside_the_image_is_not_seen() -> None:
    far = TruthObject("far", "car", shapely.box(200.0, 0.0, 204.0, 2.0), 0.0, 1.6)
    frame = scene.frames()[0]
    oracle = OracleDetector([far], {frame.frame_id: (frame.pose, frame.camera)}, scene.geolocator())
    assert len(oracle.detect([frame.image], [frame.frame_id])[0]) == 0
