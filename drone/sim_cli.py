"""``skygrid simulate-patrol`` and ``skygrid make-dataset``: the simulated world for the detector."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import geopandas as gpd
    from shapely.geometry.base import BaseGeometry

    from drone.model import Camera
    from drone.simcam import TruthBox
    from gis.model import District, GridPlan

#: Simulated patrols start at 09:00 China Standard Time on a fixed day, so a seed always gives the same files.
PATROL_START = datetime(2026, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))
#: The world reaches this far beyond the patrolled grids, so frames over the grid edges see planted objects.
WORLD_MARGIN_M = 100.0
#: An object counts as seen by the patrol where its box is at least this many pixels across both ways.
MIN_SIGHTING_PX = 6.0


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


def _read_inputs(district_path: Path) -> tuple[District, dict[str, gpd.GeoDataFrame]]:
    from drone.world import read_zones
    from gis.io import read_district

    return read_district(district_path), read_zones(district_path)


def _grids_area(plan: GridPlan, codes: tuple[str, ...]) -> BaseGeometry:
    """The union of the grids, grown by :data:`WORLD_MARGIN_M`, in WGS-84."""
    import geopandas as gpd
    import shapely

    from drone.geometry import local_enu_crs

    grids = plan.grids[plan.grids["grid_code"].astype(str).isin(codes)].to_crs("EPSG:4326")
    centre = shapely.union_all(grids.geometry.to_numpy()).centroid
    local = grids.to_crs(local_enu_crs(centre.x, centre.y))
    grown = gpd.GeoSeries([local.geometry.buffer(WORLD_MARGIN_M).union_all()], crs=local.crs)
    area: BaseGeometry = grown.to_crs("EPSG:4326").iloc[0]
    return area


@click.command("simulate-patrol")
@click.argument("district_path", metavar="DISTRICT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--plan", "plan_path", type=click.Path(exists=True, path_type=Path), required=True, help="Plan .gpkg."
)
@click.option("--grid", "grid_codes", multiple=True, required=True, help="Grid code to patrol (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Same inputs and seed, same world and frames.")
@click.option("--altitude-m", default=80.0, show_default=True, help="Flight altitude above ground (m).")
@click.option(
    "--camera", "camera_key", default="mavic3e", show_default=True, help="Camera preset or custom spec."
)
@click.option("--frame-width-px", default=1920, show_default=True, help="Width of the 16:9 video frames.")
@click.option(
    "--gimbal-pitch-deg",
    default=-90.0,
    show_default=True,
    help="Camera pitch (-90 straight down, e.g. -60 oblique).",
)
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder."
)
def simulate_patrol(
    district_path: Path,
    plan_path: Path,
    grid_codes: tuple[str, ...],
    seed: int,
    altitude_m: float,
    camera_key: str,
    frame_width_px: int,
    gimbal_pitch_deg: float,
    output: Path,
) -> None:
    """Fly a planned patrol over grids of DISTRICT on the simulator.

    Writes the frames with their poses (frames.jsonl, images/), truth.gpkg (layer objects: every planted object
    the patrol saw, with category_code, violation and sightings) and labels/ (YOLO boxes of every frame).
    """
    from drone.cameras import parse_camera
    from drone.framedir import FrameDirError
    from drone.simsource import video_camera
    from gis.errors import GisError

    if output.exists() and any(output.iterdir()):
        raise click.ClickException(f"{output}: folder is not empty; choose a new one (输出目录非空)")
    try:
        camera = parse_camera(camera_key).camera
        if not -90.0 <= gimbal_pitch_deg <= -20.0:
            raise ValueError(f"--gimbal-pitch-deg must be within -90..-20, got {gimbal_pitch_deg}")
        patrol = _Patrol(grid_codes, seed, altitude_m, gimbal_pitch_deg, video_camera(camera, frame_width_px))
        frames, seen = _fly_patrol(district_path, plan_path, camera, patrol, output)
    except (
        GisError,
        FrameDirError,
        KeyError,
        ValueError,
    ) as error:  # planner and world errors are ValueErrors
        raise _fail(error) from error
    violations = Counter(code for code, violation in seen.values() if violation)
    click.echo(
        f"wrote {frames} frames and {output / 'truth.gpkg'}: {len(seen)} objects seen, "
        f"violations by category {dict(sorted(violations.items()))}"
    )


@dataclass(frozen=True)
class _Patrol:
    grid_codes: tuple[str, ...]
    seed: int
    altitude_m: float
    gimbal_pitch_deg: float
    video: Camera


def _fly_patrol(
    district_path: Path, plan_path: Path, camera: Camera, patrol: _Patrol, output: Path
) -> tuple[int, dict[str, tuple[str, bool]]]:
    """Plan, fly and record; returns the frames written and (category, violation) of each object seen."""
    from drone.framedir import write_frame_dir
    from drone.planner import MissionSettings, plan_grids
    from drone.simsource import SimFrameSource, mission_poses
    from drone.world import build_world, write_truth
    from gis.io import read_plan

    district, zones = _read_inputs(district_path)
    plan = read_plan(plan_path)
    settings = MissionSettings(camera=camera, altitude_m=patrol.altitude_m)
    mission = plan_grids(plan, patrol.grid_codes, settings=settings, buildings=district.buildings)
    area = _grids_area(plan, patrol.grid_codes)
    world = build_world(district, zones, seed=patrol.seed, area_wgs84=area)
    poses = mission_poses(mission, start=PATROL_START, gimbal_pitch_deg=patrol.gimbal_pitch_deg)
    source = SimFrameSource(world, patrol.video, poses, seed=patrol.seed)
    stats = write_frame_dir(source, output)
    seen = Counter(
        box.object_id
        for boxes in source.truth.values()
        for box in boxes
        if min(box.box_xyxy[2] - box.box_xyxy[0], box.box_xyxy[3] - box.box_xyxy[1]) >= MIN_SIGHTING_PX
    )
    _write_frame_labels(source.truth, patrol.video, output / "labels")
    write_truth(world, output / "truth.gpkg", sightings=seen)
    return stats.frames, {
        o.object_id: (o.category_code, o.violation) for o in world.objects if o.object_id in seen
    }


def _write_frame_labels(truth: Mapping[str, tuple[TruthBox, ...]], video: Camera, folder: Path) -> None:
    """YOLO labels of every frame (``labels/<frame_id>.txt``, classes in ``labels/classes.txt``)."""
    from drone.dataset import yolo_lines
    from drone.world import CLASS_NAMES

    folder.mkdir(parents=True, exist_ok=True)
    _write_text(folder / "classes.txt", "".join(f"{name}\n" for name in CLASS_NAMES))
    for frame_id, boxes in truth.items():
        lines = yolo_lines(boxes, video.image_width_px, video.image_height_px)
        _write_text(folder / f"{frame_id}.txt", "".join(f"{line}\n" for line in lines))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@click.command("make-dataset")
@click.argument("district_path", metavar="DISTRICT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder."
)
@click.option("--images", default=200, show_default=True, help="Images in all (train + val).")
@click.option("--seed", default=0, show_default=True, help="Same district and seed, same dataset.")
@click.option("--val-fraction", default=0.2, show_default=True, help="Share of validation images.")
@click.option("--image-px", default=640, show_default=True, help="Side of the square images.")
@click.option(
    "--camera", "camera_key", default="mavic3e", show_default=True, help="Camera preset or custom spec."
)
def make_dataset(
    district_path: Path,
    output: Path,
    images: int,
    seed: int,
    val_fraction: float,
    image_px: int,
    camera_key: str,
) -> None:
    """Render a synthetic YOLO dataset (images, labels, data.yaml) of every detector class over DISTRICT."""
    from drone.cameras import parse_camera
    from drone.dataset import DatasetSettings
    from drone.dataset import make_dataset as render_dataset
    from drone.simsource import video_camera
    from gis.errors import GisError

    try:
        settings = DatasetSettings(images=images, val_fraction=val_fraction, image_px=image_px, seed=seed)
        video = video_camera(parse_camera(camera_key).camera)
        district, zones = _read_inputs(district_path)
        counts = render_dataset(district, zones, video, output, settings)
    except (GisError, KeyError, ValueError) as error:
        raise _fail(error) from error
    for split, classes in counts.items():
        click.echo(f"{split}: {settings.split_sizes()[split]} images, labels {dict(sorted(classes.items()))}")
    click.echo(f"wrote {output / 'data.yaml'}")


COMMANDS: list[click.Command] = [simulate_patrol, make_dataset]
