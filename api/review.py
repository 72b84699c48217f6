"""Reviewing the detector's flags: the queue, accept (files a case), reject (kept as a hard negative), mark
duplicate, change category, accept a whole frame; duplicate candidates; evidence files; the export of rejected
flags as YOLO background images for training.

A flag is reviewed once: every decision is an ``UPDATE … WHERE status = 'new'``, so the second of two
reviewers deciding the same flag at the same time changes nothing and gets :class:`ConflictError` (409).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api.audit import record
from api.cases import DUPLICATE_RADIUS_M, MAX_DUPLICATES, Report, Step, act, file_case
from api.categories import CategoryTable
from api.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from api.models import Case, Flag
from api.security import Principal
from api.spatial import bbox_around, distance_m, in_bbox
from api.workflow import FINAL_STATES, TimeLimits

NEW = "new"
#: Severity from which a machine flag is filed as an urgent case (3: e.g. a blocked fire lane).
URGENT_SEVERITY = 3
QueueOrder = Literal["oldest", "severity"]


@dataclass(frozen=True)
class Rules:
    """What a review needs besides the session: the caller, the time limits and the category table."""

    who: Principal
    limits: TimeLimits
    categories: CategoryTable


@dataclass(frozen=True)
class Candidate:
    """An open case or a new flag that a flag may duplicate."""

    kind: Literal["case", "flag"]
    id: int
    distance_m: float
    state: str
    grid_code: str | None
    created_at: datetime


def get_flag(session: Session, who: Principal, flag_id: int) -> Flag:
    """The flag if it lies in the caller's territory, else :class:`NotFoundError`."""
    flag = session.get(Flag, flag_id)
    if flag is None or not who.covers(flag.territory):
        raise NotFoundError(f"flag {flag_id} does not exist", where={"flag_id": flag_id})
    return flag


def queue(
    session: Session, who: Principal, *, order: QueueOrder, offset: int, limit: int
) -> tuple[int, list[Flag]]:
    """New flags of the caller's territory: how many in all, and one page, oldest or most severe first."""
    scope = (Flag.status == NEW, Flag.territory.startswith(who.territory))
    total = session.scalar(select(func.count()).select_from(Flag).where(*scope)) or 0
    keys: Sequence[Any] = (
        (Flag.id,)
        if order == "oldest"
        else (func.coalesce(Flag.severity, 0).desc(), func.coalesce(Flag.score, 0).desc(), Flag.id)
    )
    page = session.scalars(select(Flag).where(*scope).order_by(*keys).offset(offset).limit(limit))
    return int(total), list(page)


def accept(session: Session, rules: Rules, flag: Flag, note: str = "") -> Case:
    """Accept ``flag``: file its case (source ``machine``), triage and register it; the flag is ``accepted``."""
    _claim(session, flag, "accepted")
    category = rules.categories.require(flag.category)
    urgent = (flag.severity or 0) >= URGENT_SEVERITY
    description = " · ".join(p for p in (category.name_zh, flag.rule or "", note) if p)
    case = file_case(
        session,
        rules.who,
        rules.limits,
        Report(
            flag.category,
            flag.lon,
            flag.lat,
            priority="urgent" if urgent else "normal",
            description=description,
            source="machine",
            flag_id=flag.id,
        ),
        categories=rules.categories,
    )
    flag.case_id = case.id
    for action in ("triage", "register"):
        act(session, rules.who, rules.limits, case, Step(action, case.revision, note=note))
    _audit(session, rules.who, flag, "accept", {"case_id": case.id, "note": note})
    return case


def accept_frame(session: Session, rules: Rules, flag: Flag) -> list[Flag]:
    """Accept ``flag`` and every other new flag of the caller's territory seen in the same frame."""
    accept(session, rules, flag)
    if flag.frame_path is None:
        return [flag]
    siblings = session.scalars(
        select(Flag)
        .where(
            Flag.frame_path == flag.frame_path,
            Flag.id != flag.id,
            Flag.status == NEW,
            Flag.territory.startswith(rules.who.territory),
        )
        .order_by(Flag.id)
    ).all()
    for sibling in siblings:
        accept(session, rules, sibling)
    return [flag, *siblings]


def reject(session: Session, who: Principal, flag: Flag, note: str = "") -> None:
    """Reject ``flag``: kept with its evidence as a hard negative for training."""
    _claim(session, flag, "rejected")
    _audit(session, who, flag, "reject", {"note": note})


def mark_duplicate(
    session: Session, who: Principal, flag: Flag, *, of_case: int | None, of_flag: int | None
) -> None:
    """Mark ``flag`` a duplicate of a candidate case or flag (same category, open, within 250 m)."""
    if (of_case is None) == (of_flag is None):
        raise InputError(
            "name exactly one original: duplicate_of_case or duplicate_of_flag",
            where={"field": "duplicate_of"},
        )
    kind: Literal["case", "flag"] = "case" if of_case is not None else "flag"
    original = of_case or of_flag or 0
    if not any((c.kind, c.id) == (kind, original) for c in candidates(session, who, flag)):
        raise InputError(
            f"{kind} {original} is not a duplicate candidate of flag {flag.id}: it must be an open {kind} of "
            f"category {flag.category} within {DUPLICATE_RADIUS_M:.0f} m / 不是重复候选",
            where={"field": f"duplicate_of_{kind}"},
        )
    case_id = original if kind == "case" else get_flag(session, who, original).case_id
    _claim(session, flag, "duplicate", case_id=case_id)
    _audit(session, who, flag, "duplicate", {f"duplicate_of_{kind}": original})


