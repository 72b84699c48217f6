"""Open311 GeoReport v2 (JSON): services, requests and filing a request, for city platforms and outside apps.

Services are the case categories of :mod:`api.categories`: ``service_code`` is the GB/T 30428.2 code (e.g.
``0505``) and ``service_name`` its Chinese name. Our case states map to Open311's two: closed, rejected and
duplicate are ``closed``; every other state is ``open``. Errors take GeoReport's form
``[{"code": 400, "description": "..."}]``. Reading is public and shows no personal data; filing needs an access token, as the ``api_key``
field or a bearer header. Both ``/requests`` and ``/requests.json`` forms are served.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import select

from api import cases
from api.categories import CategoryTable
from api.deps import IdPath, ReadSession, ServiceDep, current_user
from api.errors import ApiError, NotFoundError
from api.models import Case
from api.routes.cases import file_case
from api.workflow import FINAL_STATES

AGENCY = "SkyGrid community grid governance / 网格化管理"


class GeoReportRoute(APIRoute):
    """A route whose errors take GeoReport v2's form, ``[{"code": 404, "description": "..."}]``; the status
    comes from the service's one exception map (a request the schema refuses, or unusable content, is 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
                return _georeport(400, problems)
            except ApiError as error:
                answer = await request.app.exception_handlers[ApiError](request, error)
                status = 400 if answer.status_code == 422 else answer.status_code
                where = f" ({', '.join(f'{k}: {v}' for k, v in error.where.items())})" if error.where else ""
                return _georeport(status, f"{error.message}{where}", answer.headers)

        return route


def _georeport(status: int, description: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    kept = {k: v for k, v in (headers or {}).items() if k.lower() == "www-authenticate"}
    return JSONResponse([{"code": status, "description": description}], status_code=status, headers=kept)


router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=GeoReportRoute)


class Service311(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = False
    type: Literal["realtime", "batch", "blackbox"] = "realtime"
    keywords: str
    group: str = "community"


class Request311(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str
    service_notice: str | None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float
    long: float
    media_url: str | None


class Filed311(BaseModel):
    service_request_id: str
    service_notice: str | None
    account_id: str | None = None


def _status(case: Case) -> tuple[Literal["open", "closed"], str | None]:
    if case.state == "duplicate":
        return "closed", f"duplicate of {case.duplicate_of}"
    if case.state in FINAL_STATES:
        return "closed", case.state
    return "open", case.state


def to_open311(case: Case, categories: CategoryTable) -> Request311:
    """A case as an Open311 service request (``service_name`` in Chinese)."""
    status, notes = _status(case)
    category = categories.get(case.category)
    name = category.name_zh if category is not None else case.category
    return Request311(
        service_request_id=str(case.id),
        status=status,
        status_notes=notes,
        service_name=name,
        service_code=case.category,
        description=case.description or None,
        agency_responsible=AGENCY,
        service_notice=None,
        requested_datetime=case.created_at,
        updated_datetime=case.updated_at,
        expected_datetime=case.due_at,
        address=case.address,
        address_id=case.grid_code,
        zipcode=None,
        lat=case.lat,
        long=case.lon,
        media_url=None,
    )


@router.get("/services", response_model=list[Service311])
@router.get("/services.json", response_model=list[Service311], include_in_schema=False)
def services(service: ServiceDep) -> list[Service311]:
    """The kinds of problem that can be reported: the case categories (code, Chinese name)."""
    return [
        Service311(
            service_code=c.code,
            service_name=c.name_zh,
            description=f"{c.name_en} ({c.standard} {c.code})",
            keywords=",".join((c.name_zh, *c.name_en.split())),
            group="城市管理 city management",
        )
        for c in service.categories.by_code.values()
    ]


@router.get("/requests", response_model=list[Request311])
@router.get("/requests.json", response_model=list[Request311], include_in_schema=False)
def list_requests(
    service: ServiceDep,
    session: ReadSession,
    service_request_id: str | None = None,
    service_code: str | None = None,
    status: Literal["open", "closed"] | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[Request311]:
    """Service requests, newest first (Open311 default window: everything, at most 1000)."""
    stmt = select(Case)
    if service_request_id is not None:
        ids = [int(i) for i in service_request_id.split(",") if i.strip().isdigit() and len(i.strip()) < 10]
        stmt = stmt.where(Case.id.in_(ids))
    if service_code is not None:
        stmt = stmt.where(Case.category.in_(service_code.split(",")))
    if status is not None:
        closed = Case.state.in_(FINAL_STATES)
        stmt = stmt.where(closed if status == "closed" else ~closed)
    if start_date is not None:
        stmt = stmt.where(Case.created_at >= start_date)
    if end_date is not None:
        stmt = stmt.where(Case.created_at <= end_date)
    rows = session.scalars(stmt.order_by(Case.id.desc()).limit(limit))
    return [to_open311(c, service.categories) for c in rows]


@router.get("/requests/{request_id}", response_model=list[Request311])
@router.get("/requests/{request_id}.json", response_model=list[Request311], include_in_schema=False)
def get_request(service: ServiceDep, session: ReadSession, request_id: IdPath) -> list[Request311]:
    """One service request (as a one-element list, as Open311 returns it)."""
    case = session.get(Case, request_id)
    if case is None:
        raise NotFoundError(
            f"service request {request_id} does not exist", where={"service_request_id": request_id}
        )
    return [to_open311(case, service.categories)]


@router.post("/requests", response_model=list[Filed311], status_code=201)
@router.post("/requests.json", response_model=list[Filed311], status_code=201, include_in_schema=False)
def post_request(
    request: Request,
    service: ServiceDep,
    service_code: Annotated[str, Form()],
    lat: Annotated[float, Form(ge=-90, le=90)],
    long: Annotated[float, Form(ge=-180, le=180)],
    description: Annotated[str, Form(max_length=4000)] = "",
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    api_key: Annotated[str | None, Form()] = None,
) -> list[Filed311]:
    """File a service request (form-encoded, as Open311 clients send it)."""
    token = api_key or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    who = current_user(service, token or None)
    service.categories.require(service_code, field="service_code")
    filed = file_case(
        service,
        who,
        cases.Report(
            service_code, long, lat, description=description, address=address_string, source="open311"
        ),
    )
    notice = f"filed; {len(filed.duplicate_suggestions)} similar open case(s) nearby"
    return [Filed311(service_request_id=str(filed.id), service_notice=notice)]
