"""Patrol missions through the API: plan over grids of a stored plan, read back, download in each format."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

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
