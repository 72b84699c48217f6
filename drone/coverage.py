"""Coverage paths for one area in a local metric CRS: parallel photo transects (legs) joined into one route.

The area may be concave and have holes. No-fly zones (and towers taller than the flight) are cut out of it
with a clearance; every leg, every turnaround extension and every transit between legs is checked against
them, and a transit that would cross one is replaced by the shortest detour around it (a visibility graph on
the zones' corners). The transect angle is searched (every ``angle_step_deg`` plus the directions of the
area's hull edges) for the shortest flight time, not just set along the longest edge; the route enters at the
leg end nearest the take-off point.

Stages: :func:`transect_legs` (area + angle → legs), :func:`order_legs` (legs → route order),
:func:`detour` (transit → obstacle-free polyline), :func:`plan_coverage` orchestrates them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
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
    """

    spacing_m: float
    trigger_distance_m: float
    margin_m: float = 0.0
    turnaround_m: float = 10.0
    cruise_speed_m_s: float = 10.0
    turn_s: float = 4.0
    clearance_m: float = 5.0
    angle_step_deg: float = 15.0

    def __post_init__(self) -> None:
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
    """One photo transect: photos from ``start`` to ``end``, flown from ``entry`` to ``exit`` (turnarounds)."""

    entry: XY
    start: XY
    end: XY
    exit: XY
    band: int

    def reversed(self) -> Leg:
        return Leg(self.exit, self.end, self.start, self.entry, self.band)

    @property
    def length_m(self) -> float:
        return (
            math.dist(self.entry, self.start)
            + math.dist(self.start, self.end)
            + math.dist(self.end, self.exit)
        )


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
        home_xy: the take-off point; the route enters at the leg end nearest it.
        no_fly: polygons never to enter, in the same CRS (or an :class:`Obstacles` index of them, whose
            clearance then applies).

    Returns:
        The route with the lowest estimated flight time over the searched angles.

    Raises:
        MissionPlanError: the area is empty, or nothing is left of it outside the no-fly zones.
    """
    obstacles = no_fly if isinstance(no_fly, Obstacles) else Obstacles(no_fly, settings.clearance_m)
    region = _region(area, settings, obstacles)
    keep_out = obstacles.keep_out_near(region.envelope.buffer(settings.turnaround_m + 1.0))

    def evaluate(angle: float) -> tuple[float, float, list[Leg]]:
        ordered = order_legs(transect_legs(region, angle % 180.0, settings, keep_out), home_xy)
        return route_time_s(ordered, home_xy, settings), angle % 180.0, ordered

    best = min((evaluate(a) for a in candidate_angles(region, settings.angle_step_deg)), key=lambda r: r[0])
    step = settings.angle_step_deg
    best = min([best, *(evaluate(best[1] + d) for d in (-step / 3, step / 3))], key=lambda r: r[0])
    if not best[2]:
        raise MissionPlanError("no transect fits in the area; is it smaller than the clearance?")
    variants = [
        order_legs(transect_legs(region, best[1], settings, keep_out, fill_gaps=True, join_m=join), home_xy)
        for join in (None, math.inf)
    ]
    legs = min(variants, key=lambda v: route_time_s(v, home_xy, settings))
    return _assemble(legs, best[1], obstacles, settings)


def _region(area: BaseGeometry, settings: CoverageSettings, obstacles: Obstacles) -> BaseGeometry:
    if area.is_empty or not area.is_valid:
        raise MissionPlanError(f"the area to cover is {'empty' if area.is_empty else 'not a valid polygon'}")
    grown = area.buffer(settings.margin_m) if settings.margin_m else area
    region = grown.difference(obstacles.keep_out_near(grown))
    if region.is_empty or region.area < 1.0:
        raise MissionPlanError("the whole area lies inside no-fly zones (with their clearance)")
    return region


def candidate_angles(region: BaseGeometry, step_deg: float, hull_edges: int = 2) -> list[float]:
    """Angles to try (degrees counter-clockwise from east, in [0, 180)): a regular step plus the directions
    of the ``hull_edges`` longest edges of the region's convex hull."""
    angles = set(np.round(np.arange(0.0, 180.0, step_deg), 6).tolist())
    hull = region.convex_hull
    if hull.geom_type == "Polygon":
        d = np.diff(np.asarray(hull.exterior.coords), axis=0)
        longest = np.argsort(-np.hypot(d[:, 0], d[:, 1]))[:hull_edges]
        angles.update(np.round(np.degrees(np.arctan2(d[longest, 1], d[longest, 0])) % 180.0, 6).tolist())
    return sorted(angles)


