"""Schemathesis fuzzing of the OpenAPI spec against the real app on SQLite: no request gives a 5xx.

The spec comes from an app instance at collection time; the generated requests go, as an admin (so every
route is reachable), to the test's own app with the demo district stored and cases filed, so that generated
ids sometimes hit real rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from api.app import create_app
from api.db import open_database
from api.settings import Settings
from tests.api.conftest import COMMUNITY_A, Env, file

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (dev dependency) is not installed")
hypothesis = pytest.importorskip("hypothesis")

_SPEC_APP = create_app(Settings(jwt_secret=SecretStr("spec-only-" + "x" * 30)), open_database("sqlite://"))
schema = schemathesis.openapi.from_asgi("/openapi.json", _SPEC_APP)


@pytest.fixture
def fuzz_env(stored: Env, points: dict[str, tuple[float, float]]) -> Iterator[Env]:
    for category in ("0507", "0505"):
        file(stored, points[COMMUNITY_A], category=category)
    yield stored


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@schema.parametrize()
@hypothesis.settings(max_examples=5, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_no_server_errors(case: Any, fuzz_env: Env) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=fuzz_env.login("admin"))
    response = fuzz_env.client.request(**kwargs)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    )
