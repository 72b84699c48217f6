"""The front door and what every page shares: login, language, offline assets."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page

from api.web import PAGES, STATIC_DIR
from tests.api.web.conftest import LiveServer, log_in, screenshot


def test_login_page_is_chinese_by_default_and_lists_the_roles_pages(
    page: Page, live_server: LiveServer
) -> None:
    log_in(page, live_server, "planner")
    page.wait_for_selector("#workspace-list a")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    links = page.locator("#workspace-list a")
    assert links.all_inner_texts() == ["网格规划"]
    page.click("#lang-toggle")
    assert links.all_inner_texts() == ["Planner"]
    screenshot(page, "login")


def test_a_wrong_password_says_so_on_the_form(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url)
    page.fill("#username", "planner")
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    message = page.locator("#login-error")
    message.wait_for()
    assert "用户名或密码错误" in message.inner_text()


def test_every_page_and_asset_is_served_by_skygrid_itself(live_server: LiveServer) -> None:
    """No page refers to a script, style or font on another host."""
    outside = re.compile(r"""(?:src|href)=["'](?:https?:)?//""")
    for path, file_name in PAGES.items():
        response = httpx.get(f"{live_server.url}{path}")
        assert response.status_code == 200, path
        assert not outside.search(response.text), f"{file_name} loads something from another host"
    for asset in ("vendor/maplibre-gl/maplibre-gl.js", "vendor/pmtiles/pmtiles.js", "app/common.js"):
        response = httpx.get(f"{live_server.url}/static/{asset}")
        assert response.status_code == 200, asset
        assert response.content == (STATIC_DIR / asset).read_bytes()
