"""The closed loop through the API on both backends: every step, forbidden steps, scoping, duplicates,
deadlines, flags kept as hard negatives, photos and per-grid statistics."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update

from api.db import transaction
from api.models import Case, utcnow
from tests.api.conftest import COMMUNITY_A, COMMUNITY_B, Env, file, ok, step


@pytest.fixture
def loop(stored: Env) -> Env:
    return stored


def photo(env: Env, case_id: int, user: str = "worker") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="JPEG")
    response = env.client.post(
        f"/api/v1/cases/{case_id}/photos",
        headers=env.login(user),
        files={"file": ("after.jpg", buffer.getvalue(), "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["photo"])


def dispatched(env: Env, point: tuple[float, float], **extra: Any) -> dict[str, Any]:
    case = file(env, point, **extra)
    case = ok(env, case, "inspector", "triage")
    case = ok(env, case, "inspector", "register")
    return ok(env, case, "inspector", "dispatch", level="compound", staff_id=1)


def test_full_loop_to_closed(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    case = dispatched(loop, points[COMMUNITY_A])
    assert (case["state"], case["level"], case["assignee_staff_id"], case["first_receiver_staff_id"]) == (
        "dispatched",
        "compound",
        1,
        1,
    )
    case = ok(loop, case, "worker", "start")
    name = photo(loop, case["id"])
    case = ok(loop, case, "worker", "handle", note="cleared the stairwell / 已清理", photos=[name])
    case = ok(loop, case, "inspector", "verify")
    case = ok(loop, case, "inspector", "close")
    assert case["state"] == "closed" and case["closed_at"] is not None and case["due_at"] is None
    detail = loop.client.get(f"/api/v1/cases/{case['id']}", headers=loop.login("inspector")).json()
    actions = [e["action"] for e in detail["events"]]
    assert actions == ["report", "triage", "register", "dispatch", "start", "handle", "verify", "close"]
    assert detail["events"][5]["photos"] == [name]
    assert [(c["level"], c["ended_at"] is not None) for c in detail["clocks"]] == [("compound", True)]
    stats = loop.client.get("/api/v1/stats/grids", headers=loop.login("inspector")).json()
    row = next(r for r in stats if r["code"] == case["grid_code"] or r["code"] == case["territory"])
    assert (row["closed"], row["open"], row["on_time_rate"], row["by_category"]) == (
        1,
        0,
        1.0,
        {"clutter": 1},
    )
    assert row["mean_hours_to_close"] is not None and row["mean_hours_to_close"] >= 0


def test_failed_check_and_escalation_keep_first_receiver(
    loop: Env, points: dict[str, tuple[float, float]]
) -> None:
    case = dispatched(loop, points[COMMUNITY_A])
    case = ok(loop, case, "worker", "start")
    case = ok(loop, case, "worker", "handle", note="done")
    case = ok(loop, case, "inspector", "verify")
    assert step(loop, case, "inspector", "fail_check").status_code == 422  # a reason is required
    case = ok(loop, case, "inspector", "fail_check", note="still blocked / 仍未清理")
    assert case["state"] == "dispatched" and case["assignee_staff_id"] == 1
    case = ok(loop, case, "worker", "escalate", level="community", staff_id=2)
    assert (case["level"], case["assignee_staff_id"], case["first_receiver_staff_id"]) == ("community", 2, 1)
    down = step(loop, case, "inspector", "escalate", level="compound")
    assert down.status_code == 409 and "must go up" in down.json()["detail"]
    detail = loop.client.get(f"/api/v1/cases/{case['id']}", headers=loop.login("inspector")).json()
    assert [(c["level"], c["ended_at"] is None) for c in detail["clocks"]] == [
        ("compound", False),
        ("community", True),
    ]


@pytest.mark.parametrize(
    ("user", "action", "message"),
    [
        ("worker", "triage", "may not triage"),
        ("inspector", "start", "cannot start a case that is reported"),
        ("planner", "triage", "may not triage"),
        ("inspector", "close", "cannot close"),
    ],
)
def test_forbidden_steps_are_refused(
    loop: Env, points: dict[str, tuple[float, float]], user: str, action: str, message: str
) -> None:
    case = file(loop, points[COMMUNITY_A])
    response = step(loop, case, user, action)
    assert response.status_code in (404, 409), response.text
    if response.status_code == 409:
        assert message in response.json()["detail"]
    after = loop.client.get(f"/api/v1/cases/{case['id']}", headers=loop.login("inspector")).json()
    assert after["state"] == "reported" and after["revision"] == 1


def test_only_the_assignee_starts(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    case = dispatched(loop, points[COMMUNITY_A])
    response = step(loop, case, "unit", "start")
    assert response.status_code == 409 and "only the assigned staff" in response.json()["detail"]


def test_stale_revision_is_refused(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    case = file(loop, points[COMMUNITY_A])
    ok(loop, case, "inspector", "triage")
    response = step(loop, case, "inspector", "triage")
    assert response.status_code == 409


def test_dispatch_needs_level_and_staff_of_the_area(
    loop: Env, points: dict[str, tuple[float, float]]
) -> None:
    case = file(loop, points[COMMUNITY_B])
    case = ok(loop, ok(loop, case, "inspector", "triage"), "inspector", "register")
    missing = step(loop, case, "inspector", "dispatch", staff_id=2)
    assert missing.status_code == 422 and missing.json()["where"] == {"field": "level"}
    foreign = step(loop, case, "inspector", "dispatch", level="compound", staff_id=1)
    assert foreign.status_code == 403 and "not responsible" in foreign.json()["detail"]
    assert ok(loop, case, "inspector", "dispatch", level="street", staff_id=2)["assignee_staff_id"] == 2


def test_territory_scoping(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    case = file(loop, points[COMMUNITY_A])
    assert (
        loop.client.get(f"/api/v1/cases/{case['id']}", headers=loop.login("inspector_b")).status_code == 404
    )
    assert step(loop, case, "inspector_b", "triage").status_code == 404
    listed = loop.client.get("/api/v1/cases", headers=loop.login("inspector_b")).json()
    assert listed == []
    assert [c["id"] for c in loop.client.get("/api/v1/cases", headers=loop.login("inspector")).json()] == [
        case["id"]
    ]


def test_duplicate_suggestions_and_marking(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    lon, lat = points[COMMUNITY_A]
    first = file(loop, (lon, lat))
    other_kind = file(loop, (lon, lat), category="illegal_parking")
    far = file(loop, (lon + 0.01, lat))  # about 950 m east
    second = file(loop, (lon + 0.001, lat))  # about 95 m east
    assert [s["case_id"] for s in second["duplicate_suggestions"]] == [first["id"]]
    assert 80 < second["duplicate_suggestions"][0]["distance_m"] < 110
    assert other_kind["id"] not in [s["case_id"] for s in second["duplicate_suggestions"]]
    assert far["duplicate_suggestions"] == []
    second = ok(loop, second, "inspector", "triage")
    assert step(loop, second, "inspector", "mark_duplicate").status_code == 422
    wrong = step(loop, second, "inspector", "mark_duplicate", duplicate_of=other_kind["id"])
    assert wrong.status_code == 422
    marked = ok(loop, second, "inspector", "mark_duplicate", duplicate_of=first["id"])
    assert (marked["state"], marked["duplicate_of"]) == ("duplicate", first["id"])
    open311 = loop.client.get(f"/open311/v2/requests/{second['id']}").json()[0]
    assert (open311["status"], open311["status_notes"]) == ("closed", f"duplicate of {first['id']}")


def test_rejected_flag_is_kept_as_hard_negative(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    lon, lat = points[COMMUNITY_A]
    response = loop.client.post(
        "/api/v1/flags",
        headers=loop.login("operator"),
        json={"category": "illegal_structure", "lon": lon, "lat": lat, "score": 0.41},
    )
    assert response.status_code == 201, response.text
    flag = response.json()
    case = loop.client.get(f"/api/v1/cases/{flag['case_id']}", headers=loop.login("inspector")).json()
    assert (case["source"], case["flag_id"], case["state"]) == ("flag", flag["id"], "reported")
    case = ok(loop, case, "inspector", "triage")
    ok(loop, case, "inspector", "reject", note="shadow of a tree")
    negatives = loop.client.get("/api/v1/flags?status=rejected", headers=loop.login("inspector")).json()
    assert [f["id"] for f in negatives] == [flag["id"]]
    assert (
        loop.client.post(
            "/api/v1/flags",
            headers=loop.login("worker"),
            json={"category": "clutter", "lon": lon, "lat": lat},
        ).status_code
        == 403
    )


def test_overdue_cases_are_flagged_and_counted(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    late = file(loop, points[COMMUNITY_A])
    file(loop, points[COMMUNITY_A], category="illegal_parking")
    with transaction(loop.db.write) as session:
        session.execute(
            update(Case).where(Case.id == late["id"]).values(due_at=utcnow() - timedelta(minutes=5))
        )
    headers = loop.login("inspector")
    overdue = loop.client.get("/api/v1/cases?overdue=true", headers=headers).json()
    assert [(c["id"], c["overdue"]) for c in overdue] == [(late["id"], True)]
    assert len(loop.client.get("/api/v1/cases?overdue=false", headers=headers).json()) == 1
    stats = loop.client.get("/api/v1/stats/grids", headers=headers).json()
    assert sum(r["overdue"] for r in stats) == 1 and sum(r["open"] for r in stats) == 2


def test_handling_needs_a_report_and_real_photos(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    case = ok(loop, dispatched(loop, points[COMMUNITY_A]), "worker", "start")
    assert step(loop, case, "worker", "handle").status_code == 422
    assert step(loop, case, "worker", "handle", photos=["nope.jpg"]).status_code == 422
    bad = loop.client.post(
        f"/api/v1/cases/{case['id']}/photos",
        headers=loop.login("worker"),
        files={"file": ("x.jpg", b"not an image", "image/jpeg")},
    )
    assert bad.status_code == 422 and bad.json()["where"] == {"file": "x.jpg"}


def test_report_outside_every_community(loop: Env) -> None:
    response = loop.client.post(
        "/api/v1/cases",
        headers=loop.login("inspector"),
        json={"category": "clutter", "lon": 100.0, "lat": 20.0},
    )
    assert response.status_code == 422 and "outside every imported community" in response.json()["detail"]
