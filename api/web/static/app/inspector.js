// The inspector's page. Review: the detector's flags one per screen (evidence crop, full frame with the box, a
// map inset with the grid), decided from the keyboard — A accept, R reject, D duplicate, E category, S skip,
// Shift+A the whole frame — advancing by itself. Case board: open cases by level with live countdowns to
// their time limits, overdue on top, and the actions the role may take. Dashboard: per-grid statistics,
// hand-drawn SVG charts, and a re-check drone mission for the open cases of the selected grids.
import { addBasemap } from "./basemap.js";
import {
  addMessages,
  api,
  ApiError,
  applyI18n,
  createMap,
  download,
  el,
  guarded,
  lang,
  showError,
  startPage,
  t,
  toast,
} from "./common.js";

const CATEGORY_COLOURS = { "0101": "#b91c1c", "0102": "#65a30d", "0505": "#2563eb", "0506": "#7c3aed", "0507": "#d97706" };
const LEVELS = ["compound", "community", "street"];
const FIELD_ROLES = ["grid_worker", "handling_unit"];
const BOARD_REFRESH_MS = 30_000;
const QUEUE_PAGE = 50;
const SVG_NS = "http://www.w3.org/2000/svg";
const EMPTY = { type: "FeatureCollection", features: [] };
// The closed loop's actions (api/workflow.py): the states each starts from and the roles that may take it.
const ACTIONS = {
  triage: { from: ["reported"], roles: ["inspector"] },
  register: { from: ["triaged"], roles: ["inspector"] },
  reject: { from: ["triaged"], roles: ["inspector"] },
  mark_duplicate: { from: ["triaged"], roles: ["inspector"] },
  dispatch: { from: ["registered"], roles: ["inspector"] },
  start: { from: ["dispatched"], roles: FIELD_ROLES, assignee: true },
  handle: { from: ["in_progress"], roles: FIELD_ROLES, assignee: true },
  verify: { from: ["handled"], roles: ["inspector"] },
  close: { from: ["verifying"], roles: ["inspector"] },
  fail_check: { from: ["verifying"], roles: ["inspector"] },
  escalate: { from: ["dispatched", "in_progress"], roles: ["inspector", ...FIELD_ROLES] },
};

