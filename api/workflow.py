"""The closed-loop case state machine (闭环处置), free of storage: states, actions, who may act, deadlines.

reported → triaged → registered | rejected (kept as a hard negative) | duplicate; registered → dispatched (to a
level: compound, community or street office, and a grid worker or handling unit) → in_progress → handled →
verifying → closed, or back to dispatched when the on-site check fails. An open dispatched or in-progress case
may be escalated one or more levels up (网格吹哨, 部门报到).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from api.errors import TransitionError

STATES: Final = (
    "reported",
    "triaged",
    "registered",
    "rejected",
    "duplicate",
    "dispatched",
    "in_progress",
    "handled",
    "verifying",
    "closed",
)
#: States in which a case is finished; every other state is open.
FINAL_STATES: Final = frozenset({"rejected", "duplicate", "closed"})
#: Levels of handling, lowest first: 小事不出小区, 大事不出社区, 难事不出街道.
LEVELS: Final = ("compound", "community", "street")
PRIORITIES: Final = ("normal", "urgent")
FIELD_ROLES: Final = ("grid_worker", "handling_unit")


@dataclass(frozen=True)
class Action:
    """A case action: the states it starts from, the state it leads to and the roles that may take it."""

    name: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    assignee_only: bool = False


def _action(
    name: str, sources: set[str], target: str, roles: set[str], assignee_only: bool = False
) -> Action:
    return Action(name, frozenset(sources), target, frozenset(roles), assignee_only)


ACTIONS: Final[Mapping[str, Action]] = {
    a.name: a
    for a in (
        _action("triage", {"reported"}, "triaged", {"inspector"}),
        _action("register", {"triaged"}, "registered", {"inspector"}),
        _action("reject", {"triaged"}, "rejected", {"inspector"}),
        _action("mark_duplicate", {"triaged"}, "duplicate", {"inspector"}),
        _action("dispatch", {"registered"}, "dispatched", {"inspector"}),
        _action("start", {"dispatched"}, "in_progress", set(FIELD_ROLES), assignee_only=True),
        _action("handle", {"in_progress"}, "handled", set(FIELD_ROLES), assignee_only=True),
        _action("verify", {"handled"}, "verifying", {"inspector"}),
        _action("close", {"verifying"}, "closed", {"inspector"}),
        _action("fail_check", {"verifying"}, "dispatched", {"inspector"}),
        _action("escalate", {"dispatched", "in_progress"}, "dispatched", {"inspector", *FIELD_ROLES}),
    )
}


#: Minutes to handle a case per level when neither its category nor ``"*"`` of the limits says.
FALLBACK_HANDLE_MINUTES: Final[Mapping[str, int]] = {
    "compound": 24 * 60,
    "community": 48 * 60,
    "street": 72 * 60,
}


@dataclass(frozen=True)
class TimeLimits:
    """Minutes allowed: report → dispatch by priority (or an urgent category), handling per category and
    level, handled → closed."""

    dispatch_urgent: int
    dispatch_normal: int
    recheck: int
    handle: Mapping[str, Mapping[str, int]]
    urgent: frozenset[str] = frozenset()

    def handle_minutes(self, category: str, level: str) -> int:
        """Minutes to handle a case of ``category`` at ``level`` (category ``*`` is the fallback)."""
        table = {**FALLBACK_HANDLE_MINUTES, **self.handle.get("*", {}), **self.handle.get(category, {})}
        return table[level]

    def dispatch_minutes(self, category: str, priority: str) -> int:
        """Minutes from report to dispatch: the urgent limit for urgent reports and urgent categories."""
        urgent = priority == "urgent" or category in self.urgent
        return self.dispatch_urgent if urgent else self.dispatch_normal


def check_action(action_name: str, *, state: str, role: str, is_assignee: bool) -> Action:
    """The action if ``role`` may take it from ``state``; raises :class:`TransitionError` saying why not."""
    action = ACTIONS.get(action_name)
    if action is None:
        raise TransitionError(f"unknown action {action_name!r}; known: {', '.join(ACTIONS)}")
    if state not in action.sources:
        raise TransitionError(
            f"cannot {action_name} a case that is {state}; allowed from {', '.join(sorted(action.sources))}"
            " / 当前状态不允许此操作",
            where={"state": state},
        )
    if role != "admin" and role not in action.roles:
        raise TransitionError(
            f"role {role} may not {action_name}; needs {' or '.join(sorted(action.roles))} / 无权限",
            where={"role": role},
        )
    if action.assignee_only and role != "admin" and not is_assignee:
        raise TransitionError(f"only the assigned staff may {action_name} this case / 仅限承办人")
    return action


def check_escalation(current: str | None, requested: str) -> None:
    """Raise unless ``requested`` is a level strictly above ``current``."""
    if requested not in LEVELS:
        raise TransitionError(f"unknown level {requested!r}; levels: {', '.join(LEVELS)}")
    if current is not None and LEVELS.index(requested) <= LEVELS.index(current):
        raise TransitionError(
            f"escalation must go up from {current}; {requested} is not above it / 只能向上级升级",
            where={"level": requested},
        )


def due_at(
    limits: TimeLimits, *, category: str, priority: str, state: str, level: str | None, now: datetime
) -> datetime | None:
    """The deadline a case gets on entering ``state``, or None when the state has none of its own."""
    if state == "reported":
        minutes = limits.dispatch_minutes(category, priority)
    elif state == "dispatched" and level is not None:
        minutes = limits.handle_minutes(category, level)
    elif state == "handled":
        minutes = limits.recheck
    else:
        return None
    return now + timedelta(minutes=minutes)


def is_overdue(*, state: str, due: datetime | None, now: datetime) -> bool:
    """Whether an open case is past its deadline."""
    return state not in FINAL_STATES and due is not None and now > due
