"""The issue's acceptance walk through the API: a planner imports, grids and publishes; an operator's flag
goes through every step to closed; the case reads back through Open311 as closed — on the demo district and on
the real Suzhou district (skipped without ``../shared``)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest

from api.db import transaction
from api.models import Staff, User
from tests.api.conftest import COMMUNITY_A, Env, import_demo, ok
from tests.shared_data import shared_path


def test_import_grid_publish_flag_to_closed_open311(
    env: Env, demo_gpkg: Path, points: dict[str, tuple[float, float]]
) -> None:
    planner = env.login("planner")
    district = import_demo(env, demo_gpkg)
    job = env.client.post(
        f"/api/v1/districts/{district['id']}/grid", headers=planner, json={"name": "2026"}
    ).json()
    result = env.client.get(f"/api/v1/jobs/{job['id']}", headers=planner).json()["result"]
    base = f"/api/v1/plans/{result['plan_id']}/versions/{result['version']}"
    assert env.client.post(f"{base}/publish", headers=planner, json={"revision": 1}).status_code == 200

    lon, lat = points[COMMUNITY_A]
    flag = env.client.post(
        "/api/v1/flags",
        headers=env.login("operator"),
        json={"category": "0505", "lon": lon, "lat": lat, "score": 0.91},
    ).json()
    accepted = env.client.post(
        f"/api/v1/flags/{flag['id']}/review", headers=env.login("inspector"), json={"action": "accept"}
    ).json()["flags"][0]
    case = env.client.get(f"/api/v1/cases/{accepted['case_id']}", headers=env.login("inspector")).json()
    assert case["grid_code"] is not None and case["grid_code"].startswith(COMMUNITY_A)
    assert (case["state"], case["source"]) == ("registered", "machine")
    steps: list[tuple[str, str, dict[str, object]]] = [
        ("inspector", "dispatch", {"level": "compound", "staff_id": 1}),
        ("worker", "start", {}),
        ("worker", "handle", {"note": "car moved / 车辆已挪走"}),
        ("inspector", "verify", {}),
        ("inspector", "close", {}),
    ]
    for user, action, extra in steps:
        case = ok(env, case, user, action, **extra)
    assert case["state"] == "closed"
    request = env.client.get(f"/open311/v2/requests/{case['id']}.json").json()[0]
    assert (request["status"], request["service_code"], request["address_id"]) == (
        "closed",
        "0505",
        case["grid_code"],
    )
    flags = env.client.get("/api/v1/flags", headers=env.login("inspector")).json()
    assert [(f["id"], f["status"], f["case_id"]) for f in flags] == [(flag["id"], "accepted", case["id"])]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_suzhou_district_walk_as_new_users_of_its_street(env: Env, password_hash: str) -> None:
    """The issue's walk on the real Suzhou district: its own planner imports, grids and publishes it through
    the API; an operator's flag in one of its communities goes to closed; Open311 reads it back."""
    path = shared_path("data", "suzhou_district.gpkg")
    community = gpd.read_file(path, layer="communities").to_crs(4326).sort_values("community_code").iloc[0]
    district_code = str(community["community_code"])[:6]  # 12-digit community codes start with the district's
    point = community.geometry.representative_point()
    add_staff_and_users(env, password_hash, district_code, str(community["community_code"]))
    env.client.app.state.service.settings.max_upload_bytes = 64 * 1024 * 1024  # type: ignore[attr-defined]

    district = import_demo(env, path, user="planner_sz")
    planner = env.login("planner_sz")
    job = env.client.post(
        f"/api/v1/districts/{district['id']}/grid", headers=planner, json={"name": "苏州 2026"}
    ).json()
    done = env.client.get(f"/api/v1/jobs/{job['id']}", headers=planner).json()
    assert done["status"] == "done", done["message"]
    base = f"/api/v1/plans/{done['result']['plan_id']}/versions/{done['result']['version']}"
    report = env.client.get(f"{base}/validation", headers=planner).json()
    assert report["valid"], report["violations"][:3]
    assert env.client.post(f"{base}/publish", headers=planner, json={"revision": 1}).status_code == 200

    flag = env.client.post(
        "/api/v1/flags",
        headers=env.login("operator_sz"),
        json={"category": "0505", "lon": point.x, "lat": point.y, "score": 0.88},
    )
    assert flag.status_code == 201, flag.text
    accepted = env.client.post(
        f"/api/v1/flags/{flag.json()['id']}/review",
        headers=env.login("inspector_sz"),
        json={"action": "accept"},
    ).json()["flags"][0]
    case = env.client.get(f"/api/v1/cases/{accepted['case_id']}", headers=env.login("inspector_sz")).json()
    assert case["grid_code"].startswith(str(community["community_code"]))
    staff = env.client.get("/api/v1/staff", headers=env.login("inspector_sz")).json()
    worker = next(s["id"] for s in staff if s["name"] == "苏州网格员")
    steps: list[tuple[str, str, dict[str, object]]] = [
        ("inspector_sz", "dispatch", {"level": "community", "staff_id": worker}),
        ("worker_sz", "start", {}),
        ("worker_sz", "handle", {"note": "车辆已挪走"}),
        ("inspector_sz", "verify", {}),
        ("inspector_sz", "close", {}),
    ]
    for user, action, extra in steps:
        case = ok(env, case, user, action, **extra)
    request = env.client.get(f"/open311/v2/requests/{case['id']}.json").json()[0]
    assert (request["status"], request["address_id"]) == ("closed", case["grid_code"])
    assert request["lat"] == pytest.approx(point.y) and request["long"] == pytest.approx(point.x)


def add_staff_and_users(env: Env, password_hash: str, district_code: str, community_code: str) -> None:
    """A planner, operator and inspector of the Suzhou district and a grid worker of one of its communities."""
    with transaction(env.db.write) as session:
        worker = Staff(name="苏州网格员", kind="grid_worker", phone="13900000001", territory=community_code)
        session.add(worker)
        session.flush()
        for name, role, territory, staff_id in [
            ("planner_sz", "planner", district_code, None),
            ("operator_sz", "operator", district_code, None),
            ("inspector_sz", "inspector", district_code, None),
            ("worker_sz", "grid_worker", community_code, worker.id),
        ]:
            session.add(
                User(
                    username=name,
                    password_hash=password_hash,
                    role=role,
                    territory=territory,
                    staff_id=staff_id,
                )
            )
