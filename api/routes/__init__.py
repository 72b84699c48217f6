"""The routers of the service, one per resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import audit, auth, cases, districts, flags, flights, missions, open311, plans, tiles

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    districts.router,
    plans.router,
    cases.router,
    flags.router,
    missions.router,
    missions.cameras_router,
    flights.router,
    audit.router,
    open311.router,
    tiles.router,
)
