"""QGC WPL 110 ``.waypoints`` files: the text mission format of Mission Planner, MAVProxy and pymavlink.

One line per item, tab-separated: ``seq current frame command p1 p2 p3 p4 lat lon alt autocontinue``; item 0
is home. Floats are written with ``repr`` so they read back bit for bit. The format holds the mission only
(no fence or rally points).
"""

from __future__ import annotations

import math
from pathlib import Path

from drone.formats import MissionFileError, atomic_write, sortie_paths
from drone.items import check_items, sortie_items
from drone.model import Mission, MissionItem

HEADER = "QGC WPL 110"


def write_waypoints(mission: Mission, path: Path) -> list[Path]:
    """Write one ``.waypoints`` file per sortie; returns the paths written."""
    paths = sortie_paths(Path(path), len(mission.sorties))
    files = {
        target: waypoints_text(sortie_items(sortie, mission), str(target)).encode("ascii")
        for target, sortie in zip(paths, mission.sorties, strict=True)
    }
    atomic_write(files)
    return paths


def waypoints_text(items: tuple[MissionItem, ...], where: str = "<waypoints>") -> str:
    """The QGC WPL 110 text of ``items``.

    Raises:
        MissionFileError: a parameter is NaN where ArduPilot rejects one.
    """
    try:
        check_items(items, where)
    except ValueError as error:
        raise MissionFileError(str(error)) from None
    lines = [HEADER]
    for it in items:
        values = (it.param1, it.param2, it.param3, it.param4, it.lat_deg, it.lon_deg, it.altitude_m)
        fields = [str(it.seq), str(int(it.current)), str(it.frame), str(it.command)]
        fields += [_number(v) for v in values] + [str(int(it.autocontinue))]
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value))


def read_waypoints(path: str | Path) -> tuple[MissionItem, ...]:
    """Read a QGC WPL 110 file.

    Raises:
        MissionFileError: missing file, wrong header, or a malformed line (named by its line number).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise MissionFileError(f"{path}: file not found") from None
    except UnicodeDecodeError as error:
        raise MissionFileError(f"{path}: not a text file: {error}") from None
    if not lines or lines[0].strip() != HEADER:
        first = lines[0][:40] if lines else ""
        raise MissionFileError(f"{path}: line 1 must be {HEADER!r}, got {first!r}")
    return tuple(
        _parse_line(line, number, path) for number, line in enumerate(lines[1:], start=2) if line.strip()
    )


def _parse_line(line: str, number: int, path: Path) -> MissionItem:
    fields = line.split("\t") if "\t" in line else line.split()
    if len(fields) != 12:
        raise MissionFileError(f"{path}: line {number} has {len(fields)} fields, expected 12")
    try:
        seq, current, frame, command = (int(v) for v in fields[:4])
        p1, p2, p3, p4, lat, lon, alt = (float(v) for v in fields[4:11])
        autocontinue = int(fields[11])
    except ValueError as error:
        raise MissionFileError(f"{path}: line {number}: {error}") from None
    return MissionItem(
        seq=seq,
        command=command,
        frame=frame,
        param1=p1,
        param2=p2,
        param3=p3,
        param4=p4,
        lat_deg=lat,
        lon_deg=lon,
        altitude_m=alt,
        current=bool(current),
        autocontinue=bool(autocontinue),
    )
