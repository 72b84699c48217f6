// The planner page: a plan version's buildings coloured by grid on a MapLibre map, a brush that paints buildings
// into the selected grid (one request per stroke, coloured at once through feature-state and rolled back when
// the server refuses), live household tallies and rule warnings from the server, undo/redo by inverse moves,
// split, merge, re-grid a selection, lock, validate, publish, new draft, compare versions, export and print.
//
// Painting never re-fetches buildings: a stroke changes feature-state only, and the vector tiles are refreshed
// (new revision → new tile URLs) once the planner pauses.

import {
  ApiError,
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
} from "./common.js";

addMessages({
  zh: {
    "pl.plan.title": "网格方案",
    "pl.plan.label": "方案",
    "pl.plan.none": "还没有网格方案：请先导入辖区并划分网格。",
    "pl.version.label": "版本",
    "pl.version.option": "第 {number} 版 · {status}",
    "pl.version.info": "{status} · 修订 {revision} · {who} · {reason}",
    "pl.status.draft": "草稿",
    "pl.status.published": "已发布",
    "pl.status.archived": "已归档",
    "pl.readonly": "此版本已发布，只读。要修改，请先据此创建草稿：编辑在草稿上进行并即时保存，校验通过后再发布。",
    "pl.draft.reason": "修改原因（如：现场核实）",
    "pl.draft.make": "创建草稿",
    "pl.draft.copy": "另存为新草稿",
    "pl.draft.defaultReason": "在网页上调整网格",
    "pl.draft.made": "已创建草稿第 {number} 版",
    "pl.draft.note": "草稿：每次编辑即时保存，其他人同时修改时会提示刷新。",
    "pl.tools.title": "工具",
    "pl.tool.select": "选择",
    "pl.tool.select.hint": "点击网格选择；按住 Shift 再点一个网格可多选（合并、重新划分）",
    "pl.tool.brush": "画笔",
    "pl.tool.brush.hint": "在楼栋上点击或拖动，把楼栋划入所选网格（B）",
    "pl.hint.select": "点击地图上的网格以选择；Shift+点击多选。快捷键：B 画笔，Esc 选择，Ctrl+Z 撤销，Ctrl+Y 重做。",
    "pl.hint.brush": "画笔：在楼栋上点击或拖动，划入网格 {grid}。",
    "pl.hint.brushNone": "画笔：请先选择目标网格。",
    "pl.hint.readonly": "只读版本：可以查看、对比、导出和打印。",
    "pl.undo": "撤销",
    "pl.redo": "重做",
    "pl.undo.hint": "撤销上一笔（Ctrl+Z）",
    "pl.redo.hint": "重做（Ctrl+Y）",
    "pl.undo.empty": "没有可撤销的操作",
    "pl.redo.empty": "没有可重做的操作",
    "pl.split": "拆分网格",
    "pl.splitLine": "画线拆分",
    "pl.hint.line": "画线拆分网格 {grid}：在地图上依次点击画出横穿网格的分割线，双击或按 Enter 完成，Esc 取消。",
    "pl.merge": "合并网格",
    "pl.regrid": "重新划分所选",
    "pl.need.one": "请先选择一个网格",
    "pl.need.two": "请选择两个相邻网格（Shift+点击第二个）",
    "pl.split.done": "网格 {grid} 已拆分为 {parts}",
    "pl.merge.done": "已将 {absorbed} 并入 {grid}",
    "pl.regrid.started": "正在重新划分 {count} 个网格…",
    "pl.regrid.done": "重新划分完成：{grids}",
    "pl.regrid.failed": "重新划分失败：{message}",
    "pl.validate": "校验",
    "pl.validate.ok": "校验通过，可以发布",
    "pl.validate.bad": "发现 {count} 处问题",
    "pl.publish": "发布",
    "pl.published": "第 {number} 版已发布",
    "pl.selected.title": "所选网格",
    "pl.selected.none": "未选择网格",
    "pl.selected.info": "{grid} · {households} 户 · {buildings} 栋 · 社区 {community}",
    "pl.selected.more": "另选：{grids}",
    "pl.print.grid": "打印公示图",
    "pl.grids.title": "网格户数",
    "pl.grids.rules": "（网格 {gmin}–{gmax} 户，微网格 {mmin}–{mmax} 户）",
    "pl.grids.warnings": "只看有警告的网格",
    "pl.col.grid": "网格",
    "pl.col.households": "户数",
    "pl.col.warnings": "提示",
    "pl.col.lock": "锁定",
    "pl.col.micro": "微网格",
    "pl.lock.title": "锁定后楼栋不能移入或移出",
    "pl.locked": "网格 {grid} 已锁定",
    "pl.unlocked": "网格 {grid} 已解锁",
    "pl.lockedSkip": "网格 {grid} 已锁定，未改动其楼栋",
    "pl.warn.out_of_range": "户数超范围",
    "pl.warn.disconnected": "不连通",
    "pl.warn.crosses_community": "跨社区",
    "pl.warn.microgrid_out_of_range": "微网格超范围",
    "pl.warn.empty": "空网格",
    "pl.micro.ok": "正常",
    "pl.micro.out": "超范围",
    "pl.conflict": "方案已被他人修改，已刷新到最新版本，请重新操作。",
    "pl.compare.title": "版本对比",
    "pl.compare": "对比",
    "pl.compare.clear": "清除",
    "pl.compare.info": "与第 {from} 版相比：{buildings} 栋楼变动，涉及 {grids} 个网格（地图上红框标出）",
    "pl.compare.none": "没有可对比的其他版本",
    "pl.export.title": "导出与打印",
    "pl.export": "导出",
    "pl.export.started": "正在准备下载…",
    "pl.export.done": "已下载 {name}",
    "pl.legend.selected": "所选网格",
    "pl.legend.grid": "网格边界",
    "pl.legend.micro": "微网格边界",
    "pl.legend.community": "社区边界",
    "pl.legend.changed": "对比变动楼栋",
  },
  en: {
    "pl.plan.title": "Grid plan",
    "pl.plan.label": "Plan",
    "pl.plan.none": "No grid plan yet: import a district and grid it first.",
    "pl.version.label": "Version",
    "pl.version.option": "Version {number} · {status}",
    "pl.version.info": "{status} · revision {revision} · {who} · {reason}",
    "pl.status.draft": "draft",
    "pl.status.published": "published",
    "pl.status.archived": "archived",
    "pl.readonly":
      "This version is published and read-only. To change it, make a draft from it: edits go to the draft and are saved at once; publish it once it validates.",
    "pl.draft.reason": "Why (e.g. after a site survey)",
    "pl.draft.make": "Make a draft",
    "pl.draft.copy": "Save as a new draft",
    "pl.draft.defaultReason": "grid adjustments on the web page",
    "pl.draft.made": "Draft version {number} made",
    "pl.draft.note": "Draft: every edit is saved at once; if someone else edits too, you are asked to reload.",
    "pl.tools.title": "Tools",
    "pl.tool.select": "Select",
    "pl.tool.select.hint": "Click a grid to select it; Shift+click adds a second one (merge, re-grid)",
    "pl.tool.brush": "Brush",
    "pl.tool.brush.hint": "Click or drag over buildings to paint them into the selected grid (B)",
    "pl.hint.select": "Click a grid on the map to select it; Shift+click to add. Keys: B brush, Esc select, Ctrl+Z undo, Ctrl+Y redo.",
    "pl.hint.brush": "Brush: click or drag over buildings to move them into grid {grid}.",
    "pl.hint.brushNone": "Brush: select the target grid first.",
    "pl.hint.readonly": "Read-only version: view, compare, export and print.",
    "pl.undo": "Undo",
    "pl.redo": "Redo",
    "pl.undo.hint": "Undo the last stroke (Ctrl+Z)",
    "pl.redo.hint": "Redo (Ctrl+Y)",
    "pl.undo.empty": "Nothing to undo",
    "pl.redo.empty": "Nothing to redo",
    "pl.split": "Split grid",
    "pl.splitLine": "Split along a line",
    "pl.hint.line": "Split grid {grid}: click points of a line across the grid, double-click or Enter to finish, Esc to cancel.",
    "pl.merge": "Merge grids",
    "pl.regrid": "Re-grid selection",
    "pl.need.one": "Select a grid first",
    "pl.need.two": "Select two adjacent grids (Shift+click the second)",
    "pl.split.done": "Grid {grid} split into {parts}",
    "pl.merge.done": "Merged {absorbed} into {grid}",
    "pl.regrid.started": "Re-gridding {count} grid(s)…",
    "pl.regrid.done": "Re-gridded: {grids}",
    "pl.regrid.failed": "Re-gridding failed: {message}",
    "pl.validate": "Validate",
    "pl.validate.ok": "Valid: ready to publish",
    "pl.validate.bad": "{count} problem(s) found",
    "pl.publish": "Publish",
    "pl.published": "Version {number} published",
    "pl.selected.title": "Selected grid",
    "pl.selected.none": "No grid selected",
    "pl.selected.info": "{grid} · {households} households · {buildings} buildings · community {community}",
    "pl.selected.more": "Also selected: {grids}",
    "pl.print.grid": "Print notice-board map",
    "pl.grids.title": "Households per grid",
    "pl.grids.rules": "(grids {gmin}–{gmax}, micro-grids {mmin}–{mmax})",
    "pl.grids.warnings": "Only grids with warnings",
    "pl.col.grid": "Grid",
    "pl.col.households": "Households",
    "pl.col.warnings": "Warnings",
    "pl.col.lock": "Lock",
    "pl.col.micro": "Micro-grid",
    "pl.lock.title": "A locked grid's buildings cannot move in or out",
    "pl.locked": "Grid {grid} locked",
    "pl.unlocked": "Grid {grid} unlocked",
    "pl.lockedSkip": "Grid {grid} is locked; its buildings were left alone",
    "pl.warn.out_of_range": "out of range",
    "pl.warn.disconnected": "not connected",
    "pl.warn.crosses_community": "crosses community",
    "pl.warn.microgrid_out_of_range": "micro-grid out of range",
    "pl.warn.empty": "empty",
    "pl.micro.ok": "ok",
    "pl.micro.out": "out of range",
    "pl.conflict": "Someone else changed this plan; reloaded the latest revision, please redo your edit.",
    "pl.compare.title": "Compare versions",
    "pl.compare": "Compare",
    "pl.compare.clear": "Clear",
    "pl.compare.info": "Against version {from}: {buildings} building(s) changed in {grids} grid(s) (outlined red)",
    "pl.compare.none": "No other version to compare with",
    "pl.export.title": "Export and print",
    "pl.export": "Export",
    "pl.export.started": "Preparing the download…",
    "pl.export.done": "Downloaded {name}",
    "pl.legend.selected": "selected grid",
    "pl.legend.grid": "grid boundary",
    "pl.legend.micro": "micro-grid boundary",
    "pl.legend.community": "community boundary",
    "pl.legend.changed": "changed buildings",
  },
});

