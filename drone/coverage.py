"""Coverage paths for one area in a local metric CRS: parallel photo transects (legs) joined into one route.

The area may be concave and have holes. No-fly zones (and towers taller than the flight) are cut out of it
with a clearance. Every leg, every turnaround extension and every transit between legs is checked against
them; a transit that would cross one is replaced by the shortest detour around it (a visibility graph on
the zones' corners).

How the route is made as short as it can be, with the time model of :class:`drone.sorties.FlightModel`
(cruise speed, a stop at every turn sharper than 30°):

- **Angle.** Candidates are a regular step plus every edge direction of the convex hull (the narrowest
  direction, hence the fewest lines, lies along one of them). A quick estimate from the lines' extents
  (a turn between staggered line ends counted once, as flown) ranks them all; the best few are ranked
  again with their legs in order; the best one or two get their final legs (:class:`_AngleSearch`).
- **Lines beside no-fly zones.** Line offsets need not be even: they are placed at most a spacing apart so
  that as few as possible run through keep-out (:func:`line_offsets`); a line that still meets a small
  zone goes round it with photos paused, a bigger zone splits it into separate legs. What the lines leave
  beside the zones gets lines of its own, the largest gaps first, until at most ``uncovered_share`` of
  the area is left (:func:`_fill`).
- **Cells.** A notched area (an L, T or U) is also tried cut in two at a concave corner, each cell flown
  at its own angle (:func:`cuts`).
- **Order.** Legs are first ordered nearest end first (:func:`order_legs`), then by a local search on
  the flight time itself, each leg flown either way, turns counted (:func:`improve_order`): finishing
  near take-off, or hopping where the turn is gentle, often beats plain back-and-forth. The two routes
  estimated fastest are assembled (transits round no-fly zones included) and the faster is flown.
- **Ends.** Each leg spans its band's whole piece of the area (slanted edges covered, unlike QGC), less
  half a trigger distance. At most ``uncovered_share`` of the area is given up where that saves most:
  first the tips of corners that poke a few metres past a whole number of spacings (one line fewer,
  :func:`_shaved`), then thin slivers at the legs' ends. Beside no-fly zones the share may be needed
  for the gaps the zones leave; the lines are then also made keeping it for them, and the quicker
  kept (:func:`_filled`).

Stages: :func:`transect_legs` (area + angle → legs), :func:`order_legs` and :func:`improve_order` (legs →
route order), :func:`detour` (transit → obstacle-free polyline), :func:`plan_coverage` orchestrates them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
import shapely.ops
from scipy.ndimage import minimum_filter1d
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

Array = npt.NDArray[np.float64]
XY = tuple[float, float]


class MissionPlanError(ValueError):
    """A mission cannot be planned as asked; the message says what was wrong and where."""


@dataclass(frozen=True)
class CoverageSettings:
    """How to cover an area.

    Args:
        spacing_m: largest distance between neighbouring legs (the camera's transect spacing).
        trigger_distance_m: distance between photos along a leg.
        margin_m: the area is grown by this much before planning (negative shrinks it).
        turnaround_m: legs are extended by this much at both ends so the drone is straight and at speed
            when photos start (not into a no-fly zone).
        cruise_speed_m_s: speed along legs and transits.
        turn_s: time lost at each turn between legs (stopping and accelerating again).
        clearance_m: horizontal distance kept from every no-fly zone.
        angle_step_deg: step of the transect-angle search.
        uncovered_share: at most this share of the area may be left out of the photos' cells, where
            that saves most flight (a corner's tip that would cost a line of its own, thin slivers at the
            legs' ends, small gaps beside no-fly zones); 0 covers every square metre.
    """

    spacing_m: float
    trigger_distance_m: float
    margin_m: float = 0.0
    turnaround_m: float = 10.0
    cruise_speed_m_s: float = 10.0
    turn_s: float = 4.0
    clearance_m: float = 5.0
    angle_step_deg: float = 15.0
    uncovered_share: float = 0.002

    def __post_init__(self) -> None:
        if not 0 <= self.uncovered_share < 0.05:
            raise MissionPlanError(
                f"coverage setting uncovered_share must be in [0, 0.05), got {self.uncovered_share}"
            )
        for name in ("spacing_m", "trigger_distance_m", "cruise_speed_m_s", "angle_step_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise MissionPlanError(f"coverage setting {name} must be a positive number, got {value}")
        for name in ("turnaround_m", "turn_s", "clearance_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise MissionPlanError(f"coverage setting {name} must be zero or positive, got {value}")


@dataclass(frozen=True)
class Leg:
    """One photo transect: photos from ``start`` to ``end``, flown from ``entry`` to ``exit`` (turnarounds).

    ``breaks`` are (pause, resume) pairs of points along ``start`` → ``end`` between which the drone stops
    photographing and flies round a no-fly zone; ``bypass_m`` estimates those detours' extra distance.
    """

    entry: XY
    start: XY
    end: XY
    exit: XY
    band: int
    breaks: tuple[XY, ...] = ()
    bypass_m: float = 0.0

    def reversed(self) -> Leg:
        return Leg(self.exit, self.end, self.start, self.entry, self.band, self.breaks[::-1], self.bypass_m)

    @property
    def points(self) -> tuple[XY, ...]:
        """Entry, photo start, the breaks, photo end and exit, in flying order."""
        return (self.entry, self.start, *self.breaks, self.end, self.exit)

    @property
    def length_m(self) -> float:
        """Length flown with straight breaks (detours round no-fly zones are longer)."""
        return path_length_m(self.points)


@dataclass(frozen=True)
class CoveragePath:
    """A planned route in the metric CRS of its input.

    ``vertices`` are the points flown in order; segment ``i`` (vertex ``i`` → ``i + 1``) takes photos when
    ``photo[i]`` is true. The route starts at the first leg's entry and ends at the last leg's exit (the way
    from and back to the take-off point is the sortie's business).
    """

    vertices: tuple[XY, ...]
    photo: tuple[bool, ...]
    angle_deg: float
    spacing_m: float
    legs: tuple[Leg, ...]

    @property
    def length_m(self) -> float:
        return path_length_m(self.vertices)


class Obstacles:
    """No-fly geometry: ``zone_parts`` (never to be entered) and ``keep_out_parts`` (grown by the clearance).

    Planning keeps out of the keep-out polygons (simplified by at most half the clearance, so they still
    contain the zones); checks test the zones themselves. Both are indexed (STRtree) so a district's worth
    of towers costs little per query.
    """

    def __init__(self, zones: Sequence[BaseGeometry] = (), clearance_m: float = 0.0) -> None:
        parts = [p for z in zones for p in shapely.get_parts(z) if not p.is_empty]
        self.zone_parts = np.array(parts, dtype=object)
        grown = shapely.buffer(self.zone_parts, clearance_m, quad_segs=2)
        self.keep_out_parts = shapely.simplify(grown, min(1.0, clearance_m / 2))
        self.zone_tree = shapely.STRtree(self.zone_parts)
        self.keep_out_tree = shapely.STRtree(self.keep_out_parts)

    @property
    def empty(self) -> bool:
        return len(self.zone_parts) == 0

    def keep_out_near(self, geometry: BaseGeometry) -> BaseGeometry:
        """Union of the keep-out polygons that intersect ``geometry``."""
        hits = self.keep_out_tree.query(geometry, predicate="intersects")
        return shapely.union_all(self.keep_out_parts[hits]) if len(hits) else Polygon()

    def blocked(self, lines: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
        """For each line, whether it enters a zone's interior (running along an edge is allowed)."""
        out = np.zeros(len(lines), dtype=bool)
        if self.empty or not len(lines):
            return out
        line_idx, zone_idx = self.zone_tree.query(lines, predicate="intersects")
        inside = shapely.relate_pattern(lines[line_idx], self.zone_parts[zone_idx], "T********")
        out[line_idx[inside]] = True
        return out

    def blocks(self, a: XY, b: XY) -> bool:
        """Whether the straight segment a→b enters a zone's interior."""
        line = LineString([a, b]) if a != b else Point(a)
        return bool(self.blocked(np.array([line], dtype=object))[0])


def plan_coverage(
    area: Polygon | MultiPolygon,
    settings: CoverageSettings,
    *,
    home_xy: XY,
    no_fly: Sequence[BaseGeometry] | Obstacles = (),
) -> CoveragePath:
    """Plan the fastest coverage route over ``area`` that keeps out of ``no_fly``.

    Args:
        area: the area to photograph, in a metric CRS (concave and holed polygons welcome).
        settings: spacing, trigger distance, margin, turnarounds, speed and search step.
        home_xy: the take-off point; the route is chosen for the shortest flight from and back to it.
        no_fly: polygons never to enter, in the same CRS (or an :class:`Obstacles` index of them, whose
            clearance then applies).

    Returns:
        The route with the lowest flight time (home to home, turns included) over the searched angles.

    Raises:
        MissionPlanError: the area is empty, or nothing is left of it outside the no-fly zones.
    """
    obstacles = no_fly if isinstance(no_fly, Obstacles) else Obstacles(no_fly, settings.clearance_m)
    region = _region(area, settings, obstacles)
    keep_out = obstacles.keep_out_near(region.envelope.buffer(settings.turnaround_m + 1.0))
    search = _AngleSearch(region, keep_out, settings, home_xy)
    finalists = search.best_angles(candidate_angles(area, settings.angle_step_deg, settings.spacing_m))
    orders = [(angle, legs) for angle in finalists if (legs := search.final_order(angle))]
    if not orders:
        raise MissionPlanError("no transect fits in the area; is it smaller than the clearance?")
    orders += _split_orders(region, keep_out, settings, home_xy, min(search.quick.values()))
    near = None if keep_out.is_empty else obstacles
    orders += [(angle, improve_order(legs, home_xy, settings, near)) for angle, legs in orders]
    orders.sort(key=lambda order: route_time_s(order[1], home_xy, settings))
    # detours round no-fly zones are only known once assembled: beside them the best two are compared so
    known: dict[tuple[XY, XY], list[XY]] = {}
    paths = [
        _assemble(legs, angle, obstacles, settings, known)
        for angle, legs in orders[: 1 if keep_out.is_empty else 2]
    ]
    return min(paths, key=lambda path: flight_time_s([home_xy, *path.vertices, home_xy], settings))


def _split_orders(
    region: BaseGeometry, keep_out: BaseGeometry, settings: CoverageSettings, home_xy: XY, single_s: float
) -> list[tuple[float, list[Leg]]]:
    """The area cut in two at a concave corner, each cell flown at its own angle, one cell after the other
    (both orders): returned when the cut's quick estimate beats ``single_s`` (one angle for all), else []."""
    best: tuple[float, list[BaseGeometry], list[float]] | None = None
    for cells in cuts(region, settings.spacing_m):
        found = [_quick_best(cell, settings, keep_out) for cell in cells]
        between = math.dist(*((c.centroid.x, c.centroid.y) for c in cells)) / settings.cruise_speed_m_s
        total = sum(t for _, t in found) + between
        if total < _SPLIT_GAIN * single_s and (best is None or total < best[0]):
            best = (total, cells, [a for a, _ in found])
    if best is None:
        return []
    _, chosen, angles = best
    legs = [
        transect_legs(cell, angle, settings, keep_out, fill_gaps=True, trim=True)
        for cell, angle in zip(chosen, angles, strict=True)
    ]
    orders = []
    for first, second in ((0, 1), (1, 0)):
        head = order_legs(legs[first], home_xy)
        if head and legs[second]:
            orders.append((angles[first], [*head, *order_legs(legs[second], head[-1].exit)]))
    return orders


#: Only an outline filling at most this share of its convex hull is worth cutting.
_NOTCHED = 0.7
#: A cut is flown only when its estimate is at most this share of one angle's.
_SPLIT_GAIN = 0.97


def _quick_best(
    cell: BaseGeometry, settings: CoverageSettings, keep_out: BaseGeometry
) -> tuple[float, float]:
    """The best angle for ``cell`` by the quick estimate over its few narrowest candidates, and that time."""
    angles = candidate_angles(cell, settings.angle_step_deg, settings.spacing_m, keep=2)
    times = [lines_time_s(cell, angle, settings, keep_out) for angle in angles]
    k = int(np.argmin(times))
    return angles[k], times[k]


def cuts(region: BaseGeometry, spacing_m: float, most: int = 2) -> list[list[BaseGeometry]]:
    """Ways to cut ``region`` in two at its concave corners: along either edge of each reflex corner of its
    outline (simplified by half a spacing, so only real notches count), into two cells of at least a
    tenth of the area each; at most ``most`` of them."""
    if region.geom_type != "Polygon":
        return []
    outline = shapely.simplify(region, spacing_m / 2)
    if outline.geom_type != "Polygon" or outline.area > _NOTCHED * outline.convex_hull.area:
        return []
    ring = np.asarray(shapely.orient_polygons(outline).exterior.coords)[:-1]
    before, after = ring - np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0) - ring
    reflex = np.flatnonzero(before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0] < 0)
    reach = 2 * math.dist(*np.reshape(region.bounds, (2, 2)))
    found = []
    for i in reflex:
        for direction in (before[i], -after[i]):
            cells = _cut_along(
                region, ring[i], direction / max(float(np.linalg.norm(direction)), 1e-9), reach
            )
            if cells:
                found.append(cells)
            if len(found) == most:
                return found
    return found


def _cut_along(region: BaseGeometry, corner: Array, direction: Array, reach_m: float) -> list[BaseGeometry]:
    """The two cells of ``region`` cut by the ray from ``corner`` along ``direction`` to where it first leaves
    the region; [] when that does not make two sizeable cells."""
    ray = LineString([corner, corner + direction * reach_m])
    parts = shapely.get_parts(ray.intersection(region))
    first = [
        p
        for p in parts
        if p.geom_type == "LineString" and p.length > 1.0 and p.distance(Point(corner)) < 1e-6
    ]
    if not first:
        return []
    start, end = np.asarray(first[0].coords)[[0, -1]]
    cut = LineString([start - direction * 0.5, end + direction * 0.5])
    cells = shapely.get_parts(shapely.ops.split(region, cut))
    if len(cells) != 2 or min(shapely.area(cells)) < 0.1 * region.area:
        return []
    return list(cells)


#: Outlines are simplified by this much to rank angles (the legs flown are made on the exact outline).
_SEARCH_TOLERANCE_M = 0.5


class _AngleSearch:
    """Flight time per transect angle: a quick estimate from the lines' extents for every candidate, the
    legs in order for a shortlist, and the final leg orders at the best angles."""

    def __init__(self, region: BaseGeometry, keep_out: BaseGeometry, settings: CoverageSettings, home_xy: XY):
        self.region, self.keep_out, self.settings, self.home = region, keep_out, settings, home_xy
        self.outline = shapely.simplify(region, _SEARCH_TOLERANCE_M)  # fewer vertices to rank angles with
        self.quick: dict[float, float] = {}
        self.routed: dict[float, float] = {}

    def quick_s(self, angle_deg: float) -> float:
        angle = round(angle_deg % 180.0, 6)
        if angle not in self.quick:
            self.quick[angle] = lines_time_s(self.outline, angle, self.settings, self.keep_out)
        return self.quick[angle]

    def routed_s(self, angle: float) -> float:
        if angle not in self.routed:
            legs = transect_legs(self.outline, angle, self.settings, self.keep_out)
            self.routed[angle] = route_time_s(order_legs(legs, self.home), self.home, self.settings)
        return self.routed[angle]

    def best_angles(
        self, candidates: Sequence[float], shortlist: int = 4, within: float = 0.02
    ) -> list[float]:
        """The best angle, and the runner-up of the shortlist when its route is within ``within`` of it.

        The quick estimate ranks ``candidates`` (refined around the best by a third of a step each way);
        the ``shortlist`` best are then ranked by their ordered legs.
        """
        step = self.settings.angle_step_deg
        best = min(candidates, key=self.quick_s)
        for delta in (-step / 3, step / 3):
            self.quick_s(best + delta)
        short = sorted(self.quick, key=lambda a: self.quick[a])[:shortlist]
        ranked = [a for a in sorted(short, key=self.routed_s) if math.isfinite(self.routed_s(a))]
        return ranked[:1] + [
            a for a in ranked[1:2] if self.routed_s(a) <= (1 + within) * self.routed_s(ranked[0])
        ]

    def final_order(self, angle_deg: float) -> list[Leg]:
        """The legs to fly at ``angle_deg`` (lines filled beside no-fly zones and trimmed), in order."""
        legs = transect_legs(self.region, angle_deg, self.settings, self.keep_out, fill_gaps=True, trim=True)
        return order_legs(legs, self.home)


def _region(area: BaseGeometry, settings: CoverageSettings, obstacles: Obstacles) -> BaseGeometry:
    if area.is_empty or not area.is_valid:
        raise MissionPlanError(f"the area to cover is {'empty' if area.is_empty else 'not a valid polygon'}")
    grown = area.buffer(settings.margin_m) if settings.margin_m else area
    region = grown.difference(obstacles.keep_out_near(grown))
    if region.is_empty or region.area < 1.0:
        raise MissionPlanError("the whole area lies inside no-fly zones (with their clearance)")
    return region


def candidate_angles(
    region: BaseGeometry, step_deg: float, spacing_m: float = math.inf, keep: int = 10
) -> list[float]:
    """Angles to try (degrees counter-clockwise from east, in [0, 180)): a regular step plus the direction
    of every edge of the region's convex hull (the narrowest direction, hence the fewest lines, is always
    along one of them). With ``spacing_m``, only the ``keep`` narrowest of those that need at most one
    line more than the fewest are kept."""
    angles = np.arange(0.0, 180.0, step_deg)
    hull = (
        np.asarray(region.convex_hull.exterior.coords) if region.convex_hull.geom_type == "Polygon" else None
    )
    if hull is not None:
        d = np.diff(hull, axis=0)
        angles = np.concatenate([angles, np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 180.0])
    angles = np.unique(np.round(angles, 6))
    if hull is None or not math.isfinite(spacing_m):
        return sorted(angles.tolist())
    normal = np.radians(angles + 90.0)
    across = hull @ np.stack([np.cos(normal), np.sin(normal)])  # (vertices, angles)
    width = across.max(axis=0) - across.min(axis=0)
    lines = np.ceil(width / spacing_m - 1e-9)
    few = np.flatnonzero(lines <= lines.min() + 1)
    return sorted(angles[few[np.argsort(width[few])[:keep]]].tolist())


def lines_time_s(
    region: BaseGeometry, angle_deg: float, settings: CoverageSettings, keep_out: BaseGeometry
) -> float:
    """Quick flight-time estimate at ``angle_deg``: every band piece flown end to end as its own leg (two
    turns, two turnarounds and a hop of one spacing each), keep-out cutting only the bands; where
    neighbouring bands are whole lines flown back and forth, a turn whose ends are staggered enough to
    leave or join a line within 30° counts once (:func:`_staggered_s`)."""
    origin = region.centroid
    rotated = affinity.rotate(region, -angle_deg, origin=origin)
    blocker = affinity.rotate(keep_out, -angle_deg, origin=origin) if not keep_out.is_empty else None
    budget_m2 = settings.uncovered_share * region.area
    centres, _, strips = _bands(rotated, blocker, settings.spacing_m, _QUICK_STEP_M, budget_m2)
    xa, xb, band = _pieces(strips)
    if not len(xa):
        return math.inf
    photo_m = np.clip(xb - xa - settings.trigger_distance_m, 0.0, None).sum()
    per_leg_s = (
        2 * settings.turn_s + (2 * settings.turnaround_m + settings.spacing_m) / settings.cruise_speed_m_s
    )
    lines_s = photo_m / settings.cruise_speed_m_s + len(xa) * per_leg_s
    return float(lines_s + _staggered_s(xa, xb, band, centres, settings))


def _staggered_s(
    xa: Array, xb: Array, band: npt.NDArray[np.int_], centres: Array, settings: CoverageSettings
) -> float:
    """Seconds to add to the two-turn estimate of the turns between neighbouring bands that are one piece
    each, flown back and forth (turning at the right ends, then the left, either way round): the hop
    is the slanted one between the ends, and one turn is saved where the ends lie at least √3 line
    gaps apart (the drone leaves one line or joins the next within 30°)."""
    piece = np.full(len(centres), -1)
    piece[band] = np.arange(len(band))  # of the bands with one piece
    single = np.bincount(band, minlength=len(centres)) == 1
    pair = np.flatnonzero(single[:-1] & single[1:])
    if not len(pair):
        return 0.0
    i, j = piece[pair], piece[pair + 1]
    gap = centres[pair + 1] - centres[pair]
    right = pair % 2 == 0
    ends = np.abs([xb[j] - xb[i], xa[j] - xa[i]])  # (side, pair)
    dx = np.where(right, ends, ends[::-1])  # row 0: the first turn at the right ends; row 1: at the left
    saved = np.where(dx >= math.sqrt(3) * gap, settings.turn_s, 0.0)
    extra = (np.hypot(dx, gap) - settings.spacing_m) / settings.cruise_speed_m_s - saved
    return float(extra.sum(axis=1).min())


def transect_legs(
    region: BaseGeometry,
    angle_deg: float,
    settings: CoverageSettings,
    keep_out: BaseGeometry,
    *,
    fill_gaps: bool = False,
    join_m: float | None = None,
    trim: bool = False,
) -> list[Leg]:
    """Legs at ``angle_deg`` covering ``region``: one band per line, each band piece flown end to end.

    Each line spans the whole band piece around it (not only where the centre line meets the area, as QGC
    does), so slanted edges are covered too, less half a trigger distance at both ends (the first and the
    last photo's cells reach the edge). Where a line meets keep-out it is cut; the pieces are flown as one
    leg that goes round the zone (photos paused) when the zone reaches at most a spacing beside the line,
    as separate legs otherwise. Pieces of one line closer than a turn costs are flown as one, and
    turnaround extensions stop short of keep-out. With ``fill_gaps``, what the lines leave uncovered
    beside keep-out zones gets lines of its own. ``join_m`` overrides the longest free gap flown over
    (default: what a turn and two turnarounds cost).
    """
    origin = region.centroid
    rotated = affinity.rotate(region, -angle_deg, origin=origin)
    blocker = affinity.rotate(keep_out, -angle_deg, origin=origin) if not keep_out.is_empty else None
    join = (
        settings.turn_s * settings.cruise_speed_m_s + 2 * settings.turnaround_m if join_m is None else join_m
    )
    share_m2 = settings.uncovered_share * region.area
    lines = _band_lines(rotated, blocker, settings, join, share_m2, trim=trim)
    if fill_gaps and blocker is not None and len(lines.y):
        lines = _filled(rotated, blocker, settings, lines, join, share_m2)
    entry, exit_ = _extensions(lines.xa, lines.xb, lines.y, settings.turnaround_m, blocker)
    centre = (origin.x, origin.y)
    pts = np.stack([np.column_stack([x, lines.y]) for x in (entry, lines.xa, lines.xb, exit_)], axis=1)
    pts = _rotate(pts, angle_deg, centre)
    breaks = [_rotate(b, angle_deg, centre) if len(b) else b for b in lines.breaks]
    return [
        _leg(p, int(k), b, float(d))
        for p, k, b, d in zip(pts, lines.band, breaks, lines.bypass_m, strict=True)
    ]


@dataclass(frozen=True)
class _Lines:
    """Photo lines along x in the rotated frame: photos from ``xa`` to ``xb`` at height ``y``.

    ``breaks[i]`` is a (k, 2) array of points where line ``i`` pauses (even rows) and resumes (odd rows)
    to go round keep-out; ``bypass_m[i]`` estimates the extra distance of those detours.
    """

    xa: Array
    xb: Array
    y: Array
    band: npt.NDArray[np.int_]
    breaks: list[Array]
    bypass_m: Array

    def photo_pieces(self) -> tuple[Array, Array, Array]:
        """Start x, end x and y of every stretch photographed without a break."""
        xs = [
            np.concatenate([[a], b[:, 0], [c]]) for a, b, c in zip(self.xa, self.breaks, self.xb, strict=True)
        ]
        ys = [np.full(len(x) // 2, v) for x, v in zip(xs, self.y, strict=True)]
        flat = np.concatenate(xs) if xs else np.zeros(0)
        return flat[0::2], flat[1::2], np.concatenate(ys) if ys else np.zeros(0)

    def same_photos(self, other: _Lines) -> bool:
        """Whether both photograph the same stretches."""
        mine, theirs = self.photo_pieces(), other.photo_pieces()
        return len(mine[0]) == len(theirs[0]) and all(
            np.allclose(a, b, rtol=0.0, atol=1e-6) for a, b in zip(mine, theirs, strict=True)
        )

    def concat(self, other: _Lines, band: npt.NDArray[np.int_]) -> _Lines:
        return _Lines(
            np.concatenate([self.xa, other.xa]),
            np.concatenate([self.xb, other.xb]),
            np.concatenate([self.y, other.y]),
            np.concatenate([self.band, band]),
            [*self.breaks, *other.breaks],
            np.concatenate([self.bypass_m, other.bypass_m]),
        )


def _band_lines(
    rotated: BaseGeometry,
    blocker: BaseGeometry | None,
    settings: CoverageSettings,
    join_m: float,
    budget_m2: float = 0.0,
    *,
    trim: bool = False,
) -> _Lines:
    """Horizontal photo lines covering an area already rotated so that the lines run along x."""
    centres, edges, strips = _bands(rotated, blocker, settings.spacing_m, budget_m2=budget_m2)
    budget_m2 -= rotated.area - float(shapely.area(strips).sum())
    xa, xb, band = _pieces(strips)
    y = centres[band]
    if blocker is not None:
        xa, xb, y, band = _cut(xa, xb, y, band, blocker)
    lines = _merge_gaps(xa, xb, y, band, blocker, join_m, settings.spacing_m)
    if trim and budget_m2 > 0 and len(lines.y):
        lines = _trimmed(lines, edges, strips, budget_m2)
    first = np.array([b[0, 0] if len(b) else e for b, e in zip(lines.breaks, lines.xb, strict=True)])
    last = np.array([b[-1, 0] if len(b) else a for b, a in zip(lines.breaks, lines.xa, strict=True)])
    half_t = settings.trigger_distance_m / 2  # never past a pause: only the line's first and last stretch
    return dataclasses.replace(
        lines,
        xa=lines.xa + np.minimum(half_t, (first - lines.xa) / 2),
        xb=lines.xb - np.minimum(half_t, (lines.xb - last) / 2),
    )


#: A line's end is trimmed only where its band is at most this full (area per metre / band height).
_TRIM_FULLNESS = 0.3
#: Lengths tried when trimming a line's end (metres).
_TRIMS_M = np.array([2.0, 5.0, 9.0, 14.0])


#: Step of the line-offset search in quick estimates (metres; 1 m when the legs are made).
_QUICK_STEP_M = 3.0


def _bands(
    rotated: BaseGeometry,
    blocker: BaseGeometry | None,
    spacing_m: float,
    step_m: float = 1.0,
    budget_m2: float = 0.0,
) -> tuple[Array, Array, npt.NDArray[np.object_]]:
    """Line offsets, band edges (half-way between lines) and each band's part of the area (less the tips
    given up by :func:`_shaved`)."""
    minx, miny, maxx, maxy = rotated.bounds
    low, high = _shaved(rotated, spacing_m, budget_m2) if budget_m2 > 0 else (miny, maxy)
    centres = line_offsets(low, high, spacing_m, _blocked_ranges(rotated, blocker), step_m)
    edges = np.concatenate([[low], (centres[1:] + centres[:-1]) / 2, [high]])
    # rectangles never edge on the outline (unless a tip is cut off there)
    clip = np.concatenate(
        [[low - 1.0 if low == miny else low], edges[1:-1], [high + 1.0 if high == maxy else high]]
    )
    strips = [
        shapely.clip_by_rect(rotated, minx - 1.0, lo, maxx + 1.0, hi) for lo, hi in itertools.pairwise(clip)
    ]
    return centres, edges, np.array(strips, dtype=object)


#: Ways of sharing a shave between the two sides that are tried (evenly from all on one to all on the other).
_SHAVE_SPLITS = 5


def _shaved(rotated: BaseGeometry, spacing_m: float, budget_m2: float) -> tuple[float, float]:
    """The area's extent across the lines, cut short at one or both sides by just enough to need one line
    less, when the tips cut off hold at most ``budget_m2`` (a corner poking a few metres past a whole
    number of spacings costs a whole line otherwise); else the whole extent."""
    minx, miny, maxx, maxy = rotated.bounds
    lines = math.ceil((maxy - miny) / spacing_m - 1e-9)
    excess = (maxy - miny) - (lines - 1) * spacing_m + 1e-6
    if lines < 2 or excess > spacing_m / 2:
        return miny, maxy
    below = np.linspace(0.0, excess, _SHAVE_SPLITS)
    # the tips are measured in the two slabs that can be shaved, not the whole outline, again and again
    bottom = shapely.clip_by_rect(rotated, minx - 1, miny - 1, maxx + 1, miny + excess)
    top = shapely.clip_by_rect(rotated, minx - 1, maxy - excess, maxx + 1, maxy + 1)
    lost = [
        shapely.area(shapely.clip_by_rect(bottom, minx - 1, miny - 1, maxx + 1, miny + d))
        + shapely.area(shapely.clip_by_rect(top, minx - 1, maxy - (excess - d), maxx + 1, maxy + 1))
        for d in below
    ]
    k = int(np.argmin(lost))
    if lost[k] > budget_m2:
        return miny, maxy
    return miny + float(below[k]), maxy - float(excess - below[k])


def _pieces(strips: npt.NDArray[np.object_]) -> tuple[Array, Array, npt.NDArray[np.int_]]:
    """Lowest and highest x of each polygon piece of the bands, and the band it lies in."""
    parts, band = shapely.get_parts(strips, return_index=True)
    solid = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 1e-6)
    bounds = shapely.bounds(parts[solid])
    return bounds[:, 0], bounds[:, 2], band[solid]


def _trimmed(lines: _Lines, edges: Array, strips: npt.NDArray[np.object_], budget_m2: float) -> _Lines:
    """Lines shortened at their ends where the area given up per metre saved is least, ``budget_m2`` in all."""
    m, k = len(lines.y), len(_TRIMS_M)
    low, high = edges[lines.band], edges[lines.band + 1]
    room = np.clip((lines.xb - lines.xa) / 2 - 1.0, 0.0, None)
    room[[len(b) > 0 for b in lines.breaks]] = 0.0  # the ends of a line that goes round a zone stay
    trims = np.minimum(_TRIMS_M[None, :], room[:, None])  # (m, k), per end below
    reach = _TRIMS_M[-1]
    ends = [  # each line's band within the longest trim of either end: small polygons to measure
        [
            shapely.clip_by_rect(strips[b], x - 1.0, lo - 1.0, x + reach, hi + 1.0)
            for b, x, lo, hi in zip(lines.band, lines.xa, low, high, strict=True)
        ],
        [
            shapely.clip_by_rect(strips[b], x - reach, lo - 1.0, x + 1.0, hi + 1.0)
            for b, x, lo, hi in zip(lines.band, lines.xb, low, high, strict=True)
        ],
    ]
    lost = np.array(  # (2, m, k): clipping to a rectangle is much quicker than a general intersection
        [
            [
                [
                    shapely.area(shapely.clip_by_rect(end, x, lo, x + t, hi)) if t > 0 else 0.0
                    for t in line_trims
                ]
                for end, x, lo, hi, line_trims in zip(ends[0], lines.xa, low, high, trims, strict=True)
            ],
            [
                [
                    shapely.area(shapely.clip_by_rect(end, x - t, lo, x, hi)) if t > 0 else 0.0
                    for t in line_trims
                ]
                for end, x, lo, hi, line_trims in zip(ends[1], lines.xb, low, high, trims, strict=True)
            ],
        ]
    ).reshape(2, m, k)
    trims = np.broadcast_to(trims, (2, m, k))
    cut = np.zeros((2, m))
    spent = np.zeros((2, m))
    per_m = lost / np.maximum(trims, 1e-9)
    per_m[per_m > _TRIM_FULLNESS * (high - low)[None, :, None]] = np.inf  # only thin ends are worth it
    for flat in np.argsort(per_m.ravel())[: int(np.isfinite(per_m).sum())]:
        side, line, option = np.unravel_index(flat, lost.shape)
        extra = lost[side, line, option] - spent[side, line]
        if trims[side, line, option] > cut[side, line] and 0 <= extra <= budget_m2:
            budget_m2 -= float(extra)
            cut[side, line], spent[side, line] = trims[side, line, option], lost[side, line, option]
    return dataclasses.replace(lines, xa=lines.xa + cut[0], xb=lines.xb - cut[1])


def _blocked_ranges(rotated: BaseGeometry, blocker: BaseGeometry | None) -> Array:
    """(k, 2) lowest and highest y of each keep-out part that meets the (rotated) area."""
    if blocker is None:
        return np.zeros((0, 2))
    parts = shapely.get_parts(blocker)
    bounds: Array = shapely.bounds(parts[shapely.intersects(parts, rotated)])
    return bounds[:, [1, 3]]


def line_offsets(low_m: float, high_m: float, spacing_m: float, blocked: Array, step_m: float = 1.0) -> Array:
    """Offsets of the photo lines across ``[low_m, high_m]``: at most ``spacing_m`` apart, the first and last
    within half a spacing of the ends, as few as can be, and as few as can be inside the ``blocked``
    ranges (keep-out reaching across the lines): a line then runs beside a no-fly zone, not through it.
    One more line is used where it saves a detour. Without blocked ranges the lines are evenly spread.
    """
    fewest = max(1, math.ceil((high_m - low_m) / spacing_m - 1e-9))
    even = _even_offsets(low_m, high_m, fewest)
    if not _inside(even, blocked).any():
        return even
    window = math.ceil(spacing_m / step_m)  # grid steps in one spacing, exactly
    steps = np.arange(math.floor((high_m - low_m) / spacing_m * window) + 1, dtype=np.float64)
    grid: Array = low_m + steps * (spacing_m / window)
    inside = _inside(grid, blocked)
    span = (low_m, high_m, spacing_m, window)
    few, few_cost = _placed(grid, inside, span, even)
    if few_cost == 0:
        return few
    more, more_cost = _placed(grid, inside, span, _even_offsets(low_m, high_m, fewest + 1))
    return more if more_cost < few_cost else few


def _inside(offsets: Array, blocked: Array) -> npt.NDArray[np.int_]:
    """How many of the ``blocked`` ranges each offset lies strictly inside."""
    inside: npt.NDArray[np.int_] = (
        (offsets[:, None] > blocked[None, :, 0]) & (offsets[:, None] < blocked[None, :, 1])
    ).sum(axis=1)
    return inside


def _even_offsets(low_m: float, high_m: float, n: int) -> Array:
    offsets: Array = low_m + (high_m - low_m) / n * (np.arange(n, dtype=np.float64) + 0.5)
    return offsets


def _placed(
    grid: Array, inside: npt.NDArray[np.int_], span: tuple[float, float, float, int], even: Array
) -> tuple[Array, int]:
    """``len(even)`` offsets on ``grid`` (see :func:`line_offsets`; ``span`` is low, high, spacing and grid
    steps per spacing) with the fewest ``inside`` counts, ties going to the offsets nearest ``even``;
    returns them with their count (even offsets and a huge count when none fit)."""
    low_m, high_m, spacing_m, window = span
    cost = np.where(grid <= low_m + spacing_m / 2 + 1e-9, 0.0, np.inf)
    penalty = inside[None, :] + 1e-3 / spacing_m * np.abs(grid[None, :] - even[:, None])  # (line, offset)
    shifted = np.full(len(grid), np.inf)
    history = []
    for k in range(len(even)):
        cost = cost + penalty[k]
        if k == len(even) - 1:
            break
        history.append(cost)
        shifted[1:] = cost[:-1]  # best previous line within a spacing below each
        cost = minimum_filter1d(shifted, size=window, origin=(window - 1) // 2, mode="constant", cval=np.inf)
    cost = np.where(grid >= high_m - spacing_m / 2 - 1e-9, cost, np.inf)
    j = int(np.argmin(cost))
    if not np.isfinite(cost[j]):
        return even, 10**9
    chosen = [j]
    for previous in reversed(history):
        lowest = max(0, chosen[-1] - window)
        chosen.append(lowest + int(np.argmin(previous[lowest : chosen[-1]])))
    index = np.array(chosen[::-1])
    return grid[index], int(inside[index].sum())


def _filled(
    rotated: BaseGeometry,
    blocker: BaseGeometry,
    settings: CoverageSettings,
    lines: _Lines,
    join_m: float,
    share_m2: float,
) -> _Lines:
    """``lines`` (whose tips and ends may have used the uncovered share) with lines over the gaps beside
    keep-out (:func:`_fill`). When those gaps then need lines of their own, the lines made keeping the
    whole share for the gaps are filled too, and the quicker kept: a gap line costs two turns, a shaved
    tip or trimmed end saves less. Those are kept anyway if the first leave more than the share out."""
    filled, left_m2 = _fill(rotated, blocker, settings, lines, join_m, share_m2)
    if len(filled.y) == len(lines.y) and left_m2 <= share_m2:
        return filled
    unspent = _band_lines(rotated, blocker, settings, join_m)
    if unspent.same_photos(lines):  # nothing was given up at the tips or ends
        return filled
    kept, _ = _fill(rotated, blocker, settings, unspent, join_m, share_m2)
    if left_m2 > share_m2 or _lines_s(kept, settings) < _lines_s(filled, settings):
        return kept
    return filled


def _lines_s(lines: _Lines, settings: CoverageSettings) -> float:
    """Rough flight time of ``lines`` (as :func:`lines_time_s`, plus the detours round keep-out)."""
    per_leg_s = (
        2 * settings.turn_s + (2 * settings.turnaround_m + settings.spacing_m) / settings.cruise_speed_m_s
    )
    detours = sum(len(b) // 2 for b in lines.breaks)
    photo_m = float((lines.xb - lines.xa).sum() + lines.bypass_m.sum())
    return photo_m / settings.cruise_speed_m_s + len(lines.y) * per_leg_s + 4 * settings.turn_s * detours


#: Gaps smaller than this share of a photo cell never get a line of their own (slivers along the outline).
_SLIVER = 0.01


def _fill(
    rotated: BaseGeometry,
    blocker: BaseGeometry,
    settings: CoverageSettings,
    lines: _Lines,
    join_m: float,
    budget_m2: float,
) -> tuple[_Lines, float]:
    """Add lines over what the photo cells of ``lines`` leave uncovered (beside cut lines), the largest gaps
    first, until what is left holds at most ``budget_m2`` (a line of its own costs two turns and
    turnarounds however small the gap; slivers under :data:`_SLIVER` of a photo cell never get one); returns
    the lines and the area they leave uncovered (measured again: a gap's lines need not cover all of
    it, keep-out beside them cuts them short)."""
    parts = _uncovered(rotated, lines, settings)
    areas = shapely.area(parts)
    left_m2 = float(areas.sum())
    added = False
    for k in np.argsort(-areas):
        if left_m2 <= budget_m2 or areas[k] <= _SLIVER * settings.spacing_m * settings.trigger_distance_m:
            break
        extra = _band_lines(parts[k], blocker, settings, join_m)  # each part has its own bands
        nearest = np.abs(extra.y[:, None] - lines.y[None, :]).argmin(axis=1)
        lines = lines.concat(extra, lines.band[nearest])
        left_m2 -= float(areas[k])
        added = True
    if added:
        left_m2 = float(shapely.area(_uncovered(rotated, lines, settings)).sum())
    return lines, left_m2


def _uncovered(rotated: BaseGeometry, lines: _Lines, settings: CoverageSettings) -> npt.NDArray[np.object_]:
    """The parts of ``rotated`` outside the photo cells of ``lines``."""
    half_t, half_s = settings.trigger_distance_m / 2, settings.spacing_m / 2
    xa, xb, y = lines.photo_pieces()
    cells = shapely.union_all(shapely.box(xa - half_t, y - half_s, xb + half_t, y + half_s))
    parts: npt.NDArray[np.object_] = shapely.get_parts(rotated.difference(cells))
    return parts


def _cut(
    xa: Array, xb: Array, y: Array, band: npt.NDArray[np.int_], blocker: BaseGeometry
) -> tuple[Array, Array, Array, npt.NDArray[np.int_]]:
    """Cut horizontal lines where they enter the blocker; returns the free pieces."""
    lines = shapely.linestrings(np.stack([np.column_stack([xa, y]), np.column_stack([xb, y])], axis=1))
    parts, index = shapely.get_parts(shapely.difference(lines, blocker), return_index=True)
    keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 1e-3)
    bounds = shapely.bounds(parts[keep])
    index = index[keep]
    return bounds[:, 0], bounds[:, 2], y[index], band[index]


def _merge_gaps(
    xa: Array,
    xb: Array,
    y: Array,
    band: npt.NDArray[np.int_],
    blocker: BaseGeometry | None,
    join_m: float,
    spacing_m: float,
) -> _Lines:
    """Join pieces of one line into one leg: over a free gap of at most ``join_m``, and round keep-out
    that reaches at most ``spacing_m`` beside the line (with at most ``join_m`` of free gap besides)."""
    order = np.lexsort((xa, band))
    xa, xb, y, band = xa[order], xb[order], y[order], band[order]
    if not len(xa):
        return _Lines(xa, xb, y, band, [], np.zeros(0))
    # a piece can lie within an earlier one's x-range (pieces above one another in a band): the line
    # reaches as far as the furthest piece so far, not the last one
    xb = _running_max(xb, band)
    gap = xa[1:] - xb[:-1]
    same = band[1:] == band[:-1]
    blocked = np.zeros(len(gap), dtype=bool)
    reach = np.zeros(len(gap))
    if blocker is not None and (same & (gap > 0)).any():
        idx = np.flatnonzero(same & (gap > 0))
        gaps = shapely.linestrings(
            np.stack([np.column_stack([xb[idx], y[idx]]), np.column_stack([xa[idx + 1], y[idx]])], axis=1)
        )
        inside_m = shapely.length(shapely.intersection(gaps, blocker))
        blocked[idx] = inside_m > 1e-6
        gap[idx] -= inside_m
        hit = idx[blocked[idx]]
        reach[hit] = _reach(gaps[blocked[idx]], y[hit], blocker)
    join = same & (gap <= join_m) & (reach <= spacing_m)
    return _joined(xa, xb, y, band, join, np.where(blocked & join, 2 * reach, -1.0))


def _running_max(values: Array, groups: npt.NDArray[np.int_]) -> Array:
    """Running maximum of ``values`` within each run of equal ``groups`` (sorted ascending)."""
    lift = (groups - groups.min()) * (float(np.ptp(values)) + 1.0)  # each group above all earlier ones
    running = np.maximum.accumulate(values + lift) - lift
    exact: Array = np.where(running > values + 1e-9, running, values)  # a value that is its own maximum stays
    return exact


def _reach(gaps: npt.NDArray[np.object_], y: Array, blocker: BaseGeometry) -> Array:
    """How far beside each gap line (the nearer side) the keep-out parts it meets extend."""
    parts = shapely.get_parts(blocker)
    reach = np.zeros(len(gaps))
    gap_idx, part_idx = shapely.STRtree(parts).query(gaps, predicate="intersects")
    if len(gap_idx):
        bounds = shapely.bounds(parts[part_idx])
        side = np.minimum(bounds[:, 3] - y[gap_idx], y[gap_idx] - bounds[:, 1])
        np.maximum.at(reach, gap_idx, side)
    return reach


def _joined(
    xa: Array, xb: Array, y: Array, band: npt.NDArray[np.int_], join: npt.NDArray[np.bool_], detour_m: Array
) -> _Lines:
    """Lines from runs of joined pieces; a gap with ``detour_m ≥ 0`` becomes a break (pause, resume)."""
    first = np.flatnonzero(np.concatenate([[True], ~join]))
    last = np.append(first[1:], len(xa)) - 1
    breaks = [np.zeros((0, 2))] * len(first)
    bypass = np.zeros(len(first))
    for k in np.flatnonzero(np.add.reduceat(np.append(detour_m, -1.0) >= 0, first)):
        i, j = first[k], last[k]
        inner = np.arange(i, j)[detour_m[i:j] >= 0]
        points = np.column_stack(
            [np.stack([xb[inner], xa[inner + 1]], axis=1).ravel(), np.repeat(y[inner], 2)]
        )
        breaks[k] = points
        bypass[k] = detour_m[inner].sum()
    return _Lines(xa[first], xb[last], y[first], band[first], breaks, bypass)


def _extensions(
    xa: Array, xb: Array, y: Array, turnaround_m: float, blocker: BaseGeometry | None
) -> tuple[Array, Array]:
    """Turnaround ends of each line, shortened where they would enter the blocker."""
    entry, exit_ = xa - turnaround_m, xb + turnaround_m
    if blocker is None or turnaround_m == 0:
        return entry, exit_
    for ends, starts in ((entry, xa), (exit_, xb)):
        runs = shapely.linestrings(
            np.stack([np.column_stack([starts, y]), np.column_stack([ends, y])], axis=1)
        )
        hit = np.flatnonzero(shapely.relate_pattern(runs, blocker, "T********"))
        if not len(hit):
            continue
        coords, owner = shapely.get_coordinates(shapely.intersection(runs[hit], blocker), return_index=True)
        gap = np.full(len(hit), np.inf)
        np.minimum.at(gap, owner, np.abs(coords[:, 0] - starts[hit][owner]))
        ends[hit] = starts[hit] + np.sign(ends[hit] - starts[hit]) * gap
    return entry, exit_


def _leg(points: Array, band: int, breaks: Array, bypass_m: float) -> Leg:
    e, s, n, x = ((float(p[0]), float(p[1])) for p in points)
    return Leg(e, s, n, x, band, tuple((float(p[0]), float(p[1])) for p in breaks), bypass_m)


def _rotate(points: Array, angle_deg: float, centre: XY) -> Array:
    a = math.radians(angle_deg)
    rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    rotated: Array = (points - np.asarray(centre)) @ rotation + np.asarray(centre)
    return rotated


def order_legs(legs: Sequence[Leg], home_xy: XY, *, starts: int = 2) -> list[Leg]:
    """Order and orient legs for the shortest flight from and back to home.

    From each of the ``starts`` outermost-band leg ends nearest home, always fly to the nearest leg end
    next (on a convex area the usual back-and-forth; on a concave one each lobe is finished before
    crossing to the next); the order with the shortest closed route wins.
    """
    if not legs:
        return []
    ends = np.array([[leg.entry, leg.exit] for leg in legs]).reshape(-1, 2)  # leg i: rows 2i, 2i + 1
    bands = np.array([leg.band for leg in legs])
    hops = np.linalg.norm(ends[:, None, :] - ends[None, :, :], axis=2)
    hops += 1e-3 * np.abs(np.repeat(bands, 2)[:, None] - np.repeat(bands, 2)[None, :])  # ties: nearest band
    outer = np.repeat((bands == bands.min()) | (bands == bands.max()), 2)
    to_home = np.where(outer, np.linalg.norm(ends - np.asarray(home_xy), axis=1), np.inf)
    firsts = np.argsort(to_home)[: max(1, min(starts, int(outer.sum())))]
    orders = [_greedy(legs, hops, int(first)) for first in firsts]
    best = min(orders, key=lambda o: _estimate_s(o, home_xy))
    if math.dist(best[-1].exit, home_xy) < math.dist(
        best[0].entry, home_xy
    ):  # same tour, entered nearer home
        best = [leg.reversed() for leg in reversed(best)]
    return best


def _greedy(legs: Sequence[Leg], hops: Array, first_end: int) -> list[Leg]:
    """Legs in nearest-end order from end ``first_end`` (leg ``first_end // 2``, entered at that end)."""
    free = np.ones(len(hops), dtype=bool)
    ordered: list[Leg] = []
    end = first_end
    while True:
        leg = end // 2
        free[2 * leg : 2 * leg + 2] = False
        ordered.append(legs[leg] if end % 2 == 0 else legs[leg].reversed())
        if not free.any():
            return ordered
        out = end ^ 1  # leave by the other end
        end = int(np.argmin(np.where(free, hops[out], np.inf)))


def improve_order(
    legs: Sequence[Leg], home_xy: XY, settings: CoverageSettings, obstacles: Obstacles | None = None
) -> list[Leg]:
    """``legs`` in order, improved by local search on the time of the closed route from and back to home.

    Each leg can be flown either way; a hop from one leg's exit to the next one's entry costs its distance
    at cruise speed and a stop at each of its ends where the heading turns sharply (so a route that ends
    near home, or hops where the turn is gentle, wins over plain back-and-forth when it is faster). Moves:
    reverse a run of legs (2-opt) and move one leg elsewhere, either way round (or-opt); the best move is
    made until none gains. A hop through a no-fly zone of ``obstacles`` costs :data:`_BLOCKED_HOP_TURNS`
    stops more (the detour round it).
    """
    if len(legs) < 2:
        return list(legs)
    cost = _hop_costs_s(legs, home_xy, settings)
    if obstacles is not None and not obstacles.empty:
        cost += _BLOCKED_HOP_TURNS * settings.turn_s * _blocked_hops(legs, home_xy, obstacles)
    home = 2 * len(legs)
    seq = np.arange(0, home, 2)  # node 2i: leg i as given, 2i + 1: leg i reversed
    for _ in range(4 * len(legs)):
        moved = _best_reversal(cost, seq, home)
        moved = _best_shift(cost, seq, home, moved)
        if moved is None:
            break
        seq = moved[1]
    return [legs[k // 2] if k % 2 == 0 else legs[k // 2].reversed() for k in seq.tolist()]


#: Extra stops charged for a hop that has to go round a no-fly zone.
_BLOCKED_HOP_TURNS = 3
#: Hops checked against no-fly zones from each leg end: the nearest this many (and all to and from home).
_CHECKED_HOPS = 16


def _blocked_hops(legs: Sequence[Leg], home_xy: XY, obstacles: Obstacles) -> Array:
    """1 where the hop from oriented leg ``a`` to oriented leg ``b`` (nodes as in :func:`_hop_costs_s`) enters
    a no-fly zone, else 0; only the :data:`_CHECKED_HOPS` shortest from each node are checked (a local
    search rarely makes a long one, and on a large area all of them would cost more than the search)."""
    ends = np.array([[leg.entry, leg.exit] for leg in legs]).reshape(-1, 2)
    starts = np.vstack([ends, [home_xy]])
    stops = np.vstack([ends[np.arange(len(ends)) ^ 1], [home_xy]])
    length = np.linalg.norm(starts[None, :, :] - stops[:, None, :], axis=2)
    checked = np.zeros(length.shape, dtype=bool)
    nearest = np.argsort(length, axis=1)[:, :_CHECKED_HOPS]
    checked[np.arange(len(stops))[:, None], nearest] = True
    checked[-1, :], checked[:, -1] = True, True
    a, b = np.nonzero(checked)
    blocked = np.zeros(length.shape)
    blocked[a, b] = obstacles.blocked(shapely.linestrings(np.stack([stops[a], starts[b]], axis=1)))
    return blocked


def _hop_costs_s(legs: Sequence[Leg], home_xy: XY, settings: CoverageSettings) -> Array:
    """Seconds from the exit of oriented leg ``a`` to the entry of oriented leg ``b`` (node 2i: leg i, 2i + 1:
    leg i reversed, the last node: home): the hop at cruise speed and a stop at each end turning sharply."""
    ends = np.array([[leg.entry, leg.exit] for leg in legs]).reshape(-1, 2)
    starts = np.vstack([ends, [home_xy]])
    stops = np.vstack([ends[np.arange(len(ends)) ^ 1], [home_xy]])
    heading = stops - starts
    heading[:-1] /= np.maximum(np.linalg.norm(heading[:-1], axis=1), 1e-9)[:, None]
    hop = starts[None, :, :] - stops[:, None, :]  # (from, to, xy)
    length = np.linalg.norm(hop, axis=2)
    unit = hop / np.maximum(length, 1e-9)[:, :, None]
    limit = math.cos(math.radians(SHARP_TURN_DEG))
    straight = np.einsum("ak,bk->ab", heading, heading) >= limit  # a zero hop: one turn, leg to leg
    leave = np.where(length > 1e-9, np.einsum("ak,abk->ab", heading, unit) < limit, ~straight)
    arrive = (length > 1e-9) & (np.einsum("abk,bk->ab", unit, heading) < limit)
    leave[-1, :], arrive[:, -1] = False, False  # no turn is counted at home
    cost: Array = length / settings.cruise_speed_m_s + settings.turn_s * (leave.astype(float) + arrive)
    return cost


def _best_reversal(
    cost: Array, seq: npt.NDArray[np.int_], home: int
) -> tuple[float, npt.NDArray[np.int_]] | None:
    """The best 2-opt move: legs ``i..j`` flown in reverse order, each the other way round (the hops inside
    the run keep their times: reversing a hop keeps its length and its turns)."""
    before = np.concatenate([[home], seq[:-1]])
    after = np.concatenate([seq[1:], [home]])
    flipped = seq ^ 1
    gain = (
        cost[before, seq][:, None]
        + cost[seq, after][None, :]
        - cost[before[:, None], flipped[None, :]]
        - cost[flipped[:, None], after[None, :]]
    )
    gain[np.tril_indices(len(seq), -1)] = 0.0
    i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if gain[i, j] <= 1e-6:
        return None
    return float(gain[i, j]), np.concatenate([seq[:i], flipped[i : j + 1][::-1], seq[j + 1 :]])


def _best_shift(
    cost: Array, seq: npt.NDArray[np.int_], home: int, best: tuple[float, npt.NDArray[np.int_]] | None
) -> tuple[float, npt.NDArray[np.int_]] | None:
    """The better of ``best`` and the best or-opt move: one leg taken out and put between two others,
    either way round."""
    n = len(seq)
    before = np.concatenate([[home], seq[:-1]])
    after = np.concatenate([seq[1:], [home]])
    saved = cost[before, seq] + cost[seq, after] - cost[before, after]  # taking leg i out
    path = np.concatenate([[home], seq, [home]])
    a, b = path[:-1], path[1:]  # gap g lies between a[g] and b[g]
    for node in (seq, seq ^ 1):
        added = cost[a[None, :], node[:, None]] + cost[node[:, None], b[None, :]] - cost[a, b][None, :]
        gain = saved[:, None] - added
        gain[np.arange(n), np.arange(n)] = 0.0  # the gaps beside the leg itself
        gain[np.arange(n), np.arange(n) + 1] = 0.0
        i, g = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if gain[i, g] > 1e-6 and (best is None or gain[i, g] > best[0]):
            rest = np.delete(seq, i)
            at = g if g < i else g - 1
            best = (float(gain[i, g]), np.insert(rest, at, node[i]))
    return best


def _estimate_s(legs: Sequence[Leg], home_xy: XY) -> float:
    """Distance-dominated ranking of orders of the same legs: the closed route's length (m)."""
    vertices = np.array([home_xy, *(p for leg in legs for p in (leg.entry, leg.exit)), home_xy])
    return float(np.linalg.norm(np.diff(vertices, axis=0), axis=1).sum())


def route_time_s(legs: Sequence[Leg], home_xy: XY, settings: CoverageSettings) -> float:
    """Estimated time to fly the legs in order from and back to home: straight transits, the detours round
    no-fly zones estimated (their extra distance and four turns each), a stop at every sharp turn."""
    if not legs:
        return math.inf
    vertices = [home_xy, *(p for leg in legs for p in leg.points), home_xy]
    detours = sum(len(leg.breaks) // 2 for leg in legs)
    extra_m = sum(leg.bypass_m for leg in legs)
    return (
        flight_time_s(vertices, settings)
        + extra_m / settings.cruise_speed_m_s
        + 4 * settings.turn_s * detours
    )


def flight_time_s(vertices: Sequence[XY], settings: CoverageSettings) -> float:
    """Time to fly a polyline at cruise speed, stopping ``turn_s`` at every sharp turn."""
    return path_length_m(vertices) / settings.cruise_speed_m_s + settings.turn_s * sharp_turns(vertices)


#: A heading change sharper than this costs a stop and a turn (``turn_s``).
SHARP_TURN_DEG = 30.0


def sharp_turns(vertices: Sequence[XY]) -> int:
    """Number of interior vertices where the heading changes by more than :data:`SHARP_TURN_DEG`."""
    if len(vertices) < 3:
        return 0
    d = np.diff(np.asarray(vertices, dtype=float), axis=0)
    d = d[np.linalg.norm(d, axis=1) > 1e-9]
    if len(d) < 2:
        return 0
    heading = np.arctan2(d[:, 1], d[:, 0])
    change = np.abs((np.diff(heading) + math.pi) % (2 * math.pi) - math.pi)
    return int((np.degrees(change) > SHARP_TURN_DEG).sum())


def _assemble(
    legs: Sequence[Leg],
    angle_deg: float,
    obstacles: Obstacles,
    settings: CoverageSettings,
    known: dict[tuple[XY, XY], list[XY]] | None = None,
) -> CoveragePath:
    """The route through the legs in order: transits and breaks go round no-fly zones (photos off).

    ``known`` keeps the detours found (orders of the same legs share most of them)."""
    known = {} if known is None else known
    points = [p for leg in legs for p in leg.points]
    photo = [
        s for leg in legs for s in (False, *([True, False] * (len(leg.breaks) // 2)), True, False, False)
    ]
    photo.pop()  # no segment after the last exit
    lines = shapely.linestrings(np.stack([points[:-1], points[1:]], axis=1))
    blocked = obstacles.blocked(lines)
    vertices: list[XY] = [points[0]]
    flags: list[bool] = []
    for i, shoots in enumerate(photo):
        a, b = points[i], points[i + 1]
        if blocked[i] and (a, b) not in known:
            known[(a, b)] = detour(a, b, obstacles)
            known[(b, a)] = known[(a, b)][::-1]
        via = known[(a, b)] if blocked[i] else [a, b]
        vertices.extend(via[1:])
        flags.extend([shoots] * (len(via) - 1))
    return _dedupe(vertices, flags, angle_deg, settings.spacing_m, tuple(legs))


def _dedupe(
    vertices: list[XY], photo: list[bool], angle_deg: float, spacing_m: float, legs: tuple[Leg, ...]
) -> CoveragePath:
    keep_v: list[XY] = [vertices[0]]
    keep_p: list[bool] = []
    for point, shoots in zip(vertices[1:], photo, strict=True):
        if math.dist(point, keep_v[-1]) < 1e-6:
            if shoots and keep_p:
                keep_p[-1] = keep_p[-1] or shoots
            continue
        keep_v.append(point)
        keep_p.append(shoots)
    return CoveragePath(tuple(keep_v), tuple(keep_p), angle_deg, spacing_m, legs)


def detour(a: XY, b: XY, obstacles: Obstacles) -> list[XY]:
    """The shortest polyline a → b that does not enter a no-fly zone: straight when it can be.

    Searches a visibility graph on the corners of the keep-out polygons that the segment meets, widening
    to those around them until a way is found; every edge is checked against all zones, so the route is
    always safe (and, with obstacles as sparse as towers, the shortest or close to it).

    Raises:
        MissionPlanError: no way round exists (an end point lies inside a zone).
    """
    if not obstacles.blocks(a, b):
        return [a, b]
    search: BaseGeometry = LineString([a, b])
    limit = shapely.box(*shapely.total_bounds(obstacles.keep_out_parts))
    while True:
        near = obstacles.keep_out_near(search)
        route = _visibility_route(a, b, obstacles, _corners(near))
        if route is not None:
            return route
        if search.contains(limit):
            raise MissionPlanError(
                f"no way round the no-fly zones from ({a[0]:.1f}, {a[1]:.1f}) to ({b[0]:.1f}, {b[1]:.1f})"
            )
        search = shapely.box(*shapely.union(search, near).bounds).buffer(50.0, join_style="mitre")


def _visibility_route(a: XY, b: XY, obstacles: Obstacles, corners: list[XY]) -> list[XY] | None:
    nodes = [a, b, *corners]
    xy = np.asarray(nodes)
    i, j = np.triu_indices(len(nodes), k=1)
    lines = shapely.linestrings(np.stack([xy[i], xy[j]], axis=1))
    ok = ~obstacles.blocked(lines)
    weights = np.linalg.norm(xy[i] - xy[j], axis=1)[ok]
    graph = csr_matrix((weights, (i[ok], j[ok])), shape=(len(nodes), len(nodes)))
    dist, pred = dijkstra(graph, directed=False, indices=0, return_predecessors=True)
    if not np.isfinite(dist[1]):
        return None
    route = [1]
    while route[-1] != 0:
        route.append(int(pred[route[-1]]))
    return [nodes[k] for k in reversed(route)]


def _corners(keep_out: BaseGeometry) -> list[XY]:
    rings = [poly.exterior for poly in shapely.get_parts(keep_out) if poly.geom_type == "Polygon"]
    return [(float(x), float(y)) for ring in rings for x, y in list(ring.coords)[:-1]]


def photo_cells(
    vertices: Sequence[XY], photo: Sequence[bool], spacing_m: float, trigger_m: float
) -> BaseGeometry:
    """Union of the ground cells (``spacing_m`` across × ``trigger_m`` along) of the photos of a route.

    Photos are taken every ``trigger_m`` along each photo segment from its start (distance triggering) and
    once more at its end (where the mission stops triggering); a point inside a cell is seen with at least
    the requested front and side overlap.
    """
    cells = []
    for (a, b), shoots in zip(itertools.pairwise(vertices), photo, strict=False):
        length = math.dist(a, b)
        if not shoots or length == 0:
            continue
        d = np.append(np.arange(0.0, length, trigger_m), length)
        ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        cx, cy = a[0] + ux * d, a[1] + uy * d
        corners = [
            (sa * trigger_m / 2, sc * spacing_m / 2) for sa, sc in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
        rings = np.stack(
            [np.column_stack([cx + ux * al - uy * ac, cy + uy * al + ux * ac]) for al, ac in corners], axis=1
        )
        cells.append(shapely.polygons(rings))
    # On a millimetre grid: the exact union of many edge-sharing rectangles can drop one (a GEOS robustness
    # failure seen on overlapping lines), which would under-report coverage by a whole photo.
    return shapely.union_all(np.concatenate(cells), grid_size=0.001) if cells else Polygon()


def path_length_m(vertices: Sequence[XY]) -> float:
    """Length of a polyline in metres."""
    return float(sum(math.dist(a, b) for a, b in itertools.pairwise(vertices)))


def legs_through(vertices: Sequence[XY], zones: Sequence[BaseGeometry]) -> int:
    """How many straight segments of a polyline enter the interior of any zone (0 for a safe route)."""
    obstacles = Obstacles(zones, 0.0)
    lines = np.array([LineString([a, b]) for a, b in itertools.pairwise(vertices) if a != b], dtype=object)
    return int(obstacles.blocked(lines).sum())
