"""``skygrid sim-vehicle``, ``skygrid fly`` and ``skygrid mission upload``: missions onto a vehicle, and flying them.

Heavy imports (pymavlink, shapely) stay inside the commands so that ``skygrid --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from drone.link import Telemetry, VehicleLink
    from drone.model import MissionItem
    from drone.sim.vehicle import TrackPoint

_MISSION_FILES = (".plan", ".waypoints")
_CONNECT_HELP = (
    "Vehicle link: udpin:HOST:PORT, udpout:HOST:PORT, tcp:HOST:PORT or serial:DEVICE[:BAUD] "
    "(e.g. tcp:127.0.0.1:5760 for ArduPilot SITL, udpout:127.0.0.1:14550 for skygrid sim-vehicle)."
)


@dataclass(frozen=True)
class _MissionFile:
    """What a mission file puts on the vehicle; ``fence``/``rally`` are None when the format has none."""

    mission: tuple[MissionItem, ...]
    fence: tuple[MissionItem, ...] | None
    rally: tuple[MissionItem, ...] | None


def _read_mission_file(path: Path) -> _MissionFile:
    from drone.formats import MissionFileError

    suffix = path.suffix.lower()
    try:
        if suffix == ".plan":
            from drone.formats.qgc_plan import read_plan

            plan = read_plan(path)
            return _MissionFile(plan.mission, plan.fence, plan.rally)
        if suffix == ".waypoints":
            from drone.formats.waypoints import read_waypoints

            return _MissionFile(read_waypoints(path), None, None)
    except MissionFileError as error:
        raise click.ClickException(str(error)) from error
    raise click.BadParameter(
        f"{path}: cannot load a {suffix or 'extensionless'} file onto a vehicle; use {' or '.join(_MISSION_FILES)}",
        param_hint="MISSION",
    )


def _same_item(sent: MissionItem, back: MissionItem) -> bool:
    """Equal as far as MAVLink carries it: params and altitude as float32, lat/lon in 1e-7 degrees."""

    def close(a: float, b: float, tolerance: float) -> bool:
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=tolerance)

    floats = ("param1", "param2", "param3", "param4", "altitude_m")
    return (
        (sent.seq, sent.command, sent.frame, sent.mission_type)
        == (back.seq, back.command, back.frame, back.mission_type)
        and all(close(getattr(sent, name), getattr(back, name), 1e-6) for name in floats)
        and close(sent.lat_deg, back.lat_deg, 1.5e-7)
        and close(sent.lon_deg, back.lon_deg, 1.5e-7)
    )


def _load(link: VehicleLink, mission_file: _MissionFile) -> str:
    """Upload what the file holds and read it back; item 0 (home) is the vehicle's own. Returns a summary."""
    from drone.link import MissionType

    parts = {
        MissionType.MISSION: mission_file.mission,
        MissionType.FENCE: mission_file.fence,
        MissionType.RALLY: mission_file.rally,
    }
    counts = []
    for mission_type, items in parts.items():
        if items is None:
            continue
        link.upload_mission(items, mission_type)
        back = link.download_mission(mission_type)
        skip = 1 if mission_type is MissionType.MISSION else 0  # ArduPilot puts its home in slot 0
        if len(back) != len(items) or not all(map(_same_item, items[skip:], back[skip:])):
            raise click.ClickException(
                f"{mission_type.name.lower()} read back from the vehicle differs from what was sent "
                "(上传校验失败); try the upload again"
            )
        counts.append(f"{len(items) - skip} {mission_type.name.lower()} items")
    return ", ".join(counts)


def _connect(url: str, timeout_s: float, link_loss_s: float = 3.0) -> VehicleLink:
    from drone.link import LinkSettings, connect

    try:
        return connect(url, LinkSettings(connect_timeout_s=timeout_s, heartbeat_timeout_s=link_loss_s))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--connect") from error


