"""Map tiles: plan and district vector tiles (MVT + TileJSON), live flag tiles, the offline basemap package
(HTTP range requests), flight orthomosaic tiles and the basemap options of the web pages.

Every tile endpoint needs the bearer token; ``/web/config`` is public (the login page reads it).

The vector-tile routes are the hottest of the service (a map view asks for dozens of tiles at once), so
they resolve the caller, the tile address and the tile service on the event loop (microseconds of work
each) and do their database and rendering work in one worker-thread call: FastAPI runs every plain
``def`` dependency in a worker thread of its own, and those hops cost more than a cached tile.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer

from api import tiles_service as ts
from api.db import Database
from api.deps import TOKEN_URL, CurrentUser, IdPath, ReadSession, ServiceDep, current_user, get_service
from api.security import Principal
from api.settings import Settings
from api.tiles_service import Crs, TileAddress, TileService
from tiles.gcj02 import gcj02_to_wgs84

router = APIRouter(prefix="/api/v1", tags=["tiles"])

MVT_MEDIA = "application/vnd.mapbox-vector-tile"
#: a tile whose URL names the current revision never changes (a new revision has a new URL)
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"
DISTRICT_MAX_AGE = "private, max-age=3600"
_TileIndex = Annotated[int, Path(ge=0, le=2**31 - 1)]
CrsQuery = Annotated[
    Crs, Query(description="gcj02 shifts geometries for a Gaode/Tencent basemap (display only)")
]


async def tile_service(request: Request) -> TileService:
    """The app's tile service."""
    service: TileService = request.app.state.tiles
    return service


TilesDep = Annotated[TileService, Depends(tile_service)]


async def _tile(z: _TileIndex, x: _TileIndex, y: _TileIndex) -> TileAddress:
    return TileAddress(z, x, y)


TileDep = Annotated[TileAddress, Depends(_tile)]
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def _caller(request: Request, token: Annotated[str | None, Depends(_bearer)]) -> Principal:
    """The caller of a valid bearer token (401 otherwise), checked on the event loop: a signature check."""
    return current_user(get_service(request), token)


Caller = Annotated[Principal, Depends(_caller)]


def _database(request: Request) -> Database:
    return get_service(request).db


def mvt_response(request: Request, data: bytes, cache_control: str) -> Response:
    """204 for an empty tile; else the tile with its ETag (304 when the client already has it)."""
    if not data:
        return Response(status_code=204, headers={"Cache-Control": cache_control})
    headers = {"ETag": ts.tile_etag(data), "Cache-Control": cache_control}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=MVT_MEDIA, headers=headers)


def _query(crs: Crs, revision: int | None = None) -> str:
    params = ([f"rev={revision}"] if revision is not None else []) + (["crs=gcj02"] if crs == "gcj02" else [])
    return "?" + "&".join(params) if params else ""


@router.get("/tiles/plans/{plan_id}/versions/{number}.json")
def plan_tilejson(
    request: Request,
    response: Response,
    session: ReadSession,
    who: CurrentUser,
    plan_id: IdPath,
    number: IdPath,
    crs: CrsQuery = "wgs84",
) -> dict[str, Any]:
    """TileJSON 3.0 of a plan version; its tile URL names the current revision, so edits give fresh tiles."""
    ref = ts.plan_ref(session, who, plan_id, number)
    base = str(request.url_for("plan_tile", plan_id=plan_id, number=number, z="{z}", x="{x}", y="{y}"))
    meta = ts.TileJson(ts.district_bounds(session, ref.district_id), ts.PLAN_SPECS)
    url = _unquote_template(base) + _query(crs, ref.revision)
    response.headers["Cache-Control"] = "no-store"  # it names the current revision
    return ts.tilejson(url, meta, name=f"plan {plan_id} version {number}")


