"""The operator page: pick a grid on the map, plan a patrol, read its summary, download the ``.plan``, and
fly it on the simulator while the drone, its frames and the flags found appear live."""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from playwright.sync_api import Page, Route, expect

from drone.formats.qgc_plan import read_plan
from tests.api.test_flight_streams import FPS, paced_stream, vehicle, write_ts
from tests.api.web.conftest import LiveServer, copy_artifact, log_in, screenshot
from tests.drone.test_sources import free_udp_port

CATEGORY_NAMES = {"私搭乱建", "暴露垃圾", "机动车乱停放", "非机动车乱停放", "乱堆物堆料"}


def _token(live_server: LiveServer, username: str) -> str:
    response = httpx.post(
        f"{live_server.url}/api/v1/auth/token",
        data={"username": username, "password": live_server.demo.password},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _smallest_grid(live_server: LiveServer) -> tuple[str, int, shapely.Point]:
    """The published plan's smallest grid (by area, for a short flight): code, households, an inner point."""
    demo = live_server.demo
    response = httpx.get(
        f"{live_server.url}/api/v1/plans/{demo.plan_id}/versions/{demo.version}/grids",
        params={"geometry": "true", "limit": 1000},
        headers={"Authorization": f"Bearer {_token(live_server, 'operator')}"},
    )
    response.raise_for_status()
    grid = min(response.json(), key=lambda g: (shapely.geometry.shape(g["geometry"]).area, g["grid_code"]))
    inner = shapely.geometry.shape(grid["geometry"]).point_on_surface()
    return grid["grid_code"], grid["households"], inner


def _plan_files(saved: Path, folder: Path) -> list[Path]:
    """The ``.plan`` files of a download: the file itself, or every member of the zip of a multi-sortie plan."""
    if not zipfile.is_zipfile(saved):
        return [saved]
    with zipfile.ZipFile(saved) as archive:
        archive.extractall(folder)
    return sorted(folder.rglob("*.plan"))


def _open_operator(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server, "operator", "/operator")
    page.wait_for_selector("#map[data-ready='grids']")


def _click_map_at(page: Page, lon: float, lat: float, *, zoom: float | None = None) -> None:
    """Click the map where (lon, lat) is drawn, centring it there first (at ``zoom`` when given)."""
    page.evaluate(
        "([lon, lat, zoom]) => window.skygrid.map.jumpTo({center: [lon, lat], zoom: zoom ?? undefined})",
        [lon, lat, zoom],
    )
    page.wait_for_function("() => window.skygrid.map.loaded() && window.skygrid.map.areTilesLoaded()")
    xy = page.evaluate(
        "([lon, lat]) => { const p = window.skygrid.map.project([lon, lat]); return [p.x, p.y]; }", [lon, lat]
    )
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])


def _rendered(page: Page, layer: str) -> int:
    count: int = page.evaluate(
        "(layer) => window.skygrid.map.queryRenderedFeatures({layers: [layer]}).length", layer
    )
    return count


MISSION_START = "async () => (await window.skygrid.map.getSource('mission').getData()).features[0].geometry.coordinates[0]"
PLAN_TILES = "() => window.skygrid.map.getStyle().sources.plan.tiles[0]"