def transect_legs(
    region: BaseGeometry,
    angle_deg: float,
    settings: CoverageSettings,
    keep_out: BaseGeometry,
    *,
    fill_gaps: bool = False,
    join_m: float | None = None,
) -> list[Leg]:
    """Legs at ``angle_deg`` covering ``region``: one band per line, each band piece flown end to end.

    Each line spans the whole band piece around it (not only where the centre line meets the area, as QGC
    does), so slanted edges are covered too, less half a trigger distance at both ends (the first and the
    last photo's cells reach the edge); it is cut where it would enter the keep-out geometry, pieces of
    one line closer than a turn costs are flown as one, and turnaround extensions stop short of keep-out.
    With ``fill_gaps``, what the lines leave uncovered beside keep-out zones gets lines of its own.
    ``join_m`` overrides the longest gap flown over (default: what a turn and two turnarounds cost).
    """
    origin = region.centroid
    rotated = affinity.rotate(region, -angle_deg, origin=origin)
    blocker = affinity.rotate(keep_out, -angle_deg, origin=origin) if not keep_out.is_empty else None
    join = (
        settings.turn_s * settings.cruise_speed_m_s + 2 * settings.turnaround_m if join_m is None else join_m
    )
    lines = _band_lines(rotated, blocker, settings, join)
    if fill_gaps and blocker is not None and len(lines[0]):
        lines = _fill(rotated, blocker, settings, lines, join)
    xa, xb, y, band = lines
    entry, exit_ = _extensions(xa, xb, y, settings.turnaround_m, blocker)
    pts = np.stack([np.column_stack([x, y]) for x in (entry, xa, xb, exit_)], axis=1)  # (m, 4, 2)
    pts = _rotate(pts, angle_deg, (origin.x, origin.y))
    return [_leg(leg, int(k)) for leg, k in zip(pts, band, strict=True)]


Lines = tuple[Array, Array, Array, npt.NDArray[np.int_]]  # photo start x, photo end x, y, band index


def _band_lines(
    rotated: BaseGeometry, blocker: BaseGeometry | None, settings: CoverageSettings, join_m: float
) -> Lines:
    """Horizontal photo lines covering an area already rotated so that the lines run along x."""
    minx, miny, maxx, maxy = rotated.bounds
    n = max(1, math.ceil((maxy - miny) / settings.spacing_m - 1e-9))
    height = (maxy - miny) / n
    centres = miny + height * (np.arange(n) + 0.5)
    boxes = shapely.box(minx - 1.0, centres - height / 2, maxx + 1.0, centres + height / 2)
    parts, band = shapely.get_parts(shapely.intersection(boxes, rotated), return_index=True)
    solid = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 1e-6)
    bounds = shapely.bounds(parts[solid])
    band = band[solid]
    xa, xb, y = bounds[:, 0], bounds[:, 2], centres[band]
    if blocker is not None:
        xa, xb, y, band = _cut(xa, xb, y, band, blocker)
    xa, xb, y, band = _merge_gaps(xa, xb, y, band, blocker, join_m)
    half = np.minimum(settings.trigger_distance_m / 2, (xb - xa) / 2)
    return xa + half, xb - half, y, band


def _fill(
    rotated: BaseGeometry, blocker: BaseGeometry, settings: CoverageSettings, lines: Lines, join_m: float
) -> Lines:
    """Add lines over what the photo cells of ``lines`` leave uncovered (beside cut lines)."""
    xa, xb, y, band = lines
    half_t, half_s = settings.trigger_distance_m / 2, settings.spacing_m / 2
    cells = shapely.union_all(shapely.box(xa - half_t, y - half_s, xb + half_t, y + half_s))
    parts = shapely.get_parts(rotated.difference(cells))
    parts = parts[shapely.area(parts) > 0.05 * settings.spacing_m * settings.trigger_distance_m]
    if not len(parts):
        return lines
    extra = [_band_lines(part, blocker, settings, join_m) for part in parts]  # each part has its own bands
    fa, fb, fy = (np.concatenate([e[k] for e in extra]) for k in range(3))
    nearest = np.abs(fy[:, None] - y[None, :]).argmin(axis=1)
    return (
        np.concatenate([xa, fa]),
        np.concatenate([xb, fb]),
        np.concatenate([y, fy]),
        np.concatenate([band, band[nearest]]),
    )


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
    xa: Array, xb: Array, y: Array, band: npt.NDArray[np.int_], blocker: BaseGeometry | None, join_m: float
) -> Lines:
    """Join pieces of one line whose gap is at most ``join_m`` (and free of keep-out): one leg instead of two."""
    if len(xa) < 2:
        return xa, xb, y, band
    order = np.lexsort((xa, band))
    xa, xb, y, band = xa[order], xb[order], y[order], band[order]
    gap = xa[1:] - xb[:-1]
    join = (band[1:] == band[:-1]) & (gap <= join_m)
    if blocker is not None and join.any():
        idx = np.flatnonzero(join)
        gaps = shapely.linestrings(
            np.stack([np.column_stack([xb[idx], y[idx]]), np.column_stack([xa[idx + 1], y[idx]])], axis=1)
        )
        join[idx[shapely.intersects(gaps, blocker)]] = False
    starts = np.concatenate([[True], ~join])
    first = np.flatnonzero(starts)
    ends = np.maximum.reduceat(xb, first)
    return xa[first], ends, y[first], band[first]


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


