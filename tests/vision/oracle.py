"""A labelled ORACLE detector for tests and benchmarks of the map-side stages — never the product's detector.

It implements the :class:`vision.model.Detector` protocol by projecting known ground-truth objects (3-D boxes:
footprint, base height, height) into each frame with :mod:`drone.geometry`, so geolocation, tracking, rules
and the pipeline can be measured without the detector's own errors. The real run uses the ONNX detector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

from drone.geometry import ground_to_image
from drone.model import Camera, Pose
from vision.geolocate import Geolocator
from vision.model import Detections

CLASS_NAMES = ("car", "motorbike", "shed", "steel_shack", "clutter", "garbage")


@dataclass(frozen=True)
class TruthObject:
    """A planted object: class, footprint in the geolocator's metric CRS, base and own height in metres."""

    object_id: str
    class_name: str
    footprint: Polygon
    base_height_m: float = 0.0
    height_m: float = 1.5


class OracleDetector:
    """Boxes of the truth objects visible in each frame (at least ``min_visible`` of the box inside the image).

    Args:
        objects: the ground truth.
        poses: frame id → (pose, camera) of every frame it will be asked about.
        geolocator: gives each pose's ENU frame in the objects' CRS.
        jitter_px: 1-sigma pixel noise added to box corners (seeded by ``seed``).
        min_visible: share of the projected box that must lie inside the image.
        buildings: footprints with ``height_m`` in the objects' CRS; an object whose centre is hidden behind one
            (the line of sight passes through it) is not seen, as a camera would not see it.
    """

    def __init__(
        self,
        objects: Sequence[TruthObject],
        poses: Mapping[str, tuple[Pose, Camera]],
        geolocator: Geolocator,
        *,
        jitter_px: float = 0.0,
        min_visible: float = 0.6,
        buildings: gpd.GeoDataFrame | None = None,
        seed: int = 0,
    ) -> None:
        self._objects = tuple(objects)
        self._poses = dict(poses)
        self._geolocator = geolocator
        self._jitter_px = jitter_px
        self._min_visible = min_visible
        self._buildings = buildings
        self._rng = np.random.default_rng(seed)
        self.calls = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        self.calls += 1
        return [self._detect_one(frame_id) for frame_id in frame_ids]

    def _detect_one(self, frame_id: str) -> Detections:
        pose, camera = self._poses[frame_id]
        boxes, classes = [], []
        for item in self._objects:
            box = self._box(item, pose, camera)
            if box is not None:
                boxes.append(box)
                classes.append(CLASS_NAMES.index(item.class_name))
        if not boxes:
            return Detections.empty(frame_id, CLASS_NAMES)
        array = np.array(boxes, np.float32)
        array += (
            self._rng.normal(0.0, self._jitter_px, array.shape).astype(np.float32) if self._jitter_px else 0
        )
        scores = np.full(len(boxes), 0.9, np.float32)
        return Detections(frame_id, array, scores, np.array(classes, np.int64), CLASS_NAMES)

    def _hidden(self, item: TruthObject, pose: Pose) -> bool:
        """Whether a building stands between the camera and the object's centre."""
        if self._buildings is None:
            return False
        camera_xy = self._geolocator.pose_frame(pose).origin_xy
        centre = np.array(item.footprint.centroid.coords[0])
        sight = shapely.LineString([tuple(camera_xy), tuple(centre)])
        fractions = np.linspace(0.0, 0.98, 200)  # stop short of the object itself
        xy = camera_xy + fractions[:, None] * (centre - camera_xy)
        z = pose.altitude_agl_m + fractions * (item.base_height_m + item.height_m / 2 - pose.altitude_agl_m)
        for index in self._buildings.sindex.query(sight, predicate="intersects"):
            height = float(self._buildings["height_m"].iloc[index])
            inside = shapely.contains_xy(self._buildings.geometry.iloc[index], xy[:, 0], xy[:, 1])
            if np.any(inside & (z < height - 0.1)):
                return True
        return False

    def _box(self, item: TruthObject, pose: Pose, camera: Camera) -> list[float] | None:
        if self._hidden(item, pose):
            return None
        enu = self._geolocator.pose_frame(pose).to_enu(np.asarray(item.footprint.exterior.coords)[:-1])
        corners = np.vstack(
            [
                np.column_stack([enu, np.full(len(enu), z)])
                for z in (item.base_height_m, item.base_height_m + item.height_m)
            ]
        )
        pixels = ground_to_image(corners, pose, camera)
        if np.isnan(pixels).any():
            return None
        x1, y1 = pixels.min(axis=0)
        x2, y2 = pixels.max(axis=0)
        w, h = camera.image_width_px, camera.image_height_px
        cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, w), min(y2, h)
        if cx2 <= cx1 or cy2 <= cy1:
            return None
        if (cx2 - cx1) * (cy2 - cy1) < self._min_visible * (x2 - x1) * (y2 - y1):
            return None
        return [float(cx1), float(cy1), float(cx2), float(cy2)]