addMessages({
  zh: {
    "insp.tab.review": "线索审核",
    "insp.tab.board": "案件看板",
    "insp.tab.dashboard": "网格统计",
    "insp.order": "排序",
    "insp.order.oldest": "最早优先",
    "insp.order.severity": "最严重优先",
    "insp.exportNegatives": "导出已驳回样本（训练负样本）",
    "insp.empty": "审核队列已清空，没有待审核的线索。",
    "insp.progress": "第 {n} / {m} 条",
    "insp.progress.none": "0 条待审核",
    "insp.evidence": "证据截图",
    "insp.frame": "完整画面",
    "insp.noImage": "无图像",
    "insp.key.accept": "确认立案",
    "insp.key.reject": "驳回",
    "insp.key.duplicate": "标记重复",
    "insp.key.category": "修改类别",
    "insp.key.skip": "跳过",
    "insp.key.acceptFrame": "确认本画面全部",
    "insp.legend": "键盘操作：A 确认 · R 驳回 · D 重复（1–5 选择）· E 类别（数字选择）· S 跳过 · Shift+A 本画面全部确认 · Esc 取消",
    "insp.fact.id": "线索编号",
    "insp.fact.score": "置信度",
    "insp.fact.rule": "判定规则",
    "insp.fact.sightings": "目击次数",
    "insp.fact.grid": "网格",
    "insp.fact.microgrid": "微网格",
    "insp.fact.class": "检测类别",
    "insp.fact.severity": "严重程度",
    "insp.fact.seen": "发现时间",
    "insp.fact.error": "定位误差",
    "insp.fact.metres": "{m} 米",
    "insp.dup.title": "选择重复对象（按 1–{n}，Esc 取消）",
    "insp.dup.none": "250 米内没有同类的未结案件或待审线索。",
    "insp.dup.case": "案件 #{id}",
    "insp.dup.flag": "线索 #{id}",
    "insp.cat.title": "选择新类别（按数字，Esc 取消）",
    "insp.done.accept": "已立案：案件 #{case}",
    "insp.done.accept_frame": "本画面 {n} 条线索已全部立案",
    "insp.done.reject": "已驳回，作为训练负样本保留",
    "insp.done.duplicate": "已标记为重复",
    "insp.done.recategorize": "类别已改为 {name}",
    "insp.conflict": "该线索已被他人审核，已跳到下一条",
    "insp.refresh": "刷新",
    "insp.board.hint": "按处置层级分列；超时案件置顶并标红，倒计时实时更新。",
    "insp.col.undispatched": "待派遣",
    "insp.col.compound": "小区",
    "insp.col.community": "社区",
    "insp.col.street": "街道",
    "insp.col.empty": "暂无案件",
    "insp.left": "剩余 {time}",
    "insp.overdue": "超时 {time}",
    "insp.noLimit": "无时限",
    "insp.detail.title": "案件 #{id}",
    "insp.detail.events": "处置记录",
    "insp.detail.actions": "可执行操作",
    "insp.detail.none": "当前状态下您没有可执行的操作。",
    "insp.detail.state": "状态",
    "insp.detail.level": "层级",
    "insp.detail.priority": "优先级",
    "insp.detail.due": "时限",
    "insp.detail.source": "来源",
    "insp.detail.description": "描述",
    "insp.detail.assignee": "承办人",
    "insp.detail.level.pick": "处置层级",
    "insp.detail.staff.pick": "承办人员 / 单位",
    "insp.detail.note": "说明",
    "insp.detail.duplicateOf": "重复于案件",
    "insp.detail.submit": "提交",
    "insp.detail.done": "案件 #{id}：{action}完成",
    "insp.priority.normal": "一般",
    "insp.priority.urgent": "紧急",
    "insp.source.machine": "无人机识别",
    "insp.source.person": "人工上报",
    "insp.source.open311": "市民平台",
    "insp.source.flag": "无人机识别",
    "insp.grid": "网格",
    "insp.selectAll": "全选",
    "insp.stat.cases": "案件",
    "insp.stat.open": "未结",
    "insp.stat.overdue": "超时",
    "insp.stat.closed": "结案",
    "insp.stat.onTime": "按时率",
    "insp.stat.hours": "平均结案（小时）",
    "insp.chart.category": "按类别的案件数",
    "insp.chart.onTime": "按时结案率",
    "insp.chart.hours": "平均结案时长（小时）",
    "insp.chart.trend": "每周趋势（立案 / 结案）",
    "insp.chart.filed": "立案",
    "insp.chart.closed": "结案",
    "insp.chart.empty": "暂无数据",
    "insp.recheck": "为所选网格的未结案件生成复查航线",
    "insp.recheck.pick": "请先在表格中勾选网格。",
    "insp.recheck.done": "复查航线 #{id}：{cases} 个案件，{sorties} 个架次，{waypoints} 个航点",
    "insp.recheck.download": "下载 {format}",
    "state.reported": "已上报",
    "state.triaged": "已受理",
    "state.registered": "已立案",
    "state.rejected": "不予立案",
    "state.duplicate": "重复",
    "state.dispatched": "已派遣",
    "state.in_progress": "处置中",
    "state.handled": "已处置",
    "state.verifying": "核查中",
    "state.closed": "已结案",
    "level.compound": "小区",
    "level.community": "社区",
    "level.street": "街道",
    "action.report": "上报",
    "action.triage": "受理",
    "action.register": "立案",
    "action.reject": "不予立案",
    "action.mark_duplicate": "标记重复",
    "action.dispatch": "派遣",
    "action.start": "开始处置",
    "action.handle": "处置完成",
    "action.verify": "开始核查",
    "action.close": "核查通过，结案",
    "action.fail_check": "核查不通过，退回",
    "action.escalate": "上报升级（吹哨）",
  },
  en: {
    "insp.tab.review": "Review",
    "insp.tab.board": "Case board",
    "insp.tab.dashboard": "Dashboard",
    "insp.order": "Order",
    "insp.order.oldest": "Oldest first",
    "insp.order.severity": "Most severe first",
    "insp.exportNegatives": "Export rejected flags (training negatives)",
    "insp.empty": "The review queue is empty: no flags to review.",
    "insp.progress": "{n} of {m}",
    "insp.progress.none": "nothing to review",
    "insp.evidence": "Evidence crop",
    "insp.frame": "Full frame",
    "insp.noImage": "No image",
    "insp.key.accept": "Accept",
    "insp.key.reject": "Reject",
    "insp.key.duplicate": "Duplicate",
    "insp.key.category": "Category",
    "insp.key.skip": "Skip",
    "insp.key.acceptFrame": "Accept whole frame",
    "insp.legend": "Keys: A accept · R reject · D duplicate (pick 1–5) · E category (pick a digit) · S skip · Shift+A accept the whole frame · Esc cancel",
    "insp.fact.id": "Flag",
    "insp.fact.score": "Confidence",
    "insp.fact.rule": "Rule",
    "insp.fact.sightings": "Sightings",
    "insp.fact.grid": "Grid",
    "insp.fact.microgrid": "Micro-grid",
    "insp.fact.class": "Detected class",
    "insp.fact.severity": "Severity",
    "insp.fact.seen": "Seen",
    "insp.fact.error": "Position error",
    "insp.fact.metres": "{m} m",
    "insp.dup.title": "Duplicate of (press 1–{n}, Esc to cancel)",
    "insp.dup.none": "No open case or new flag of this category within 250 m.",
    "insp.dup.case": "case #{id}",
    "insp.dup.flag": "flag #{id}",
    "insp.cat.title": "New category (press its digit, Esc to cancel)",
    "insp.done.accept": "Accepted: case #{case}",
    "insp.done.accept_frame": "All {n} flags of this frame accepted",
    "insp.done.reject": "Rejected and kept as a training negative",
    "insp.done.duplicate": "Marked as a duplicate",
    "insp.done.recategorize": "Category changed to {name}",
    "insp.conflict": "Someone else reviewed this flag; moved on to the next",
    "insp.refresh": "Refresh",
    "insp.board.hint": "Columns by level; overdue cases on top in red; countdowns run live.",
    "insp.col.undispatched": "To dispatch",
    "insp.col.compound": "Compound",
    "insp.col.community": "Community",
    "insp.col.street": "Street office",
    "insp.col.empty": "No cases",
    "insp.left": "{time} left",
    "insp.overdue": "overdue {time}",
    "insp.noLimit": "no time limit",
    "insp.detail.title": "Case #{id}",
    "insp.detail.events": "History",
    "insp.detail.actions": "Actions",
    "insp.detail.none": "There is nothing you can do on this case in its current state.",
    "insp.detail.state": "State",
    "insp.detail.level": "Level",
    "insp.detail.priority": "Priority",
    "insp.detail.due": "Due",
    "insp.detail.source": "Source",
    "insp.detail.description": "Description",
    "insp.detail.assignee": "Assignee",
    "insp.detail.level.pick": "Level",
    "insp.detail.staff.pick": "Grid worker / handling unit",
    "insp.detail.note": "Note",
    "insp.detail.duplicateOf": "Duplicate of case",
    "insp.detail.submit": "Submit",
    "insp.detail.done": "Case #{id}: {action} done",
    "insp.priority.normal": "normal",
    "insp.priority.urgent": "urgent",
    "insp.source.machine": "drone detection",
    "insp.source.person": "reported by staff",
    "insp.source.open311": "citizen platform",
    "insp.source.flag": "drone detection",
    "insp.grid": "Grid",
    "insp.selectAll": "Select all",
    "insp.stat.cases": "Cases",
    "insp.stat.open": "Open",
    "insp.stat.overdue": "Overdue",
    "insp.stat.closed": "Closed",
    "insp.stat.onTime": "On time",
    "insp.stat.hours": "Mean hours to close",
    "insp.chart.category": "Cases by category",
    "insp.chart.onTime": "On-time rate",
    "insp.chart.hours": "Mean time to close (hours)",
    "insp.chart.trend": "Weekly trend (filed / closed)",
    "insp.chart.filed": "filed",
    "insp.chart.closed": "closed",
    "insp.chart.empty": "No data yet",
    "insp.recheck": "Re-check mission for the open cases of the selected grids",
    "insp.recheck.pick": "Tick grids in the table first.",
    "insp.recheck.done": "Re-check mission #{id}: {cases} cases, {sorties} sorties, {waypoints} waypoints",
    "insp.recheck.download": "Download {format}",
    "state.reported": "reported",
    "state.triaged": "triaged",
    "state.registered": "registered",
    "state.rejected": "rejected",
    "state.duplicate": "duplicate",
    "state.dispatched": "dispatched",
    "state.in_progress": "in progress",
    "state.handled": "handled",
    "state.verifying": "verifying",
    "state.closed": "closed",
    "level.compound": "compound",
    "level.community": "community",
    "level.street": "street office",
    "action.report": "report",
    "action.triage": "triage",
    "action.register": "register",
    "action.reject": "reject",
    "action.mark_duplicate": "mark duplicate",
    "action.dispatch": "dispatch",
    "action.start": "start handling",
    "action.handle": "report handled",
    "action.verify": "start the check",
    "action.close": "check passed: close",
    "action.fail_check": "check failed: send back",
    "action.escalate": "escalate",
  },
});