const SOURCE = "plan";
const BUILDINGS = { source: SOURCE, sourceLayer: "buildings" };
const BRUSH_PX = 3;
const REFRESH_MS = 1200;
const JOB_POLL_MS = 500;
const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  plans: [],
  plan: null,
  version: null,
  revision: 0,
  rules: null,
  tallies: new Map(),
  selected: [],
  tool: "select",
  undo: [],
  redo: [],
  stroke: null,
  queue: Promise.resolve(),
  refreshTimer: 0,
  changedGrids: [],
  line: [],
  toWgs84: (point) => point, // on a GCJ-02 basemap: the exact inverse (basemap.js)
  withCrs: (url) => url, // on a GCJ-02 basemap: tiles shifted for display (basemap.js)
};
let map = null;

// ---- small helpers ----

/** A stable colour per grid code (a hash of the code → hue, three lightness steps). */
export function gridColour(code) {
  let hash = 0x811c9dc5; // FNV-1a, then a murmur finaliser so neighbouring codes get far-apart hues
  for (const ch of String(code)) hash = Math.imul(hash ^ ch.charCodeAt(0), 0x01000193);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  hash = (hash ^ (hash >>> 16)) >>> 0;
  const hue = hash % 360;
  const light = 45 + ((hash >>> 9) % 3) * 9;
  return `hsl(${hue}, 62%, ${light}%)`;
}

