"""The audit log: read it and verify its hash chain (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from api import audit
from api.deps import CurrentUser, Offset, ReadSession
from api.models import AuditEntry
from api.schemas import AuditPublic, AuditVerify

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=list[AuditPublic])
def list_entries(
    session: ReadSession,
    who: CurrentUser,
    entity: str | None = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    """Audit entries, newest first."""
    who.require("admin")
    stmt = select(AuditEntry)
    if entity is not None:
        stmt = stmt.where(AuditEntry.entity == entity)
    return list(session.scalars(stmt.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)))


@router.get("/verify", response_model=AuditVerify)
def verify(session: ReadSession, who: CurrentUser) -> AuditVerify:
    """Recompute the hash chain; reports the first entry that was changed, deleted or reordered."""
    who.require("admin")
    count = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    broken = audit.verify(session)
    if broken is None:
        return AuditVerify(intact=True, entries=count)
    return AuditVerify(intact=False, entries=count, broken_at=broken.entry_id, reason=broken.reason)
