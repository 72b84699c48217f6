"""Geolocation: each detection box → a ground polygon and point in the map, with an error estimate.

The camera model is :mod:`drone.geometry`'s (pinhole intrinsics from :class:`drone.model.Camera`, rotation from
the pose's vehicle and gimbal angles, a local ENU tangent plane at the pose). A box's rays are intersected with
a horizontal plane: the ground by default, a building's roof where the ray first meets one (buildings with
``height_m``), raised by half the object's typical height because a box's centre is the object's middle, not
its base. ENU offsets are carried into the working metric CRS by the local Jacobian of that CRS at the pose
(grid convergence and scale included), so points agree with a per-pose tangent plane to millimetres.

Located boxes have a size in metres, which pixels lack: :class:`SizeRange` says which sizes a class can
have, so that a box the detector labels ``car`` but which is 2 m long on the ground (a motorbike) or a
``shed`` 1.5 m wide (a rooftop tank) can be dropped before it becomes a track.

The 1-sigma error combines the telemetry's horizontal accuracy, its vertical accuracy (an altitude error ``dz``
shifts a point ``r`` metres from the nadir by ``r · dz / h``) and a few pixels of box placement at the point's
ground sample distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from shapely.geometry import Polygon

from drone.geometry import camera_centre, pixel_rays
from drone.model import Frame, Pose
from vision.model import Detections

FloatArray = npt.NDArray[np.float64]
WGS84 = "EPSG:4326"
#: typical object heights (m); a box's centre is located at half of it above the surface it stands on
CLASS_HEIGHT_M: Mapping[str, float] = MappingProxyType(
    {"car": 1.6, "motorbike": 1.1, "shed": 2.6, "steel_shack": 3.0, "clutter": 1.0, "garbage": 0.7}
)
_JACOBIAN_STEP_M = 10.0


@dataclass(frozen=True)
class SizeRange:
    """Plausible ground size of a class's boxes: the longer side within ``long_m``, the shorter within ``short_m``.

    A box drawn upright in the image around an object turned by any angle has a longer side close to the object's
    length (its diagonal reach for squat objects), so ``long_m`` brackets the class's length; the shorter side
    grows from the object's width towards its length as the object turns, so ``short_m`` mostly has a floor.
    """

    long_m: tuple[float, float]
    short_m: tuple[float, float] = (0.0, math.inf)

    def admits(self, sides_m: FloatArray) -> npt.NDArray[np.bool_]:
        """For N×2 (longer, shorter) sides in metres: whether each box has this size."""
        longer, shorter = sides_m[:, 0], sides_m[:, 1]
        inside: npt.NDArray[np.bool_] = (self.long_m[0] <= longer) & (longer <= self.long_m[1])
        return inside & (self.short_m[0] <= shorter) & (shorter <= self.short_m[1])


#: the demo world's classes (:data:`drone.world.CLASS_NAMES`, sizes in ``drone.world``): ranges of the box's
#: ground sides, a little wider than the objects' own lengths and widths for box slack and telemetry error;
#: checked on simulated patrols of seeds 201–204 at 60 and 100 m (``bench/vision.py``). A city whose model
#: has other classes or sizes passes its own table (``PipelineConfig.class_size_m``).
CLASS_SIZE_M: Mapping[str, SizeRange] = MappingProxyType(
    {
        "car": SizeRange((3.8, 7.5)),
        "motorbike": SizeRange((1.0, 3.5)),
        "shed": SizeRange((3.0, 9.0), (2.5, math.inf)),
        "steel_shack": SizeRange((5.5, 12.0), (4.0, math.inf)),
        "clutter": SizeRange((1.2, 4.0)),
        "garbage": SizeRange((0.8, 3.5)),
    }
)
_GEOD = pyproj.Geod(ellps="WGS84")


@dataclass(frozen=True, eq=False)
class GroundDetections:
    """The detections of one frame located on the ground, in the metric CRS ``crs``.

    ``footprints`` are the box outlines projected onto the surface (shapely polygons), ``points_xy`` the box
    centres (N×2 metres), ``error_m`` their 1-sigma horizontal error and ``surface_m`` the height of the surface
    each stands on (0 = ground, else a roof).
    """

    detections: Detections
    crs: pyproj.CRS
    footprints: npt.NDArray[np.object_]
    points_xy: FloatArray
    error_m: FloatArray
    surface_m: FloatArray

    def __len__(self) -> int:
        return len(self.detections)

    def box_sides_m(self) -> FloatArray:
        """N×2: the longer and the shorter side of each box's ground outline (means of opposite edges), metres."""
        if not len(self):
            return np.zeros((0, 2))
        corners = np.array([np.asarray(f.exterior.coords)[:4] for f in self.footprints])
        edges = np.linalg.norm(np.roll(corners, -1, axis=1) - corners, axis=2)
        sides = np.stack([(edges[:, 0] + edges[:, 2]) / 2, (edges[:, 1] + edges[:, 3]) / 2], axis=1)
        result: FloatArray = np.sort(sides, axis=1)[:, ::-1]
        return result

    def plausible(self, sizes: Mapping[str, SizeRange]) -> npt.NDArray[np.bool_]:
        """Whether each box's ground size fits its class in ``sizes`` (classes not listed always fit).

        A box cut by the image edge is held to the same range: the fragment is dropped when too small, and the
        object counts on its whole views in the overlapping frames. (Holding fragments to the maxima only was
        tried on seeds 201–204: it let through more fragments of water read as steel shacks than it kept
        objects, which only an object seen nowhere whole at all would need.)
        """
        sides = self.box_sides_m()
        labels = np.array(self.detections.labels(), dtype=object)
        keep = np.ones(len(self), dtype=bool)
        for name, size in sizes.items():
            rows = labels == name
            keep[rows] = size.admits(sides[rows])
        return keep

    def filter(self, keep: npt.NDArray[np.bool_]) -> GroundDetections:
        """The located detections where ``keep`` is true."""
        return GroundDetections(
            self.detections.filter(keep),
            self.crs,
            self.footprints[keep],
            self.points_xy[keep],
            self.error_m[keep],
            self.surface_m[keep],
        )

    def to_wgs84(self) -> gpd.GeoDataFrame:
        """Ground polygons in WGS-84 with ``lon_deg``/``lat_deg`` of each point, class, score and ``error_m``."""
        to_wgs = pyproj.Transformer.from_crs(self.crs, WGS84, always_xy=True)
        lon, lat = to_wgs.transform(self.points_xy[:, 0], self.points_xy[:, 1])
        polygons = gpd.GeoSeries(self.footprints, crs=self.crs).to_crs(WGS84)
        table = {
            "frame_id": [self.detections.frame_id] * len(self),
            "class_name": self.detections.labels(),
            "score": self.detections.scores.astype(float),
            "lon_deg": np.asarray(lon, dtype=float),
            "lat_deg": np.asarray(lat, dtype=float),
            "error_m": self.error_m,
            "surface_m": self.surface_m,
        }
        return gpd.GeoDataFrame(table, geometry=polygons.to_numpy(), crs=WGS84)


