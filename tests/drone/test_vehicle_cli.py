"""``skygrid mission upload``, ``skygrid fly`` and ``skygrid sim-vehicle`` on real mission files and sockets."""

from __future__ import annotations

import csv
import dataclasses
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from drone.formats import write_mission
from drone.formats.qgc_plan import read_plan
from drone.link import LinkSettings, MissionType, connect
from drone.model import Camera, GeoFencePolygon, Mission, Sortie, Waypoint, WaypointAction
from drone.sim import SimSettings, SimVehicle
from gis.cli import cli
from tests.drone.test_link import HOME_LAT, HOME_LON, collect_until_landed, square_mission, take_off

CAMERA = Camera("test", 13.2, 8.8, 8.8, 5280, 3956)


def patrol(fence: bool = True) -> Mission:
    """One sortie: three waypoints ~30–60 m from home at 25 m, inside a ±200 m inclusion fence."""
    home = Waypoint(lon_deg=HOME_LON, lat_deg=HOME_LAT, altitude_m=0.0)
    points = [(0.0003, 0.0), (0.0003, 0.0004), (0.0, 0.0004)]
    waypoints = tuple(
        Waypoint(
            lon_deg=HOME_LON + d_lon,
            lat_deg=HOME_LAT + d_lat,
            altitude_m=25.0,
            action=WaypointAction.START_SURVEY if i == 0 else WaypointAction.NONE,
        )
        for i, (d_lat, d_lon) in enumerate(points)
    )
    sortie = Sortie(0, home, waypoints, 8.3, 16.9, 60.0, 200.0)
    ring = ((HOME_LON - 0.002, HOME_LAT - 0.002), (HOME_LON + 0.002, HOME_LAT - 0.002),
            (HOME_LON + 0.002, HOME_LAT + 0.002), (HOME_LON - 0.002, HOME_LAT + 0.002))  # fmt: skip
    polygons = (GeoFencePolygon(ring, inclusion=True),) if fence else ()
    return Mission("test patrol", CAMERA, 25.0, (sortie,), fence=polygons)


@pytest.fixture
def sim() -> Iterator[SimVehicle]:
    settings = SimSettings(home_lat_deg=HOME_LAT, home_lon_deg=HOME_LON, speedup=100)
    with SimVehicle("udpin:127.0.0.1:0", settings) as vehicle:
        yield vehicle


@pytest.fixture
def url(sim: SimVehicle) -> str:
    return f"udpout:127.0.0.1:{sim.address[1]}"


def test_upload_plan_puts_mission_and_fence_on_the_vehicle(tmp_path: Path, url: str) -> None:
    (path,) = write_mission(patrol(), tmp_path / "patrol.plan")
    result = CliRunner().invoke(cli, ["mission", "upload", str(path), "--connect", url])
    assert result.exit_code == 0, result.output
    assert "read back and verified" in result.output
    with connect(url) as link:
        mission = link.download_mission()
        fence = link.download_mission(MissionType.FENCE)
    assert [item.command for item in mission].count(16) == 4  # home slot + three waypoints
    assert mission[-1].command == 20 and len(fence) == 4


def test_upload_waypoints_file(tmp_path: Path, url: str) -> None:
    (path,) = write_mission(patrol(fence=False), tmp_path / "patrol.waypoints")
    result = CliRunner().invoke(cli, ["mission", "upload", str(path), "--connect", url])
    assert result.exit_code == 0, result.output
    assert "fence" not in result.output


