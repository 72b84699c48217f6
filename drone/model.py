"""Core types of the aerial grid worker, shared by planning, mission files, the vehicle link and frame streams.

Planning works in metres in a local projected CRS; everything here is already converted back to WGS-84
(longitude/latitude in degrees) because it is what vehicles, mission files and telemetry speak.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Camera:
    """A frame camera: sensor size, focal length and image size; photogrammetry maths as QGroundControl does it.

    The image's long side (``image_width_px``) lies across the flight line (landscape), so it sets the transect
    spacing; the short side lies along the flight line and sets the trigger distance.
    """

    name: str
    sensor_width_mm: float
    sensor_height_mm: float
    focal_length_mm: float
    image_width_px: int
    image_height_px: int

    def __post_init__(self) -> None:
        for name in ("sensor_width_mm", "sensor_height_mm", "focal_length_mm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"camera {self.name!r}: {name} must be a positive number, got {value}")
        for name in ("image_width_px", "image_height_px"):
            if getattr(self, name) <= 0:
                raise ValueError(f"camera {self.name!r}: {name} must be positive, got {getattr(self, name)}")

    def gsd_m_px(self, altitude_m: float) -> float:
        """Ground sample distance (metres per pixel) straight down from ``altitude_m`` above ground."""
        return self.sensor_width_mm * altitude_m / (self.image_width_px * self.focal_length_mm)

    def footprint_m(self, altitude_m: float) -> tuple[float, float]:
        """Nadir ground footprint (across track, along track) in metres."""
        gsd = self.gsd_m_px(altitude_m)
        return self.image_width_px * gsd, self.image_height_px * gsd

    def transect_spacing_m(self, altitude_m: float, side_overlap: float) -> float:
        """Distance between neighbouring flight lines for the given side overlap (0–1)."""
        return self.footprint_m(altitude_m)[0] * (1.0 - side_overlap)

    def trigger_distance_m(self, altitude_m: float, front_overlap: float) -> float:
        """Distance between photos along a flight line for the given front overlap (0–1)."""
        return self.footprint_m(altitude_m)[1] * (1.0 - front_overlap)

    def intrinsics(self) -> npt.NDArray[np.float64]:
        """Pinhole camera matrix K in pixels (principal point at the image centre)."""
        fx = self.focal_length_mm * self.image_width_px / self.sensor_width_mm
        fy = self.focal_length_mm * self.image_height_px / self.sensor_height_mm
        return np.array(
            [[fx, 0.0, self.image_width_px / 2.0], [0.0, fy, self.image_height_px / 2.0], [0.0, 0.0, 1.0]]
        )


class WaypointAction(Enum):
    """What the vehicle does on reaching a waypoint."""

    NONE = "none"
    PHOTO = "photo"  # take one photo (inspection points)
    HOVER_PHOTO = "hover_photo"  # stop, hover ``hover_s`` and take one photo
    START_SURVEY = "start_survey"  # start distance-triggered photos (``trigger_distance_m`` of the sortie)
    STOP_SURVEY = "stop_survey"  # stop distance-triggered photos


@dataclass(frozen=True)
class Waypoint:
    """One point of a flight path, in WGS-84, altitude relative to the take-off point."""

    lon_deg: float
    lat_deg: float
    altitude_m: float
    action: WaypointAction = WaypointAction.NONE
    speed_m_s: float | None = None
    hover_s: float = 0.0
    gimbal_pitch_deg: float = -90.0
    heading_deg: float | None = None


@dataclass(frozen=True)
class Sortie:
    """One battery's flight: take off at ``home``, fly ``waypoints``, return to launch."""

    index: int
    home: Waypoint
    waypoints: tuple[Waypoint, ...]
    cruise_speed_m_s: float
    trigger_distance_m: float
    estimated_duration_s: float
    distance_m: float


@dataclass(frozen=True)
class GeoFencePolygon:
    """A fence polygon (WGS-84 ring, not closed): the vehicle must stay inside an inclusion, outside an exclusion."""

    vertices: tuple[tuple[float, float], ...]  # (lon_deg, lat_deg)
    inclusion: bool


@dataclass(frozen=True)
class Mission:
    """A planned mission: what to fly (sorties), with which camera, inside which fence."""

    name: str
    camera: Camera
    altitude_m: float
    sorties: tuple[Sortie, ...]
    fence: tuple[GeoFencePolygon, ...] = ()
    rally_points: tuple[Waypoint, ...] = ()
    grid_codes: tuple[str, ...] = ()
    front_overlap: float = 0.8
    side_overlap: float = 0.7


@dataclass(frozen=True)
class MissionItem:
    """One MAVLink mission item (MISSION_ITEM_INT semantics; lat/lon in degrees, unscaled).

    This is what goes over the link and into ``.plan``/``.waypoints`` files. ArduPilot rejects NaN except in
    ``param4`` of waypoint/loiter/land/takeoff items, so writers put 0 elsewhere.
    """

    seq: int
    command: int  # MAV_CMD
    frame: int  # MAV_FRAME
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    lat_deg: float = 0.0
    lon_deg: float = 0.0
    altitude_m: float = 0.0
    current: bool = False
    autocontinue: bool = True
    mission_type: int = 0  # MAV_MISSION_TYPE: 0 mission, 1 fence, 2 rally


@dataclass(frozen=True)
class Pose:
    """Where the camera was and how it looked when a frame was taken (angles in degrees, NED conventions).

    ``gimbal_pitch_deg`` is -90 for straight down; the gimbal angles are absolute (earth frame) when
    ``gimbal_absolute`` is true, as DJI reports them, else relative to the vehicle body.
    """

    lat_deg: float
    lon_deg: float
    altitude_agl_m: float
    altitude_amsl_m: float | None = None
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    gimbal_yaw_deg: float = 0.0
    gimbal_pitch_deg: float = -90.0
    gimbal_roll_deg: float = 0.0
    gimbal_absolute: bool = True
    horizontal_accuracy_m: float = 2.0
    vertical_accuracy_m: float = 3.0


@dataclass(frozen=True, eq=False)
class Frame:
    """One image with its pose and timestamp. ``image`` is an H×W×3 uint8 BGR array (OpenCV order)."""

    frame_id: str
    timestamp: datetime
    image: npt.NDArray[np.uint8]
    pose: Pose
    camera: Camera
    source: str = ""


@dataclass
class StreamStats:
    """Counters every frame source keeps: what it yielded and what it skipped, and why."""

    frames: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@runtime_checkable
class FrameSource(Protocol):
    """Anything that yields posed frames: the simulator, video + SRT, a photo folder, a stream with telemetry.

    A corrupt frame, a telemetry gap or clock skew is skipped and counted in ``stats``, never raised mid-stream.
    """

    @property
    def stats(self) -> StreamStats: ...

    def __iter__(self) -> Iterator[Frame]: ...
