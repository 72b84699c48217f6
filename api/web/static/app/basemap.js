// Basemaps under the data layers: the district's offline PMTiles package (default), or a configured external
// raster basemap (Tianditu with a key; Gaode in GCJ-02). SkyGrid stores WGS-84: on a GCJ-02 basemap the
// pages request their vector tiles with ``crs=gcj02`` (see ``withCrs``) and turn clicked points back with
// ``toWgs84`` (the exact iterative inverse, the same as tiles/gcj02.py).
//
//   const basemap = await addBasemap(map, { districtId, onChange: (crs) => reloadDataLayers(crs) });
//   map.on("click", (e) => { const [lon, lat] = toWgs84(e.lngLat, map); ... });

import { addMessages, authHeaders, lang, t } from "./common.js";

addMessages({
  zh: { "basemap.title": "底图", "basemap.online": "（需联网）" },
  en: { "basemap.title": "Basemap", "basemap.online": " (online)" },
});

const PREFIX = "bm-";
const STATE = new WeakMap(); // map → { crs, id } of its current basemap

// ---- WGS-84 ↔ GCJ-02 (display only) ----

const A_M = 6378245.0;
const EE = 0.00669342162296594323;
const TOLERANCE_DEG = 1e-12;
const STEP_DEG = 1e-6;

function inChina(lon, lat) {
  return lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271;
}

function transformLat(x, y) {
  let ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
  ret += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  ret += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
  ret += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320.0 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
  return ret;
}

function transformLon(x, y) {
  let ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
  ret += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  ret += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
  ret += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
  return ret;
}

function offsetDeg(lon, lat) {
  if (!inChina(lon, lat)) return [0, 0];
  const radLat = (lat * Math.PI) / 180.0;
  const magic = 1.0 - EE * Math.sin(radLat) ** 2;
  const sqrtMagic = Math.sqrt(magic);
  const dLat = (transformLat(lon - 105.0, lat - 35.0) * 180.0) / (((A_M * (1.0 - EE)) / (magic * sqrtMagic)) * Math.PI);
  const dLon = (transformLon(lon - 105.0, lat - 35.0) * 180.0) / ((A_M / sqrtMagic) * Math.cos(radLat) * Math.PI);
  return [dLon, dLat];
}

/** WGS-84 → GCJ-02 ``[lon, lat]`` (degrees); unchanged outside China. */
export function wgs84ToGcj02(lon, lat) {
  const [dLon, dLat] = offsetDeg(lon, lat);
  return [lon + dLon, lat + dLat];
}

/** GCJ-02 → WGS-84 ``[lon, lat]``, exactly: Newton's method on the forward formula (below 1e-9°). */
export function gcj02ToWgs84(lon, lat) {
  const [d0, d1] = offsetDeg(lon, lat);
  let x = lon - d0;
  let y = lat - d1;
  for (let step = 0; step < 12; step += 1) {
    const [fx, fy] = wgs84ToGcj02(x, y);
    const rx = fx - lon;
    const ry = fy - lat;
    if (Math.max(Math.abs(rx), Math.abs(ry)) < TOLERANCE_DEG) break;
    const h = STEP_DEG;
    const [ex, ey] = offsetDeg(x + h, y);
    const [wx, wy] = offsetDeg(x - h, y);
    const [nx, ny] = offsetDeg(x, y + h);
    const [sx, sy] = offsetDeg(x, y - h);
    const j00 = 1 + (ex - wx) / (2 * h);
    const j01 = (nx - sx) / (2 * h);
    const j10 = (ey - wy) / (2 * h);
    const j11 = 1 + (ny - sy) / (2 * h);
    const det = j00 * j11 - j01 * j10;
    x -= (j11 * rx - j01 * ry) / det;
    y -= (j00 * ry - j10 * rx) / det;
  }
  return [x, y];
}

/** The CRS the data layers of ``map`` must be drawn in: ``"gcj02"`` on a Gaode basemap, else ``"wgs84"``. */
export function displayCrs(map) {
  return STATE.get(map)?.crs ?? "wgs84";
}

/** A clicked ``lngLat`` (``{lng, lat}`` or ``[lon, lat]``) of ``map`` as WGS-84 ``[lon, lat]`` for the API. */
export function toWgs84(lngLat, map) {
  const [lon, lat] = Array.isArray(lngLat) ? lngLat : [lngLat.lng, lngLat.lat];
  return displayCrs(map) === "gcj02" ? gcj02ToWgs84(lon, lat) : [lon, lat];
}

/** ``url`` of a SkyGrid tile or TileJSON endpoint with ``crs=gcj02`` added when ``map`` shows GCJ-02. */
export function withCrs(url, map) {
  if (displayCrs(map) !== "gcj02") return url;
  return `${url}${url.includes("?") ? "&" : "?"}crs=gcj02`;
}

// ---- the basemap ----

/** The style layers of the offline package: a quiet grey map (water blue, green, roads white, buildings light). */
function offlineLayers(source) {
  const polygons = ["==", ["geometry-type"], "Polygon"];
  const lines = ["==", ["geometry-type"], "LineString"];
  const width = (base) => ["interpolate", ["exponential", 1.6], ["zoom"], 12, base * 0.5, 18, base * 8];
  return [
    { id: `${PREFIX}green`, type: "fill", source, "source-layer": "green", paint: { "fill-color": "#d9ead3" } },
    { id: `${PREFIX}water`, type: "fill", source, "source-layer": "water", filter: polygons, paint: { "fill-color": "#b7d3ea" } },
    { id: `${PREFIX}water-line`, type: "line", source, "source-layer": "water", filter: lines, paint: { "line-color": "#b7d3ea", "line-width": width(2) } },
    { id: `${PREFIX}road-casing`, type: "line", source, "source-layer": "roads", filter: lines, paint: { "line-color": "#d3d6da", "line-width": width(1.4) } },
    { id: `${PREFIX}road`, type: "line", source, "source-layer": "roads", filter: lines, paint: { "line-color": "#ffffff", "line-width": width(1) } },
    { id: `${PREFIX}road-area`, type: "fill", source, "source-layer": "roads", filter: polygons, paint: { "fill-color": "#ffffff" } },
    { id: `${PREFIX}buildings`, type: "fill", source, "source-layer": "buildings", minzoom: 13, paint: { "fill-color": "#e2e0dc", "fill-outline-color": "#cfcbc4" } },
  ];
}

