// The front door: log in, then pick the page your role works in (or go straight back where you came from).
import { applyI18n, el, lang, login, logout, me, pagesFor, setLang, t, token } from "./common.js";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");

function nextPage() {
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") ? next : null;
}

function showWorkspaces(user) {
  const pages = pagesFor(user.role);
  if (nextPage()) {
    location.href = nextPage();
    return;
  }
  form.hidden = true;
  const box = document.getElementById("workspaces");
  box.hidden = false;
  const who = document.getElementById("who");
  who.textContent = t("login.as", { user: user.username, role: t(`role.${user.role}`) });
  const list = document.getElementById("workspace-list");
  list.replaceChildren(
    ...pages.map(([key, path]) => el("li", {}, el("a", { href: path, dataset: { i18n: `nav.${key}` } }))),
  );
  applyI18n(list);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  try {
    const user = await login(form.username.value.trim(), form.password.value);
    showWorkspaces(user);
  } catch (error) {
    errorBox.textContent = t("login.failed", { detail: error.detail ?? error.message });
    errorBox.hidden = false;
  }
});

document.getElementById("logout").addEventListener("click", logout);
document.getElementById("lang-toggle").addEventListener("click", () => setLang(lang() === "zh" ? "en" : "zh"));
document.addEventListener("skygrid:lang", () => {
  if (!document.getElementById("workspaces").hidden) me().then(showWorkspaces);
});

applyI18n();
if (token()) me().then(showWorkspaces, () => localStorage.removeItem("skygrid.token"));
