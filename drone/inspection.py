"""Inspection missions: fly to a list of points (open cases), hover, photograph at a gimbal pitch, return.

Used to re-check cases after handling. Points are visited in the order of the shortest tour from home,
transits go round no-fly zones and tall buildings, and the points are split into sorties by the battery
(each point's hover counted), each sortie returning to launch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import shapely

from drone.altitude import check_altitude_m, tall_buildings
from drone.cameras import PRESETS
from drone.coverage import XY, MissionPlanError, Obstacles, detour, path_length_m
from drone.model import Camera, Mission, Sortie, Waypoint, WaypointAction
from drone.planner import LonLat, Projection
from drone.sorties import FlightModel, order_areas
from gis.crs import local_metric_crs


@dataclass(frozen=True)
class InspectionSettings:
    """How to inspect: altitude, hover time per point, gimbal pitch (-90 straight down), clearances."""

    camera: Camera = field(default_factory=lambda: PRESETS["mavic3e"].camera)
    altitude_m: float = 40.0
    hover_s: float = 5.0
    gimbal_pitch_deg: float = -60.0
    clearance_m: float = 10.0
    vertical_clearance_m: float = 10.0
    flight: FlightModel = field(default_factory=FlightModel)

    def __post_init__(self) -> None:
        check_altitude_m(self.altitude_m)
        if not -90.0 <= self.gimbal_pitch_deg <= 0.0:
            raise MissionPlanError(f"gimbal pitch must be in [-90, 0] degrees, got {self.gimbal_pitch_deg}")
        if self.hover_s < 0:
            raise MissionPlanError(f"hover time must be zero or positive, got {self.hover_s}")


def plan_inspection(
    points_lonlat: Sequence[LonLat],
    *,
    home_lonlat: LonLat,
    settings: InspectionSettings,
    no_fly: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    name: str = "inspection",
) -> Mission:
    """Plan the re-check flight over ``points_lonlat`` (WGS-84) from ``home_lonlat``.

    Raises:
        MissionPlanError: no points, a point inside a no-fly zone, or a point out of the battery's reach.
    """
    if not points_lonlat:
        raise MissionPlanError("no inspection points given")
    frame = gpd.GeoDataFrame(
        geometry=[shapely.Point(p) for p in [home_lonlat, *points_lonlat]], crs="EPSG:4326"
    )
    projection = Projection(local_metric_crs(frame))
    home = projection.to_xy(*home_lonlat)
    points = [projection.to_xy(*p) for p in points_lonlat]
    zones = projection.frame(no_fly)
    towers = tall_buildings(
        buildings.to_crs(projection.crs) if buildings is not None else gpd.GeoDataFrame(geometry=[]),
        settings.altitude_m,
        settings.vertical_clearance_m,
    )
    obstacles = Obstacles([*zones, *towers], settings.clearance_m)
    _check_points(points, points_lonlat, obstacles)
    order = order_areas(points, home)
    batches = _batches([points[i] for i in order], home, obstacles, settings)
    sorties = tuple(
        _sortie(i, batch, home, obstacles, projection, settings) for i, batch in enumerate(batches)
    )
    return Mission(name=name, camera=settings.camera, altitude_m=settings.altitude_m, sorties=sorties)


def _check_points(points: list[XY], lonlat: Sequence[LonLat], obstacles: Obstacles) -> None:
    for (x, y), (lon, lat) in zip(points, lonlat, strict=True):
        if obstacles.blocks((x, y), (x, y)):
            raise MissionPlanError(
                f"inspection point {lon:.6f},{lat:.6f} lies in a no-fly zone or a tall building"
            )


def _path(points: Sequence[XY], home: XY, obstacles: Obstacles) -> list[XY]:
    route = [home]
    for target in [*points, home]:
        route += detour(route[-1], target, obstacles)[1:]
    return route


def _duration_s(points: Sequence[XY], home: XY, obstacles: Obstacles, settings: InspectionSettings) -> float:
    model = settings.flight
    return (
        model.fly_s(_path(points, home, obstacles))
        + model.vertical_s(settings.altitude_m)
        + settings.hover_s * len(points)
    )


def _batches(
    points: list[XY], home: XY, obstacles: Obstacles, settings: InspectionSettings
) -> list[list[XY]]:
    batches: list[list[XY]] = [[]]
    for point in points:
        if _duration_s([*batches[-1], point], home, obstacles, settings) <= settings.flight.budget_s:
            batches[-1].append(point)
            continue
        if not batches[-1] or _duration_s([point], home, obstacles, settings) > settings.flight.budget_s:
            raise MissionPlanError(
                f"inspection point at ({point[0]:.0f}, {point[1]:.0f}) m is beyond the battery's reach from home"
            )
        batches.append([point])
    return batches


def _sortie(
    index: int,
    batch: list[XY],
    home: XY,
    obstacles: Obstacles,
    projection: Projection,
    settings: InspectionSettings,
) -> Sortie:
    path = _path(batch, home, obstacles)
    targets = set(batch)
    lonlat = projection.to_lonlat(path)
    waypoints = tuple(
        Waypoint(
            lon,
            lat,
            settings.altitude_m,
            WaypointAction.HOVER_PHOTO if xy in targets else WaypointAction.NONE,
            hover_s=settings.hover_s if xy in targets else 0.0,
            gimbal_pitch_deg=settings.gimbal_pitch_deg if xy in targets else -90.0,
        )
        for xy, (lon, lat) in zip(path[1:-1], lonlat[1:-1], strict=True)
    )
    return Sortie(
        index=index,
        home=Waypoint(lonlat[0][0], lonlat[0][1], 0.0),
        waypoints=waypoints,
        cruise_speed_m_s=settings.flight.cruise_speed_m_s,
        trigger_distance_m=0.0,
        estimated_duration_s=_duration_s(batch, home, obstacles, settings),
        distance_m=path_length_m(path),
    )