function colourExpression(input) {
  const codes = [...state.tallies.keys()];
  if (!codes.length) return "#94a3b8";
  return ["match", input, ...codes.flatMap((code) => [code, gridColour(code)]), "#94a3b8"];
}

const effectiveGrid = ["coalesce", ["feature-state", "grid"], ["get", "grid_code"]];

function base() {
  return `/api/v1/plans/${state.plan.id}/versions/${state.version.number}`;
}

function editable() {
  return state.version?.status === "draft";
}

/** Run edits one after another, each on the revision the previous one left. */
function enqueue(fn) {
  const run = state.queue.then(fn, fn);
  state.queue = run.catch(() => {});
  return run;
}

// ---- the map ----

function addPlanLayers(tilejson) {
  map.addSource(SOURCE, {
    type: "vector",
    tiles: tilejson.tiles,
    minzoom: tilejson.minzoom ?? 0,
    maxzoom: tilejson.maxzoom ?? 16,
    bounds: tilejson.bounds,
  });
  const layer = (id, type, sourceLayer, paint, extra = {}) =>
    map.addLayer({ id, type, source: SOURCE, "source-layer": sourceLayer, paint, ...extra });
  layer("grids-fill", "fill", "grids", { "fill-color": colourExpression(["get", "grid_code"]), "fill-opacity": 0.12 });
  layer("buildings-fill", "fill", "buildings", {
    "fill-color": colourExpression(effectiveGrid),
    "fill-opacity": 0.85,
    "fill-outline-color": "#334155",
  });
  layer("microgrids-line", "line", "microgrids", { "line-color": "#64748b", "line-width": 1, "line-dasharray": [2, 2] }, { minzoom: 14 });
  layer("grids-line", "line", "grids", { "line-color": "#1e293b", "line-width": 1.6 });
  layer("communities-line", "line", "communities", { "line-color": "#9a3412", "line-width": 3, "line-opacity": 0.8 });
  layer("grids-changed", "line", "grids", { "line-color": "#f97316", "line-width": 3 }, { filter: inList("grid_code", []) });
  layer("buildings-changed", "line", "buildings", { "line-color": "#dc2626", "line-width": 2.5 }, { filter: inList("building_id", []) });
  layer("grid-selected", "line", "grids", { "line-color": "#1d4ed8", "line-width": 4 }, { filter: inList("grid_code", []) });
  map.addSource("split-line", { type: "geojson", data: lineData([]) });
  map.addLayer({ id: "split-line", type: "line", source: "split-line", paint: { "line-color": "#db2777", "line-width": 3, "line-dasharray": [3, 2] } });
}