@router.get("/tiles/plans/{plan_id}/versions/{number}/{z}/{x}/{y}.mvt", name="plan_tile")
async def plan_tile(
    request: Request,
    who: Caller,
    plan_id: IdPath,
    number: IdPath,
    z: _TileIndex,
    x: _TileIndex,
    y: _TileIndex,
    rev: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    crs: CrsQuery = "wgs84",
) -> Response:
    """Layers buildings (feature id = building row id), grids, microgrids and communities; 204 when empty.

    A tile of the revision its URL names is served without the database while this process holds that
    revision's source (from the cache without leaving the event loop); otherwise the current revision is
    looked up (and served). The tile service and address are taken here rather than as dependencies:
    each dependency FastAPI resolves costs as much as a cache look-up.
    """
    tiles: TileService = request.app.state.tiles
    tile = TileAddress(z, x, y)
    if rev is not None:
        cached = tiles.known_plan_tile(who, plan_id, number, rev, tile, crs, cached_only=True)
        if cached is not None:
            return mvt_response(request, cached, IMMUTABLE)

    def render() -> tuple[bytes, int]:
        if (
            rev is not None
            and (known := tiles.known_plan_tile(who, plan_id, number, rev, tile, crs)) is not None
        ):
            return known, rev
        with _database(request).read() as session:
            ref = ts.plan_ref(session, who, plan_id, number)
            return tiles.plan_tile(session, ref, tile, crs), ref.revision

    data, revision = await run_in_threadpool(render)
    return mvt_response(request, data, IMMUTABLE if rev == revision else REVALIDATE)


@router.get("/tiles/districts/{district_id}.json")
def district_tilejson(
    request: Request, session: ReadSession, who: CurrentUser, district_id: IdPath, crs: CrsQuery = "wgs84"
) -> dict[str, Any]:
    """TileJSON 3.0 of a district's own layers (communities, compounds, roads, zones)."""
    district = ts.district_in_scope(session, who, district_id)
    base = str(request.url_for("district_tile", district_id=district_id, z="{z}", x="{x}", y="{y}"))
    meta = ts.TileJson(ts.district_bounds(session, district_id), ts.DISTRICT_SPECS)
    return ts.tilejson(_unquote_template(base) + _query(crs), meta, name=f"district {district.name}")


@router.get("/tiles/districts/{district_id}/{z}/{x}/{y}.mvt", name="district_tile")
async def district_tile(
    request: Request,
    who: Caller,
    tiles: TilesDep,
    district_id: IdPath,
    tile: TileDep,
    crs: CrsQuery = "wgs84",
) -> Response:
    """Layers communities, compounds, roads, parking, fire_lanes, green, public_space and no_fly."""

    def render() -> bytes:
        with _database(request).read() as session:
            ts.district_in_scope(session, who, district_id)
            return tiles.district_tile(session, district_id, tile, crs)

    return mvt_response(request, await run_in_threadpool(render), DISTRICT_MAX_AGE)


@router.get("/tiles/flags/{z}/{x}/{y}.mvt")
async def flag_tile(
    request: Request,
    who: Caller,
    tile: TileDep,
    district_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
    crs: CrsQuery = "wgs84",
) -> Response:
    """Layer flags (flag_id, category, status, score, grid_code) of a district, as they are now."""

    def render() -> bytes:
        with _database(request).read() as session:
            district = ts.district_in_scope(session, who, district_id)
            narrower = who.territory.startswith(district.code)  # a community's inspector: its own flags
            return ts.flag_tile(session, who.territory if narrower else district.code, tile, crs)

    return mvt_response(request, await run_in_threadpool(render), REVALIDATE)


@router.get("/districts/{district_id}/basemap.pmtiles")
def basemap_package(
    request: Request,
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    tiles: TilesDep,
    district_id: IdPath,
) -> Response:
    """The district's offline basemap (PMTiles, built on first request); honours single byte ranges."""
    ts.district_in_scope(session, who, district_id)
    path = tiles.basemap(session, district_id, service.settings.data_dir)
    return _file_range(path, request.headers.get("range"))


