// The drone operator's page: pick grids of the published plan on the map, plan a patrol (camera, altitude,
// overlaps), see its path, sorties, photo points, no-fly zones and flight time, download it for the ground
// station, upload it to a vehicle, then fly it and watch the drone, its latest frame and the flags the
// detector finds appear on the map as they come in (server-sent events, reconnected when they drop).
import {
  addMessages,
  api,
  applyI18n,
  createMap,
  download,
  el,
  fitBounds,
  guarded,
  showError,
  startPage,
  t,
  toast,
  token,
} from "./common.js";
import { addBasemap, displayCrs, wgs84ToGcj02, withCrs } from "./basemap.js";

const CEILING_M = 120;
const MIN_ALTITUDE_M = 10;
const SORTIE_COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d"];
const CATEGORY_COLOURS = {
  "0101": "#b91c1c",
  "0102": "#65a30d",
  "0505": "#2563eb",
  "0506": "#7c3aed",
  "0507": "#d97706",
};
const EMPTY = { type: "FeatureCollection", features: [] };
const CONNECTION = /^(sim|(udp|tcp):[^:\s]+:\d{1,5}|serial:[^:\s]+:\d{3,7})$/;
const JOB_POLL_MS = 500;
const FLIGHT_STATUSES = ["registered", "queued", "running", "done", "failed"];
const FINAL = ["done", "failed"];
const RECONNECT_MAX_MS = 15_000;

