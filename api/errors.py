"""Exception tree of the service. Routes raise these; :data:`api.app.STATUS_CODES` maps them to HTTP statuses.

Every error carries a message saying what was wrong and, where it applies, ``where`` (file, layer, row, field,
or the request field) so a client can point the user at it.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base class of every error the service reports to a client.

    Args:
        message: what is wrong, in plain words (English; a Chinese line may follow for end users).
        where: where the problem is, e.g. ``{"field": "grid_code"}`` or a district file's layer and row.
    """

    def __init__(self, message: str, *, where: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where or {}


class AuthError(ApiError):
    """No or an invalid access token."""


class ForbiddenError(ApiError):
    """The user's role or territory does not allow this."""


class NotFoundError(ApiError):
    """The addressed object does not exist."""


class ConflictError(ApiError):
    """The object changed since the client read it (stale revision), or the change clashes with its state."""


class InputError(ApiError):
    """The request is well formed but its content is unusable (bad district file, unknown grid …)."""


class TransitionError(ConflictError):
    """A case action that its current state or the acting role does not allow."""


class TooLargeError(ApiError):
    """An upload above the configured size limit."""


class RateLimitError(ApiError):
    """Too many requests from one client in the current minute."""
