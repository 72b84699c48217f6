"""Flights through the API: a simulator flight through the real detector with frames and flags stored and
pushed over server-sent events, bad inputs, territory scoping, a slow subscriber, and ``skygrid serve --demo``."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import select

from api.cli import _fail_interrupted
from api.db import transaction
from api.flight_events import FlightChannel
from api.models import Detection, Flag, Flight, Frame, Job, PlanVersion, User, utcnow
from drone.framedir import write_frame_dir
from drone.planner import MissionSettings, plan_grids
from drone.simsource import SimFrameSource, mission_poses, video_camera
from drone.world import build_world, read_zones
from gis.model import District as GisDistrict
from gis.model import GridPlan
from tests.api.conftest import COMMUNITY_B, Env
from tests.api.test_missions import plan_mission, small_grid, wait_job

GBT_CODES = {"0101", "0102", "0505", "0506", "0507"}


def read_events(env: Env, flight_id: int, query: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    """Collect the flight's server-sent events until ``done`` (authenticated by ``?access_token=``)."""
    with env.client.stream("GET", f"/api/v1/flights/{flight_id}/events?{query}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((kind, json.loads(line.removeprefix("data: "))))


def subscribed(env: Env, flight_id: int) -> bool:
    hub = getattr(env.client.app.state, "flight_hub", None)  # type: ignore[attr-defined]
    return hub is not None and flight_id in hub.channels and bool(hub.channels[flight_id].subscribers)


def test_simulator_flight_stores_frames_and_flags_live(drafted: Env) -> None:
    mission = plan_mission(drafted)
    grid = small_grid(drafted)
    headers = drafted.login("operator")
    created = drafted.client.post(
        "/api/v1/flights",
        headers=headers,
        json={"mission_id": mission["id"], "source": {"kind": "simulator"}},
    )
    assert created.status_code == 201, created.text
    flight = created.json()
    assert flight["status"] == "registered" and flight["source_kind"] == "simulator"
    token = headers["Authorization"].removeprefix("Bearer ")
    live: list[tuple[str, dict[str, Any]]] = []
    reader = threading.Thread(target=read_events, args=(drafted, flight["id"], f"access_token={token}", live))
    reader.start()
    deadline = time.monotonic() + 10
    while not subscribed(drafted, flight["id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = drafted.client.post(f"/api/v1/flights/{flight['id']}/run", headers=headers)
    assert started.status_code == 202, started.text
    job = wait_job(drafted, started.json()["job_id"], timeout_s=240)
    reader.join(timeout=30)
    assert job["status"] == "done", job["message"]

    detail = drafted.client.get(f"/api/v1/flights/{flight['id']}", headers=headers).json()
    assert detail["status"] == "done" and detail["frames"] > 0 and detail["last_position"] is not None
    flags = drafted.client.get(f"/api/v1/flights/{flight['id']}/flags", headers=headers).json()
    assert detail["flags"] == len(flags) > 0
    assert {f["category"] for f in flags} <= GBT_CODES
    near = shape(grid["geometry"]).buffer(0.003)  # the camera sees a little beyond the grid
    assert all(near.contains(shapely.Point(f["lon"], f["lat"])) for f in flags)
    assert any(f["grid_code"] == grid["grid_code"] for f in flags)
    check_stored_flags(drafted, flight["id"])
    with drafted.db.read() as session:
        frame_ids = select(Frame.id).where(Frame.flight_id == flight["id"])
        detections = session.scalars(select(Detection).where(Detection.frame_id.in_(frame_ids))).all()
    assert len(detections) == job["result"]["detections"] > 0
    assert all(d.score >= 0.25 and len(d.box_xyxy) == 4 for d in detections)

    kinds = [kind for kind, _ in live]
    assert kinds[-1] == "done" and {"status", "position", "frame", "flag"} <= set(kinds)
    assert {d["id"] for k, d in live if k == "flag"} == {f["id"] for f in flags}
    statuses = [d["status"] for k, d in live if k == "status"]
    assert statuses[-1] == "done" and "running" in statuses

    late: list[tuple[str, dict[str, Any]]] = []
    read_events(drafted, flight["id"], f"access_token={token}", late)
    assert [k for k, _ in late][:2] == ["status", "position"] and late[-1][0] == "done"
    image = drafted.client.get(f"/api/v1/flights/{flight['id']}/frames/latest.jpg?access_token={token}")
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    again = drafted.client.post(f"/api/v1/flights/{flight['id']}/run", headers=headers)
    assert again.status_code == 409
    check_track(drafted, flight["id"], headers, detail)


def check_track(env: Env, flight_id: int, headers: dict[str, str], detail: dict[str, Any]) -> None:
    """The track a reopened live view draws: every posed frame in order, ending at the last position."""
    track = env.client.get(f"/api/v1/flights/{flight_id}/track", headers=headers)
    assert track.status_code == 200, track.text
    body = track.json()
    coordinates = body["geometry"]["coordinates"]
    assert body["geometry"]["type"] == "LineString" and len(coordinates) == detail["frames"]
    assert body["properties"] == {"flight_id": flight_id, "positions": detail["frames"]}
    last = detail["last_position"]
    assert coordinates[-1] == pytest.approx([last["lon"], last["lat"]])
    listed = env.client.get("/api/v1/flights", headers=headers).json()
    assert listed[0]["id"] == flight_id and listed[0]["created_at"] == detail["created_at"]


def check_stored_flags(env: Env, flight_id: int) -> None:
    """Every flag row has its evidence crop and frame on disk, a box inside the frame and its sightings."""
    with env.db.read() as session:
        rows = session.scalars(select(Flag).where(Flag.flight_id == flight_id)).all()
    data = env.settings.data_dir
    for row in rows:
        assert row.evidence_path and (data / row.evidence_path).is_file()
        assert row.frame_path and (data / row.frame_path).is_file()
        assert row.frame_box is not None and len(row.frame_box) == 4
        assert (
            0 <= row.frame_box[0] < row.frame_box[2] <= 1920
            and 0 <= row.frame_box[1] < row.frame_box[3] <= 1080
        )
        assert row.sightings and row.sightings >= 1 and row.status == "new" and row.rule and row.class_name


@pytest.mark.parametrize(
    ("source", "mission", "status", "field"),
    [
        ({"kind": "simulator"}, 999, 404, "mission_id"),  # unknown mission
        ({"kind": "simulator"}, None, 422, "mission_id"),  # the simulator flies a mission
        ({"kind": "video_srt", "uri": "/etc/hostname"}, None, 422, "source.uri"),  # outside the data folder
        ({"kind": "video_srt", "uri": "../../etc/hostname"}, None, 422, "source.uri"),  # climbing out
        ({"kind": "photos", "uri": "no-such-folder"}, None, 422, "source.uri"),  # inside, but missing
        ({"kind": "stream", "uri": "file:///etc/hostname"}, None, 422, "source.uri"),  # not a stream address
    ],
)
def test_bad_flight_inputs_leave_nothing(
    drafted: Env, source: dict[str, Any], mission: int | None, status: int, field: str
) -> None:
    publish(drafted)
    (drafted.settings.data_dir).mkdir(parents=True, exist_ok=True)
    response = drafted.client.post(
        "/api/v1/flights", headers=drafted.login("operator"), json={"mission_id": mission, "source": source}
    )
    assert response.status_code == status, response.text
    assert response.json()["where"].get("field") == field
    assert drafted.client.get("/api/v1/flights", headers=drafted.login("operator")).json() == []
    flights_dir = drafted.settings.data_dir / "flights"
    assert not flights_dir.exists() or not any(flights_dir.iterdir())


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ({"kind": "photos", "uri": "imports/photos"}, "JPEG photos"),  # inside the data folder, but empty
        (
            {"kind": "stream", "uri": "rtsp://127.0.0.1:9/live", "telemetry": "udpin:127.0.0.1:0"},
            "cannot open",
        ),
    ],
)
def test_registered_sources_that_cannot_fly_fail_with_the_reason(
    drafted: Env, source: dict[str, str], reason: str
) -> None:
    publish(drafted)
    (drafted.settings.data_dir / "imports" / "photos").mkdir(parents=True)
    headers = drafted.login("operator")
    response = drafted.client.post("/api/v1/flights", headers=headers, json={"source": source})
    assert response.status_code == 201, response.text
    if source["kind"] == "photos":
        assert Path(response.json()["source_uri"]) == (drafted.settings.data_dir / source["uri"]).resolve()
    started = drafted.client.post(f"/api/v1/flights/{response.json()['id']}/run", headers=headers)
    job = wait_job(drafted, started.json()["job_id"])
    assert job["status"] == "failed" and reason in job["message"]
    flight = drafted.client.get(f"/api/v1/flights/{response.json()['id']}", headers=headers).json()
    assert flight["status"] == "failed" and flight["frames"] == flight["flags"] == 0


def test_a_recorded_frame_folder_is_detected_into_flags(
    drafted: Env, demo_gpkg: Path, demo_world: tuple[GisDistrict, GridPlan]
) -> None:
    publish(drafted)
    grid = small_grid(drafted)
    folder = drafted.settings.data_dir / "imports" / "patrol"
    written = record_patrol(demo_gpkg, demo_world, grid["grid_code"], folder)
    headers = drafted.login("operator")
    created = drafted.client.post(
        "/api/v1/flights", headers=headers, json={"source": {"kind": "photos", "uri": "imports/patrol"}}
    )
    assert created.status_code == 201, created.text
    started = drafted.client.post(f"/api/v1/flights/{created.json()['id']}/run", headers=headers)
    job = wait_job(drafted, started.json()["job_id"], timeout_s=240)
    assert job["status"] == "done", job["message"]
    assert job["result"]["frames_read"] == written
    flags = drafted.client.get(f"/api/v1/flights/{created.json()['id']}/flags", headers=headers).json()
    assert flags and {f["category"] for f in flags} <= GBT_CODES
    assert any(f["grid_code"] == grid["grid_code"] for f in flags)


def record_patrol(gpkg: Path, world: tuple[GisDistrict, GridPlan], grid_code: str, folder: Path) -> int:
    """A frame folder (frames.jsonl + images/) of a short simulated patrol over one grid, as a drone records it."""
    district, plan = world
    settings = MissionSettings(altitude_m=120, front_overlap=0.5, side_overlap=0.3)
    mission = plan_grids(plan, [grid_code], settings=settings)
    area = plan.grids[plan.grids["grid_code"] == grid_code].to_crs(4326).geometry.iloc[0].buffer(0.002)
    simulated = build_world(district, read_zones(gpkg), seed=3, area_wgs84=area)
    poses = mission_poses(mission, start=datetime(2026, 5, 1, 9, tzinfo=UTC))
    return write_frame_dir(
        SimFrameSource(simulated, video_camera(mission.camera), poses, seed=3), folder
    ).frames


def publish(env: Env) -> None:
    """Mark the drafted plan published (flights without a mission place their flags in the published plan)."""
    with transaction(env.db.write) as session:
        version = session.get(PlanVersion, 1)
        assert version is not None
        version.status, version.published_at = "published", utcnow()


def test_operator_of_another_territory_is_refused(drafted: Env, password_hash: str) -> None:
    with transaction(drafted.db.write) as session:
        session.add(
            User(username="operator_b", password_hash=password_hash, role="operator", territory=COMMUNITY_B)
        )
    mission = plan_mission(drafted)
    other = drafted.login("operator_b")
    body = {"mission_id": mission["id"], "source": {"kind": "simulator"}}
    assert drafted.client.post("/api/v1/flights", headers=other, json=body).status_code == 403
    upload = drafted.client.post(
        f"/api/v1/missions/{mission['id']}/upload", headers=other, json={"connection": "sim"}
    )
    assert upload.status_code == 403
    assert drafted.client.get(f"/api/v1/missions/{mission['id']}/preview", headers=other).status_code == 404
    flight = drafted.client.post("/api/v1/flights", headers=drafted.login("operator"), json=body).json()
    assert drafted.client.post(f"/api/v1/flights/{flight['id']}/run", headers=other).status_code == 403
    assert drafted.client.get(f"/api/v1/flights/{flight['id']}", headers=other).status_code == 404
    assert drafted.client.get(f"/api/v1/flights/{flight['id']}/track", headers=other).status_code == 404
    assert drafted.client.get("/api/v1/flights", headers=other).json() == []
    assert drafted.client.get(f"/api/v1/flights/{flight['id']}/events").status_code == 401


def test_a_slow_subscriber_gets_every_flag_and_the_newest_position() -> None:
    async def scenario() -> tuple[list[str], int, float]:
        channel = FlightChannel()
        subscriber = channel.subscribe(asyncio.get_running_loop())
        started = time.perf_counter()
        for i in range(20_000):  # the pipeline publishes; nobody reads meanwhile
            channel.publish("position", {"lon": 120.0 + i * 1e-7, "lat": 31.0})
            if i % 1000 == 0:
                channel.publish("flag", {"id": i // 1000})
        channel.publish("done", {"status": "done"})
        publish_s = time.perf_counter() - started
        events = await subscriber.next_events(1.0)
        kinds = [e.kind for e in events]
        assert events[0].data["lon"] == pytest.approx(120.0 + 19_999 * 1e-7)
        assert [e.data["id"] for e in events if e.kind == "flag"] == list(range(20))
        return kinds, subscriber.dropped, publish_s

    kinds, dropped, publish_s = asyncio.run(scenario())
    assert kinds == ["position"] + ["flag"] * 20 + ["done"]
    assert dropped == 19_999 and publish_s < 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_demo_seeds_and_flies(tmp_path: Path) -> None:
    port = free_port()
    command = [str(Path(sys.executable).with_name("skygrid")), "serve", "--demo"]
    command += ["--data-dir", str(tmp_path / "data"), "--port", str(port)]
    env = {**os.environ, "SKYGRID_RATE_LIMIT_PER_MINUTE": "0"}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        printed = _read_until(server, log, "Uvicorn running", timeout_s=180)
        for page in ("/planner", "/operator", "/inspector"):
            assert f"http://127.0.0.1:{port}{page}" in printed
        assert "operator" in printed and "skygrid-demo" in printed
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "operator", "password": "skygrid-demo"}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        flight = _wait_flight(base, headers, timeout_s=300)
        assert flight["status"] == "done" and flight["frames"] > 0
        assert httpx.get(f"{base}/operator").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def _read_until(server: subprocess.Popen[str], log: Path, marker: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        printed = log.read_text()
        if marker in printed:
            return printed
        time.sleep(0.5)
    raise AssertionError("the server did not start:\n" + log.read_text())


def _wait_flight(base: str, headers: dict[str, str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        listed = httpx.get(f"{base}/api/v1/flights", headers=headers).json()
        assert len(listed) == 1 and listed[0]["source_kind"] == "simulator"
        flight: dict[str, Any] = httpx.get(f"{base}/api/v1/flights/{listed[0]['id']}", headers=headers).json()
        if flight["status"] in ("done", "failed") or time.monotonic() > deadline:
            return flight
        time.sleep(1.0)


def test_serve_marks_flights_interrupted_by_a_shutdown_failed(drafted: Env) -> None:
    mission = plan_mission(drafted)
    body = {"mission_id": mission["id"], "source": {"kind": "simulator"}}
    flight = drafted.client.post("/api/v1/flights", headers=drafted.login("operator"), json=body).json()
    with transaction(drafted.db.write) as session:
        row = session.get(Flight, flight["id"])
        assert row is not None
        row.status = "running"  # as a server killed mid-flight leaves it
        session.add(Job(kind="flight", status="running", params={"flight_id": row.id}, created_by="operator"))
    _fail_interrupted(drafted.db)
    detail = drafted.client.get(f"/api/v1/flights/{flight['id']}", headers=drafted.login("operator")).json()
    assert detail["status"] == "failed"
    with drafted.db.read() as session:
        job = session.scalars(select(Job).where(Job.kind == "flight")).one()
        assert job.status == "failed" and "stopped" in job.message
