"""The routers of the service, one per resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import audit, auth, cases, districts, flags, flights, missions, open311, plans, tiles

#: tiles first: a map view asks for dozens of tiles at once, and routes are matched in this order (no
#: other router's paths overlap the tile routes)
ROUTERS: tuple[APIRouter, ...] = (
    tiles.router,
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
)
