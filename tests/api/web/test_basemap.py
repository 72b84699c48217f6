"""basemap.js in the browser: the offline PMTiles basemap drawn from the server with range requests and the
bearer token, beneath the data layers, and the GCJ-02 conversion agreeing with tiles/gcj02.py."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.api.web.conftest import LiveServer, screenshot
from tiles.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02

_SETUP = """async ({districtId, bounds}) => {
  const common = await import('/static/app/common.js');
  const basemap = await import('/static/app/basemap.js');
  document.body.innerHTML = '<div id="m" style="width:800px;height:600px"></div>';
  const map = common.createMap('m', {});
  window.testMap = map;
  await new Promise((resolve) => map.once('load', resolve));
  map.addSource('dots', {type: 'geojson', data: {type: 'FeatureCollection', features: []}});
  map.addLayer({id: 'data-dots', type: 'circle', source: 'dots'});
  common.fitBounds(map, bounds);
  const control = await basemap.addBasemap(map, {districtId});
  return {current: control.current(), crs: control.crs(), options: control.options.map((o) => o.id)};
}"""
_DRAWN = """() => {
  const map = window.testMap;
  const count = (layer) => map.queryRenderedFeatures({layers: [layer]}).length;
  if (!(map.loaded() && map.areTilesLoaded() && count('bm-buildings') > 0)) return null;
  return {ids: map.getStyle().layers.map((l) => l.id), buildings: count('bm-buildings'), roads: count('bm-road') + count('bm-road-area')};
}"""


def _load_scripts(page: Page) -> None:
    page.add_style_tag(url="/static/vendor/maplibre-gl/maplibre-gl.css")
    page.add_script_tag(url="/static/vendor/maplibre-gl/maplibre-gl.js")
    page.add_script_tag(url="/static/vendor/pmtiles/pmtiles.js")


def test_offline_basemap_draws_beneath_the_data(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/")
    page.fill("#username", "planner")
    page.fill("#password", live_server.demo.password)
    page.click("#login-submit")
    page.wait_for_function("() => localStorage.getItem('skygrid.token') !== null")
    _load_scripts(page)
    district = live_server.demo.district_id
    bounds = page.evaluate(
        "async (id) => (await (await import('/static/app/common.js')).api(`/api/v1/tiles/districts/${id}.json`)).bounds",
        district,
    )
    result: dict[str, Any] = page.evaluate(_SETUP, {"districtId": district, "bounds": bounds})
    assert result["current"] == "offline" and result["crs"] == "wgs84"
    assert result["options"][0] == "offline"
    drawn: dict[str, Any] = page.wait_for_function(_DRAWN, timeout=30_000).json_value()
    ids = drawn["ids"]
    assert ids.index("bm-buildings") < ids.index("data-dots")  # the basemap lies beneath the data
    assert ids.index("background") < ids.index("bm-green")
    assert drawn["buildings"] > 0 and drawn["roads"] > 0
    screenshot(page, "basemap-offline")


@pytest.mark.parametrize("point", [(120.62, 31.31), (116.391349, 39.907375), (2.35, 48.85)])
def test_gcj02_in_javascript_matches_python(
    page: Page, live_server: LiveServer, point: tuple[float, float]
) -> None:
    page.goto(f"{live_server.url}/")
    gcj = wgs84_to_gcj02(*point)
    out = page.evaluate(
        """async ([lon, lat, glon, glat]) => {
          const b = await import('/static/app/basemap.js');
          return {forward: b.wgs84ToGcj02(lon, lat), back: b.gcj02ToWgs84(glon, glat),
                  plain: b.toWgs84({lng: glon, lat: glat}, null)};
        }""",
        [*point, *gcj],
    )
    assert out["forward"] == pytest.approx(list(gcj), abs=1e-12)
    assert out["back"] == pytest.approx(list(gcj02_to_wgs84(*gcj)), abs=1e-10)
    assert out["back"] == pytest.approx(list(point), abs=1e-9)
    assert out["plain"] == pytest.approx(list(gcj), abs=1e-12)  # a map on a WGS-84 basemap: unchanged
