"""Cases in the database: filing (from a flag or a person's report), duplicate suggestions, the actions of
:mod:`api.workflow` with their events and per-level clocks, and per-grid statistics.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import shapely
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from api.audit import record
from api.categories import CategoryTable
from api.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from api.geometry import spatial
from api.models import Case, CaseClock, CaseEvent, Community, Flag, Grid, PlanVersion, Staff, utcnow
from api.security import Principal
from api.spatial import bbox_around, containing, distance_m, in_bbox
from api.workflow import (
    FIELD_ROLES,
    FINAL_STATES,
    LEVELS,
    PRIORITIES,
    TimeLimits,
    check_action,
    check_escalation,
    due_at,
)

DUPLICATE_RADIUS_M = 250.0
MAX_DUPLICATES = 5
#: Flag status that follows its case's state (rejected flags are kept as hard negatives for training).
_FLAG_STATUS = {"registered": "accepted", "rejected": "rejected", "duplicate": "duplicate"}


@dataclass(frozen=True)
class Report:
    """What a reporter gives: category, place, and optionally priority, description, address and flag."""

    category: str
    lon: float
    lat: float
    priority: str = "normal"
    description: str = ""
    address: str | None = None
    source: str = "person"
    flag_id: int | None = None


@dataclass(frozen=True)
class Step:
    """An action on a case with its parameters; ``revision`` is the case revision the client saw."""

    action: str
    revision: int
    level: str | None = None
    staff_id: int | None = None
    note: str = ""
    photos: list[str] = field(default_factory=list)
    duplicate_of: int | None = None


def locate(session: Session, lon: float, lat: float) -> tuple[str | None, str]:
    """The published grid code at a point (or None) and the territory code (grid, else community)."""
    grids = containing(
        session,
        Grid,
        lon,
        lat,
        Grid.version_id.in_(select(PlanVersion.id).where(PlanVersion.status == "published")),
    )
    if grids:
        return grids[0].grid_code, grids[0].grid_code
    communities = containing(session, Community, lon, lat)
    if communities:
        return None, communities[0].code
    raise InputError(
        f"point ({lon:.6f}, {lat:.6f}) lies outside every imported community / 位置不在任何社区内",
        where={"field": "lon/lat"},
    )


def file_case(
    session: Session, who: Principal, limits: TimeLimits, report: Report, *, categories: CategoryTable
) -> Case:
    """File a new case in state ``reported`` with its dispatch deadline; the category must be in the table."""
    if report.priority not in PRIORITIES:
        raise InputError(f"priority must be one of {', '.join(PRIORITIES)}", where={"field": "priority"})
    categories.require(report.category)
    grid_code, territory = locate(session, report.lon, report.lat)
    now = utcnow()
    case = Case(
        category=report.category,
        priority=report.priority,
        state="reported",
        description=report.description,
        address=report.address,
        lon=report.lon,
        lat=report.lat,
        grid_code=grid_code,
        territory=territory,
        source=report.source,
        flag_id=report.flag_id,
        reported_by=who.username,
        revision=1,
        created_at=now,
        updated_at=now,
        due_at=due_at(
            limits, category=report.category, priority=report.priority, state="reported", level=None, now=now
        ),
        **spatial(shapely.Point(report.lon, report.lat)),
    )
    session.add(case)
    session.flush()
    session.add(CaseEvent(case_id=case.id, at=now, actor=who.username, action="report", to_state="reported"))
    record(
        session,
        who,
        action="file_case",
        entity="case",
        entity_id=case.id,
        after={"category": case.category, "territory": territory, "source": case.source},
    )
    return case


def get_case(session: Session, case_id: int) -> Case:
    """The case, or :class:`NotFoundError`."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist", where={"case_id": case_id})
    return case


def can_see(who: Principal, case: Case) -> bool:
    """Field staff see their own cases; everyone else the cases of their territory."""
    if who.role in ("grid_worker", "handling_unit"):
        return (who.staff_id is not None and case.assignee_staff_id == who.staff_id) or who.covers(
            case.territory
        )
    return who.covers(case.territory)


def visible(who: Principal) -> Select[Case]:
    """``select(Case)`` limited to what the caller sees: field staff their assigned cases, others their territory."""
    stmt = select(Case)
    if who.role in FIELD_ROLES:
        return stmt.where(Case.assignee_staff_id == (who.staff_id if who.staff_id is not None else -1))
    return stmt.where(Case.territory.startswith(who.territory)) if who.territory else stmt