def test_fly_follows_the_patrol_to_landing(tmp_path: Path, sim: SimVehicle, url: str) -> None:
    (path,) = write_mission(patrol(), tmp_path / "patrol.plan")
    result = CliRunner().invoke(cli, ["fly", str(path), "--connect", url, "--every-s", "0.05"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    last_seq = len(read_plan(path).mission) - 1
    assert f"reached item {last_seq}/{last_seq}" in result.output  # the return-to-launch at the end
    assert "armed and started" in result.output
    assert lines[-1].startswith("landed and disarmed after")
    assert any(line.startswith("at 31.3") and "battery" in line for line in lines)
    assert sim.pose().altitude_agl_m == 0.0


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["fly", "{plan}", "--connect", "14550"], "udpin:HOST:PORT"),
        (["fly", "{dir}/patrol.kmz", "--connect", "{url}"], "use .plan or .waypoints"),
        (["mission", "upload", "{dir}/missing.plan", "--connect", "{url}"], "file not found"),
        (["mission", "upload", "{dir}/broken.plan", "--connect", "{url}"], "not a JSON .plan"),
        (["mission", "upload", "{dir}/refused.waypoints", "--connect", "{url}"], "command not supported"),
        (["mission", "upload", "{plan}", "--connect", "udpin:127.0.0.1:0", "--timeout-s", "0.3"],
         "no heartbeat from a vehicle"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(tmp_path: Path, url: str, arguments: list[str], words: str) -> None:
    (plan,) = write_mission(patrol(), tmp_path / "patrol.plan")
    (tmp_path / "broken.plan").write_text("{ not json", encoding="utf-8")
    (tmp_path / "refused.waypoints").write_text(
        "QGC WPL 110\n0\t1\t0\t16\t0\t0\t0\t0\t31.3\t120.6\t0\t1\n1\t0\t3\t31000\t0\t0\t0\t0\t0\t0\t20\t1\n",
        encoding="utf-8",
    )
    filled = [a.format(plan=plan, dir=tmp_path, url=url) for a in arguments]
    result = CliRunner().invoke(cli, filled)
    assert result.exit_code != 0
    assert words in result.output


def test_fly_gives_up_when_the_link_stays_lost(tmp_path: Path, sim: SimVehicle, url: str) -> None:
    (path,) = write_mission(patrol(), tmp_path / "patrol.plan")

    def stop_in_flight() -> None:
        deadline = time.monotonic() + 10.0
        while sim.pose().altitude_agl_m < 5.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        sim.stop()

    threading.Thread(target=stop_in_flight).start()
    arguments = ["fly", str(path), "--connect", url, "--link-loss-s", "0.5", "--give-up-s", "0.2"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 1
    assert "link lost: no heartbeat" in result.output
    assert "link lost for more than 0.2 s" in result.output


def test_fly_stops_when_the_vehicle_will_not_arm(tmp_path: Path, url: str) -> None:
    outside = dataclasses.replace(
        patrol(), fence=(GeoFencePolygon(patrol().fence[0].vertices, inclusion=False),)
    )
    (path,) = write_mission(outside, tmp_path / "patrol.plan")  # home lies inside an exclusion zone
    result = CliRunner().invoke(cli, ["fly", str(path), "--connect", url, "--arm-wait-s", "2.5"])
    assert result.exit_code == 1
    assert result.output.count("not ready to arm, retrying: PreArm: Vehicle outside fence") == 1
    assert "arm/disarm refused: failed" in result.output


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # a fresh Python process importing the CLI
def test_sim_vehicle_command_flies_and_writes_its_track_on_ctrl_c(tmp_path: Path) -> None:
    port = free_udp_port()
    track = tmp_path / "track.csv"
    command = [sys.executable, "-c", "from gis.cli import main; main()", "sim-vehicle", "--listen",
               f"udpin:127.0.0.1:{port}", "--home", f"{HOME_LAT},{HOME_LON}", "--speedup", "100",
               "--track", str(track)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with connect(f"udpout:127.0.0.1:{port}", LinkSettings(connect_timeout_s=10.0)) as link:
            take_off(link, square_mission())
            collect_until_landed(link)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert f"wrote {track}" in output
    with track.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert max(float(row["altitude_agl_m"]) for row in rows) == pytest.approx(20.0)
    assert float(rows[-1]["altitude_agl_m"]) == 0.0


@pytest.mark.parametrize(
    ("home", "words"), [("120.6,31.3,", "expected LAT,LON"), ("120.6,31.3", "not a latitude,longitude")]
)
def test_sim_vehicle_rejects_a_bad_home(home: str, words: str) -> None:
    result = CliRunner().invoke(cli, ["sim-vehicle", "--home", home, "--duration-s", "0"])
    assert result.exit_code == 2
    assert words in result.output