addMessages({
  zh: {
    "op.grids.title": "巡查网格",
    "op.plan.label": "网格方案",
    "op.plan.option": "{name} · 第 {version} 版",
    "op.plan.none": "没有已发布的网格方案，请先由规划员发布。",
    "op.grids.hint": "在地图上点击网格选择或取消；也可输入网格编码添加。",
    "op.grids.code": "网格编码",
    "op.grids.households": "户数",
    "op.grids.total": "合计",
    "op.grids.add": "添加",
    "op.grids.clear": "清空",
    "op.grids.remove": "移除",
    "op.grids.unknown": "网格 {code} 不在此方案中",
    "op.mission.title": "航线参数",
    "op.mission.camera": "相机",
    "op.mission.altitude": "飞行高度（米，≤120）",
    "op.mission.front": "航向重叠（%）",
    "op.mission.side": "旁向重叠（%）",
    "op.mission.plan": "规划航线",
    "op.mission.planning": "正在规划…",
    "op.mission.planned": "航线 {id} 已规划：{sorties} 个架次",
    "op.error.noGrids": "请先在地图上选择至少一个网格。",
    "op.error.altitude": "飞行高度须大于 {min} 米且不超过 {max} 米（法定限高），当前为“{value}”。",
    "op.error.overlap": "{what}须在 {min}% 到 {max}% 之间，当前为“{value}”。",
    "op.error.connection": "连接“{value}”格式不对：应为 sim、udp:主机:端口、tcp:主机:端口 或 serial:设备:波特率。",
    "op.error.noMission": "模拟飞行按航线飞：请先规划航线。",
    "op.error.sourceUri": "请填写服务器上的视频、照片文件夹路径或视频流地址。",
    "op.error.telemetry": "视频流须填写飞控的 MAVLink 遥测链路，例如 udpin:0.0.0.0:14550。",
    "op.summary.title": "航线概要",
    "op.summary.sorties": "架次",
    "op.summary.photos": "照片",
    "op.summary.distance": "航程（公里）",
    "op.summary.time": "预计飞行（分钟）",
    "op.summary.altitude": "高度（米）",
    "op.summary.camera": "相机",
    "op.summary.sortie": "架次 {n}：{minutes} 分钟，{km} 公里",
    "op.upload.title": "上传到飞行器",
    "op.upload.hint": "sim（模拟器）、udp:主机:端口、tcp:主机:端口 或 serial:设备:波特率",
    "op.upload.go": "上传",
    "op.upload.queued": "排队中…",
    "op.upload.running": "上传中… {percent}%",
    "op.upload.done": "已上传并校验：{message}",
    "op.upload.failed": "上传失败：{message}",
    "op.flight.title": "执行飞行",
    "op.flight.source": "画面来源",
    "op.flight.uri": "服务器上的路径或视频流地址",
    "op.flight.srt": "SRT 文件路径",
    "op.flight.telemetry": "飞控遥测链路（MAVLink）",
    "op.flight.stop": "停止",
    "op.flight.stopping": "正在停止飞行 {id}",
    "op.flight.start": "开始飞行",
    "op.flight.started": "飞行 {id} 已开始",
    "op.flight.finished": "飞行结束：{message}",
    "op.flight.failed": "飞行失败：{message}",
    "op.source.stream": "视频流（RTSP/UDP）",
    "op.upload.sortie": "架次 {n}",
    "op.source.simulator": "模拟飞行",
    "op.source.video_srt": "视频 + SRT 字幕",
    "op.source.photos": "照片文件夹",
    "op.live.stream": "数据流",
    "op.live.frames": "画面",
    "op.live.flags": "发现问题",
    "op.live.position": "位置",
    "op.live.ortho": "显示本次飞行的正射影像",
    "op.live.positionValue": "{lon}, {lat}，高 {alt} 米",
    "op.stream.connecting": "连接中",
    "op.stream.live": "实时",
    "op.stream.reconnecting": "重新连接中",
    "op.stream.closed": "已结束",
    "op.flight.status": "状态：{status}",
    "op.flights.title": "最近飞行",
    "op.flights.none": "还没有飞行记录",
    "op.flights.open": "查看",
    "op.flights.item": "#{id} · {source} · {status} · {when}",
    "op.status.registered": "已登记",
    "op.status.queued": "排队中",
    "op.status.running": "飞行中",
    "op.status.done": "已完成",
    "op.status.failed": "失败",
    "op.legend.title": "问题类别",
    "op.popup.score": "置信度",
    "op.popup.grid": "网格",
    "cat.0101": "私搭乱建",
    "cat.0102": "暴露垃圾",
    "cat.0505": "机动车乱停放",
    "cat.0506": "非机动车乱停放",
    "cat.0507": "乱堆物堆料",
  },
  en: {
    "op.grids.title": "Grids to patrol",
    "op.plan.label": "Grid plan",
    "op.plan.option": "{name} · version {version}",
    "op.plan.none": "No published grid plan yet: a planner has to publish one first.",
    "op.grids.hint": "Click grids on the map to pick or drop them, or add one by its code.",
    "op.grids.code": "Grid code",
    "op.grids.households": "Households",
    "op.grids.total": "Total",
    "op.grids.add": "Add",
    "op.grids.clear": "Clear",
    "op.grids.remove": "Remove",
    "op.grids.unknown": "Grid {code} is not in this plan",
    "op.mission.title": "Mission settings",
    "op.mission.camera": "Camera",
    "op.mission.altitude": "Altitude (m, ≤ 120)",
    "op.mission.front": "Front overlap (%)",
    "op.mission.side": "Side overlap (%)",
    "op.mission.plan": "Plan mission",
    "op.mission.planning": "Planning…",
    "op.mission.planned": "Mission {id} planned (sorties: {sorties})",
    "op.error.noGrids": "Pick at least one grid on the map first.",
    "op.error.altitude": "Altitude must be above {min} m and at most {max} m (the legal ceiling); got “{value}”.",
    "op.error.overlap": "{what} must be between {min}% and {max}%; got “{value}”.",
    "op.error.connection":
      "Connection “{value}” is not valid: use sim, udp:HOST:PORT, tcp:HOST:PORT or serial:DEVICE:BAUD.",
    "op.error.noMission": "A simulated flight flies a mission: plan one first.",
    "op.error.sourceUri": "Give the path of the video or photo folder on the server, or the stream address.",
    "op.error.telemetry": "A stream needs the vehicle's MAVLink link, e.g. udpin:0.0.0.0:14550.",
    "op.summary.title": "Mission summary",
    "op.summary.sorties": "Sorties",
    "op.summary.photos": "Photos",
    "op.summary.distance": "Distance (km)",
    "op.summary.time": "Flight time (min)",
    "op.summary.altitude": "Altitude (m)",
    "op.summary.camera": "Camera",
    "op.summary.sortie": "Sortie {n}: {minutes} min, {km} km",
    "op.upload.title": "Upload to the vehicle",
    "op.upload.hint": "sim (the simulator), udp:HOST:PORT, tcp:HOST:PORT or serial:DEVICE:BAUD",
    "op.upload.go": "Upload",
    "op.upload.queued": "Queued…",
    "op.upload.running": "Uploading… {percent}%",
    "op.upload.done": "Uploaded and verified: {message}",
    "op.upload.failed": "Upload failed: {message}",
    "op.flight.title": "Fly",
    "op.flight.source": "Frames from",
    "op.flight.uri": "Path on the server, or stream address",
    "op.flight.srt": "SRT file path",
    "op.flight.telemetry": "Vehicle telemetry link (MAVLink)",
    "op.flight.stop": "Stop",
    "op.flight.stopping": "Stopping flight {id}",
    "op.flight.start": "Start flight",
    "op.flight.started": "Flight {id} started",
    "op.flight.finished": "Flight finished: {message}",
    "op.flight.failed": "Flight failed: {message}",
    "op.source.stream": "Video stream (RTSP/UDP)",
    "op.upload.sortie": "Sortie {n}",
    "op.source.simulator": "Simulated flight",
    "op.source.video_srt": "Video + SRT subtitles",
    "op.source.photos": "Photo folder",
    "op.live.stream": "Stream",
    "op.live.frames": "Frames",
    "op.live.flags": "Flags",
    "op.live.position": "Position",
    "op.live.ortho": "Show this flight's orthomosaic",
    "op.live.positionValue": "{lon}, {lat}, {alt} m up",
    "op.stream.connecting": "connecting",
    "op.stream.live": "live",
    "op.stream.reconnecting": "reconnecting",
    "op.stream.closed": "finished",
    "op.flight.status": "status: {status}",
    "op.flights.title": "Recent flights",
    "op.flights.none": "No flights yet",
    "op.flights.open": "Open",
    "op.flights.item": "#{id} · {source} · {status} · {when}",
    "op.status.registered": "registered",
    "op.status.queued": "queued",
    "op.status.running": "flying",
    "op.status.done": "done",
    "op.status.failed": "failed",
    "op.legend.title": "Flag categories",
    "op.popup.score": "Score",
    "op.popup.grid": "Grid",
    "cat.0101": "Illegal structure",
    "cat.0102": "Exposed garbage",
    "cat.0505": "Illegal car parking",
    "cat.0506": "Illegal non-motor-vehicle parking",
    "cat.0507": "Piled materials",
  },
});

const byId = (id) => document.getElementById(id);

/** Set ``node``'s text to the message ``key`` and keep it translated when the language changes. */
function setMessage(node, key, vars = {}) {
  node.dataset.i18nKey = key;
  node.dataset.i18nVars = JSON.stringify(vars);
  node.textContent = t(key, vars);
}

function clearMessage(node, text) {
  delete node.dataset.i18nKey;
  delete node.dataset.i18nVars;
  node.textContent = text;
}

