"""The issue's acceptance walk through the API: a planner imports, grids and publishes; an operator's flag
goes through every step to closed; the case reads back through Open311 as closed."""

from __future__ import annotations

from pathlib import Path

from tests.api.conftest import COMMUNITY_A, Env, import_demo, ok


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