def recategorize(session: Session, who: Principal, categories: CategoryTable, flag: Flag, code: str) -> None:
    """Change the category of a new flag (it stays in the queue)."""
    categories.require(code)
    before = flag.category
    _claim(session, flag, NEW, category=code)
    _audit(session, who, flag, "recategorize", {"category": code}, before={"category": before})


def candidates(session: Session, who: Principal, flag: Flag) -> list[Candidate]:
    """Up to 5 open cases and new flags of the flag's category within 250 m in the caller's territory."""
    box = bbox_around(flag.lon, flag.lat, DUPLICATE_RADIUS_M)
    cases = session.scalars(
        in_bbox(session, Case, box).where(
            Case.category == flag.category,
            Case.state.not_in(FINAL_STATES),
            Case.territory.startswith(who.territory),
        )
    ).all()
    flags = session.scalars(
        in_bbox(session, Flag, box).where(
            Flag.category == flag.category,
            Flag.status == NEW,
            Flag.id != flag.id,
            Flag.territory.startswith(who.territory),
        )
    ).all()
    found = [_candidate("case", c.id, c.state, c, flag) for c in cases if c.id != flag.case_id]
    found += [_candidate("flag", f.id, f.status, f, flag) for f in flags]
    near = sorted((c for c in found if c.distance_m <= DUPLICATE_RADIUS_M), key=lambda c: c.distance_m)
    return near[:MAX_DUPLICATES]


def _candidate(
    kind: Literal["case", "flag"], row_id: int, state: str, row: Case | Flag, flag: Flag
) -> Candidate:
    distance = round(distance_m(flag.lon, flag.lat, row.lon, row.lat), 1)
    return Candidate(kind, row_id, distance, state, row.grid_code, row.created_at)


def _claim(session: Session, flag: Flag, status: str, **values: Any) -> None:
    """Set the flag's status (and ``values``) only if it is still new; 409 otherwise."""
    result = session.execute(
        update(Flag)
        .where(Flag.id == flag.id, Flag.status == NEW)
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(flag)
        raise ConflictError(
            f"flag {flag.id} was already reviewed (now {flag.status}) / 该线索已被他人审核",
            where={"flag_id": flag.id, "status": flag.status},
        )
    session.refresh(flag)


def _audit(
    session: Session,
    who: Principal,
    flag: Flag,
    action: str,
    after: dict[str, Any],
    before: dict[str, Any] | None = None,
) -> None:
    record(
        session,
        who,
        action=f"flag_{action}",
        entity="flag",
        entity_id=flag.id,
        before=before or {"status": NEW},
        after={"status": flag.status, **after},
    )


# --- files ---------------------------------------------------------------------------------------------------


def data_file(data_dir: Path, relative: str | None, what: str) -> Path:
    """The file at ``relative`` inside ``data_dir``; refuses a path escaping it, 404 when there is none."""
    if not relative:
        raise NotFoundError(f"this flag has no {what}", where={"file": what})
    root = data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ForbiddenError(f"{what} path {relative!r} lies outside the data folder", where={"file": what})
    if not path.is_file():
        raise NotFoundError(f"{what} file {relative!r} is missing", where={"file": what})
    return path


def check_data_path(relative: str | None, field: str) -> None:
    """Raise :class:`InputError` when ``relative`` would escape the data folder."""
    if relative is not None and (Path(relative).is_absolute() or ".." in Path(relative).parts):
        raise InputError(
            f"{field} must be a path inside the data folder, got {relative!r}", where={"field": field}
        )


def rejected_flags(session: Session, who: Principal, limit: int) -> list[Flag]:
    """Rejected flags of the caller's territory, oldest first."""
    stmt = select(Flag).where(Flag.status == "rejected", Flag.territory.startswith(who.territory))
    return list(session.scalars(stmt.order_by(Flag.id).limit(limit)))


def negatives_zip(flags: Sequence[Flag], data_dir: Path) -> bytes:
    """Rejected flags as YOLO background images: ``images/`` (evidence crops), empty ``labels/`` files, the
    list ``negatives.txt`` and ``negatives.csv`` with what the detector claimed."""
    buffer = io.BytesIO()
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(
        ["flag_id", "category", "class_name", "score", "rule", "grid_code", "lon", "lat", "image"]
    )
    listed: list[str] = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for flag in flags:
            image = _add_negative(archive, flag, data_dir)
            if image:
                listed.append(image)
            row = (flag.id, flag.category, flag.class_name, flag.score, flag.rule, flag.grid_code)
            writer.writerow([*row, flag.lon, flag.lat, image])
        archive.writestr("negatives.txt", "".join(f"{name}\n" for name in listed))
        archive.writestr("negatives.csv", table.getvalue())
    return buffer.getvalue()


def _add_negative(archive: zipfile.ZipFile, flag: Flag, data_dir: Path) -> str:
    try:
        source = data_file(data_dir, flag.evidence_path, "evidence")
    except (NotFoundError, ForbiddenError):
        return ""
    name = f"images/flag-{flag.id}{source.suffix.lower()}"
    archive.write(source, name)
    archive.writestr(f"labels/flag-{flag.id}.txt", "")
    return name
