"""``skygrid mission``: plan patrol missions over grids and write them for the mission tools operators use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from drone.vehicle_cli import MISSION_COMMANDS

if TYPE_CHECKING:
    import geopandas as gpd

FORMATS = (".plan", ".waypoints", ".kmz", ".geojson", ".kml")


@click.group("mission")
def mission() -> None:
    """Drone patrol missions over grids (网格巡查航线): plan them and load them onto a vehicle."""


@mission.command("plan")
@click.argument("plan_path", metavar="PLAN.gpkg", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--grid", "grids", multiple=True, required=True, help="Grid code to patrol (repeat for more).")
@click.option(
    "--camera",
    default="mavic3e",
    show_default=True,
    help="Preset (mavic3e, m30, m350-p1-35, generic-1inch) or SENSOR_WxH_MM:FOCAL_MM:IMAGE_WxH_PX.",
)
@click.option("--altitude-m", type=float, default=80.0, show_default=True, help="Above take-off, ≤ 120.")
@click.option("--front-overlap", type=float, default=0.8, show_default=True)
@click.option("--side-overlap", type=float, default=0.7, show_default=True)
@click.option("--speed-m-s", type=float, default=10.0, show_default=True, help="Cruise speed.")
@click.option(
    "--battery-min", type=float, default=30.0, show_default=True, help="Flight time of one battery."
)
@click.option(
    "--no-fly",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Polygons never to enter (any vector file).",
)
@click.option(
    "--buildings",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Buildings with height_m or floors (e.g. the district GeoPackage): towers near the flight become holes.",
)
@click.option("--home", help="Take-off point LON,LAT (WGS-84); default a point inside the first grid.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help=f"Mission file; format by extension: {', '.join(FORMATS)}.",
)
def plan_command(
    plan_path: Path,
    grids: tuple[str, ...],
    camera: str,
    altitude_m: float,
    front_overlap: float,
    side_overlap: float,
    speed_m_s: float,
    battery_min: float,
    no_fly: Path | None,
    buildings: Path | None,
    home: str | None,
    output: Path,
) -> None:
    """Plan a coverage patrol over grids of PLAN.gpkg and write it to OUT (one file per battery sortie)."""
    from drone.cameras import parse_camera
    from drone.coverage import MissionPlanError
    from drone.formats import MissionFileError, write_mission
    from drone.planner import MissionSettings, plan_grids
    from drone.sorties import FlightModel
    from gis.errors import GisError
    from gis.io import read_plan

    if output.suffix.lower() not in FORMATS:
        raise click.BadParameter(
            f"unknown format {output.suffix!r}; use one of {', '.join(FORMATS)}", param_hint="-o"
        )
    try:
        settings = MissionSettings(
            camera=parse_camera(camera).camera,
            altitude_m=altitude_m,
            front_overlap=front_overlap,
            side_overlap=side_overlap,
            flight=FlightModel(cruise_speed_m_s=speed_m_s, battery_s=battery_min * 60.0),
        )
        mission_plan = plan_grids(
            read_plan(plan_path),
            list(grids),
            settings=settings,
            home_lonlat=_parse_home(home),
            no_fly=_read_layer(no_fly, None),
            buildings=_read_layer(buildings, "buildings"),
        )
        written = write_mission(mission_plan, output)
    except (MissionPlanError, MissionFileError, GisError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if buildings is None:
        click.echo(
            "warning: no --buildings given, so towers taller than the flight are not avoided "
            "(未提供楼高数据, 未避让高楼)",
            err=True,
        )
    for sortie in mission_plan.sorties:
        click.echo(
            f"sortie {sortie.index + 1}: {sortie.distance_m / 1000:.2f} km, "
            f"{sortie.estimated_duration_s / 60:.1f} min, {len(sortie.waypoints)} waypoints"
        )
    for path in written:
        click.echo(f"wrote {path}")


def _parse_home(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected LON,LAT such as 120.70,31.30, got {text!r}", param_hint="--home"
        ) from None
    return lon, lat


def _read_layer(path: Path | None, layer: str | None) -> gpd.GeoDataFrame | None:
    """Read a vector file (the named layer when the file has it, else its first layer)."""
    if path is None:
        return None
    import geopandas as gpd
    import pyogrio

    try:
        layers = {str(row[0]) for row in pyogrio.list_layers(path)}
        frame = gpd.read_file(path, layer=layer if layer in layers else None)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError, ValueError) as error:
        raise click.ClickException(f"{path}: cannot read as a vector file: {error}") from error
    if frame.crs is None:
        raise click.ClickException(f"{path}: has no CRS; declare one, e.g. EPSG:4326")
    return frame


for _command in MISSION_COMMANDS:
    mission.add_command(_command)

COMMANDS: list[click.Command] = [mission]