def _eventually(page: Page, script: str, until: Callable[[Any], bool], timeout_s: float = 20) -> Any:
    """The value of ``script`` in the page once ``until`` holds for it (awaiting promises, unlike
    ``wait_for_function``); fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(script)
        if until(value):
            return value
        assert time.monotonic() < deadline, f"{script} is still {value!r} after {timeout_s} s"
        page.wait_for_timeout(100)


def _plan_over(page: Page, code: str) -> int:
    """Add grid ``code`` by its code, plan at the defaults and wait for the summary; the number of sorties."""
    page.fill("#grid-code-input", code)
    page.click("#grid-add")
    page.locator(f"#picked-grids tbody tr[data-grid='{code}']").wait_for()
    page.click("#plan-mission")
    page.locator("#summary-section").wait_for(state="visible", timeout=60_000)
    return int(page.locator("#sum-sorties").inner_text())


def test_operator_picks_a_grid_plans_a_mission_and_downloads_a_plan_that_parses(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    code, households, inner = _smallest_grid(live_server)
    _open_operator(page, live_server)
    assert page.locator("#grids-section h2").inner_text() == "巡查网格"

    _click_map_at(page, inner.x, inner.y, zoom=16)
    page.locator(f"#picked-grids tbody tr[data-grid='{code}']").wait_for()
    assert page.locator("#picked-total").inner_text() == str(households)

    page.fill("#altitude", "60")
    page.click("#plan-mission")
    page.locator("#summary-section").wait_for(state="visible", timeout=60_000)
    sorties = int(page.locator("#sum-sorties").inner_text())
    assert sorties >= 1
    assert int(page.locator("#sum-photos").inner_text()) > 0
    assert float(page.locator("#sum-distance").inner_text()) > 0
    assert float(page.locator("#sum-time").inner_text()) > 0
    assert page.locator("#sum-altitude").inner_text() == "60"
    assert page.locator("#sortie-legend li").count() == sorties
    page.wait_for_function("() => window.skygrid.map.loaded()")
    assert _rendered(page, "mission-path") > 0, "the planned path is not drawn"
    assert _rendered(page, "mission-photos") > 0, "the photo points are not drawn"

    with page.expect_download() as info:
        page.click("#download-plan")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    plans = _plan_files(saved, tmp_path / "unzipped")
    assert len(plans) == sorties
    for path in plans:
        assert json.loads(path.read_text(encoding="utf-8"))["fileType"] == "Plan"
        assert len(read_plan(path).mission) > 2
    copy_artifact(plans[0], "operator-mission.plan")
    screenshot(page, "operator")

    page.click("#lang-toggle")
    assert page.locator("#grids-section h2").inner_text() == "Grids to patrol"
    assert page.locator("#sortie-legend li").first.inner_text().startswith("Sortie 1:")


def test_the_form_refuses_an_altitude_above_the_ceiling_or_a_flight_without_a_mission(
    page: Page, live_server: LiveServer
) -> None:
    code, _, _ = _smallest_grid(live_server)
    _open_operator(page, live_server)
    page.fill("#grid-code-input", code)
    page.click("#grid-add")
    page.locator(f"#picked-grids tbody tr[data-grid='{code}']").wait_for()
    page.fill("#altitude", "150")
    page.click("#plan-mission")
    error = page.locator("#mission-error")
    error.wait_for()
    assert "120" in error.inner_text() and "150" in error.inner_text()
    assert page.locator("#summary-section").is_hidden()
    page.click("#start-flight")
    page.locator(".toast-error", has_text="请先规划航线").wait_for()
    page.click("#lang-toggle")
    assert page.locator("#plan-mission").inner_text() == "Plan mission"


def test_a_bad_vehicle_connection_is_refused_and_a_failed_upload_says_why(
    page: Page, live_server: LiveServer
) -> None:
    code, _, _ = _smallest_grid(live_server)
    _open_operator(page, live_server)
    _plan_over(page, code)
    page.fill("#connection", "com3")
    page.click("#upload")
    status = page.locator("#upload-status")
    assert "com3" in status.inner_text() and "udp:" in status.inner_text()
    assert status.get_attribute("class") == "error"

    page.fill("#connection", "tcp:127.0.0.1:9")  # nothing listens there: the server's upload job fails
    page.click("#upload")
    page.wait_for_selector("#upload-status.error >> text=127.0.0.1:9", timeout=30_000)
    assert "上传失败" in status.inner_text()


def test_a_simulated_flight_streams_drone_frames_and_flags_through_a_dropped_stream_then_an_ortho(
    page: Page, live_server: LiveServer
) -> None:
    code, _, _ = _smallest_grid(live_server)
    refused: list[str] = []

    def drop_first(route: Route) -> None:
        if not refused:
            refused.append(route.request.url)
            route.fulfill(status=503, body="down for a moment")
        else:
            route.fallback()

    page.route("**/api/v1/flights/*/events*", drop_first)
    _open_operator(page, live_server)
    _plan_over(page, code)
    page.click("#upload")
    page.wait_for_selector("#upload-status.ok", timeout=30_000)

    page.click("#start-flight")
    page.wait_for_function(
        "() => Number(document.getElementById('count-flags').textContent) > 0", timeout=60_000
    )
    assert refused, "the first event stream was not refused"
    assert page.locator("#stream-state").get_attribute("data-state") in ("live", "closed")
    assert int(page.locator("#count-frames").inner_text()) > 0
    assert page.locator("#live-position").inner_text() != "—"
    page.wait_for_function("() => document.getElementById('latest-frame').naturalWidth > 0")
    assert page.locator("[data-testid='drone-marker']").is_visible()

    flag: list[float] = page.evaluate(
        "async () => (await window.skygrid.map.getSource('flags').getData()).features[0].geometry.coordinates"
    )
    _click_map_at(page, flag[0], flag[1])
    popup = page.locator("[data-testid='flag-popup']")
    popup.wait_for()
    assert any(name in popup.inner_text() for name in CATEGORY_NAMES)
    assert page.locator("#picked-grids tbody tr").count() == 1, "clicking a flag also toggled a grid"

    page.wait_for_selector("#stream-state[data-state='closed']", timeout=60_000)
    assert page.locator("#flight-status").inner_text() == "已完成"
    flight_id = refused[0].split("/flights/")[1].split("/")[0]
    flight = httpx.get(
        f"{live_server.url}/api/v1/flights/{flight_id}",
        headers={"Authorization": f"Bearer {_token(live_server, 'operator')}"},
    ).json()
    assert page.locator("#count-frames").inner_text() == str(flight["frames"])
    assert page.locator("#count-flags").inner_text() == str(flight["flags"])
    with page.expect_request(lambda request: "/ortho/" in request.url) as ortho:
        page.check("#show-ortho")
    assert f"/api/v1/flights/{flight_id}/ortho/" in ortho.value.url
    assert ortho.value.headers["authorization"].startswith("Bearer ")
    page.locator("#live").scroll_into_view_if_needed()
    screenshot(page, "operator-flight")


def _fly_on_the_server(live_server: LiveServer, code: str) -> dict[str, Any]:
    """A simulated flight over the grid, flown to the end through the API alone (no page open)."""
    headers = {"Authorization": f"Bearer {_token(live_server, 'operator')}"}
    demo = live_server.demo
    body = {"plan_id": demo.plan_id, "version": demo.version, "grid_codes": [code], "altitude_m": 120}
    mission = httpx.post(f"{live_server.url}/api/v1/missions", headers=headers, json=body, timeout=60)
    mission.raise_for_status()
    source = {"mission_id": mission.json()["id"], "source": {"kind": "simulator"}}
    flight = httpx.post(f"{live_server.url}/api/v1/flights", headers=headers, json=source).json()
    httpx.post(f"{live_server.url}/api/v1/flights/{flight['id']}/run", headers=headers).raise_for_status()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        detail: dict[str, Any] = httpx.get(
            f"{live_server.url}/api/v1/flights/{flight['id']}", headers=headers
        ).json()
        if detail["status"] in ("done", "failed"):
            return detail
        time.sleep(0.5)
    raise AssertionError(f"flight {flight['id']} did not end in 180 s")


def test_after_a_reload_the_operator_reopens_a_flight_from_the_list(
    page: Page, live_server: LiveServer
) -> None:
    code, _, _ = _smallest_grid(live_server)
    flight = _fly_on_the_server(live_server, code)
    assert flight["status"] == "done" and flight["flags"] > 0, flight
    _open_operator(page, live_server)
    item = page.locator(f'#flight-list li[data-flight-id="{flight["id"]}"]')
    expect(item).to_contain_text("已完成")
    expect(item).to_contain_text("模拟飞行")
    assert page.locator("#live").is_hidden()
    item.locator("[data-testid='open-flight']").click()
    expect(page.locator("#flight-status")).to_have_text("已完成")
    expect(page.locator("#count-flags")).to_have_text(str(flight["flags"]))
    expect(page.locator("#count-frames")).to_have_text(str(flight["frames"]))
    expect(item).to_have_class("current")
    track = _eventually(
        page,
        "async () => (await window.skygrid.map.getSource('track').getData()).features",
        lambda features: len(features) > 0,
    )
    assert track[0]["geometry"]["type"] == "LineString"
    assert len(track[0]["geometry"]["coordinates"]) >= flight["frames"]
    flags = page.evaluate("async () => (await window.skygrid.map.getSource('flags').getData()).features")
    assert len(flags) == flight["flags"]
    toasts = page.locator(".toast").all_inner_texts()
    assert not [text for text in toasts if "飞行" in text], (
        f"a flight that ended before was announced: {toasts}"
    )
    page.click("#lang-toggle")
    expect(item).to_contain_text("done")
    expect(item).to_contain_text("Simulated flight")


def test_an_operator_flies_a_live_stream_with_its_mavlink_link_and_stops_it(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    _, _, inner = _smallest_grid(live_server)
    port = free_udp_port()
    video = write_ts(tmp_path / "live.ts", frames=120 * FPS)
    _open_operator(page, live_server)
    page.select_option("#source-kind", "stream")
    assert page.locator("#source-srt-field").is_hidden()
    with paced_stream(video, duration_s=120.0) as url, vehicle(port, inner.x, inner.y):
        page.fill("#source-uri", url)
        page.click("#start-flight")
        page.wait_for_selector(".toast >> text=MAVLink")  # the link is asked for before anything is sent
        assert page.locator("#live").is_hidden()
        page.fill("#source-telemetry", f"udpin:127.0.0.1:{port}")
        page.click("#start-flight")
        page.wait_for_function(
            "() => Number(document.getElementById('count-frames').textContent) > 0", timeout=60_000
        )
        assert page.locator("#flight-status").inner_text() == "飞行中"
        page.click("#stop-flight")
        page.wait_for_selector("#stream-state[data-state='closed']", timeout=60_000)
    assert page.locator("#flight-status").inner_text() == "已完成"
    assert page.locator("#stop-flight").is_hidden()
    position = page.locator("#live-position").inner_text()  # where the link said the vehicle was
    lon, lat = round(inner.x * 1e7) / 1e7, round(inner.y * 1e7) / 1e7
    assert f"{lon:.5f}" in position and f"{lat:.5f}" in position, position


def test_on_a_gaode_basemap_the_layers_are_drawn_in_gcj02_and_back_in_wgs84_after(
    page: Page, live_server: LiveServer
) -> None:
    """Gaode's tiles are GCJ-02: grids come as ``crs=gcj02`` tiles and the mission is shifted, for display only.
    Gaode is online: here, as on an offline network, its tiles fail, and the page carries on regardless."""
    page.route(lambda url: "autonavi.com" in url, lambda route: route.abort("internetdisconnected"))
    code, _, _ = _smallest_grid(live_server)
    _open_operator(page, live_server)
    _plan_over(page, code)
    mission_id = page.locator("#mission-id").inner_text().lstrip("#")
    preview = httpx.get(
        f"{live_server.url}/api/v1/missions/{mission_id}/preview",
        headers={"Authorization": f"Bearer {_token(live_server, 'operator')}"},
    ).json()
    wgs84 = preview["features"][0]["geometry"]["coordinates"][0]
    _eventually(page, MISSION_START, lambda point: point == pytest.approx(wgs84, abs=1e-9))

    page.select_option(".basemap-select", "gaode")
    gcj02 = _eventually(page, MISSION_START, lambda point: point != wgs84)
    shift_deg = ((gcj02[0] - wgs84[0]) ** 2 + (gcj02[1] - wgs84[1]) ** 2) ** 0.5
    assert 0.002 < shift_deg < 0.01, f"the GCJ-02 shift is {shift_deg}° (about 500 m expected)"
    _eventually(page, PLAN_TILES, lambda url: "crs=gcj02" in url)

    page.select_option(".basemap-select", "offline")
    _eventually(page, MISSION_START, lambda point: point == pytest.approx(wgs84, abs=1e-9))
    _eventually(page, PLAN_TILES, lambda url: "crs=gcj02" not in url)
