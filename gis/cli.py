"""The ``skygrid`` command line: demo, demo-district, grid, validate and export."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from pathlib import Path

import click

from gis.errors import GisError
from gis.model import GridPlan, GridRules

log = logging.getLogger("skygrid")

EXPORT_FORMATS = ("geojson", "shp", "csv", "html", "pdf", "png")


def _parse_range(value: str, name: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in value.split(":"))
    except ValueError:
        raise click.BadParameter(
            f"expected MIN:MAX such as 300:500, got '{value}'", param_hint=name
        ) from None
    return low, high


# Other packages add their subcommands here: each module exports ``COMMANDS: list[click.Command]`` and keeps
# heavy imports inside the command functions so that ``skygrid --help`` stays fast.
COMMAND_MODULES = (
    "drone.cli",
    "drone.vehicle_cli",
    "drone.frames_cli",
    "drone.sim_cli",
    "vision.cli_detect",
    "vision.cli_demo",
    "vision.cli",
    "tiles.cli",
    "api.cli",
)


class SkyGridGroup(click.Group):
    """The root group: gis commands defined here plus those of the other packages, loaded on demand."""

    def _package_commands(self) -> dict[str, click.Command]:
        commands: dict[str, click.Command] = {}
        for module_name in COMMAND_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name == module_name:
                    continue
                raise
            for command in getattr(module, "COMMANDS", []):
                commands[command.name or ""] = command
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._package_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._package_commands().get(cmd_name)


@click.group(cls=SkyGridGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="skygrid")
def cli(verbose: int) -> None:
    """SkyGrid: community grid governance — grid mapping (网格化), aerial patrols and closed-loop cases."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)


@cli.command("demo-district")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="GeoPackage."
)
@click.option("--households", default=50_000, show_default=True, help="Total households (10k to 1M).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same district.")
def demo_district(output: Path, households: int, seed: int) -> None:
    """Generate a realistic synthetic district (buildings, communities, compounds, roads, zones)."""
    from gis.demo import make_demo_district, write_demo

    demo = make_demo_district(households, seed=seed)
    write_demo(demo, output)
    district = demo.district
    click.echo(
        f"wrote {output}: {len(district.buildings)} buildings, {district.households} households, "
        f"{len(district.communities)} communities"
    )


@cli.command("grid")
@click.argument("district_path", metavar="DISTRICT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Plan .gpkg."
)
@click.option(
    "--grid", "grid_range", default="300:500", show_default=True, help="Households per grid MIN:MAX."
)
@click.option("--micro", "micro_range", default="50:80", show_default=True, help="Households per micro-grid.")
@click.option("--seed", default=0, show_default=True, help="Same input and seed, same plan.")
@click.option(
    "--m2-per-household", default=90.0, show_default=True, help="Floor area per household estimate."
)
@click.option("--register", type=click.Path(exists=True, path_type=Path), help="Household register CSV/XLSX.")
@click.option(
    "--previous", type=click.Path(exists=True, path_type=Path), help="Earlier plan: keep its codes."
)
@click.option(
    "--straighten/--no-straighten",
    default=True,
    show_default=True,
    help="Pull shared grid boundaries taut between the buildings (no building changes grid).",
)
def grid(
    district_path: Path,
    output: Path,
    grid_range: str,
    micro_range: str,
    seed: int,
    m2_per_household: float,
    register: Path | None,
    previous: Path | None,
    straighten: bool,
) -> None:
    """Cut every community of DISTRICT into grids and micro-grids and write the plan GeoPackage."""
    from gis.gridder import make_plan
    from gis.io import read_district, read_plan, write_plan

    grid_min, grid_max = _parse_range(grid_range, "--grid")
    micro_min, micro_max = _parse_range(micro_range, "--micro")
    rules = GridRules(grid_min, grid_max, micro_min, micro_max, m2_per_household, seed, straighten)
    district = read_district(district_path, rules=rules, register=register)
    old = read_plan(previous) if previous else None
    plan = make_plan(district, rules, previous=old, progress=sys.stderr.isatty())
    write_plan(plan, output)
    _summary(plan, output)


