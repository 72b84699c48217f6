"""The inspector's page in chromium with the network blocked: review flags from the keyboard (accept, reject,
duplicate candidates), find the new case on the board, read the dashboard and make a re-check mission."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import update

from api.db import open_database, transaction
from api.models import Case, utcnow
from drone.cameras import PRESETS
from drone.dataset import DatasetSettings, make_dataset
from drone.simsource import video_camera
from drone.world import CLASS_NAMES, read_zones
from gis.io import read_district
from tests.api.web.conftest import LiveServer, copy_artifact, log_in, screenshot
from vision.flags import DEFAULT_SCHEME

FRAME_PX = 640
CROP_PX = 240


def _token(live_server: LiveServer, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{live_server.url}/api/v1/auth/token",
        data={"username": username, "password": live_server.demo.password},
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass(frozen=True)
class Sighting:
    """A labelled object in a rendered drone frame: its class, box (xyxy px) and the frame's path."""

    class_name: str
    box: tuple[int, int, int, int]
    frame: Path


def _render_frames(live_server: LiveServer, folder: Path) -> list[list[Sighting]]:
    """Drone frames of the demo district from the simulator, with their labelled objects (frames with any)."""
    gpkg = live_server.demo.district_gpkg
    settings = DatasetSettings(images=6, image_px=FRAME_PX, seed=3)
    make_dataset(
        read_district(gpkg), read_zones(gpkg), video_camera(PRESETS["mavic3e"].camera), folder, settings
    )
    frames = []
    for labels in sorted((folder / "labels").glob("*/*.txt")):
        image = folder / "images" / labels.parent.name / f"{labels.stem}.jpg"
        sightings = [_sighting(line, image) for line in labels.read_text().splitlines() if line.strip()]
        if sightings:
            frames.append(sightings)
    return sorted(frames, key=len, reverse=True)


def _sighting(line: str, image: Path) -> Sighting:
    index, cx, cy, w, h = line.split()
    half_w, half_h = float(w) * FRAME_PX / 2, float(h) * FRAME_PX / 2
    x, y = float(cx) * FRAME_PX, float(cy) * FRAME_PX
    box = (int(x - half_w), int(y - half_h), int(x + half_w), int(y + half_h))
    return Sighting(CLASS_NAMES[int(index)], box, image)


def _store(live_server: LiveServer, sighting: Sighting, name: str) -> tuple[str, str]:
    """The frame and an evidence crop around the object, in the service's data folder."""
    folder = live_server.settings.data_dir / "inspector-test"
    folder.mkdir(parents=True, exist_ok=True)
    frame = Image.open(sighting.frame)
    frame_name = f"{sighting.frame.stem}-frame.jpg"  # flags of one frame share its file
    frame.save(folder / frame_name)
    x0, y0, x1, y1 = sighting.box
    margin = max(x1 - x0, y1 - y0) // 2
    crop = frame.crop((max(x0 - margin, 0), max(y0 - margin, 0), x1 + margin, y1 + margin))
    crop.resize((CROP_PX, round(CROP_PX * crop.height / crop.width))).save(folder / f"{name}-crop.jpg")
    return f"inspector-test/{name}-crop.jpg", f"inspector-test/{frame_name}"


def _point(live_server: LiveServer, index: int) -> tuple[float, float]:
    buildings = gpd.read_file(live_server.demo.district_gpkg, layer="buildings").to_crs(4326)
    point = buildings.geometry.iloc[(index * 7) % len(buildings)].representative_point()
    return float(point.x), float(point.y)


