"""Coverage paths: convex, concave and holed areas, angle search, entry, turnarounds, detours, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon

from bench.missions import baseline
from drone.coverage import (
    CoverageSettings,
    MissionPlanError,
    Obstacles,
    cuts,
    detour,
    flight_time_s,
    improve_order,
    legs_through,
    line_offsets,
    lines_time_s,
    order_legs,
    path_length_m,
    photo_cells,
    plan_coverage,
    route_time_s,
    transect_legs,
)
from drone.sorties import FlightModel

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


L_SHAPE = Polygon([(0, 0), (400, 0), (400, 100), (100, 100), (100, 400), (0, 400)])
T_SHAPE = shapely.union(shapely.box(0, 200, 400, 300), shapely.box(150, 0, 250, 200))


@pytest.mark.parametrize("area", [L_SHAPE, T_SHAPE, U_SHAPE], ids=["L", "T", "U"])
def test_notched_areas_are_flown_in_cells_faster_than_a_qgc_style_survey(area: Polygon) -> None:
    home = (-30.0, -30.0)
    model = FlightModel(SETTINGS.cruise_speed_m_s, turn_s=SETTINGS.turn_s)  # the bench's time model
    path = plan_coverage(area, SETTINGS, home_xy=home)
    qgc = baseline(area, SETTINGS, home)  # the bench's QGC-style survey: one angle, lines across the notch
    assert model.fly_s([home, *path.vertices, home]) <= 0.9 * model.fly_s(qgc.vertices)
    assert _covered(path.vertices, path.photo, area) >= 0.995


def test_an_l_is_cut_at_its_inner_corner_and_each_arm_flown_along_its_length() -> None:
    cells = cuts(L_SHAPE, SETTINGS.spacing_m)
    assert cells and all(len(pair) == 2 for pair in cells)
    assert all(sum(c.area for c in pair) == pytest.approx(L_SHAPE.area) for pair in cells)
    path = plan_coverage(L_SHAPE, SETTINGS, home_xy=(-30.0, -30.0))
    headings = {
        round(math.degrees(math.atan2(leg.end[1] - leg.start[1], leg.end[0] - leg.start[0])) % 180)
        for leg in path.legs
    }
    assert headings == {0, 90}
    assert len(path.legs) == 2 * math.ceil(100 / SETTINGS.spacing_m)
    assert cuts(shapely.box(0, 0, 300, 200), SETTINGS.spacing_m) == []  # nothing to cut in a rectangle


def test_line_offsets_keep_lines_out_of_blocked_ranges_and_within_a_spacing() -> None:
    spacing = SETTINGS.spacing_m
    cases = [  # span, blocked ranges
        (180.0, [[40.0, 70.0]]),  # six lines can run either side of it
        (200.0, [[40.0, 70.0], [110.0, 138.0], [150.0, 175.0]]),  # no number of lines misses them all
    ]
    for span, blocked in cases:
        ranges = np.array(blocked)
        offsets = line_offsets(0.0, span, spacing, ranges)
        fewest = math.ceil(span / spacing)
        assert fewest <= len(offsets) <= fewest + 1  # one line more only where it saves a detour
        assert offsets[0] <= spacing / 2 + 1e-9 and offsets[-1] >= span - spacing / 2 - 1e-9
        assert np.all(np.diff(offsets) <= spacing + 1e-9)
        inside = (offsets[:, None] > ranges[:, 0]) & (offsets[:, None] < ranges[:, 1])
        even = np.linspace(0.0, span, 2 * fewest + 1)[1::2]
        assert inside.sum() < ((even[:, None] > ranges[:, 0]) & (even[:, None] < ranges[:, 1])).sum()
    assert len(line_offsets(0.0, 180.0, spacing, np.array([[40.0, 70.0]]))) == 6
    dodged = line_offsets(0.0, 200.0, spacing, np.array([[40.0, 70.0]]))  # 6 lines cannot dodge it, 7 can
    assert len(dodged) == 7 and not np.any((dodged > 40.0) & (dodged < 70.0))
    even = line_offsets(0.0, 200.0, spacing, np.zeros((0, 2)))
    assert len(even) == 6 and np.allclose(np.diff(even), 200.0 / 6)


def test_lines_run_beside_a_tower_instead_of_round_it() -> None:
    area = shapely.box(0, 0, 400, 200)
    tower = shapely.box(180, 90, 230, 110)  # with its 5 m clearance 30 m tall: fits between two lines
    path = plan_coverage(area, SETTINGS, home_xy=(-30.0, -30.0), no_fly=[tower])
    assert legs_through(path.vertices, [tower]) == 0
    assert all(not leg.breaks for leg in path.legs)
    assert _covered(path.vertices, path.photo, area.difference(tower.buffer(SETTINGS.clearance_m))) >= 0.995


def test_a_leg_goes_round_a_zone_it_cannot_avoid_with_photos_paused() -> None:
    area = shapely.box(0, 0, 400, 30)  # one line only
    zone = shapely.box(190, 3, 210, 27)  # with its clearance across the strip: the one line must cross
    path = plan_coverage(area, SETTINGS, home_xy=(-30.0, 15.0), no_fly=[zone])
    assert len(path.legs) == 1 and len(path.legs[0].breaks) == 2
    assert legs_through(path.vertices, [zone]) == 0
    near = zone.buffer(2.0)  # photo stretches stop at the clearance (5 m); only the detour comes closer
    for (a, b), shoots in zip(itertools.pairwise(path.vertices), path.photo, strict=True):
        if LineString([a, b]).intersects(near):
            assert not shoots
    assert _covered(path.vertices, path.photo, area.difference(zone.buffer(SETTINGS.clearance_m))) >= 0.99


def test_thin_slivers_at_leg_ends_are_given_up_within_the_allowed_share() -> None:
    area = Polygon([(0, 0), (300, 0), (400, 200), (100, 200)])  # the lines' ends taper at both slanted sides
    exact = CoverageSettings(SETTINGS.spacing_m, SETTINGS.trigger_distance_m, uncovered_share=0.0)
    full = plan_coverage(area, exact, home_xy=(0.0, 0.0))
    lean = plan_coverage(area, SETTINGS, home_xy=(0.0, 0.0))
    assert _covered(full.vertices, full.photo, area) == pytest.approx(1.0, abs=1e-9)
    assert 1.0 - SETTINGS.uncovered_share - 1e-9 <= _covered(lean.vertices, lean.photo, area) < 1.0
    assert sum(math.dist(leg.start, leg.end) for leg in lean.legs) < sum(
        math.dist(leg.start, leg.end) for leg in full.legs
    )


def test_an_uncovered_share_out_of_range_is_refused() -> None:
    with pytest.raises(MissionPlanError, match="uncovered_share"):
        CoverageSettings(30.0, 15.0, uncovered_share=0.2)


def test_a_zone_near_a_lines_end_leaves_a_short_stretch_that_is_still_flown_safely() -> None:
    area = shapely.box(0, 0, 400, 30)
    zone = shapely.box(
        8, 3, 28, 27
    )  # with its clearance, 3 m from the line's start: less than half a trigger
    path = plan_coverage(area, SETTINGS, home_xy=(-30.0, 15.0), no_fly=[zone])
    assert legs_through(path.vertices, [zone]) == 0
    assert _covered(path.vertices, path.photo, area.difference(zone.buffer(SETTINGS.clearance_m))) >= 0.99


def test_a_corner_poking_past_whole_spacings_is_given_up_for_one_line_fewer() -> None:
    height = 3 * SETTINGS.spacing_m - 1.0  # a spike 5 m tall (25 m²) on top needs a fourth line
    area = Polygon(
        [(0, 0), (300, 0), (300, height), (160, height), (150, height + 5), (140, height), (0, height)]
    )
    lean = plan_coverage(area, SETTINGS, home_xy=(-30.0, -30.0))
    exact = CoverageSettings(SETTINGS.spacing_m, SETTINGS.trigger_distance_m, uncovered_share=0.0)
    full = plan_coverage(area, exact, home_xy=(-30.0, -30.0))
    assert (len(lean.legs), len(full.legs)) == (3, 4)
    assert 1.0 - SETTINGS.uncovered_share <= _covered(lean.vertices, lean.photo, area) < 1.0
    assert _covered(full.vertices, full.photo, area) == pytest.approx(1.0, abs=1e-9)


def test_a_tip_beside_a_no_fly_zone_is_given_up_too_when_the_zone_leaves_no_gaps() -> None:
    height = 3 * SETTINGS.spacing_m - 1.0  # as above, with a zone just outside the area
    area = Polygon(
        [(0, 0), (300, 0), (300, height), (160, height), (150, height + 5), (140, height), (0, height)]
    )
    zone = shapely.box(-30, 20, -12, 60)  # its keep-out ends 3 m short of the area: no gap to fill
    path = plan_coverage(area, SETTINGS, home_xy=(-30.0, -30.0), no_fly=[zone])
    assert len(path.legs) == 3
    assert 1.0 - SETTINGS.uncovered_share <= _covered(path.vertices, path.photo, area) < 1.0
    assert legs_through(path.vertices, [zone]) == 0


@pytest.mark.parametrize("seed", range(8))
def test_beside_zones_the_uncovered_share_is_never_exceeded(seed: int) -> None:
    rng = np.random.default_rng(seed)
    area, zones = _random_area(rng)
    path = plan_coverage(area, SETTINGS, home_xy=(-300.0, -300.0), no_fly=zones)
    keep_out = Obstacles(zones, SETTINGS.clearance_m).keep_out_near(area)
    target = area.difference(keep_out)
    # the share of what is left to photograph, and a hair for cells drawn from triggered photos
    assert _covered(path.vertices, path.photo, target) >= 1.0 - SETTINGS.uncovered_share - 5e-4


def test_a_band_piece_lying_within_anothers_extent_leaves_the_line_whole() -> None:
    # one band: a long strip below, and a short separate piece above its middle
    area = MultiPolygon([shapely.box(0, 0, 300, 10), shapely.box(100, 20, 120, 30)])
    legs = transect_legs(area, 0.0, SETTINGS, Polygon())
    half_t = SETTINGS.trigger_distance_m / 2
    assert [(leg.start[0], leg.end[0]) for leg in legs] == [pytest.approx((half_t, 300 - half_t))]


@pytest.mark.parametrize("stagger", [0.0, 4.0])
def test_the_quick_estimate_turns_once_between_staggered_line_ends_as_flown(stagger: float) -> None:
    exact = CoverageSettings(SETTINGS.spacing_m, SETTINGS.trigger_distance_m, uncovered_share=0.0)
    height = 5 * exact.spacing_m  # five lines; each ends `stagger` line gaps beyond the one below
    area = Polygon([(0, 0), (300, 0), (300 + stagger * height, height), (stagger * height, height)])
    legs = sorted(transect_legs(area, 0.0, exact, Polygon()), key=lambda leg: leg.start[1])
    back_and_forth = [leg if i % 2 == 0 else leg.reversed() for i, leg in enumerate(legs)]
    flown_s = flight_time_s([p for leg in back_and_forth for p in leg.points], exact)
    flown_s += 2 * exact.turn_s  # the estimate counts a turn onto the first leg and off the last
    assert lines_time_s(area, 0.0, exact, Polygon()) == pytest.approx(flown_s, rel=0.02)


def test_gaps_beside_a_zone_get_lines_of_their_own_only_beyond_the_uncovered_share() -> None:
    area = shapely.box(0, 0, 400, 200)
    zone = shapely.box(150, 60, 190, 93)  # the lines pass either side of it, leaving thin gaps beside it
    target = area.difference(zone.buffer(SETTINGS.clearance_m))
    exact = CoverageSettings(SETTINGS.spacing_m, SETTINGS.trigger_distance_m, uncovered_share=0.0)
    full = plan_coverage(area, exact, home_xy=(-30.0, -30.0), no_fly=[zone])
    lean = plan_coverage(area, SETTINGS, home_xy=(-30.0, -30.0), no_fly=[zone])
    assert len(lean.legs) < len(full.legs)
    assert _covered(full.vertices, full.photo, target) == pytest.approx(1.0, abs=1e-6)
    assert 1.0 - SETTINGS.uncovered_share <= _covered(lean.vertices, lean.photo, target) < 1.0
    assert legs_through(lean.vertices, [zone]) == legs_through(full.vertices, [zone]) == 0


@pytest.mark.parametrize("seed", range(4))
def test_legs_are_ordered_by_flight_time_from_any_start(seed: int) -> None:
    rng = np.random.default_rng(seed)
    area, _ = _random_area(rng)
    home = (-300.0, -300.0)
    path = plan_coverage(area, SETTINGS, home_xy=home)
    planned_s = route_time_s(path.legs, home, SETTINGS)
    assert planned_s <= route_time_s(order_legs(path.legs, home), home, SETTINGS) + 1e-6
    assert route_time_s(improve_order(path.legs, home, SETTINGS), home, SETTINGS) == pytest.approx(planned_s)
    shuffled = [
        path.legs[i].reversed() if rng.random() < 0.5 else path.legs[i]
        for i in rng.permutation(len(path.legs))
    ]
    better = improve_order(shuffled, home, SETTINGS)
    assert {frozenset((leg.entry, leg.exit)) for leg in better} == {
        frozenset((leg.entry, leg.exit)) for leg in path.legs
    } and len(better) == len(path.legs)
    assert route_time_s(better, home, SETTINGS) <= 1.02 * planned_s < route_time_s(shuffled, home, SETTINGS)