const $ = (selector) => document.querySelector(selector);

const state = {
  user: null,
  tab: "review",
  categories: [],
  byCode: {},
  staff: [],
  plan: null,
  // review
  queue: [],
  total: 0,
  reviewed: 0,
  skipped: new Set(),
  current: null,
  mode: "normal",
  choices: [],
  busy: false,
  imageUrls: [],
  inset: null,
  insetReady: null,
  // board
  board: null,
  boardAt: 0,
  detailId: null,
  // dashboard
  stats: [],
  selected: new Set(),
  trend: [],
};

function categoryName(code) {
  const category = state.byCode[code];
  if (!category) return code;
  return lang() === "en" ? category.name_en : category.name_zh;
}

function formatTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(lang() === "en" ? "en-GB" : "zh-CN", { hour12: false });
}

function duration(seconds) {
  const total = Math.abs(Math.round(seconds));
  const days = Math.floor(total / 86400);
  const hms = [Math.floor((total % 86400) / 3600), Math.floor((total % 3600) / 60), total % 60]
    .map((v, i) => (i === 0 ? String(v) : String(v).padStart(2, "0")))
    .join(":");
  return days ? `${days}${lang() === "en" ? "d" : "天"} ${hms}` : hms;
}

// ---- tabs ----

function showTab(name) {
  state.tab = name;
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const pane of ["review", "board", "dashboard"]) $(`#pane-${pane}`).hidden = pane !== name;
  history.replaceState(null, "", `#${name}`);
  if (name === "review") state.inset?.resize();
  if (name === "board") guarded(loadBoard)();
  if (name === "dashboard") guarded(loadDashboard)();
}

// ---- review ----

async function loadQueue() {
  const order = $("#review-order").value;
  const body = await api(`/api/v1/flags/queue?order=${order}&limit=${QUEUE_PAGE}`);
  state.total = body.total;
  let flags = body.flags.filter((f) => !state.skipped.has(f.id));
  if (!flags.length && body.flags.length) {
    state.skipped.clear();
    flags = body.flags;
  }
  state.queue = flags;
  await showCurrent();
}