function lineData(points) {
  return { type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: points.length > 1 ? points : [] } };
}

function inList(property, values) {
  return ["in", ["get", property], ["literal", values]];
}

function recolour() {
  map.setPaintProperty("buildings-fill", "fill-color", colourExpression(effectiveGrid));
  map.setPaintProperty("grids-fill", "fill-color", colourExpression(["get", "grid_code"]));
}

async function tileJson() {
  return api(state.withCrs(`/api/v1/tiles/plans/${state.plan.id}/versions/${state.version.number}.json`));
}

/** New tiles for the current revision (the TileJSON names it), without touching feature-state. */
const refreshTiles = guarded(async () => {
  clearTimeout(state.refreshTimer);
  const json = await tileJson();
  map.getSource(SOURCE)?.setTiles(json.tiles);
});

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refreshTiles, REFRESH_MS);
}

async function showVersionOnMap({ fit }) {
  const json = await tileJson();
  if (map.getSource(SOURCE)) {
    map.removeFeatureState(BUILDINGS);
    map.getSource(SOURCE).setTiles(json.tiles);
    recolour();
  } else {
    addPlanLayers(json);
  }
  if (fit && json.bounds) fitBounds(map, json.bounds);
  showSelection();
}

async function addBasemapIfAny() {
  try {
    const { addBasemap, toWgs84, withCrs } = await import("./basemap.js");
    state.toWgs84 = (lngLat) => toWgs84(lngLat, map);
    state.withCrs = (url) => withCrs(url, map);
    const basemap = await addBasemap(map, { districtId: state.plan.district_id, onChange: refreshTiles });
    if (basemap.crs() !== "wgs84") await refreshTiles();
  } catch (error) {
    console.warn("no basemap", error);
  }
}

// ---- plans and versions ----

async function loadPlans(wanted = {}) {
  state.plans = await api("/api/v1/plans");
  const select = $("plan-select");
  select.replaceChildren(...state.plans.map((p) => new Option(`${p.id} · ${p.name}`, p.id)));
  if (!state.plans.length) {
    $("version-info").textContent = t("pl.plan.none");
    return false;
  }
  const plan = state.plans.find((p) => p.id === Number(wanted.plan)) ?? state.plan ?? state.plans[0];
  state.plan = state.plans.find((p) => p.id === plan.id);
  select.value = state.plan.id;
  fillVersions(wanted.version);
  return true;
}

function defaultVersion(versions) {
  const drafts = versions.filter((v) => v.status === "draft");
  return drafts.at(-1) ?? versions.find((v) => v.status === "published") ?? versions.at(-1);
}

function fillVersions(wantedNumber) {
  const versions = state.plan.versions;
  const version = versions.find((v) => v.number === Number(wantedNumber)) ?? defaultVersion(versions);
  state.version = version;
  $("version-select").replaceChildren(
    ...versions.map((v) => new Option(t("pl.version.option", { number: v.number, status: t(`pl.status.${v.status}`) }), v.number)),
  );
  $("version-select").value = version.number;
  const others = versions.filter((v) => v.number !== version.number);
  $("compare-version").replaceChildren(
    ...others.map((v) => new Option(t("pl.version.option", { number: v.number, status: t(`pl.status.${v.status}`) }), v.number)),
  );
  history.replaceState(null, "", `/planner?plan=${state.plan.id}&version=${version.number}`);
}

async function openVersion({ fit = false } = {}) {
  state.selected = [];
  state.undo = [];
  state.redo = [];
  clearCompare();
  await loadTallies();
  await showVersionOnMap({ fit });
  showVersionInfo();
}

function showVersionInfo() {
  const v = state.version;
  $("version-info").textContent = t("pl.version.info", {
    status: t(`pl.status.${v.status}`),
    revision: state.revision,
    who: v.created_by,
    reason: v.reason || "—",
  });
  $("readonly-note").hidden = editable();
  $("draft-note").hidden = !editable();
  $("make-draft").textContent = t(editable() ? "pl.draft.copy" : "pl.draft.make");
  $("make-draft").classList.toggle("primary", !editable());
  for (const id of ["tool-brush", "undo", "redo", "split", "split-line", "merge", "regrid", "publish"]) {
    $(id).disabled = !editable();
  }
  if (!editable()) setTool("select");
  showHint();
}

async function loadTallies() {
  const body = await api(`${base()}/tallies`);
  state.revision = body.revision;
  state.rules = body.rules;
  state.tallies = new Map(body.grids.map((g) => [g.grid_code, g]));
  $("rules").textContent = t("pl.grids.rules", {
    gmin: body.rules.grid_min,
    gmax: body.rules.grid_max,
    mmin: body.rules.micro_min,
    mmax: body.rules.micro_max,
  });
  renderTable();
}

