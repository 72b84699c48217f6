// Shared by every SkyGrid page: translations (Simplified Chinese by default, English on a toggle), the
// logged-in user's token, calls to the JSON API with errors shown to the user, the page header and the map.
// Plain ES modules: no build step, nothing fetched from outside the server.

const LANG_KEY = "skygrid.lang";
const TOKEN_KEY = "skygrid.token";

const messages = {
  zh: {
    "app.name": "天网格 SkyGrid",
    "nav.planner": "网格规划",
    "nav.operator": "飞行作业",
    "nav.inspector": "巡查审核",
    "nav.logout": "退出",
    "lang.toggle": "English",
    "login.title": "登录",
    "login.username": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.failed": "登录失败：{detail}",
    "login.pick": "选择工作台",
    "login.as": "当前用户：{user}（{role}）",
    "role.admin": "管理员",
    "role.planner": "规划员",
    "role.operator": "飞手",
    "role.inspector": "审核员",
    "role.grid_worker": "网格员",
    "role.handling_unit": "处置单位",
    "error.title": "出错了",
    "error.network": "无法连接服务器：{detail}",
    "error.where": "位置：{where}",
    "common.close": "关闭",
    "common.loading": "加载中…",
    "common.save": "保存",
    "common.cancel": "取消",
    "common.households": "户",
  },
  en: {
    "app.name": "SkyGrid",
    "nav.planner": "Planner",
    "nav.operator": "Operator",
    "nav.inspector": "Inspector",
    "nav.logout": "Log out",
    "lang.toggle": "中文",
    "login.title": "Log in",
    "login.username": "User name",
    "login.password": "Password",
    "login.submit": "Log in",
    "login.failed": "Login failed: {detail}",
    "login.pick": "Choose a workspace",
    "login.as": "Logged in as {user} ({role})",
    "role.admin": "administrator",
    "role.planner": "planner",
    "role.operator": "operator",
    "role.inspector": "inspector",
    "role.grid_worker": "grid worker",
    "role.handling_unit": "handling unit",
    "error.title": "Something went wrong",
    "error.network": "Cannot reach the server: {detail}",
    "error.where": "Where: {where}",
    "common.close": "Close",
    "common.loading": "Loading…",
    "common.save": "Save",
    "common.cancel": "Cancel",
    "common.households": "households",
  },
};

/** Add a page's own translations: ``{zh: {...}, en: {...}}``. */
export function addMessages(more) {
  for (const [lang, table] of Object.entries(more)) Object.assign((messages[lang] ??= {}), table);
}

/** The display language: ``zh`` (default) or ``en``; ``?lang=en`` in the address overrides it. */
export function lang() {
  const fromUrl = new URLSearchParams(location.search).get("lang");
  if (fromUrl === "zh" || fromUrl === "en") return fromUrl;
  return localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
}

export function setLang(value) {
  localStorage.setItem(LANG_KEY, value);
  document.documentElement.lang = value === "en" ? "en" : "zh-CN";
  applyI18n();
  document.dispatchEvent(new CustomEvent("skygrid:lang", { detail: value }));
}

