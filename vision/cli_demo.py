"""``skygrid demo-patrol``: the second half of the README's first command, on the folder ``skygrid demo`` wrote.

Plans a patrol over two grids of the demo plan, flies the first grid on the simulator with its camera, runs
the detector on the frames and scores the flags against the simulator's ground truth. Each step is the
ordinary command (``mission plan``, ``simulate-patrol``, ``detect``, ``eval``), so the demo shows exactly
what a user would run.
"""

from __future__ import annotations

from pathlib import Path

import click

DISTRICT_NAME = "demo_district.gpkg"
PLAN_NAME = "plan.gpkg"


@click.command("demo-patrol")
@click.argument(
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("demo-output"),
    required=False,
)
@click.option("--seed", default=0, show_default=True, help="Seed of the simulated world.")
def demo_patrol(folder: Path, seed: int) -> None:
    """Patrol two demo grids: mission file, simulated flight, detection, flags scored against ground truth.

    FOLDER is where ``skygrid demo`` wrote the demo district and plan (default demo-output).
    巡查演示：规划航线、模拟飞行、识别违章并生成网格线索。
    """
    from drone.cli import mission
    from drone.sim_cli import simulate_patrol
    from vision.cli_detect import detect, eval_

    district, plan = folder / DISTRICT_NAME, folder / PLAN_NAME
    for path in (district, plan):
        if not path.is_file():
            raise click.ClickException(f"{path} is missing: run `skygrid demo -o {folder}` first")
    mission_file, patrol, flags = folder / "patrol.plan", folder / "patrol", folder / "flags.gpkg"
    if patrol.exists():
        raise click.ClickException(f"{patrol} exists already: remove it (or use another FOLDER) to run again")
    first, second = _patrol_grids(plan)
    steps: list[tuple[click.Command, list[str]]] = [
        (mission, ["plan", str(plan), "--grid", first, "--grid", second, "--buildings", str(district),
                   "-o", str(mission_file)]),
        (simulate_patrol, [str(district), "--plan", str(plan), "--grid", first, "--seed", str(seed),
                           "-o", str(patrol)]),
        (detect, [str(patrol), "--plan", str(plan), "--zones", str(district), "-o", str(flags), "--fresh"]),
        (eval_, [str(flags), "--truth", str(patrol / "truth.gpkg")]),
    ]  # fmt: skip
    for command, args in steps:
        click.echo(f"\n$ skygrid {command.name} {' '.join(args)}")
        command.main(args=args, prog_name=f"skygrid {command.name}", standalone_mode=False)
    click.echo(
        f"\nmission: {mission_file.resolve()} (QGroundControl; fly it with `skygrid sim-vehicle` + `skygrid fly`)"
        f"\nflags:   {flags.resolve()} (layer flags, evidence crops beside it; open it in QGIS)"
    )


def _patrol_grids(plan_path: Path) -> tuple[str, str]:
    """Two neighbouring grids of the plan's first community, in code order."""
    from gis.io import read_plan

    grids = read_plan(plan_path).grids.sort_values("grid_code")
    first_community = grids["community_code"].iloc[0]
    codes = grids.loc[grids["community_code"] == first_community, "grid_code"].tolist()
    if len(codes) < 2:
        codes = grids["grid_code"].tolist()
    if len(codes) < 2:
        raise click.ClickException(f"{plan_path} has fewer than two grids to patrol")
    return str(codes[0]), str(codes[1])


COMMANDS = [demo_patrol]