// ---- the side panel ----

function badge(warning) {
  const kind = warning === "out_of_range" || warning === "empty" ? "error" : "warn";
  return el("span", { className: `badge ${kind}`, dataset: { warning } }, t(`pl.warn.${warning}`));
}

function gridRow(tally, changed) {
  const lock = el("input", {
    type: "checkbox",
    checked: tally.locked,
    disabled: !editable(),
    title: t("pl.lock.title"),
    dataset: { testid: `lock-${tally.grid_code}` },
    onchange: (event) => toggleLock(tally.grid_code, event.target.checked, event.target),
    onclick: (event) => event.stopPropagation(),
  });
  const selectedAt = state.selected.indexOf(tally.grid_code);
  const classes = [selectedAt === 0 ? "selected" : "", selectedAt > 0 ? "secondary" : "", changed ? "changed" : ""];
  return el(
    "tr",
    {
      className: classes.join(" ").trim(),
      dataset: { grid: tally.grid_code, testid: `grid-row-${tally.grid_code}` },
      onclick: (event) => selectGrid(tally.grid_code, event.shiftKey),
    },
    el("td", { className: "code" }, el("span", { className: "swatch", style: `background:${gridColour(tally.grid_code)}` }), tally.grid_code),
    el("td", { className: "hh", dataset: { testid: `hh-${tally.grid_code}` } }, String(tally.households)),
    el("td", { className: "warnings" }, ...tally.warnings.map(badge)),
    el("td", {}, lock),
  );
}

function renderTable(changed = new Set()) {
  const onlyWarnings = $("only-warnings").checked;
  const rows = [...state.tallies.values()]
    .filter((g) => !onlyWarnings || g.warnings.length || state.selected.includes(g.grid_code))
    .map((g) => gridRow(g, changed.has(g.grid_code)));
  $("grid-table").tBodies[0].replaceChildren(...rows);
  showSelection();
}

function showSelection() {
  const [code, ...more] = state.selected;
  const tally = state.tallies.get(code);
  const info = $("selected-info");
  info.replaceChildren();
  $("micro-table").replaceChildren();
  if (map?.getLayer("grid-selected")) map.setFilter("grid-selected", inList("grid_code", state.selected));
  showHint();
  if (!tally) {
    info.textContent = t("pl.selected.none");
    return;
  }
  info.append(
    t("pl.selected.info", { grid: code, households: tally.households, buildings: tally.buildings, community: tally.community_code }),
    " ",
    ...tally.warnings.map(badge),
  );
  if (more.length) info.append(el("br"), t("pl.selected.more", { grids: more.join(", ") }));
  $("micro-table").replaceChildren(
    el("tr", {}, el("th", {}, t("pl.col.micro")), el("th", {}, t("pl.col.households")), el("th", {}, "")),
    ...tally.microgrids.map((m) =>
      el(
        "tr",
        { dataset: { testid: `micro-${m.microgrid_code}` } },
        el("td", { className: "code" }, m.microgrid_code),
        el("td", {}, String(m.households)),
        el("td", {}, el("span", { className: `badge ${m.in_range ? "ok" : "warn"}` }, t(m.in_range ? "pl.micro.ok" : "pl.micro.out"))),
      ),
    ),
  );
}

function selectGrid(code, add = false) {
  if (!code) state.selected = [];
  else if (add) {
    state.selected = state.selected.includes(code) ? state.selected.filter((c) => c !== code) : [...state.selected, code];
  } else state.selected = [code];
  renderTable();
}

function showHint() {
  const hint = $("tool-hint");
  if (!editable()) hint.textContent = t("pl.hint.readonly");
  else if (state.tool === "line") hint.textContent = t("pl.hint.line", { grid: state.selected[0] ?? "—" });
  else if (state.tool === "brush") {
    hint.textContent = state.selected[0] ? t("pl.hint.brush", { grid: state.selected[0] }) : t("pl.hint.brushNone");
  } else hint.textContent = t("pl.hint.select");
}

function setTool(tool) {
  state.tool = tool;
  state.line = [];
  map?.getSource("split-line")?.setData(lineData([]));
  if (map) {
    if (tool === "line") map.doubleClickZoom.disable();
    else map.doubleClickZoom.enable();
  }
  $("tool-select").setAttribute("aria-pressed", String(tool === "select"));
  $("tool-brush").setAttribute("aria-pressed", String(tool === "brush"));
  $("map").classList.toggle("brush", tool === "brush");
  if (map) {
    if (tool === "brush") map.dragPan.disable();
    else map.dragPan.enable();
  }
  showHint();
}