function retranslate() {
  for (const node of document.querySelectorAll("[data-i18n-key]")) {
    node.textContent = t(node.dataset.i18nKey, JSON.parse(node.dataset.i18nVars ?? "{}"));
  }
}

function absoluteUrl(url) {
  return url.startsWith("/") ? `${location.origin}${url}` : url;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- plans and grids ----

async function publishedVersions() {
  const plans = await api("/api/v1/plans");
  const choices = plans.flatMap((plan) =>
    plan.versions
      .filter((version) => version.status === "published")
      .map((version) => ({
        planId: plan.id,
        districtId: plan.district_id,
        name: plan.name,
        version: version.number,
      })),
  );
  return choices.reverse();
}

function fillPlanSelect(choices) {
  const select = byId("plan-select");
  select.replaceChildren(
    ...choices.map((choice, index) => {
      const option = el("option", { value: String(index) });
      setMessage(option, "op.plan.option", { name: choice.name, version: choice.version });
      return option;
    }),
  );
}

/** Every grid of the chosen version (codes and households), a thousand per request. */
async function gridList(ctx) {
  const base = `/api/v1/plans/${ctx.choice.planId}/versions/${ctx.choice.version}/grids?limit=1000`;
  const rows = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api(`${base}&offset=${offset}`);
    rows.push(...page);
    if (page.length < 1000) return rows;
  }
}

async function loadGridList(ctx) {
  ctx.grids = new Map((await gridList(ctx)).map((grid) => [grid.grid_code, grid]));
  byId("grid-codes").replaceChildren(
    ...[...ctx.grids.values()].map((grid) => el("option", { value: grid.grid_code }, `${grid.households}`)),
  );
}

function vectorSource(tilejson) {
  return {
    type: "vector",
    tiles: tilejson.tiles.map(absoluteUrl),
    minzoom: tilejson.minzoom ?? 0,
    maxzoom: tilejson.maxzoom ?? 16,
    bounds: tilejson.bounds,
  };
}

/** The district's no-fly zones (district vector tiles), beneath the grids. */
async function showNoFlyZones(ctx) {
  const { map } = ctx;
  const tilejson = await api(withCrs(`/api/v1/tiles/districts/${ctx.choice.districtId}.json`, map));
  removeLayers(map, "district-");
  if (map.getSource("district")) map.removeSource("district");
  map.addSource("district", vectorSource(tilejson));
  const zones = { source: "district", "source-layer": "no_fly" };
  const before = map.getLayer("grids-fill") ? "grids-fill" : "mission-nofly";
  const fill = { "fill-color": "#dc2626", "fill-opacity": 0.12 };
  map.addLayer({ id: "district-nofly", type: "fill", ...zones, paint: fill }, before);
  const line = { "line-color": "#b91c1c", "line-width": 1, "line-dasharray": [3, 2] };
  map.addLayer({ id: "district-nofly-line", type: "line", ...zones, paint: line }, before);
}

function bboxOf(features) {
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  const visit = (coords) => {
    if (typeof coords[0] === "number") {
      box[0] = Math.min(box[0], coords[0]);
      box[1] = Math.min(box[1], coords[1]);
      box[2] = Math.max(box[2], coords[0]);
      box[3] = Math.max(box[3], coords[1]);
    } else coords.forEach(visit);
  };
  for (const feature of features) if (feature.geometry) visit(feature.geometry.coordinates);
  return Number.isFinite(box[0]) ? box : null;
}

function pickedFilter(codes) {
  return ["in", ["get", "grid_code"], ["literal", codes]];
}

function removeLayers(map, prefix) {
  for (const layer of map.getStyle().layers) if (layer.id.startsWith(prefix)) map.removeLayer(layer.id);
}

async function showGrids(ctx, { fit }) {
  const { map } = ctx;
  delete map.getContainer().dataset.ready;
  const { planId, version } = ctx.choice;
  const tilejson = await api(withCrs(`/api/v1/tiles/plans/${planId}/versions/${version}.json`, map));
  removeLayers(map, "grids-");
  if (map.getSource("plan")) map.removeSource("plan");
  map.addSource("plan", vectorSource(tilejson));
  const add = (spec) => map.addLayer({ source: "plan", "source-layer": "grids", ...spec }, "mission-nofly");
  add({ id: "grids-fill", type: "fill", paint: { "fill-color": "#93c5fd", "fill-opacity": 0.18 } });
  add({
    id: "grids-picked",
    type: "fill",
    filter: pickedFilter([...ctx.picked]),
    paint: { "fill-color": "#f59e0b", "fill-opacity": 0.45 },
  });
  add({ id: "grids-line", type: "line", paint: { "line-color": "#1e3a8a", "line-width": 1 } });
  if (fit) fitBounds(map, tilejson.bounds);
  map.once("idle", () => (map.getContainer().dataset.ready = "grids"));
}

function togglePick(ctx, code) {
  if (ctx.picked.has(code)) ctx.picked.delete(code);
  else if (ctx.grids.has(code)) ctx.picked.add(code);
  else return toast(t("op.grids.unknown", { code }), "warn");
  renderPicked(ctx);
  return undefined;
}

function renderPicked(ctx) {
  const rows = [...ctx.picked].sort().map((code) => {
    const remove = el("button", { type: "button", className: "link", dataset: { testid: `remove-${code}` } });
    remove.dataset.i18n = "op.grids.remove";
    remove.addEventListener("click", () => togglePick(ctx, code));
    const households = ctx.grids.get(code)?.households ?? 0;
    const cells = [el("td", {}, code), el("td", {}, String(households)), el("td", {}, remove)];
    return el("tr", { dataset: { grid: code } }, ...cells);
  });
  byId("picked-grids").tBodies[0].replaceChildren(...rows);
  const total = [...ctx.picked].reduce((sum, code) => sum + (ctx.grids.get(code)?.households ?? 0), 0);
  byId("picked-total").textContent = String(total);
  applyI18n(byId("picked-grids"));
  if (ctx.map.getLayer("grids-picked")) ctx.map.setFilter("grids-picked", pickedFilter([...ctx.picked]));
}

