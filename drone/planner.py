"""Plan a patrol mission over grids of a grid plan (or any polygons), returned in WGS-84.

The public entry of mission planning. It projects the areas to a local metric CRS, turns tall buildings into
no-fly holes, orders the grids to minimise transit, plans each grid's coverage, splits the route by battery
and converts the sorties back to longitude/latitude.

Example::

    from gis import read_plan
    from drone.planner import MissionSettings, plan_grids

    mission = plan_grids(read_plan("plan.gpkg"), ["320571001001001"], settings=MissionSettings())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from drone.altitude import CEILING_M, check_altitude_m, tall_buildings
from drone.cameras import PRESETS
from drone.coverage import (
    XY,
    CoveragePath,
    CoverageSettings,
    MissionPlanError,
    Obstacles,
    detour,
    plan_coverage,
)
from drone.model import Camera, GeoFencePolygon, Mission, Sortie, Waypoint, WaypointAction
from drone.sorties import FlightModel, SortiePath, order_areas, split_sorties
from gis.crs import local_metric_crs
from gis.model import GridPlan

LonLat = tuple[float, float]
WGS84 = "EPSG:4326"


@dataclass(frozen=True)
class MissionSettings:
    """What to fly and how.

    Args:
        camera: the camera (see :mod:`drone.cameras`), default DJI Mavic 3 Enterprise.
        altitude_m: flight altitude above the take-off point (≤ ``ceiling_m``).
        front_overlap, side_overlap: photo overlaps along and across the flight line (0–1).
        margin_m: grids are grown by this much before planning.
        turnaround_m: legs are extended by this much at both ends.
        clearance_m: horizontal distance kept from no-fly zones and tall buildings.
        vertical_clearance_m: a building this close below the flight is a no-fly hole.
        fence_margin_m: the inclusion fence lies this far outside the flown path.
        ceiling_m: highest altitude allowed (the legal 120 m by default).
        angle_step_deg: step of the transect-angle search.
        uncovered_share: largest share of a grid that may be left out of the photos, where that saves
            most flight (a corner's tip that would cost a line of its own, thin slivers at the legs' ends,
            small gaps beside no-fly zones); 0 photographs every square metre.
        flight: speed, turns, climb, descent and battery.
    """

    camera: Camera = field(default_factory=lambda: PRESETS["mavic3e"].camera)
    altitude_m: float = 80.0
    front_overlap: float = 0.8
    side_overlap: float = 0.7
    margin_m: float = 5.0
    turnaround_m: float = 10.0
    clearance_m: float = 10.0
    vertical_clearance_m: float = 20.0
    fence_margin_m: float = 30.0
    ceiling_m: float = CEILING_M
    angle_step_deg: float = 15.0
    uncovered_share: float = 0.002
    flight: FlightModel = field(default_factory=FlightModel)

    def __post_init__(self) -> None:
        check_altitude_m(self.altitude_m, self.ceiling_m)
        for name in ("front_overlap", "side_overlap"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise MissionPlanError(f"{name} must be in [0, 1), got {value}")

    def coverage(self) -> CoverageSettings:
        """Coverage settings implied by the camera, altitude and overlaps."""
        return CoverageSettings(
            spacing_m=self.camera.transect_spacing_m(self.altitude_m, self.side_overlap),
            trigger_distance_m=self.camera.trigger_distance_m(self.altitude_m, self.front_overlap),
            margin_m=self.margin_m,
            turnaround_m=self.turnaround_m,
            cruise_speed_m_s=self.flight.cruise_speed_m_s,
            turn_s=self.flight.turn_s,
            clearance_m=self.clearance_m,
            angle_step_deg=self.angle_step_deg,
            uncovered_share=self.uncovered_share,
        )


@dataclass(frozen=True)
class Projection:
    """A local metric CRS and the conversions between it and WGS-84 longitude/latitude."""

    crs: pyproj.CRS

    def to_xy(self, lon_deg: float, lat_deg: float) -> XY:
        x, y = pyproj.Transformer.from_crs(WGS84, self.crs, always_xy=True).transform(lon_deg, lat_deg)
        return float(x), float(y)

    def to_lonlat(self, points: Sequence[XY]) -> list[LonLat]:
        transformer = pyproj.Transformer.from_crs(self.crs, WGS84, always_xy=True)
        xs, ys = transformer.transform([p[0] for p in points], [p[1] for p in points])
        return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]

    def frame(self, frame: gpd.GeoDataFrame | None) -> list[BaseGeometry]:
        if frame is None or frame.empty:
            return []
        if frame.crs is None:
            raise MissionPlanError("a no-fly or buildings layer has no CRS; declare one, e.g. EPSG:4326")
        return list(frame.to_crs(self.crs).geometry.to_numpy())


def plan_grids(
    plan: GridPlan,
    grid_codes: Sequence[str],
    *,
    settings: MissionSettings,
    home_lonlat: LonLat | None = None,
    no_fly: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
) -> Mission:
    """Plan a patrol over the grids ``grid_codes`` of ``plan``.

    Raises:
        MissionPlanError: no codes given, or a code is not in the plan (the message lists them).
    """
    if not grid_codes:
        raise MissionPlanError("no grid codes given; pass at least one --grid CODE")
    known = set(plan.grids["grid_code"].astype(str))
    unknown = [code for code in grid_codes if code not in known]
    if unknown:
        raise MissionPlanError(f"grid code(s) not in the plan: {', '.join(unknown)} (网格编码不存在)")
    grids = plan.grids.set_index(plan.grids["grid_code"].astype(str)).loc[list(dict.fromkeys(grid_codes))]
    return plan_areas(
        gpd.GeoDataFrame({"name": grids.index}, geometry=grids.geometry.to_numpy(), crs=plan.grids.crs),
        settings=settings,
        home_lonlat=home_lonlat,
        no_fly=no_fly,
        buildings=buildings,
    )


def plan_community(
    plan: GridPlan,
    community_code: str,
    *,
    settings: MissionSettings,
    home_lonlat: LonLat | None = None,
    no_fly: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
) -> Mission:
    """Plan one coverage over the whole community (its grids merged), not grid by grid."""
    grids = plan.grids[plan.grids["community_code"].astype(str) == community_code]
    if grids.empty:
        raise MissionPlanError(f"community {community_code} has no grids in the plan (社区不存在)")
    area = shapely.union_all(grids.to_crs(local_metric_crs(grids)).geometry.to_numpy())
    merged = gpd.GeoDataFrame({"name": [community_code]}, geometry=[area], crs=local_metric_crs(grids))
    return plan_areas(merged, settings=settings, home_lonlat=home_lonlat, no_fly=no_fly, buildings=buildings)


def plan_areas(
    areas: gpd.GeoDataFrame,
    *,
    settings: MissionSettings,
    home_lonlat: LonLat | None = None,
    no_fly: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
) -> Mission:
    """Plan a patrol over polygons (column ``name``, any CRS), visiting them in the order of least transit.

    Args:
        areas: one row per area to cover.
        settings: camera, altitude, overlaps and flight model.
        home_lonlat: take-off point; default a point inside the first area.
        no_fly: polygons never to enter (any CRS); written as exclusion fences too.
        buildings: footprints with ``height_m``/``height`` or ``floors``; those reaching within
            ``vertical_clearance_m`` of the flight become no-fly holes.
    """
    projection = Projection(local_metric_crs(areas))
    metric = areas.to_crs(projection.crs)
    zones = projection.frame(no_fly)
    towers = tall_buildings(
        buildings.to_crs(projection.crs) if buildings is not None else gpd.GeoDataFrame(geometry=[]),
        settings.altitude_m,
        settings.vertical_clearance_m,
    )
    obstacles = Obstacles([*zones, *towers], settings.clearance_m)
    home = _home_xy(metric, projection, home_lonlat, obstacles)
    vertices, photo = _route(metric, home, obstacles, settings)
    paths = split_sorties(
        vertices,
        photo,
        home_xy=home,
        altitude_m=settings.altitude_m,
        model=settings.flight,
        obstacles=obstacles,
    )
    fence = _fence(paths, zones, projection, settings.fence_margin_m)
    return Mission(
        name="+".join(str(n) for n in metric["name"]),
        camera=settings.camera,
        altitude_m=settings.altitude_m,
        sorties=tuple(_sortie(i, p, projection, settings) for i, p in enumerate(paths)),
        fence=fence,
        grid_codes=tuple(str(n) for n in metric["name"]),
        front_overlap=settings.front_overlap,
        side_overlap=settings.side_overlap,
    )


def _home_xy(
    metric: gpd.GeoDataFrame, projection: Projection, home_lonlat: LonLat | None, obstacles: Obstacles
) -> XY:
    if home_lonlat is None:
        first = metric.geometry.iloc[0]
        clear = first.difference(obstacles.keep_out_near(first))
        point = (clear if not clear.is_empty else first).representative_point()
        return float(point.x), float(point.y)
    lon, lat = home_lonlat
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise MissionPlanError(f"home {lon},{lat} is not a longitude,latitude in degrees")
    home = projection.to_xy(lon, lat)
    if obstacles.blocks(home, home):
        raise MissionPlanError(
            f"home {lon},{lat} lies inside a no-fly zone or a tall building (起飞点在禁飞区内)"
        )
    return home


def _route(
    metric: gpd.GeoDataFrame, home: XY, obstacles: Obstacles, settings: MissionSettings
) -> tuple[list[XY], list[bool]]:
    """Cover each area in turn (order of least transit), joined by obstacle-free transits."""
    geoms = list(metric.geometry.to_numpy())
    centres = [(float(g.centroid.x), float(g.centroid.y)) for g in geoms]
    vertices: list[XY] = []
    photo: list[bool] = []
    here = home
    for index in order_areas(centres, home):
        path = _cover(geoms[index], str(metric["name"].iloc[index]), here, obstacles, settings)
        if vertices:
            link = detour(vertices[-1], path.vertices[0], obstacles)
            vertices += link[1:]
            photo += [False] * (len(link) - 1)
        else:
            vertices.append(path.vertices[0])
        vertices += path.vertices[1:]
        photo += path.photo
        here = vertices[-1]
    return vertices, photo


def _cover(
    area: BaseGeometry, name: str, here: XY, obstacles: Obstacles, settings: MissionSettings
) -> CoveragePath:
    try:
        return plan_coverage(area, settings.coverage(), home_xy=here, no_fly=obstacles)
    except MissionPlanError as error:
        raise MissionPlanError(f"grid {name}: {error}") from error


def _sortie(index: int, path: SortiePath, projection: Projection, settings: MissionSettings) -> Sortie:
    lonlat = projection.to_lonlat(path.vertices)
    home = Waypoint(lonlat[0][0], lonlat[0][1], 0.0)
    waypoints = []
    for i in range(1, len(lonlat) - 1):
        starts, ends = path.photo[i], path.photo[i - 1]
        action = (
            WaypointAction.START_SURVEY
            if starts and not ends
            else WaypointAction.STOP_SURVEY
            if ends and not starts
            else WaypointAction.NONE
        )
        waypoints.append(Waypoint(lonlat[i][0], lonlat[i][1], settings.altitude_m, action))
    return Sortie(
        index=index,
        home=home,
        waypoints=tuple(waypoints),
        cruise_speed_m_s=settings.flight.cruise_speed_m_s,
        trigger_distance_m=settings.camera.trigger_distance_m(settings.altitude_m, settings.front_overlap),
        estimated_duration_s=path.duration_s,
        distance_m=path.distance_m,
    )


def _fence(
    paths: Sequence[SortiePath], zones: list[BaseGeometry], projection: Projection, margin_m: float
) -> tuple[GeoFencePolygon, ...]:
    """An inclusion polygon around everything flown, and each no-fly zone near it as an exclusion."""
    flown = shapely.MultiPoint([p for path in paths for p in path.vertices])
    inclusion = flown.convex_hull.buffer(margin_m, quad_segs=2).simplify(1.0)
    polygons = [GeoFencePolygon(_ring(inclusion, projection), inclusion=True)]
    for zone in zones:
        for part in shapely.get_parts(zone):
            if part.geom_type == "Polygon" and part.intersects(inclusion):
                polygons.append(GeoFencePolygon(_ring(part.simplify(0.5), projection), inclusion=False))
    return tuple(polygons)


def _ring(polygon: BaseGeometry, projection: Projection) -> tuple[LonLat, ...]:
    coords = [(float(x), float(y)) for x, y in list(polygon.exterior.coords)[:-1]]
    return tuple(projection.to_lonlat(coords))
