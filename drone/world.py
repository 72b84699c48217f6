"""The simulated world a patrol flies over: a district's layers in a local ENU CRS plus planted objects.

The world is the district's buildings (with heights and roof colours), roads and vision zones (parking bays,
fire lanes, green and public space), cut to an area and converted to a local tangent-plane CRS
(:func:`drone.geometry.local_enu_crs`), plus objects planted on it with exact ground truth: cars in and out of
parking bays, cars and motorbikes on fire lanes and green space, sheds and blue steel-roof shacks on roofs and
in green space, piles of clutter and garbage. One seed drives every random choice.

Each object's ``zone`` is measured from its final footprint, and ``violation`` follows the map rules of the
detection issue: a vehicle outside parking bays is illegal parking; every planted structure matches no
registered building, so it is an illegal structure; clutter and garbage are violations in public space and
fire lanes only.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from shapely import affinity
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from drone.geometry import local_enu_crs
from gis.io import gpkg_layers
from gis.model import District

CLASS_NAMES = ("car", "motorbike", "shed", "steel_shack", "clutter", "garbage")
#: GB/T 30428.2-lineage case category of each detector class.
CATEGORY_BY_CLASS = {
    "car": "0505",
    "motorbike": "0506",
    "shed": "0101",
    "steel_shack": "0101",
    "clutter": "0507",
    "garbage": "0102",
}
CATEGORY_NAMES = {
    "0101": "私搭乱建 illegal structure",
    "0102": "暴露垃圾 exposed garbage",
    "0505": "机动车乱停放 illegal car parking",
    "0506": "非机动车乱停放 illegal non-motor-vehicle parking",
    "0507": "乱堆物堆料 piled materials",
}
ZONE_LAYERS = ("parking", "fire_lanes", "green", "public_space")
WGS84 = "EPSG:4326"
FloatArray = npt.NDArray[np.float64]
METRES_PER_FLOOR = 3.0
STALL_WIDTH_M = 2.5
LANE_WIDTH_M = 3.75
_DASH_M = (6.0, 15.0)  # dash length, dash period

_VEHICLES = frozenset({"car", "motorbike"})
_STRUCTURES = frozenset({"shed", "steel_shack"})
_PILE_ZONES = frozenset({"public_space", "fire_lanes"})
#: (length, width, height) ranges in metres of each class's footprint.
_SIZES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "car": ((4.2, 4.9), (1.75, 1.9), (1.45, 1.7)),
    "motorbike": ((1.8, 2.1), (0.65, 0.8), (1.0, 1.2)),
    "shed": ((2.5, 5.0), (2.0, 3.5), (2.2, 3.0)),
    "steel_shack": ((4.0, 9.0), (3.0, 6.0), (2.6, 3.5)),
    "clutter": ((1.8, 4.0), (1.5, 3.0), (0.6, 1.5)),
    "garbage": ((1.2, 3.0), (1.0, 2.2), (0.4, 1.0)),
}
_PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {  # BGR
    "car": ((236, 236, 236), (28, 28, 30), (182, 182, 176), (120, 120, 118), (40, 40, 170), (150, 80, 30),
            (60, 110, 150), (215, 215, 225)),
    "motorbike": ((30, 30, 30), (40, 40, 160), (160, 90, 40), (210, 210, 210), (40, 140, 40)),
    "shed": ((200, 200, 195), (150, 150, 150), (70, 90, 130), (110, 120, 120), (185, 190, 205)),
    "steel_shack": ((190, 120, 35), (205, 140, 60), (170, 100, 20), (215, 160, 90)),
    "clutter": ((70, 110, 150), (90, 130, 170), (110, 110, 110), (60, 80, 100)),
    "garbage": ((50, 60, 50), (40, 40, 40), (70, 90, 60), (60, 60, 80)),
}  # fmt: skip
#: expected planted objects per hectare of each ground zone, by class (violations and look-alikes).
_DENSITY_PER_HA: dict[str, dict[str, float]] = {
    "fire_lanes": {"car": 7.0, "motorbike": 5.0, "clutter": 4.0, "garbage": 3.0},
    "green": {"car": 1.0, "motorbike": 1.0, "shed": 1.2, "steel_shack": 1.0},
    "public_space": {"car": 3.0, "motorbike": 6.0, "shed": 2.0, "clutter": 8.0, "garbage": 8.0},
    "compound": {"car": 1.0, "motorbike": 1.5, "steel_shack": 0.5, "clutter": 1.5, "garbage": 2.0},
}
_ROOF_STRUCTURE_P = {"shed": 0.12, "steel_shack": 0.12}
_STALL_CAR_P = 0.6
_STALL_MOTORBIKE_P = 0.04
_GAP_M = 0.6
_TRIES = 30
_TREE_AREA_M2 = 80.0


class WorldError(ValueError):
    """The district or zones cannot make a world (a missing layer, an empty area, bad geometry)."""


@dataclass(frozen=True)
class PlantedObject:
    """One object with exact ground truth; the footprint is in the world's local CRS (metres)."""

    object_id: str
    class_name: str
    footprint: Polygon
    heading_deg: float  # direction of the long axis, clockwise from north
    base_height_m: float  # 0 on the ground, the roof height for objects on roofs
    height_m: float
    colour_bgr: tuple[int, int, int]
    zone: str  # parking, fire_lanes, green, public_space, compound, street or roof
    category_code: str
    violation: bool