def duplicates(session: Session, case: Case) -> list[tuple[Case, float]]:
    """Up to 5 open cases of the same category within 250 m, nearest first."""
    candidates = session.scalars(
        in_bbox(session, Case, bbox_around(case.lon, case.lat, DUPLICATE_RADIUS_M)).where(
            Case.category == case.category, Case.id != case.id, Case.state.not_in(FINAL_STATES)
        )
    ).all()
    near = [(other, distance_m(case.lon, case.lat, other.lon, other.lat)) for other in candidates]
    return sorted((p for p in near if p[1] <= DUPLICATE_RADIUS_M), key=lambda p: p[1])[:MAX_DUPLICATES]


def act(session: Session, who: Principal, limits: TimeLimits, case: Case, step: Step) -> Case:
    """Apply one action to a case: check state, role, scope and revision, then record event, clock and audit."""
    is_assignee = who.staff_id is not None and who.staff_id == case.assignee_staff_id
    if not is_assignee:
        who.require_territory(case.territory, "case")
    action = check_action(step.action, state=case.state, role=who.role, is_assignee=is_assignee)
    if step.revision != case.revision:
        raise ConflictError(
            f"case {case.id} changed since you read it (revision {case.revision}, you saw {step.revision}) / "
            "案件已被更新，请刷新",
            where={"revision": step.revision, "current_revision": case.revision},
        )
    before = {"state": case.state, "level": case.level, "assignee_staff_id": case.assignee_staff_id}
    now = utcnow()
    _HANDLERS.get(step.action, _no_parameters)(session, case, step, now, limits)
    case.state, case.revision, case.updated_at = action.target, case.revision + 1, now
    _set_due(limits, case, now)
    _log(session, who, case, step, before, now)
    return case


def _set_due(limits: TimeLimits, case: Case, now: datetime) -> None:
    if case.state in FINAL_STATES:
        case.due_at = None
        return
    due = due_at(
        limits, category=case.category, priority=case.priority, state=case.state, level=case.level, now=now
    )
    if due is not None:
        case.due_at = due


def _log(
    session: Session, who: Principal, case: Case, step: Step, before: dict[str, Any], now: datetime
) -> None:
    session.add(
        CaseEvent(
            case_id=case.id,
            at=now,
            actor=who.username,
            action=step.action,
            from_state=before["state"],
            to_state=case.state,
            level=case.level,
            staff_id=case.assignee_staff_id,
            note=step.note,
            photos=list(step.photos),
        )
    )
    if case.flag_id is not None and case.state in _FLAG_STATUS:
        flag = session.get(Flag, case.flag_id)
        if flag is not None:
            flag.status = _FLAG_STATUS[case.state]
    record(
        session,
        who,
        action=f"case_{step.action}",
        entity="case",
        entity_id=case.id,
        before=before,
        after={"state": case.state, "level": case.level, "assignee_staff_id": case.assignee_staff_id},
    )


def _no_parameters(session: Session, case: Case, step: Step, now: datetime, limits: TimeLimits) -> None:
    return None


def _dispatch(session: Session, case: Case, step: Step, now: datetime, limits: TimeLimits) -> None:
    if step.level not in LEVELS:
        raise InputError(f"dispatch needs a level: one of {', '.join(LEVELS)}", where={"field": "level"})
    _assign(session, case, step.staff_id, required=True)
    case.level = step.level
    if case.first_receiver_staff_id is None:
        case.first_receiver_staff_id = case.assignee_staff_id  # 首接首责
    _open_clock(session, case, now, limits)


def _escalate(session: Session, case: Case, step: Step, now: datetime, limits: TimeLimits) -> None:
    if step.level is None:
        raise InputError(f"escalation needs a level above {case.level}", where={"field": "level"})
    check_escalation(case.level, step.level)
    _assign(session, case, step.staff_id, required=False)
    case.level = step.level
    _close_clock(session, case, now)
    _open_clock(session, case, now, limits)


def _fail_check(session: Session, case: Case, step: Step, now: datetime, limits: TimeLimits) -> None:
    if not step.note:
        raise InputError("say why the on-site check failed / 请填写核查不通过原因", where={"field": "note"})
    _assign(session, case, step.staff_id, required=False)


