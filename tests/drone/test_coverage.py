"""Coverage paths: convex, concave and holed areas, angle search, entry, turnarounds, detours, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Polygon

from drone.coverage import (
    CoverageSettings,
    MissionPlanError,
    Obstacles,
    detour,
    legs_through,
    path_length_m,
    photo_cells,
    plan_coverage,
    route_time_s,
)

SETTINGS = CoverageSettings(spacing_m=33.8, trigger_distance_m=16.9)
U_SHAPE = Polygon([(0, 0), (300, 0), (300, 300), (200, 300), (200, 80), (100, 80), (100, 300), (0, 300)])


def _covered(
    path_vertices: tuple[tuple[float, float], ...], photo: tuple[bool, ...], target: Polygon
) -> float:
    cells = photo_cells(path_vertices, photo, SETTINGS.spacing_m, SETTINGS.trigger_distance_m)
    return float(cells.intersection(target).area / target.area)


def test_rectangle_is_flown_along_its_long_side_and_fully_covered() -> None:
    area = shapely.box(0, 0, 400, 100)
    path = plan_coverage(area, SETTINGS, home_xy=(-50.0, -50.0))
    assert path.angle_deg % 180 == pytest.approx(0.0, abs=1e-6)
    assert len(path.legs) == math.ceil(100 / SETTINGS.spacing_m)
    assert _covered(path.vertices, path.photo, area) == pytest.approx(1.0, abs=1e-9)


def test_legs_are_no_further_apart_than_the_spacing() -> None:
    area = shapely.box(0, 0, 200, 200)
    path = plan_coverage(area, SETTINGS, home_xy=(0.0, 0.0))
    starts = np.array([leg.start for leg in path.legs])
    offsets = np.sort(np.unique(np.round(starts[:, 1] if path.angle_deg == 0 else starts[:, 0], 6)))
    assert np.all(np.diff(offsets) <= SETTINGS.spacing_m + 1e-9)


def test_entry_is_the_corner_nearest_take_off() -> None:
    area = shapely.box(0, 0, 200, 200)
    for home in ((-30.0, -30.0), (230.0, 230.0), (-30.0, 230.0)):
        path = plan_coverage(area, SETTINGS, home_xy=home)
        corners = [(x, y) for x in (0, 200) for y in (0, 200)]
        nearest = min(corners, key=lambda c: math.dist(c, home))
        assert math.dist(path.vertices[0], nearest) < SETTINGS.spacing_m + SETTINGS.turnaround_m


def test_turnarounds_extend_each_leg_outside_the_photo_segment() -> None:
    path = plan_coverage(shapely.box(0, 0, 300, 60), SETTINGS, home_xy=(0.0, 0.0))
    for leg in path.legs:
        assert math.dist(leg.entry, leg.start) == pytest.approx(SETTINGS.turnaround_m)
        assert math.dist(leg.end, leg.exit) == pytest.approx(SETTINGS.turnaround_m)


def test_concave_area_is_covered_and_faster_than_flying_across_the_notch() -> None:
    path = plan_coverage(U_SHAPE, SETTINGS, home_xy=(-20.0, -20.0))
    assert _covered(path.vertices, path.photo, U_SHAPE) > 0.999
    # Lines spanning the whole width (the QGC way, at any angle) fly over the 100 m notch on each arm line.
    hull_time = route_time_s(
        plan_coverage(U_SHAPE.convex_hull, SETTINGS, home_xy=(-20.0, -20.0)).legs, (-20.0, -20.0), SETTINGS
    )
    assert route_time_s(path.legs, (-20.0, -20.0), SETTINGS) < hull_time


def test_holes_are_avoided_by_every_segment_and_the_rest_is_covered() -> None:
    zones = [shapely.box(140, 20, 170, 50), shapely.Point(250, 150).buffer(20)]
    path = plan_coverage(U_SHAPE, SETTINGS, home_xy=(-20.0, -20.0), no_fly=zones)
    assert legs_through(path.vertices, zones) == 0
    keep_out = shapely.union_all([z.buffer(SETTINGS.clearance_m) for z in zones])
    assert _covered(path.vertices, path.photo, U_SHAPE.difference(keep_out)) > 0.99


def test_a_hole_of_the_polygon_itself_needs_no_photos_but_may_be_overflown() -> None:
    holed = Polygon(
        shapely.box(0, 0, 300, 300).exterior.coords, [shapely.box(100, 100, 200, 200).exterior.coords]
    )
    path = plan_coverage(holed, SETTINGS, home_xy=(0.0, 0.0))
    assert _covered(path.vertices, path.photo, holed) > 0.999


def test_turnaround_stops_short_of_a_no_fly_zone() -> None:
    zone = shapely.box(205, -50, 260, 150)
    path = plan_coverage(shapely.box(0, 0, 200, 100), SETTINGS, home_xy=(0.0, 0.0), no_fly=[zone])
    assert legs_through(path.vertices, [zone]) == 0
    assert max(x for x, _ in path.vertices) <= 205.0 - SETTINGS.clearance_m + 1e-6


def test_detour_goes_round_a_zone_and_is_straight_otherwise() -> None:
    zone = shapely.box(40, -20, 60, 20)
    obstacles = Obstacles([zone], 5.0)
    route = detour((0.0, 0.0), (100.0, 0.0), obstacles)
    assert len(route) > 2
    assert not LineString(route).crosses(zone) and not LineString(route).within(zone)
    assert legs_through(route, [zone]) == 0
    assert 100.0 < path_length_m(route) < 100.0 + 2 * 25.0 + 1.0
    assert detour((0.0, 50.0), (100.0, 50.0), obstacles) == [(0.0, 50.0), (100.0, 50.0)]


def test_detour_into_a_zone_is_refused() -> None:
    obstacles = Obstacles([shapely.box(40, -20, 60, 20)], 5.0)
    with pytest.raises(MissionPlanError, match="no way round"):
        detour((0.0, 0.0), (50.0, 0.0), obstacles)


def test_area_inside_a_no_fly_zone_is_refused() -> None:
    with pytest.raises(MissionPlanError, match="inside no-fly"):
        plan_coverage(
            shapely.box(0, 0, 50, 50), SETTINGS, home_xy=(0.0, 0.0), no_fly=[shapely.box(-10, -10, 60, 60)]
        )


@pytest.mark.parametrize(
    ("area", "message"),
    [(Polygon(), "empty"), (Polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), "not a valid")],
)
def test_bad_areas_are_refused(area: Polygon, message: str) -> None:
    with pytest.raises(MissionPlanError, match=message):
        plan_coverage(area, SETTINGS, home_xy=(0.0, 0.0))


@pytest.mark.parametrize("field", ["spacing_m", "trigger_distance_m", "cruise_speed_m_s"])
def test_bad_settings_are_refused(field: str) -> None:
    values = {"spacing_m": 30.0, "trigger_distance_m": 15.0, field: 0.0}
    with pytest.raises(MissionPlanError, match=field):
        CoverageSettings(**values)


def test_legs_through_counts_crossing_segments() -> None:
    zone = shapely.box(10, -5, 20, 5)
    assert legs_through([(0.0, 0.0), (30.0, 0.0), (30.0, 30.0)], [zone]) == 1
    assert legs_through([(0.0, 10.0), (30.0, 10.0)], [zone]) == 0


def _random_area(rng: np.random.Generator) -> tuple[Polygon, list[Polygon]]:
    """A star-shaped (often concave) polygon of 300-500 m and one to three no-fly circles inside it."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radii = rng.uniform(120, 250, 9)
    area = Polygon(np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])).buffer(0)
    zones = [
        shapely.Point(rng.uniform(-80, 80, 2)).buffer(rng.uniform(10, 30))
        for _ in range(int(rng.integers(1, 4)))
    ]
    return area, zones


@pytest.mark.parametrize("seed", range(8))
def test_random_concave_areas_with_zones_are_covered_safely(seed: int) -> None:
    rng = np.random.default_rng(seed)
    area, zones = _random_area(rng)
    path = plan_coverage(area, SETTINGS, home_xy=(-300.0, -300.0), no_fly=zones)
    assert legs_through(path.vertices, zones) == 0
    keep_out = shapely.union_all([z.buffer(SETTINGS.clearance_m) for z in zones])
    assert _covered(path.vertices, path.photo, area.difference(keep_out)) > 0.99
