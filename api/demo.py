"""A demo service: the demo district imported, gridded and published, with a user of every role.

``skygrid serve --demo`` and the web tests start from this, so a new user can open the pages and do each
role's job at once. Everything goes in through the same functions the API uses (import checks, audit log).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import Database, transaction
from api.districts import read_upload, store_district
from api.models import Plan, Staff, User
from api.plans import publish, store_version, validate
from api.security import Principal, hash_password
from gis.demo import make_demo_district, write_demo
from gis.gridder import make_plan
from gis.model import GridRules

#: the demo users' password (printed by ``skygrid serve --demo``; a demo, never a deployment)
DEMO_PASSWORD = "skygrid-demo"

#: user name → (role, staff kind or None); territories are the demo district's code
DEMO_USERS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "planner": ("planner", None),
    "operator": ("operator", None),
    "inspector": ("inspector", None),
    "worker": ("grid_worker", "grid_worker"),
    "unit": ("handling_unit", "handling_unit"),
}

_SYSTEM = Principal("demo-setup", "admin", "")


@dataclass(frozen=True)
class DemoService:
    """What :func:`seed_demo` stored: ids to open the pages on, and who can log in."""

    district_id: int
    district_code: str
    plan_id: int
    version: int
    district_gpkg: Path
    users: tuple[str, ...]
    password: str = DEMO_PASSWORD


def seed_demo(database: Database, work_dir: Path, *, households: int = 10_000, seed: int = 1) -> DemoService:
    """Generate the demo district into ``work_dir``, import it, grid it, publish the plan and add the users.

    Idempotent on the users (existing names are kept); a second call adds a second district and plan.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "demo-district.gpkg"
    write_demo(make_demo_district(households, seed=seed), path)
    district = read_upload(path, path.name)
    grid_plan = make_plan(district, GridRules(seed=seed))
    with transaction(database.write) as session:
        row = store_district(
            session, _SYSTEM, district, name="演示街道 demo", source=path, filename=path.name
        )
        plan = Plan(district_id=row.id, name="演示网格方案 demo plan", created_by=_SYSTEM.username)
        session.add(plan)
        session.flush()
        version = store_version(session, _SYSTEM, plan, grid_plan, reason="demo", parent_id=None)
        publish(
            session, _SYSTEM, version, seen=version.revision, violations=validate(session, version, district)
        )
        _add_users(session, row.code)
        ids = (row.id, row.code, plan.id, version.number)
    return DemoService(*ids, district_gpkg=path, users=tuple(DEMO_USERS))


def _add_users(session: Session, territory: str) -> None:
    existing = set(session.scalars(select(User.username)))
    password = hash_password(DEMO_PASSWORD)
    for name, (role, staff_kind) in DEMO_USERS.items():
        if name in existing:
            continue
        staff_id = None
        if staff_kind is not None:
            staff = Staff(name=f"演示{name}", kind=staff_kind, phone="13800000000", territory=territory)
            session.add(staff)
            session.flush()
            staff_id = staff.id
        session.add(
            User(username=name, password_hash=password, role=role, territory=territory, staff_id=staff_id)
        )
