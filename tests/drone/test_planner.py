"""The mission planner end to end over grids of a demo plan (and Suzhou when the shared data is there)."""

from __future__ import annotations

import functools
import math

import geopandas as gpd
import pytest
import shapely

from drone.altitude import building_heights_m, lowest_safe_altitude_m
from drone.coverage import MissionPlanError, legs_through, photo_cells
from drone.model import Mission, WaypointAction
from drone.planner import MissionSettings, plan_areas, plan_community, plan_grids
from drone.sorties import FlightModel
from gis.crs import local_metric_crs
from gis.demo import DemoDistrict, make_demo_district
from gis.gridder import make_plan
from gis.io import read_district
from gis.model import GridPlan, GridRules
from tests.shared_data import shared_path


@functools.cache
def demo() -> tuple[DemoDistrict, GridPlan]:
    """A small demo district and its plan, made once per test session."""
    district = make_demo_district(10_000, seed=3)
    return district, make_plan(district.district, GridRules())


def two_grids() -> list[str]:
    return [str(c) for c in demo()[1].grids["grid_code"].iloc[:2]]


def _metric_path(mission: Mission, crs: object) -> list[list[tuple[float, float]]]:
    paths = []
    for sortie in mission.sorties:
        lonlat = [(sortie.home.lon_deg, sortie.home.lat_deg)]
        lonlat += [(w.lon_deg, w.lat_deg) for w in sortie.waypoints] + lonlat[:1]
        points = gpd.GeoSeries(gpd.points_from_xy(*zip(*lonlat, strict=True)), crs="EPSG:4326").to_crs(crs)
        paths.append([(p.x, p.y) for p in points])
    return paths


def _photo_flags(mission: Mission) -> list[list[bool]]:
    flags = []
    for sortie in mission.sorties:
        on, seq = False, [False]  # home → first waypoint
        for waypoint in sortie.waypoints:
            if waypoint.action is WaypointAction.START_SURVEY:
                on = True
            elif waypoint.action is WaypointAction.STOP_SURVEY:
                on = False
            seq.append(on)
        flags.append(seq)
    return flags


def test_two_grids_are_covered_in_wgs84_at_the_requested_overlap() -> None:
    _, plan = demo()
    settings = MissionSettings()
    mission = plan_grids(plan, two_grids(), settings=settings)
    assert mission.grid_codes == tuple(two_grids())
    grids = plan.grids[plan.grids["grid_code"].isin(two_grids())]
    west, south, east, north = grids.total_bounds
    for sortie in mission.sorties:
        assert all(
            west - 0.01 < w.lon_deg < east + 0.01 and south - 0.01 < w.lat_deg < north + 0.01
            for w in sortie.waypoints
        )
    crs = local_metric_crs(grids)
    spacing = settings.camera.transect_spacing_m(80.0, 0.7)
    trigger = settings.camera.trigger_distance_m(80.0, 0.8)
    cells = shapely.union_all(
        [
            photo_cells(p, f, spacing, trigger)
            for p, f in zip(_metric_path(mission, crs), _photo_flags(mission), strict=True)
        ]
    )
    target = shapely.union_all(grids.to_crs(crs).geometry.to_numpy())
    assert cells.intersection(target).area / target.area > 0.995


def test_no_fly_zones_and_tall_buildings_are_never_crossed() -> None:
    district, plan = demo()
    grids = plan.grids[plan.grids["grid_code"].isin(two_grids())]
    crs = local_metric_crs(grids)
    centre = shapely.union_all(grids.to_crs(crs).geometry.to_numpy()).centroid
    zone = gpd.GeoDataFrame(geometry=[centre.buffer(30.0)], crs=crs).to_crs("EPSG:4326")
    buildings = district.district.buildings
    settings = MissionSettings(altitude_m=60.0)
    mission = plan_grids(plan, two_grids(), settings=settings, no_fly=zone, buildings=buildings)
    metric_buildings = buildings.to_crs(crs)
    for path in _metric_path(mission, crs):
        assert legs_through(path, list(zone.to_crs(crs).geometry)) == 0
        assert (
            lowest_safe_altitude_m(path, metric_buildings, settings.vertical_clearance_m, corridor_m=0.0)
            <= 60.0
        )
    exclusions = [f for f in mission.fence if not f.inclusion]
    assert len(exclusions) == 1 and any(f.inclusion for f in mission.fence)


