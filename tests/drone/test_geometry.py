"""The pose → camera model: nadir and oblique analytic cases, round trips, homography agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Transformer

from drone.geometry import (
    camera_rotation,
    ground_to_image,
    image_to_ground,
    local_enu_crs,
    plane_homography,
)
from drone.model import Camera, Pose

CAMERA = Camera("test", 17.3, 13.0, 12.29, 1920, 1080)


def _pose(**kwargs: float | bool) -> Pose:
    return Pose(lat_deg=31.3, lon_deg=120.7, altitude_agl_m=80.0, **kwargs)  # type: ignore[arg-type]


def test_rotation_is_orthonormal_for_any_attitude() -> None:
    pose = _pose(yaw_deg=37.0, pitch_deg=4.0, roll_deg=-3.0, gimbal_pitch_deg=-60.0, gimbal_absolute=False)
    rotation = camera_rotation(pose)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_nadir_centre_pixel_maps_to_pose_ground_point() -> None:
    centre = image_to_ground(
        [[960.0, 540.0]], _pose(yaw_deg=123.0, gimbal_yaw_deg=123.0), CAMERA, 0.0, (5.0, 7.0)
    )
    np.testing.assert_allclose(centre[0], [5.0, 7.0, 0.0], atol=1e-9)


def test_nadir_yaw_zero_has_north_up_and_east_right() -> None:
    pixels = ground_to_image([[10.0, 0.0], [0.0, 10.0]], _pose(), CAMERA)
    gsd = CAMERA.gsd_m_px(80.0)
    np.testing.assert_allclose(pixels[0], [960.0 + 10.0 / gsd, 540.0], rtol=1e-9)
    np.testing.assert_allclose(pixels[1], [960.0, 540.0 - 10.0 * CAMERA.intrinsics()[1, 1] / 80.0], rtol=1e-9)


def test_gimbal_yaw_90_puts_east_at_image_top() -> None:
    pixels = ground_to_image([[10.0, 0.0]], _pose(gimbal_yaw_deg=90.0), CAMERA)
    assert pixels[0, 0] == pytest.approx(960.0)
    assert pixels[0, 1] < 540.0


def test_oblique_centre_ray_hits_ground_at_altitude_over_tan_depression() -> None:
    pose = _pose(gimbal_pitch_deg=-45.0)
    point = image_to_ground([[960.0, 540.0]], pose, CAMERA)[0]
    np.testing.assert_allclose(point, [0.0, 80.0, 0.0], atol=1e-9)
    pose = _pose(gimbal_pitch_deg=-60.0, gimbal_yaw_deg=90.0)
    point = image_to_ground([[960.0, 540.0]], pose, CAMERA)[0]
    np.testing.assert_allclose(point, [80.0 / math.tan(math.radians(60.0)), 0.0, 0.0], atol=1e-9)


def test_relative_gimbal_composes_with_vehicle_attitude() -> None:
    relative = _pose(yaw_deg=90.0, gimbal_pitch_deg=-45.0, gimbal_absolute=False)
    absolute = _pose(gimbal_yaw_deg=90.0, gimbal_pitch_deg=-45.0)
    np.testing.assert_allclose(camera_rotation(relative), camera_rotation(absolute), atol=1e-12)
    # a vehicle rolled 10° right with a body-fixed nadir camera sees the ground point left of its nadir
    rolled = _pose(roll_deg=10.0, gimbal_absolute=False)
    point = image_to_ground([[960.0, 540.0]], rolled, CAMERA)[0]
    assert point[0] == pytest.approx(-80.0 * math.tan(math.radians(10.0)))


@pytest.mark.parametrize("height_m", [0.0, 18.0])
def test_round_trip_image_ground_image(height_m: float) -> None:
    pose = _pose(yaw_deg=20.0, gimbal_yaw_deg=20.0, gimbal_pitch_deg=-55.0, gimbal_roll_deg=2.0)
    rng = np.random.default_rng(3)
    pixels = rng.uniform([0, 300], [1920, 1080], size=(50, 2))
    ground = image_to_ground(pixels, pose, CAMERA, height_m, (100.0, -40.0))
    assert np.all(np.isfinite(ground))
    np.testing.assert_allclose(ground[:, 2], height_m)
    np.testing.assert_allclose(ground_to_image(ground, pose, CAMERA, (100.0, -40.0)), pixels, atol=1e-6)


def test_rays_above_horizon_and_points_behind_are_nan() -> None:
    pose = _pose(gimbal_pitch_deg=-10.0)
    assert np.isnan(image_to_ground([[960.0, 0.0]], pose, CAMERA)).all()
    assert np.isnan(ground_to_image([[0.0, -50.0]], pose, CAMERA)).all()


def test_plane_homography_agrees_with_projection() -> None:
    pose = _pose(gimbal_yaw_deg=33.0, gimbal_pitch_deg=-70.0)
    points = np.array([[3.0, 40.0, 12.0], [-20.0, 25.0, 12.0]])
    homography = plane_homography(pose, CAMERA, 12.0, (1.0, 2.0))
    projected = np.column_stack([points[:, :2], np.ones(2)]) @ homography.T
    np.testing.assert_allclose(
        projected[:, :2] / projected[:, 2:], ground_to_image(points, pose, CAMERA, (1.0, 2.0))
    )


def test_local_enu_crs_measures_true_east_and_north() -> None:
    to_enu = Transformer.from_crs("EPSG:4326", local_enu_crs(120.7, 31.3), always_xy=True)
    east, north = to_enu.transform(120.7, 31.3 + 0.01)
    assert east == pytest.approx(0.0, abs=1e-6)  # the meridian is the y axis: grid north is true north
    assert north == pytest.approx(1108.8, abs=1.0)  # one hundredth of a degree of latitude at 31.3°N


def test_bad_point_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="N×2 or N×3"):
        ground_to_image(np.zeros((3, 4)), _pose(), CAMERA)