@dataclass(frozen=True)
class World:
    """Vector layers and planted objects in a local ENU CRS (x east, y north, metres; z = 0 is the ground).

    ``buildings`` carries ``building_id``, ``height_m`` and ``roof_b``/``roof_g``/``roof_r``; ``surfaces``
    maps ``roads``, ``water``, ``compounds`` and the zone layers to geometry-only frames; ``markings`` holds
    painted lines with their ``kind``: ``stall`` (between parking stalls), ``lane`` (dashed white lane lines)
    and ``centre`` (a road's double yellow centre line); ``trees`` are crowns (circles with ``height_m``) in green space, never
    over a planted object.
    """

    crs: CRS
    area: Polygon
    buildings: gpd.GeoDataFrame
    surfaces: dict[str, gpd.GeoDataFrame]
    markings: gpd.GeoDataFrame
    trees: gpd.GeoDataFrame
    objects: tuple[PlantedObject, ...]
    seed: int
    _to_local: Transformer = field(repr=False, compare=False)

    def to_local(self, lon_deg: float, lat_deg: float) -> tuple[float, float]:
        """WGS-84 longitude/latitude → the world's (east, north) metres."""
        east, north = self._to_local.transform(lon_deg, lat_deg)
        return float(east), float(north)

    def to_wgs84(self, east_m: float, north_m: float) -> tuple[float, float]:
        """The world's (east, north) metres → WGS-84 (longitude, latitude)."""
        lon, lat = self._to_local.transform(east_m, north_m, direction="INVERSE")
        return float(lon), float(lat)


def build_world(
    district: District,
    zones: Mapping[str, gpd.GeoDataFrame],
    *,
    seed: int = 0,
    area_wgs84: BaseGeometry | None = None,
) -> World:
    """Build the world over ``area_wgs84`` (a WGS-84 polygon; the whole district when None).

    Raises:
        WorldError: a zone layer is missing, or the area holds no buildings.
    """
    missing = [name for name in ZONE_LAYERS if name not in zones]
    if missing:
        raise WorldError(f"{district.source}: zone layers missing: {', '.join(missing)}")
    buildings_wgs = district.buildings.to_crs(WGS84)
    area_wgs = area_wgs84 if area_wgs84 is not None else shapely.box(*buildings_wgs.total_bounds)
    if area_wgs.is_empty:
        raise WorldError(f"{district.source}: the world's area is empty")
    centre = area_wgs.centroid
    crs = local_enu_crs(centre.x, centre.y)
    area = _to_crs(gpd.GeoSeries([area_wgs], crs=WGS84), crs).iloc[0]
    buildings = _local_buildings(district.buildings, crs, area, seed)
    if buildings.empty:
        raise WorldError(f"{district.source}: no buildings inside the requested area")
    surfaces = _local_surfaces(district, zones, crs, area)
    rng = np.random.default_rng(seed)
    stalls = _stalls(surfaces["parking"])
    markings = _markings(stalls, surfaces["parking"], surfaces["roads"])
    planter = _Planter(rng, buildings, surfaces, area)
    objects = planter.plant(stalls)
    trees = planter.trees()
    to_local = Transformer.from_crs(WGS84, crs, always_xy=True)
    return World(crs, area, buildings, surfaces, markings, trees, objects, seed, to_local)