function applyTallies(grids, removed = []) {
  for (const code of removed) state.tallies.delete(code);
  const isNew = grids.some((g) => !state.tallies.has(g.grid_code));
  for (const grid of grids) state.tallies.set(grid.grid_code, grid);
  if (isNew || removed.length) {
    state.tallies = new Map([...state.tallies.entries()].sort(([a], [b]) => a.localeCompare(b)));
    recolour();
  }
  state.selected = state.selected.filter((c) => state.tallies.has(c));
  renderTable(new Set(grids.map((g) => g.grid_code)));
}

// ---- edits ----

/** Handle a refused edit: show why; on a stale revision reload the tallies and tiles. */
async function refused(error) {
  if (error instanceof ApiError && error.status === 409 && error.where?.current_revision !== undefined) {
    toast(t("pl.conflict"), "warn", 8000);
    state.undo = [];
    state.redo = [];
    await loadTallies();
    await refreshTiles();
    showVersionInfo();
    return;
  }
  showError(error);
}

async function postMoves(moves) {
  const body = await api(`${base()}/moves`, { method: "POST", json: { revision: state.revision, moves } });
  state.revision = body.revision;
  applyTallies(body.grids);
  showVersionInfo();
  scheduleRefresh();
  return body;
}

function paintFeatures(features, grid) {
  for (const f of features) map.setFeatureState({ ...BUILDINGS, id: f.id }, { grid });
}

function restoreFeatures(features) {
  for (const f of features) {
    if (f.prior === undefined || f.prior === null) map.removeFeatureState({ ...BUILDINGS, id: f.id }, "grid");
    else map.setFeatureState({ ...BUILDINGS, id: f.id }, { grid: f.prior });
  }
}

function beginStroke() {
  const target = state.selected[0];
  if (!editable() || !state.tallies.has(target)) {
    showHint();
    return false;
  }
  state.stroke = { target, features: new Map(), skippedLocked: new Set() };
  return true;
}

function paintAt(point) {
  const stroke = state.stroke;
  const box = [
    [point.x - BRUSH_PX, point.y - BRUSH_PX],
    [point.x + BRUSH_PX, point.y + BRUSH_PX],
  ];
  const targetTally = state.tallies.get(stroke.target);
  for (const f of map.queryRenderedFeatures(box, { layers: ["buildings-fill"] })) {
    if (f.id === undefined || stroke.features.has(f.id)) continue;
    const prior = map.getFeatureState({ ...BUILDINGS, id: f.id }).grid;
    const from = prior ?? f.properties.grid_code;
    if (from === stroke.target || f.properties.community_code !== targetTally?.community_code) continue;
    if (state.tallies.get(from)?.locked || targetTally.locked) {
      stroke.skippedLocked.add(targetTally.locked ? stroke.target : from);
      continue;
    }
    stroke.features.set(f.id, { id: f.id, buildingId: f.properties.building_id, prior, from });
    map.setFeatureState({ ...BUILDINGS, id: f.id }, { grid: stroke.target });
  }
}

function endStroke() {
  const stroke = state.stroke;
  state.stroke = null;
  if (!stroke) return;
  for (const grid of stroke.skippedLocked) toast(t("pl.lockedSkip", { grid }), "warn");
  const features = [...stroke.features.values()];
  if (!features.length) return;
  const buildings = [...new Set(features.map((f) => f.buildingId))];
  const moves = buildings.map((b) => ({ building_id: b, grid_code: stroke.target }));
  enqueue(async () => {
    try {
      const body = await postMoves(moves);
      const entry = {
        forward: body.moved.map((m) => ({ unit_id: m.unit_id, microgrid_code: m.to_microgrid })),
        inverse: body.moved.map((m) => ({ unit_id: m.unit_id, microgrid_code: m.from_microgrid })),
        features: features.map((f) => ({ id: f.id, from: f.from, to: stroke.target })),
      };
      if (entry.forward.length) {
        state.undo.push(entry);
        state.redo = [];
      }
    } catch (error) {
      restoreFeatures(features);
      await refused(error);
    }
  });
}

function replay(fromStack, toStack, direction) {
  return enqueue(async () => {
    const entry = fromStack.pop();
    if (!entry) {
      toast(t(direction === "undo" ? "pl.undo.empty" : "pl.redo.empty"));
      return;
    }
    const moves = direction === "undo" ? entry.inverse : entry.forward;
    try {
      await postMoves(moves);
      for (const f of entry.features) map.setFeatureState({ ...BUILDINGS, id: f.id }, { grid: direction === "undo" ? f.from : f.to });
      toStack.push(entry);
    } catch (error) {
      fromStack.push(entry);
      await refused(error);
    }
  });
}

const undo = () => editable() && replay(state.undo, state.redo, "undo");
const redo = () => editable() && replay(state.redo, state.undo, "redo");

/** After split, merge or re-grid: unit ids and micro-grid codes changed, so moves cannot be undone past it. */
function structuralChange(body, selected) {
  state.revision = body.revision;
  state.selected = selected;
  state.undo = [];
  state.redo = [];
  map.removeFeatureState(BUILDINGS);
  applyTallies(body.grids, body.removed);
  showVersionInfo();
  return refreshTiles();
}

