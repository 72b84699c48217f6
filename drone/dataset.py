"""A synthetic YOLO detection dataset from the simulated camera: images plus exact labels for every class.

Layout (what ultralytics and most YOLO tools read)::

    DIR/data.yaml                 class names; train/val image folders relative to DIR (written last)
    DIR/images/{train,val}/*.jpg
    DIR/labels/{train,val}/*.txt  one ``class cx cy w h`` line per object, normalised to 0–1

Train and validation images come from two worlds planted with different seeds over the same district, so no
planted object appears in both splits. Views vary: altitude 60–100 m, any heading, a share of oblique frames.
Images are tiles of the simulator's 1080p video camera (same pixels per metre), the size the detector's sliced
inference sees.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np

from drone.model import Camera, Pose
from drone.simcam import RenderedFrame, SimCamera, TruthBox
from drone.world import CLASS_NAMES, World, build_world
from gis.model import District

SPLITS = ("train", "val")
_MIN_BOX_PX = 3.0


class DatasetError(ValueError):
    """The dataset cannot be written (bad settings, output folder in use)."""


@dataclass(frozen=True)
class DatasetSettings:
    """How many images and which views.

    Args:
        images: total images (train + val).
        val_fraction: share of validation images.
        image_px: side of the square images, cut from the video camera's sensor at its pixel scale.
        altitude_m: range of flight altitudes above ground.
        oblique_fraction: share of oblique views (gimbal pitch within ``oblique_pitch_deg``).
        oblique_pitch_deg: range of oblique gimbal pitches.
        background_fraction: share of views centred anywhere rather than on a planted object.
        seed: drives worlds and views; same district and seed, same dataset.
    """

    images: int = 200
    val_fraction: float = 0.2
    image_px: int = 640
    altitude_m: tuple[float, float] = (60.0, 100.0)
    oblique_fraction: float = 0.25
    oblique_pitch_deg: tuple[float, float] = (-70.0, -45.0)
    background_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.images < 2:
            raise DatasetError(f"images must be at least 2 (one train, one val), got {self.images}")
        if not 0 < self.val_fraction < 1:
            raise DatasetError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if not 32 <= self.image_px <= 4096:
            raise DatasetError(f"image_px must be 32–4096, got {self.image_px}")
        low, high = self.altitude_m
        if not 0 < low <= high:
            raise DatasetError(f"altitude range must satisfy 0 < low <= high, got {low}–{high}")

    def split_sizes(self) -> dict[str, int]:
        val = min(self.images - 1, max(1, round(self.images * self.val_fraction)))
        return {"train": self.images - val, "val": val}


def tile_camera(video: Camera, image_px: int) -> Camera:
    """A square ``image_px`` camera with the same focal length in pixels as ``video`` (a crop of its sensor)."""
    mm_per_px = video.sensor_width_mm / video.image_width_px
    return Camera(
        name=f"{video.name} tile {image_px}",
        sensor_width_mm=mm_per_px * image_px,
        sensor_height_mm=mm_per_px * image_px,
        focal_length_mm=video.focal_length_mm,
        image_width_px=image_px,
        image_height_px=image_px,
    )


def make_dataset(
    district: District,
    zones: Mapping[str, gpd.GeoDataFrame],
    video: Camera,
    output: Path,
    settings: DatasetSettings,
) -> dict[str, Counter[str]]:
    """Render the dataset into ``output`` (which must not exist or be empty).

    Returns:
        Objects labelled per split and class.

    Raises:
        DatasetError: ``output`` holds files already.
    """
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise DatasetError(f"{output}: exists and is not an empty folder; choose a new one (输出目录非空)")
    camera = tile_camera(video, settings.image_px)
    counts: dict[str, Counter[str]] = {}
    for offset, (split, size) in enumerate(settings.split_sizes().items()):
        world = build_world(district, zones, seed=settings.seed * 2 + offset)
        counts[split] = _render_split(world, camera, output, split, size, settings)
    _write_yaml(output / "data.yaml")
    return counts


def _render_split(
    world: World, camera: Camera, output: Path, split: str, size: int, settings: DatasetSettings
) -> Counter[str]:
    images = output / "images" / split
    labels = output / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    sim = SimCamera(world, camera)
    rng = np.random.default_rng([settings.seed, SPLITS.index(split)])
    counts: Counter[str] = Counter()
    for index in range(size):
        pose = _random_pose(world, camera, rng, settings)
        rendered = sim.render(pose, seed=int(rng.integers(0, 2**31)))
        name = f"{split}_{settings.seed}_{index:05d}"
        _write_sample(rendered, images / f"{name}.jpg", labels / f"{name}.txt")
        counts.update(b.class_name for b in _usable(rendered.boxes))
    return counts


def _random_pose(world: World, camera: Camera, rng: np.random.Generator, settings: DatasetSettings) -> Pose:
    heading = float(rng.uniform(0.0, 360.0))
    oblique = rng.random() < settings.oblique_fraction
    pitch = float(rng.uniform(*settings.oblique_pitch_deg)) if oblique else float(rng.uniform(-90.0, -86.0))
    height_m = float(rng.uniform(*settings.altitude_m))
    spread_m = 0.15 * camera.footprint_m(height_m)[1]  # the target stays well inside the frame
    target, base_m = _target(world, rng, settings.background_fraction, spread_m)
    # over a tall roof the drone keeps the same height above the roof as it would above the ground
    altitude = height_m + base_m
    # stand back from the target so the optical axis meets its plane on it
    back = (altitude - base_m) / math.tan(math.radians(-pitch))
    east = target[0] - back * math.sin(math.radians(heading))
    north = target[1] - back * math.cos(math.radians(heading))
    lon, lat = world.to_wgs84(east, north)
    return Pose(
        lat_deg=lat, lon_deg=lon, altitude_agl_m=altitude, gimbal_yaw_deg=heading, gimbal_pitch_deg=pitch
    )


def _target(
    world: World, rng: np.random.Generator, background_fraction: float, spread_m: float
) -> tuple[tuple[float, float], float]:
    """A point to look at, and the height of the surface it lies on."""
    if world.objects and rng.random() >= background_fraction:
        # a class first, then one of its objects: rare classes are framed as often as parked cars
        classes = sorted({o.class_name for o in world.objects})
        chosen = classes[int(rng.integers(0, len(classes)))]
        candidates = [o for o in world.objects if o.class_name == chosen]
        obj = candidates[int(rng.integers(0, len(candidates)))]
        centre = obj.footprint.centroid
        dx, dy = (float(v) for v in rng.normal(0.0, spread_m, 2))
        return (centre.x + dx, centre.y + dy), obj.base_height_m
    x0, y0, x1, y1 = world.area.bounds
    return (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))), 0.0


def _usable(boxes: tuple[TruthBox, ...]) -> list[TruthBox]:
    return [
        b for b in boxes if min(b.box_xyxy[2] - b.box_xyxy[0], b.box_xyxy[3] - b.box_xyxy[1]) >= _MIN_BOX_PX
    ]


def yolo_lines(boxes: tuple[TruthBox, ...], width_px: int, height_px: int) -> list[str]:
    """YOLO label lines (class index in :data:`CLASS_NAMES`, normalised centre and size) of usable boxes."""
    lines = []
    for b in _usable(boxes):
        x0, y0, x1, y1 = b.box_xyxy
        cx, cy = (x0 + x1) / 2 / width_px, (y0 + y1) / 2 / height_px
        w, h = (x1 - x0) / width_px, (y1 - y0) / height_px
        lines.append(f"{CLASS_NAMES.index(b.class_name)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def _write_sample(rendered: RenderedFrame, image_path: Path, label_path: Path) -> None:
    height, width = rendered.image.shape[:2]
    if not cv2.imwrite(str(image_path), rendered.image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise DatasetError(f"{image_path}: could not write the image")
    lines = yolo_lines(rendered.boxes, width, height)
    label_path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _write_yaml(path: Path) -> None:
    """``data.yaml`` without ``path``: YOLO tools then resolve the folders against the file's own folder."""
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASS_NAMES))
    text = f"train: images/train\nval: images/val\nnc: {len(CLASS_NAMES)}\nnames:\n{names}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
