"""``skygrid serve``, ``skygrid db upgrade`` and ``skygrid user add``: run and administer the service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
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
def serve(db_url: str | None, data_dir: Path | None, host: str, port: int) -> None:
    """Run the SkyGrid service (upgrades the database first; generates the JWT secret on first run)."""
    import uvicorn

    from api.app import create_app
    from api.db import open_database, upgrade
    from api.settings import ensure_secret

    settings = _settings(db_url, data_dir)
    settings = ensure_secret(settings)
    database = open_database(settings.resolved_database_url())
    upgrade(database)
    click.echo(f"SkyGrid on http://{host}:{port}/docs  (database {database.backend})")
    uvicorn.run(create_app(settings, database), host=host, port=port)


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