/** The message ``key`` in the current language with ``{name}`` placeholders filled from ``vars``. */
export function t(key, vars = {}) {
  const text = messages[lang()]?.[key] ?? messages.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Translate every ``data-i18n`` (text), ``data-i18n-title`` and ``data-i18n-placeholder`` under ``root``. */
export function applyI18n(root = document) {
  document.documentElement.lang = lang() === "en" ? "en" : "zh-CN";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

// ---- the logged-in user ----

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const response = await fetch("/api/v1/auth/token", { method: "POST", body });
  if (!response.ok) throw await ApiError.from(response);
  const { access_token: accessToken } = await response.json();
  localStorage.setItem(TOKEN_KEY, accessToken);
  return me();
}

export function logout() {
  localStorage.removeItem(TOKEN_KEY);
  location.href = "/";
}

/** The logged-in user (``/api/v1/auth/me``); sends the browser to the login page when there is none. */
export async function me() {
  return api("/api/v1/auth/me");
}

/** Make sure someone is logged in; the login page brings the user back here afterwards. */
export async function requireLogin() {
  if (!token()) {
    location.href = `/?next=${encodeURIComponent(location.pathname + location.search)}`;
    return new Promise(() => {});
  }
  return me();
}

// ---- the JSON API ----

/** An error answered by the API: ``status``, ``error`` (its class), ``detail`` and ``where``. */
export class ApiError extends Error {
  constructor(status, error, detail, where) {
    super(detail);
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.where = where;
  }

  static async from(response) {
    let body = {};
    try {
      body = await response.json();
    } catch {
      body = { detail: response.statusText };
    }
    let detail = body.detail ?? response.statusText;
    if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
    return new ApiError(response.status, body.error ?? "", String(detail), body.where ?? null);
  }
}

/** Headers with the bearer token, for ``fetch`` and for MapLibre's tile requests. */
export function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

/**
 * Call the API: ``api("/api/v1/plans")``, ``api(url, {method: "POST", json: {...}})``, ``{form: FormData}``,
 * ``{raw: true}`` for the Response itself (downloads). Throws :class:`ApiError`; a 401 sends the user to log in.
 */
export async function api(path, { method = "GET", json, form, raw = false, signal } = {}) {
  const headers = authHeaders();
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "NetworkError", t("error.network", { detail: error.message }), null);
  }
  if (response.status === 401 && path !== "/api/v1/auth/token") {
    localStorage.removeItem(TOKEN_KEY);
    location.href = `/?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw await ApiError.from(response);
  }
  if (!response.ok) throw await ApiError.from(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** Save a download answered by ``path`` under the server's file name. */
export async function download(path) {
  const response = await api(path, { raw: true });
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : path.split("/").pop();
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}

// ---- messages to the user ----

function toastBox() {
  let box = document.getElementById("toasts");
  if (!box) {
    box = Object.assign(document.createElement("div"), { id: "toasts", className: "toasts" });
    box.setAttribute("role", "status");
    document.body.append(box);
  }
  return box;
}

/** A short message in the corner: ``kind`` is ``info``, ``ok``, ``warn`` or ``error``. */
export function toast(message, kind = "info", ms = 5000) {
  const item = Object.assign(document.createElement("div"), { className: `toast toast-${kind}` });
  item.textContent = message;
  toastBox().append(item);
  if (ms > 0) setTimeout(() => item.remove(), ms);
  return item;
}

/** Show what went wrong and where (the API's ``detail`` and ``where``). */
export function showError(error) {
  console.error(error);
  let message = error instanceof ApiError ? error.detail : String(error.message ?? error);
  if (error instanceof ApiError && error.where) {
    message += ` — ${t("error.where", { where: JSON.stringify(error.where) })}`;
  }
  toast(message, "error", 10_000);
}

/** Run ``fn`` and show its error, if any, instead of letting it vanish into the console. */
export function guarded(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (error) {
      showError(error);
      return undefined;
    }
  };
}

// ---- page frame ----

const NAV = [
  ["planner", "/planner", ["admin", "planner"]],
  ["operator", "/operator", ["admin", "operator"]],
  ["inspector", "/inspector", ["admin", "inspector", "grid_worker", "handling_unit"]],
];

/** The pages a role works in, as ``[key, path]``. */
export function pagesFor(role) {
  return NAV.filter(([, , roles]) => roles.includes(role)).map(([key, path]) => [key, path]);
}

/** Fill ``<header id="top">`` with the title, the navigation, the language toggle and the user. */
export function renderHeader(user, current) {
  const top = document.getElementById("top");
  top.className = "topbar";
  top.replaceChildren();
  const title = Object.assign(document.createElement("a"), { href: "/", className: "brand" });
  title.dataset.i18n = "app.name";
  const nav = document.createElement("nav");
  for (const [key, path] of pagesFor(user.role)) {
    const link = Object.assign(document.createElement("a"), { href: path });
    link.dataset.i18n = `nav.${key}`;
    if (key === current) link.setAttribute("aria-current", "page");
    nav.append(link);
  }
  const right = Object.assign(document.createElement("div"), { className: "topbar-right" });
  const langButton = Object.assign(document.createElement("button"), { id: "lang-toggle", type: "button" });
  langButton.dataset.i18n = "lang.toggle";
  langButton.addEventListener("click", () => setLang(lang() === "zh" ? "en" : "zh"));
  const who = Object.assign(document.createElement("span"), { className: "who" });
  const showWho = () => {
    who.textContent = t("login.as", { user: user.username, role: t(`role.${user.role}`) });
  };
  showWho();
  document.addEventListener("skygrid:lang", showWho);
  const out = Object.assign(document.createElement("button"), { id: "logout", type: "button" });
  out.dataset.i18n = "nav.logout";
  out.addEventListener("click", logout);
  right.append(langButton, who, out);
  top.append(title, nav, right);
  applyI18n(top);
}

/** Log in if needed, draw the header, translate the page; resolves to the user. */
export async function startPage(current) {
  const user = await requireLogin();
  renderHeader(user, current);
  applyI18n();
  return user;
}

// ---- the map ----

/**
 * A MapLibre GL map in ``container`` whose requests to this server carry the user's token. It starts with a
 * plain background; ``basemap.js`` adds the district's offline basemap or a configured external one.
 */
export function createMap(container, { center = [120.6, 31.3], zoom = 13, ...options } = {}) {
  if (window.pmtiles && !window.skygridPmtilesProtocol) {
    window.skygridPmtilesProtocol = new window.pmtiles.Protocol();
    window.maplibregl.addProtocol("pmtiles", window.skygridPmtilesProtocol.tile);
  }
  return new window.maplibregl.Map({
    container,
    center,
    zoom,
    style: {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#eef1f4" } }],
    },
    attributionControl: { compact: true },
    transformRequest: (url) => {
      const sameOrigin = url.startsWith("/") || url.startsWith(location.origin);
      return sameOrigin ? { url, headers: authHeaders() } : { url };
    },
    ...options,
  });
}

/** Fit ``map`` to ``[minLon, minLat, maxLon, maxLat]``. */
export function fitBounds(map, bounds, padding = 30) {
  map.fitBounds(
    [
      [bounds[0], bounds[1]],
      [bounds[2], bounds[3]],
    ],
    { padding, duration: 0 },
  );
}

/** A DOM element: ``el("button", {className: "x", onclick}, "text", child)``. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}