@dataclass(frozen=True)
class _PoseFrame:
    """The pose's ground point in the working CRS and the 2×2 Jacobian from ENU (east, north) to that CRS."""

    origin_xy: FloatArray
    jacobian: FloatArray

    def to_crs(self, enu: FloatArray) -> FloatArray:
        result: FloatArray = self.origin_xy + enu[:, :2] @ self.jacobian.T
        return result

    def to_enu(self, xy: FloatArray) -> FloatArray:
        result: FloatArray = (np.asarray(xy, dtype=np.float64) - self.origin_xy) @ np.linalg.inv(
            self.jacobian
        ).T
        return result


class Geolocator:
    """Projects detection boxes onto the ground (or roofs) of a metric CRS.

    Args:
        crs: the working metric CRS (e.g. :func:`gis.crs.local_metric_crs` of the plan).
        buildings: footprints with ``height_m`` in ``crs``, for objects standing on roofs; None for flat ground.
        class_height_m: typical height per class (unknown classes count as 0 m).
        pixel_error_px: 1-sigma error of a box centre in pixels.
    """

    def __init__(
        self,
        crs: pyproj.CRS,
        buildings: gpd.GeoDataFrame | None = None,
        *,
        class_height_m: Mapping[str, float] = CLASS_HEIGHT_M,
        pixel_error_px: float = 2.0,
    ) -> None:
        self.crs = pyproj.CRS.from_user_input(crs)
        if buildings is not None and pyproj.CRS.from_user_input(buildings.crs) != self.crs:
            raise ValueError(f"buildings are in {buildings.crs}, the geolocator works in {self.crs}")
        self._buildings = buildings if buildings is not None and len(buildings) else None
        self._building_heights_m = (
            np.zeros(0) if buildings is None else buildings["height_m"].to_numpy(np.float64)
        )
        self._building_polygons = np.zeros(0, object) if buildings is None else buildings.geometry.to_numpy()
        self._heights = class_height_m
        self._pixel_error_px = pixel_error_px
        self._to_crs = pyproj.Transformer.from_crs(WGS84, self.crs, always_xy=True)

    def pose_frame(self, pose: Pose) -> _PoseFrame:
        """ENU at the pose's ground point → working CRS, via the CRS's local Jacobian."""
        lons, lats, _ = _GEOD.fwd([pose.lon_deg] * 2, [pose.lat_deg] * 2, [90.0, 0.0], [_JACOBIAN_STEP_M] * 2)
        xs, ys = self._to_crs.transform([pose.lon_deg, *lons], [pose.lat_deg, *lats])
        origin = np.array([xs[0], ys[0]])
        jacobian = (
            np.array([[xs[1] - xs[0], xs[2] - xs[0]], [ys[1] - ys[0], ys[2] - ys[0]]]) / _JACOBIAN_STEP_M
        )
        return _PoseFrame(origin, jacobian)

    def footprint(self, frame: Frame) -> Polygon:
        """The frame's ground footprint (the image corners on flat ground) in the working CRS.

        A corner above the horizon is clipped to 10 × the altitude from the nadir, so oblique frames still give a
        finite polygon.
        """
        camera = frame.camera
        w, h = camera.image_width_px, camera.image_height_px
        corners = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
        rays = pixel_rays(corners, frame.pose, camera)
        enu = _clipped_plane(rays, frame.pose, np.zeros(len(rays)), 10.0 * frame.pose.altitude_agl_m)
        return Polygon(self.pose_frame(frame.pose).to_crs(enu))

    def locate(self, detections: Detections, frame: Frame) -> GroundDetections:
        """Locate every box of ``detections`` (taken from ``frame``) on the ground or on a roof.

        All boxes of the frame go through the camera model together (one ray per box centre and corner), since
        a frame holds tens of boxes and this runs on every processed frame.

        Raises:
            ValueError: the detections belong to another frame.
        """
        if detections.frame_id != frame.frame_id:
            raise ValueError(f"detections of frame {detections.frame_id} given with frame {frame.frame_id}")
        pose_frame = self.pose_frame(frame.pose)
        count = len(detections)
        x1, y1, x2, y2 = detections.boxes_xyxy.astype(np.float64).T
        corners = np.stack([x1, y1, x2, y1, x2, y2, x1, y2], axis=1).reshape(-1, 2)
        centres = np.column_stack([(x1 + x2) / 2.0, (y1 + y2) / 2.0])
        rays = pixel_rays(np.concatenate([centres, corners]), frame.pose, frame.camera)
        surface_m = self._surface_heights(rays[:count], frame.pose, pose_frame)
        object_m = np.array([self._heights.get(label, 0.0) for label in detections.labels()], np.float64)
        plane_m = surface_m + object_m / 2.0
        max_range_m = 10.0 * frame.pose.altitude_agl_m
        centre_enu = _clipped_plane(rays[:count], frame.pose, plane_m, max_range_m)
        corner_enu = _clipped_plane(rays[count:], frame.pose, np.repeat(plane_m, 4), max_range_m)
        rings = pose_frame.to_crs(corner_enu).reshape(count, 4, 2)
        return GroundDetections(
            detections=detections,
            crs=self.crs,
            footprints=shapely.polygons(rings) if count else np.zeros(0, dtype=object),
            points_xy=pose_frame.to_crs(centre_enu).reshape(-1, 2),
            error_m=_errors_m(centre_enu, frame, plane_m, self._pixel_error_px),
            surface_m=surface_m,
        )

    def _surface_heights(self, rays: FloatArray, pose: Pose, pose_frame: _PoseFrame) -> FloatArray:
        """Per ray, the height of the highest roof it meets, or 0 when it reaches only the ground.

        A roof counts where the ray crosses the roof's plane inside its footprint; the candidates are the
        buildings the ray's segment from the tallest roof's height down to the ground passes over.
        """
        surface = np.zeros(len(rays))
        if self._buildings is None or not len(rays):
            return surface
        top_m = min(self._building_heights_m.max(initial=0.0), pose.altitude_agl_m - 1.0)
        ground, roof = (_plane_points(rays, pose, np.full(len(rays), h)) for h in (0.0, top_m))
        usable = np.flatnonzero(~(np.isnan(ground).any(axis=1) | np.isnan(roof).any(axis=1)))
        ends = np.stack([pose_frame.to_crs(ground[usable]), pose_frame.to_crs(roof[usable])], axis=1)
        ray_at, building = self._buildings.sindex.query(shapely.linestrings(ends), predicate="intersects")
        ray_at = usable[ray_at]
        height = self._building_heights_m[building]
        below = (height > 0.0) & (height < pose.altitude_agl_m)
        ray_at, building, height = ray_at[below], building[below], height[below]
        at_roof = pose_frame.to_crs(_plane_points(rays[ray_at], pose, height))
        hit = shapely.contains_xy(self._building_polygons[building], at_roof[:, 0], at_roof[:, 1])
        np.maximum.at(surface, ray_at[hit], height[hit])
        return surface