function wireGridPicking(ctx) {
  const { map } = ctx;
  map.on("click", "grids-fill", (event) => {
    const onFlag = map.queryRenderedFeatures(event.point, { layers: ["live-flags"] }).length > 0;
    if (onFlag) return; // the flag's popup opens instead
    togglePick(ctx, String(event.features[0].properties.grid_code));
  });
  map.on("mouseenter", "grids-fill", () => (map.getCanvas().style.cursor = "pointer"));
  map.on("mouseleave", "grids-fill", () => (map.getCanvas().style.cursor = ""));
  byId("grid-add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = byId("grid-code-input");
    const code = input.value.trim();
    if (code && !ctx.picked.has(code)) togglePick(ctx, code);
    input.value = "";
  });
  byId("grid-clear").addEventListener("click", () => {
    ctx.picked.clear();
    renderPicked(ctx);
  });
}

async function choosePlan(ctx, choice) {
  ctx.choice = choice;
  ctx.picked.clear();
  ctx.mission = null;
  ctx.preview = EMPTY;
  drawMission(ctx);
  byId("summary-section").hidden = true;
  await loadGridList(ctx);
  renderPicked(ctx);
  await showNoFlyZones(ctx);
  await showGrids(ctx, { fit: true });
}

// ---- what is drawn over the basemap ----

/** A WGS-84 ``[lon, lat]`` where the map's basemap draws it. */
function displayPoint(map, [lon, lat]) {
  return displayCrs(map) === "gcj02" ? wgs84ToGcj02(lon, lat) : [lon, lat];
}

/** ``geojson`` (WGS-84, as stored) in the CRS of the map's basemap: GCJ-02 on Gaode, for display only. */
function forDisplay(map, geojson) {
  if (displayCrs(map) !== "gcj02") return geojson;
  const shift = (coords) => (typeof coords[0] === "number" ? displayPoint(map, coords) : coords.map(shift));
  const feature = (f) => ({ ...f, geometry: { ...f.geometry, coordinates: shift(f.geometry.coordinates) } });
  return { ...geojson, features: geojson.features.map(feature) };
}

function trackFeatures(track) {
  if (track.length === 0) return [];
  const coordinates = track.length > 1 ? track : [track[0], track[0]];
  return [{ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates } }];
}

/** Draw the planned mission from its WGS-84 preview. */
function drawMission(ctx) {
  ctx.map.getSource("mission").setData(forDisplay(ctx.map, ctx.preview));
}

/** Draw the flight's track, its flags and the drone from their WGS-84 copies. */
function drawLive(ctx) {
  const { map, live } = ctx;
  const collection = (features) => forDisplay(map, { type: "FeatureCollection", features });
  map.getSource("track").setData(collection(trackFeatures(live.track)));
  map.getSource("flags").setData(collection([...live.flags.values()]));
  const last = live.track.at(-1);
  if (last) ctx.drone.setLngLat(displayPoint(map, last));
}

/** After a switch to or from a GCJ-02 basemap: the tiles again in its CRS, and the overlays redrawn. */
async function onBasemapChange(ctx) {
  drawMission(ctx);
  drawLive(ctx);
  showOrtho(ctx, byId("show-ortho").checked);
  await showNoFlyZones(ctx);
  await showGrids(ctx, { fit: false });
}

// ---- the mission ----

async function loadCameras() {
  const cameras = await api("/api/v1/cameras");
  byId("camera").replaceChildren(
    ...cameras.map((camera) => el("option", { value: camera.id }, camera.name ?? camera.id)),
  );
}

function numberField(id) {
  const raw = byId(id).value.trim();
  return { raw, value: raw === "" ? NaN : Number(raw) };
}

/** The mission request of the form, or throws an ``Error`` saying which field is wrong and why. */
function missionRequest(ctx) {
  if (ctx.picked.size === 0) throw fieldError("grid-code-input", t("op.error.noGrids"));
  const altitude = numberField("altitude");
  if (!(altitude.value > MIN_ALTITUDE_M && altitude.value <= CEILING_M)) {
    const vars = { min: MIN_ALTITUDE_M, max: CEILING_M, value: altitude.raw };
    throw fieldError("altitude", t("op.error.altitude", vars));
  }
  const front = overlap("front-overlap", "op.mission.front");
  const side = overlap("side-overlap", "op.mission.side");
  return {
    plan_id: ctx.choice.planId,
    version: ctx.choice.version,
    grid_codes: [...ctx.picked].sort(),
    altitude_m: altitude.value,
    camera: byId("camera").value,
    front_overlap: front / 100,
    side_overlap: side / 100,
  };
}

function overlap(id, labelKey) {
  const input = byId(id);
  const { raw, value } = numberField(id);
  const [min, max] = [Number(input.min), Number(input.max)];
  if (!(value >= min && value <= max)) {
    const what = t(labelKey).replace(/（%）|\s*\(%\)/, "");
    throw fieldError(id, t("op.error.overlap", { what, min, max, value: raw }));
  }
  return value;
}

function fieldError(id, message) {
  const error = new Error(message);
  error.field = id;
  return error;
}

function showFormError(box, error) {
  box.textContent = error.message;
  box.hidden = false;
  if (error.field) byId(error.field).focus();
}

