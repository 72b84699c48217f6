"""Flights: register with a footage source, run the vision pipeline as a job, follow it live over server-sent
events, read its frames and flags."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import flights
from api.audit import record
from api.deps import TOKEN_URL, CurrentUser, IdPath, Offset, ReadSession, Service, ServiceDep, writing
from api.errors import AuthError, ConflictError, ForbiddenError, NotFoundError
from api.flight_events import Event, FlightHub
from api.flight_schemas import (
    FlightCreate,
    FlightDetail,
    FlightFlag,
    FlightPublic,
    FlightTrack,
    JobRef,
    PositionPublic,
)
from api.models import Flag, Flight, Frame
from api.security import Principal, decode_token

router = APIRouter(prefix="/api/v1/flights", tags=["flights"])
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_S = 15.0

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def hub_of(app: FastAPI) -> FlightHub:
    """The app's flight hub, created on first use (called on the event loop, or before serving)."""
    hub: FlightHub | None = getattr(app.state, "flight_hub", None)
    if hub is None:
        hub = FlightHub()
        app.state.flight_hub = hub
    return hub


async def _hub(request: Request) -> FlightHub:
    return hub_of(request.app)


HubDep = Annotated[FlightHub, Depends(_hub)]


def _viewer(
    service: ServiceDep,
    token: Annotated[str | None, Depends(_bearer)],
    access_token: Annotated[
        str | None, Query(max_length=4096, description="for EventSource and <img>")
    ] = None,
) -> Principal:
    """The caller, from the bearer header or (where a browser cannot send headers) ``?access_token=``."""
    chosen = token or access_token
    if not chosen:
        raise AuthError("log in first: no bearer token or access_token / 请先登录")
    return decode_token(chosen, secret=service.settings.secret())


Viewer = Annotated[Principal, Depends(_viewer)]


def _flight(session: Session, service: Service, who: Principal, flight_id: int) -> Flight:
    """The flight if it exists and overlaps the caller's territory (404 otherwise)."""
    flight = session.get(Flight, flight_id)
    if flight is None or not any(who.overlaps(c) for c in _codes(service, flight_id)):
        raise NotFoundError(f"flight {flight_id} does not exist", where={"flight_id": flight_id})
    return flight


def _codes(service: Service, flight_id: int) -> tuple[str, ...]:
    try:
        return flights.read_place(service.settings.data_dir, flight_id).codes()
    except NotFoundError:
        return ()


def _require_operator_of(service: Service, who: Principal, flight_id: int) -> None:
    who.require("operator")
    place = flights.read_place(service.settings.data_dir, flight_id)
    for code in place.grid_codes:
        who.require_territory(code, "grid")
    if not place.grid_codes and not who.overlaps(place.district_code):
        raise ForbiddenError(f"district {place.district_code} is outside your territory {who.territory}")


@router.post("", response_model=FlightPublic, status_code=201)
def register(service: ServiceDep, who: CurrentUser, body: FlightCreate) -> Flight:
    """Register a flight: the simulator (flies the mission), a video + DJI SRT, a DJI photo folder or a stream.

    Footage paths must lie inside the data folder or an import folder (``SKYGRID_IMPORT_DIRS``).
    """
    who.require("operator")
    given = body.source
    source = flights.FlightSource(given.kind, given.uri, given.srt, given.telemetry)
    folders = (service.settings.data_dir, tuple(service.settings.import_dirs))
    created: list[int] = []
    try:
        with writing(service) as session:
            flight = flights.register_flight(
                session, who, mission_id=body.mission_id, source=source, folders=folders
            )
            created.append(flight.id)
    except Exception:
        for flight_id in created:  # the row was rolled back: its folder goes too
            flights.discard_folder(service.settings.data_dir, flight_id)
        raise
    return flight