function renderProgress() {
  const m = state.reviewed + state.total;
  const n = Math.min(state.reviewed + state.skipped.size + 1, m);
  $("#review-progress").textContent = state.current ? t("insp.progress", { n, m }) : t("insp.progress.none");
}

async function showCurrent() {
  setMode("normal");
  state.current = state.queue[0] ?? null;
  const flag = state.current;
  $("#review-empty").hidden = Boolean(flag);
  $("#review-body").hidden = !flag;
  renderProgress();
  if (!flag) return;
  $("#review-body").dataset.flagId = String(flag.id);
  renderFacts(flag);
  showInset(flag);
  await showImages(flag);
}

function renderFacts(flag) {
  $("#flag-title").textContent = `${categoryName(flag.category)} · ${flag.category}`;
  $("#flag-title").style.color = CATEGORY_COLOURS[flag.category] ?? "inherit";
  const seen = flag.first_seen ? `${formatTime(flag.first_seen)} – ${formatTime(flag.last_seen)}` : formatTime(flag.created_at);
  const rows = [
    ["insp.fact.id", `#${flag.id}`],
    ["insp.fact.score", flag.score == null ? "—" : `${Math.round(flag.score * 100)}%`],
    ["insp.fact.rule", flag.rule ?? "—"],
    ["insp.fact.sightings", flag.sightings ?? "—"],
    ["insp.fact.grid", flag.grid_code ?? flag.territory],
    ["insp.fact.microgrid", flag.microgrid_code ?? "—"],
    ["insp.fact.class", flag.class_name ?? "—"],
    ["insp.fact.severity", flag.severity ?? "—"],
    ["insp.fact.seen", seen],
    ["insp.fact.error", flag.error_m == null ? "—" : t("insp.fact.metres", { m: flag.error_m.toFixed(1) })],
  ];
  $("#flag-facts").replaceChildren(...rows.flatMap(([key, value]) => [el("dt", {}, t(key)), el("dd", {}, String(value))]));
}

async function blobUrl(path) {
  const response = await api(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  state.imageUrls.push(url);
  return url;
}

async function showImages(flag) {
  for (const url of state.imageUrls.splice(0)) URL.revokeObjectURL(url);
  const evidence = $("#evidence-img");
  const frame = $("#frame-img");
  const box = $("#frame-box");
  box.replaceChildren();
  for (const [img, none, has] of [
    [evidence, $("#evidence-none"), flag.has_evidence],
    [frame, $("#frame-none"), flag.has_frame],
  ]) {
    img.hidden = !has;
    none.hidden = has;
    img.removeAttribute("src");
  }
  const loads = [];
  if (flag.has_evidence) loads.push(loadImage(evidence, `/api/v1/flags/${flag.id}/evidence.jpg`, flag));
  if (flag.has_frame) loads.push(loadImage(frame, `/api/v1/flags/${flag.id}/frame.jpg`, flag).then(() => drawBox(flag)));
  await Promise.all(loads);
}

async function loadImage(img, path, flag) {
  try {
    const url = await blobUrl(path);
    if (state.current?.id !== flag.id) return;
    img.src = url;
    await img.decode();
  } catch (error) {
    if (state.current?.id === flag.id) {
      img.hidden = true;
      img.nextElementSibling?.removeAttribute("hidden");
      showError(error);
    }
  }
}

function drawBox(flag) {
  const img = $("#frame-img");
  const svg = $("#frame-box");
  if (state.current?.id !== flag.id || !flag.frame_box || !img.naturalWidth) return;
  svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  const [x0, y0, x1, y1] = flag.frame_box;
  const rect = document.createElementNS(SVG_NS, "rect");
  for (const [name, value] of Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 })) {
    rect.setAttribute(name, String(value));
  }
  svg.replaceChildren(rect);
}

function createInset() {
  const map = createMap("inset", { zoom: 16 });
  map.addControl(new window.maplibregl.NavigationControl({ showCompass: false }), "top-right");
  state.inset = map;
  state.insetReady = new Promise((resolve) => map.once("load", resolve)).then(async () => {
    if (state.plan) {
      await guarded(addBasemap)(map, { districtId: state.plan.district_id, control: false });
      addPlanLayers(map);
    }
    map.addSource("flag", { type: "geojson", data: EMPTY });
    map.addLayer({
      id: "flag-point",
      type: "circle",
      source: "flag",
      paint: { "circle-radius": 7, "circle-color": "#ef4444", "circle-stroke-color": "#fff", "circle-stroke-width": 2 },
    });
  });
}

function addPlanLayers(map) {
  const { id, number } = state.plan;
  map.addSource("plan", { type: "vector", url: `/api/v1/tiles/plans/${id}/versions/${number}.json` });
  map.addLayer({
    id: "grid-current",
    type: "fill",
    source: "plan",
    "source-layer": "grids",
    filter: ["==", ["get", "grid_code"], ""],
    paint: { "fill-color": "#3b82f6", "fill-opacity": 0.15 },
  });
  map.addLayer({
    id: "microgrid-lines",
    type: "line",
    source: "plan",
    "source-layer": "microgrids",
    minzoom: 15,
    paint: { "line-color": "#64748b", "line-width": 0.6, "line-dasharray": [2, 2] },
  });
  map.addLayer({
    id: "grid-lines",
    type: "line",
    source: "plan",
    "source-layer": "grids",
    paint: { "line-color": "#1d4ed8", "line-width": 1.5 },
  });
}

