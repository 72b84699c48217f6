"""Load test of the service: p95 latency of list and detail endpoints at 50 concurrent users, SQLite vs PostGIS.

Sets up a demo district of 250,000 households (gridded and published) plus open cases in a fresh database per
backend, starts the real server (``uvicorn --factory api.app:from_environment``) on loopback in its own
process, and drives it with an ``httpx`` async client: 50 users, each pausing about a second between
requests as a person reading a page does (the target: p95 < 100 ms for every endpoint on both backends, no
errors), and the same 50 users sending back to back (saturation, for the record). The load generator shares
the machine with the server.

    python -m bench.api                              # SQLite only
    eval "$(bash scripts/postgres.sh)"; python -m bench.api   # SQLite and PostGIS (SKYGRID_TEST_POSTGRES_URL)
    python -m bench.api --households 50000 --requests 500      # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import shapely

from api.audit import record
from api.cases import Report, file_case
from api.db import Database, open_database, transaction, upgrade
from api.districts import store_district
from api.models import Plan, User
from api.plans import store_version
from api.security import Principal, hash_password
from api.settings import Settings
from gis.demo import make_demo_district, write_demo
from gis.gridder import make_plan
from gis.model import District as GisDistrict
from gis.model import GridPlan

TARGET_P95_MS = 100.0
PASSWORD = "bench-password-1"
SECRET = "bench-secret-" + "x" * 40
ADMIN = Principal("bench", "admin", "")


@dataclass(frozen=True)
class World:
    district: GisDistrict
    plan: GridPlan
    source: Path


@dataclass(frozen=True)
class Figures:
    endpoint: str
    users: int
    think_s: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float


def build_world(households: int, folder: Path) -> World:
    demo = make_demo_district(households, seed=7)
    source = folder / "district.gpkg"
    write_demo(demo, source)
    started = time.perf_counter()
    plan = make_plan(demo.district)
    print(
        f"gridded {households:,} households into {len(plan.grids)} grids in {time.perf_counter() - started:.1f} s"
    )
    return World(demo.district, plan, source)


def fill(database: Database, world: World, cases: int) -> tuple[list[str], list[int]]:
    """Store the district, the published plan, a planner and ``cases`` cases; return grid codes and case ids."""
    upgrade(database)
    with transaction(database.write) as session:
        district = store_district(
            session, ADMIN, world.district, name="bench", source=world.source, filename="district.gpkg"
        )
        plan = Plan(district_id=district.id, name="bench", created_by="bench")
        session.add(plan)
        session.flush()
        version = store_version(session, ADMIN, plan, world.plan, reason="bench", parent_id=None)
        version.status = "published"
        session.add(
            User(username="bench", password_hash=hash_password(PASSWORD), role="inspector", territory="")
        )
        record(session, ADMIN, action="bench_setup", entity="plan", entity_id=plan.id)
    return list(world.plan.grids["grid_code"]), _add_cases(database, world, cases)


def _add_cases(database: Database, world: World, count: int) -> list[int]:
    settings = Settings()
    categories = settings.category_table()
    limits = settings.time_limits(categories)
    rng = np.random.default_rng(7)
    # case locations: building points, which always lie inside a community
    points = shapely.get_coordinates(world.district.buildings.to_crs("EPSG:4326").representative_point())
    ids = []
    with transaction(database.write) as session:
        for i in range(count):
            lon, lat = points[rng.integers(len(points))]
            category = ("0507", "0505", "0101")[i % 3]
            report = Report(category, float(lon), float(lat))
            ids.append(file_case(session, ADMIN, limits, report, categories=categories).id)
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, data_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SKYGRID_DATABASE_URL": url,
        "SKYGRID_DATA_DIR": str(data_dir),
        "SKYGRID_JWT_SECRET": SECRET,
        "SKYGRID_RATE_LIMIT_PER_MINUTE": "0",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:from_environment",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--timeout-keep-alive",
        "30",
    ]
    server = subprocess.Popen(command, env=env)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/open311/v2/services", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


async def hammer(
    base: str, paths: list[str], users: int, headers: dict[str, str], think_s: float = 0.0
) -> tuple[list[float], int, float]:
    """Send every path once, ``users`` at a time; latencies in ms, error count, wall seconds.

    With ``think_s`` each user pauses 0.5–1.5 × ``think_s`` after each answer, as a person reading a page
    does (locust's ``between`` wait); without it users send back to back, which measures saturation.
    """
    pause = random.Random(11)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:

        async def user() -> None:
            nonlocal errors
            if think_s > 0:  # users arrive spread over one think time (locust's spawn rate), not all at once
                await asyncio.sleep(pause.uniform(0.0, think_s))
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.TransportError:  # a dropped connection counts as an error, not a crash
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200
                if think_s > 0:
                    await asyncio.sleep(pause.uniform(0.5, 1.5) * think_s)

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(users)))
    return latencies, errors, time.perf_counter() - started


def endpoints(grid_codes: list[str], case_ids: list[int], n: int) -> dict[str, list[str]]:
    rng = random.Random(7)
    base = "/api/v1/plans/1/versions/1"
    return {
        "list grids (100)": [
            f"{base}/grids?offset={rng.randrange(0, max(len(grid_codes) - 100, 1))}&limit=100"
            for _ in range(n)
        ],
        "grid detail": [f"{base}/grids/{rng.choice(grid_codes)}" for _ in range(n)],
        "list cases (50)": [
            f"/api/v1/cases?offset={rng.randrange(0, len(case_ids))}&limit=50" for _ in range(n)
        ],
        "case detail": [f"/api/v1/cases/{rng.choice(case_ids)}" for _ in range(n)],
        "open311 request": [f"/open311/v2/requests/{rng.choice(case_ids)}" for _ in range(n)],
    }


def run_backend(name: str, url: str, world: World, args: argparse.Namespace, data_dir: Path) -> list[Figures]:
    database = open_database(url)
    grid_codes, case_ids = fill(database, world, args.cases)
    database.dispose()
    port = free_port()
    server = start_server(url, data_dir, port, args.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "bench", "password": PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        out = []
        for endpoint, paths in endpoints(grid_codes, case_ids, args.requests).items():
            asyncio.run(hammer(base, paths[: args.users], args.users, headers))  # warm-up
            # service time alone; users reading pages (think time); users sending back to back (saturation)
            for users, think_s in ((1, 0.0), (args.users, args.think_s), (args.users, 0.0)):
                batch = paths if users > 1 and think_s == 0 else paths[: max(args.requests // 2, 1)]
                latencies, errors, wall = asyncio.run(hammer(base, batch, users, headers, think_s))
                p50, p95, p99 = (float(v) for v in np.percentile(latencies, [50, 95, 99]))
                out.append(
                    Figures(endpoint, users, think_s, len(batch), errors, p50, p95, p99, len(batch) / wall)
                )
        return out
    finally:
        server.terminate()
        server.wait(10)


def report(name: str, figures: list[Figures]) -> bool:
    """Print one backend's table; True when every endpoint meets the target for users with think time."""
    print(
        f"\n{name}: target p95 < {TARGET_P95_MS:.0f} ms with the users reading pages, no errors "
        "(1 user = service time; think 0 = back to back, saturation)"
    )
    print(
        f"{'endpoint':<20}{'users':>6}{'think s':>8}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'req/s':>8}{'errors':>7}  target"
    )
    passed = True
    for f in figures:
        met = f.p95_ms < TARGET_P95_MS and f.errors == 0
        judged = f.users > 1 and f.think_s > 0
        passed &= met or not judged
        verdict = ("met" if met else "MISSED") if judged else "measured"
        print(
            f"{f.endpoint:<20}{f.users:>6}{f.think_s:>8.1f}{f.requests:>9}{f.p50_ms:>9.1f}{f.p95_ms:>9.1f}"
            f"{f.p99_ms:>9.1f}{f.rps:>8.0f}{f.errors:>7}  {verdict}"
        )
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=250_000)
    parser.add_argument("--cases", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--think-s", type=float, default=1.0, help="mean pause of a user between requests")
    parser.add_argument("--workers", type=int, default=2, help="server processes (uvicorn --workers)")
    parser.add_argument("--requests", type=int, default=2_000, help="requests per endpoint")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SKYGRID_TEST_POSTGRES_URL"),
        help="PostGIS URL (default $SKYGRID_TEST_POSTGRES_URL); its public schema is emptied",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="measure PostGIS only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skygrid-bench-") as tmp:
        folder = Path(tmp)
        world = build_world(args.households, folder)
        results: dict[str, list[Figures]] = {}
        if not args.skip_sqlite:
            sqlite_url = f"sqlite:///{folder / 'bench.sqlite'}"
            results["SQLite (WAL)"] = run_backend("sqlite", sqlite_url, world, args, folder)
        if args.postgres:
            _empty_postgres(args.postgres)
            results["PostGIS"] = run_backend("postgis", args.postgres, world, args, folder)
        else:
            print('PostGIS skipped: set SKYGRID_TEST_POSTGRES_URL (eval "$(bash scripts/postgres.sh)")')
    verdicts = [report(name, figures) for name, figures in results.items()]
    print(f"\nall targets met: {all(verdicts)}")


def _empty_postgres(url: str) -> None:
    database = open_database(url)
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
    database.dispose()


if __name__ == "__main__":
    main()
