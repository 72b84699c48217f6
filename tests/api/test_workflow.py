"""The case state machine without storage: every allowed and every forbidden (action, state) pair."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.categories import DEFAULT_LIMITS, FALLBACK_MINUTES, default_table
from api.errors import TransitionError
from api.workflow import ACTIONS, STATES, TimeLimits, check_action, check_escalation, due_at, is_overdue

TABLE = default_table()
LIMITS = TimeLimits(
    dispatch_urgent=10,
    dispatch_normal=30,
    recheck=60,
    handle=TABLE.handle_minutes(),
    urgent=TABLE.urgent_codes(),
)
NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
ALLOWED = [(a.name, s) for a in ACTIONS.values() for s in sorted(a.sources)]
FORBIDDEN = [(a.name, s) for a in ACTIONS.values() for s in STATES if s not in a.sources]


@pytest.mark.parametrize(("action", "state"), ALLOWED)
def test_allowed_transitions(action: str, state: str) -> None:
    role = sorted(ACTIONS[action].roles)[0]
    assert check_action(action, state=state, role=role, is_assignee=True).target in STATES


@pytest.mark.parametrize(("action", "state"), FORBIDDEN)
def test_forbidden_transitions(action: str, state: str) -> None:
    with pytest.raises(TransitionError, match=f"cannot {action} a case that is {state}"):
        check_action(action, state=state, role="admin", is_assignee=True)


def test_loop_reaches_closed_and_back() -> None:
    path = [
        "triage",
        "register",
        "dispatch",
        "start",
        "handle",
        "verify",
        "fail_check",
        "start",
        "handle",
        "verify",
        "close",
    ]
    state = "reported"
    for action in path:
        state = check_action(action, state=state, role="admin", is_assignee=True).target
    assert state == "closed"


@pytest.mark.parametrize(
    ("action", "role", "assignee", "message"),
    [
        ("triage", "grid_worker", True, "may not triage"),
        ("start", "inspector", False, "may not start"),
        ("start", "grid_worker", False, "only the assigned staff"),
        ("dispatch", "planner", False, "may not dispatch"),
    ],
)
def test_roles_and_assignee(action: str, role: str, assignee: bool, message: str) -> None:
    state = sorted(ACTIONS[action].sources)[0]
    with pytest.raises(TransitionError, match=message):
        check_action(action, state=state, role=role, is_assignee=assignee)


def test_unknown_action() -> None:
    with pytest.raises(TransitionError, match="unknown action"):
        check_action("teleport", state="reported", role="admin", is_assignee=True)


@pytest.mark.parametrize(
    ("current", "requested", "ok"),
    [
        ("compound", "community", True),
        ("compound", "street", True),
        ("community", "street", True),
        ("community", "compound", False),
        ("street", "street", False),
        ("street", "community", False),
    ],
)
def test_escalation_goes_up_only(current: str, requested: str, ok: bool) -> None:
    if ok:
        check_escalation(current, requested)
    else:
        with pytest.raises(TransitionError, match="must go up"):
            check_escalation(current, requested)


def test_deadlines_per_priority_category_and_level() -> None:
    assert due_at(
        LIMITS, category="x", priority="urgent", state="reported", level=None, now=NOW
    ) == NOW + timedelta(minutes=10)
    assert due_at(
        LIMITS, category="x", priority="normal", state="reported", level=None, now=NOW
    ) == NOW + timedelta(minutes=30)
    parking = due_at(
        LIMITS, category="0505", priority="normal", state="dispatched", level="community", now=NOW
    )
    assert parking == NOW + timedelta(minutes=DEFAULT_LIMITS["0505"]["community"])
    other = due_at(LIMITS, category="9999", priority="normal", state="dispatched", level="street", now=NOW)
    assert other == NOW + timedelta(minutes=FALLBACK_MINUTES["street"])
    assert due_at(LIMITS, category="x", priority="normal", state="handled", level="street", now=NOW) == (
        NOW + timedelta(minutes=60)
    )
    assert due_at(LIMITS, category="x", priority="normal", state="triaged", level=None, now=NOW) is None


def test_overdue_only_while_open() -> None:
    past = NOW - timedelta(minutes=1)
    assert is_overdue(state="dispatched", due=past, now=NOW)
    assert not is_overdue(state="closed", due=past, now=NOW)
    assert not is_overdue(state="dispatched", due=NOW + timedelta(minutes=1), now=NOW)
    assert not is_overdue(state="dispatched", due=None, now=NOW)


@pytest.mark.parametrize(
    ("category", "priority", "minutes"),
    [("0505", "normal", 10), ("0507", "normal", 30), ("0507", "urgent", 10)],
)
def test_urgent_categories_are_dispatched_within_the_urgent_limit(
    category: str, priority: str, minutes: int
) -> None:
    due = due_at(LIMITS, category=category, priority=priority, state="reported", level=None, now=NOW)
    assert due == NOW + timedelta(minutes=minutes)