function showInset(flag) {
  if (!state.inset) createInset();
  state.insetReady.then(() => {
    if (state.current?.id !== flag.id) return;
    const map = state.inset;
    const point = { type: "Feature", geometry: { type: "Point", coordinates: [flag.lon, flag.lat] }, properties: {} };
    map.getSource("flag").setData({ type: "FeatureCollection", features: [point] });
    if (map.getLayer("grid-current")) map.setFilter("grid-current", ["==", ["get", "grid_code"], flag.grid_code ?? ""]);
    map.jumpTo({ center: [flag.lon, flag.lat], zoom: 16 });
    map.once("idle", () => {
      $("#inset").dataset.shown = String(flag.id);
    });
  });
}

function setMode(mode, title = "", items = []) {
  state.mode = mode;
  state.choices = items;
  const box = $("#review-choices");
  box.hidden = mode === "normal";
  if (mode === "normal") return box.replaceChildren();
  const list = el("ol", {}, ...items.map((item, i) => el("li", {}, el("kbd", {}, String(i + 1)), " ", item.label)));
  box.replaceChildren(el("strong", {}, title), items.length ? list : el("p", { className: "muted" }, t("insp.dup.none")));
}

async function enterDuplicate() {
  const flag = state.current;
  const candidates = await api(`/api/v1/flags/${flag.id}/duplicates`);
  if (state.current?.id !== flag.id) return;
  const items = candidates.map((c) => ({
    value: c.kind === "case" ? { duplicate_of_case: c.id } : { duplicate_of_flag: c.id },
    label: `${t(`insp.dup.${c.kind}`, { id: c.id })} · ${Math.round(c.distance_m)} m · ${c.kind === "case" ? t(`state.${c.state}`) : c.grid_code ?? ""}`,
  }));
  setMode("duplicate", items.length ? t("insp.dup.title", { n: items.length }) : t("insp.key.duplicate"), items);
}

function enterCategory() {
  const items = state.categories.map((c) => ({
    value: { category: c.code },
    label: `${c.code} ${lang() === "en" ? c.name_en : c.name_zh}${c.code === state.current.category ? " ✓" : ""}`,
  }));
  setMode("category", t("insp.cat.title"), items);
}

async function pick(number) {
  const item = state.choices[number - 1];
  if (!item) return;
  await decide(state.mode === "duplicate" ? "duplicate" : "recategorize", item.value);
}

async function decide(action, extra = {}) {
  const flag = state.current;
  if (!flag || state.busy) return;
  state.busy = true;
  try {
    const result = await api(`/api/v1/flags/${flag.id}/review`, { method: "POST", json: { action, ...extra } });
    if (action === "recategorize") {
      state.queue[0] = result.flags[0];
      toast(t("insp.done.recategorize", { name: categoryName(result.flags[0].category) }), "ok");
      await showCurrent();
      return;
    }
    const decided = new Set(result.flags.map((f) => f.id));
    state.queue = state.queue.filter((f) => !decided.has(f.id));
    state.reviewed += decided.size;
    state.total = Math.max(0, state.total - decided.size);
    toast(t(`insp.done.${action}`, { case: result.flags[0].case_id, n: decided.size }), "ok", 2500);
    await advance();
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      toast(t("insp.conflict"), "warn");
      state.queue.shift();
      state.total = Math.max(0, state.total - 1);
      await advance();
    } else {
      showError(error);
    }
  } finally {
    state.busy = false;
  }
}

async function skip() {
  if (!state.current) return;
  state.skipped.add(state.current.id);
  state.queue.shift();
  await advance();
}

async function advance() {
  if (state.queue.length) await showCurrent();
  else await loadQueue();
}

const KEYS = {
  a: () => decide("accept"),
  r: () => decide("reject"),
  d: enterDuplicate,
  e: enterCategory,
  s: skip,
};

function onKey(event) {
  if (state.tab !== "review" || event.ctrlKey || event.metaKey || event.altKey || !state.current) return;
  if (event.target.closest?.("input, select, textarea")) return;
  if (event.key === "Escape") return setMode("normal");
  if (state.mode !== "normal" && /^[1-9]$/.test(event.key)) {
    event.preventDefault();
    return guarded(pick)(Number(event.key));
  }
  const key = event.key.toLowerCase();
  const handler = event.shiftKey && key === "a" ? () => decide("accept_frame") : KEYS[key];
  if (!handler) return;
  event.preventDefault();
  guarded(handler)();
}

function onActionButton(event) {
  const button = event.target.closest("[data-action]");
  if (!button) return;
  const handlers = { ...KEYS, accept: KEYS.a, reject: KEYS.r, duplicate: KEYS.d, category: KEYS.e, skip: KEYS.s };
  const handler = button.dataset.action === "accept_frame" ? () => decide("accept_frame") : handlers[button.dataset.action];
  guarded(handler)();
}

// ---- case board ----

