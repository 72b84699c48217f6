"""The append-only, hash-chained audit log.

Each entry's ``hash`` is the SHA-256 of the previous entry's hash and the entry's canonical JSON (who, role,
action, entity, before, after, time). Changing, deleting or reordering any entry breaks the chain, which
:func:`verify_chain` reports. Appends are serialised (SQLite's write lock, a PostgreSQL advisory lock), so two
writers never chain onto the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.models import AuditEntry, utcnow
from api.security import Principal

GENESIS = "0" * 64
_LOCK_KEY = 0x5347_4155  # "SGAU"


@dataclass(frozen=True)
class ChainBreak:
    """The first entry whose stored hash does not match its content or its predecessor."""

    entry_id: int
    reason: str


def record(
    session: Session,
    who: Principal,
    *,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (it commits or rolls back with the change)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    previous = session.scalars(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    entry = AuditEntry(
        at=utcnow(),
        username=who.username,
        role=who.role,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=_jsonable(before),
        after=_jsonable(after),
        prev_hash=previous or GENESIS,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    body = {
        "at": _time(entry.at),
        "username": entry.username,
        "role": entry.role,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "before": entry.before,
        "after": entry.after,
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((entry.prev_hash + canonical).encode()).hexdigest()


def verify_chain(entries: Iterable[AuditEntry]) -> ChainBreak | None:
    """The first break in ``entries`` (in id order), or None when the chain is intact."""
    previous = GENESIS
    for entry in entries:
        if entry.prev_hash != previous:
            return ChainBreak(entry.id, "does not follow the previous entry (deleted or reordered)")
        if entry_hash(entry) != entry.hash:
            return ChainBreak(entry.id, "content changed after it was written")
        previous = entry.hash
    return None


def verify(session: Session) -> ChainBreak | None:
    """Verify the whole audit log of the database."""
    return verify_chain(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _time(value: datetime) -> str:
    # Microseconds survive both backends; the format is fixed so the hash is reproducible.
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str, ensure_ascii=False))
