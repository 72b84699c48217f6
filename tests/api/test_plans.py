"""Plans through the API on both backends: read, edit with optimistic locking, lock, validate, publish, new
draft and diff, export, and territory scoping of edits."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import COMMUNITY_A, Env

V1 = "/api/v1/plans/1/versions/1"


def grids(env: Env, base: str = V1, **params: Any) -> list[dict[str, Any]]:
    response = env.client.get(f"{base}/grids", headers=env.login("planner"), params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def grid(env: Env, code: str, base: str = V1) -> dict[str, Any]:
    response = env.client.get(f"{base}/grids/{code}", headers=env.login("planner"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def move(env: Env, unit_id: int, microgrid: str, revision: int, user: str = "planner", base: str = V1) -> Any:
    return env.client.post(
        f"{base}/moves",
        headers=env.login(user),
        json={"revision": revision, "moves": [{"unit_id": unit_id, "microgrid_code": microgrid}]},
    )


def test_read_grids_and_detail(drafted: Env) -> None:
    community = grids(drafted, community_code=COMMUNITY_A)
    assert community and all(g["grid_code"].startswith(COMMUNITY_A) for g in community)
    assert [g["grid_code"] for g in community] == sorted(g["grid_code"] for g in community)
    page = grids(drafted, limit=2, offset=1, geometry=True)
    assert len(page) == 2 and page[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    detail = grid(drafted, community[0]["grid_code"])
    assert sum(u["households"] for u in detail["units"]) == detail["households"]
    assert sum(m["households"] for m in detail["microgrids"]) == detail["households"]
    assert len({u["building_id"] for u in detail["units"]}) == detail["buildings"]
    assert drafted.client.get(f"{V1}/grids/999", headers=drafted.login("planner")).status_code == 404
    assert (
        drafted.client.get("/api/v1/plans/1/versions/9", headers=drafted.login("planner")).status_code == 404
    )


def test_move_units_households_follow(drafted: Env) -> None:
    first, last = (
        grids(drafted, community_code=COMMUNITY_A)[0],
        grids(drafted, community_code=COMMUNITY_A)[-1],
    )
    unit = grid(drafted, first["grid_code"])["units"][0]
    target = grid(drafted, last["grid_code"])["microgrids"][0]["microgrid_code"]
    response = move(drafted, unit["id"], target, revision=1)
    assert response.status_code == 200 and response.json()["revision"] == 2
    after_first, after_last = grid(drafted, first["grid_code"]), grid(drafted, last["grid_code"])
    assert after_first["households"] == first["households"] - unit["households"]
    assert after_last["households"] == last["households"] + unit["households"]
    assert after_first["status"] == "edited" and "人工调整" in after_first["note"]
    moved = [u for u in after_last["units"] if u["id"] == unit["id"]]
    assert moved and moved[0]["microgrid_code"] == target


def test_stale_revision_is_409_and_changes_nothing(drafted: Env) -> None:
    first = grids(drafted, community_code=COMMUNITY_A)[0]
    detail = grid(drafted, first["grid_code"])
    unit, target = detail["units"][0], detail["microgrids"][-1]["microgrid_code"]
    assert move(drafted, unit["id"], target, revision=1).status_code == 200
    stale = move(drafted, detail["units"][1]["id"], target, revision=1)
    assert stale.status_code == 409
    assert stale.json()["where"] == {"revision": 1, "current_revision": 2}
    assert "changed by someone else" in stale.json()["detail"]
    units = {u["id"]: u["microgrid_code"] for u in grid(drafted, first["grid_code"])["units"]}
    assert units[detail["units"][1]["id"]] == detail["units"][1]["microgrid_code"]


def test_concurrent_edits_one_wins_one_is_refused(drafted: Env) -> None:
    first = grids(drafted, community_code=COMMUNITY_A)[0]
    detail = grid(drafted, first["grid_code"])
    target = detail["microgrids"][-1]["microgrid_code"]
    drafted.login("planner")
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda u: move(drafted, u["id"], target, revision=1).status_code, detail["units"][:2])
        )
    assert sorted(results) == [200, 409]
    version = drafted.client.get(V1, headers=drafted.login("planner")).json()
    assert version["revision"] == 2


def test_locked_grid_refuses_moves(drafted: Env) -> None:
    first, second = grids(drafted, community_code=COMMUNITY_A)[:2]
    locked = drafted.client.post(
        f"{V1}/grids/{second['grid_code']}/lock",
        headers=drafted.login("planner"),
        json={"revision": 1, "locked": True},
    )
    assert locked.status_code == 200 and grid(drafted, second["grid_code"])["locked"] is True
    unit = grid(drafted, first["grid_code"])["units"][0]
    target = grid(drafted, second["grid_code"])["microgrids"][0]["microgrid_code"]
    refused = move(drafted, unit["id"], target, revision=2)
    assert refused.status_code == 409 and "locked" in refused.json()["detail"]


def test_edits_are_scoped_to_the_planners_community(drafted: Env) -> None:
    community = grids(drafted, community_code=COMMUNITY_A)
    unit = grid(drafted, community[0]["grid_code"])["units"][0]
    target = grid(drafted, community[1]["grid_code"])["microgrids"][0]["microgrid_code"]
    refused = move(drafted, unit["id"], target, revision=1, user="planner_b")
    assert refused.status_code == 403 and "outside your territory" in refused.json()["detail"]
    # the refused edit was rolled back with its revision bump, so revision 1 is still current
    assert move(drafted, unit["id"], target, revision=1, user="planner_a").status_code == 200


def test_moves_never_cross_a_community(drafted: Env) -> None:
    unit = grid(drafted, grids(drafted, community_code=COMMUNITY_A)[0]["grid_code"])["units"][0]
    other = grids(drafted, community_code="320571001002")[0]
    target = grid(drafted, other["grid_code"])["microgrids"][0]["microgrid_code"]
    refused = move(drafted, unit["id"], target, revision=1)
    assert refused.status_code == 422 and "another community" in refused.json()["detail"]


def _whole_building_unit(env: Env) -> tuple[dict[str, Any], str]:
    community = grids(env, community_code=COMMUNITY_A)
    units = [u for g in community for u in grid(env, g["grid_code"])["units"]]
    counts = Counter(u["building_id"] for u in units)
    unit = next(u for u in units if counts[u["building_id"]] == 1)
    far = next(g for g in reversed(community) if g["grid_code"] != unit["grid_code"])
    return unit, grid(env, far["grid_code"])["microgrids"][-1]["microgrid_code"]


def test_validate_and_publish_refuse_a_broken_plan(drafted: Env) -> None:
    unit, far = _whole_building_unit(drafted)
    assert move(drafted, unit["id"], far, revision=1).status_code == 200
    report = drafted.client.get(f"{V1}/validation", headers=drafted.login("planner")).json()
    assert report["valid"] is False
    assert any(v["code"] == far and v["rule"] == "microgrid_not_connected" for v in report["violations"])
    refused = drafted.client.post(f"{V1}/publish", headers=drafted.login("planner"), json={"revision": 2})
    assert refused.status_code == 422 and "fix them before publishing" in refused.json()["detail"]


def test_publish_new_draft_and_diff(drafted: Env) -> None:
    headers = drafted.login("planner")
    assert drafted.client.get(f"{V1}/validation", headers=headers).json() == {"valid": True, "violations": []}
    published = drafted.client.post(f"{V1}/publish", headers=headers, json={"revision": 1})
    assert published.status_code == 200 and published.json()["status"] == "published"
    first = grids(drafted, community_code=COMMUNITY_A)[0]
    unit = grid(drafted, first["grid_code"])["units"][0]
    frozen = move(drafted, unit["id"], "32057100100100101", revision=2)
    assert frozen.status_code == 409 and "only drafts can be edited" in frozen.json()["detail"]
    draft = drafted.client.post(
        "/api/v1/plans/1/versions",
        headers=headers,
        json={"from_version": 1, "reason": "move B000004 after survey / 现场核实"},
    )
    assert draft.status_code == 201 and (draft.json()["number"], draft.json()["status"]) == (2, "draft")
    v2 = "/api/v1/plans/1/versions/2"
    unit2 = next(
        u
        for u in grid(drafted, first["grid_code"], v2)["units"]
        if u["building_id"] == unit["building_id"]
        and u["unit"] == unit["unit"]
        and u["floor_from"] == unit["floor_from"]
    )
    target = grid(drafted, first["grid_code"], v2)["microgrids"][-1]["microgrid_code"]
    assert move(drafted, unit2["id"], target, revision=1, base=v2).status_code == 200
    diff = drafted.client.get(
        "/api/v1/plans/1/diff", headers=headers, params={"from_version": 1, "to_version": 2}
    ).json()
    assert [(m["building_id"], m["to_microgrid"]) for m in diff["units_moved"]] == [
        (unit["building_id"], target)
    ]
    assert diff["grids_added"] == [] and diff["grids_removed"] == []
    assert drafted.client.post(f"{v2}/publish", headers=headers, json={"revision": 2}).status_code == 200
    statuses = [
        v["status"] for v in drafted.client.get("/api/v1/plans/1", headers=headers).json()["versions"]
    ]
    assert statuses == ["archived", "published"]


def test_only_planners_publish(drafted: Env) -> None:
    response = drafted.client.post(f"{V1}/publish", headers=drafted.login("inspector"), json={"revision": 1})
    assert response.status_code == 403


@pytest.mark.parametrize("fmt", ["csv", "geojson", "html"])
def test_export(drafted: Env, fmt: str) -> None:
    response = drafted.client.get(f"{V1}/export", headers=drafted.login("planner"), params={"format": fmt})
    assert response.status_code == 200, response.text
    total = sum(g["households"] for g in grids(drafted, limit=1000))
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert sum(int(r["households"]) for r in rows) == total
    elif fmt == "geojson":
        names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
        assert {"grids.geojson", "microgrids.geojson"} <= {Path(n).name for n in names}
    else:
        assert b"leaflet" in response.content.lower() and response.headers["content-type"].startswith(
            "text/html"
        )