async function loadBoard() {
  state.board = await api("/api/v1/cases/board");
  state.boardAt = Date.now();
  renderBoard();
}

function renderBoard() {
  if (!state.board) return;
  for (const column of document.querySelectorAll(".board-col")) {
    const cases = state.board[column.dataset.column] ?? [];
    const list = column.querySelector("ol");
    const cards = cases.map(caseCard);
    list.replaceChildren(...(cards.length ? cards : [el("li", { className: "muted" }, t("insp.col.empty"))]));
  }
  tick();
}

function caseCard(item) {
  const due = item.seconds_left == null ? null : state.boardAt + item.seconds_left * 1000;
  const countdown = el("span", { className: "countdown", dataset: { due: due ?? "" } });
  return el(
    "li",
    {
      className: "case-card",
      tabIndex: 0,
      dataset: { caseId: String(item.id), testid: "case-card" },
      onclick: () => guarded(openCase)(item.id),
      onkeydown: (event) => event.key === "Enter" && guarded(openCase)(item.id),
    },
    el("div", {}, el("strong", {}, `#${item.id} ${categoryName(item.category)}`), " ", countdown),
    el("div", { className: "meta" }, `${t("insp.grid")} ${item.grid_code ?? item.territory} · ${t(`state.${item.state}`)}${item.priority === "urgent" ? ` · ${t("insp.priority.urgent")}` : ""}`),
  );
}

function tick() {
  const now = Date.now();
  for (const span of document.querySelectorAll(".countdown")) {
    const card = span.closest(".case-card");
    if (!span.dataset.due) {
      span.textContent = t("insp.noLimit");
      continue;
    }
    const left = (Number(span.dataset.due) - now) / 1000;
    span.textContent = left >= 0 ? t("insp.left", { time: duration(left) }) : t("insp.overdue", { time: duration(left) });
    card.classList.toggle("overdue", left < 0);
  }
}

async function openCase(caseId) {
  state.detailId = caseId;
  const detail = await api(`/api/v1/cases/${caseId}`);
  const pane = $("#case-detail");
  pane.hidden = false;
  $("#pane-board").classList.add("with-detail");
  const facts = [
    ["insp.detail.state", t(`state.${detail.state}`)],
    ["insp.detail.level", detail.level ? t(`level.${detail.level}`) : "—"],
    ["insp.grid", detail.grid_code ?? detail.territory],
    ["insp.detail.priority", t(`insp.priority.${detail.priority}`)],
    ["insp.detail.due", formatTime(detail.due_at)],
    ["insp.detail.source", t(`insp.source.${detail.source}`)],
    ["insp.detail.assignee", staffName(detail.assignee_staff_id)],
    ["insp.detail.description", detail.description || "—"],
  ];
  pane.replaceChildren(
    el("h2", {}, `${t("insp.detail.title", { id: detail.id })} · ${categoryName(detail.category)}`,
      el("button", { type: "button", className: "link", onclick: closeCase }, t("common.close"))),
    el("dl", { className: "facts" }, ...facts.flatMap(([key, value]) => [el("dt", {}, t(key)), el("dd", {}, String(value))])),
    el("h3", {}, t("insp.detail.events")),
    el("ol", { className: "events" }, ...detail.events.map((e) =>
      el("li", {}, `${formatTime(e.at)} ${e.actor}: ${t(`action.${e.action}`)} → ${t(`state.${e.to_state}`)}${e.level ? ` (${t(`level.${e.level}`)})` : ""}${e.note ? ` — ${e.note}` : ""}`))),
    el("h3", {}, t("insp.detail.actions")),
    ...actionForms(detail),
  );
}

function closeCase() {
  $("#case-detail").hidden = true;
  $("#pane-board").classList.remove("with-detail");
  state.detailId = null;
}

function staffName(staffId) {
  if (staffId == null) return "—";
  return state.staff.find((s) => s.id === staffId)?.name ?? `#${staffId}`;
}

function allowedActions(detail) {
  const role = state.user.role;
  const assignee = state.user.staff_id != null && state.user.staff_id === detail.assignee_staff_id;
  return Object.entries(ACTIONS)
    .filter(([, a]) => a.from.includes(detail.state))
    .filter(([, a]) => role === "admin" || a.roles.includes(role))
    .filter(([, a]) => !a.assignee || role === "admin" || assignee)
    .map(([name]) => name);
}

function actionForms(detail) {
  const names = allowedActions(detail);
  if (!names.length) return [el("p", { className: "muted" }, t("insp.detail.none"))];
  return names.map((name) => actionForm(detail, name));
}

function select(name, options) {
  return el("select", { name }, ...options.map(([value, label]) => el("option", { value }, label)));
}