@cli.command("validate")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, path_type=Path))
@click.option("--district", "district_path", type=click.Path(exists=True, path_type=Path), required=True)
def validate(plan_path: Path, district_path: Path) -> None:
    """Check PLAN (hand-edited ones too) against every gridding rule; exit 0 only when it is valid."""
    from gis.io import read_district, read_plan
    from gis.validate import validate_plan

    plan = read_plan(plan_path)
    violations = validate_plan(plan, read_district(district_path, rules=plan.rules))
    for violation in violations:
        click.echo(f"{violation.layer}\t{violation.rule}\t{violation.code or '-'}\t{violation.message}")
    click.echo(f"{len(violations)} violation(s) in {plan_path}" if violations else f"{plan_path}: valid")
    sys.exit(1 if violations else 0)


@cli.command("export")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="File (csv, html) or folder."
)
@click.option(
    "--district", "district_path", type=click.Path(exists=True, path_type=Path), help="For context."
)
@click.option("--grid-code", "grid_codes", multiple=True, help="Print maps only for these grids.")
def export(
    plan_path: Path, fmt: str, output: Path, district_path: Path | None, grid_codes: tuple[str, ...]
) -> None:
    """Export PLAN as GeoJSON, Shapefile, a CSV roster, an offline HTML map or A4 notice-board maps."""
    from gis import export as ex
    from gis.io import read_district, read_plan

    plan = read_plan(plan_path)
    district = read_district(district_path, rules=plan.rules) if district_path else None
    if fmt == "geojson":
        written = ex.export_geojson(plan, output)
    elif fmt == "shp":
        written = ex.export_shapefile(plan, output)
    elif fmt == "csv":
        written = [ex.export_roster(plan, output, district)]
    elif fmt == "html":
        written = [ex.export_html_map(plan, output, district)]
    else:
        written = ex.export_print_maps(
            plan, output, district, fmt="pdf" if fmt == "pdf" else "png", grid_codes=grid_codes or None
        )
    for path in written:
        click.echo(f"wrote {path}")


@cli.command("demo")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo's files.",
)
@click.option("--households", default=50_000, show_default=True, help="Size of the demo district.")
@click.option("--seed", default=0, show_default=True)
def demo(output: Path, households: int, seed: int) -> None:
    """The main job on the built-in demo district: generate it, grid it, write the plan and an HTML map."""
    from gis.demo import make_demo_district, write_demo
    from gis.export import export_html_map, export_roster
    from gis.gridder import make_plan
    from gis.io import write_plan

    output.mkdir(parents=True, exist_ok=True)
    district_path, plan_path = output / "demo_district.gpkg", output / "plan.gpkg"
    demo_world = make_demo_district(households, seed=seed)
    write_demo(demo_world, district_path)
    click.echo(f"district: {district_path} ({demo_world.district.households} households)")
    plan = make_plan(demo_world.district, GridRules(seed=seed), progress=sys.stderr.isatty())
    write_plan(plan, plan_path)
    html = export_html_map(plan, output / "plan_map.html", demo_world.district)
    roster = export_roster(plan, output / "roster.csv", demo_world.district)
    _summary(plan, plan_path)
    click.echo(f"map:    {html.resolve()}  (open in a browser; works offline)")
    click.echo(f"roster: {roster}")


def _summary(plan: GridPlan, path: Path) -> None:
    overall = plan.report[plan.report["community_code"] == "overall"].iloc[0]
    rules = plan.rules
    click.echo(
        f"plan:   {path}\n"
        f"        {len(plan.grids)} grids ({overall['grids_in_range']:.1%} in {rules.grid_min}–{rules.grid_max}), "
        f"{len(plan.microgrids)} micro-grids ({overall['microgrids_in_range']:.1%} in "
        f"{rules.micro_min}–{rules.micro_max}), mean Polsby-Popper {overall['mean_pp_grids']:.2f}, "
        f"compounds kept {overall['compounds_kept']:.1%}, {int(overall['households'])} households"
    )
    flagged = plan.grids[plan.grids["status"] != "ok"]
    if len(flagged):
        click.echo(
            f"        {len(flagged)} grid(s) out of range, each with a reason (see the 'status' column)"
        )


def main() -> None:
    """Console entry point: runs the CLI and turns library errors into one clear line and exit code 2."""
    warnings.simplefilter("default")
    try:
        cli(standalone_mode=True)
    except GisError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