@click.command("upload")
@click.argument("mission_path", metavar="MISSION", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--connect", "url", required=True, help=_CONNECT_HELP)
@click.option(
    "--timeout-s", type=float, default=10.0, show_default=True, help="Wait this long for the vehicle."
)
def upload(mission_path: Path, url: str, timeout_s: float) -> None:
    """Load a .plan (mission, fence, rally points) or .waypoints file onto a vehicle and verify it (上传航线)."""
    from drone.link import LinkError

    mission_file = _read_mission_file(mission_path)
    try:
        with _connect(url, timeout_s) as link:
            summary = _load(link, mission_file)
            click.echo(f"uploaded {summary} to vehicle {link.target_system} on {url}; read back and verified")
    except LinkError as error:
        raise click.ClickException(str(error)) from error


@click.command("fly")
@click.argument("mission_path", metavar="MISSION", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--connect", "url", required=True, help=_CONNECT_HELP)
@click.option(
    "--timeout-s", type=float, default=10.0, show_default=True, help="Wait this long for the vehicle."
)
@click.option(
    "--every-s", type=float, default=2.0, show_default=True, help="Print the position this often (seconds)."
)
@click.option(
    "--arm-wait-s",
    type=float,
    default=60.0,
    show_default=True,
    help="Keep trying to arm this long while pre-arm checks fail (GPS fix, EKF settling after boot).",
)
@click.option(
    "--link-loss-s",
    type=float,
    default=3.0,
    show_default=True,
    help="Count the link as lost after this long without a heartbeat.",
)
@click.option(
    "--give-up-s",
    type=float,
    default=60.0,
    show_default=True,
    help="Stop following when the link stays lost this long (the vehicle flies on under its failsafe).",
)
def fly(
    mission_path: Path,
    url: str,
    timeout_s: float,
    every_s: float,
    arm_wait_s: float,
    link_loss_s: float,
    give_up_s: float,
) -> None:
    """Upload a mission, arm, start it and follow the flight to landing (执行巡查飞行).

    Arms in GUIDED and starts with MAV_CMD_MISSION_START, as ArduCopter needs; prints items reached, status
    texts and the position until the vehicle lands and disarms.
    """
    from drone.link import LinkError

    mission_file = _read_mission_file(mission_path)
    try:
        with _connect(url, timeout_s, link_loss_s) as link:
            click.echo(f"connected to vehicle {link.target_system} on {url}")
            click.echo(f"uploaded {_load(link, mission_file)}")
            link.set_mode("GUIDED")
            _arm_when_ready(link, arm_wait_s)
            link.start_mission()
            click.echo("armed and started (已解锁并开始任务)")
            follower = _Follower(len(mission_file.mission) - 1, every_s)
            asyncio.run(follower.follow(link, give_up_s))
    except LinkError as error:
        raise click.ClickException(str(error)) from error
    except TimeoutError:
        raise click.ClickException(
            f"link lost for more than {give_up_s:g} s; the vehicle flies on under its own failsafe "
            "(链路中断，飞机按失控保护继续飞行)"
        ) from None


def _arm_when_ready(link: VehicleLink, wait_s: float) -> None:
    """Arm, retrying every 2 s while the autopilot refuses (a vehicle just booted fails pre-arm checks)."""
    from drone.link import CommandRejectedError

    deadline = time.monotonic() + wait_s
    said: set[str] = set()
    while True:
        try:
            link.arm()
            return
        except CommandRejectedError as refused:
            if time.monotonic() + 2.0 > deadline:
                raise
            reason = "; ".join(refused.reasons) or str(refused)
            if reason not in said:
                said.add(reason)
                click.echo(f"not ready to arm, retrying: {reason} (等待解锁条件)")
        time.sleep(2.0)


class _Follower:
    """Prints a flight's progress from its telemetry until the vehicle lands and disarms."""

    def __init__(self, last_seq: int, every_s: float) -> None:
        self.last_seq = last_seq
        self.every_s = every_s
        self.started_s = time.monotonic()
        self.next_position_s = 0.0
        self.battery = ""
        self.reached = 0

    async def follow(self, link: VehicleLink, give_up_s: float) -> None:
        """Follow until landed; raises TimeoutError when the link stays lost for ``give_up_s``."""
        from drone.link import LinkLost, LinkRestored, VehicleState

        flew = False
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as lost_deadline:
            async for event in link.telemetry():
                if isinstance(event, LinkLost):
                    lost_deadline.reschedule(loop.time() + give_up_s)
                elif isinstance(event, LinkRestored):
                    lost_deadline.reschedule(None)
                self.show(event)
                if isinstance(event, VehicleState):
                    flew = flew or event.armed
                    if flew and not event.armed:
                        break
        minutes = (time.monotonic() - self.started_s) / 60.0
        click.echo(f"landed and disarmed after {minutes:.1f} min; {self.reached} items reached (已降落)")

    def show(self, event: Telemetry) -> None:
        from drone.link import (
            Battery,
            ItemReached,
            LinkLost,
            LinkRestored,
            Position,
            StatusText,
            VehicleState,
        )

        if isinstance(event, ItemReached):
            self.reached += 1
            click.echo(f"reached item {event.seq}/{self.last_seq}")
        elif isinstance(event, StatusText) and event.severity <= 5:  # notice or worse; info is chatter
            click.echo(f"vehicle: {event.text}")
        elif isinstance(event, VehicleState):
            click.echo(f"mode {event.mode}, {'armed' if event.armed else 'disarmed'}")
        elif isinstance(event, Battery) and event.remaining_percent is not None:
            self.battery = f", battery {event.remaining_percent}%"
        elif isinstance(event, Position) and time.monotonic() >= self.next_position_s:
            self.next_position_s = time.monotonic() + self.every_s
            click.echo(
                f"at {event.lat_deg:.6f}, {event.lon_deg:.6f}, {event.relative_altitude_m:.1f} m{self.battery}"
            )
        elif isinstance(event, LinkLost):
            click.echo(f"link lost: no heartbeat for {event.silent_s:.1f} s (链路中断)", err=True)
        elif isinstance(event, LinkRestored):
            click.echo("link restored (链路恢复)", err=True)


def _parse_lat_lon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected LAT,LON such as 31.30,120.62, got {text!r}", param_hint="--home"
        ) from None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise click.BadParameter(f"{text!r} is not a latitude,longitude in degrees", param_hint="--home")
    return lat, lon


def _track_csv(track: tuple[TrackPoint, ...]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["time_s", "lat_deg", "lon_deg", "altitude_agl_m", "yaw_deg", "pitch_deg", "gimbal_pitch_deg"]
    )
    for point in track:
        pose = point.pose
        writer.writerow(
            [f"{point.time_s:.2f}", f"{pose.lat_deg:.7f}", f"{pose.lon_deg:.7f}", f"{pose.altitude_agl_m:.2f}",
             f"{pose.yaw_deg:.1f}", f"{pose.pitch_deg:.1f}", f"{pose.gimbal_pitch_deg:.1f}"]
        )  # fmt: skip
    return out.getvalue().encode("utf-8")


@click.command("sim-vehicle")
@click.option(
    "--listen",
    "url",
    default="udpin:127.0.0.1:14550",
    show_default=True,
    help="Endpoint: udpin:HOST:PORT (connect with udpout:), udpout:HOST:PORT, or tcp:HOST:PORT (connect with tcp:).",
)
@click.option("--home", required=True, help="Take-off point LAT,LON (WGS-84 degrees).")
@click.option(
    "--home-amsl-m", type=float, default=0.0, show_default=True, help="Home altitude above sea level."
)
@click.option(
    "--speedup", type=float, default=1.0, show_default=True, help="Simulated seconds per real second."
)
@click.option("--speed-m-s", type=float, default=10.0, show_default=True, help="Horizontal speed in AUTO.")
@click.option(
    "--endurance-min", type=float, default=25.0, show_default=True, help="Flight time on a full battery."
)
@click.option(
    "--duration-s", type=float, help="Stop after this many real seconds (default: run until Ctrl-C)."
)
@click.option(
    "--track",
    "track_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="On exit, write the flown track (CSV: time, position, attitude, gimbal).",
)
def sim_vehicle(
    url: str,
    home: str,
    home_amsl_m: float,
    speedup: float,
    speed_m_s: float,
    endurance_min: float,
    duration_s: float | None,
    track_path: Path | None,
) -> None:
    """Run a simulated ArduCopter on a MAVLink endpoint, to fly missions without a drone (模拟飞机)."""
    from drone.formats import atomic_write
    from drone.link import ConnectionFailedError
    from drone.sim import SimSettings, SimVehicle

    lat, lon = _parse_lat_lon(home)
    try:
        settings = SimSettings(
            home_lat_deg=lat,
            home_lon_deg=lon,
            home_altitude_amsl_m=home_amsl_m,
            speedup=speedup,
            speed_m_s=speed_m_s,
            endurance_s=endurance_min * 60.0,
        )
        vehicle = SimVehicle(url, settings).start()
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    except ConnectionFailedError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"simulated copter on {url}, home {lat:.6f},{lon:.6f}, speed-up {speedup:g}; Ctrl-C stops")
    try:
        _wait(duration_s)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        vehicle.stop()
        if track_path is not None:
            atomic_write({track_path: _track_csv(vehicle.track())})
            click.echo(f"wrote {track_path} ({len(vehicle.track())} points)")


def _wait(duration_s: float | None) -> None:
    deadline = math.inf if duration_s is None else time.monotonic() + duration_s
    while time.monotonic() < deadline:
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))


COMMANDS: list[click.Command] = [sim_vehicle, fly]
MISSION_COMMANDS: list[click.Command] = [upload]