@router.get("", response_model=list[FlightPublic])
def list_flights(
    session: ReadSession,
    service: ServiceDep,
    who: CurrentUser,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[Flight]:
    """Flights over the caller's territory, newest first."""
    rows = session.scalars(select(Flight).order_by(Flight.id.desc()))
    visible = (f for f in rows if any(who.overlaps(c) for c in _codes(service, f.id)))
    return [f for i, f in enumerate(visible) if offset <= i < offset + limit]


@router.get("/{flight_id}", response_model=FlightDetail)
def get_flight(
    session: ReadSession, service: ServiceDep, who: CurrentUser, flight_id: IdPath
) -> FlightDetail:
    """A flight with its status, frame and flag counts and last position."""
    flight = _flight(session, service, who, flight_id)
    frames, flag_count = flights.flight_counts(session, flight_id)
    last = flights.last_frame(session, flight_id)
    position = (
        PositionPublic(lon=last.lon, lat=last.lat, altitude_m=last.altitude_m, t=last.taken_at)
        if last is not None and last.lon is not None and last.lat is not None
        else None
    )
    return FlightDetail(
        id=flight.id,
        mission_id=flight.mission_id,
        source_kind=flight.source_kind,
        source_uri=flight.source_uri,
        status=flight.status,
        created_by=flight.created_by,
        created_at=flight.created_at,
        frames=frames,
        flags=flag_count,
        last_position=position,
        latest_frame_url=f"/api/v1/flights/{flight_id}/frames/latest.jpg" if last is not None else None,
    )


@router.post("/{flight_id}/run", response_model=JobRef, status_code=202)
def run(service: ServiceDep, hub: HubDep, who: CurrentUser, flight_id: IdPath) -> JobRef:
    """Run the vision pipeline over the flight's frames as a background job; follow it on ``/events``."""
    with writing(service) as session:
        flight = session.get(Flight, flight_id)
        if flight is None:
            raise NotFoundError(f"flight {flight_id} does not exist", where={"flight_id": flight_id})
        _require_operator_of(service, who, flight_id)
        flights.require_registered(flight)
        flight.status = "running"
        job = flights.new_job(session, who, "flight", {"flight_id": flight_id})
    flights.start_flight(service, hub, flight_id=flight_id, job_id=job.id)
    return JobRef(job_id=job.id)


@router.post("/{flight_id}/stop", response_model=FlightPublic, status_code=202)
def stop(service: ServiceDep, hub: HubDep, who: CurrentUser, flight_id: IdPath) -> Flight:
    """Stop a running flight after the frame in hand (a live stream has no end of its own); it ends ``done``
    with the frames and flags found so far. Follow it on ``/events``."""
    with writing(service) as session:
        flight = session.get(Flight, flight_id)
        if flight is None:
            raise NotFoundError(f"flight {flight_id} does not exist", where={"flight_id": flight_id})
        _require_operator_of(service, who, flight_id)
        if flight.status != "running":
            raise ConflictError(
                f"flight {flight_id} is {flight.status}; only a running flight can be stopped",
                where={"status": flight.status},
            )
        record(session, who, action="stop_flight", entity="flight", entity_id=flight_id, after={"stop": True})
    hub.channel(flight_id).stop.set()
    return flight


@router.get("/{flight_id}/flags", response_model=list[FlightFlag])
def flight_flags(
    session: ReadSession, service: ServiceDep, who: CurrentUser, flight_id: IdPath
) -> list[Flag]:
    """The flags found on this flight so far."""
    _flight(session, service, who, flight_id)
    return list(session.scalars(select(Flag).where(Flag.flight_id == flight_id).order_by(Flag.id)))


@router.get("/{flight_id}/track", response_model=FlightTrack)
def flight_track(
    session: ReadSession, service: ServiceDep, who: CurrentUser, flight_id: IdPath
) -> FlightTrack:
    """Where the flight's frames were taken so far, in order, so a reopened live view can redraw its track."""
    _flight(session, service, who, flight_id)
    rows = session.execute(
        select(Frame.lon, Frame.lat)
        .where(Frame.flight_id == flight_id, Frame.lon.is_not(None), Frame.lat.is_not(None))
        .order_by(Frame.id)
    ).all()
    coordinates = [[lon, lat] for lon, lat in rows]
    return FlightTrack(
        geometry={"type": "LineString", "coordinates": coordinates},
        properties={"flight_id": flight_id, "positions": len(coordinates)},
    )


@router.get("/{flight_id}/events", response_class=StreamingResponse)
async def events(service: ServiceDep, hub: HubDep, who: Viewer, flight_id: IdPath) -> StreamingResponse:
    """Server-sent events: ``status`` {status, frames, flags}, ``position`` {lon, lat, altitude_m, heading_deg,
    t}, ``frame`` {frame_id, url}, ``flag`` {id, category, score, lon, lat, grid_code} and ``done``.

    A late subscriber first gets the current status and last position. Positions and frames are coalesced for
    a slow client; flags are never dropped. Authenticate with the bearer header or ``?access_token=``.
    """
    fallback = await run_in_threadpool(_stored_events, service, who, flight_id)
    channel = hub.channel(flight_id)
    subscriber = channel.subscribe(asyncio.get_running_loop(), fallback)

    async def stream() -> AsyncIterator[str]:
        try:
            while True:
                batch = await subscriber.next_events(KEEPALIVE_S)
                if not batch:
                    yield ": keep-alive\n\n"
                for event in batch:
                    yield event.encode()
                if any(event.kind == "done" for event in batch):
                    return
        finally:
            channel.unsubscribe(subscriber)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _stored_events(service: Service, who: Principal, flight_id: int) -> list[Event]:
    """The flight's state from the database, for a channel nothing was published on (e.g. after a restart)."""
    with service.db.read() as session:
        return _stored(session, service, who, flight_id)


def _stored(session: Session, service: Service, who: Principal, flight_id: int) -> list[Event]:
    flight = _flight(session, service, who, flight_id)
    frames, flag_count = flights.flight_counts(session, flight_id)
    stored = [Event("status", {"status": flight.status, "frames": frames, "flags": flag_count})]
    last = flights.last_frame(session, flight_id)
    if last is not None:
        t = last.taken_at.isoformat() if last.taken_at else None
        stored.append(
            Event(
                "position",
                {
                    "lon": last.lon,
                    "lat": last.lat,
                    "altitude_m": last.altitude_m,
                    "heading_deg": None,
                    "t": t,
                },
            )
        )
    if flight.status in flights.FINAL_STATUSES:
        stored.append(Event("done", {"status": flight.status}))
    return stored


@router.get("/{flight_id}/frames/latest.jpg", response_class=FileResponse)
def latest_frame(session: ReadSession, service: ServiceDep, who: Viewer, flight_id: IdPath) -> FileResponse:
    """The newest frame of the flight (JPEG)."""
    _flight(session, service, who, flight_id)
    frame = flights.last_frame(session, flight_id)
    if frame is None:
        raise NotFoundError(f"flight {flight_id} has no frames yet", where={"flight_id": flight_id})
    return _jpeg(service, frame)


@router.get("/{flight_id}/frames/{frame_id}.jpg", response_class=FileResponse)
def frame_image(
    session: ReadSession, service: ServiceDep, who: Viewer, flight_id: IdPath, frame_id: IdPath
) -> FileResponse:
    """One frame of the flight (JPEG)."""
    _flight(session, service, who, flight_id)
    frame = session.get(Frame, frame_id)
    if frame is None or frame.flight_id != flight_id:
        raise NotFoundError(f"flight {flight_id} has no frame {frame_id}", where={"frame_id": frame_id})
    return _jpeg(service, frame)


def _jpeg(service: Service, frame: Frame) -> FileResponse:
    path = Path(service.settings.data_dir) / frame.path
    if not path.is_file():
        raise NotFoundError(f"the image of frame {frame.id} is missing from the data folder")
    return FileResponse(path, media_type="image/jpeg")