def _handle(session: Session, case: Case, step: Step, now: datetime, limits: TimeLimits) -> None:
    if not step.note and not step.photos:
        raise InputError(
            "report the handling with a note or photos / 请上传处置说明或照片", where={"field": "note"}
        )


def _close(session: Session, case: Case, step: Step, now: datetime, limits: TimeLimits) -> None:
    case.closed_at = now
    _close_clock(session, case, now)


def _mark_duplicate(session: Session, case: Case, step: Step, now: datetime, limits: TimeLimits) -> None:
    if step.duplicate_of is None:
        raise InputError("name the case this one duplicates", where={"field": "duplicate_of"})
    original = get_case(session, step.duplicate_of)
    if original.id == case.id or original.state in FINAL_STATES or original.category != case.category:
        raise InputError(
            f"case {original.id} cannot be the original: it must be another open case of category {case.category}",
            where={"field": "duplicate_of"},
        )
    case.duplicate_of = original.id


def _assign(session: Session, case: Case, staff_id: int | None, *, required: bool) -> None:
    if staff_id is None:
        if required:
            raise InputError("name the grid worker or handling unit (staff_id)", where={"field": "staff_id"})
        return
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise InputError(f"staff {staff_id} does not exist", where={"field": "staff_id"})
    if not case.territory.startswith(staff.territory):
        raise ForbiddenError(
            f"staff {staff.name} ({staff.territory}) is not responsible for {case.territory}",
            where={"field": "staff_id"},
        )
    case.assignee_staff_id = staff.id


def _open_clock(session: Session, case: Case, now: datetime, limits: TimeLimits) -> None:
    level = case.level or LEVELS[0]
    due = now + timedelta(minutes=limits.handle_minutes(case.category, level))
    session.add(CaseClock(case_id=case.id, level=level, started_at=now, due_at=due))


def _close_clock(session: Session, case: Case, now: datetime) -> None:
    clock = session.scalars(
        select(CaseClock).where(CaseClock.case_id == case.id, CaseClock.ended_at.is_(None))
    ).first()
    if clock is not None:
        clock.ended_at = now


_HANDLERS = {
    "dispatch": _dispatch,
    "escalate": _escalate,
    "fail_check": _fail_check,
    "handle": _handle,
    "close": _close,
    "mark_duplicate": _mark_duplicate,
}


def grid_statistics(session: Session, who: Principal, *, now: datetime) -> list[dict[str, Any]]:
    """Per grid (or community, for cases outside published grids) of the caller's territory: cases by
    category, open, overdue, closed, on-time rate and mean hours to close."""
    cases = session.scalars(select(Case).where(Case.territory.startswith(who.territory))).all()
    late = late_case_ids(session, [c.id for c in cases if c.state == "closed"])
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        groups[case.grid_code or case.territory].append(case)
    return [_grid_row(code, members, late, now) for code, members in sorted(groups.items())]


def late_case_ids(session: Session, closed_ids: list[int]) -> set[int]:
    if not closed_ids:
        return set()
    clocks = session.scalars(select(CaseClock).where(CaseClock.case_id.in_(closed_ids))).all()
    return {c.case_id for c in clocks if c.ended_at is not None and c.ended_at > c.due_at}


def _grid_row(code: str, cases: list[Case], late: set[int], now: datetime) -> dict[str, Any]:
    by_category: dict[str, int] = defaultdict(int)
    for case in cases:
        by_category[case.category] += 1
    closed = [c for c in cases if c.state == "closed" and c.closed_at is not None]
    hours = [(c.closed_at - c.created_at).total_seconds() / 3600 for c in closed if c.closed_at is not None]
    open_cases = [c for c in cases if c.state not in FINAL_STATES]
    return {
        "code": code,
        "cases": len(cases),
        "by_category": dict(by_category),
        "open": len(open_cases),
        "overdue": sum(1 for c in open_cases if c.due_at is not None and now > c.due_at),
        "closed": len(closed),
        "on_time_rate": (sum(1 for c in closed if c.id not in late) / len(closed)) if closed else None,
        "mean_hours_to_close": (sum(hours) / len(hours)) if hours else None,
    }