function actionForm(detail, name) {
  const fields = [];
  if (name === "dispatch" || name === "escalate") {
    const above = detail.level ? LEVELS.slice(LEVELS.indexOf(detail.level) + 1) : LEVELS;
    const levels = name === "dispatch" ? LEVELS : above;
    fields.push(el("label", {}, t("insp.detail.level.pick"), select("level", levels.map((l) => [l, t(`level.${l}`)]))));
    const staff = state.staff.filter((s) => (detail.territory ?? "").startsWith(s.territory));
    const none = name === "escalate" ? [["", "—"]] : [];
    fields.push(el("label", {}, t("insp.detail.staff.pick"), select("staff_id", [...none, ...staff.map((s) => [String(s.id), `${s.name}（${s.territory}）`])])));
  }
  if (name === "mark_duplicate") {
    const options = detail.duplicate_suggestions.map((d) => [String(d.case_id), `#${d.case_id} · ${Math.round(d.distance_m)} m`]);
    fields.push(el("label", {}, t("insp.detail.duplicateOf"), select("duplicate_of", options)));
  }
  if (["fail_check", "handle", "reject", "escalate", "close"].includes(name)) {
    fields.push(el("label", {}, t("insp.detail.note"), el("textarea", { name: "note", rows: 2 })));
  }
  const form = el("form", { dataset: { action: name } }, ...fields, el("button", { type: "submit", className: "primary" }, t(`action.${name}`)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(submitAction)(detail, name, new FormData(form));
  });
  return form;
}

async function submitAction(detail, name, data) {
  const body = { action: name, revision: detail.revision };
  for (const [key, value] of data.entries()) {
    if (value === "") continue;
    body[key] = ["staff_id", "duplicate_of"].includes(key) ? Number(value) : value;
  }
  await api(`/api/v1/cases/${detail.id}/actions`, { method: "POST", json: body });
  toast(t("insp.detail.done", { id: detail.id, action: t(`action.${name}`) }), "ok");
  await Promise.all([openCase(detail.id), loadBoard()]);
}

// ---- dashboard ----

async function loadDashboard() {
  state.stats = await api("/api/v1/stats/grids");
  renderGridTable();
  await loadTrend();
}

async function loadTrend() {
  const query = [...state.selected].map((code) => `&grid_code=${code}`).join("");
  state.trend = await api(`/api/v1/stats/trend?weeks=8${query}`);
  renderCharts();
}

function percent(rate) {
  return rate == null ? "—" : `${Math.round(rate * 100)}%`;
}

function renderGridTable() {
  const rows = state.stats.map((row) => {
    const isGrid = /^\d{15}$/.test(row.code);
    const box = el("input", { type: "checkbox", disabled: !isGrid, checked: state.selected.has(row.code), dataset: { code: row.code } });
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(row.code);
      else state.selected.delete(row.code);
      box.closest("tr").classList.toggle("selected", box.checked);
      guarded(loadTrend)();
    });
    return el(
      "tr",
      { dataset: { code: row.code }, className: state.selected.has(row.code) ? "selected" : "" },
      el("td", {}, box),
      el("td", {}, row.code),
      el("td", {}, String(row.cases)),
      el("td", {}, String(row.open)),
      el("td", { className: row.overdue ? "error" : "" }, String(row.overdue)),
      el("td", {}, String(row.closed)),
      el("td", {}, percent(row.on_time_rate)),
      el("td", {}, row.mean_hours_to_close == null ? "—" : row.mean_hours_to_close.toFixed(1)),
    );
  });
  $("#grid-table tbody").replaceChildren(...rows);
}

function chosenRows() {
  const picked = state.stats.filter((row) => state.selected.has(row.code));
  return picked.length ? picked : state.stats;
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function barChart(svg, bars, format) {
  const width = 400;
  const height = 220;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  if (!bars.length) return svg.replaceChildren(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, t("insp.chart.empty")));
  const shown = bars.slice(0, 8);
  const max = Math.max(...shown.map((b) => b.value), 1e-9);
  const rowH = Math.min((height - 10) / shown.length, 34);
  const labelW = 130;
  const nodes = shown.flatMap((bar, i) => {
    const y = 5 + i * rowH;
    const w = ((width - labelW - 60) * bar.value) / max;
    return [
      svgEl("text", { x: labelW - 6, y: y + rowH / 2 + 4, "text-anchor": "end" }, bar.label),
      svgEl("rect", { x: labelW, y: y + rowH * 0.15, width: Math.max(w, 1), height: rowH * 0.7, fill: bar.colour ?? "#3b82f6" }),
      svgEl("text", { x: labelW + w + 4, y: y + rowH / 2 + 4 }, format(bar.value)),
    ];
  });
  svg.replaceChildren(svgEl("line", { x1: labelW, y1: 0, x2: labelW, y2: height, class: "axis" }), ...nodes);
}

