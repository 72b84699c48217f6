"""The FastAPI application: routers under ``/api/v1`` and ``/open311/v2``, one error → status map, upload
size and request-rate limits.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from api.db import Database, open_database
from api.deps import RateLimiter, Service
from api.routes import ROUTERS
from api.settings import Settings
from api.tiles_service import TileService
from api.web import mount as mount_web

#: The one map from exceptions to HTTP statuses; routes never catch them.
STATUS_CODES: dict[type[errors.ApiError], int] = {
    errors.AuthError: 401,
    errors.ForbiddenError: 403,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.TransitionError: 409,
    errors.TooLargeError: 413,
    errors.InputError: 422,
    errors.RateLimitError: 429,
}


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    """The service for ``settings`` (the JWT secret must be set); ``database`` defaults to the settings' URL."""
    settings.secret()
    db = database or open_database(settings.resolved_database_url())
    app = FastAPI(
        title="SkyGrid",
        version="1",
        description="Community grid governance: districts, grid plans, flags and closed-loop cases.",
        lifespan=_lifespan,
    )
    categories = settings.category_table()
    service = Service(
        settings=settings,
        db=db,
        limits=settings.time_limits(categories),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        categories=categories,
    )
    app.state.service = service
    app.state.tiles = TileService()  # vector-tile sources and tiles, per app
    for router in ROUTERS:
        app.include_router(router)
    mount_web(app)
    app.add_exception_handler(errors.ApiError, _api_error)  # type: ignore[arg-type]
    app.add_middleware(LimitsMiddleware, service=service)
    return app


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Keep what lives as long as the process out of the cyclic garbage collector while the app serves.

    Once started, the interpreter holds ~300,000 container objects (the modules, classes and functions of
    numpy, pandas, SQLAlchemy, FastAPI …) that never become garbage, yet every full (generation-2)
    collection walks them all: a pause of ~170 ms that lands on whichever request allocates at the wrong
    moment (a tile, a paint stroke). ``gc.freeze`` moves them to the permanent generation once the app is
    ready; shutdown moves them back, so a process that makes many apps (the tests) still reclaims an old
    app's cycles.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _api_error(request: Request, error: errors.ApiError) -> JSONResponse:
    status = next((STATUS_CODES[cls] for cls in type(error).__mro__ if cls in STATUS_CODES), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": type(error).__name__, "detail": error.message, "where": error.where}
    return JSONResponse(body, status_code=status, headers=headers)


class LimitsMiddleware:
    """The request-rate and upload-size limits, checked before routing.

    A plain ASGI middleware rather than ``app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs
    every request through a task group and memory streams, ~0.5 ms of CPU a request — as much as serving
    a cached map tile, and a map view asks for dozens at once.
    """

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (refused := self._refusal(scope)) is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        """The error response when the request breaks a limit, else None."""
        client = scope.get("client")
        limiter = self.service.limiter
        if not limiter.allow(client[0] if client else "unknown"):
            return _error(
                429, errors.RateLimitError(f"more than {limiter.limit} requests a minute; slow down")
            )
        limit = self.service.settings.max_upload_bytes
        length = next((value for name, value in scope["headers"] if name == b"content-length"), b"")
        if length.isdigit() and int(length) > limit:
            return _error(
                413,
                errors.TooLargeError(
                    f"request body of {int(length)} bytes exceeds the limit of {limit} / 文件过大",
                    where={"header": "content-length"},
                ),
            )
        return None


def _error(status: int, error: errors.ApiError) -> JSONResponse:
    return JSONResponse(
        {"error": type(error).__name__, "detail": error.message, "where": error.where}, status_code=status
    )


def from_environment() -> FastAPI:
    """App factory for ``uvicorn --factory api.app:from_environment``: settings from ``SKYGRID_*`` variables.

    The schema must already be current (``skygrid db upgrade``).
    """
    from api.settings import ensure_secret

    return create_app(ensure_secret(Settings()))
