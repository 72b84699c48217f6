"""Log in (OAuth2 password flow), users and staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from api.audit import record
from api.deps import CurrentUser, ReadSession, ServiceDep, writing
from api.errors import AuthError, ConflictError, InputError
from api.models import Staff, User
from api.schemas import StaffCreate, StaffPublic, Token, UserCreate, UserPublic
from api.security import Principal, create_token, hash_password, verify_password

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/token", response_model=Token)
def login(
    service: ServiceDep, session: ReadSession, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """Exchange user name and password for a bearer token."""
    user = session.scalars(select(User).where(User.username == form.username)).first()
    if user is None or not user.active or not verify_password(form.password, user.password_hash):
        raise AuthError("wrong user name or password / 用户名或密码错误")
    principal = Principal(user.username, user.role, user.territory, user.staff_id)
    return Token(
        access_token=create_token(
            principal, secret=service.settings.secret(), minutes=service.settings.token_minutes
        )
    )


@router.get("/auth/me", response_model=UserPublic)
def me(session: ReadSession, who: CurrentUser) -> User:
    """The logged-in user."""
    user = session.scalars(select(User).where(User.username == who.username)).first()
    if user is None:
        raise AuthError("the user of this token no longer exists")
    return user


@router.post("/users", response_model=UserPublic, status_code=201)
def add_user(service: ServiceDep, who: CurrentUser, body: UserCreate) -> User:
    """Create a user (admins only)."""
    who.require("admin")
    with writing(service) as session:
        if session.scalars(select(User).where(User.username == body.username)).first() is not None:
            raise ConflictError(f"user {body.username} exists", where={"field": "username"})
        if body.staff_id is not None and session.get(Staff, body.staff_id) is None:
            raise InputError(f"staff {body.staff_id} does not exist", where={"field": "staff_id"})
        user = User(
            username=body.username,
            password_hash=hash_password(body.password),
            role=body.role,
            territory=body.territory,
            staff_id=body.staff_id,
        )
        session.add(user)
        session.flush()
        record(
            session,
            who,
            action="add_user",
            entity="user",
            entity_id=user.id,
            after={"username": user.username, "role": user.role, "territory": user.territory},
        )
    return user


@router.get("/users", response_model=list[UserPublic])
def list_users(session: ReadSession, who: CurrentUser) -> list[User]:
    """Every user (admins only)."""
    who.require("admin")
    return list(session.scalars(select(User).order_by(User.id)))


@router.post("/staff", response_model=StaffPublic, status_code=201)
def add_staff(service: ServiceDep, who: CurrentUser, body: StaffCreate) -> Staff:
    """Register a grid worker, grid head or handling unit in the caller's territory."""
    who.require("inspector", "planner")
    who.require_territory(body.territory, "territory")
    with writing(service) as session:
        staff = Staff(name=body.name, kind=body.kind, phone=body.phone, territory=body.territory)
        session.add(staff)
        session.flush()
        record(session, who, action="add_staff", entity="staff", entity_id=staff.id, after=body.model_dump())
    return staff


@router.get("/staff", response_model=list[StaffPublic])
def list_staff(session: ReadSession, who: CurrentUser) -> list[Staff]:
    """Staff whose territory overlaps the caller's."""
    rows = session.scalars(select(Staff).order_by(Staff.id))
    return [s for s in rows if who.overlaps(s.territory)]
