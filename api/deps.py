"""Typed dependencies of the routes: the service state, database sessions and the current user."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from api.categories import CategoryTable, default_table
from api.db import Database, transaction
from api.errors import AuthError
from api.security import Principal, decode_token
from api.settings import Settings
from api.workflow import TimeLimits

TOKEN_URL = "/api/v1/auth/token"
_MAX_INT = 2**31 - 1
#: An id or number in a path, inside the range every backend stores.
IdPath = Annotated[int, Path(ge=1, le=_MAX_INT)]
#: A paging offset.
Offset = Annotated[int, Query(ge=0, le=_MAX_INT)]


@dataclass
class RateLimiter:
    """Fixed one-minute windows per client address; ``limit`` 0 turns it off."""

    limit: int
    _counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, client: str, now: float | None = None) -> bool:
        """Count one request of ``client``; False when it is over the limit for this minute."""
        if self.limit <= 0:
            return True
        window = int((time.time() if now is None else now) // 60)
        with self._lock:
            seen_window, count = self._counts.get(client, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._counts[client] = (window, count)
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
        return count <= self.limit


@dataclass(frozen=True)
class Service:
    """Everything a request needs, created once per app (no module-level state)."""

    settings: Settings
    db: Database
    limits: TimeLimits
    limiter: RateLimiter
    categories: CategoryTable = field(default_factory=default_table)


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def read_session(service: ServiceDep) -> Iterator[Session]:
    """A read-only session (rolled back at the end)."""
    with service.db.read() as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session)]

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def current_user(service: ServiceDep, token: Annotated[str | None, Depends(_bearer)]) -> Principal:
    """The caller of a valid bearer token; 401 otherwise."""
    if not token:
        raise AuthError("log in first: no bearer token / 请先登录")
    return decode_token(token, secret=service.settings.secret())


CurrentUser = Annotated[Principal, Depends(current_user)]


def writing(service: Service) -> AbstractContextManager[Session]:
    """A write transaction: committed when the block ends, rolled back on any error."""
    return transaction(service.db.write)