async function planMission(ctx) {
  const box = byId("mission-error");
  box.hidden = true;
  let body;
  try {
    body = missionRequest(ctx);
  } catch (error) {
    return showFormError(box, error);
  }
  const button = byId("plan-mission");
  button.disabled = true;
  setMessage(button, "op.mission.planning");
  try {
    ctx.mission = await api("/api/v1/missions", { method: "POST", json: body });
    const preview = await api(`/api/v1/missions/${ctx.mission.id}/preview`);
    showMission(ctx, preview);
    toast(t("op.mission.planned", { id: ctx.mission.id, sorties: preview.summary.sorties }), "ok");
  } catch (error) {
    box.textContent = error.detail ?? error.message;
    box.hidden = false;
    showError(error);
  } finally {
    button.disabled = false;
    setMessage(button, "op.mission.plan");
  }
  return undefined;
}

function addMissionLayers(map) {
  map.addSource("mission", { type: "geojson", data: EMPTY });
  const kind = (value) => ["==", ["get", "kind"], value];
  const index = ["%", ["to-number", ["get", "sortie"], 0], SORTIE_COLOURS.length];
  const sortieColour = ["to-color", ["at", index, ["literal", SORTIE_COLOURS]]];
  map.addLayer({
    id: "mission-nofly",
    type: "fill",
    source: "mission",
    filter: kind("no_fly"),
    paint: { "fill-color": "#dc2626", "fill-opacity": 0.25 },
  });
  map.addLayer({
    id: "mission-nofly-line",
    type: "line",
    source: "mission",
    filter: kind("no_fly"),
    paint: { "line-color": "#b91c1c", "line-width": 2, "line-dasharray": [2, 1] },
  });
  map.addLayer({
    id: "mission-path",
    type: "line",
    source: "mission",
    filter: kind("path"),
    paint: { "line-color": sortieColour, "line-width": 2.5 },
  });
  map.addLayer({
    id: "mission-photos",
    type: "circle",
    source: "mission",
    filter: kind("photo"),
    paint: {
      "circle-radius": 2.5,
      "circle-color": "#ffffff",
      "circle-stroke-color": "#334155",
      "circle-stroke-width": 1,
    },
  });
  map.addLayer({
    id: "mission-takeoff",
    type: "circle",
    source: "mission",
    filter: kind("takeoff"),
    paint: {
      "circle-radius": 8,
      "circle-color": "#111827",
      "circle-stroke-color": "#facc15",
      "circle-stroke-width": 3,
    },
  });
}

function showMission(ctx, preview) {
  ctx.preview = preview;
  drawMission(ctx);
  const bounds = bboxOf(preview.features.filter((feature) => feature.properties.kind !== "no_fly"));
  if (bounds) fitBounds(ctx.map, bounds, 60);
  renderSummary(ctx, preview);
  const status = byId("upload-status");
  status.className = "";
  clearMessage(status, ""); // an upload of the previous mission says nothing about this one
  byId("summary-section").hidden = false;
}

function renderSummary(ctx, preview) {
  const { summary } = preview;
  byId("mission-id").textContent = `#${ctx.mission.id}`;
  byId("sum-sorties").textContent = String(summary.sorties);
  byId("sum-photos").textContent = String(summary.photos);
  byId("sum-distance").textContent = (summary.distance_m / 1000).toFixed(2);
  byId("sum-time").textContent = (summary.flight_time_s / 60).toFixed(1);
  byId("sum-altitude").textContent = String(Math.round(summary.altitude_m));
  byId("sum-camera").textContent = summary.camera?.name ?? "";
  const paths = preview.features.filter((feature) => feature.properties.kind === "path");
  fillSortieSelect(summary.sorties);
  byId("sortie-legend").replaceChildren(
    ...paths.map(({ properties: p }) => {
      const colour = SORTIE_COLOURS[Number(p.sortie) % SORTIE_COLOURS.length];
      const text = el("span");
      setMessage(text, "op.summary.sortie", {
        n: Number(p.sortie) + 1,
        minutes: (p.flight_time_s / 60).toFixed(1),
        km: (p.distance_m / 1000).toFixed(2),
      });
      return el("li", {}, el("span", { className: "swatch", style: `background:${colour}` }), text);
    }),
  );
}

function fillSortieSelect(count) {
  const select = byId("upload-sortie");
  select.replaceChildren(
    ...Array.from({ length: count }, (_, index) => {
      const option = el("option", { value: String(index) });
      setMessage(option, "op.upload.sortie", { n: index + 1 });
      return option;
    }),
  );
  select.hidden = count < 2;
}

function wireDownloads(ctx) {
  for (const format of ["plan", "waypoints", "kmz"]) {
    byId(`download-${format}`).addEventListener(
      "click",
      guarded(() => download(`/api/v1/missions/${ctx.mission.id}/download?format=${format}`)),
    );
  }
}

// ---- upload to a vehicle ----

async function pollJob(jobId, onProgress) {
  for (;;) {
    const job = await api(`/api/v1/jobs/${jobId}`);
    onProgress(job);
    if (job.status === "done" || job.status === "failed") return job;
    await sleep(JOB_POLL_MS);
  }
}

function showUploadState(job) {
  const status = byId("upload-status");
  const bar = byId("upload-progress");
  bar.hidden = job.status === "done" || job.status === "failed";
  bar.value = job.progress ?? 0;
  status.className = { done: "ok", failed: "error" }[job.status] ?? "";
  const key = { queued: "op.upload.queued", done: "op.upload.done", failed: "op.upload.failed" }[job.status];
  setMessage(status, key ?? "op.upload.running", {
    percent: Math.round((job.progress ?? 0) * 100),
    message: job.message ?? "",
  });
}