def _plane_points(rays: FloatArray, pose: Pose, height_m: FloatArray) -> FloatArray:
    """ENU points where ``rays`` from the camera meet the planes ``z = height_m`` (one per ray); NaN rows where
    a ray does not reach its plane (at or above the horizon, or the plane above the camera)."""
    centre = camera_centre(pose)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (height_m - centre[2]) / rays[:, 2]
    points: FloatArray = centre + rays * t[:, None]
    points[~((rays[:, 2] < -1e-12) & (t > 0))] = np.nan
    return points


def _clipped_plane(rays: FloatArray, pose: Pose, height_m: FloatArray, max_range_m: float) -> FloatArray:
    """:func:`_plane_points`, where a ray that misses its plane or lands beyond ``max_range_m`` is cut at that
    horizontal range along its own bearing."""
    points = _plane_points(rays, pose, height_m)
    bearings = rays[:, :2] / np.maximum(np.linalg.norm(rays[:, :2], axis=1, keepdims=True), 1e-12)
    far = np.isnan(points[:, 0]) | (np.hypot(points[:, 0], points[:, 1]) > max_range_m)
    points[far, :2] = bearings[far] * max_range_m
    points[far, 2] = height_m[far]
    return points


def _errors_m(points_enu: FloatArray, frame: Frame, plane_m: FloatArray, pixel_error_px: float) -> FloatArray:
    """1-sigma horizontal error of points located on the planes ``z = plane_m`` (one per point)."""
    pose = frame.pose
    above_m = np.maximum(pose.altitude_agl_m - plane_m, 1e-3)
    range_m = np.hypot(points_enu[:, 0], points_enu[:, 1])
    slant_m = np.linalg.norm(points_enu - camera_centre(pose), axis=1)
    focal_px = float(frame.camera.intrinsics()[0, 0])
    vertical = pose.vertical_accuracy_m * range_m / above_m
    pixel = pixel_error_px * slant_m / focal_px * (slant_m / above_m)
    errors: FloatArray = np.sqrt(pose.horizontal_accuracy_m**2 + vertical**2 + pixel**2)
    return errors
