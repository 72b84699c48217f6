"""Sorties: a route split by the battery, each sortie from take-off back to launch; grids ordered for transit.

Time model (a multicopter): cruise at ``cruise_speed_m_s``, lose ``turn_s`` at every turn sharper than 30°,
climb to the flight altitude at ``climb_m_s`` and descend at ``descent_m_s``. A sortie may use
``battery_s × (1 − reserve)`` seconds (reserve ≥ 20%), counting the way back home; the route is cut where
the next metre would break that, and the next sortie resumes there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from drone.coverage import XY, MissionPlanError, Obstacles, detour, path_length_m, sharp_turns

__all__ = ["MIN_RESERVE", "FlightModel", "SortiePath", "order_areas", "sharp_turns", "split_sorties"]

#: Smallest battery reserve the planner accepts.
MIN_RESERVE = 0.2


@dataclass(frozen=True)
class FlightModel:
    """How fast the drone flies, turns, climbs and descends, and how long a battery lasts."""

    cruise_speed_m_s: float = 10.0
    climb_m_s: float = 3.0
    descent_m_s: float = 2.0
    turn_s: float = 4.0
    battery_s: float = 30 * 60.0
    reserve: float = 0.25

    def __post_init__(self) -> None:
        for name in ("cruise_speed_m_s", "climb_m_s", "descent_m_s", "battery_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise MissionPlanError(f"flight model {name} must be a positive number, got {value}")
        if not MIN_RESERVE <= self.reserve < 1:
            raise MissionPlanError(f"battery reserve must be in [{MIN_RESERVE}, 1), got {self.reserve}")

    @property
    def budget_s(self) -> float:
        """Seconds a sortie may last, reserve kept."""
        return self.battery_s * (1.0 - self.reserve)

    def fly_s(self, vertices: Sequence[XY]) -> float:
        """Time to fly a polyline at cruise speed, turns included (no climb or descent)."""
        return path_length_m(vertices) / self.cruise_speed_m_s + self.turn_s * sharp_turns(vertices)

    def vertical_s(self, altitude_m: float) -> float:
        """Time to climb to ``altitude_m`` after take-off and come down from it at the end."""
        return altitude_m / self.climb_m_s + altitude_m / self.descent_m_s


@dataclass(frozen=True)
class SortiePath:
    """One sortie in metric coordinates: ``vertices`` run from home back to home; ``photo`` flags segments."""

    vertices: tuple[XY, ...]
    photo: tuple[bool, ...]
    duration_s: float

    @property
    def distance_m(self) -> float:
        return path_length_m(self.vertices)


def split_sorties(
    vertices: Sequence[XY],
    photo: Sequence[bool],
    *,
    home_xy: XY,
    altitude_m: float,
    model: FlightModel,
    obstacles: Obstacles,
) -> list[SortiePath]:
    """Cut a route into sorties that each fit the battery budget, all starting and ending at ``home_xy``.

    Raises:
        MissionPlanError: the battery cannot even reach the route and come back.
    """
    splitter = _Splitter(home_xy, altitude_m, model, obstacles)
    for a, b, shoots in zip(vertices, vertices[1:], photo, strict=False):
        splitter.add(a, b, shoots)
    return splitter.finish()


class _Splitter:
    """Walks a route segment by segment, closing a sortie where the next step would break the budget."""

    def __init__(self, home_xy: XY, altitude_m: float, model: FlightModel, obstacles: Obstacles) -> None:
        self.home, self.altitude_m, self.model, self.obstacles = home_xy, altitude_m, model, obstacles
        self.sorties: list[SortiePath] = []
        self.vertices: list[XY] = []
        self.photo: list[bool] = []

    def add(self, a: XY, b: XY, shoots: bool) -> None:
        while True:
            if not self.vertices:
                self._open(a)
            if self._cost_with(b) <= self.model.budget_s:
                self.vertices.append(b)
                self.photo.append(shoots)
                return
            cut = self._furthest(a, b)
            if math.dist(a, cut) < 1.0 and len(self.vertices) <= len(self._outbound(a)):
                raise MissionPlanError(
                    f"a battery of {self.model.battery_s:.0f} s (reserve {self.model.reserve:.0%}) cannot "
                    f"reach ({a[0]:.0f}, {a[1]:.0f}) m from home and come back"
                )
            if math.dist(a, cut) >= 1.0:
                self.vertices.append(cut)
                self.photo.append(shoots)
            self._close()
            a = cut

    def _outbound(self, point: XY) -> list[XY]:
        return detour(self.home, point, self.obstacles)

    def _open(self, start: XY) -> None:
        out = self._outbound(start)
        self.vertices = list(out)
        self.photo = [False] * (len(out) - 1)

    def _cost_with(self, point: XY) -> float:
        back = detour(point, self.home, self.obstacles)
        return self.model.fly_s([*self.vertices, point, *back[1:]]) + self.model.vertical_s(self.altitude_m)

    def _furthest(self, a: XY, b: XY) -> XY:
        low, high = 0.0, 1.0
        for _ in range(12):
            mid = (low + high) / 2
            point = (a[0] + (b[0] - a[0]) * mid, a[1] + (b[1] - a[1]) * mid)
            low, high = (mid, high) if self._cost_with(point) <= self.model.budget_s else (low, mid)
        return (a[0] + (b[0] - a[0]) * low, a[1] + (b[1] - a[1]) * low)

    def _close(self) -> None:
        back = detour(self.vertices[-1], self.home, self.obstacles)
        vertices = [*self.vertices, *back[1:]]
        photo = [*self.photo, *([False] * (len(back) - 1))]
        duration = self.model.fly_s(vertices) + self.model.vertical_s(self.altitude_m)
        self.sorties.append(SortiePath(tuple(vertices), tuple(photo), duration))
        self.vertices, self.photo = [], []

    def finish(self) -> list[SortiePath]:
        if self.vertices:
            self._close()
        return self.sorties


def order_areas(centres: Sequence[XY], home_xy: XY) -> list[int]:
    """Visit order of areas (by their centres) that minimises the closed tour from and back to home.

    Exact for up to seven areas, nearest neighbour improved by 2-opt beyond.
    """
    n = len(centres)
    if n <= 7:

        def tour(order: list[int]) -> float:
            return _tour_m(order, centres, home_xy)

        return min((list(p) for p in itertools.permutations(range(n))), key=tour)
    order = _nearest_neighbour(centres, home_xy)
    return _two_opt(order, centres, home_xy)


def _tour_m(order: Sequence[int], centres: Sequence[XY], home_xy: XY) -> float:
    points = [home_xy, *(centres[i] for i in order), home_xy]
    return path_length_m(points)


def _nearest_neighbour(centres: Sequence[XY], home_xy: XY) -> list[int]:
    left, here = set(range(len(centres))), home_xy
    order: list[int] = []
    while left:
        nxt = min(left, key=lambda i: math.dist(here, centres[i]))
        order.append(nxt)
        left.remove(nxt)
        here = centres[nxt]
    return order


def _two_opt(order: list[int], centres: Sequence[XY], home_xy: XY) -> list[int]:
    best, improved = order, True
    while improved:
        improved = False
        for i, j in itertools.combinations(range(len(best)), 2):
            candidate = best[:i] + best[i : j + 1][::-1] + best[j + 1 :]
            if _tour_m(candidate, centres, home_xy) < _tour_m(best, centres, home_xy) - 1e-9:
                best, improved = candidate, True
    return best
