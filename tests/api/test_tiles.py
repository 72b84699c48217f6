"""Map tiles through the API on both backends: plan and district vector tiles (decoded with
mapbox_vector_tile), invalidation by plan revision, HTTP caching, flags, the offline basemap with range
requests, GCJ-02 display shifting, orthomosaic tiles, territory scoping and bad input."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import cv2
import mapbox_vector_tile
import mercantile
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import event, select

from api.app import create_app
from api.db import transaction
from api.geometry import spatial
from api.models import Building, Flag, Flight, Frame
from api.security import Principal, create_token
from tests.api.conftest import COMMUNITY_A, Env
from tiles.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02

V1 = "/api/v1/tiles/plans/1/versions/1"
PLAN_V1 = "/api/v1/plans/1/versions/1"


def _get(env: Env, path: str, user: str = "planner", **kwargs: Any) -> Any:
    return env.client.get(path, headers={**env.login(user), **kwargs.pop("headers", {})}, **kwargs)


def _decode(data: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = mapbox_vector_tile.decode(data)
    return decoded


def _building(env: Env, building_id: str | None = None) -> tuple[int, str, shapely.Geometry]:
    """A stored building of community A: its row id, building_id and footprint."""
    with env.db.read() as session:
        stmt = select(Building.id, Building.building_id, Building.geom).where(
            Building.community_code == COMMUNITY_A
        )
        if building_id is not None:
            stmt = stmt.where(Building.building_id == building_id)
        row = session.execute(stmt.order_by(Building.id)).first()
    assert row is not None
    return int(row[0]), str(row[1]), row[2]


def _tile_of(geom: shapely.Geometry, z: int) -> mercantile.Tile:
    point = shapely.point_on_surface(geom)
    return mercantile.tile(point.x, point.y, z)


def _features(data: bytes, layer: str) -> dict[int, dict[str, Any]]:
    return {f["id"]: f for f in _decode(data).get(layer, {}).get("features", [])}


def test_plan_tilejson(drafted: Env) -> None:
    response = _get(drafted, f"{V1}.json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tilejson"] == "3.0.0" and body["minzoom"] == 10 and body["maxzoom"] == 18
    assert response.headers["cache-control"] == "no-store"
    assert body["tiles"][0].endswith(f"{V1}/{{z}}/{{x}}/{{y}}.mvt?rev=1")
    west, south, east, north = body["bounds"]
    _, _, geom = _building(drafted)
    assert west < geom.centroid.x < east and south < geom.centroid.y < north
    layers = {layer["id"]: layer for layer in body["vector_layers"]}
    assert set(layers) == {"buildings", "grids", "microgrids", "communities"}
    assert layers["buildings"]["fields"]["households"] == "Number"
    assert "locked" in layers["grids"]["fields"]


def test_plan_tile_layers_ids_and_properties(drafted: Env) -> None:
    row_id, building_id, geom = _building(drafted)
    tile = _tile_of(geom, 16)
    response = _get(drafted, f"{V1}/{tile.z}/{tile.x}/{tile.y}.mvt")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layers = _decode(response.content)
    assert {"buildings", "grids", "microgrids", "communities"} <= set(layers)
    building = _features(response.content, "buildings")[row_id]["properties"]
    assert building["building_id"] == building_id
    assert building["community_code"] == COMMUNITY_A
    assert building["grid_code"].startswith(COMMUNITY_A) and building["microgrid_code"].startswith(
        building["grid_code"]
    )
    grid = next(f["properties"] for f in layers["grids"]["features"])
    assert set(grid) == {"grid_code", "community_code", "households", "status", "locked"}
    assert grid["locked"] is False


def _whole_building_move(env: Env) -> tuple[dict[str, Any], str]:
    """A unit that is a whole building of community A and a micro-grid of another grid of A."""
    community = _get(env, f"{PLAN_V1}/grids", params={"community_code": COMMUNITY_A}).json()
    details = [_get(env, f"{PLAN_V1}/grids/{g['grid_code']}").json() for g in community]
    units = [u for d in details for u in d["units"]]
    counts = Counter(u["building_id"] for u in units)
    unit = next(u for u in units if counts[u["building_id"]] == 1)
    other = next(d for d in details if d["grid_code"] != unit["grid_code"])
    return unit, other["microgrids"][0]["microgrid_code"]


def test_painting_a_building_changes_the_next_tile(drafted: Env) -> None:
    unit, target = _whole_building_move(drafted)
    row_id, _, geom = _building(drafted, unit["building_id"])
    tile = _tile_of(geom, 16)
    path = f"{V1}/{tile.z}/{tile.x}/{tile.y}.mvt"
    before = _features(_get(drafted, path, params={"rev": 1}).content, "buildings")[row_id]
    assert before["properties"]["grid_code"] == unit["grid_code"]
    moved = drafted.client.post(
        f"{PLAN_V1}/moves",
        headers=drafted.login("planner"),
        json={"revision": 1, "moves": [{"unit_id": unit["id"], "microgrid_code": target}]},
    )
    assert moved.status_code == 200, moved.text
    tilejson = _get(drafted, f"{V1}.json").json()
    assert tilejson["tiles"][0].endswith("?rev=2")
    after = _features(_get(drafted, path, params={"rev": 2}).content, "buildings")[row_id]
    assert after["properties"]["grid_code"] == target[:15]
    assert after["properties"]["microgrid_code"] == target
    assert after["geometry"] == before["geometry"]
    cache = drafted.client.app.state.tiles.tile_cache.stats  # type: ignore[attr-defined]
    assert cache.tiles == 1  # revision 1's tile was dropped when revision 2's source was built


def test_a_named_revision_is_served_without_the_database_once_its_source_is_built(drafted: Env) -> None:
    _, _, geom = _building(drafted)
    first, second = (_tile_of(geom, z) for z in (16, 15))
    paths = [f"{V1}/{t.z}/{t.x}/{t.y}.mvt" for t in (first, second)]
    cache = drafted.client.app.state.tiles.tile_cache  # type: ignore[attr-defined]
    counted = cache.stats.hits + cache.stats.misses
    assert _get(drafted, paths[0], params={"rev": 1}).status_code == 200  # builds revision 1's source
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(drafted.db.engine, "before_cursor_execute", count)
    try:
        made = _get(drafted, paths[1], params={"rev": 1})  # made from the source
        cached = _get(drafted, paths[0], params={"rev": 1})  # from the cache
        unnamed = _get(drafted, paths[0])  # no revision named: the current one is looked up
    finally:
        event.remove(drafted.db.engine, "before_cursor_execute", count)
    assert [r.status_code for r in (made, cached, unnamed)] == [200, 200, 200]
    assert (
        made.headers["cache-control"]
        == cached.headers["cache-control"]
        == "private, max-age=31536000, immutable"
    )
    assert unnamed.headers["cache-control"] == "private, no-cache" and unnamed.content == cached.content
    assert len([s for s in statements if s.startswith("SELECT")]) == 1  # the unnamed request's look-up
    # each request is one hit or one miss, though a miss is looked up on the event loop and again in a thread
    assert cache.stats.hits + cache.stats.misses - counted == 4
    assert cache.stats.hits >= 2  # the cached tile and the unnamed request's
    outsider = create_token(
        Principal("outsider", "planner", "110101"), secret=drafted.settings.secret(), minutes=5
    )
    refused = drafted.client.get(paths[0], params={"rev": 1}, headers={"Authorization": f"Bearer {outsider}"})
    assert refused.status_code == 403 and "territory" in refused.json()["detail"]


def test_lock_shows_in_the_grids_layer(drafted: Env) -> None:
    _, _, geom = _building(drafted)
    tile = _tile_of(geom, 14)
    path = f"{V1}/{tile.z}/{tile.x}/{tile.y}.mvt"
    code = _decode(_get(drafted, path).content)["grids"]["features"][0]["properties"]["grid_code"]
    locked = drafted.client.post(
        f"{PLAN_V1}/grids/{code}/lock", headers=drafted.login("planner"), json={"revision": 1, "locked": True}
    )
    assert locked.status_code == 200, locked.text
    grids = {
        f["properties"]["grid_code"]: f["properties"]
        for f in _decode(_get(drafted, path).content)["grids"]["features"]
    }
    assert grids[code]["locked"] is True


def test_http_caching(drafted: Env) -> None:
    _, _, geom = _building(drafted)
    tile = _tile_of(geom, 15)
    path = f"{V1}/{tile.z}/{tile.x}/{tile.y}.mvt"
    current = _get(drafted, path, params={"rev": 1})
    assert current.headers["cache-control"] == "private, max-age=31536000, immutable"
    etag = current.headers["etag"]
    stale = _get(drafted, path, params={"rev": 7})
    assert stale.headers["cache-control"] == "private, no-cache"
    assert stale.content == current.content
    again = _get(drafted, path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content


def test_empty_tile_is_204(drafted: Env) -> None:
    response = _get(drafted, f"{V1}/14/0/0.mvt")
    assert response.status_code == 204 and not response.content


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        (f"{V1}/30/0/0.mvt", 422, "deeper than"),  # beyond the served zooms
        (f"{V1}/14/16384/0.mvt", 422, "does not exist"),  # x past the pyramid's edge
        (f"{V1}/14/-1/0.mvt", 422, ""),  # negative index (validated by the path type)
        (f"{V1}/14/a/0.mvt", 422, ""),  # not a number
        ("/api/v1/tiles/plans/99/versions/1/14/0/0.mvt", 404, "plan 99"),
        ("/api/v1/tiles/plans/1/versions/9/14/0/0.mvt", 404, "no version 9"),
        ("/api/v1/tiles/plans/99/versions/1.json", 404, "plan 99"),
        ("/api/v1/tiles/districts/99/14/0/0.mvt", 404, "district 99"),
        ("/api/v1/tiles/flags/14/0/0.mvt", 422, ""),  # district_id missing
    ],
)
def test_bad_tile_requests(drafted: Env, path: str, status: int, detail: str) -> None:
    response = _get(drafted, path)
    assert response.status_code == status, response.text
    assert detail in str(response.json()["detail"])


def test_tiles_need_a_token_and_the_territory(drafted: Env) -> None:
    for path in (f"{V1}.json", f"{V1}/14/0/0.mvt", "/api/v1/tiles/districts/1/14/0/0.mvt"):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = drafted.client.get(path, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    outsider = create_token(
        Principal("outsider", "planner", "110101"), secret=drafted.settings.secret(), minutes=5
    )
    headers = {"Authorization": f"Bearer {outsider}"}
    for path in (
        f"{V1}.json",
        f"{V1}/14/0/0.mvt",
        "/api/v1/tiles/districts/1.json",
        "/api/v1/tiles/districts/1/14/0/0.mvt",
        "/api/v1/tiles/flags/14/0/0.mvt?district_id=1",
    ):
        response = drafted.client.get(path, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert "territory" in response.json()["detail"]
    assert _get(drafted, f"{V1}.json", user="planner_a").status_code == 200  # a community inside the district


def test_district_tiles(drafted: Env) -> None:
    tilejson = _get(drafted, "/api/v1/tiles/districts/1.json").json()
    assert tilejson["tiles"][0].endswith("/api/v1/tiles/districts/1/{z}/{x}/{y}.mvt")
    assert {layer["id"] for layer in tilejson["vector_layers"]} >= {
        "communities",
        "roads",
        "parking",
        "no_fly",
    }
    _, _, geom = _building(drafted)
    tile = _tile_of(geom, 14)
    response = _get(drafted, f"/api/v1/tiles/districts/1/{tile.z}/{tile.x}/{tile.y}.mvt")
    assert response.status_code == 200 and response.headers["cache-control"] == "private, max-age=3600"
    layers = _decode(response.content)
    assert {"communities", "roads"} <= set(layers)
    assert {"parking", "green"} & set(layers)
    community_codes = {f["properties"]["community_code"] for f in layers["communities"]["features"]}
    assert COMMUNITY_A in community_codes


def _add_flag(env: Env, lon: float, lat: float, category: str) -> int:
    with transaction(env.db.write) as session:
        flag = Flag(
            category=category, score=0.8, lon=lon, lat=lat, grid_code=COMMUNITY_A + "001",
            territory=COMMUNITY_A, status="new", **spatial(shapely.Point(lon, lat)),
        )  # fmt: skip
        session.add(flag)
        session.flush()
        return flag.id


def test_flag_tiles_are_live(drafted: Env) -> None:
    _, _, geom = _building(drafted)
    point = shapely.point_on_surface(geom)
    first = _add_flag(drafted, point.x, point.y, "0505")
    tile = mercantile.tile(point.x, point.y, 16)
    path = f"/api/v1/tiles/flags/{tile.z}/{tile.x}/{tile.y}.mvt"
    response = _get(drafted, path, params={"district_id": 1})
    assert response.status_code == 200 and response.headers["cache-control"] == "private, no-cache"
    flags = _features(response.content, "flags")
    assert flags[first]["properties"] == {
        "flag_id": first, "category": "0505", "status": "new", "score": pytest.approx(0.8),
        "grid_code": COMMUNITY_A + "001",
    }  # fmt: skip
    second = _add_flag(drafted, point.x, point.y, "0102")
    assert set(_features(_get(drafted, path, params={"district_id": 1}).content, "flags")) == {first, second}
    other_community = _get(drafted, path, user="inspector_b", params={"district_id": 1})
    assert other_community.status_code == 204  # community B's inspector does not see community A's flags
    empty = _get(drafted, "/api/v1/tiles/flags/16/0/0.mvt", params={"district_id": 1})
    assert empty.status_code == 204


def test_gcj02_tiles_shift_geometries_for_display(drafted: Env) -> None:
    row_id, _, geom = _building(drafted)
    point = shapely.point_on_surface(geom)
    shifted = wgs84_to_gcj02(point.x, point.y)
    tile = mercantile.tile(*shifted, 17)
    path = f"{V1}/{tile.z}/{tile.x}/{tile.y}.mvt"
    gcj = _features(_get(drafted, path, params={"crs": "gcj02"}).content, "buildings")
    assert row_id in gcj
    assert row_id not in _features(_get(drafted, path).content, "buildings")  # ~500 m away in WGS-84
    ring = np.array(gcj[row_id]["geometry"]["coordinates"][0], dtype=float)
    bounds = mercantile.bounds(tile)
    lon = bounds.west + ring[:, 0] / 4096 * (bounds.east - bounds.west)
    expected = shapely.get_coordinates(shapely.boundary(geom))
    expected_gcj = np.column_stack(wgs84_to_gcj02(expected[:, 0], expected[:, 1]))
    assert abs(lon.min() - expected_gcj[:, 0].min()) < 2e-5  # a few metres: one tile unit at z17 is ~0.1 m
    tilejson = _get(drafted, f"{V1}.json", params={"crs": "gcj02"}).json()
    assert tilejson["tiles"][0].endswith("?rev=1&crs=gcj02")


def test_gcj02_to_wgs84_endpoint_is_the_exact_inverse(drafted: Env) -> None:
    lon, lat = wgs84_to_gcj02(120.62, 31.31)
    body = drafted.client.get("/api/v1/web/gcj02-to-wgs84", params={"lon": lon, "lat": lat}).json()
    assert body["lon"] == pytest.approx(120.62, abs=1e-9) and body["lat"] == pytest.approx(31.31, abs=1e-9)
    assert (body["lon"], body["lat"]) == pytest.approx(gcj02_to_wgs84(lon, lat))
    bad = drafted.client.get("/api/v1/web/gcj02-to-wgs84", params={"lon": 500, "lat": 31})
    assert bad.status_code == 422


def test_web_config_lists_basemaps(drafted: Env) -> None:
    body = drafted.client.get("/api/v1/web/config").json()  # public: no token
    ids = [option["id"] for option in body["basemaps"]]
    assert body["default_basemap"] == "offline" and ids == ["offline", "gaode"]
    assert next(o for o in body["basemaps"] if o["id"] == "gaode")["crs"] == "gcj02"
    keyed = drafted.settings.model_copy(update={"tianditu_key": SecretStr("abc123")})
    with TestClient(create_app(keyed, drafted.db)) as client:
        options = {o["id"]: o for o in client.get("/api/v1/web/config").json()["basemaps"]}
    assert set(options) == {"offline", "tianditu", "gaode"}
    vec, cva = options["tianditu"]["layers"]
    assert "vec_w" in vec[0] and "cva_w" in cva[0] and vec[0].endswith("tk=abc123")


def test_basemap_package_with_range_requests(drafted: Env) -> None:
    path = "/api/v1/districts/1/basemap.pmtiles"
    whole = _get(drafted, path)
    assert whole.status_code == 200, whole.text
    assert whole.headers["accept-ranges"] == "bytes" and whole.content[:7] == b"PMTiles"
    size = len(whole.content)
    head = _get(drafted, path, headers={"Range": "bytes=0-126"})
    assert head.status_code == 206 and head.content == whole.content[:127]
    assert head.headers["content-range"] == f"bytes 0-126/{size}"
    middle = _get(drafted, path, headers={"Range": "bytes=200-299"})
    assert middle.content == whole.content[200:300]
    tail = _get(drafted, path, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    past = _get(drafted, path, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert (drafted.settings.data_dir / "basemaps" / "district-1.pmtiles").is_file()


def _add_flight(env: Env, lon: float, lat: float) -> int:
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    image[:, :] = (40, 160, 90)
    folder = env.settings.data_dir / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / "f1.jpg"), image)
    with transaction(env.db.write) as session:
        flight = Flight(source_kind="framedir", source_uri="frames", created_by="operator")
        session.add(flight)
        session.flush()
        session.add(
            Frame(
                flight_id=flight.id,
                path="frames/f1.jpg",
                taken_at=datetime.now(UTC),
                lon=lon,
                lat=lat,
                altitude_m=80.0,
            )
        )
        session.add(Frame(flight_id=flight.id, path="../outside.jpg", lon=lon, lat=lat, altitude_m=80.0))
        return flight.id


def test_ortho_tiles(drafted: Env) -> None:
    lon, lat = 120.62, 31.31
    flight = _add_flight(drafted, lon, lat)
    tile = mercantile.tile(lon, lat, 19)
    response = _get(
        drafted, f"/api/v1/flights/{flight}/ortho/{tile.z}/{tile.x}/{tile.y}.png", user="operator"
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None
    assert pixels.shape == (256, 256, 4) and pixels[128, 128, 3] == 255
    assert abs(int(pixels[128, 128, 1]) - 160) < 10
    far = _get(drafted, f"/api/v1/flights/{flight}/ortho/19/0/0.png", user="operator")
    assert far.status_code == 204
    assert _get(drafted, "/api/v1/flights/99/ortho/19/0/0.png", user="operator").status_code == 404