function toggleLock(code, locked, box) {
  enqueue(async () => {
    try {
      const body = await api(`${base()}/grids/${code}/lock`, { method: "POST", json: { revision: state.revision, locked } });
      state.revision = body.revision;
      state.tallies.get(code).locked = locked;
      toast(t(locked ? "pl.locked" : "pl.unlocked", { grid: code }), "ok");
      renderTable();
      showVersionInfo();
    } catch (error) {
      box.checked = !locked;
      await refused(error);
    }
  });
}

function startLine() {
  if (!state.selected[0]) return toast(t("pl.need.one"), "warn");
  return setTool("line");
}

function finishLine() {
  const line = state.line.map((point) => state.toWgs84(point));
  setTool("select");
  if (line.length >= 2) split(line);
}

function split(line = null) {
  const [code] = state.selected;
  if (!code) return toast(t("pl.need.one"), "warn");
  return enqueue(async () => {
    try {
      const json = line ? { revision: state.revision, line } : { revision: state.revision };
      const body = await api(`${base()}/grids/${code}/split`, { method: "POST", json });
      const parts = body.grids.map((g) => g.grid_code);
      await structuralChange(body, parts);
      toast(t("pl.split.done", { grid: code, parts: parts.join(", ") }), "ok");
    } catch (error) {
      await refused(error);
    }
  });
}

function merge() {
  if (state.selected.length !== 2) return toast(t("pl.need.two"), "warn");
  const [keep, absorb] = state.selected;
  return enqueue(async () => {
    try {
      const json = { revision: state.revision, grid_codes: [keep, absorb] };
      await structuralChange(await api(`${base()}/merge`, { method: "POST", json }), [keep]);
      toast(t("pl.merge.done", { grid: keep, absorbed: absorb }), "ok");
    } catch (error) {
      await refused(error);
    }
  });
}

function regrid() {
  if (!state.selected.length) return toast(t("pl.need.one"), "warn");
  const codes = [...state.selected];
  return enqueue(async () => {
    try {
      const job = await api(`${base()}/regrid`, { method: "POST", json: { revision: state.revision, grid_codes: codes } });
      toast(t("pl.regrid.started", { count: codes.length }));
      const done = await followJob(job.id);
      if (done.status !== "done") throw new Error(t("pl.regrid.failed", { message: done.message }));
      await loadTallies();
      await structuralChange({ revision: done.result.revision, grids: [], removed: [] }, done.result.grids);
      recolour();
      renderTable(new Set(done.result.grids));
      toast(t("pl.regrid.done", { grids: done.result.grids.join(", ") }), "ok");
    } catch (error) {
      await refused(error);
    }
  });
}

async function followJob(id) {
  const box = $("job");
  box.hidden = false;
  try {
    for (;;) {
      const job = await api(`/api/v1/jobs/${id}`);
      $("job-progress").value = job.progress;
      $("job-message").textContent = job.message;
      if (job.status === "done" || job.status === "failed") return job;
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    }
  } finally {
    box.hidden = true;
  }
}

async function validate() {
  const report = await api(`${base()}/validation`);
  const list = $("violations");
  list.replaceChildren(
    ...report.violations.slice(0, 50).map((v) => el("li", { dataset: { code: v.code ?? "" } }, `${v.code ?? ""} ${v.message}`)),
  );
  toast(report.valid ? t("pl.validate.ok") : t("pl.validate.bad", { count: report.violations.length }), report.valid ? "ok" : "warn");
}

async function publish() {
  await state.queue;
  const version = await api(`${base()}/publish`, { method: "POST", json: { revision: state.revision } });
  toast(t("pl.published", { number: version.number }), "ok");
  await loadPlans({ plan: state.plan.id, version: version.number });
  await openVersion();
}

async function makeDraft() {
  const reason = $("draft-reason").value.trim() || t("pl.draft.defaultReason");
  const json = { from_version: state.version.number, reason };
  const version = await api(`/api/v1/plans/${state.plan.id}/versions`, { method: "POST", json });
  toast(t("pl.draft.made", { number: version.number }), "ok");
  await loadPlans({ plan: state.plan.id, version: version.number });
  await openVersion();
}

// ---- compare, export, print ----

function clearCompare() {
  state.changedGrids = [];
  $("compare-info").textContent = "";
  if (map?.getLayer("buildings-changed")) {
    map.setFilter("buildings-changed", inList("building_id", []));
    map.setFilter("grids-changed", inList("grid_code", []));
  }
}

