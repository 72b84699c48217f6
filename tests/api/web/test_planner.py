"""The planner page in chromium, with the network outside the server blocked: make a draft of the published demo
plan, paint buildings of one grid into its neighbour with the brush, see both tallies change and a range warning
appear, compare with the published version, and undo back to the original tallies."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.api.web.conftest import LiveServer, copy_artifact, log_in, screenshot

# Picks, among the rendered buildings, a grid S and a neighbouring grid T of the same community, and S's
# buildings nearest to T in the order to paint them until S or T leaves its household range; then zooms there.
PICK_JS = """
async () => {
  const { map, state } = window.skygridPlanner;
  const rules = state.rules;
  const centre = (f) => {
    const ring = f.geometry.type === "Polygon" ? f.geometry.coordinates[0] : f.geometry.coordinates[0][0];
    const n = ring.length - 1;
    return [ring.slice(0, n).reduce((s, p) => s + p[0], 0) / n, ring.slice(0, n).reduce((s, p) => s + p[1], 0) / n];
  };
  const byId = new Map();
  for (const f of map.queryRenderedFeatures({ layers: ["buildings-fill"] })) byId.set(f.id, f);
  const all = [...byId.values()].map((f) => ({ id: f.id, p: f.properties, c: centre(f) }));
  const d2 = (a, b) => (a.c[0] - b.c[0]) ** 2 + (a.c[1] - b.c[1]) ** 2;
  let best = null;
  for (const a of all) {
    for (const b of all) {
      if (a.p.grid_code === b.p.grid_code || a.p.community_code !== b.p.community_code) continue;
      if (state.tallies.get(a.p.grid_code)?.locked || state.tallies.get(b.p.grid_code)?.locked) continue;
      const d = d2(a, b);
      if (!best || d < best.d) best = { d, a, b };
    }
  }
  const source = best.a.p.grid_code;
  const target = best.b.p.grid_code;
  const s = state.tallies.get(source).households;
  const t = state.tallies.get(target).households;
  const candidates = all.filter((x) => x.p.grid_code === source).sort((x, y) => d2(x, best.b) - d2(y, best.b));
  const chosen = [];
  let moved = 0;
  for (const x of candidates) {
    chosen.push(x);
    moved += x.p.households;
    if (s - moved < rules.grid_min || t + moved > rules.grid_max) break;
  }
  const lons = [...chosen, best.b].map((x) => x.c[0]);
  const lats = [...chosen, best.b].map((x) => x.c[1]);
  map.fitBounds([[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]],
                { padding: 160, maxZoom: 16.5, duration: 0 });
  await new Promise((resolve) => map.once("idle", resolve));
  const box = map.getContainer().getBoundingClientRect();
  const point = (x) => { const q = map.project(x.c); return [box.left + q.x, box.top + q.y]; };
  return { source, target, s, t, ids: chosen.map((x) => x.id), points: chosen.map(point), targetPoint: point(best.b) };
}
"""


def _households(page: Page, code: str) -> int:
    return int(page.inner_text(f"[data-testid=hh-{code}]"))


def _open_draft(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server, "planner", "/planner")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=version-info]').textContent.length > 0", timeout=60_000
    )
    if page.is_visible("[data-testid=readonly-note]"):
        assert "只读" in page.inner_text("[data-testid=readonly-note]")
        page.fill("[data-testid=draft-reason]", "浏览器测试 browser test")
        page.click("[data-testid=make-draft]")
    page.wait_for_function(
        "() => window.skygridPlanner.state.version.status === 'draft'"
        " && document.querySelector('[data-testid=version-info]').textContent.includes('草稿')"
    )
    page.wait_for_function(
        "() => window.skygridPlanner.map.loaded() && window.skygridPlanner.map.areTilesLoaded()"
    )


def test_planner_paints_into_a_neighbour_sees_tallies_and_a_warning_and_undoes(
    page: Page, live_server: LiveServer
) -> None:
    _open_draft(page, live_server)
    assert "草稿" in page.inner_text("[data-testid=version-info]")
    pick: dict[str, Any] = page.evaluate(PICK_JS)
    source, target = pick["source"], pick["target"]
    assert (_households(page, source), _households(page, target)) == (pick["s"], pick["t"])

    page.mouse.click(*pick["targetPoint"])  # the select tool picks the target grid
    page.wait_for_selector(f"[data-testid=grid-row-{target}].selected")
    page.click("[data-testid=tool-brush]")
    assert target in page.inner_text("[data-testid=tool-hint]")
    for x, y in pick["points"]:
        page.mouse.click(x, y)
    strokes = len(pick["points"])
    page.wait_for_function(f"() => window.skygridPlanner.state.undo.length === {strokes}")

    after_s, after_t = _households(page, source), _households(page, target)
    assert after_s < pick["s"] and after_t > pick["t"]
    assert pick["s"] - after_s == after_t - pick["t"]
    warnings = page.locator(
        f"[data-testid=grid-row-{source}] [data-warning], [data-testid=grid-row-{target}] [data-warning]"
    )
    assert {w.get_attribute("data-warning") for w in warnings.all()} & {"out_of_range", "empty"}
    painted = page.evaluate(
        "(ids) => ids.map((id) => window.skygridPlanner.map.getFeatureState("
        "{source: 'plan', sourceLayer: 'buildings', id}).grid)",
        pick["ids"],
    )
    assert painted == [target] * strokes

    page.select_option("[data-testid=compare-version]", index=0)
    page.click("[data-testid=compare]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=compare-info]').textContent.length > 0"
    )
    assert "栋楼变动" in page.inner_text("[data-testid=compare-info]")
    page.wait_for_timeout(1500)  # the tiles refresh once painting pauses: outlines follow the new grids
    page.wait_for_function("() => window.skygridPlanner.map.areTilesLoaded()")
    screenshot(page, "planner")

    for _ in range(strokes):
        page.keyboard.press("Control+z")
    page.wait_for_function(f"() => window.skygridPlanner.state.redo.length === {strokes}")
    assert (_households(page, source), _households(page, target)) == (pick["s"], pick["t"])


def test_a_published_version_is_read_only_in_both_languages_and_exports(
    page: Page, live_server: LiveServer
) -> None:
    log_in(page, live_server, "planner", "/planner")
    page.goto(f"{live_server.url}/planner?plan=1&version=1")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=version-info]').textContent.length > 0", timeout=60_000
    )
    assert page.is_visible("[data-testid=readonly-note]")
    assert page.is_disabled("[data-testid=tool-brush]") and page.is_disabled("[data-testid=publish]")
    page.click("#lang-toggle")
    assert page.inner_text("[data-testid=make-draft]") == "Make a draft"
    assert "Read-only version" in page.inner_text("[data-testid=tool-hint]")
    assert "published" in page.inner_text("[data-testid=version-info]")
    page.select_option("[data-testid=export-format]", "csv")
    with page.expect_download() as download:
        page.click("[data-testid=export]")
    path = download.value.path()
    assert download.value.suggested_filename == "plan1-v1.csv"
    header = path.read_text(encoding="utf-8-sig").splitlines()[0]
    assert "building_id" in header and "grid_code" in header
    copy_artifact(path, "planner-export.csv")


# Zooms to the grid, then gives a point north and one south of its middle (page pixels), for a split line.
LINE_JS = """
async (code) => {
  const { map } = window.skygridPlanner;
  const parts = map.querySourceFeatures("plan", { sourceLayer: "grids", filter: ["==", ["get", "grid_code"], code] });
  const coords = parts.flatMap((f) => f.geometry.coordinates.flat(2));
  const xs = [], ys = [];
  for (let i = 0; i < coords.length; i += 2) { xs.push(coords[i]); ys.push(coords[i + 1]); }
  const [w, s, e, n] = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  map.fitBounds([[w, s], [e, n]], { padding: 120, duration: 0 });
  await new Promise((resolve) => map.once("idle", resolve));
  const box = map.getContainer().getBoundingClientRect();
  const at = (lat) => { const q = map.project([(w + e) / 2, lat]); return [box.left + q.x, box.top + q.y]; };
  const pad = (n - s) * 0.1;
  return [at(n + pad), at(s - pad)];
}
"""


def test_split_a_grid_along_a_drawn_line(page: Page, live_server: LiveServer) -> None:
    _open_draft(page, live_server)
    code = page.evaluate(
        "() => [...window.skygridPlanner.state.tallies.values()]"
        ".sort((a, b) => b.households - a.households)[0].grid_code"
    )
    households = _households(page, code)
    before = page.evaluate("() => window.skygridPlanner.state.tallies.size")
    page.click(f"[data-testid=grid-row-{code}]")
    north, south = page.evaluate(LINE_JS, code)
    page.click("[data-testid=split-line]")
    assert code in page.inner_text("[data-testid=tool-hint]")
    page.mouse.click(*north)
    page.mouse.dblclick(*south)
    page.wait_for_function(f"() => window.skygridPlanner.state.tallies.size === {before + 1}")
    parts = page.evaluate("() => window.skygridPlanner.state.selected")
    assert len(parts) == 2 and code in parts
    assert sum(_households(page, c) for c in parts) == households
    screenshot(page, "planner-split")


def test_regrid_two_grids_as_a_job(page: Page, live_server: LiveServer) -> None:
    _open_draft(page, live_server)
    first, second = page.evaluate(
        "() => { const codes = [...window.skygridPlanner.state.tallies.keys()];"
        " return codes.filter((c, i) => i > 0 && c.slice(0, 12) === codes[i - 1].slice(0, 12))"
        ".slice(-1).flatMap((c) => [codes[codes.indexOf(c) - 1], c]); }"
    )
    households = _households(page, first) + _households(page, second)
    page.click(f"[data-testid=grid-row-{first}]")
    page.click(f"[data-testid=grid-row-{second}]", modifiers=["Shift"])
    assert page.evaluate("() => window.skygridPlanner.state.selected") == [first, second]
    page.click("[data-testid=regrid]")
    page.wait_for_selector(".toast-ok >> text=重新划分完成", timeout=60_000)  # after the job's progress
    made = page.evaluate("() => window.skygridPlanner.state.selected")
    assert first in made
    assert sum(_households(page, code) for code in made) == households


def test_refused_merge_says_why_and_a_lock_holds(page: Page, live_server: LiveServer) -> None:
    _open_draft(page, live_server)
    first, second = page.evaluate(
        "() => [...window.skygridPlanner.state.tallies.values()]"
        ".filter((g) => g.households > 260 && g.community_code === '320571001002').slice(0, 2)"
        ".map((g) => g.grid_code)"
    )
    page.click(f"[data-testid=grid-row-{first}]")
    page.click(f"[data-testid=grid-row-{second}]", modifiers=["Shift"])
    page.click("[data-testid=merge]")
    error = page.locator(".toast-error").first
    error.wait_for()
    assert "above the maximum 500" in error.inner_text() or "do not share a boundary" in error.inner_text()
    assert page.is_visible(f"[data-testid=grid-row-{second}]")  # nothing merged

    revision = page.evaluate("() => window.skygridPlanner.state.revision")
    page.check(f"[data-testid=lock-{first}]")
    page.wait_for_function(f"() => window.skygridPlanner.state.revision === {revision + 1}")
    assert page.evaluate(f"() => window.skygridPlanner.state.tallies.get('{first}').locked") is True
    page.uncheck(f"[data-testid=lock-{first}]")
    page.wait_for_function(f"() => window.skygridPlanner.state.revision === {revision + 2}")