def _file_range(path: FilePath, header: str | None) -> Response:
    size = path.stat().st_size
    wanted = ts.byte_range(header, size)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": REVALIDATE, "ETag": _file_etag(path)}
    if not wanted.satisfiable:
        body = {
            "error": "RangeNotSatisfiable",
            "detail": f"range {header} starts beyond the end of the {size}-byte file",
            "where": {"header": "range"},
        }
        return JSONResponse(body, status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    with path.open("rb") as handle:
        handle.seek(wanted.start)
        data = handle.read(wanted.length)
    if not wanted.partial:
        return Response(data, media_type="application/vnd.pmtiles", headers=headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    return Response(data, status_code=206, media_type="application/vnd.pmtiles", headers=headers)


def _file_etag(path: FilePath) -> str:
    stat = path.stat()
    return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'


@router.get("/flights/{flight_id}/ortho/{z}/{x}/{y}.png")
def ortho_tile(
    service: ServiceDep,
    session: ReadSession,
    who: CurrentUser,
    tiles: TilesDep,
    flight_id: IdPath,
    tile: TileDep,
) -> Response:
    """A flight's orthomosaic tile (PNG with transparency), from its posed frames; 204 where none covers."""
    who.require("operator", "inspector", "planner")
    data = tiles.ortho_tile(session, flight_id, tile, service.settings.data_dir)
    if data is None:
        return Response(status_code=204, headers={"Cache-Control": REVALIDATE})
    return Response(data, media_type="image/png", headers={"Cache-Control": REVALIDATE})


@router.get("/web/config")
def web_config(service: ServiceDep) -> dict[str, Any]:
    """Basemap options of the web pages (public): the offline package by default, Tianditu with a key, Gaode."""
    return {"basemaps": basemap_options(service.settings), "default_basemap": "offline"}


@router.get("/web/gcj02-to-wgs84")
def to_wgs84(
    lon: Annotated[float, Query(ge=-180, le=180)], lat: Annotated[float, Query(ge=-90, le=90)]
) -> dict[str, float]:
    """A point clicked on a GCJ-02 basemap, back in WGS-84 (exact iterative inverse)."""
    wgs_lon, wgs_lat = gcj02_to_wgs84(lon, lat)
    return {"lon": wgs_lon, "lat": wgs_lat}


def _unquote_template(url: str) -> str:
    return url.replace("%7Bz%7D", "{z}").replace("%7Bx%7D", "{x}").replace("%7By%7D", "{y}")


_TIANDITU = "https://t{n}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
_GAODE = (
    "https://webrd0{n}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={{x}}&y={{y}}&z={{z}}"
)


def basemap_options(settings: Settings) -> list[dict[str, Any]]:
    """The basemaps a page may show: ``offline`` (the district's PMTiles, WGS-84) always, ``tianditu``
    (vector + annotation WMTS, WGS-84 Web Mercator) when a key is configured, and ``gaode`` (GCJ-02: data
    layers must then be requested with ``crs=gcj02``). The online ones need internet access."""
    options: list[dict[str, Any]] = [
        {
            "id": "offline",
            "kind": "pmtiles",
            "crs": "wgs84",
            "online": False,
            "label": {"zh": "离线底图", "en": "Offline basemap"},
            "url": "/api/v1/districts/{district_id}/basemap.pmtiles",
        }
    ]
    if settings.tianditu_key is not None and settings.tianditu_key.get_secret_value():
        key = settings.tianditu_key.get_secret_value()
        options.append(
            {
                "id": "tianditu",
                "kind": "raster",
                "crs": "wgs84",
                "online": True,
                "label": {"zh": "天地图", "en": "Tianditu"},
                "layers": [
                    [_TIANDITU.format(n=n, layer=layer, key=key) for n in range(8)]
                    for layer in ("vec", "cva")
                ],
                "attribution": "© 天地图 Tianditu",
            }
        )
    options.append(
        {
            "id": "gaode",
            "kind": "raster",
            "crs": "gcj02",
            "online": True,
            "label": {"zh": "高德地图", "en": "Gaode (AMap)"},
            "layers": [[_GAODE.format(n=n) for n in range(1, 5)]],
            "attribution": "© 高德地图 AutoNavi",
        }
    )
    return options
