"""Log-in, tokens, roles, territories, users and settings."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from api.app import create_app
from api.errors import AuthError
from api.security import Principal, check_territory_code, create_token, decode_token
from api.settings import Settings, ensure_secret
from tests.api.conftest import PASSWORD, Env

SECRET = "s" * 40


def test_login_and_me(env: Env) -> None:
    response = env.client.post("/api/v1/auth/token", data={"username": "planner", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["token_type"] == "bearer"
    me = env.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert (me.json()["username"], me.json()["role"], me.json()["territory"]) == (
        "planner",
        "planner",
        "320571",
    )


@pytest.mark.parametrize(("username", "password"), [("planner", "wrong-password"), ("nobody", PASSWORD)])
def test_bad_login_is_401(env: Env, username: str, password: str) -> None:
    response = env.client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 401 and response.json()["error"] == "AuthError"


def test_missing_forged_and_expired_tokens(env: Env) -> None:
    assert env.client.get("/api/v1/auth/me").status_code == 401
    forged = create_token(Principal("admin", "admin", ""), secret="other-secret-" + "x" * 30, minutes=5)
    assert env.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    old = datetime.now(UTC) - timedelta(hours=2)
    expired = create_token(Principal("admin", "admin", ""), secret=env.settings.secret(), minutes=5, now=old)
    response = env.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_token_round_trip() -> None:
    who = Principal("w", "grid_worker", "320571001001", staff_id=7)
    assert decode_token(create_token(who, secret=SECRET, minutes=1), secret=SECRET) == who
    with pytest.raises(AuthError):
        decode_token("not.a.token", secret=SECRET)


def test_admin_adds_users_others_may_not(env: Env) -> None:
    body = {"username": "li", "password": "long-enough-1", "role": "inspector", "territory": "320571001"}
    assert env.client.post("/api/v1/users", headers=env.login("planner"), json=body).status_code == 403
    created = env.client.post("/api/v1/users", headers=env.login("admin"), json=body)
    assert created.status_code == 201 and created.json()["territory"] == "320571001"
    again = env.client.post("/api/v1/users", headers=env.login("admin"), json=body)
    assert again.status_code == 409 and again.json()["where"] == {"field": "username"}
    bad = env.client.post(
        "/api/v1/users", headers=env.login("admin"), json={**body, "username": "x", "territory": "12"}
    )
    assert bad.status_code == 422
    names = [u["username"] for u in env.client.get("/api/v1/users", headers=env.login("admin")).json()]
    assert "li" in names


def test_staff_registered_in_own_territory_only(env: Env) -> None:
    body = {"name": "王师傅", "kind": "handling_unit", "phone": "110", "territory": "320571001002"}
    outside = env.client.post("/api/v1/staff", headers=env.login("planner_a"), json=body)
    assert outside.status_code == 403 and "outside your territory" in outside.json()["detail"]
    inside = env.client.post("/api/v1/staff", headers=env.login("planner_b"), json=body)
    assert inside.status_code == 201
    seen_by_a = [s["name"] for s in env.client.get("/api/v1/staff", headers=env.login("planner_a")).json()]
    assert "王师傅" not in seen_by_a and "张网格员" in seen_by_a


@pytest.mark.parametrize(
    ("territory", "code", "covered"),
    [
        ("", "320571001001", True),
        ("320571", "320571001001001", True),
        ("320571001001", "320571001002", False),
        ("320571001001001", "320571001001", False),
    ],
)
def test_territory_covers_prefixes(territory: str, code: str, covered: bool) -> None:
    assert Principal("u", "planner", territory).covers(code) is covered


@pytest.mark.parametrize("code", ["", "320571", "320571001", "320571001001", "320571001001001"])
def test_valid_territory_codes(code: str) -> None:
    assert check_territory_code(code) == code


@pytest.mark.parametrize("code", ["32057", "3205710011", "abcdef"])
def test_invalid_territory_codes(code: str) -> None:
    with pytest.raises(ValueError, match="territory must be"):
        check_territory_code(code)


def test_app_refuses_to_start_without_secret(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="SKYGRID_JWT_SECRET"):
        create_app(Settings(data_dir=tmp_path))


def test_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = ensure_secret(Settings(data_dir=tmp_path))
    second = ensure_secret(Settings(data_dir=tmp_path))
    assert first.secret() == second.secret() and len(first.secret()) >= 40
    assert stat.S_IMODE((tmp_path / "jwt-secret").stat().st_mode) == 0o600
    given = ensure_secret(Settings(data_dir=tmp_path, jwt_secret=SecretStr("mine")))
    assert given.secret() == "mine"


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKYGRID_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SKYGRID_RECHECK_MINUTES", "45")
    monkeypatch.setenv("SKYGRID_HANDLE_MINUTES", '{"*": {"compound": 1, "community": 2, "street": 3}}')
    settings = Settings()
    assert settings.data_dir == tmp_path and settings.recheck_minutes == 45
    assert settings.handle_minutes["*"]["street"] == 3
    assert settings.resolved_database_url().endswith("skygrid.sqlite")


def test_rate_limit(env: Env) -> None:
    env.client.app.state.service.limiter.limit = 3  # type: ignore[attr-defined]
    codes = [env.client.get("/open311/v2/services").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_audit_log_through_the_api(env: Env) -> None:
    body = {"username": "zhao", "password": "long-enough-1", "role": "operator", "territory": "320571"}
    assert env.client.post("/api/v1/users", headers=env.login("admin"), json=body).status_code == 201
    assert env.client.get("/api/v1/audit", headers=env.login("planner")).status_code == 403
    entries = env.client.get("/api/v1/audit", headers=env.login("admin"), params={"entity": "user"}).json()
    assert entries[0]["action"] == "add_user" and entries[0]["after"]["username"] == "zhao"
    assert entries[0]["username"] == "admin" and entries[0]["role"] == "admin"
    verdict = env.client.get("/api/v1/audit/verify", headers=env.login("admin")).json()
    assert verdict == {"intact": True, "entries": 1, "broken_at": None, "reason": None}


def test_app_factory_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.app import from_environment
    from api.db import open_database, upgrade

    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    database = open_database(url)
    upgrade(database)
    database.dispose()
    monkeypatch.setenv("SKYGRID_DATABASE_URL", url)
    monkeypatch.setenv("SKYGRID_DATA_DIR", str(tmp_path))
    with TestClient(from_environment()) as client:
        assert client.get("/api/v1/auth/me").status_code == 401
        assert client.post("/api/v1/auth/token", data={"username": "x", "password": "y"}).status_code == 401
    assert (tmp_path / "jwt-secret").is_file()