def read_zones(path: Path) -> dict[str, gpd.GeoDataFrame]:
    """Read the zone layers (``parking``, ``fire_lanes``, ``green``, ``public_space``) of a GeoPackage.

    Raises:
        WorldError: the file is missing or a layer is absent (naming the file and the layers).
    """
    path = Path(path)
    present = gpkg_layers(path, WorldError)
    missing = [name for name in ZONE_LAYERS if name not in present]
    if missing:
        raise WorldError(
            f"{path}: zone layers missing: {', '.join(missing)} (make one with `skygrid demo-district`) / "
            f"缺少区域图层"
        )
    return {name: gpd.read_file(path, layer=name) for name in ZONE_LAYERS}


def truth_frame(world: World, sightings: Mapping[str, int] | None = None) -> gpd.GeoDataFrame:
    """The planted objects as a WGS-84 GeoDataFrame of footprints.

    Args:
        world: the world.
        sightings: frames each object was seen in; when given, only those objects, with a ``sightings`` column.
    """
    objects = [o for o in world.objects if sightings is None or o.object_id in sightings]
    rows = [
        {
            "object_id": o.object_id,
            "class_name": o.class_name,
            "category_code": o.category_code,
            "category": CATEGORY_NAMES[o.category_code],
            "violation": o.violation,
            "zone": o.zone,
            "base_height_m": o.base_height_m,
            "height_m": o.height_m,
            "sightings": None if sightings is None else sightings[o.object_id],
        }
        for o in objects
    ]
    columns = list(_TRUTH_COLUMNS) + ([] if sightings is None else ["sightings"])
    geometry = gpd.GeoSeries([o.footprint for o in objects], crs=world.crs)
    frame = gpd.GeoDataFrame(pd.DataFrame(rows, columns=columns), geometry=geometry, crs=world.crs)
    result: gpd.GeoDataFrame = frame.to_crs(WGS84)
    return result


_TRUTH_COLUMNS = ("object_id", "class_name", "category_code", "category", "violation", "zone", "base_height_m",
                  "height_m")  # fmt: skip


def write_truth(world: World, path: Path, sightings: Mapping[str, int] | None = None) -> None:
    """Write the ground truth to GeoPackage layer ``objects`` (WGS-84), atomically.

    Columns: ``object_id``, ``class_name``, ``category_code``, ``category``, ``violation``, ``zone``,
    ``base_height_m``, ``height_m`` (and ``sightings`` when given: then only the objects seen are written);
    geometry is each object's footprint polygon.
    """
    write_gpkg_atomic(truth_frame(world, sightings), Path(path), "objects")


def write_gpkg_atomic(frame: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    """Write one layer to a temporary GeoPackage beside ``path`` and move it into place when complete."""
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}.gpkg")
    try:
        frame.to_file(tmp, driver="GPKG", layer=layer)
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
        raise


# --- layers ------------------------------------------------------------------------------------------------


def _to_crs(series: gpd.GeoSeries, crs: CRS) -> gpd.GeoSeries:
    result: gpd.GeoSeries = series.to_crs(crs)
    return result


def _local_buildings(buildings: gpd.GeoDataFrame, crs: CRS, area: Polygon, seed: int) -> gpd.GeoDataFrame:
    local = buildings.to_crs(crs)
    local = local[local.intersects(area)].reset_index(drop=True)
    floors = pd.to_numeric(local["floors"], errors="coerce").fillna(2).clip(lower=1).to_numpy(float)
    rng = np.random.default_rng([seed, 7])
    base = np.array([[175, 178, 182], [150, 160, 175], [110, 120, 150], [190, 190, 185], [95, 100, 110],
                     [140, 150, 150], [80, 95, 150], [200, 205, 210]], dtype=float)  # fmt: skip
    colours = base[rng.integers(0, len(base), len(local))] + rng.normal(0.0, 8.0, (len(local), 3))
    colours = np.clip(colours, 0, 255).astype(int)
    frame = gpd.GeoDataFrame(
        {
            "building_id": local["building_id"].astype(str).to_numpy(),
            "height_m": floors * METRES_PER_FLOOR,
            "roof_b": colours[:, 0],
            "roof_g": colours[:, 1],
            "roof_r": colours[:, 2],
        },
        geometry=shapely.make_valid(local.geometry.to_numpy()),
        crs=crs,
    )
    return frame


