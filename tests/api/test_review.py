"""Reviewing flags through the API on both backends: the queue, accept / reject / duplicate / change category /
accept a frame, concurrent review, evidence files, scoping and the export of rejected flags."""

from __future__ import annotations

import io
import threading
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import shapely
from PIL import Image

from api.db import transaction
from api.geometry import spatial
from api.models import Flag
from tests.api.conftest import COMMUNITY_A, COMMUNITY_B, Env, file


@pytest.fixture
def city(stored: Env) -> Env:
    return stored


def image(env: Env, relative: str, size: tuple[int, int] = (64, 48)) -> str:
    path = env.settings.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 90, 200)).save(path, format="JPEG")
    return relative


def flag(env: Env, point: tuple[float, float], category: str = "0507", **extra: Any) -> dict[str, Any]:
    response = env.client.post(
        "/api/v1/flags",
        headers=env.login("operator"),
        json={"category": category, "lon": point[0], "lat": point[1], "score": 0.8, **extra},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def review(env: Env, flag_id: int, action: str, user: str = "inspector", **extra: Any) -> Any:
    return env.client.post(
        f"/api/v1/flags/{flag_id}/review", headers=env.login(user), json={"action": action, **extra}
    )


def decided(env: Env, flag_id: int, action: str, **extra: Any) -> list[dict[str, Any]]:
    response = review(env, flag_id, action, **extra)
    assert response.status_code == 200, response.text
    flags: list[dict[str, Any]] = response.json()["flags"]
    return flags


def test_new_flags_wait_in_the_queue_oldest_or_most_severe_first(
    city: Env, points: dict[str, tuple[float, float]]
) -> None:
    mild = flag(city, points[COMMUNITY_A], severity=1)
    severe = flag(city, points[COMMUNITY_A], category="0505", severity=3, rule="fire_lane")
    other = flag(city, points[COMMUNITY_B])
    assert (mild["status"], mild["case_id"], mild["category_zh"]) == ("new", None, "乱堆物堆料")
    assert (severe["category_en"], severe["rule"]) == ("illegal car parking", "fire_lane")
    headers = city.login("inspector")
    oldest = city.client.get("/api/v1/flags/queue", headers=headers).json()
    assert oldest["total"] == 3 and [f["id"] for f in oldest["flags"]] == [
        mild["id"],
        severe["id"],
        other["id"],
    ]
    worst = city.client.get("/api/v1/flags/queue?order=severity&limit=1", headers=headers).json()
    assert (worst["total"], [f["id"] for f in worst["flags"]]) == (3, [severe["id"]])
    scoped = city.client.get("/api/v1/flags/queue", headers=city.login("inspector_b")).json()
    assert [f["id"] for f in scoped["flags"]] == [other["id"]]
    assert (
        city.client.get(f"/api/v1/flags/{mild['id']}", headers=city.login("inspector_b")).status_code == 404
    )
    assert review(city, mild["id"], "accept", user="inspector_b").status_code == 404


def test_accept_files_a_registered_machine_case(city: Env, points: dict[str, tuple[float, float]]) -> None:
    found = flag(city, points[COMMUNITY_A], category="0507", severity=3, rule="fire_lane")
    [accepted] = decided(city, found["id"], "accept", note="堆物堵塞消防通道")
    assert accepted["status"] == "accepted" and accepted["case_id"] is not None
    case = city.client.get(f"/api/v1/cases/{accepted['case_id']}", headers=city.login("inspector")).json()
    assert (case["source"], case["state"], case["flag_id"], case["priority"]) == (
        "machine",
        "registered",
        found["id"],
        "urgent",
    )
    assert [e["action"] for e in case["events"]] == ["report", "triage", "register"]
    assert "乱堆物堆料" in case["description"] and "fire_lane" in case["description"]
    again = review(city, found["id"], "reject")
    assert again.status_code == 409 and "already reviewed (now accepted)" in again.json()["detail"]
    assert review(city, found["id"], "accept", user="operator").status_code == 403
    queue = city.client.get("/api/v1/flags/queue", headers=city.login("inspector")).json()
    assert queue["total"] == 0


def test_reject_keeps_a_hard_negative_and_exports_it(
    city: Env, points: dict[str, tuple[float, float]]
) -> None:
    evidence = image(city, "flights/1/evidence/a.jpg")
    found = flag(city, points[COMMUNITY_A], category="0101", class_name="shed", evidence_path=evidence)
    no_image = flag(city, points[COMMUNITY_A], category="0102")
    kept = flag(city, points[COMMUNITY_A])
    assert decided(city, found["id"], "reject", note="shadow of a tree")[0]["status"] == "rejected"
    decided(city, no_image["id"], "reject")
    headers = city.login("inspector")
    negatives = city.client.get("/api/v1/flags?status=rejected", headers=headers).json()
    assert sorted(f["id"] for f in negatives) == [found["id"], no_image["id"]]
    assert all(f["case_id"] is None for f in negatives)
    export = city.client.get("/api/v1/flags/rejected/export", headers=headers)
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    name = f"images/flag-{found['id']}.jpg"
    assert archive.read(name) == (city.settings.data_dir / evidence).read_bytes()
    assert archive.read(f"labels/flag-{found['id']}.txt") == b""
    assert archive.read("negatives.txt").decode() == f"{name}\n"
    rows = archive.read("negatives.csv").decode().splitlines()
    assert rows[1].startswith(f"{found['id']},0101,shed,0.8") and rows[1].endswith(name)
    assert [int(r.split(",")[0]) for r in rows[1:]] == [found["id"], no_image["id"]] != [kept["id"]]
    assert city.client.get("/api/v1/flags/rejected/export", headers=city.login("worker")).status_code == 403


def test_duplicate_candidates_and_marking(city: Env, points: dict[str, tuple[float, float]]) -> None:
    lon, lat = points[COMMUNITY_A]
    case = file(city, (lon + 0.001, lat))  # about 95 m east, same category, open
    file(city, (lon, lat), category="0505")  # other category
    file(city, (lon + 0.01, lat))  # about 950 m away
    twin = flag(city, (lon, lat + 0.0005))  # about 55 m north
    found = flag(city, (lon, lat))
    headers = city.login("inspector")
    candidates = city.client.get(f"/api/v1/flags/{found['id']}/duplicates", headers=headers).json()
    assert [(c["kind"], c["id"]) for c in candidates] == [("flag", twin["id"]), ("case", case["id"])]
    assert 40 < candidates[0]["distance_m"] < 70 and 80 < candidates[1]["distance_m"] < 110
    assert review(city, found["id"], "duplicate").status_code == 422
    both = review(city, found["id"], "duplicate", duplicate_of_case=case["id"], duplicate_of_flag=twin["id"])
    assert both.status_code == 422
    far = file(city, points[COMMUNITY_B])
    wrong = review(city, found["id"], "duplicate", duplicate_of_case=far["id"])
    assert wrong.status_code == 422 and "not a duplicate candidate" in wrong.json()["detail"]
    [marked] = decided(city, found["id"], "duplicate", duplicate_of_case=case["id"])
    assert (marked["status"], marked["case_id"]) == ("duplicate", case["id"])
    [of_flag] = decided(city, twin["id"], "duplicate", duplicate_of_flag=flag(city, (lon, lat))["id"])
    assert (of_flag["status"], of_flag["case_id"]) == ("duplicate", None)


def test_change_category_keeps_the_flag_in_the_queue(
    city: Env, points: dict[str, tuple[float, float]]
) -> None:
    found = flag(city, points[COMMUNITY_A], category="0507")
    [changed] = decided(city, found["id"], "recategorize", category="0102")
    assert (changed["category"], changed["category_zh"], changed["status"]) == ("0102", "暴露垃圾", "new")
    unknown = review(city, found["id"], "recategorize", category="9999")
    assert unknown.status_code == 422 and "valid codes: 0101 私搭乱建" in unknown.json()["detail"]
    assert review(city, found["id"], "recategorize").json()["where"] == {"field": "category"}
    decided(city, found["id"], "reject")
    assert review(city, found["id"], "recategorize", category="0101").status_code == 409


def test_accept_a_whole_frame(city: Env, points: dict[str, tuple[float, float]]) -> None:
    lon, lat = points[COMMUNITY_A]
    frame = image(city, "flights/1/frames/f0001.jpg", (400, 300))
    same = [
        flag(city, (lon + i * 0.0001, lat), frame_path=frame, frame_box=[10 + i, 10, 50, 60])
        for i in range(3)
    ]
    elsewhere = flag(city, (lon, lat), frame_path="flights/1/frames/f0002.jpg")
    decided(city, same[2]["id"], "reject")
    accepted = decided(city, same[0]["id"], "accept_frame")
    assert [(f["id"], f["status"]) for f in accepted] == [
        (same[0]["id"], "accepted"),
        (same[1]["id"], "accepted"),
    ]
    assert len({f["case_id"] for f in accepted}) == 2
    left = city.client.get("/api/v1/flags/queue", headers=city.login("inspector")).json()["flags"]
    assert [f["id"] for f in left] == [elsewhere["id"]]


def test_concurrent_reviews_of_one_flag_one_wins(city: Env, points: dict[str, tuple[float, float]]) -> None:
    found = flag(city, points[COMMUNITY_A])
    city.login("inspector")
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def decide(action: str) -> None:
        barrier.wait()
        statuses.append(review(city, found["id"], action).status_code)

    threads = [threading.Thread(target=decide, args=(a,)) for a in ("accept", "reject")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409]
    final = city.client.get(f"/api/v1/flags/{found['id']}", headers=city.login("inspector")).json()
    assert final["status"] in ("accepted", "rejected")
    assert (final["case_id"] is not None) == (final["status"] == "accepted")


def test_evidence_and_frame_images(city: Env, points: dict[str, tuple[float, float]]) -> None:
    evidence, frame = image(city, "e/1.jpg"), image(city, "f/1.jpg", (320, 240))
    found = flag(
        city, points[COMMUNITY_A], evidence_path=evidence, frame_path=frame, frame_box=[5, 6, 70, 80]
    )
    assert (found["has_evidence"], found["has_frame"], found["frame_box"]) == (True, True, [5, 6, 70, 80])
    headers = city.login("inspector")
    crop = city.client.get(f"/api/v1/flags/{found['id']}/evidence.jpg", headers=headers)
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert crop.content == (city.settings.data_dir / evidence).read_bytes()
    full = city.client.get(f"/api/v1/flags/{found['id']}/frame.jpg", headers=headers)
    assert Image.open(io.BytesIO(full.content)).size == (320, 240)
    assert city.client.get(f"/api/v1/flags/{found['id']}/frame.jpg").status_code == 401
    bare = flag(city, points[COMMUNITY_A])
    missing = city.client.get(f"/api/v1/flags/{bare['id']}/evidence.jpg", headers=headers)
    assert missing.status_code == 404 and "no evidence" in missing.json()["detail"]


@pytest.mark.parametrize("path", ["../secret.jpg", "a/../../secret.jpg"])
def test_paths_escaping_the_data_folder_are_refused(
    city: Env, points: dict[str, tuple[float, float]], path: str, tmp_path: Path
) -> None:
    lon, lat = points[COMMUNITY_A]
    posted = city.client.post(
        "/api/v1/flags",
        headers=city.login("operator"),
        json={"category": "0507", "lon": lon, "lat": lat, "evidence_path": path},
    )
    assert posted.status_code == 422 and posted.json()["where"] == {"field": "evidence_path"}
    (city.settings.data_dir.parent / "secret.jpg").write_bytes(b"secret")
    with transaction(city.db.write) as session:
        row = Flag(
            category="0507",
            lon=lon,
            lat=lat,
            territory=COMMUNITY_A,
            status="new",
            evidence_path=path,
            **spatial(shapely.Point(lon, lat)),
        )
        session.add(row)
        session.flush()
        flag_id = row.id
    response = city.client.get(f"/api/v1/flags/{flag_id}/evidence.jpg", headers=city.login("inspector"))
    assert response.status_code == 403 and "outside the data folder" in response.json()["detail"]


def test_flags_need_a_known_category_and_a_detector_role(
    city: Env, points: dict[str, tuple[float, float]]
) -> None:
    lon, lat = points[COMMUNITY_A]
    body = {"category": "clutter", "lon": lon, "lat": lat}
    unknown = city.client.post("/api/v1/flags", headers=city.login("operator"), json=body)
    assert unknown.status_code == 422 and "valid codes: 0101 私搭乱建" in unknown.json()["detail"]
    worker = city.client.post(
        "/api/v1/flags", headers=city.login("worker"), json={**body, "category": "0507"}
    )
    assert worker.status_code == 403


def test_sighting_times_need_a_time_zone(city: Env, points: dict[str, tuple[float, float]]) -> None:
    lon, lat = points[COMMUNITY_A]
    body = {"category": "0505", "lon": lon, "lat": lat, "first_seen": "2026-05-01T08:00:00"}
    naive = city.client.post("/api/v1/flags", headers=city.login("operator"), json=body)
    assert naive.status_code == 422 and "timezone" in naive.text
    aware = flag(
        city, (lon, lat), first_seen="2026-05-01T08:00:00+08:00", last_seen="2026-05-01T08:00:05+08:00"
    )
    back = city.client.get(f"/api/v1/flags/{aware['id']}", headers=city.login("inspector")).json()
    assert datetime.fromisoformat(back["first_seen"]) == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
