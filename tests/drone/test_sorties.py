"""Sortie splitting by battery (budget, reserve, nothing lost, RTL) and grid ordering for least transit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shapely

from drone.coverage import CoverageSettings, MissionPlanError, Obstacles, path_length_m, plan_coverage
from drone.sorties import FlightModel, order_areas, sharp_turns, split_sorties

HOME = (-100.0, -100.0)


def _photo_length(vertices: tuple[tuple[float, float], ...], photo: tuple[bool, ...]) -> float:
    return sum(math.dist(a, b) for (a, b), p in zip(itertools.pairwise(vertices), photo, strict=False) if p)


def _route() -> tuple[tuple[tuple[float, float], ...], tuple[bool, ...]]:
    path = plan_coverage(shapely.box(0, 0, 800, 600), CoverageSettings(33.8, 16.9), home_xy=HOME)
    return path.vertices, path.photo


def test_a_long_route_is_split_within_budget_and_nothing_is_lost() -> None:
    vertices, photo = _route()
    model = FlightModel(battery_s=600.0, reserve=0.25)
    sorties = split_sorties(
        vertices, photo, home_xy=HOME, altitude_m=80.0, model=model, obstacles=Obstacles()
    )
    assert len(sorties) > 1
    for sortie in sorties:
        assert sortie.vertices[0] == HOME and sortie.vertices[-1] == HOME
        assert sortie.duration_s <= model.budget_s + 1e-6
        assert sortie.duration_s == pytest.approx(model.fly_s(sortie.vertices) + model.vertical_s(80.0))
    photographed = sum(_photo_length(s.vertices, s.photo) for s in sorties)
    assert photographed == pytest.approx(_photo_length(vertices, photo), rel=1e-6)


def test_one_battery_is_enough_for_a_small_route() -> None:
    vertices, photo = _route()
    sorties = split_sorties(
        vertices,
        photo,
        home_xy=HOME,
        altitude_m=80.0,
        model=FlightModel(battery_s=3 * 3600),
        obstacles=Obstacles(),
    )
    assert len(sorties) == 1
    assert sorties[0].distance_m == pytest.approx(
        path_length_m(vertices) + math.dist(HOME, vertices[0]) + math.dist(vertices[-1], HOME)
    )


def test_the_way_home_goes_round_no_fly_zones() -> None:
    zone = shapely.box(-60, -60, -20, -20)
    vertices, photo = _route()
    sorties = split_sorties(
        vertices, photo, home_xy=HOME, altitude_m=80.0, model=FlightModel(), obstacles=Obstacles([zone], 5.0)
    )
    line = shapely.LineString(sorties[0].vertices)
    assert not line.intersection(zone).length > 0


def test_reserve_below_twenty_percent_is_refused() -> None:
    with pytest.raises(MissionPlanError, match="reserve"):
        FlightModel(reserve=0.1)


def test_an_unreachable_route_is_refused() -> None:
    with pytest.raises(MissionPlanError, match="cannot"):
        split_sorties(
            [(5000.0, 0.0), (5100.0, 0.0)],
            [True],
            home_xy=(0.0, 0.0),
            altitude_m=80.0,
            model=FlightModel(battery_s=300.0),
            obstacles=Obstacles(),
        )


def test_sharp_turns_are_counted() -> None:
    assert sharp_turns([(0.0, 0.0), (10.0, 0.0), (20.0, 1.0)]) == 0
    assert sharp_turns([(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]) == 2


def _tour(order: list[int], centres: list[tuple[float, float]], home: tuple[float, float]) -> float:
    return path_length_m([home, *(centres[i] for i in order), home])


def test_grid_order_is_the_shortest_tour_for_few_grids() -> None:
    rng = np.random.default_rng(4)
    centres = [(float(x), float(y)) for x, y in rng.uniform(0, 1000, (6, 2))]
    order = order_areas(centres, (0.0, 0.0))
    best = min(_tour(list(p), centres, (0.0, 0.0)) for p in itertools.permutations(range(6)))
    assert sorted(order) == list(range(6))
    assert _tour(order, centres, (0.0, 0.0)) == pytest.approx(best)


def test_grid_order_for_many_grids_beats_the_given_order() -> None:
    rng = np.random.default_rng(5)
    centres = [(float(x), float(y)) for x, y in rng.uniform(0, 1000, (12, 2))]
    order = order_areas(centres, (0.0, 0.0))
    assert sorted(order) == list(range(12))
    assert _tour(order, centres, (0.0, 0.0)) < _tour(list(range(12)), centres, (0.0, 0.0))