def test_fence_inclusion_contains_every_waypoint() -> None:
    _, plan = demo()
    mission = plan_grids(plan, two_grids(), settings=MissionSettings())
    inclusion = shapely.Polygon(next(f for f in mission.fence if f.inclusion).vertices)
    points = [shapely.Point(w.lon_deg, w.lat_deg) for s in mission.sorties for w in (s.home, *s.waypoints)]
    assert all(inclusion.contains(p) for p in points)


def test_a_small_battery_gives_several_sorties_each_within_budget() -> None:
    _, plan = demo()
    flight = FlightModel(battery_s=240.0)
    mission = plan_grids(plan, two_grids(), settings=MissionSettings(flight=flight))
    assert len(mission.sorties) > 1
    assert all(s.estimated_duration_s <= flight.budget_s + 1e-6 for s in mission.sorties)
    assert [s.index for s in mission.sorties] == list(range(len(mission.sorties)))


def test_take_off_point_sets_the_entry() -> None:
    _, plan = demo()
    grids = plan.grids[plan.grids["grid_code"].isin(two_grids()[:1])]
    west, south, east, north = (float(v) for v in grids.total_bounds)
    for home in ((west, south), (east, north)):
        mission = plan_grids(plan, two_grids()[:1], settings=MissionSettings(), home_lonlat=home)
        first = mission.sorties[0].waypoints[0]
        far = (east + west - home[0], north + south - home[1])
        assert math.dist((first.lon_deg, first.lat_deg), home) < math.dist(
            (first.lon_deg, first.lat_deg), far
        )


def test_community_is_covered_as_one_area() -> None:
    _, plan = demo()
    code = str(plan.grids["community_code"].iloc[0])
    mission = plan_community(plan, code, settings=MissionSettings())
    assert mission.grid_codes == (code,)
    assert sum(len(s.waypoints) for s in mission.sorties) > 0


@pytest.mark.parametrize(("codes", "message"), [(["999"], "999"), ([], "at least one")])
def test_bad_grid_codes_are_named(codes: list[str], message: str) -> None:
    with pytest.raises(MissionPlanError, match=message):
        plan_grids(demo()[1], codes, settings=MissionSettings())


def test_home_inside_a_no_fly_zone_is_refused() -> None:
    _, plan = demo()
    grid = plan.grids[plan.grids["grid_code"] == two_grids()[0]]
    zone = gpd.GeoDataFrame(geometry=[grid.geometry.iloc[0].envelope.buffer(0.001)], crs=grid.crs)
    home = grid.geometry.iloc[0].representative_point()
    with pytest.raises(MissionPlanError, match=r"home .* no-fly"):
        plan_grids(
            plan, two_grids()[:1], settings=MissionSettings(), home_lonlat=(home.x, home.y), no_fly=zone
        )


def test_a_grid_inside_a_no_fly_zone_is_named() -> None:
    _, plan = demo()
    code = two_grids()[1]
    grid = plan.grids[plan.grids["grid_code"] == code]
    zone = gpd.GeoDataFrame(geometry=[grid.geometry.iloc[0].envelope.buffer(0.001)], crs=grid.crs)
    with pytest.raises(MissionPlanError, match=f"grid {code}: the whole area lies inside no-fly zones"):
        plan_grids(plan, [code], settings=MissionSettings(), no_fly=zone)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(MissionPlanError, match="120"):
        MissionSettings(altitude_m=150.0)
    with pytest.raises(MissionPlanError, match="side_overlap"):
        MissionSettings(side_overlap=1.2)


def test_a_suzhou_community_is_flown_round_its_towers() -> None:
    district = read_district(shared_path("data", "suzhou_district.gpkg"))
    community = district.communities.iloc[[0]]
    areas = gpd.GeoDataFrame(
        {"name": [str(community["community_code"].iloc[0])]},
        geometry=community.geometry.to_numpy(),
        crs=community.crs,
    )
    settings = MissionSettings()
    mission = plan_areas(areas, settings=settings, buildings=district.buildings)
    crs = local_metric_crs(areas)
    metric = district.buildings.to_crs(crs)
    tall = metric[building_heights_m(metric).to_numpy() + settings.vertical_clearance_m > settings.altitude_m]
    assert len(mission.sorties) >= 1
    for path in _metric_path(mission, crs):
        assert legs_through(path, list(tall.geometry)) == 0