function rasterLayers(option) {
  return option.layers.map((tiles, i) => ({
    source: { type: "raster", tiles, tileSize: 256, attribution: option.attribution ?? "" },
    layer: { id: `${PREFIX}raster-${i}`, type: "raster", source: `${PREFIX}raster-${i}` },
  }));
}

/** The id of the first layer above the basemap: the data layers stay on top of it. */
function firstDataLayer(map) {
  const layer = map.getStyle().layers.find((l) => l.type !== "background" && !l.id.startsWith(PREFIX));
  return layer?.id;
}

function removeBasemap(map) {
  for (const layer of map.getStyle().layers.filter((l) => l.id.startsWith(PREFIX))) map.removeLayer(layer.id);
  for (const id of Object.keys(map.getStyle().sources).filter((s) => s.startsWith(PREFIX))) map.removeSource(id);
}

function offlineUrl(option, districtId) {
  return new URL(option.url.replace("{district_id}", districtId), location.origin).href;
}

function addOffline(map, option, districtId) {
  const url = offlineUrl(option, districtId);
  const protocol = window.skygridPmtilesProtocol;
  if (protocol && !protocol.get(url)) {
    const source = new window.pmtiles.FetchSource(url, new Headers(authHeaders()));
    protocol.add(new window.pmtiles.PMTiles(source));
  }
  const sourceId = `${PREFIX}offline`;
  map.addSource(sourceId, { type: "vector", url: `pmtiles://${url}` });
  const before = firstDataLayer(map);
  for (const layer of offlineLayers(sourceId)) map.addLayer(layer, before);
}

function addRaster(map, option) {
  const before = firstDataLayer(map);
  for (const { source, layer } of rasterLayers(option)) {
    map.addSource(layer.source, source);
    map.addLayer(layer, before);
  }
}

function show(map, option, districtId) {
  removeBasemap(map);
  if (option.kind === "pmtiles") addOffline(map, option, districtId);
  else addRaster(map, option);
  STATE.set(map, { id: option.id, crs: option.crs });
}

function label(option) {
  const text = option.label?.[lang()] ?? option.label?.zh ?? option.id;
  return option.online ? text + t("basemap.online") : text;
}

/** A small MapLibre control: a select listing the basemaps. */
class BasemapControl {
  constructor(options, current, onSelect) {
    this.options = options;
    this.current = current;
    this.onSelect = onSelect;
  }

  onAdd() {
    const select = document.createElement("select");
    select.className = "basemap-select";
    select.title = t("basemap.title");
    select.setAttribute("aria-label", t("basemap.title"));
    for (const option of this.options) select.append(new Option(label(option), option.id, false, option.id === this.current));
    select.addEventListener("change", () => this.onSelect(select.value));
    this.relabel = () => {
      select.title = t("basemap.title");
      select.setAttribute("aria-label", t("basemap.title"));
      this.options.forEach((option, i) => (select.options[i].text = label(option)));
    };
    document.addEventListener("skygrid:lang", this.relabel);
    this.container = document.createElement("div");
    this.container.className = "maplibregl-ctrl maplibregl-ctrl-group basemap-control";
    this.container.append(select);
    return this.container;
  }

  onRemove() {
    document.removeEventListener("skygrid:lang", this.relabel);
    this.container.remove();
  }
}

/** Resolves once layers can be added: the style itself is loaded (its sources may still be loading). */
function whenStyleLoaded(map) {
  // isStyleLoaded() is also false while a source loads, after "load" has fired; style._loaded is what
  // addLayer checks.
  if (map.style?._loaded || map.isStyleLoaded()) return Promise.resolve();
  return new Promise((resolve) => map.once("load", resolve));
}

/**
 * Add the district's basemap beneath every data layer of ``map`` and a control to switch basemaps.
 * ``onChange(crs)`` is called after a switch so the page can re-request its layers (``withCrs``).
 * Resolves to ``{options, current(), crs(), set(id)}``.
 */
export async function addBasemap(map, { districtId, onChange = () => {}, control = true } = {}) {
  const response = await fetch("/api/v1/web/config");
  const config = response.ok ? await response.json() : { basemaps: [], default_basemap: "offline" };
  const options = config.basemaps.length ? config.basemaps : [{ id: "offline", kind: "pmtiles", crs: "wgs84", url: "/api/v1/districts/{district_id}/basemap.pmtiles" }];
  await whenStyleLoaded(map);
  const byId = Object.fromEntries(options.map((o) => [o.id, o]));
  const set = (id) => {
    const before = displayCrs(map);
    show(map, byId[id] ?? options[0], districtId);
    if (displayCrs(map) !== before) onChange(displayCrs(map));
  };
  show(map, byId[config.default_basemap] ?? options[0], districtId);
  if (control && options.length > 1) map.addControl(new BasemapControl(options, STATE.get(map).id, set), "top-right");
  return { options, current: () => STATE.get(map).id, crs: () => displayCrs(map), set };
}
