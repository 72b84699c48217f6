"""Mission file formats: adapters between :class:`drone.model.Mission` and the files mission tools open.

- ``.plan``: QGroundControl plan JSON (mission, geofence, rally points), read back by :func:`read_plan`;
- ``.waypoints``: QGC WPL 110 text (ArduPilot Mission Planner, MAVProxy), read back by :func:`read_waypoints`;
- ``.kmz``: DJI WPML (``wpmz/template.kml`` + ``wpmz/waylines.wpml``) for DJI Pilot 2 / FlightHub 2;
- ``.geojson`` and ``.kml``: previews for any GIS or Google Earth.

A file format holds one flight; a mission of several sorties is written as ``NAME-1.EXT``, ``NAME-2.EXT`` …
(previews hold every sortie in one file). Every file is written atomically: on any error nothing is left.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from drone.model import Mission


class MissionFileError(ValueError):
    """A mission file cannot be read or written; the message names the file and the place in it."""


def atomic_write(files: Mapping[Path, bytes]) -> None:
    """Write every file or none: each goes to a temporary file next to it, then all are renamed in place."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            temps.append((temp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        for temp, path in temps:
            os.chmod(temp, 0o644)
            os.replace(temp, path)
    finally:
        for temp, _ in temps:
            if os.path.exists(temp):
                os.unlink(temp)


def sortie_paths(path: Path, count: int) -> list[Path]:
    """``path`` itself for one sortie, else ``stem-1.ext``, ``stem-2.ext`` … next to it."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


def write_mission(mission: Mission, path: str | Path) -> list[Path]:
    """Write ``mission`` in the format named by the file extension; returns the files written.

    Raises:
        MissionFileError: the extension is not one of ``.plan``, ``.waypoints``, ``.kmz``, ``.geojson``, ``.kml``.
    """
    from drone.formats import preview, qgc_plan, waypoints, wpml  # the writers import this module

    writers: dict[str, Callable[[Mission, Path], list[Path]]] = {
        ".plan": qgc_plan.write_plan,
        ".waypoints": waypoints.write_waypoints,
        ".kmz": wpml.write_kmz,
        ".geojson": preview.write_geojson,
        ".kml": preview.write_kml,
    }
    path = Path(path)
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise MissionFileError(
            f"{path}: unknown mission format {path.suffix!r}; use one of {', '.join(writers)}"
        )
    return writer(mission, path)