def _leg(points: Array, band: int) -> Leg:
    e, s, n, x = ((float(p[0]), float(p[1])) for p in points)
    return Leg(e, s, n, x, band)


def _rotate(points: Array, angle_deg: float, centre: XY) -> Array:
    a = math.radians(angle_deg)
    rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    rotated: Array = (points - np.asarray(centre)) @ rotation + np.asarray(centre)
    return rotated


def order_legs(legs: Sequence[Leg], home_xy: XY) -> list[Leg]:
    """Order and orient legs: start at the outermost band's end nearest home, then always the nearest leg.

    On a convex area this is the usual back-and-forth (boustrophedon); on a concave one it finishes one lobe
    before crossing to the next instead of flying across the gap on every line.
    """
    if not legs:
        return []
    ends = np.array([[leg.entry, leg.exit] for leg in legs])  # (m, 2 ends, 2)
    bands = np.array([leg.band for leg in legs])
    outer = (bands == bands.min()) | (bands == bands.max())
    to_home = np.linalg.norm(ends - np.asarray(home_xy), axis=2)
    to_home[~outer] = np.inf
    first, side = np.unravel_index(int(np.argmin(to_home)), to_home.shape)
    return _greedy(legs, ends, bands, int(first), int(side))


def _greedy(
    legs: Sequence[Leg], ends: Array, bands: npt.NDArray[np.int_], first: int, side: int
) -> list[Leg]:
    visited = np.zeros(len(legs), dtype=bool)
    ordered: list[Leg] = []
    current, enter = first, side
    while True:
        visited[current] = True
        leg = legs[current] if enter == 0 else legs[current].reversed()
        ordered.append(leg)
        if visited.all():
            return ordered
        dist = np.linalg.norm(ends - np.asarray(leg.exit), axis=2)
        dist += 1e-3 * np.abs(bands - leg.band)[:, None]  # ties go to the nearest band
        dist[visited] = np.inf
        current, enter = (int(v) for v in np.unravel_index(int(np.argmin(dist)), dist.shape))


def route_time_s(legs: Sequence[Leg], home_xy: XY, settings: CoverageSettings) -> float:
    """Estimated time to fly the legs in order from and back to home (straight transits, a stop per turn)."""
    if not legs:
        return math.inf
    distance = sum(leg.length_m for leg in legs)
    distance += sum(math.dist(a.exit, b.entry) for a, b in itertools.pairwise(legs))
    distance += math.dist(home_xy, legs[0].entry) + math.dist(legs[-1].exit, home_xy)
    return distance / settings.cruise_speed_m_s + settings.turn_s * 2 * len(legs)


def _assemble(
    legs: Sequence[Leg], angle_deg: float, obstacles: Obstacles, settings: CoverageSettings
) -> CoveragePath:
    vertices: list[XY] = []
    photo: list[bool] = []
    for i, leg in enumerate(legs):
        if i:
            via = detour(vertices[-1], leg.entry, obstacles)
            for point in via[1:]:
                vertices.append(point)
                photo.append(False)
        else:
            vertices.append(leg.entry)
        for point, shoots in ((leg.start, False), (leg.end, True), (leg.exit, False)):
            vertices.append(point)
            photo.append(shoots)
    return _dedupe(vertices, photo, angle_deg, settings.spacing_m, tuple(legs))


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
    return shapely.union_all(np.concatenate(cells)) if cells else Polygon()


def path_length_m(vertices: Sequence[XY]) -> float:
    """Length of a polyline in metres."""
    return float(sum(math.dist(a, b) for a, b in itertools.pairwise(vertices)))


def legs_through(vertices: Sequence[XY], zones: Sequence[BaseGeometry]) -> int:
    """How many straight segments of a polyline enter the interior of any zone (0 for a safe route)."""
    obstacles = Obstacles(zones, 0.0)
    lines = np.array([LineString([a, b]) for a, b in itertools.pairwise(vertices) if a != b], dtype=object)
    return int(obstacles.blocked(lines).sum())