function lineChart(svg, weeks) {
  const width = 400;
  const height = 220;
  const pad = { left: 30, right: 10, top: 24, bottom: 28 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  if (!weeks.length) return svg.replaceChildren();
  const max = Math.max(1, ...weeks.flatMap((w) => [w.filed, w.closed]));
  const x = (i) => pad.left + (i * (width - pad.left - pad.right)) / Math.max(weeks.length - 1, 1);
  const y = (v) => height - pad.bottom - (v * (height - pad.top - pad.bottom)) / max;
  const series = [
    ["filed", "#2563eb"],
    ["closed", "#16a34a"],
  ];
  const nodes = [
    svgEl("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: "axis" }),
    svgEl("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, class: "axis" }),
    svgEl("text", { x: pad.left - 4, y: y(max) + 4, "text-anchor": "end" }, String(max)),
    svgEl("text", { x: pad.left - 4, y: y(0) + 4, "text-anchor": "end" }, "0"),
  ];
  weeks.forEach((w, i) => {
    if (i % 2 === 0 || i === weeks.length - 1) nodes.push(svgEl("text", { x: x(i), y: height - 10, "text-anchor": "middle" }, w.week_start.slice(5)));
  });
  series.forEach(([key, colour], s) => {
    const points = weeks.map((w, i) => `${x(i)},${y(w[key])}`).join(" ");
    nodes.push(svgEl("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2 }));
    weeks.forEach((w, i) => nodes.push(svgEl("circle", { cx: x(i), cy: y(w[key]), r: 3, fill: colour })));
    nodes.push(svgEl("rect", { x: pad.left + 10 + s * 80, y: 6, width: 12, height: 8, fill: colour }));
    nodes.push(svgEl("text", { x: pad.left + 26 + s * 80, y: 14 }, t(`insp.chart.${key}`)));
  });
  svg.replaceChildren(...nodes);
}

function renderCharts() {
  const rows = chosenRows();
  const byCategory = {};
  for (const row of rows) for (const [code, n] of Object.entries(row.by_category)) byCategory[code] = (byCategory[code] ?? 0) + n;
  barChart(
    $("#chart-category"),
    Object.entries(byCategory).sort((a, b) => b[1] - a[1]).map(([code, n]) => ({ label: `${code} ${categoryName(code)}`, value: n, colour: CATEGORY_COLOURS[code] })),
    (v) => String(v),
  );
  const closedRows = rows.filter((r) => r.on_time_rate != null);
  barChart($("#chart-ontime"), closedRows.map((r) => ({ label: r.code.slice(-6), value: r.on_time_rate, colour: "#16a34a" })), percent);
  const timed = rows.filter((r) => r.mean_hours_to_close != null);
  barChart($("#chart-hours"), timed.map((r) => ({ label: r.code.slice(-6), value: r.mean_hours_to_close, colour: "#d97706" })), (v) => v.toFixed(1));
  lineChart($("#chart-trend"), state.trend);
}

async function recheck() {
  const grids = [...state.selected];
  if (!grids.length) return toast(t("insp.recheck.pick"), "warn");
  const body = await api("/api/v1/cases/recheck-mission", { method: "POST", json: { grid_codes: grids } });
  const buttons = ["plan", "kmz"].map((format) =>
    el("button", { type: "button", dataset: { format }, onclick: () => guarded(download)(body.downloads[format]) }, t("insp.recheck.download", { format: `.${format}` })),
  );
  const box = $("#recheck-result");
  box.hidden = false;
  box.replaceChildren(
    el("p", {}, t("insp.recheck.done", { id: body.mission_id, cases: body.case_ids.length, sorties: body.sorties, waypoints: body.waypoints })),
    el("div", { className: "toolbar" }, ...buttons),
  );
}

// ---- start ----

async function loadPlan() {
  const plans = await api("/api/v1/plans");
  for (const plan of plans) {
    const published = plan.versions.filter((v) => v.status === "published").at(-1);
    if (published) return { id: plan.id, number: published.number, district_id: plan.district_id };
  }
  return null;
}

function rerender() {
  if (state.current) {
    renderFacts(state.current);
    renderProgress();
    if (state.mode === "duplicate") guarded(enterDuplicate)();
    if (state.mode === "category") enterCategory();
  }
  renderBoard();
  if (state.stats.length) {
    renderGridTable();
    renderCharts();
  }
}

async function main() {
  state.user = await startPage("inspector");
  const [categories, plan, staff] = await Promise.all([api("/api/v1/categories"), loadPlan(), api("/api/v1/staff").catch(() => [])]);
  state.categories = categories;
  state.byCode = Object.fromEntries(categories.map((c) => [c.code, c]));
  state.plan = plan;
  state.staff = staff;
  for (const tab of document.querySelectorAll("[data-tab]")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  document.addEventListener("keydown", onKey);
  document.addEventListener("skygrid:lang", rerender);
  $(".review-actions").addEventListener("click", onActionButton);
  $("#review-order").addEventListener("change", guarded(async () => {
    state.skipped.clear();
    await loadQueue();
  }));
  $("#export-negatives").addEventListener("click", guarded(() => download("/api/v1/flags/rejected/export")));
  $("#board-refresh").addEventListener("click", guarded(loadBoard));
  $("#recheck").addEventListener("click", guarded(recheck));
  $("#grid-all").addEventListener("change", (event) => {
    state.selected = new Set(event.target.checked ? state.stats.map((r) => r.code).filter((c) => /^\d{15}$/.test(c)) : []);
    renderGridTable();
    guarded(loadTrend)();
  });
  setInterval(tick, 1000);
  setInterval(() => state.tab === "board" && guarded(loadBoard)(), BOARD_REFRESH_MS);
  applyI18n();
  const fieldStaff = FIELD_ROLES.includes(state.user.role);
  $("#tab-review").hidden = fieldStaff;
  const wanted = location.hash.slice(1);
  if (fieldStaff) showTab(wanted === "dashboard" ? "dashboard" : "board");
  else showTab(["board", "dashboard"].includes(wanted) ? wanted : "review");
  if (!fieldStaff) await loadQueue();
}

guarded(main)();
