"""Live stream flights through the API: a video stream served over HTTP at its real pace, posed by a vehicle
sending MAVLink positions over UDP, as an RTSP camera and a telemetry radio would be — frames placed where the
vehicle says it is, a dropped link skipping frames rather than misplacing them, a link that never speaks failing
with the reason, a stream stopped by the operator, and bad addresses refused."""

from __future__ import annotations

import contextlib
import http.server
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from shapely.geometry import shape
from sqlalchemy import select

from api.models import Frame
from tests.api.conftest import Env
from tests.api.test_flights import publish
from tests.api.test_missions import small_grid, wait_job
from tests.drone.test_sources import free_udp_port, vehicle_sending_positions

FPS = 10
CHUNK_BYTES = 188 * 16  # whole MPEG-TS packets


def write_ts(path: Path, frames: int) -> Path:
    """An MPEG-TS video (the container live streams use), ``frames`` frames at :data:`FPS`."""
    with av.open(str(path), "w", format="mpegts") as output:
        stream = output.add_stream("mpeg2video", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            image = np.full((240, 320, 3), (7 * i) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


@contextlib.contextmanager
def paced_stream(video: Path, duration_s: float) -> Iterator[str]:
    """Serve ``video`` over HTTP on loopback spread over ``duration_s`` seconds, as a live camera sends it;
    yields its address."""
    data = video.read_bytes()
    pause_s = duration_s * CHUNK_BYTES / len(data)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the reader hung up: a stopped flight
                for start in range(0, len(data), CHUNK_BYTES):
                    self.wfile.write(data[start : start + CHUNK_BYTES])
                    self.wfile.flush()
                    time.sleep(pause_s)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    finally:
        server.shutdown()
        server.server_close()


def vehicle(
    port: int, lon: float, lat: float, for_s: float = math.inf
) -> contextlib.AbstractContextManager[None]:
    """A vehicle 60 m above home at (``lon``, ``lat``) sending its position ten times a second for ``for_s``
    seconds (then its radio drops)."""
    return vehicle_sending_positions(port, 0.1, lon=lon, lat=lat, for_s=for_s)


def register_stream(env: Env, uri: str, telemetry: str | None) -> Any:
    source = {"kind": "stream", "uri": uri} | ({"telemetry": telemetry} if telemetry else {})
    return env.client.post("/api/v1/flights", headers=env.login("operator"), json={"source": source})


def run(env: Env, flight_id: int) -> int:
    started = env.client.post(f"/api/v1/flights/{flight_id}/run", headers=env.login("operator"))
    assert started.status_code == 202, started.text
    job_id: int = started.json()["job_id"]
    return job_id


def stored_frames(env: Env, flight_id: int) -> list[Frame]:
    with env.db.read() as session:
        return list(session.scalars(select(Frame).where(Frame.flight_id == flight_id)).all())


def test_a_live_stream_is_posed_by_the_vehicles_mavlink_link(drafted: Env, tmp_path: Path) -> None:
    publish(drafted)
    centre = shape(small_grid(drafted)["geometry"]).centroid
    port = free_udp_port()
    video = write_ts(tmp_path / "live.ts", frames=8 * FPS)
    with paced_stream(video, duration_s=8.0) as url, vehicle(port, centre.x, centre.y):
        created = register_stream(drafted, url, f"udpin:127.0.0.1:{port}")
        assert created.status_code == 201, created.text
        assert created.json()["source_uri"] == url
        job = wait_job(drafted, run(drafted, created.json()["id"]), timeout_s=120)
    assert job["status"] == "done", job["message"]
    assert "source:unreadable_rest" not in job["result"]["skipped"]
    frames = stored_frames(drafted, created.json()["id"])
    # about one a second of an 8 s stream, less the first seconds FFmpeg reads at once to learn the stream
    assert len(frames) == job["result"]["frames_read"] >= 2
    assert all(abs(f.lon - centre.x) < 1e-6 and abs(f.lat - centre.y) < 1e-6 for f in frames)
    assert all(f.altitude_m == pytest.approx(60.0) for f in frames)
    assert all((drafted.settings.data_dir / f.path).is_file() for f in frames)
    detail = drafted.client.get(f"/api/v1/flights/{created.json()['id']}", headers=drafted.login("operator"))
    assert detail.json()["status"] == "done" and detail.json()["last_position"] is not None


def test_frames_after_the_link_drops_are_skipped_not_misplaced(drafted: Env, tmp_path: Path) -> None:
    publish(drafted)
    centre = shape(small_grid(drafted)["geometry"]).centroid
    port = free_udp_port()
    video = write_ts(tmp_path / "live.ts", frames=12 * FPS)
    with paced_stream(video, duration_s=12.0) as url, vehicle(port, centre.x, centre.y, for_s=6.0):
        created = register_stream(drafted, url, f"udpin:127.0.0.1:{port}")
        job = wait_job(drafted, run(drafted, created.json()["id"]), timeout_s=120)
    assert job["status"] == "done", job["message"]
    assert job["result"]["skipped"].get("source:telemetry_gap", 0) > 0
    frames = stored_frames(drafted, created.json()["id"])
    assert frames and all(abs(f.lon - centre.x) < 1e-6 for f in frames)


def test_a_link_that_never_reports_a_position_fails_the_flight_with_the_reason(
    drafted: Env, tmp_path: Path
) -> None:
    publish(drafted)
    drafted.settings.stream_position_wait_s = 1.0
    video = write_ts(tmp_path / "live.ts", frames=2 * FPS)
    with paced_stream(video, duration_s=2.0) as url:
        created = register_stream(drafted, url, f"udpin:127.0.0.1:{free_udp_port()}")
        job = wait_job(drafted, run(drafted, created.json()["id"]), timeout_s=60)
    assert job["status"] == "failed" and "GLOBAL_POSITION_INT" in job["message"]
    assert stored_frames(drafted, created.json()["id"]) == []


def test_the_operator_stops_a_live_stream_and_keeps_what_it_found(drafted: Env, tmp_path: Path) -> None:
    publish(drafted)
    centre = shape(small_grid(drafted)["geometry"]).centroid
    port = free_udp_port()
    video = write_ts(tmp_path / "live.ts", frames=120 * FPS)  # two minutes: it must not run to its end
    headers = drafted.login("operator")
    with paced_stream(video, duration_s=120.0) as url, vehicle(port, centre.x, centre.y):
        flight_id = register_stream(drafted, url, f"udpin:127.0.0.1:{port}").json()["id"]
        early = drafted.client.post(f"/api/v1/flights/{flight_id}/stop", headers=headers)
        assert early.status_code == 409 and "registered" in early.json()["detail"]
        job_id = run(drafted, flight_id)
        deadline = time.monotonic() + 60
        while not stored_frames(drafted, flight_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored_frames(drafted, flight_id), "no frame arrived"
        refused = drafted.client.post(f"/api/v1/flights/{flight_id}/stop", headers=drafted.login("inspector"))
        assert refused.status_code == 403
        asked = time.monotonic()
        stopped = drafted.client.post(f"/api/v1/flights/{flight_id}/stop", headers=headers)
        assert stopped.status_code == 202, stopped.text
        job = wait_job(drafted, job_id, timeout_s=60)
        assert time.monotonic() - asked < 30
    assert job["status"] == "done" and "stopped" in job["message"], job["message"]
    assert len(stored_frames(drafted, flight_id)) == job["result"]["frames_read"] < 120
    again = drafted.client.post(f"/api/v1/flights/{flight_id}/stop", headers=headers)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("telemetry", "reason"),
    [
        (None, "MAVLink link"),  # a stream cannot be placed without one
        ("udp:127.0.0.1", "not understood"),  # no port
        ("udpin:127.0.0.1:99999", "out of range"),
        ("/dev/ttyUSB0", "not understood"),  # serial needs its scheme
    ],
)
def test_a_stream_without_a_usable_link_is_refused(drafted: Env, telemetry: str | None, reason: str) -> None:
    publish(drafted)
    response = register_stream(drafted, "rtsp://192.0.2.1/live", telemetry)
    assert response.status_code == 422, response.text
    assert response.json()["where"] == {"field": "source.telemetry"} and reason in response.json()["detail"]
    assert drafted.client.get("/api/v1/flights", headers=drafted.login("operator")).json() == []
