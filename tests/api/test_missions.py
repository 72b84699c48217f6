"""Patrol missions through the API: plan over grids of a stored plan, read back, download in each format, preview
on the map, upload to the simulator vehicle over MAVLink."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import pytest
import shapely
from shapely.geometry import shape

from api import missions as api_missions
from api.db import transaction
from api.geometry import spatial
from api.models import Mission, Zone
from drone.items import sortie_items
from tests.api.conftest import COMMUNITY_A, Env


def first_grids(env: Env, n: int) -> list[dict[str, object]]:
    response = env.client.get(
        "/api/v1/plans/1/versions/1/grids",
        headers=env.login("operator"),
        params={"community_code": COMMUNITY_A, "limit": n, "geometry": True},
    )
    grids: list[dict[str, object]] = response.json()
    return grids


def test_plan_read_and_download(drafted: Env) -> None:
    grids = first_grids(drafted, 2)
    body = {"plan_id": 1, "version": 1, "grid_codes": [g["grid_code"] for g in grids], "altitude_m": 80}
    created = drafted.client.post("/api/v1/missions", headers=drafted.login("operator"), json=body)
    assert created.status_code == 201, created.text
    mission = created.json()
    assert mission["grid_codes"] == body["grid_codes"] and mission["sorties"]
    lons = [c[0] for g in grids for ring in g["geometry"]["coordinates"] for c in ring]  # type: ignore[index]
    lats = [c[1] for g in grids for ring in g["geometry"]["coordinates"] for c in ring]  # type: ignore[index]
    points = [w for s in mission["sorties"] for w in s["waypoints"]]
    assert all(
        min(lons) - 0.002 < lon < max(lons) + 0.002 and min(lats) - 0.002 < lat < max(lats) + 0.002
        for lon, lat, _ in points
    )
    assert {alt for _, _, alt in points} == {80.0}
    again = drafted.client.get(f"/api/v1/missions/{mission['id']}", headers=drafted.login("inspector")).json()
    assert again == mission
    plan_file = drafted.client.get(
        f"/api/v1/missions/{mission['id']}/download",
        headers=drafted.login("operator"),
        params={"format": "plan"},
    )
    assert plan_file.status_code == 200
    if plan_file.headers["content-type"] == "application/zip":
        names = zipfile.ZipFile(io.BytesIO(plan_file.content)).namelist()
        assert names and all(n.endswith(".plan") for n in names)
    else:
        assert json.loads(plan_file.content)["fileType"] == "Plan"
    kmz = drafted.client.get(
        f"/api/v1/missions/{mission['id']}/download",
        headers=drafted.login("operator"),
        params={"format": "kmz"},
    )
    assert kmz.status_code == 200 and zipfile.is_zipfile(io.BytesIO(kmz.content))


@pytest.mark.parametrize(
    ("user", "codes", "status"),
    [
        ("planner", None, 403),
        ("operator", ["320571001001999"], 422),
    ],
)
def test_refusals(drafted: Env, user: str, codes: list[str] | None, status: int) -> None:
    grid_codes = codes or [str(first_grids(drafted, 1)[0]["grid_code"])]
    response = drafted.client.post(
        "/api/v1/missions",
        headers=drafted.login(user),
        json={"plan_id": 1, "version": 1, "grid_codes": grid_codes},
    )
    assert response.status_code == status, response.text
    assert drafted.client.get("/api/v1/missions/1", headers=drafted.login("operator")).status_code == 404


#: A short patrol: one small grid, high and with little overlap, so the simulator flies few frames.
SHORT = {"altitude_m": 120, "front_overlap": 0.5, "side_overlap": 0.3}


def small_grid(env: Env) -> dict[str, Any]:
    """The smallest grid of community A, with its geometry."""
    response = env.client.get(
        "/api/v1/plans/1/versions/1/grids",
        headers=env.login("operator"),
        params={"community_code": COMMUNITY_A, "limit": 100, "geometry": True},
    )
    assert response.status_code == 200, response.text
    grids: list[dict[str, Any]] = response.json()
    return min(grids, key=lambda g: shape(g["geometry"]).area)


def plan_mission(env: Env, **extra: Any) -> dict[str, Any]:
    grid = small_grid(env)
    body = {"plan_id": 1, "version": 1, "grid_codes": [grid["grid_code"]], **SHORT, **extra}
    response = env.client.post("/api/v1/missions", headers=env.login("operator"), json=body)
    assert response.status_code == 201, response.text
    mission: dict[str, Any] = response.json()
    return mission


def wait_job(env: Env, job_id: int, user: str = "operator", timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = env.client.get(f"/api/v1/jobs/{job_id}", headers=env.login(user)).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_cameras_and_preview(drafted: Env) -> None:
    cameras = drafted.client.get("/api/v1/cameras", headers=drafted.login("operator")).json()
    assert {"mavic3e", "m30"} <= {c["id"] for c in cameras}
    assert all(c["focal_length_mm"] > 0 and c["image_width_px"] > 0 for c in cameras)
    _, miny, maxx, maxy = shape(small_grid(drafted)["geometry"]).bounds
    no_fly = shapely.box(maxx + 0.0008, miny, maxx + 0.0015, maxy)  # beside the grid: shown, not in the way
    with transaction(drafted.db.write) as session:
        session.add(Zone(district_id=1, kind="no_fly", zone_id="NF-1", **spatial(no_fly)))
    mission = plan_mission(drafted, camera="m30")
    assert mission["params"]["camera"] == "m30"
    preview = drafted.client.get(
        f"/api/v1/missions/{mission['id']}/preview", headers=drafted.login("operator")
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    kinds = [f["properties"]["kind"] for f in body["features"]]
    paths = [f for f in body["features"] if f["properties"]["kind"] == "path"]
    summary = body["summary"]
    assert len(paths) == summary["sorties"] == len(mission["sorties"])
    assert summary["photos"] == kinds.count("photo") > 0 and kinds.count("takeoff") >= 1
    assert summary["distance_m"] == pytest.approx(sum(p["properties"]["distance_m"] for p in paths), abs=0.5)
    zones = [f for f in body["features"] if f["properties"]["kind"] == "no_fly"]
    assert [z["properties"]["zone_id"] for z in zones] == ["NF-1"]
    assert shape(zones[0]["geometry"]).equals(no_fly)
    assert summary["altitude_m"] == 120 and summary["camera"]["id"] == "m30" and summary["flight_time_s"] > 0
    bad = {"plan_id": 1, "version": 1, "grid_codes": [mission["grid_codes"][0]], "camera": "no-such-camera"}
    refused = drafted.client.post("/api/v1/missions", headers=drafted.login("operator"), json=bad)
    assert refused.status_code == 422 and refused.json()["where"] == {"field": "camera"}


def test_upload_to_the_simulator_round_trips(drafted: Env) -> None:

    mission = plan_mission(drafted)
    started = drafted.client.post(
        f"/api/v1/missions/{mission['id']}/upload",
        headers=drafted.login("operator"),
        json={"connection": "sim"},
    )
    assert started.status_code == 202, started.text
    job = wait_job(drafted, started.json()["job_id"])
    assert job["status"] == "done", job["message"]
    with drafted.db.read() as session:
        row = session.get(Mission, mission["id"])
        assert row is not None
        planned = api_missions.plan_mission(session, api_missions.request_of(row))
    expected = len(sortie_items(planned.sorties[0], planned)) - 1
    assert job["result"]["verified"] is True and job["result"]["mission"] == expected
    assert job["result"].get("fence", 0) == sum(len(p.vertices) for p in planned.fence)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"connection": "bogus"}, 422, "connection"),  # malformed: refused before any job starts
        (
            {"connection": "tcp:127.0.0.1:9"},
            202,
            "tcp:127.0.0.1:9",
        ),  # nothing listens: the job fails, says where
        ({"connection": "sim", "sortie": 7}, 202, "no sortie 7"),  # the mission has one sortie
    ],
)
def test_upload_refusals(drafted: Env, body: dict[str, Any], status: int, reason: str) -> None:
    mission = plan_mission(drafted)
    response = drafted.client.post(
        f"/api/v1/missions/{mission['id']}/upload", headers=drafted.login("operator"), json=body
    )
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["where"] == {"field": reason}
        return
    job = wait_job(drafted, response.json()["job_id"])
    assert job["status"] == "failed" and reason in job["message"] and job["finished_at"] is not None
