"""The closed loop through the API on both backends: every step, forbidden steps, scoping, duplicates,
deadlines, flags kept as hard negatives, photos and per-grid statistics."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update

from api.db import transaction
from api.models import Case, PlanVersion, utcnow
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
        {"0507": 1},
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
    other_kind = file(loop, (lon, lat), category="0505")
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


def test_overdue_cases_are_flagged_and_counted(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    late = file(loop, points[COMMUNITY_A])
    file(loop, points[COMMUNITY_A], category="0505")
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
        json={"category": "0507", "lon": 100.0, "lat": 20.0},
    )
    assert response.status_code == 422 and "outside every imported community" in response.json()["detail"]


def test_open_cases_sorted_by_deadline(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    normal = file(loop, points[COMMUNITY_A], category="0507")  # 30 minutes to dispatch
    urgent = file(loop, points[COMMUNITY_A], category="0505")  # an urgent category: 10 minutes
    closed = ok(loop, ok(loop, file(loop, points[COMMUNITY_A]), "inspector", "triage"), "inspector", "reject")
    assert urgent["priority"] == "normal" and urgent["due_at"] < normal["due_at"]
    listed = loop.client.get("/api/v1/cases?state=open&sort=due", headers=loop.login("inspector")).json()
    assert [c["id"] for c in listed] == [urgent["id"], normal["id"]] and closed["state"] == "rejected"


def test_case_board_by_level_overdue_on_top(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    waiting = file(loop, points[COMMUNITY_A])
    soon = dispatched(loop, points[COMMUNITY_A])
    late = dispatched(loop, points[COMMUNITY_A])
    street = ok(
        loop, dispatched(loop, points[COMMUNITY_A]), "inspector", "escalate", level="street", staff_id=2
    )
    with transaction(loop.db.write) as session:
        session.execute(
            update(Case).where(Case.id == late["id"]).values(due_at=utcnow() - timedelta(hours=2))
        )
    board = loop.client.get("/api/v1/cases/board", headers=loop.login("inspector")).json()
    assert [c["id"] for c in board["undispatched"]] == [waiting["id"]]
    assert [c["id"] for c in board["compound"]] == [late["id"], soon["id"]]
    assert [c["id"] for c in board["street"]] == [street["id"]] and board["community"] == []
    top = board["compound"][0]
    assert top["overdue"] is True and -7300 < top["seconds_left"] < -7100
    assert 0 < board["compound"][1]["seconds_left"] <= 12 * 3600
    mine = loop.client.get("/api/v1/cases/board", headers=loop.login("worker")).json()
    assert sorted(c["id"] for c in mine["compound"]) == sorted([late["id"], soon["id"]])
    assert mine["undispatched"] == [] and mine["street"] == []
    assert all(
        not v
        for k, v in loop.client.get("/api/v1/cases/board", headers=loop.login("inspector_b")).json().items()
        if k != "now"
    )


def test_weekly_trend(loop: Env, points: dict[str, tuple[float, float]]) -> None:
    case = ok(loop, dispatched(loop, points[COMMUNITY_A]), "worker", "start")
    case = ok(loop, ok(loop, case, "worker", "handle", note="done"), "inspector", "verify")
    ok(loop, case, "inspector", "close")
    file(loop, points[COMMUNITY_A])
    weeks = loop.client.get("/api/v1/stats/trend?weeks=3", headers=loop.login("inspector")).json()
    assert len(weeks) == 3 and weeks[0]["week_start"] < weeks[2]["week_start"]
    assert (weeks[-1]["filed"], weeks[-1]["closed"], weeks[-1]["closed_on_time"]) == (2, 1, 1)
    assert weeks[0]["filed"] == 0 and weeks[0]["mean_hours_to_close"] is None
    none = loop.client.get(
        "/api/v1/stats/trend?weeks=1&grid_code=320571001001999", headers=loop.login("inspector")
    )
    assert none.json()[0]["filed"] == 0
    assert loop.client.get("/api/v1/stats/trend?weeks=0", headers=loop.login("inspector")).status_code == 422


@pytest.fixture
def published(drafted: Env) -> Env:
    with transaction(drafted.db.write) as session:
        session.execute(update(PlanVersion).values(status="published"))
    return drafted


def test_recheck_mission_for_open_cases(published: Env, points: dict[str, tuple[float, float]]) -> None:
    case = dispatched(published, points[COMMUNITY_A])
    second = file(published, (points[COMMUNITY_A][0] + 0.0003, points[COMMUNITY_A][1]))
    grid = case["grid_code"]
    assert grid is not None and second["grid_code"] == grid
    headers = published.login("inspector")
    response = published.client.post(
        "/api/v1/cases/recheck-mission", headers=headers, json={"grid_codes": [grid]}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert sorted(body["case_ids"]) == sorted([case["id"], second["id"]]) and body["sorties"] == 1
    assert body["waypoints"] >= 2
    plan = published.client.get(body["downloads"]["plan"], headers=headers)
    assert plan.status_code == 200 and plan.headers["content-disposition"].endswith('.plan"')
    items = plan.json()["mission"]["items"]
    assert len(items) >= 2
    kmz = published.client.get(body["downloads"]["kmz"], headers=headers)
    assert kmz.status_code == 200 and zipfile.ZipFile(io.BytesIO(kmz.content)).namelist()
    stored = published.client.get(f"/api/v1/missions/{body['mission_id']}", headers=headers).json()
    assert stored["grid_codes"] == [grid] and len(stored["sorties"]) == 1
    assert stored["params"]["kind"] == "recheck"
    generic = published.client.get(f"/api/v1/missions/{body['mission_id']}/download", headers=headers)
    assert generic.status_code == 200 and generic.content == plan.content
    preview = published.client.get(f"/api/v1/missions/{body['mission_id']}/preview", headers=headers)
    assert preview.status_code == 422 and "recheck-missions" in preview.json()["detail"]
    foreign = published.client.get(body["downloads"]["plan"], headers=published.login("inspector_b"))
    assert foreign.status_code == 404


@pytest.mark.parametrize(
    ("user", "grid", "extra", "status", "where"),
    [
        ("inspector", "320571001001999", {}, 422, {"field": "grid_codes"}),
        ("inspector_b", None, {}, 403, None),
        ("inspector", None, {"camera": "hasselblad"}, 422, {"field": "camera"}),
        ("worker", None, {}, 403, None),
    ],
)
def test_recheck_mission_refusals(
    published: Env,
    points: dict[str, tuple[float, float]],
    user: str,
    grid: str | None,
    extra: dict[str, Any],
    status: int,
    where: dict[str, str] | None,
) -> None:
    case = file(published, points[COMMUNITY_A])
    response = published.client.post(
        "/api/v1/cases/recheck-mission",
        headers=published.login(user),
        json={"grid_codes": [grid or case["grid_code"]], **extra},
    )
    assert response.status_code == status, response.text
    if where is not None:
        assert response.json()["where"] == where
