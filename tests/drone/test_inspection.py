"""Inspection missions: points in the shortest order, hover and photo at a pitch, detours, battery, errors."""

from __future__ import annotations

import math

import geopandas as gpd
import pytest
import shapely

from drone.coverage import MissionPlanError
from drone.inspection import InspectionSettings, plan_inspection
from drone.items import Cmd, sortie_items
from drone.model import WaypointAction
from drone.sorties import FlightModel

HOME = (120.700, 31.300)
POINTS = [(120.703, 31.301), (120.701, 31.3005), (120.702, 31.3015)]


def test_points_are_photographed_once_each_at_the_pitch_then_home() -> None:
    settings = InspectionSettings(hover_s=4.0, gimbal_pitch_deg=-50.0)
    mission = plan_inspection(POINTS, home_lonlat=HOME, settings=settings)
    assert len(mission.sorties) == 1
    sortie = mission.sorties[0]
    shots = [w for w in sortie.waypoints if w.action is WaypointAction.HOVER_PHOTO]
    assert len(shots) == 3
    for point in POINTS:
        assert min(math.dist(point, (w.lon_deg, w.lat_deg)) for w in shots) < 1e-7
    assert all(w.gimbal_pitch_deg == -50.0 and w.hover_s == 4.0 for w in shots)
    assert (sortie.home.lon_deg, sortie.home.lat_deg) == pytest.approx(HOME)
    items = sortie_items(sortie, mission)
    assert [it.command for it in items].count(Cmd.IMAGE_START_CAPTURE) == 3
    assert items[-1].command == Cmd.NAV_RETURN_TO_LAUNCH


def test_the_order_is_the_shorter_tour() -> None:
    mission = plan_inspection(POINTS, home_lonlat=HOME, settings=InspectionSettings())
    visited = [(w.lon_deg, w.lat_deg) for w in mission.sorties[0].waypoints]
    nearest_first = min(POINTS, key=lambda p: math.dist(p, HOME))
    assert math.dist(visited[0], nearest_first) < 1e-7


def test_transits_go_round_a_no_fly_zone() -> None:
    zone = gpd.GeoDataFrame(geometry=[shapely.box(120.7012, 31.2995, 120.7022, 31.3008)], crs="EPSG:4326")
    mission = plan_inspection(
        [(120.704, 31.3001)], home_lonlat=HOME, settings=InspectionSettings(), no_fly=zone
    )
    sortie = mission.sorties[0]
    line = shapely.LineString(
        [(sortie.home.lon_deg, sortie.home.lat_deg), *((w.lon_deg, w.lat_deg) for w in sortie.waypoints)]
    )
    assert len(sortie.waypoints) > 1
    assert not line.intersects(zone.geometry.iloc[0])


def test_a_small_battery_splits_the_points() -> None:
    flight = FlightModel(battery_s=160.0)
    mission = plan_inspection(
        POINTS, home_lonlat=HOME, settings=InspectionSettings(hover_s=20.0, flight=flight)
    )
    assert len(mission.sorties) > 1
    assert all(s.estimated_duration_s <= flight.budget_s for s in mission.sorties)
    assert sum(len(s.waypoints) for s in mission.sorties) == 3


def test_bad_inspections_are_refused() -> None:
    zone = gpd.GeoDataFrame(geometry=[shapely.Point(POINTS[0]).buffer(0.0005)], crs="EPSG:4326")
    with pytest.raises(MissionPlanError, match="no-fly"):
        plan_inspection(POINTS, home_lonlat=HOME, settings=InspectionSettings(), no_fly=zone)
    with pytest.raises(MissionPlanError, match="no inspection points"):
        plan_inspection([], home_lonlat=HOME, settings=InspectionSettings())
    with pytest.raises(MissionPlanError, match="gimbal"):
        InspectionSettings(gimbal_pitch_deg=30.0)
    with pytest.raises(MissionPlanError, match="reach"):
        plan_inspection(
            [(120.9, 31.3)],
            home_lonlat=HOME,
            settings=InspectionSettings(flight=FlightModel(battery_s=120.0)),
        )