@pytest.fixture(scope="module")
def seeded(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Flags as the detector files them, with evidence from simulated drone frames: two flags of one frame
    first, then one of another frame."""
    frames = _render_frames(live_server, tmp_path_factory.mktemp("frames"))
    assert len(frames) >= 2 and len(frames[0]) >= 2, "the simulator should render frames with objects"
    headers = _token(live_server, "inspector")
    picked = [(frames[0][0], "a0"), (frames[0][1], "a1"), (frames[1][0], "b0")]
    flags = []
    for i, (sighting, name) in enumerate(picked):
        crop, frame = _store(live_server, sighting, name)
        category = DEFAULT_SCHEME.category(sighting.class_name)
        assert category is not None
        lon, lat = _point(live_server, i)
        body = {
            "category": category.code,
            "lon": lon,
            "lat": lat,
            "score": round(0.9 - i * 0.1, 2),
            "class_name": sighting.class_name,
            "rule": "outside_parking" if category.code in ("0505", "0506") else "public_space",
            "severity": 2,
            "sightings": 3 + i,
            "evidence_path": crop,
            "frame_path": frame,
            "frame_box": list(sighting.box),
            "error_m": 1.2,
        }
        response = httpx.post(f"{live_server.url}/api/v1/flags", headers=headers, json=body)
        assert response.status_code == 201, response.text
        flags.append(response.json())
    return flags


def _act(
    live_server: LiveServer, case: dict[str, Any], user: str, action: str, **extra: Any
) -> dict[str, Any]:
    response = httpx.post(
        f"{live_server.url}/api/v1/cases/{case['id']}/actions",
        headers=_token(live_server, user),
        json={"action": action, "revision": case["revision"], **extra},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def loop_cases(live_server: LiveServer) -> dict[str, dict[str, Any]]:
    """Cases at several steps of the loop: dispatched to a compound, one of them overdue, escalated to the
    street office, and closed."""
    headers = _token(live_server, "inspector")
    worker = httpx.get(f"{live_server.url}/api/v1/auth/me", headers=_token(live_server, "worker")).json()
    cases: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(("compound", "overdue", "street", "closed", "closed_too")):
        lon, lat = _point(live_server, 10 + i)
        category = ("0507", "0102", "0101", "0505", "0506")[i]
        response = httpx.post(
            f"{live_server.url}/api/v1/cases",
            headers=headers,
            json={"category": category, "lon": lon, "lat": lat},
        )
        assert response.status_code == 201, response.text
        case = _act(
            live_server, _act(live_server, response.json(), "inspector", "triage"), "inspector", "register"
        )
        cases[name] = _act(
            live_server, case, "inspector", "dispatch", level="compound", staff_id=worker["staff_id"]
        )
    cases["street"] = _act(live_server, cases["street"], "inspector", "escalate", level="street")
    for name in ("closed", "closed_too"):
        case = _act(live_server, cases[name], "worker", "start")
        case = _act(
            live_server, _act(live_server, case, "worker", "handle", note="已清理"), "inspector", "verify"
        )
        cases[name] = _act(live_server, case, "inspector", "close")
    database = open_database(live_server.settings.resolved_database_url())
    with transaction(database.write) as session:
        late = utcnow() - timedelta(minutes=95)
        session.execute(update(Case).where(Case.id == cases["overdue"]["id"]).values(due_at=late))
    database.dispose()
    return cases


def _flag(live_server: LiveServer, flag_id: int) -> dict[str, Any]:
    response = httpx.get(
        f"{live_server.url}/api/v1/flags/{flag_id}", headers=_token(live_server, "inspector")
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _shown_flag(page: Page) -> int:
    return int(page.locator("#review-body").get_attribute("data-flag-id") or 0)


def test_review_with_the_keyboard_and_find_the_case_on_the_board(
    page: Page, live_server: LiveServer, seeded: list[dict[str, Any]], loop_cases: dict[str, dict[str, Any]]
) -> None:
    log_in(page, live_server, "inspector", "/inspector")
    body = page.locator("#review-body")
    expect(body).to_be_visible()
    expect(page.locator("#review-progress")).to_contain_text("第 1 /")
    first = _shown_flag(page)
    assert first in {f["id"] for f in seeded}
    expect(page.locator("#frame-box rect")).to_have_count(1)
    expect(page.locator("#evidence-img")).to_have_attribute("src", re.compile(r"^blob:"))
    expect(page.locator("#flag-facts")).to_contain_text("置信度")
    expect(page.locator("#inset")).to_have_attribute("data-shown", str(first))
    screenshot(page, "inspector")

    page.keyboard.press("d")
    expect(page.locator("#review-choices")).to_contain_text(re.compile("选择重复对象|250 米内没有同类"))
    page.keyboard.press("Escape")
    expect(page.locator("#review-choices")).to_be_hidden()

    page.keyboard.press("a")
    expect(body).not_to_have_attribute("data-flag-id", str(first))
    accepted = _flag(live_server, first)
    assert accepted["status"] == "accepted" and accepted["case_id"] is not None
    second = _shown_flag(page)
    page.keyboard.press("r")
    expect(body).not_to_have_attribute("data-flag-id", str(second))
    assert _flag(live_server, second)["status"] == "rejected"
    third = _shown_flag(page)
    page.keyboard.press("e")
    expect(page.locator("#review-choices")).to_contain_text("0102 暴露垃圾")
    page.keyboard.press("2")
    expect(page.locator("#flag-title")).to_contain_text("暴露垃圾 · 0102")
    assert _flag(live_server, third)["category"] == "0102"
    page.keyboard.press("Shift+A")
    expect(page.locator("#review-empty")).to_be_visible()
    assert _flag(live_server, third)["status"] == "accepted"

    page.click("#tab-board")
    card = page.locator(f'.case-card[data-case-id="{accepted["case_id"]}"]')
    expect(card).to_be_visible()
    expect(page.locator('.board-col[data-column="undispatched"]')).to_contain_text(f"#{accepted['case_id']}")
    expect(card.locator(".countdown")).to_contain_text("剩余")
    compound = page.locator('.board-col[data-column="compound"] .case-card')
    expect(compound.first).to_have_attribute("data-case-id", str(loop_cases["overdue"]["id"]))
    expect(compound.first).to_have_class(re.compile("overdue"))
    expect(compound.first.locator(".countdown")).to_contain_text("超时 1:3")
    expect(page.locator('.board-col[data-column="street"]')).to_contain_text(f"#{loop_cases['street']['id']}")
    expect(page.locator(f'.case-card[data-case-id="{loop_cases["closed"]["id"]}"]')).to_have_count(0)
    card.click()
    detail = page.locator("#case-detail")
    expect(detail).to_contain_text("立案")
    expect(detail.locator('form[data-action="dispatch"]')).to_be_visible()
    screenshot(page, "inspector-board")

    page.click("#lang-toggle")
    expect(page.locator("#tab-board")).to_have_text("Case board")
    expect(card.locator(".countdown")).to_contain_text("left")
    page.click("#lang-toggle")


def test_dashboard_charts_and_recheck_mission(
    page: Page,
    live_server: LiveServer,
    seeded: list[dict[str, Any]],
    loop_cases: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    headers = _token(live_server, "inspector")
    accepted = httpx.post(
        f"{live_server.url}/api/v1/flags/{seeded[2]['id']}/review", headers=headers, json={"action": "accept"}
    )
    assert accepted.status_code in (200, 409), accepted.text
    case_id = _flag(live_server, seeded[2]["id"])["case_id"]
    grid = httpx.get(f"{live_server.url}/api/v1/cases/{case_id}", headers=headers).json()["grid_code"]
    assert grid is not None

    log_in(page, live_server, "inspector", "/inspector")
    page.click("#tab-dashboard")
    row = page.locator(f'#grid-table tr[data-code="{grid}"]')
    expect(row).to_be_visible()
    expect(page.locator("#chart-ontime rect")).not_to_have_count(0)
    expect(page.locator("#chart-hours rect")).not_to_have_count(0)
    row.locator("input[type=checkbox]").check()
    expect(page.locator("#chart-category rect")).not_to_have_count(0)
    expect(page.locator("#chart-trend polyline")).to_have_count(2)
    page.click("#recheck")
    result = page.locator("#recheck-result")
    expect(result).to_contain_text("复查航线", timeout=30_000)  # the server plans a mission: slow under load
    with page.expect_download() as info:
        result.locator('button[data-format="plan"]').click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    plan = json.loads(path.read_text())
    assert plan["fileType"] == "Plan" and plan["mission"]["items"]
    copy_artifact(path, "inspector-recheck.plan")
    screenshot(page, "inspector-dashboard")


def test_a_grid_worker_sees_own_cases_and_starts_one(
    page: Page, live_server: LiveServer, loop_cases: dict[str, dict[str, Any]]
) -> None:
    log_in(page, live_server, "worker", "/inspector")
    expect(page.locator("#tab-review")).to_be_hidden()
    expect(page.locator("#pane-board")).to_be_visible()
    case_id = loop_cases["compound"]["id"]
    card = page.locator(f'.case-card[data-case-id="{case_id}"]')
    card.click()
    start = page.locator('#case-detail form[data-action="start"]')
    expect(page.locator('#case-detail form[data-action="dispatch"]')).to_have_count(0)
    start.locator("button").click()
    expect(page.locator("#case-detail")).to_contain_text("处置中")
    expect(page.locator('#case-detail form[data-action="handle"]')).to_be_visible()
    state = httpx.get(
        f"{live_server.url}/api/v1/cases/{case_id}", headers=_token(live_server, "worker")
    ).json()
    assert state["state"] == "in_progress"
