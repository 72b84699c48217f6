"""The simulator as a :class:`~drone.model.FrameSource`: rendered frames at poses along a mission or a track.

Poses come either from a planned :class:`~drone.model.Mission` (:func:`mission_poses`: one frame every trigger
distance along the legs between ``START_SURVEY`` and ``STOP_SURVEY`` waypoints, at the sortie's cruise speed)
or from any iterable of ``(timestamp, Pose)``, such as a simulated vehicle's recorded track.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import numpy as np
from pyproj import Transformer

from drone.geometry import local_enu_crs
from drone.model import Camera, Frame, Mission, Pose, Sortie, StreamStats, WaypointAction
from drone.simcam import SimCamera, TruthBox
from drone.world import World

TimedPose = tuple[datetime, Pose]


class SimFrameSource:
    """Frames the simulated camera sees at each pose; ground truth of every yielded frame in :attr:`truth`.

    Args:
        world: what the camera looks at.
        camera: the camera (its image size is the frames' size).
        poses: ``(timestamp, pose)`` pairs; timestamps should carry a time zone.
        seed: drives sensor noise and exposure; the same world, poses and seed give the same frames.
        source: the frames' ``source`` label.
    """

    def __init__(
        self,
        world: World,
        camera: Camera,
        poses: Iterable[TimedPose],
        *,
        seed: int = 0,
        source: str = "simulator",
    ) -> None:
        self._sim = SimCamera(world, camera)
        self._camera = camera
        self._poses = poses
        self._seed = seed
        self._source = source
        self._stats = StreamStats()
        self.truth: dict[str, tuple[TruthBox, ...]] = {}

    @property
    def stats(self) -> StreamStats:
        return self._stats

    def __iter__(self) -> Iterator[Frame]:
        for index, (timestamp, pose) in enumerate(self._poses):
            if not _pose_is_usable(pose):
                self._stats.skip("pose_not_finite")
                continue
            rendered = self._sim.render(pose, seed=self._seed * 1_000_003 + index)
            frame_id = f"sim{self._seed}-{index:05d}"
            self.truth[frame_id] = rendered.boxes
            self._stats.frames += 1
            yield Frame(frame_id, timestamp, rendered.image, pose, self._camera, self._source)


def _pose_is_usable(pose: Pose) -> bool:
    values = (pose.lat_deg, pose.lon_deg, pose.altitude_agl_m, pose.gimbal_pitch_deg, pose.gimbal_yaw_deg)
    return all(math.isfinite(v) for v in values) and pose.altitude_agl_m > 0


def mission_poses(
    mission: Mission, *, start: datetime, gimbal_pitch_deg: float = -90.0
) -> Iterator[TimedPose]:
    """Poses at every trigger point of every sortie, sortie after sortie.

    The camera yaw follows each leg's direction (the image top looks ahead); timestamps advance at the sortie's
    cruise speed from ``start`` (transit and turns are not timed). Legs between a ``START_SURVEY`` and the next
    ``STOP_SURVEY`` waypoint are photographed; a sortie without survey actions is photographed on every leg
    between its first and last waypoint.
    """
    clock = start
    for sortie in mission.sorties:
        poses = list(_sortie_poses(sortie, gimbal_pitch_deg))
        for distance_m, pose in poses:
            yield clock + timedelta(seconds=distance_m / sortie.cruise_speed_m_s), pose
        if poses:
            clock += timedelta(seconds=poses[-1][0] / sortie.cruise_speed_m_s + 1.0)


def _sortie_poses(sortie: Sortie, gimbal_pitch_deg: float) -> Iterator[tuple[float, Pose]]:
    """(distance flown along the surveyed legs, pose) at each trigger point of one sortie."""
    waypoints = sortie.waypoints
    if len(waypoints) < 2 or sortie.trigger_distance_m <= 0:
        return
    crs = local_enu_crs(sortie.home.lon_deg, sortie.home.lat_deg)
    to_enu = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    xs, ys = to_enu.transform([w.lon_deg for w in waypoints], [w.lat_deg for w in waypoints])
    xy = np.column_stack([xs, ys])
    flown = 0.0
    next_trigger = 0.0
    previous = -2
    for i in _surveyed_legs(sortie):
        if i != previous + 1:
            next_trigger = (
                flown  # a survey (re)started: the camera fires at once, as distance triggering does
            )
        previous = i
        a, b = xy[i], xy[i + 1]
        length = float(np.hypot(*(b - a)))
        if length == 0:
            continue
        heading = math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360.0
        while next_trigger <= flown + length + 1e-9:
            t = (next_trigger - flown) / length
            x, y = a + t * (b - a)
            lon, lat = to_enu.transform(x, y, direction="INVERSE")
            altitude = waypoints[i].altitude_m + t * (waypoints[i + 1].altitude_m - waypoints[i].altitude_m)
            yield next_trigger, _survey_pose(float(lon), float(lat), altitude, heading, gimbal_pitch_deg)
            next_trigger += sortie.trigger_distance_m
        flown += length


def _surveyed_legs(sortie: Sortie) -> list[int]:
    """Indices i of the legs waypoint i → i+1 flown with the camera triggering."""
    actions = [w.action for w in sortie.waypoints]
    if WaypointAction.START_SURVEY not in actions:
        return list(range(len(actions) - 1))
    legs = []
    surveying = False
    for i, action in enumerate(actions[:-1]):
        if action is WaypointAction.START_SURVEY:
            surveying = True
        elif action is WaypointAction.STOP_SURVEY:
            surveying = False
        if surveying:
            legs.append(i)
    return legs


def _survey_pose(
    lon: float, lat: float, altitude_m: float, heading_deg: float, gimbal_pitch_deg: float
) -> Pose:
    return Pose(
        lat_deg=lat,
        lon_deg=lon,
        altitude_agl_m=altitude_m,
        yaw_deg=heading_deg,
        gimbal_yaw_deg=heading_deg,
        gimbal_pitch_deg=gimbal_pitch_deg,
    )


def video_camera(camera: Camera, width_px: int = 1920) -> Camera:
    """The camera in 16:9 video mode at ``width_px``: full sensor width, the height cropped to 16:9."""
    height_px = round(width_px * 9 / 16)
    return Camera(
        name=f"{camera.name} video {width_px}x{height_px}",
        sensor_width_mm=camera.sensor_width_mm,
        sensor_height_mm=camera.sensor_width_mm * 9 / 16,
        focal_length_mm=camera.focal_length_mm,
        image_width_px=width_px,
        image_height_px=height_px,
    )