def _local_surfaces(
    district: District, zones: Mapping[str, gpd.GeoDataFrame], crs: CRS, area: Polygon
) -> dict[str, gpd.GeoDataFrame]:
    """Roads, water (roads of kind ``river``), compounds and the zone layers near ``area``, in ``crs``."""
    roads = district.roads
    layers = {
        "roads": None if roads is None else roads[roads["kind"] != "river"],
        "water": None if roads is None else roads[roads["kind"] == "river"],
        "compounds": district.compounds,
        **{k: zones[k] for k in ZONE_LAYERS},
    }
    for name, frame in layers.items():
        if frame is not None and not frame.empty and frame.crs is None:
            raise WorldError(f"{district.source}: layer {name} has no CRS; declare one, e.g. EPSG:4326")
    return {name: _local_surface(frame, crs, area) for name, frame in layers.items()}


def _local_surface(frame: gpd.GeoDataFrame | None, crs: CRS, area: Polygon) -> gpd.GeoDataFrame:
    if frame is None or frame.empty:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    geoms = frame.geometry.to_crs(crs)
    geoms = geoms[geoms.intersects(area)]
    polygons = geoms[geoms.geom_type.isin(["Polygon", "MultiPolygon"])]
    return gpd.GeoDataFrame(geometry=polygons.reset_index(drop=True), crs=crs)


# --- parking stalls ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stall:
    polygon: Polygon
    axis_deg: float  # direction a parked car points, clockwise from north


def _stalls(parking: gpd.GeoDataFrame) -> list[_Stall]:
    """Cut every parking strip into stalls ``STALL_WIDTH_M`` wide across its long side."""
    stalls: list[_Stall] = []
    for polygon in shapely.get_parts(parking.geometry.to_numpy()):
        stalls.extend(_strip_stalls(polygon))
    return stalls


@dataclass(frozen=True)
class _Rectangle:
    """A polygon's minimum rotated rectangle: a corner, unit vectors along its long side and inwards across."""

    origin: FloatArray
    along: FloatArray
    across: FloatArray
    length_m: float
    width_m: float


def _rectangle(polygon: BaseGeometry) -> _Rectangle:
    corners = np.asarray(polygon.minimum_rotated_rectangle.exterior.coords)[:4]
    sides = np.diff(np.vstack([corners, corners[:1]]), axis=0)
    lengths = np.hypot(sides[:, 0], sides[:, 1])
    k = int(np.argmax(lengths[:2]))
    along = sides[k] / lengths[k]
    across = sides[1 - k] / lengths[1 - k]
    if float((corners.mean(axis=0) - corners[k]) @ across) < 0:
        across = -across  # point into the rectangle from the origin corner
    return _Rectangle(corners[k], along, across, float(lengths[k]), float(lengths[1 - k]))


