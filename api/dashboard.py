"""What the inspector's case board and dashboard show: open cases by level with the time left, and the weekly
trend of filed and closed cases per grid selection.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.orm import Session

from api.cases import late_case_ids, visible
from api.models import Case
from api.security import Principal
from api.workflow import FINAL_STATES, LEVELS

#: Board column of registered cases not yet dispatched to a level.
UNDISPATCHED = "undispatched"
BOARD_COLUMNS = (UNDISPATCHED, *LEVELS)


@dataclass(frozen=True)
class Week:
    """One week of cases (Monday to Sunday, UTC)."""

    week_start: date
    filed: int
    closed: int
    closed_on_time: int
    mean_hours_to_close: float | None


def seconds_left(case: Case, now: datetime) -> int | None:
    """Seconds to the case's deadline; negative when overdue, None without a deadline."""
    return None if case.due_at is None else int((case.due_at - now).total_seconds())


def board(
    session: Session, who: Principal, *, now: datetime, limit: int
) -> dict[str, list[tuple[Case, int | None]]]:
    """Open cases the caller sees, by level (``undispatched`` before dispatch), overdue first, then the
    nearest deadline; at most ``limit`` per column."""
    rows = session.scalars(visible(who).where(Case.state.not_in(FINAL_STATES))).all()
    columns: dict[str, list[tuple[Case, int | None]]] = {column: [] for column in BOARD_COLUMNS}
    for case in rows:
        columns[case.level if case.level in LEVELS else UNDISPATCHED].append((case, seconds_left(case, now)))
    for column in columns.values():
        column.sort(key=lambda item: (item[1] is None, item[1] if item[1] is not None else 0, item[0].id))
    return {name: column[:limit] for name, column in columns.items()}


def weekly_trend(
    session: Session, who: Principal, *, grid_codes: Sequence[str], weeks: int, now: datetime
) -> list[Week]:
    """The last ``weeks`` weeks (oldest first) of cases in the caller's territory, for ``grid_codes`` (all
    grids when empty): filed, closed, closed on time and mean hours to close."""
    first = _monday(now) - timedelta(weeks=weeks - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
    stmt = visible(who).where(or_(Case.created_at >= start, Case.closed_at >= start))
    if grid_codes:
        stmt = stmt.where(Case.grid_code.in_(list(grid_codes)))
    cases = session.scalars(stmt).all()
    closed = [c for c in cases if c.state == "closed" and c.closed_at is not None and c.closed_at >= start]
    late = late_case_ids(session, [c.id for c in closed])
    filed_by_week: dict[date, int] = defaultdict(int)
    for case in cases:
        if case.created_at >= start:
            filed_by_week[_monday(case.created_at)] += 1
    closed_by_week: dict[date, list[Case]] = defaultdict(list)
    for case in closed:
        closed_by_week[_monday(case.closed_at or now)].append(case)
    mondays = [first + timedelta(weeks=i) for i in range(weeks)]
    return [_week(monday, filed_by_week[monday], closed_by_week[monday], late) for monday in mondays]


def _week(monday: date, filed: int, closed: list[Case], late: set[int]) -> Week:
    hours = [(c.closed_at - c.created_at).total_seconds() / 3600 for c in closed if c.closed_at is not None]
    return Week(
        week_start=monday,
        filed=filed,
        closed=len(closed),
        closed_on_time=sum(1 for c in closed if c.id not in late),
        mean_hours_to_close=round(sum(hours) / len(hours), 2) if hours else None,
    )


def _monday(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())
