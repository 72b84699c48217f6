"""A tiny known scene for pipeline and metric tests: zones, a plan, planted objects and a two-line patrol.

Everything is built in a local ENU CRS around (120.7E, 31.3N). Images are blank: the ORACLE detector
(:mod:`tests.vision.oracle`) reads the planted objects, not pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry import Polygon

from drone.geometry import local_enu_crs
from drone.model import Camera, Frame, Pose, StreamStats
from gis.model import UNIT_COLUMNS, GridPlan
from tests.vision.oracle import OracleDetector, TruthObject
from vision.geolocate import Geolocator
from vision.rules import PlanIndex, Zones

LON, LAT = 120.7, 31.3
CRS = local_enu_crs(LON, LAT)
CAMERA = Camera("sim-vga", 6.4, 4.8, 4.5, 640, 480)  # fx = fy = 450 px
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
GRID = "320571001001001"
MICRO_WEST, MICRO_EAST = GRID + "01", GRID + "02"
BUILDING = shapely.box(50, 45, 62, 60)


def zones() -> Zones:
    buildings = gpd.GeoDataFrame({"height_m": [18.0]}, geometry=[BUILDING], crs=CRS)
    return Zones(
        crs=CRS,
        parking=shapely.box(0, 0, 60, 5),
        fire_lanes=shapely.box(0, 20, 120, 25),
        green=shapely.box(70, 40, 110, 70),
        public_space=shapely.box(0, 40, 40, 70),
        corridors=Polygon(),
        buildings=buildings,
    )


def plan() -> GridPlan:
    status = {"status": ["ok"], "note": [""]}
    grids = gpd.GeoDataFrame(
        {"grid_code": [GRID], "community_code": [GRID[:12]], "households": [400], "buildings": [1]} | status,
        geometry=[shapely.box(-50, -50, 170, 130)],
        crs=CRS,
    )
    micro = gpd.GeoDataFrame(
        {"microgrid_code": [MICRO_WEST, MICRO_EAST], "grid_code": [GRID, GRID], "households": [60, 60]}
        | {"status": ["ok", "ok"], "note": ["", ""]},
        geometry=[shapely.box(-50, -50, 60, 130), shapely.box(60, -50, 170, 130)],
        crs=CRS,
    )
    units = gpd.GeoDataFrame({c: [] for c in UNIT_COLUMNS}, geometry=[], crs=CRS)
    report = pd.DataFrame({"community_code": ["overall"], "households": [120]})
    return GridPlan(grids.to_crs("EPSG:4326"), micro.to_crs("EPSG:4326"), units, report)


def _object(
    object_id: str, class_name: str, x: float, y: float, size: tuple[float, float], **z: float
) -> TruthObject:
    half_x, half_y = size[0] / 2, size[1] / 2
    return TruthObject(
        object_id, class_name, shapely.box(x - half_x, y - half_y, x + half_x, y + half_y), **z
    )


#: (object, violation, rule when a violation)
OBJECTS: tuple[tuple[TruthObject, bool, str], ...] = (
    (_object("T1", "car", 20, 2.5, (4.5, 1.8), height_m=1.6), False, ""),
    (_object("T2", "car", 75, 22.5, (4.5, 1.8), height_m=1.6), True, "vehicle_in_fire_lane"),
    (_object("T3", "motorbike", 80, 50, (2.0, 0.7), height_m=1.1), True, "vehicle_on_green"),
    (_object("T4", "shed", 95, 60, (4.0, 3.0), height_m=2.6), True, "structure_on_green"),
    (
        _object("T5", "steel_shack", 56, 52, (5.0, 4.0), base_height_m=18.0, height_m=3.0),
        True,
        "structure_on_roof",
    ),
    (_object("T6", "garbage", 20, 55, (2.0, 1.5), height_m=0.7), True, "clutter_in_public_space"),
    (_object("T7", "clutter", 100, 22.5, (3.0, 2.0), height_m=1.0), True, "clutter_in_fire_lane"),
    (_object("T8", "car", 100, 10, (4.5, 1.8), height_m=1.6), True, "vehicle_outside_bay"),
)
CATEGORY = {
    "car": "0505",
    "motorbike": "0506",
    "shed": "0101",
    "steel_shack": "0101",
    "garbage": "0102",
    "clutter": "0507",
}


def frames(step_m: float = 10.0) -> list[Frame]:
    """A two-line lawnmower at 60 m: lines at y = 15 and y = 55, west→east then east→west."""
    image = np.zeros((CAMERA.image_height_px, CAMERA.image_width_px, 3), np.uint8)
    to_wgs = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    xs = np.arange(-10.0, 130.0 + 1e-9, step_m)
    path = [(x, 15.0, 90.0) for x in xs] + [(x, 55.0, 270.0) for x in xs[::-1]]
    result = []
    for i, (x, y, yaw) in enumerate(path):
        lon, lat = to_wgs.transform(x, y)
        pose = Pose(
            lat,
            lon,
            60.0,
            yaw_deg=yaw,
            gimbal_yaw_deg=yaw,
            horizontal_accuracy_m=0.5,
            vertical_accuracy_m=1.0,
        )
        result.append(Frame(f"f{i:04d}", T0 + timedelta(seconds=2 * i), image, pose, CAMERA, "scene"))
    return result


def geolocator() -> Geolocator:
    return Geolocator(CRS, zones().buildings)


def oracle(frame_list: list[Frame], *, jitter_px: float = 0.0) -> OracleDetector:
    poses = {f.frame_id: (f.pose, f.camera) for f in frame_list}
    return OracleDetector([o for o, _, _ in OBJECTS], poses, geolocator(), jitter_px=jitter_px)


def plan_index() -> PlanIndex:
    return PlanIndex(plan(), CRS)


def truth() -> gpd.GeoDataFrame:
    """The planted objects as ``truth.gpkg``'s ``objects`` layer (WGS-84) is written by the simulator."""
    rows = {
        "object_id": [o.object_id for o, _, _ in OBJECTS],
        "class_name": [o.class_name for o, _, _ in OBJECTS],
        "category_code": [CATEGORY[o.class_name] for o, _, _ in OBJECTS],
        "violation": [v for _, v, _ in OBJECTS],
    }
    frame = gpd.GeoDataFrame(rows, geometry=[o.footprint for o, _, _ in OBJECTS], crs=CRS)
    result: gpd.GeoDataFrame = frame.to_crs("EPSG:4326")
    return result


@dataclass
class ListSource:
    """A FrameSource over a list, recording how many frames it has handed out."""

    frames: list[Frame]
    stats: StreamStats = field(default_factory=StreamStats)
    yielded: int = 0

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.frames:
            self.yielded += 1
            self.stats.frames += 1
            yield frame
