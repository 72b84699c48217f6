"""``skygrid db upgrade`` and ``skygrid user add`` on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from api.audit import verify
from api.db import open_database
from api.models import User
from api.security import verify_password
from gis.cli import cli


def test_db_upgrade_and_user_add(tmp_path: Path) -> None:
    runner = CliRunner()
    upgraded = runner.invoke(cli, ["db", "upgrade", "--data-dir", str(tmp_path)])
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "skygrid.sqlite").is_file()
    added = runner.invoke(
        cli,
        [
            "user",
            "add",
            "wang",
            "--role",
            "planner",
            "--territory",
            "320571001001",
            "--data-dir",
            str(tmp_path),
        ],
        input="long-password\nlong-password\n",
    )
    assert added.exit_code == 0, added.output
    database = open_database(f"sqlite:///{tmp_path / 'skygrid.sqlite'}")
    with database.read() as session:
        user = session.scalars(select(User)).one()
        assert (user.username, user.role, user.territory) == ("wang", "planner", "320571001001")
        assert verify_password("long-password", user.password_hash)
        assert verify(session) is None
    database.dispose()
    again = runner.invoke(
        cli,
        ["user", "add", "wang", "--role", "planner", "--data-dir", str(tmp_path)],
        input="long-password\nlong-password\n",
    )
    assert again.exit_code != 0 and "exists" in again.output


def test_user_add_checks_territory(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["user", "add", "x", "--role", "admin", "--territory", "12345", "--data-dir", str(tmp_path)],
        input="long-password\nlong-password\n",
    )
    assert result.exit_code == 2 and "territory must be" in result.output
