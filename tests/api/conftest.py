"""Fixtures of the service tests: the app on a real SQLite file and, when ``SKYGRID_TEST_POSTGRES_URL`` is set
(``eval "$(bash scripts/postgres.sh)"``), on a real PostgreSQL/PostGIS database; users of every role; a demo
district GeoPackage.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from api.db import Database, open_database, transaction, upgrade
from api.districts import store_district
from api.models import Base, Plan, Staff, User
from api.plans import store_version
from api.security import Principal, hash_password
from api.settings import Settings
from gis.demo import make_demo_district, write_demo
from gis.gridder import make_plan
from gis.io import read_district
from gis.model import District as GisDistrict
from gis.model import GridPlan

POSTGRES_ENV = "SKYGRID_TEST_POSTGRES_URL"
PASSWORD = "correct-horse-1"
DISTRICT = "320571"
COMMUNITY_A = "320571001001"
COMMUNITY_B = "320571001002"


@dataclass(frozen=True)
class Env:
    """A running app with its database, settings and test client."""

    client: TestClient
    db: Database
    settings: Settings
    tokens: dict[str, str]

    def login(self, username: str) -> dict[str, str]:
        """Bearer headers of ``username`` (password :data:`PASSWORD`).

        Tokens are stateless, so one real login per user serves the whole session (argon2 is slow on purpose).
        """
        if username not in self.tokens:
            response = self.client.post(
                "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            self.tokens[username] = response.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[username]}"}


@pytest.fixture(scope="session")
def demo_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10,000-household demo district with zones, as a GeoPackage."""
    path = tmp_path_factory.mktemp("demo") / "district.gpkg"
    write_demo(make_demo_district(10_000, seed=1), path)
    return path


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[Database]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f'{POSTGRES_ENV} is unset: run `eval "$(bash scripts/postgres.sh)"` to test on PostGIS')
    database = open_database(url)
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
    upgrade(database)
    yield database
    database.dispose()


def _empty_postgres(database: Database) -> None:
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file upgraded by the migrations once; each test works on a copy."""
    path = tmp_path_factory.mktemp("template") / "skygrid.sqlite"
    database = open_database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An upgraded, empty database on each backend."""
    if request.param == "postgresql":
        database: Database = request.getfixturevalue("postgres_db")
        _empty_postgres(database)
        yield database
        return
    path = tmp_path / "skygrid.sqlite"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    database = open_database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=SecretStr("test-secret-" + "x" * 32),
        max_upload_bytes=5 * 1024 * 1024,
        rate_limit_per_minute=0,
    )


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    """Access tokens by user name, shared by the tests of a session."""
    return {}


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def env(db: Database, settings: Settings, tokens: dict[str, str], password_hash: str) -> Iterator[Env]:
    """The app with users admin, planner, planner_a/planner_b (communities A/B), inspector, inspector_b,
    operator, worker (staff 1, community A) and unit (staff 2, the district)."""
    _add_users(db, password_hash)
    with TestClient(create_app(settings, db)) as client:
        yield Env(client, db, settings, tokens)


def _add_users(db: Database, password: str) -> None:
    with transaction(db.write) as session:
        worker = Staff(name="张网格员", kind="grid_worker", phone="13800000001", territory=COMMUNITY_A)
        unit = Staff(name="城管中队", kind="handling_unit", phone="051200000", territory=DISTRICT)
        session.add_all([worker, unit])
        session.flush()
        users = [
            ("admin", "admin", "", None),
            ("planner", "planner", DISTRICT, None),
            ("planner_a", "planner", COMMUNITY_A, None),
            ("planner_b", "planner", "320571001002", None),
            ("inspector", "inspector", DISTRICT, None),
            ("inspector_b", "inspector", "320571001002", None),
            ("operator", "operator", DISTRICT, None),
            ("worker", "grid_worker", COMMUNITY_A, worker.id),
            ("unit", "handling_unit", DISTRICT, unit.id),
        ]
        for name, role, territory, staff_id in users:
            session.add(
                User(username=name, password_hash=password, role=role, territory=territory, staff_id=staff_id)
            )


def import_demo(env: Env, path: Path, user: str = "planner") -> dict[str, object]:
    """Import the demo district through the API; returns the district JSON."""
    with path.open("rb") as handle:
        response = env.client.post(
            "/api/v1/districts",
            headers=env.login(user),
            files={"file": ("district.gpkg", handle, "application/geopackage+sqlite3")},
            data={"name": "demo"},
        )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture(scope="session")
def points(demo_gpkg: Path) -> dict[str, tuple[float, float]]:
    """A point inside each of communities A and B."""
    communities = gpd.read_file(demo_gpkg, layer="communities").set_index("community_code")
    out = {}
    for code in (COMMUNITY_A, COMMUNITY_B):
        point = communities.geometry[code].representative_point()
        out[code] = (point.x, point.y)
    return out


def file(
    env: Env, point: tuple[float, float], category: str = "0507", user: str = "inspector"
) -> dict[str, Any]:
    response = env.client.post(
        "/api/v1/cases",
        headers=env.login(user),
        json={"category": category, "lon": point[0], "lat": point[1]},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def step(env: Env, case: dict[str, Any], user: str, action: str, **extra: Any) -> Any:
    return env.client.post(
        f"/api/v1/cases/{case['id']}/actions",
        headers=env.login(user),
        json={"action": action, "revision": case["revision"], **extra},
    )


def ok(env: Env, case: dict[str, Any], user: str, action: str, **extra: Any) -> dict[str, Any]:
    response = step(env, case, user, action, **extra)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="session")
def demo_district(demo_gpkg: Path) -> GisDistrict:
    """The demo district as read by gis (read once per session)."""
    return read_district(demo_gpkg)


@pytest.fixture
def stored(env: Env, demo_gpkg: Path, demo_district: GisDistrict) -> Env:
    """The app with the demo district stored (as an import would store it)."""
    with transaction(env.db.write) as session:
        store_district(
            session,
            Principal("planner", "planner", DISTRICT),
            demo_district,
            name="demo",
            source=demo_gpkg,
            filename="district.gpkg",
        )
    return env


@pytest.fixture(scope="session")
def demo_world(demo_district: GisDistrict) -> tuple[GisDistrict, GridPlan]:
    """The demo district and its plan, computed once (the import and gridding job have their own tests)."""
    return demo_district, make_plan(demo_district)


@pytest.fixture
def drafted(env: Env, demo_gpkg: Path, demo_world: tuple[GisDistrict, GridPlan]) -> Env:
    """The demo district stored with its plan: plan 1, draft version 1."""
    district, grid_plan = demo_world
    who = Principal("planner", "planner", "320571")
    with transaction(env.db.write) as session:
        row = store_district(session, who, district, name="demo", source=demo_gpkg, filename="district.gpkg")
        plan = Plan(district_id=row.id, name="demo", created_by=who.username)
        session.add(plan)
        session.flush()
        store_version(session, who, plan, grid_plan, reason="first", parent_id=None)
    return env