async function upload(ctx) {
  const connection = byId("connection").value.trim();
  if (!CONNECTION.test(connection)) {
    const status = byId("upload-status");
    status.className = "error";
    setMessage(status, "op.error.connection", { value: connection });
    byId("connection").focus();
    return;
  }
  const button = byId("upload");
  button.disabled = true;
  try {
    const { job_id: jobId } = await api(`/api/v1/missions/${ctx.mission.id}/upload`, {
      method: "POST",
      json: { connection, sortie: Number(byId("upload-sortie").value || 0) },
    });
    const job = await pollJob(jobId, showUploadState);
    if (job.status === "failed") toast(t("op.upload.failed", { message: job.message }), "error", 10_000);
  } catch (error) {
    showUploadState({ status: "failed", message: error.detail ?? error.message });
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// ---- the flight ----

function flightSource(ctx) {
  const kind = byId("source-kind").value;
  if (kind === "simulator" && !ctx.mission) throw fieldError("plan-mission", t("op.error.noMission"));
  if (kind === "simulator") return { kind };
  const uri = byId("source-uri").value.trim();
  if (!uri) throw fieldError("source-uri", t("op.error.sourceUri"));
  const source = { kind, uri };
  const srt = byId("source-srt").value.trim();
  if (kind === "video_srt" && srt) source.srt = srt;
  if (kind === "stream") {
    const telemetry = byId("source-telemetry").value.trim();
    if (!telemetry) throw fieldError("source-telemetry", t("op.error.telemetry"));
    source.telemetry = telemetry;
  }
  return source;
}

function showSourceFields() {
  const kind = byId("source-kind").value;
  byId("source-uri-field").hidden = kind === "simulator";
  byId("source-srt-field").hidden = kind !== "video_srt";
  byId("source-telemetry-field").hidden = kind !== "stream";
}

/** Ask the server to stop the running flight; it ends "done" with what it found, and says so on the stream. */
async function stopFlight(ctx) {
  const button = byId("stop-flight");
  button.disabled = true;
  try {
    await api(`/api/v1/flights/${ctx.flightId}/stop`, { method: "POST" });
    toast(t("op.flight.stopping", { id: ctx.flightId }), "ok");
  } catch (error) {
    button.disabled = false;
    showError(error);
  }
}

async function startFlight(ctx) {
  let source;
  try {
    source = flightSource(ctx);
  } catch (error) {
    showError(error);
    byId(error.field).focus();
    return;
  }
  const button = byId("start-flight");
  button.disabled = true;
  try {
    const json = { mission_id: ctx.mission?.id ?? null, source };
    const flight = await api("/api/v1/flights", { method: "POST", json });
    resetLive(ctx, flight.id);
    ctx.live.sawRunning = true;
    ctx.stream = openStream(ctx, flight.id);
    await api(`/api/v1/flights/${flight.id}/run`, { method: "POST" });
    toast(t("op.flight.started", { id: flight.id }), "ok");
    await loadFlights(ctx);
  } catch (error) {
    ctx.stream?.close();
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// ---- recent flights: reopen one after a reload, or look back at a finished one ----

const RECENT_FLIGHTS = 8;

async function loadFlights(ctx) {
  const flights = await api(`/api/v1/flights?limit=${RECENT_FLIGHTS}`);
  byId("flight-list").replaceChildren(...flights.map((flight) => flightItem(ctx, flight)));
  byId("flight-list-empty").hidden = flights.length > 0;
}

function flightItem(ctx, flight) {
  const status = FLIGHT_STATUSES.includes(flight.status) ? `op.status.${flight.status}` : "op.flight.status";
  const label = el("span");
  setMessage(label, "op.flights.item", {
    id: flight.id,
    source: t(`op.source.${flight.source_kind}`),
    status: t(status, { status: flight.status }),
    when: new Date(flight.created_at).toLocaleString(),
  });
  const open = el("button", { type: "button", dataset: { testid: "open-flight" } });
  setMessage(open, "op.flights.open");
  open.addEventListener("click", guarded(() => openFlight(ctx, flight.id)));
  const current = flight.id === ctx.flightId ? "current" : "";
  return el("li", { className: current, dataset: { flightId: String(flight.id) } }, label, open);
}

/** Show a flight that is already under way or over: its track and flags so far, then its live events. */
async function openFlight(ctx, flightId) {
  resetLive(ctx, flightId);
  const [track, flags] = await Promise.all([
    api(`/api/v1/flights/${flightId}/track`),
    api(`/api/v1/flights/${flightId}/flags`),
  ]);
  ctx.live.track = track.geometry.coordinates;
  for (const flag of flags) onFlag(ctx, flag);
  drawLive(ctx);
  if (ctx.live.track.length > 0) fitBounds(ctx.map, trackBounds(ctx.map, ctx.live.track), 60);
  ctx.stream = openStream(ctx, flightId);
  for (const item of byId("flight-list").children) {
    item.classList.toggle("current", item.dataset.flightId === String(flightId));
  }
}

/** [west, south, east, north] of a WGS-84 track as the map shows it. */
function trackBounds(map, track) {
  const shown = track.map((point) => displayPoint(map, point));
  const lons = shown.map(([lon]) => lon);
  const lats = shown.map(([, lat]) => lat);
  return [Math.min(...lons), Math.min(...lats), Math.max(...lons), Math.max(...lats)];
}

/** What a flight's live view holds: the track and flags in WGS-84, the frame count, the frame shown. */
function emptyLive() {
  return {
    track: [],
    lastT: "",
    flags: new Map(),
    framesSeen: 0, // frame events (the server may drop some for a slow client)
    framesReported: 0, // the count in the latest status event
    flagsReported: 0,
    lastFrameId: 0,
    frameBusy: false,
    frameUrl: null,
    sawRunning: false, // the flight was seen before it ended, so its end is news
  };
}

function resetLive(ctx, flightId) {
  ctx.stream?.close();
  showOrtho(ctx, false);
  ctx.flightId = flightId;
  Object.assign(byId("show-ortho"), { checked: false, disabled: true });
  ctx.live = emptyLive();
  ctx.drone.remove();
  drawLive(ctx);
  byId("live").hidden = false;
  byId("count-frames").textContent = "0";
  byId("count-flags").textContent = "0";
  clearMessage(byId("live-position"), "—");
  clearMessage(byId("flight-status"), "");
  byId("stop-flight").hidden = true;
}

function setStreamState(state) {
  const badge = byId("stream-state");
  badge.className = `badge stream-${state}`;
  badge.dataset.state = state;
  setMessage(badge, `op.stream.${state}`);
}

/** Follow a flight's events; reconnects with back-off when the stream drops. Returns ``{close}``. */
function openStream(ctx, flightId) {
  let source = null;
  let retries = 0;
  let finished = false;
  const handlers = {
    position: (data) => onPosition(ctx, data),
    frame: (data) => onFrame(ctx, flightId, data),
    flag: (data) => onFlag(ctx, data),
    status: (data) => onStatus(ctx, data),
    done: (data) => {
      close();
      onDone(ctx, data);
      guarded(() => loadFlights(ctx))();
    },
  };
  const connect = () => {
    setStreamState(retries === 0 ? "connecting" : "reconnecting");
    const url = `/api/v1/flights/${flightId}/events?access_token=${encodeURIComponent(token())}`;
    source = new EventSource(url);
    source.onopen = () => {
      retries = 0;
      setStreamState("live");
    };
    source.onerror = () => {
      if (finished) return;
      setStreamState("reconnecting");
      if (source.readyState !== EventSource.CLOSED) return;
      retries += 1;
      setTimeout(() => finished || connect(), Math.min(1000 * 2 ** retries, RECONNECT_MAX_MS));
    };
    for (const [name, handle] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => handle(event.data ? JSON.parse(event.data) : {}));
    }
  };
  const close = () => {
    finished = true;
    source?.close();
    setStreamState("closed");
  };
  connect();
  return { close };
}

function onPosition(ctx, data) {
  const { live } = ctx;
  if (data.t && String(data.t) <= live.lastT) return; // a replay after reconnecting
  live.lastT = data.t ? String(data.t) : live.lastT;
  live.track.push([data.lon, data.lat]);
  drawLive(ctx);
  ctx.drone.setRotation(data.heading_deg ?? 0).addTo(ctx.map);
  setMessage(byId("live-position"), "op.live.positionValue", {
    lon: data.lon.toFixed(5),
    lat: data.lat.toFixed(5),
    alt: Math.round(data.altitude_m ?? 0),
  });
}

async function onFrame(ctx, flightId, data) {
  const { live } = ctx;
  if (data.frame_id <= live.lastFrameId) return; // a replay after reconnecting
  live.lastFrameId = data.frame_id ?? live.lastFrameId;
  live.framesSeen += 1;
  showFrameCount(live);
  if (live.frameBusy) return;
  live.frameBusy = true;
  try {
    const path = data.url ?? `/api/v1/flights/${flightId}/frames/latest.jpg`;
    const response = await api(path, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    if (live.frameUrl) URL.revokeObjectURL(live.frameUrl);
    live.frameUrl = url;
    Object.assign(byId("latest-frame"), { src: url, hidden: false });
  } catch (error) {
    console.warn("latest frame", error);
  } finally {
    live.frameBusy = false;
  }
}

function onFlag(ctx, flag) {
  const { live } = ctx;
  live.flags.set(flag.id, {
    type: "Feature",
    id: flag.id,
    properties: { id: flag.id, category: flag.category, score: flag.score, grid_code: flag.grid_code ?? "" },
    geometry: { type: "Point", coordinates: [flag.lon, flag.lat] },
  });
  drawLive(ctx);
  showFlagCount(live);
}

function showFrameCount(live) {
  byId("count-frames").textContent = String(Math.max(live.framesSeen, live.framesReported));
}

function showFlagCount(live) {
  byId("count-flags").textContent = String(Math.max(live.flags.size, live.flagsReported));
}

function onStatus(ctx, data) {
  const { live } = ctx;
  if (data.frames !== undefined) {
    live.framesReported = data.frames;
    showFrameCount(live);
  }
  if (data.flags !== undefined) {
    live.flagsReported = data.flags;
    showFlagCount(live);
  }
  if (data.status) showFlightStatus(data.status);
  if (data.status && !FINAL.includes(data.status)) live.sawRunning = true;
}

function showFlightStatus(status) {
  const key = FLIGHT_STATUSES.includes(status) ? `op.status.${status}` : "op.flight.status";
  setMessage(byId("flight-status"), key, { status });
  const stop = byId("stop-flight");
  stop.hidden = status !== "running";
  if (stop.hidden) stop.disabled = false;
}

/** The flight's orthomosaic (raster tiles from its posed frames) over the basemap, beneath the grids; its
 * tiles are WGS-84, so it is left off a GCJ-02 basemap rather than drawn 500 m away. */
function showOrtho(ctx, on) {
  const { map } = ctx;
  if (map.getLayer("ortho")) map.removeLayer("ortho");
  if (map.getSource("ortho")) map.removeSource("ortho");
  if (!on || displayCrs(map) === "gcj02") return;
  const tiles = [`${location.origin}/api/v1/flights/${ctx.flightId}/ortho/{z}/{x}/{y}.png`];
  map.addSource("ortho", { type: "raster", tiles, tileSize: 256, minzoom: 14, maxzoom: 20 });
  const before = ["district-nofly", "grids-fill", "mission-nofly"].find((id) => map.getLayer(id));
  map.addLayer({ id: "ortho", type: "raster", source: "ortho" }, before);
}

function onDone(ctx, data) {
  byId("show-ortho").disabled = data.status !== "done";
  if (data.status) showFlightStatus(data.status);
  if (!ctx.live.sawRunning) return; // a flight reopened after it ended: nothing new to announce
  const vars = { message: data.message ?? "" };
  if (data.status === "failed") toast(t("op.flight.failed", vars), "error", 10_000);
  else if (data.status) toast(t("op.flight.finished", vars), "ok");
}

function addLiveLayers(map) {
  map.addSource("track", { type: "geojson", data: EMPTY });
  map.addLayer({
    id: "live-track",
    type: "line",
    source: "track",
    paint: { "line-color": "#0f172a", "line-width": 3, "line-opacity": 0.8 },
  });
  map.addSource("flags", { type: "geojson", data: EMPTY });
  const colour = ["match", ["get", "category"], ...Object.entries(CATEGORY_COLOURS).flat(), "#6b7280"];
  map.addLayer({
    id: "live-flags",
    type: "circle",
    source: "flags",
    paint: {
      "circle-radius": 7,
      "circle-color": colour,
      "circle-stroke-color": "#fff",
      "circle-stroke-width": 2,
    },
  });
}

function flagPopup(properties) {
  const category = String(properties.category);
  const known = properties.score !== null && properties.score !== undefined;
  const score = known ? `${Math.round(Number(properties.score) * 100)}%` : "—";
  return el(
    "div",
    { className: "flag-popup", dataset: { testid: "flag-popup" } },
    el("strong", {}, `${t(`cat.${category}`)} (${category})`),
    el("div", {}, `${t("op.popup.score")}: ${score}`),
    el("div", {}, `${t("op.popup.grid")}: ${properties.grid_code || "—"}`),
  );
}

function wireFlagPopups(map) {
  map.on("click", "live-flags", (event) => {
    const feature = event.features[0];
    new window.maplibregl.Popup({ closeButton: true })
      .setLngLat(feature.geometry.coordinates)
      .setDOMContent(flagPopup(feature.properties))
      .addTo(map);
  });
  map.on("mouseenter", "live-flags", () => (map.getCanvas().style.cursor = "pointer"));
  map.on("mouseleave", "live-flags", () => (map.getCanvas().style.cursor = ""));
}

function legendControl() {
  const box = el("div", { className: "maplibregl-ctrl flag-legend", dataset: { testid: "flag-legend" } });
  const title = el("strong");
  title.dataset.i18n = "op.legend.title";
  const rows = Object.entries(CATEGORY_COLOURS).map(([code, colour]) => {
    const name = el("span", { dataset: { i18n: `cat.${code}` } });
    return el("div", {}, el("span", { className: "swatch round", style: `background:${colour}` }), name);
  });
  box.append(title, ...rows);
  applyI18n(box);
  return { onAdd: () => box, onRemove: () => box.remove() };
}

function droneMarker() {
  const icon = el("div", { className: "drone-marker", dataset: { testid: "drone-marker" } });
  return new window.maplibregl.Marker({ element: icon, rotationAlignment: "map" });
}

// ---- the page ----

/** The district's basemap with its switch; without one the page still works on the plain background. */
async function addDistrictBasemap(ctx, districtId) {
  try {
    await addBasemap(ctx.map, { districtId, onChange: guarded(() => onBasemapChange(ctx)) });
  } catch (error) {
    showError(error);
  }
}

function wireForms(ctx) {
  byId("mission-form").addEventListener("submit", (event) => {
    event.preventDefault();
    planMission(ctx);
  });
  byId("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    upload(ctx);
  });
  byId("flight-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startFlight(ctx);
  });
  byId("source-kind").addEventListener("change", showSourceFields);
  byId("stop-flight").addEventListener("click", () => stopFlight(ctx));
  byId("show-ortho").addEventListener("change", (event) => showOrtho(ctx, event.target.checked));
  wireDownloads(ctx);
}

async function main() {
  await startPage("operator");
  document.addEventListener("skygrid:lang", retranslate);
  const map = createMap("map");
  window.skygrid = { map }; // for the browser tests and the console: project a point, read a source
  await new Promise((resolve) => map.once("load", resolve));
  map.addControl(new window.maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(legendControl(), "bottom-left");
  const ctx = {
    map,
    choice: null,
    picked: new Set(),
    grids: new Map(),
    mission: null,
    preview: EMPTY,
    live: emptyLive(),
    stream: null,
    drone: droneMarker(),
  };
  const choices = await publishedVersions();
  if (choices.length === 0) {
    byId("plan-select").disabled = true;
    return toast(t("op.plan.none"), "warn", 0);
  }
  fillPlanSelect(choices);
  await addDistrictBasemap(ctx, choices[0].districtId); // first: it waits for a style with every source loaded
  addMissionLayers(map);
  addLiveLayers(map);
  wireGridPicking(ctx);
  wireFlagPopups(map);
  wireForms(ctx);
  byId("plan-select").addEventListener(
    "change",
    guarded((event) => choosePlan(ctx, choices[Number(event.target.value)])),
  );
  document.addEventListener("skygrid:lang", guarded(() => loadFlights(ctx)));
  await Promise.all([loadCameras(), choosePlan(ctx, choices[0]), loadFlights(ctx)]);
  return undefined;
}

guarded(main)();
