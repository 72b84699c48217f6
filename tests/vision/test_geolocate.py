"""Geolocation against analytic cases: nadir and oblique views, roofs, CRS conversion and the error estimate."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from drone.geometry import local_enu_crs
from drone.model import Camera, Frame, Pose
from vision.geolocate import Geolocator, SizeRange
from vision.model import Detections

CAMERA = Camera("square-pixels", 13.2, 8.8, 8.8, 1200, 800)  # fx = fy = 800 px
LON, LAT = 120.7, 31.3
UTM51 = pyproj.CRS.from_epsg(32651)
NAMES = ("car", "flat")
GEOD = pyproj.Geod(ellps="WGS84")


def _frame(**pose: float | bool) -> Frame:
    values: dict[str, float | bool] = {"altitude_agl_m": 80.0, **pose}
    image = np.zeros((CAMERA.image_height_px, CAMERA.image_width_px, 3), np.uint8)
    return Frame("f1", datetime(2026, 5, 1, tzinfo=UTC), image, Pose(LAT, LON, **values), CAMERA)  # type: ignore[arg-type]


def _boxes(centres: list[tuple[float, float]], class_id: int = 1, half_px: float = 10.0) -> Detections:
    boxes = np.array([[x - half_px, y - half_px, x + half_px, y + half_px] for x, y in centres], np.float32)
    return Detections(
        "f1", boxes, np.full(len(centres), 0.9, np.float32), np.full(len(centres), class_id), NAMES
    )


def _enu_locator() -> Geolocator:
    return Geolocator(local_enu_crs(LON, LAT), class_height_m={"car": 1.5})


def test_nadir_box_offsets_scale_with_altitude_over_focal_length() -> None:
    located = _enu_locator().locate(_boxes([(600.0, 400.0), (700.0, 400.0), (600.0, 200.0)]), _frame())
    gsd = 80.0 / 800.0
    np.testing.assert_allclose(located.points_xy, [[0.0, 0.0], [100 * gsd, 0.0], [0.0, 200 * gsd]], atol=1e-3)
    assert located.footprints[0].area == pytest.approx((20 * gsd) ** 2, rel=1e-3)
    np.testing.assert_array_equal(located.surface_m, 0.0)


def test_yaw_rotates_the_image_on_the_ground() -> None:
    frame = _frame(yaw_deg=90.0, gimbal_yaw_deg=90.0)  # image top looks east, image right is south
    located = _enu_locator().locate(_boxes([(700.0, 400.0)]), frame)
    np.testing.assert_allclose(located.points_xy[0], [0.0, -10.0], atol=1e-3)


def test_box_centre_is_located_at_half_the_object_height() -> None:
    located = _enu_locator().locate(_boxes([(700.0, 400.0)], class_id=0), _frame())
    assert located.points_xy[0, 0] == pytest.approx(100 * (80.0 - 0.75) / 800.0, abs=1e-3)


def test_oblique_centre_ray_lands_at_altitude_over_tan_depression() -> None:
    located = _enu_locator().locate(_boxes([(600.0, 400.0)]), _frame(gimbal_pitch_deg=-45.0))
    np.testing.assert_allclose(located.points_xy[0], [0.0, 80.0], atol=1e-3)
    steeper = _enu_locator().locate(_boxes([(600.0, 400.0)]), _frame(gimbal_pitch_deg=-60.0))
    assert steeper.points_xy[0, 1] == pytest.approx(80.0 / np.tan(np.radians(60.0)), abs=1e-3)


def test_relative_gimbal_composes_with_vehicle_attitude() -> None:
    frame = _frame(pitch_deg=-15.0, gimbal_pitch_deg=-30.0, gimbal_absolute=False)
    located = _enu_locator().locate(_boxes([(600.0, 400.0)]), frame)
    np.testing.assert_allclose(located.points_xy[0], [0.0, 80.0], atol=1e-3)


def test_utm_points_agree_with_geodesic_offsets() -> None:
    """UTM grid north is ~1.2° off true north here; the local Jacobian must absorb it."""
    located = Geolocator(UTM51, class_height_m={}).locate(_boxes([(1100.0, 400.0)]), _frame())
    lon, lat = located.to_wgs84()[["lon_deg", "lat_deg"]].to_numpy()[0]
    azimuth, _, distance = GEOD.inv(LON, LAT, lon, lat)
    assert distance == pytest.approx(50.0, abs=0.01)
    assert azimuth == pytest.approx(90.0, abs=0.01)


def test_object_on_a_roof_is_located_on_the_roof_plane() -> None:
    crs = local_enu_crs(LON, LAT)
    building = gpd.GeoDataFrame(
        {"height_m": [30.0]}, geometry=[shapely.box(20.0, -20.0, 60.0, 20.0)], crs=crs
    )
    locator = Geolocator(crs, building, class_height_m={})
    located = locator.locate(_boxes([(1000.0, 400.0), (650.0, 400.0)]), _frame())
    assert located.surface_m.tolist() == [30.0, 0.0]
    assert located.points_xy[0, 0] == pytest.approx(400 * 50.0 / 800.0, abs=1e-3)
    assert located.points_xy[1, 0] == pytest.approx(5.0, abs=1e-3)


def test_ray_grazing_a_tall_building_beside_the_point_stays_on_the_ground() -> None:
    crs = local_enu_crs(LON, LAT)
    building = gpd.GeoDataFrame(
        {"height_m": [30.0]}, geometry=[shapely.box(-60.0, 30.0, -20.0, 60.0)], crs=crs
    )
    located = Geolocator(crs, building, class_height_m={}).locate(_boxes([(1000.0, 400.0)]), _frame())
    assert located.surface_m[0] == 0.0


def test_error_grows_with_vertical_accuracy_and_distance_from_nadir() -> None:
    centres = [(600.0, 400.0), (1100.0, 400.0)]
    precise = _enu_locator().locate(
        _boxes(centres), _frame(horizontal_accuracy_m=0.5, vertical_accuracy_m=0.5)
    )
    rough = _enu_locator().locate(_boxes(centres), _frame(horizontal_accuracy_m=0.5, vertical_accuracy_m=5.0))
    assert precise.error_m[0] == pytest.approx(np.hypot(0.5, 2.0 * 0.1), rel=1e-6)
    assert rough.error_m[1] > rough.error_m[0] > 0.5
    assert rough.error_m[1] > precise.error_m[1]


def test_footprint_of_a_nadir_frame_is_the_camera_footprint() -> None:
    footprint = _enu_locator().footprint(_frame())
    width_m, height_m = CAMERA.footprint_m(80.0)
    assert footprint.area == pytest.approx(width_m * height_m, rel=1e-6)
    assert footprint.centroid.distance(shapely.Point(0.0, 0.0)) < 1e-6


def test_oblique_footprint_above_the_horizon_is_clipped_but_finite() -> None:
    footprint = _enu_locator().footprint(_frame(gimbal_pitch_deg=-10.0))
    assert footprint.is_valid and np.isfinite(footprint.area)
    ranges = [np.hypot(x, y) for x, y in footprint.exterior.coords]
    assert max(ranges) == pytest.approx(800.0, rel=1e-6)


def test_detections_of_another_frame_are_rejected() -> None:
    detections = Detections.empty("other", NAMES)
    with pytest.raises(ValueError, match="other"):
        _enu_locator().locate(detections, _frame())


def test_wgs84_output_holds_polygons_and_points() -> None:
    frame = _enu_locator().locate(_boxes([(700.0, 400.0)]), _frame()).to_wgs84()
    assert frame.crs == "EPSG:4326"
    assert frame.geometry.iloc[0].contains(shapely.Point(frame["lon_deg"].iloc[0], frame["lat_deg"].iloc[0]))
    assert frame["class_name"].tolist() == ["flat"]


def test_box_sides_in_metres_and_the_class_size_gate() -> None:
    """At 80 m with fx = 800 px a pixel is 0.1 m: a 45 × 18 px box is 4.5 × 1.8 m, a 20 × 7 px box 2 × 0.7 m."""
    boxes = np.array([[600, 400, 645, 418], [600, 300, 607, 320]], np.float32)
    detections = Detections("f1", boxes, np.full(2, 0.9, np.float32), np.array([1, 1]), NAMES)
    located = Geolocator(local_enu_crs(LON, LAT)).locate(detections, _frame())
    np.testing.assert_allclose(located.box_sides_m(), [[4.5, 1.8], [2.0, 0.7]], atol=1e-3)
    car = SizeRange((3.8, 7.5))
    assert located.plausible({"flat": car}).tolist() == [True, False]  # 2 m long is no car
    assert located.plausible({"car": car}).tolist() == [True, True]  # classes not listed always fit
    kept = located.filter(located.plausible({"flat": car}))
    assert len(kept) == 1 and kept.footprints[0].area == pytest.approx(4.5 * 1.8, rel=1e-3)
    squat = SizeRange((1.0, 9.0), (2.5, math.inf))
    assert squat.admits(np.array([[4.0, 3.0], [4.0, 1.5]])).tolist() == [True, False]


def test_boxes_cut_by_the_image_edge() -> None:
    boxes = np.array(
        [[0, 10, 20, 30], [10, 10, 20, 30], [1190, 10, 1200, 30], [10, 790, 20, 800]], np.float32
    )
    detections = Detections("f1", boxes, np.full(4, 0.9, np.float32), np.zeros(4, np.int64), NAMES)
    assert detections.at_edge(1200, 800).tolist() == [True, False, True, True]
