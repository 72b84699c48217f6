"""A simulated camera: the frame a nadir or oblique camera sees of a :class:`~drone.world.World` at a pose.

Every surface is a polygon in the world's ENU frame at a known height (ground layers at 0, roofs and object
tops at their heights, walls as vertical quads). Each polygon is moved into camera axes with the pose → camera
model of :mod:`drone.geometry`, clipped against the near plane and the image's surroundings, projected with the
pinhole matrix and filled with OpenCV (sub-pixel ``fillPoly``), far to near. Only what the frustum sees is
drawn: layers are culled with an STR-tree against the visible ground region.

Planted objects are also drawn into a label mask, with occluders (buildings, trees) drawn over them as 0, so
each frame's ground-truth boxes are the bounding boxes of the pixels where an object really shows.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from drone.geometry import camera_rotation, pixel_rays
from drone.model import Camera, Pose
from drone.world import PlantedObject, World

FloatArray = npt.NDArray[np.float64]
Image = npt.NDArray[np.uint8]
Colour = tuple[int, int, int]

SKY: Colour = (225, 205, 185)
GROUND: Colour = (128, 138, 140)
_SURFACE_COLOURS: tuple[tuple[str, Colour], ...] = (
    ("compounds", (158, 164, 166)),
    ("water", (110, 95, 60)),
    ("roads", (78, 80, 84)),
    ("green", (62, 122, 78)),
    ("public_space", (172, 178, 188)),
    ("fire_lanes", (112, 114, 120)),
    ("parking", (96, 98, 102)),
)
_FIRE_LANE_LINE: Colour = (30, 200, 235)
#: the surface each kind of painted line lies on
_PAINTED_ON: dict[str, tuple[str, ...]] = {"roads": ("lane", "centre"), "parking": ("stall",)}
_MARKING_COLOURS: dict[str, Colour] = {
    "stall": (235, 235, 235),
    "lane": (225, 225, 225),
    "centre": (40, 190, 225),
}
_ROAD_EDGE: Colour = (200, 200, 200)
_TREE: Colour = (38, 92, 48)
#: surface: (m² per blotch, blotch radius range in metres, brightness spread)
_TEXTURE: dict[str, tuple[float, tuple[float, float], float]] = {
    "compounds": (90.0, (1.0, 4.0), 4.5),
    "roads": (220.0, (0.8, 3.0), 4.0),
    "green": (20.0, (0.6, 2.5), 8.0),
    "public_space": (45.0, (0.4, 1.6), 6.0),
}
_TEXTURE_RANGE = 2.0  # × altitude
_DARK_GLASS: Colour = (52, 46, 40)
_SHIFT = 4  # fillPoly sub-pixel bits
_NEAR_M = 0.5
_CULL_MARGIN_M = 120.0
_BORDER_SAMPLES = 24
_NOISE_PAD = 64


@dataclass(frozen=True)
class TruthBox:
    """One planted object as it shows in a frame: pixel box (x1, y1, x2, y2; exclusive right/bottom)."""

    object_id: str
    class_name: str
    box_xyxy: tuple[float, float, float, float]
    visible_fraction: float  # share of the object's full silhouette that shows (occlusion, frame edges)


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """The image (H×W×3 uint8 BGR) and the ground truth of the objects that show in it."""

    image: Image
    boxes: tuple[TruthBox, ...]


@dataclass(frozen=True)
class _Part:
    """A flat coloured polygon on an object's top, in the world's ENU metres."""

    polygon: Polygon
    colour: Colour


class SimCamera:
    """Renders frames of one world through one camera.

    Args:
        world: what to render.
        camera: intrinsics and image size.
        max_range_m: how far (horizontally) ground detail is drawn in oblique views; beyond it the ground is plain.
        noise_sigma: standard deviation of the sensor noise added to every frame (0 for none).
        min_visible: smallest visible share of an object for it to get a ground-truth box.
    """

    def __init__(
        self,
        world: World,
        camera: Camera,
        *,
        max_range_m: float = 400.0,
        noise_sigma: float = 3.0,
        min_visible: float = 0.3,
    ) -> None:
        self.world = world
        self.camera = camera
        self.max_range_m = max_range_m
        self.noise_sigma = noise_sigma
        self.min_visible = min_visible
        self._surfaces = {name: world.surfaces[name].geometry.to_numpy() for name, _ in _SURFACE_COLOURS}
        self._surface_trees = {name: shapely.STRtree(geoms) for name, geoms in self._surfaces.items()}
        self._patches = {name: _Patches.make(world, name, colour) for name, colour in _SURFACE_COLOURS}
        self._markings = world.markings.geometry.to_numpy()
        self._marking_kinds = world.markings["kind"].to_numpy(dtype=str)
        self._marking_colours = [_MARKING_COLOURS[kind] for kind in self._marking_kinds]
        self._marking_tree = shapely.STRtree(self._markings)
        self._buildings = world.buildings.geometry.to_numpy()
        self._building_tree = shapely.STRtree(self._buildings)
        roofs = world.buildings[["roof_b", "roof_g", "roof_r"]].to_numpy(int)
        self._roof_colours: list[Colour] = [(int(b), int(g), int(r)) for b, g, r in roofs]
        self._heights = world.buildings["height_m"].to_numpy(float)
        self._roof_details: dict[int, list[_Part]] = {}
        self._tree_heights = world.trees["height_m"].to_numpy(float)
        self._trees = world.trees.geometry.to_numpy()
        self._tree_tree = shapely.STRtree(self._trees)
        self._objects = world.objects
        self._object_tree = shapely.STRtree([o.footprint for o in world.objects])
        self._object_parts: dict[int, list[_Part]] = {}
        self._noise = _noise_field(camera, noise_sigma, world.seed)

    def render(self, pose: Pose, *, seed: int = 0) -> RenderedFrame:
        """Render the frame seen at ``pose``; ``seed`` drives the sensor noise and exposure only."""
        view = _View(pose, self.camera, self.world.to_local(pose.lon_deg, pose.lat_deg))
        canvas = _Canvas(view)
        canvas.background()
        region = view.visible_region(self.max_range_m)
        self._draw_ground(canvas, region)
        cull = region.buffer(_CULL_MARGIN_M)
        building_ids = self._building_tree.query(cull, predicate="intersects")
        object_ids = self._object_tree.query(cull, predicate="intersects")
        ground_objects = [i for i in object_ids if self._objects[i].base_height_m == 0]
        for i in sorted(ground_objects, key=lambda i: -view.distance(self._objects[i].footprint)):
            self._draw_object(canvas, int(i))
        for i in self._tree_tree.query(region.buffer(5.0), predicate="intersects"):
            canvas.prism(self._trees[i], 0.0, float(self._tree_heights[i]), _TREE, label=0, walls=False)
        roof_objects = [int(i) for i in object_ids if self._objects[i].base_height_m > 0]
        for i in sorted(building_ids, key=lambda i: -view.distance(self._buildings[i])):
            self._draw_building(canvas, int(i), roof_objects)
        image = _finish(canvas.image, seed, self._noise)
        return RenderedFrame(image, tuple(self._truth(canvas, view, [int(i) for i in object_ids])))

    def _draw_ground(self, canvas: _Canvas, region: Polygon) -> None:
        view = canvas.view
        line_px = max(1, round(0.15 * view.px_per_m_near))
        # blotches only where they span a few pixels: out to a few altitudes from the nadir point
        near = region.intersection(shapely.Point(view.centre[:2]).buffer(_TEXTURE_RANGE * view.centre[2]))
        for name, colour in _SURFACE_COLOURS:
            ids = self._surface_trees[name].query(region, predicate="intersects")
            clipped = shapely.intersection(self._surfaces[name][ids], region)
            for geom in clipped:
                canvas.ground(geom, colour)
            self._patches[name].draw(canvas, near)
            if name == "fire_lanes":
                for geom in clipped:
                    canvas.ground_outline(geom, _FIRE_LANE_LINE, line_px)
            elif name == "roads" and len(clipped):
                # the kerb line runs round the road network, not across junctions
                canvas.ground_outline(shapely.union_all(clipped), _ROAD_EDGE, line_px)
            self._draw_markings(canvas, region, _PAINTED_ON.get(name, ()), line_px)

    def _draw_markings(self, canvas: _Canvas, region: Polygon, kinds: tuple[str, ...], line_px: int) -> None:
        """Painted lines of ``kinds``, drawn right after their surface so that later surfaces cover them."""
        if not kinds:
            return
        ids = self._marking_tree.query(region, predicate="intersects")
        ids = ids[np.isin(self._marking_kinds[ids], kinds)]
        for i, line in zip(ids, shapely.intersection(self._markings[ids], region), strict=True):
            canvas.ground_lines(line, self._marking_colours[int(i)], line_px)

    def _draw_object(self, canvas: _Canvas, index: int) -> None:
        obj = self._objects[index]
        top = obj.base_height_m + obj.height_m
        canvas.prism(obj.footprint, obj.base_height_m, top, obj.colour_bgr, label=index + 1)
        if index not in self._object_parts:
            self._object_parts[index] = _object_parts(obj, self.world.seed)
        for part in self._object_parts[index]:
            canvas.flat(part.polygon, top + 0.01, part.colour, label=index + 1)

    def _draw_building(self, canvas: _Canvas, index: int, roof_objects: list[int]) -> None:
        colour = self._roof_colours[index]
        height = float(self._heights[index])
        footprint = self._buildings[index]
        canvas.prism(footprint, 0.0, height, colour, label=0)
        if index not in self._roof_details:
            self._roof_details[index] = _roof_details(footprint, colour, index, self.world.seed)
        for detail in self._roof_details[index]:
            canvas.flat(detail.polygon, height + 0.01, detail.colour, label=0)
        for i in roof_objects:
            if footprint.intersects(self._objects[i].footprint):
                self._draw_object(canvas, i)

    def _truth(self, canvas: _Canvas, view: _View, candidates: list[int]) -> list[TruthBox]:
        boxes = []
        for index in sorted(candidates):
            obj = self._objects[index]
            full_area, bounds = view.silhouette(obj)
            if full_area <= 0 or bounds is None:
                continue
            x0, y0, x1, y1 = bounds
            window = canvas.labels[y0:y1, x0:x1] == index + 1
            shown = int(window.sum())
            if shown == 0 or shown < self.min_visible * full_area:
                continue
            rows = np.flatnonzero(window.any(axis=1))
            cols = np.flatnonzero(window.any(axis=0))
            xyxy = (
                float(x0 + cols[0]),
                float(y0 + rows[0]),
                float(x0 + cols[-1] + 1),
                float(y0 + rows[-1] + 1),
            )
            boxes.append(TruthBox(obj.object_id, obj.class_name, xyxy, min(1.0, shown / full_area)))
        return boxes


@dataclass(frozen=True)
class _Patches:
    """Blotches a shade lighter or darker than their surface (worn grass, stains, repairs), fixed in the world."""

    shapes: npt.NDArray[np.object_]
    colours: tuple[Colour, ...]
    tree: shapely.STRtree

    @classmethod
    def make(cls, world: World, name: str, colour: Colour) -> _Patches:
        m2_per_patch, (r_low, r_high), jitter = _TEXTURE.get(name, (0.0, (0.0, 0.0), 0.0))
        surface = shapely.union_all(world.surfaces[name].geometry.to_numpy())
        rng = np.random.default_rng([world.seed, 23, len(name)])
        if m2_per_patch <= 0 or surface.is_empty:
            return cls(np.empty(0, dtype=object), (), shapely.STRtree([]))
        x0, y0, x1, y1 = surface.bounds
        count = int(rng.poisson((x1 - x0) * (y1 - y0) / m2_per_patch))
        xy = rng.uniform((x0, y0), (x1, y1), size=(count, 2))
        xy = xy[shapely.contains_xy(surface, xy[:, 0], xy[:, 1])]
        circles = shapely.buffer(shapely.points(xy), rng.uniform(r_low, r_high, len(xy)), quad_segs=3)
        shapely.prepare(surface)
        spill = ~shapely.contains(surface, circles)  # only blotches at a surface's edge need clipping
        shapes = circles.copy()
        shapes[spill] = shapely.intersection(circles[spill], surface)
        shades = rng.normal(0.0, jitter, len(xy))
        colours = tuple(_shade(colour, float(d)) for d in shades)
        return cls(shapes, colours, shapely.STRtree(shapes))

    def draw(self, canvas: _Canvas, region: Polygon) -> None:
        for i in self.tree.query(region, predicate="intersects"):
            canvas.ground(self.shapes[i], self.colours[int(i)])


def _shade(colour: Colour, delta: float) -> Colour:
    b, g, r = (min(255, max(0, int(c + delta))) for c in colour)
    return (b, g, r)


class _View:
    """One pose's camera: ENU → pixel projection with near-plane clipping, and the ground it sees."""

    def __init__(self, pose: Pose, camera: Camera, origin_enu_m: tuple[float, float]) -> None:
        self.pose = pose
        self.camera = camera
        self.width, self.height = camera.image_width_px, camera.image_height_px
        self.rotation = camera_rotation(pose)
        self.centre = np.array([origin_enu_m[0], origin_enu_m[1], pose.altitude_agl_m])
        self.k = camera.intrinsics()
        self.px_per_m_near = float(self.k[0, 0]) / max(pose.altitude_agl_m, 1.0)

    def to_camera(self, points_enu: FloatArray) -> FloatArray:
        result: FloatArray = (points_enu - self.centre) @ self.rotation.T
        return result

    def project(self, ring_enu: FloatArray) -> FloatArray | None:
        """Array-index pixel coordinates of a closed 3-D ring (N×3), clipped; None when nothing is in view."""
        cam = self.to_camera(ring_enu)
        if cam[:, 2].min() < _NEAR_M:
            cam = _clip(cam, np.array([0.0, 0.0, 1.0]), _NEAR_M)
            if len(cam) < 2:
                return None
        uv = cam @ self.k.T
        pixels = uv[:, :2] / uv[:, 2:3] - 0.5  # continuous pixel → array index of pixel centres
        low, high = pixels.min(axis=0), pixels.max(axis=0)
        if (
            low[0] >= -self.width
            and low[1] >= -self.height
            and high[0] <= 2 * self.width
            and high[1] <= 2 * self.height
        ):
            return pixels
        for normal, offset in self._image_planes():
            pixels = _clip(pixels, normal, offset)
            if len(pixels) < 2:
                return None
        return pixels

    def _image_planes(self) -> tuple[tuple[FloatArray, float], ...]:
        w, h = float(self.width), float(self.height)
        return (
            (np.array([1.0, 0.0]), -w),
            (np.array([-1.0, 0.0]), -2.0 * w),
            (np.array([0.0, 1.0]), -h),
            (np.array([0.0, -1.0]), -2.0 * h),
        )

    def visible_region(self, max_range_m: float) -> Polygon:
        """The ground (z = 0) the image sees, out to ``max_range_m`` from the camera's nadir point."""
        w, h = self.width, self.height
        t = np.linspace(0.0, 1.0, _BORDER_SAMPLES, endpoint=False)
        border = np.concatenate(
            [
                np.column_stack([t * w, np.zeros_like(t)]),
                np.column_stack([np.full_like(t, w), t * h]),
                np.column_stack([(1 - t) * w, np.full_like(t, h)]),
                np.column_stack([np.zeros_like(t), (1 - t) * h]),
            ]
        )
        rays = pixel_rays(border, self.pose, self.camera)
        horizontal = np.hypot(rays[:, 0], rays[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = np.where(rays[:, 2] < 0, self.centre[2] * horizontal / -rays[:, 2], np.inf)
        reach = np.minimum(reach, max_range_m)
        keep = horizontal > 1e-9
        scale = np.where(keep, reach / np.where(keep, horizontal, 1.0), 0.0)
        points = self.centre[:2] + rays[:, :2] * scale[:, None]
        hull = shapely.MultiPoint(np.vstack([points, self.centre[:2]])).convex_hull
        disk = shapely.Point(self.centre[:2]).buffer(max_range_m, quad_segs=16)
        region: Polygon = shapely.intersection(hull, disk).buffer(1.0)
        return region

    def distance(self, geom: BaseGeometry) -> float:
        return float(shapely.distance(shapely.Point(self.centre[:2]), geom.centroid))

    def silhouette(self, obj: PlantedObject) -> tuple[float, tuple[int, int, int, int] | None]:
        """Area (px²) of the object's whole projected prism and its pixel window clipped to the image."""
        ring = np.asarray(obj.footprint.exterior.coords)[:, :2]
        top = obj.base_height_m + obj.height_m
        points = np.vstack([_at(ring, obj.base_height_m), _at(ring, top)])
        cam = self.to_camera(points)
        if np.any(cam[:, 2] <= _NEAR_M):
            return 0.0, None
        uv = cam @ self.k.T
        pixels = (uv[:, :2] / uv[:, 2:3] - 0.5).astype(np.float32)
        area = float(cv2.contourArea(cv2.convexHull(pixels)))
        x0, y0 = np.floor(pixels.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(pixels.max(axis=0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.width), min(y1, self.height)
        if x1 <= x0 or y1 <= y0:
            return area, None
        return area, (int(x0), int(y0), int(x1), int(y1))


class _Canvas:
    """The image and label mask being painted, far to near."""

    def __init__(self, view: _View) -> None:
        self.view = view
        self.image = np.empty((view.height, view.width, 3), np.uint8)
        self.labels = np.zeros((view.height, view.width), np.int32)

    def background(self) -> None:
        """Sky above the horizon, bare ground below it."""
        view = self.view
        a, b, c = (np.linalg.inv(view.k).T @ view.rotation)[:, 2]  # ray ENU z = a·u + b·v + c at pixel (u, v)
        self.image[:] = SKY
        # ground where a·u + b·v + c < 0, with u = x + 0.5 and v = y + 0.5 at array index (x, y)
        w, h = float(view.width), float(view.height)
        corners = np.array([[-1.0, -1.0], [w, -1.0], [w, h], [-1.0, h]])
        ground = _clip(corners, np.array([-a, -b]), c + 0.5 * (a + b))
        if len(ground) >= 3:
            contour = np.round(ground * (1 << _SHIFT)).astype(np.int32)
            cv2.fillPoly(self.image, [contour], GROUND, lineType=cv2.LINE_8, shift=_SHIFT)

    def ground(self, geom: BaseGeometry, colour: Colour) -> None:
        self._fill(_polygon_rings(geom, 0.0), colour, None)

    def ground_outline(self, geom: BaseGeometry, colour: Colour, thickness: int) -> None:
        self._lines(_polygon_rings(geom, 0.0), colour, thickness)

    def ground_lines(self, geom: BaseGeometry, colour: Colour, thickness: int) -> None:
        lines = [
            _at(np.asarray(part.coords)[:, :2], 0.0) for part in shapely.get_parts(geom) if not part.is_empty
        ]
        self._lines(lines, colour, thickness, closed=False)

    def flat(self, polygon: Polygon, height_m: float, colour: Colour, *, label: int) -> None:
        self._fill(_polygon_rings(polygon, height_m), colour, label)

    def prism(
        self,
        footprint: BaseGeometry,
        base_m: float,
        top_m: float,
        colour: Colour,
        *,
        label: int,
        walls: bool = True,
    ) -> None:
        """A vertical prism: the walls that face the camera (shaded), then the top."""
        if walls:
            shade = tuple(int(c * 0.62) for c in colour)
            for part in shapely.get_parts(footprint):
                if not isinstance(part, Polygon):
                    continue
                ring = np.asarray(orient(part, 1.0).exterior.coords)[:, :2]
                for a, b in itertools.pairwise(ring):
                    if self._faces_camera(a, b):
                        quad = np.array([[*a, base_m], [*b, base_m], [*b, top_m], [*a, top_m]])
                        self._fill([quad], (shade[0], shade[1], shade[2]), label)
        self._fill(_polygon_rings(footprint, top_m), colour, label)

    def _faces_camera(self, a: FloatArray, b: FloatArray) -> bool:
        # exterior rings are counter-clockwise (orient); the outward normal of edge a→b is (dy, -dx)
        normal = np.array([b[1] - a[1], a[0] - b[0]])
        return float(normal @ (self.view.centre[:2] - a)) > 0

    def _fill(self, rings: list[FloatArray], colour: Colour, label: int | None) -> None:
        contours = []
        for ring in rings:
            pixels = self.view.project(ring)
            if pixels is not None and len(pixels) >= 3:
                contours.append(np.round(pixels * (1 << _SHIFT)).astype(np.int32))
        if not contours:
            return
        cv2.fillPoly(self.image, contours, colour, lineType=cv2.LINE_8, shift=_SHIFT)
        if label is not None:
            cv2.fillPoly(self.labels, contours, label, lineType=cv2.LINE_8, shift=_SHIFT)

    def _lines(self, rings: list[FloatArray], colour: Colour, thickness: int, *, closed: bool = True) -> None:
        for ring in rings:
            pixels = self.view.project(ring) if closed else _project_open(self.view, ring)
            if pixels is not None:
                contour = np.round(pixels * (1 << _SHIFT)).astype(np.int32)
                cv2.polylines(self.image, [contour], closed, colour, thickness, cv2.LINE_AA, _SHIFT)


def _project_open(view: _View, line: FloatArray) -> FloatArray | None:
    """Array-index pixels of an open line (N×3) wholly in front of the camera; None when any point is not."""
    cam = view.to_camera(line)
    if np.any(cam[:, 2] <= _NEAR_M):
        return None
    uv = cam @ view.k.T
    pixels: FloatArray = uv[:, :2] / uv[:, 2:3] - 0.5
    return pixels


def _clip(points: FloatArray, normal: FloatArray, offset: float) -> FloatArray:
    """Sutherland–Hodgman: the part of the closed polygon ``points`` where ``points @ normal >= offset``."""
    side = points @ normal - offset
    if np.all(side >= 0):
        return points
    if np.all(side < 0):
        return points[:0]
    out = []
    n = len(points)
    for i in range(n):
        j = (i + 1) % n
        if side[i] >= 0:
            out.append(points[i])
        if (side[i] >= 0) != (side[j] >= 0):
            t = side[i] / (side[i] - side[j])
            out.append(points[i] + t * (points[j] - points[i]))
    return np.asarray(out)


def _at(ring_xy: FloatArray, height_m: float) -> FloatArray:
    return np.column_stack([ring_xy, np.full(len(ring_xy), height_m)])


def _polygon_rings(geom: BaseGeometry, height_m: float) -> list[FloatArray]:
    rings = []
    for part in shapely.get_parts(geom):
        if isinstance(part, Polygon) and not part.is_empty:
            rings.append(_at(np.asarray(part.exterior.coords)[:-1, :2], height_m))
            rings.extend(_at(np.asarray(hole.coords)[:-1, :2], height_m) for hole in part.interiors)
    return rings


def _finish(image: Image, seed: int, noise: npt.NDArray[np.int16] | None) -> Image:
    """Slight blur (optics), exposure and sensor noise (a window of ``noise`` at a seeded offset)."""
    rng = np.random.default_rng(seed)
    exposed = cv2.convertScaleAbs(cv2.GaussianBlur(image, (3, 3), 0.7), alpha=float(rng.uniform(0.92, 1.08)))
    if noise is None:
        return np.asarray(exposed, np.uint8)
    h, w = image.shape[:2]
    dy, dx = (int(v) for v in rng.integers(0, _NOISE_PAD, 2))
    window = noise[dy : dy + h, dx : dx + w]
    return np.asarray(cv2.add(exposed, window, dtype=cv2.CV_8U), np.uint8)


def _noise_field(camera: Camera, sigma: float, seed: int) -> npt.NDArray[np.int16] | None:
    """Gaussian sensor noise a little larger than the image, made once per simulated camera."""
    if sigma <= 0:
        return None
    rng = np.random.default_rng([seed, 5])
    shape = (camera.image_height_px + _NOISE_PAD, camera.image_width_px + _NOISE_PAD, 3)
    return (rng.standard_normal(shape, dtype=np.float32) * sigma).astype(np.int16)


def _object_rng(object_id: str, world_seed: int) -> np.random.Generator:
    return np.random.default_rng([world_seed, zlib.crc32(object_id.encode())])


def _local_to_world(shape: Polygon, obj: PlantedObject) -> Polygon:
    centre = obj.footprint.centroid
    rotated = affinity.rotate(shape, -obj.heading_deg, origin=(0.0, 0.0))
    result: Polygon = affinity.translate(rotated, centre.x, centre.y)
    return result


def _object_parts(obj: PlantedObject, world_seed: int) -> list[_Part]:
    """The details on an object's top (windows, seat, ridge, corrugation, pile items) in world ENU."""
    rng = _object_rng(obj.object_id, world_seed)
    length, width = _extent(obj)
    parts = _PART_MAKERS[obj.class_name](length, width, obj.colour_bgr, rng)
    return [_Part(_local_to_world(p, obj), c) for p, c in parts]


def _extent(obj: PlantedObject) -> tuple[float, float]:
    """Length along the heading and width across it."""
    local = affinity.rotate(
        affinity.translate(obj.footprint, -obj.footprint.centroid.x, -obj.footprint.centroid.y),
        obj.heading_deg,
        origin=(0.0, 0.0),
    )
    x0, y0, x1, y1 = local.bounds
    return y1 - y0, x1 - x0


PartList = list[tuple[Polygon, Colour]]


def _car_parts(length: float, width: float, colour: Colour, rng: np.random.Generator) -> PartList:
    lighter = _tint(colour, 1.12)
    half_w = width / 2 - 0.12
    return [
        (box(-half_w, length * 0.12, half_w, length * 0.3), _DARK_GLASS),  # windscreen (front is +y)
        (box(-half_w, length * -0.02, half_w, length * 0.12), lighter),  # roof
        (box(-half_w, length * -0.38, half_w, length * -0.22), _DARK_GLASS),  # rear window
    ]


def _motorbike_parts(length: float, width: float, colour: Colour, rng: np.random.Generator) -> PartList:
    return [
        (box(-width * 0.25, -length * 0.25, width * 0.25, length * 0.15), (25, 25, 25)),  # seat
        (box(-width * 0.55, length * 0.28, width * 0.55, length * 0.34), (60, 60, 60)),  # handlebar
    ]


def _shed_parts(length: float, width: float, colour: Colour, rng: np.random.Generator) -> PartList:
    return [(box(-0.06, -length / 2 + 0.1, 0.06, length / 2 - 0.1), _tint(colour, 0.7))]  # ridge


def _shack_parts(length: float, width: float, colour: Colour, rng: np.random.Generator) -> PartList:
    ribs = []
    stripe = _tint(colour, 1.25)
    for x in np.arange(-width / 2 + 0.2, width / 2 - 0.1, 0.35):
        ribs.append((box(x, -length / 2 + 0.05, x + 0.08, length / 2 - 0.05), stripe))
    return ribs


def _pile_parts(length: float, width: float, colour: Colour, rng: np.random.Generator) -> PartList:
    items: PartList = []
    palette = ((60, 100, 140), (200, 200, 200), (40, 40, 40), (90, 140, 60), (150, 90, 40), (80, 80, 160))
    for _ in range(int(rng.integers(4, 9))):
        cx, cy = rng.uniform(-width * 0.3, width * 0.3), rng.uniform(-length * 0.3, length * 0.3)
        size = rng.uniform(0.2, 0.55, 2)
        item = affinity.rotate(
            box(cx - size[0], cy - size[1], cx + size[0], cy + size[1]), rng.uniform(0, 90)
        )
        items.append((item, palette[int(rng.integers(0, len(palette)))]))
    return items


def _garbage_parts(length: float, width: float, colour: Colour, rng: np.random.Generator) -> PartList:
    bags: PartList = []
    palette = ((20, 20, 20), (225, 225, 225), (60, 130, 50), (170, 110, 40), (40, 40, 120))
    for _ in range(int(rng.integers(5, 11))):
        cx, cy = rng.uniform(-width * 0.3, width * 0.3), rng.uniform(-length * 0.3, length * 0.3)
        bag = shapely.Point(cx, cy).buffer(rng.uniform(0.15, 0.35), quad_segs=3)
        bags.append((bag, palette[int(rng.integers(0, len(palette)))]))
    return bags


_PART_MAKERS = {
    "car": _car_parts,
    "motorbike": _motorbike_parts,
    "shed": _shed_parts,
    "steel_shack": _shack_parts,
    "clutter": _pile_parts,
    "garbage": _garbage_parts,
}


def _tint(colour: Colour, factor: float) -> Colour:
    b, g, r = (min(255, int(c * factor)) for c in colour)
    return (b, g, r)


def _roof_details(footprint: BaseGeometry, colour: Colour, index: int, world_seed: int) -> list[_Part]:
    """A parapet (the roof inside it 0.6 m in, a shade lighter) and a few rooftop boxes (tanks, AC units)."""
    rng = np.random.default_rng([world_seed, 11, index])
    inner = shapely.buffer(footprint, -0.6)
    if inner.is_empty:
        return []
    details = [
        _Part(part, _tint(colour, 1.08)) for part in shapely.get_parts(inner) if isinstance(part, Polygon)
    ]
    x0, y0, x1, y1 = inner.bounds
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        size = rng.uniform(0.5, 1.5)
        unit = box(cx - size, cy - size * 0.6, cx + size, cy + size * 0.6)
        if inner.contains(unit):
            details.append(_Part(unit, (140, 140, 140) if rng.random() < 0.5 else (210, 210, 205)))
    return details
