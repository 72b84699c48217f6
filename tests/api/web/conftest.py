"""Browser tests of the web pages: the real service on loopback (uvicorn, SQLite, the seeded demo) driven by
Playwright in Debian's chromium (``/usr/bin/chromium``, installed by ``scripts/system-packages.sh``; no
downloaded browser). Every page runs with the network outside loopback blocked, as on an offline municipal
network, and a test fails on any script error the page logs. Screenshots go to ``test-artifacts/screenshots``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Route, sync_playwright
from pydantic import SecretStr

from api.app import create_app
from api.db import open_database, upgrade
from api.demo import DemoService, seed_demo
from api.settings import Settings

CHROMIUM = Path(os.environ.get("SKYGRID_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("SKYGRID_ARTIFACTS", Path(__file__).resolve().parents[3] / "test-artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@dataclass(frozen=True)
class LiveServer:
    """The service on ``url`` with the seeded demo and its settings."""

    url: str
    demo: DemoService
    settings: Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service with the 10,000-household demo seeded, on a free loopback port, for the whole session."""
    root = tmp_path_factory.mktemp("web")
    settings = Settings(
        data_dir=root / "data",
        jwt_secret=SecretStr("web-test-secret-" + "x" * 32),
        rate_limit_per_minute=0,
    )
    database = open_database(settings.resolved_database_url())
    upgrade(database)
    demo = seed_demo(database, root / "demo", households=10_000, seed=1)
    port = _free_port()
    config = uvicorn.Config(create_app(settings, database), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start within 30 s")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", demo, settings)
    server.should_exit = True
    thread.join(timeout=10)
    database.dispose()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, under Playwright.

    Package-scoped: Playwright's sync API runs an asyncio loop in this thread while it is open, and later
    tests (the drone link's) start their own with ``asyncio.run``.
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is absent: run `bash scripts/system-packages.sh` as root to install chromium"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageErrors:
    """Script errors and failed or blocked requests seen by a page."""

    script: list[str]
    blocked: list[str]


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A fresh page (own storage) that may only talk to the live server; fails the test on a script error."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, locale="zh-CN", accept_downloads=True
    )
    errors = PageErrors([], [])
    server_host = urlparse(live_server.url).netloc

    def gate(route: Route) -> None:
        url = route.request.url
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob") or parsed.netloc == server_host:
            route.continue_()
        else:
            errors.blocked.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", gate)
    new_page = context.new_page()
    new_page.on("pageerror", lambda error: errors.script.append(str(error)))
    new_page.set_default_timeout(20_000)
    yield new_page
    context.close()
    assert not errors.script, f"script errors on the page: {errors.script}"
    assert not errors.blocked, f"the page tried to reach outside the server: {errors.blocked}"


def log_in(page: Page, live_server: LiveServer, username: str, target: str = "/") -> None:
    """Log in through the login form as ``username`` (demo password) and open ``target``."""
    page.goto(f"{live_server.url}/?next={quote(target, safe='/')}")
    page.fill("#username", username)
    page.fill("#password", live_server.demo.password)
    page.click("#login-submit")
    if target != "/":
        page.wait_for_url(f"{live_server.url}{target}*")


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot of ``page`` as ``test-artifacts/screenshots/NAME.png``."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def copy_artifact(source: Path, name: str) -> Path:
    """Keep a file a test produced (a download) under ``test-artifacts``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / name
    shutil.copyfile(source, target)
    return target
