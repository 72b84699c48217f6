"""``skygrid serve``, ``skygrid db upgrade`` and ``skygrid user add``: run and administer the service.

``skygrid serve --demo`` runs the whole loop on the embedded defaults: on an empty data folder it seeds the demo
district, its published grid plan and a user of every role, plans a patrol mission over one demo grid and flies
it on the simulator in the background (detector, flags), while the pages are already served.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.db import Database
    from api.demo import DemoService
    from api.settings import Settings

ROLE_CHOICES = ("admin", "planner", "operator", "inspector", "grid_worker", "handling_unit")


def _settings(db_url: str | None, data_dir: Path | None) -> Settings:
    from api.settings import Settings

    settings = Settings()
    if db_url:
        settings = settings.model_copy(update={"database_url": db_url})
    if data_dir:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings


_db_option = click.option("--db", "db_url", help="Database URL (default: SQLite file in the data folder).")
_data_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder (default ./skygrid-data).",
)


@click.command("serve")
@_db_option
@_data_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--demo",
    is_flag=True,
    help="On an empty data folder: seed the demo district, plan and users, and fly a simulated patrol.",
)
@click.option(
    "--demo-households",
    default=10_000,
    show_default=True,
    type=click.IntRange(10_000, 2_000_000),
    help="Size of the demo district.",
)
def serve(
    db_url: str | None, data_dir: Path | None, host: str, port: int, demo: bool, demo_households: int
) -> None:
    """Run the SkyGrid service (upgrades the database first; generates the JWT secret on first run)."""
    import uvicorn

    from api.app import create_app
    from api.db import open_database, upgrade
    from api.settings import ensure_secret

    settings = _settings(db_url, data_dir)
    settings = ensure_secret(settings)
    database = open_database(settings.resolved_database_url())
    upgrade(database)
    _fail_interrupted(database)
    app = create_app(settings, database)
    if demo:
        _demo(app, database, settings, demo_households)
        _echo_pages(host, port)
    click.echo(f"SkyGrid on http://{host}:{port}/docs  (database {database.backend})")
    uvicorn.run(app, host=host, port=port)


def _fail_interrupted(database: Database) -> None:
    """Flights and their jobs left running by a server that stopped can never finish: mark them failed."""
    from sqlalchemy import select

    from api.db import transaction
    from api.models import Flight, Job, utcnow

    message = "the server stopped during this job; start it again / 服务中断，请重新运行"
    with transaction(database.write) as session:
        flights = session.scalars(select(Flight).where(Flight.status == "running")).all()
        jobs = session.scalars(
            select(Job).where(Job.kind.in_(("flight", "upload")), Job.status.in_(("queued", "running")))
        ).all()
        for flight in flights:
            flight.status = "failed"
        for job in jobs:
            job.status, job.message, job.finished_at = "failed", message, utcnow()
    if flights:
        click.echo(f"{len(flights)} flight(s) interrupted by the last shutdown are marked failed")


def _demo(app: FastAPI, database: Database, settings: Settings, households: int) -> None:
    """Seed an empty database with the demo and start its patrol flight; leave a used one as it is."""
    from sqlalchemy import select

    from api.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo
    from api.flights import start_flight
    from api.models import District, User
    from api.routes.flights import hub_of

    with database.read() as session:
        seeded = session.scalars(select(District.id).limit(1)).first() is not None
    if seeded:
        click.echo("the database holds data already: serving it as it is (演示数据已存在)")
    else:
        click.echo("seeding the demo district, grid plan and users … (正在生成演示数据)")
        demo = seed_demo(database, settings.data_dir / "demo", households=households)
        flight_id, job_id, grid_code = _demo_flight(database, settings.data_dir, demo)
        start_flight(app.state.service, hub_of(app), flight_id=flight_id, job_id=job_id)
        click.echo(
            f"simulated patrol of grid {grid_code}: flight {flight_id} is flying in the background "
            f"(模拟巡查飞行中)"
        )
    with database.read() as session:
        present = set(session.scalars(select(User.username).where(User.username.in_(list(DEMO_USERS)))))
    for name, (role, _staff) in DEMO_USERS.items():
        if name in present:
            click.echo(f"  user {name:<10} role {role:<14} password {DEMO_PASSWORD}")


def _demo_flight(database: Database, data_dir: Path, demo: DemoService) -> tuple[int, int, str]:
    """Plan a patrol over the demo's smallest in-range grid and register a simulator flight of it."""
    from sqlalchemy import select

    from api.db import transaction
    from api.flights import FlightSource, new_job, register_flight
    from api.missions import MissionRequest, store_mission
    from api.models import Grid, PlanVersion
    from api.security import Principal

    operator = Principal("operator", "operator", demo.district_code)
    with transaction(database.write) as session:
        version = session.scalars(
            select(PlanVersion).where(PlanVersion.plan_id == demo.plan_id, PlanVersion.number == demo.version)
        ).one()
        grids = session.scalars(
            select(Grid).where(Grid.version_id == version.id, Grid.households >= 300)
        ).all()
        grid_code = min(grids, key=lambda g: g.geom.area).grid_code
        request = MissionRequest(demo.plan_id, demo.version, (grid_code,), 80.0, "演示巡查 demo patrol")
        mission = store_mission(session, operator, request)
        flight = register_flight(
            session, operator, mission_id=mission.id, source=FlightSource("simulator"), folders=(data_dir, ())
        )
        flight.status = "running"
        job = new_job(session, operator, "flight", {"flight_id": flight.id})
        return flight.id, job.id, grid_code


def _echo_pages(host: str, port: int) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    for path, name in (
        ("/planner", "网格规划 planner"),
        ("/operator", "飞手 operator"),
        ("/inspector", "核查 inspector"),
    ):
        click.echo(f"  {name:<20} http://{shown}:{port}{path}")


@click.group("db")
def db() -> None:
    """Database administration."""


@db.command("upgrade")
@_db_option
@_data_option
def db_upgrade(db_url: str | None, data_dir: Path | None) -> None:
    """Create or upgrade the schema to the newest migration."""
    from api.db import open_database, upgrade

    settings = _settings(db_url, data_dir)
    database = open_database(settings.resolved_database_url())
    upgrade(database)
    click.echo(f"database {database.backend} is at the newest schema")


@click.group("user")
def user() -> None:
    """User administration."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLE_CHOICES), required=True)
@click.option("--territory", default="", help="District, street, community or grid code ('' = everywhere).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@_db_option
@_data_option
def user_add(
    name: str, role: str, territory: str, password: str, db_url: str | None, data_dir: Path | None
) -> None:
    """Add user NAME with ROLE, scoped to TERRITORY."""
    from sqlalchemy import select

    from api.audit import record
    from api.db import open_database, transaction, upgrade
    from api.models import User
    from api.security import Principal, check_territory_code, hash_password

    try:
        check_territory_code(territory)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--territory") from None
    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    settings = _settings(db_url, data_dir)
    database = open_database(settings.resolved_database_url())
    upgrade(database)
    with transaction(database.write) as session:
        if session.scalars(select(User).where(User.username == name)).first() is not None:
            raise click.ClickException(f"user {name} exists")
        row = User(username=name, password_hash=hash_password(password), role=role, territory=territory)
        session.add(row)
        session.flush()
        record(
            session,
            Principal("cli", "admin", ""),
            action="add_user",
            entity="user",
            entity_id=row.id,
            after={"username": name, "role": role, "territory": territory},
        )
    click.echo(f"added {role} {name} for territory {territory or '(all)'}")


COMMANDS: list[click.Command] = [serve, db, user]
