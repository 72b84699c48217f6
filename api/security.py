"""Passwords (argon2 via pwdlib), access tokens (JWT via PyJWT), roles and territory scoping.

A territory is an administrative code prefix: a district (6 digits), street office (9), community (12) or grid
(15). A user may act on an object whose code starts with the user's territory; the empty territory is the
whole installation (admins).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import jwt
from pwdlib import PasswordHash

from api.errors import AuthError, ForbiddenError

ROLES: Final = ("admin", "planner", "operator", "inspector", "grid_worker", "handling_unit")
TERRITORY_LENGTHS: Final = (0, 6, 9, 12, 15)
ALGORITHM: Final = "HS256"

_HASHER = PasswordHash.recommended()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: user name, role, territory and (for field staff) the staff record."""

    username: str
    role: str
    territory: str
    staff_id: int | None = None

    def covers(self, code: str | None) -> bool:
        """Whether ``code`` (a district, street, community or grid code) lies in this caller's territory."""
        if not self.territory:
            return True
        return code is not None and code.startswith(self.territory)

    def overlaps(self, code: str) -> bool:
        """Whether the area ``code`` and this caller's territory overlap (one contains the other)."""
        return code.startswith(self.territory) or self.territory.startswith(code)

    def require(self, *roles: str) -> None:
        """Raise :class:`ForbiddenError` unless the caller has one of ``roles`` (admins always pass)."""
        if self.role != "admin" and self.role not in roles:
            raise ForbiddenError(f"role {self.role} may not do this; needs {' or '.join(roles)} / 无权限")

    def require_territory(self, code: str | None, what: str) -> None:
        """Raise :class:`ForbiddenError` unless ``code`` is inside the caller's territory."""
        if not self.covers(code):
            raise ForbiddenError(
                f"{what} {code} is outside your territory {self.territory} / 超出管辖范围",
                where={"code": code, "territory": self.territory},
            )


def check_territory_code(territory: str) -> str:
    """Return ``territory`` if it is a valid code prefix (digits, 0/6/9/12/15 long), else raise ValueError."""
    if len(territory) not in TERRITORY_LENGTHS or not (territory == "" or territory.isdigit()):
        raise ValueError(
            f"territory must be empty or a district (6), street (9), community (12) or grid (15) digit code, "
            f"got {territory!r}"
        )
    return territory


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash``."""
    return bool(_HASHER.verify(password, password_hash))


def create_token(principal: Principal, *, secret: str, minutes: int, now: datetime | None = None) -> str:
    """A signed access token for ``principal`` valid for ``minutes``."""
    issued = now or datetime.now(UTC)
    claims = {
        "sub": principal.username,
        "role": principal.role,
        "territory": principal.territory,
        "staff_id": principal.staff_id,
        "iat": issued,
        "exp": issued + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, *, secret: str) -> Principal:
    """The principal of a valid token; raises :class:`AuthError` for a bad or expired one."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("the access token has expired; log in again / 登录已过期") from None
    except jwt.InvalidTokenError as error:
        raise AuthError(f"invalid access token: {error}") from None
    staff = claims.get("staff_id")
    return Principal(
        username=str(claims["sub"]),
        role=str(claims.get("role", "")),
        territory=str(claims.get("territory", "")),
        staff_id=int(staff) if staff is not None else None,
    )