async function compare() {
  const other = Number($("compare-version").value);
  if (!other) return toast(t("pl.compare.none"), "warn");
  const params = new URLSearchParams({ from_version: other, to_version: state.version.number });
  const diff = await api(`/api/v1/plans/${state.plan.id}/diff?${params}`);
  map.setFilter("buildings-changed", inList("building_id", diff.buildings_changed));
  map.setFilter("grids-changed", inList("grid_code", diff.grids_changed));
  state.changedGrids = diff.grids_changed;
  $("compare-info").textContent = t("pl.compare.info", {
    from: other,
    buildings: diff.buildings_changed.length,
    grids: diff.grids_changed.length,
  });
  return diff;
}

async function exportVersion() {
  toast(t("pl.export.started"));
  const name = await download(`${base()}/export?format=${$("export-format").value}`);
  toast(t("pl.export.done", { name }), "ok");
}

async function printGrid() {
  const [code] = state.selected;
  if (!code) return toast(t("pl.need.one"), "warn");
  toast(t("pl.export.started"));
  const name = await download(`${base()}/grids/${code}/print?format=pdf`);
  return toast(t("pl.export.done", { name }), "ok");
}

// ---- wiring ----

function onMapClick(event) {
  if (state.tool === "line") {
    state.line.push([event.lngLat.lng, event.lngLat.lat]);
    map.getSource("split-line").setData(lineData(state.line));
    return;
  }
  if (state.tool !== "select") return;
  const box = [
    [event.point.x - BRUSH_PX, event.point.y - BRUSH_PX],
    [event.point.x + BRUSH_PX, event.point.y + BRUSH_PX],
  ];
  const [building] = map.queryRenderedFeatures(box, { layers: ["buildings-fill"] });
  const code = building
    ? (map.getFeatureState({ ...BUILDINGS, id: building.id }).grid ?? building.properties.grid_code)
    : map.queryRenderedFeatures(event.point, { layers: ["grids-fill"] })[0]?.properties.grid_code;
  selectGrid(code, event.originalEvent.shiftKey);
}

function wireMap() {
  map.on("click", onMapClick);
  map.on("dblclick", () => state.tool === "line" && finishLine());
  map.on("mousedown", (event) => {
    if (state.tool !== "brush" || !beginStroke()) return;
    event.preventDefault();
    paintAt(event.point);
  });
  map.on("mousemove", (event) => state.stroke && paintAt(event.point));
  map.on("mouseup", endStroke);
  window.addEventListener("mouseup", endStroke);
}

function onKey(event) {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
  const key = event.key.toLowerCase();
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && key === "z" && !event.shiftKey) undo();
  else if (ctrl && (key === "y" || (key === "z" && event.shiftKey))) redo();
  else if (!ctrl && key === "b" && editable()) setTool("brush");
  else if (!ctrl && key === "enter" && state.tool === "line") finishLine();
  else if (!ctrl && (key === "escape" || key === "v")) setTool("select");
  else return;
  event.preventDefault();
}

function wirePanel() {
  const on = (id, fn, type = "click") => $(id).addEventListener(type, guarded(fn));
  on("tool-select", () => setTool("select"));
  on("tool-brush", () => setTool("brush"));
  on("undo", undo);
  on("redo", redo);
  on("split", () => split());
  on("split-line", startLine);
  on("merge", merge);
  on("regrid", regrid);
  on("validate", validate);
  on("publish", publish);
  on("make-draft", makeDraft);
  on("compare", compare);
  on("compare-clear", clearCompare);
  on("export", exportVersion);
  on("print-grid", printGrid);
  on("only-warnings", () => renderTable(), "change");
  on("plan-select", async () => {
    state.plan = state.plans.find((p) => p.id === Number($("plan-select").value));
    fillVersions();
    await openVersion({ fit: true });
  }, "change");
  on("version-select", async () => {
    fillVersions($("version-select").value);
    await openVersion();
  }, "change");
  document.addEventListener("keydown", onKey);
  document.addEventListener("skygrid:lang", () => {
    renderLegend();
    if (!state.version) return;
    fillVersions(state.version.number);
    showVersionInfo();
    renderTable();
  });
}

function renderLegend() {
  const row = (colour, key, dashed = false) =>
    el("div", {}, el("i", { style: `border-color:${colour};${dashed ? "border-top-style:dashed" : ""}` }), t(key));
  $("legend").replaceChildren(
    row("#1d4ed8", "pl.legend.selected"),
    row("#1e293b", "pl.legend.grid"),
    row("#64748b", "pl.legend.micro", true),
    row("#9a3412", "pl.legend.community"),
    row("#dc2626", "pl.legend.changed"),
  );
}

async function main() {
  state.user = await startPage("planner");
  wirePanel();
  renderLegend();
  const params = new URLSearchParams(location.search);
  if (!(await loadPlans({ plan: params.get("plan"), version: params.get("version") }))) return;
  map = createMap("map", { zoom: 14 });
  window.skygridPlanner = { map, state }; // for the browser tests and the console
  map.addControl(new window.maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new window.maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  await new Promise((resolve) => map.once("load", resolve));
  wireMap();
  await openVersion({ fit: true });
  await addBasemapIfAny();
  setTool("select");
}

main().catch(showError);
