"""The planner page's edits through the API on both backends: moves by building with tallies and undo, tallies
of a version, merge (and its refusals), split, re-gridding a selection as a job, the map-friendly diff and the
notice-board print of one grid."""

from __future__ import annotations

import time
from typing import Any

import shapely
import shapely.geometry
from sqlalchemy import select

from api.db import transaction
from api.models import Grid
from tests.api.conftest import COMMUNITY_A, COMMUNITY_B, Env
from tests.api.test_plans import V1, grid, grids

H = "planner"


def post(env: Env, path: str, body: dict[str, Any], user: str = H) -> Any:
    return env.client.post(f"{V1}/{path}", headers=env.login(user), json=body)


def tallies(env: Env) -> dict[str, Any]:
    response = env.client.get(f"{V1}/tallies", headers=env.login(H))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def adjacent_pair(env: Env, community: str = COMMUNITY_A) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two grids of ``community`` that share a boundary, smallest total first."""
    rows = grids(env, community_code=community, geometry=True, limit=1000)
    shapes = [shapely.geometry.shape(r["geometry"]) for r in rows]
    pairs = [
        (rows[i], rows[j])
        for i in range(len(rows))
        for j in range(i + 1, len(rows))
        if shapely.length(shapely.intersection(shapes[i].boundary, shapes[j].boundary)) > 0
    ]
    assert pairs, f"no adjacent grids in {community}"
    return min(pairs, key=lambda p: p[0]["households"] + p[1]["households"])


def small_building(env: Env, code: str) -> tuple[str, int, list[int]]:
    """The building of grid ``code`` with the fewest households: its id, households and unit ids there."""
    units = grid(env, code)["units"]
    totals: dict[str, int] = {}
    for unit in units:
        totals[unit["building_id"]] = totals.get(unit["building_id"], 0) + unit["households"]
    building = min(totals, key=lambda b: (totals[b], b))
    return building, totals[building], sorted(u["id"] for u in units if u["building_id"] == building)


def test_move_building_into_a_neighbour_answers_both_tallies_and_undo_restores(drafted: Env) -> None:
    source, target = adjacent_pair(drafted)
    building, households, unit_ids = small_building(drafted, source["grid_code"])
    move = {"building_id": building, "grid_code": target["grid_code"]}
    response = post(drafted, "moves", {"revision": 1, "moves": [move]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"] == 2
    assert sorted(m["unit_id"] for m in body["moved"]) == unit_ids
    assert {(m["from_grid"], m["to_grid"]) for m in body["moved"]} == {
        (source["grid_code"], target["grid_code"])
    }
    after = {g["grid_code"]: g for g in body["grids"]}
    assert set(after) == {source["grid_code"], target["grid_code"]}
    assert after[source["grid_code"]]["households"] == source["households"] - households
    assert after[target["grid_code"]]["households"] == target["households"] + households
    for tally in after.values():
        assert tally["in_range"] == (300 <= tally["households"] <= 500)
        assert ("out_of_range" in tally["warnings"]) == (not tally["in_range"] and tally["households"] > 0)
        assert sum(m["households"] for m in tally["microgrids"]) == tally["households"]
    undo = [{"unit_id": m["unit_id"], "microgrid_code": m["from_microgrid"]} for m in body["moved"]]
    undone = post(drafted, "moves", {"revision": 2, "moves": undo}).json()
    restored = {g["grid_code"]: g["households"] for g in undone["grids"]}
    assert restored == {source["grid_code"]: source["households"], target["grid_code"]: target["households"]}


def test_painting_a_grid_out_of_range_warns(drafted: Env) -> None:
    source, target = adjacent_pair(drafted)
    units = grid(drafted, source["grid_code"])["units"]
    buildings = sorted({u["building_id"] for u in units})
    moves = [{"building_id": b, "grid_code": target["grid_code"]} for b in buildings]
    body = post(drafted, "moves", {"revision": 1, "moves": moves}).json()
    emptied = next(g for g in body["grids"] if g["grid_code"] == source["grid_code"])
    assert emptied["households"] == 0 and emptied["warnings"][0] == "empty"
    grown = next(g for g in body["grids"] if g["grid_code"] == target["grid_code"])
    assert grown["households"] == source["households"] + target["households"]
    assert grown["in_range"] is (grown["households"] <= 500)


def test_a_building_already_in_the_grid_does_not_move(drafted: Env) -> None:
    code = grids(drafted, community_code=COMMUNITY_A)[0]["grid_code"]
    building = small_building(drafted, code)[0]
    body = post(drafted, "moves", {"revision": 1, "moves": [{"building_id": building, "grid_code": code}]})
    assert body.json()["moved"] == [] and body.json()["grids"] == []


def test_bad_moves_say_what_and_where_and_change_nothing(drafted: Env) -> None:
    code = grids(drafted, community_code=COMMUNITY_A)[0]["grid_code"]
    both = post(
        drafted, "moves", {"revision": 1, "moves": [{"unit_id": 1, "building_id": "x", "grid_code": code}]}
    )
    assert both.status_code == 422 and "exactly one of unit_id and building_id" in both.text
    nowhere = post(drafted, "moves", {"revision": 1, "moves": [{"unit_id": 1}]})
    assert nowhere.status_code == 422 and "grid_code or microgrid_code" in nowhere.text
    unknown = post(drafted, "moves", {"revision": 1, "moves": [{"building_id": "NOPE", "grid_code": code}]})
    assert unknown.status_code == 404 and unknown.json()["where"] == {"field": "moves[0]"}
    building = small_building(drafted, code)[0]
    missing_grid = post(
        drafted,
        "moves",
        {"revision": 1, "moves": [{"building_id": building, "grid_code": COMMUNITY_A + "999"}]},
    )
    assert missing_grid.status_code == 422 and missing_grid.json()["where"] == {"field": "moves[0].grid_code"}
    assert drafted.client.get(V1, headers=drafted.login(H)).json()["revision"] == 1


def test_tallies_cover_the_version_with_rules_and_warnings(drafted: Env) -> None:
    body = tallies(drafted)
    assert body["rules"] == {"grid_min": 300, "grid_max": 500, "micro_min": 50, "micro_max": 80}
    assert (body["revision"], body["status"]) == (1, "draft")
    listed = grids(drafted, limit=1000)
    assert [g["grid_code"] for g in body["grids"]] == [g["grid_code"] for g in listed]
    for tally in body["grids"]:
        assert tally["connected"] and not tally["crosses_community"]  # the gridder's plan is clean
        assert ("out_of_range" in tally["warnings"]) == (not tally["in_range"])
    scoped = drafted.client.get(f"{V1}/tallies", headers=drafted.login("planner_b")).json()
    assert scoped["grids"] and all(g["grid_code"].startswith(COMMUNITY_B) for g in scoped["grids"])


def test_merge_adjacent_grids_and_refusals(drafted: Env) -> None:
    a, b = adjacent_pair(drafted)
    total = a["households"] + b["households"]
    response = post(drafted, "merge", {"revision": 1, "grid_codes": [a["grid_code"], b["grid_code"]]})
    if total > 500:
        assert response.status_code == 422 and "above the maximum 500" in response.json()["detail"]
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["removed"] == [b["grid_code"]] and body["grids"][0]["households"] == total
    merged = grid(drafted, a["grid_code"])
    assert sum(u["households"] for u in merged["units"]) == total
    assert {m["microgrid_code"][:15] for m in merged["microgrids"]} == {a["grid_code"]}
    assert len({m["microgrid_code"] for m in merged["microgrids"]}) == len(merged["microgrids"])
    assert drafted.client.get(f"{V1}/grids/{b['grid_code']}", headers=drafted.login(H)).status_code == 404


def test_merge_refuses_other_communities_and_non_neighbours(drafted: Env) -> None:
    a = grids(drafted, community_code=COMMUNITY_A)
    b = grids(drafted, community_code=COMMUNITY_B)
    other = post(drafted, "merge", {"revision": 1, "grid_codes": [a[0]["grid_code"], b[0]["grid_code"]]})
    assert other.status_code == 422 and "different communities" in other.json()["detail"]
    rows = grids(drafted, community_code=COMMUNITY_A, geometry=True)
    shapes = {r["grid_code"]: shapely.geometry.shape(r["geometry"]) for r in rows}
    first = rows[0]["grid_code"]
    far = next(c for c, s in shapes.items() if not s.intersects(shapes[first]))
    apart = post(drafted, "merge", {"revision": 1, "grid_codes": [first, far]})
    assert apart.status_code == 422 and "do not share a boundary" in apart.json()["detail"]
    assert apart.json()["where"] == {"grid_codes": [first, far]}


def test_split_a_grid_in_two(drafted: Env) -> None:
    big = max(grids(drafted, community_code=COMMUNITY_A), key=lambda g: g["households"])
    response = post(drafted, f"grids/{big['grid_code']}/split", {"revision": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    parts = body["grids"]
    assert len(parts) == 2 and body["removed"] == [] and body["revision"] == 2
    assert big["grid_code"] in {p["grid_code"] for p in parts}
    assert sum(p["households"] for p in parts) == big["households"]
    report = drafted.client.get(f"{V1}/validation", headers=drafted.login(H)).json()
    codes = {p["grid_code"] for p in parts}
    assert not [v for v in report["violations"] if v["code"] and v["code"][:15] in codes], report


def test_regrid_selection_job_keeps_the_rest(drafted: Env) -> None:
    a, b = adjacent_pair(drafted)
    before = {g["grid_code"]: g["households"] for g in grids(drafted, limit=1000)}
    response = post(drafted, "regrid", {"revision": 1, "grid_codes": [a["grid_code"], b["grid_code"]]})
    assert response.status_code == 202, response.text
    job = _wait(drafted, response.json()["id"])
    assert job["status"] == "done", job
    assert job["result"]["revision"] == 2
    after = {g["grid_code"]: g["households"] for g in grids(drafted, limit=1000)}
    selected = {a["grid_code"], b["grid_code"]}
    new = set(job["result"]["grids"])
    assert sum(after[c] for c in new) == a["households"] + b["households"]
    assert {c: h for c, h in after.items() if c not in new} == {
        c: h for c, h in before.items() if c not in selected
    }
    report = drafted.client.get(f"{V1}/validation", headers=drafted.login(H)).json()
    assert report["valid"], report["violations"][:3]


def test_regrid_refuses_unknown_and_stale(drafted: Env) -> None:
    code = grids(drafted, community_code=COMMUNITY_A)[0]["grid_code"]
    unknown = post(drafted, "regrid", {"revision": 1, "grid_codes": [COMMUNITY_A + "999"]})
    assert unknown.status_code == 404 and unknown.json()["where"] == {"grid_code": COMMUNITY_A + "999"}
    stale = post(drafted, "regrid", {"revision": 7, "grid_codes": [code]})
    assert stale.status_code == 409 and "changed by someone else" in stale.json()["detail"]


def _wait(env: Env, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = env.client.get(f"/api/v1/jobs/{job_id}", headers=env.login(H)).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_diff_names_changed_buildings_and_grids(drafted: Env) -> None:
    headers = drafted.login(H)
    assert drafted.client.post(f"{V1}/publish", headers=headers, json={"revision": 1}).status_code == 200
    draft = drafted.client.post(
        "/api/v1/plans/1/versions", headers=headers, json={"from_version": 1, "reason": "edit"}
    )
    assert draft.status_code == 201
    v2 = "/api/v1/plans/1/versions/2"
    source, target = adjacent_pair(drafted)
    building = small_building(drafted, source["grid_code"])[0]
    moved = drafted.client.post(
        f"{v2}/moves",
        headers=headers,
        json={
            "revision": 1,
            "moves": [{"building_id": building, "grid_code": target["grid_code"]}],
        },
    )
    assert moved.status_code == 200, moved.text
    diff = drafted.client.get(
        "/api/v1/plans/1/diff", headers=headers, params={"from_version": 1, "to_version": 2}
    ).json()
    assert diff["buildings_changed"] == [building]
    assert diff["grids_changed"] == sorted([source["grid_code"], target["grid_code"]])


def test_print_one_grid(drafted: Env) -> None:
    code = grids(drafted, community_code=COMMUNITY_A)[0]["grid_code"]
    response = drafted.client.get(f"{V1}/grids/{code}/print", headers=drafted.login(H))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert code in response.headers["content-disposition"]
    png = drafted.client.get(f"{V1}/grids/{code}/print", headers=drafted.login(H), params={"format": "png"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    missing = drafted.client.get(f"{V1}/grids/{COMMUNITY_A}999/print", headers=drafted.login(H))
    assert missing.status_code == 404


def test_a_building_painted_into_a_distant_grid_makes_it_disconnected(drafted: Env) -> None:
    rows = grids(drafted, community_code=COMMUNITY_A, geometry=True)
    shapes = {r["grid_code"]: shapely.geometry.shape(r["geometry"]) for r in rows}
    source = rows[0]["grid_code"]
    far = next(c for c, s in shapes.items() if s.distance(shapes[source]) > 0)
    building = small_building(drafted, source)[0]
    body = post(
        drafted, "moves", {"revision": 1, "moves": [{"building_id": building, "grid_code": far}]}
    ).json()
    tally = next(g for g in body["grids"] if g["grid_code"] == far)
    assert tally["connected"] is False and "disconnected" in tally["warnings"]


def test_a_grid_reaching_outside_its_community_is_flagged(drafted: Env) -> None:
    code = grids(drafted, community_code=COMMUNITY_A)[0]["grid_code"]
    with transaction(drafted.db.write) as session:
        row = session.scalars(select(Grid).where(Grid.grid_code == code)).one()
        row.geom = shapely.union(row.geom, shapely.buffer(row.geom.exterior, 0.001))
    tally = next(g for g in tallies(drafted)["grids"] if g["grid_code"] == code)
    assert tally["crosses_community"] is True and "crosses_community" in tally["warnings"]


def test_split_along_a_drawn_line(drafted: Env) -> None:
    row = max(grids(drafted, community_code=COMMUNITY_A, geometry=True), key=lambda g: g["households"])
    shape = shapely.geometry.shape(row["geometry"])
    _, miny, _, maxy = shape.bounds
    middle = shape.centroid.x
    line = [[middle, miny - 0.001], [middle, maxy + 0.001]]
    response = post(drafted, f"grids/{row['grid_code']}/split", {"revision": 1, "line": line})
    assert response.status_code == 200, response.text
    parts = response.json()["grids"]
    assert len(parts) == 2 and sum(p["households"] for p in parts) == row["households"]
    west = next(p for p in parts if p["grid_code"] == row["grid_code"])
    west_shape = shapely.geometry.shape(grid(drafted, west["grid_code"])["geometry"])
    assert west_shape.centroid.x < middle  # the first part keeps the code
    codes = {p["grid_code"] for p in parts}
    report = drafted.client.get(f"{V1}/validation", headers=drafted.login(H)).json()
    assert not [v for v in report["violations"] if v["code"] and v["code"][:15] in codes], report


def test_a_line_that_misses_the_grid_is_refused(drafted: Env) -> None:
    row = grids(drafted, community_code=COMMUNITY_A, geometry=True)[0]
    _, miny, maxx, maxy = shapely.geometry.shape(row["geometry"]).bounds
    line = [[maxx + 0.01, miny], [maxx + 0.01, maxy]]
    response = post(drafted, f"grids/{row['grid_code']}/split", {"revision": 1, "line": line})
    assert response.status_code == 422 and "exactly two" in response.json()["detail"]
    assert response.json()["where"] == {"field": "line", "grid_code": row["grid_code"]}
    bad = post(drafted, f"grids/{row['grid_code']}/split", {"revision": 1, "line": [[500, 0], [0, 0]]})
    assert bad.status_code == 422
    assert drafted.client.get(V1, headers=drafted.login(H)).json()["revision"] == 1