def _strip_stalls(strip: Polygon) -> list[_Stall]:
    rect = _rectangle(strip)
    length, depth, along, across, origin = rect.length_m, rect.width_m, rect.along, rect.across, rect.origin
    if depth < 2.0 or length < STALL_WIDTH_M:
        return []
    count = int(length // STALL_WIDTH_M)
    start = (length - count * STALL_WIDTH_M) / 2.0
    stalls = []
    for k in range(count):
        a = origin + along * (start + k * STALL_WIDTH_M)
        quad = Polygon(
            [a, a + along * STALL_WIDTH_M, a + along * STALL_WIDTH_M + across * depth, a + across * depth]
        )
        if quad.intersection(strip).area >= 0.9 * quad.area:
            stalls.append(_Stall(quad, _bearing_deg(across)))
    return stalls


def _stall_lines(stalls: list[_Stall], parking: gpd.GeoDataFrame) -> list[BaseGeometry]:
    """The two dividers of every stall, cut to the parking strip they are painted on."""
    lines: list[BaseGeometry] = []
    for stall in stalls:
        coords = np.asarray(stall.polygon.exterior.coords)
        lines.append(LineString([coords[0], coords[3]]))
        lines.append(LineString([coords[1], coords[2]]))
    painted = shapely.intersection(lines, shapely.union_all(parking.geometry.to_numpy()))
    return [line for line in painted if not line.is_empty]


def _markings(stalls: list[_Stall], parking: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    lines: list[BaseGeometry] = _stall_lines(stalls, parking)
    kinds = ["stall"] * len(lines)
    for road_lines, kind in _road_lines(roads):
        lines.append(road_lines)
        kinds.append(kind)
    return gpd.GeoDataFrame({"kind": kinds}, geometry=gpd.GeoSeries(lines, crs=roads.crs), crs=roads.crs)


def _road_lines(roads: gpd.GeoDataFrame) -> list[tuple[BaseGeometry, str]]:
    """Centre and dashed lane lines along each straight road, cut where another road crosses it."""
    geoms = list(roads.geometry)
    result: list[tuple[BaseGeometry, str]] = []
    for i, road in enumerate(geoms):
        if road.area < 0.95 * road.minimum_rotated_rectangle.area:
            continue  # not a straight road: no lane lines
        rect = _rectangle(road)
        along, across = rect.along, rect.across
        start = rect.origin + across * rect.width_m / 2
        crossing = shapely.union_all([g for j, g in enumerate(geoms) if j != i])
        for offset_m, kind in _lane_offsets(rect.width_m):
            base = start + across * offset_m
            if kind == "centre":
                line: BaseGeometry = LineString([base, base + along * rect.length_m])
            else:
                dashes = np.arange(0.0, rect.length_m - _DASH_M[0], _DASH_M[1])
                line = shapely.MultiLineString(
                    [[base + along * d, base + along * (d + _DASH_M[0])] for d in dashes]
                )
            line = line.difference(crossing)
            if not line.is_empty:
                result.append((line, kind))
    return result


def _lane_offsets(width_m: float) -> list[tuple[float, str]]:
    offsets = [(-0.15, "centre"), (0.15, "centre")]
    lane = LANE_WIDTH_M
    while lane < width_m / 2 - 1.5:
        offsets += [(-lane, "lane"), (lane, "lane")]
        lane += LANE_WIDTH_M
    return offsets


def _bearing_deg(vector: np.ndarray[Any, Any]) -> float:
    return math.degrees(math.atan2(float(vector[0]), float(vector[1]))) % 360.0


# --- planting ----------------------------------------------------------------------------------------------


class _Planter:
    """Places objects without overlaps and measures each one's zone and violation from its footprint."""

    def __init__(
        self,
        rng: np.random.Generator,
        buildings: gpd.GeoDataFrame,
        surfaces: dict[str, gpd.GeoDataFrame],
        area: Polygon,
    ) -> None:
        self.rng = rng
        self.buildings = buildings
        self.area = area
        self.zone_union = {
            name: shapely.union_all(surfaces[name].geometry.to_numpy()) for name in ZONE_LAYERS
        }
        compounds = shapely.union_all(surfaces["compounds"].geometry.to_numpy())
        taken = shapely.union_all(
            [*self.zone_union.values(), shapely.union_all(buildings.geometry.to_numpy())]
        )
        self.zone_union["compound"] = shapely.difference(compounds, taken)
        self.blocked = _Occupancy(list(buildings.geometry))
        self.roof_objects = _Occupancy([])
        self.objects: list[PlantedObject] = []

    def plant(self, stalls: list[_Stall]) -> tuple[PlantedObject, ...]:
        self._plant_stalls(stalls)
        for zone, densities in _DENSITY_PER_HA.items():
            region = self.zone_union[zone].intersection(self.area)
            for class_name, density in densities.items():
                for polygon in shapely.get_parts(np.asarray([region])):
                    self._plant_in(polygon, class_name, self.rng.poisson(density * polygon.area / 10_000.0))
        self._plant_roofs()
        return tuple(self.objects)

    def trees(self) -> gpd.GeoDataFrame:
        """Tree crowns in green space, about one per 80 m², clear of planted objects."""
        crowns: list[Polygon] = []
        heights: list[float] = []
        green = self.zone_union["green"].intersection(self.area)
        if green.is_empty:
            return gpd.GeoDataFrame({"height_m": []}, geometry=gpd.GeoSeries([]))
        clear = shapely.STRtree(self.blocked.shapes)
        x0, y0, x1, y1 = green.bounds
        count = self.rng.poisson(green.area / _TREE_AREA_M2)
        points = self.rng.uniform((x0, y0), (x1, y1), size=(count, 2))
        radii = self.rng.uniform(1.5, 3.2, count)
        inside = shapely.contains_xy(green, points[:, 0], points[:, 1])
        for (x, y), radius in zip(points[inside], radii[inside], strict=True):
            crown = Point(x, y).buffer(radius, quad_segs=4)
            if len(clear.query(crown.buffer(_GAP_M), predicate="intersects")) == 0:
                crowns.append(crown)
                heights.append(float(self.rng.uniform(4.0, 9.0)))
        return gpd.GeoDataFrame({"height_m": heights}, geometry=gpd.GeoSeries(crowns))

    def _plant_stalls(self, stalls: list[_Stall]) -> None:
        for stall in stalls:
            draw = self.rng.random()
            if draw >= _STALL_CAR_P + _STALL_MOTORBIKE_P or not stall.polygon.intersects(self.area):
                continue
            class_name = "car" if draw < _STALL_CAR_P else "motorbike"
            centre = stall.polygon.centroid
            heading = stall.axis_deg + self.rng.choice([0.0, 180.0]) + self.rng.normal(0.0, 2.0)
            jitter = self.rng.normal(0.0, 0.12, 2)
            self._try_add(class_name, (centre.x + jitter[0], centre.y + jitter[1]), heading, 0.0)

    def _plant_in(self, region: Polygon, class_name: str, count: int) -> None:
        if count == 0 or region.area < 4.0:
            return
        axis = _long_axis_deg(region)
        x0, y0, x1, y1 = region.bounds
        for _ in range(count):
            for _ in range(_TRIES):
                point = (self.rng.uniform(x0, x1), self.rng.uniform(y0, y1))
                if not region.contains(Point(point)):
                    continue
                heading = (
                    axis + self.rng.normal(0.0, 4.0) if class_name in _VEHICLES else self.rng.uniform(0, 180)
                )
                if self._try_add(class_name, point, heading, 0.0, within=region):
                    break

    def _plant_roofs(self) -> None:
        for row in self.buildings.itertuples():
            roof = shapely.buffer(row.geometry, -1.5)
            if roof.is_empty or not self.area.contains(row.geometry.centroid):
                continue
            for class_name, probability in _ROOF_STRUCTURE_P.items():
                if self.rng.random() < probability:
                    self._plant_on_roof(roof, class_name, float(row.height_m))

    def _plant_on_roof(self, roof: Polygon, class_name: str, height_m: float) -> None:
        x0, y0, x1, y1 = roof.bounds
        axis = _long_axis_deg(roof)
        for _ in range(_TRIES):
            point = (self.rng.uniform(x0, x1), self.rng.uniform(y0, y1))
            heading = axis + self.rng.choice([0.0, 90.0])
            if self._try_add(class_name, point, heading, height_m, within=roof):
                return

    def _try_add(
        self,
        class_name: str,
        centre: tuple[float, float],
        heading_deg: float,
        base_height_m: float,
        within: Polygon | None = None,
    ) -> bool:
        footprint = _footprint(class_name, centre, heading_deg, self.rng)
        if within is not None and not within.contains(footprint):
            return False
        others = self.roof_objects if base_height_m > 0 else self.blocked
        if base_height_m == 0 and not self.area.contains(footprint.centroid):
            return False
        guard = footprint.buffer(_GAP_M)
        if others.hits(guard):
            return False
        others.add(footprint)
        self.objects.append(self._make(class_name, footprint, heading_deg, base_height_m))
        return True

    def _make(
        self, class_name: str, footprint: Polygon, heading_deg: float, base_height_m: float
    ) -> PlantedObject:
        zone = "roof" if base_height_m > 0 else self._zone_of(footprint, class_name)
        palette = _PALETTES[class_name]
        colour = palette[int(self.rng.integers(0, len(palette)))]
        low, high = _SIZES[class_name][2]
        return PlantedObject(
            object_id=f"T{len(self.objects) + 1:05d}",
            class_name=class_name,
            footprint=footprint,
            heading_deg=float(heading_deg % 360.0),
            base_height_m=base_height_m,
            height_m=float(self.rng.uniform(low, high)),
            colour_bgr=colour,
            zone=zone,
            category_code=CATEGORY_BY_CLASS[class_name],
            violation=is_violation(class_name, zone),
        )

    def _zone_of(self, footprint: Polygon, class_name: str) -> str:
        if (
            class_name in _VEHICLES
            and footprint.intersection(self.zone_union["parking"]).area >= 0.5 * footprint.area
        ):
            return "parking"
        centre = footprint.centroid
        for zone in ("fire_lanes", "green", "public_space", "parking", "compound"):
            if self.zone_union[zone].contains(centre):
                return zone
        return "street"


class _Occupancy:
    """Shapes already placed, hashed into square cells so that a new shape is tested only against its neighbours."""

    def __init__(self, shapes: list[BaseGeometry], cell_m: float = 20.0) -> None:
        self.cell_m = cell_m
        self.shapes: list[BaseGeometry] = []
        self._cells: dict[tuple[int, int], list[int]] = {}
        for shape in shapes:
            self.add(shape)

    def _keys(self, shape: BaseGeometry) -> list[tuple[int, int]]:
        x0, y0, x1, y1 = (math.floor(v / self.cell_m) for v in shape.bounds)
        return [(i, j) for i in range(x0, x1 + 1) for j in range(y0, y1 + 1)]

    def add(self, shape: BaseGeometry) -> None:
        index = len(self.shapes)
        self.shapes.append(shape)
        for key in self._keys(shape):
            self._cells.setdefault(key, []).append(index)

    def hits(self, shape: BaseGeometry) -> bool:
        """Whether ``shape`` intersects any placed shape."""
        candidates = {i for key in self._keys(shape) for i in self._cells.get(key, ())}
        return any(shape.intersects(self.shapes[i]) for i in candidates)


def is_violation(class_name: str, zone: str) -> bool:
    """The map rule for a planted object of ``class_name`` whose footprint lies in ``zone``."""
    if class_name in _VEHICLES:
        return zone != "parking"
    if class_name in _STRUCTURES:
        return True
    return zone in _PILE_ZONES


def _footprint(
    class_name: str, centre: tuple[float, float], heading_deg: float, rng: np.random.Generator
) -> Polygon:
    """The class's footprint at ``centre``, its long axis along ``heading_deg`` (clockwise from north)."""
    (l_low, l_high), (w_low, w_high), _ = _SIZES[class_name]
    length, width = rng.uniform(l_low, l_high), rng.uniform(w_low, w_high)
    if class_name in ("clutter", "garbage"):
        angles = np.sort(rng.uniform(0.0, 2 * math.pi, 9))
        radii = rng.uniform(0.6, 1.0, 9)
        shape = Polygon(
            np.column_stack([width / 2 * radii * np.sin(angles), length / 2 * radii * np.cos(angles)])
        )
        shape = shape.convex_hull if class_name == "clutter" else shape.buffer(0.15).simplify(0.05)
    else:
        shape = box(-width / 2, -length / 2, width / 2, length / 2)
    rotated = affinity.rotate(shape, -heading_deg, origin=(0.0, 0.0))
    result: Polygon = affinity.translate(rotated, centre[0], centre[1])
    return result


def _long_axis_deg(polygon: Polygon) -> float:
    rect = polygon.minimum_rotated_rectangle
    corners = np.asarray(rect.exterior.coords)[:3]
    sides = np.diff(corners, axis=0)
    longest = sides[int(np.argmax(np.hypot(sides[:, 0], sides[:, 1])))]
    return _bearing_deg(longest)
