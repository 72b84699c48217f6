"""The pose → camera model, in one place: what the simulator renders with and what geolocation inverts.

Frames
------
* **ENU**: a local metric frame, x east, y north, z up, in metres. Any local metric CRS whose grid north is
  true north at the area works; :func:`local_enu_crs` gives an azimuthal equidistant one centred on a point,
  which is a tangent plane to within centimetres over a few kilometres (UTM's grid north is off by up to ~2°).
  Heights are above the local ground (z = 0), matching ``Pose.altitude_agl_m``.
* **Camera**: OpenCV's convention, x right, y down, z along the optical axis; pixels are continuous
  coordinates with (0, 0) at the top-left *corner* of the top-left pixel, so the image centre is (W/2, H/2)
  as in ``Camera.intrinsics()``, and pixel (i, j) of an array covers [i, i+1) × [j, j+1).

Angles (degrees, NED aerospace conventions, as in :class:`drone.model.Pose`)
---------------------------------------------------------------------------
An attitude (yaw ψ, pitch θ, roll φ) is the body → NED rotation ``Rz(ψ) · Ry(θ) · Rx(φ)``: yaw clockwise from
north, pitch positive nose up, roll positive right side down. The camera looks along the body x axis, its
image x axis is body y (right) and image y is body z (down). So a gimbal at pitch -90° looks straight down
with the image top towards the yaw direction: at yaw 0 the image top is north and its right is east.

With ``gimbal_absolute`` (as DJI reports), the camera attitude is the gimbal's (yaw, pitch, roll) alone;
otherwise it is the vehicle attitude composed with the gimbal angles relative to the body.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pyproj

from drone.model import Camera, Pose

FloatArray = npt.NDArray[np.float64]

#: ENU → NED axes.
_ENU_TO_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
#: body (x forward, y right, z down) → camera (x right, y down, z forward).
_BODY_TO_CAMERA = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def local_enu_crs(lon_deg: float, lat_deg: float) -> pyproj.CRS:
    """An azimuthal equidistant CRS (metres, x east, y north) centred on ``(lon_deg, lat_deg)``."""
    return pyproj.CRS.from_proj4(
        f"+proj=aeqd +lat_0={lat_deg:.9f} +lon_0={lon_deg:.9f} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    )


def attitude_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> FloatArray:
    """Body → NED rotation ``Rz(yaw) · Ry(pitch) · Rx(roll)`` (angles in degrees)."""
    psi, theta, phi = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    cz, sz = math.cos(psi), math.sin(psi)
    cy, sy = math.cos(theta), math.sin(theta)
    cx, sx = math.cos(phi), math.sin(phi)
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    result: FloatArray = rz @ ry @ rx
    return result


def camera_rotation(pose: Pose) -> FloatArray:
    """The 3×3 rotation taking ENU vectors to camera axes: ``v_camera = R @ v_enu``."""
    gimbal = attitude_matrix(pose.gimbal_yaw_deg, pose.gimbal_pitch_deg, pose.gimbal_roll_deg)
    if pose.gimbal_absolute:
        camera_to_ned = gimbal
    else:
        camera_to_ned = attitude_matrix(pose.yaw_deg, pose.pitch_deg, pose.roll_deg) @ gimbal
    result: FloatArray = _BODY_TO_CAMERA @ camera_to_ned.T @ _ENU_TO_NED
    return result


def camera_centre(pose: Pose, origin_enu_m: tuple[float, float] = (0.0, 0.0)) -> FloatArray:
    """The camera's ENU position: ``origin_enu_m`` is its ground point, its height the pose's AGL altitude."""
    return np.array([origin_enu_m[0], origin_enu_m[1], pose.altitude_agl_m])


def ground_to_image(
    points_enu_m: npt.ArrayLike,
    pose: Pose,
    camera: Camera,
    origin_enu_m: tuple[float, float] = (0.0, 0.0),
) -> FloatArray:
    """Project ENU points into the image.

    Args:
        points_enu_m: N×2 (on the ground, z = 0) or N×3 points in the ENU frame.
        pose: where the camera was; its ground point is ``origin_enu_m`` in that frame.
        camera: intrinsics.
        origin_enu_m: the camera's (east, north) in the points' frame; (0, 0) when the frame is centred on it.

    Returns:
        N×2 pixel coordinates (x right, y down); NaN for points at or behind the camera plane.
    """
    points = _as_points3(points_enu_m)
    camera_xyz = (points - camera_centre(pose, origin_enu_m)) @ camera_rotation(pose).T
    projected = camera_xyz @ camera.intrinsics().T
    depth = projected[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels: FloatArray = np.where(depth > 1e-9, projected[:, :2] / depth, np.nan)
    return pixels


def image_to_ground(
    pixels: npt.ArrayLike,
    pose: Pose,
    camera: Camera,
    ground_height_m: float = 0.0,
    origin_enu_m: tuple[float, float] = (0.0, 0.0),
) -> FloatArray:
    """Intersect the rays through ``pixels`` with the horizontal plane ``z = ground_height_m``.

    Args:
        pixels: N×2 pixel coordinates (continuous, see the module docstring).
        pose: where the camera was.
        camera: intrinsics.
        ground_height_m: height of the plane above ground, e.g. a roof's height for an object on it.
        origin_enu_m: the camera's (east, north) in the output frame.

    Returns:
        N×3 ENU points; NaN rows where the ray does not reach the plane (at or above the horizon, or the plane
        above the camera).
    """
    uv = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    rays = pixel_rays(uv, pose, camera)
    centre = camera_centre(pose, origin_enu_m)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ground_height_m - centre[2]) / rays[:, 2]
    valid = (rays[:, 2] < -1e-12) & (t > 0)
    points: FloatArray = centre + rays * t[:, None]
    points[~valid] = np.nan
    return points


def pixel_rays(pixels: npt.ArrayLike, pose: Pose, camera: Camera) -> FloatArray:
    """Unit ENU directions of the rays through ``pixels`` (N×2) from the camera centre."""
    uv = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    homogeneous = np.column_stack([uv, np.ones(len(uv))])
    directions = homogeneous @ np.linalg.inv(camera.intrinsics()).T @ camera_rotation(pose)
    rays: FloatArray = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    return rays


def plane_homography(
    pose: Pose,
    camera: Camera,
    height_m: float = 0.0,
    origin_enu_m: tuple[float, float] = (0.0, 0.0),
) -> FloatArray:
    """3×3 homography taking (east, north, 1) on the plane ``z = height_m`` to homogeneous image pixels."""
    rotation = camera_rotation(pose)
    centre = camera_centre(pose, origin_enu_m)
    translation = rotation @ (np.array([0.0, 0.0, height_m]) - centre)
    columns = np.column_stack([rotation[:, 0], rotation[:, 1], translation])
    result: FloatArray = camera.intrinsics() @ columns
    return result


def _as_points3(points_enu_m: npt.ArrayLike) -> FloatArray:
    points = np.asarray(points_enu_m, dtype=np.float64)
    points = points.reshape(-1, points.shape[-1]) if points.ndim else points.reshape(-1, 2)
    if points.shape[1] == 2:
        return np.column_stack([points, np.zeros(len(points))])
    if points.shape[1] != 3:
        raise ValueError(f"points must be N×2 or N×3 ENU metres, got shape {points.shape}")
    return points
