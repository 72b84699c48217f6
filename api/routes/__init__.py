"""The routers of the service, one per resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import audit, auth, cases, districts, missions, open311, plans

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    districts.router,
    plans.router,
    cases.router,
    missions.router,
    audit.router,
    open311.router,
)
