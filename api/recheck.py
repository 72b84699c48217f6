"""Re-check missions: a drone flight to the open cases of a set of grids (:mod:`drone.inspection`), stored as
a mission with its sorties, its files written once into the data folder for download.

The patrol missions of :mod:`api.missions` are re-planned from their parameters on download; an inspection
mission depends on the cases open when it was made, so its files are kept instead
(``data_dir/missions/recheck-ID/FORMAT/``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
from sqlalchemy.orm import Session

from api.audit import record
from api.cases import visible
from api.errors import InputError, NotFoundError
from api.missions import FORMATS, write_files
from api.models import Case, Mission, Sortie, Zone
from api.security import Principal
from api.spatial import in_bbox
from api.workflow import FINAL_STATES
from drone.cameras import PRESETS
from drone.coverage import MissionPlanError
from drone.inspection import InspectionSettings, plan_inspection
from drone.model import Mission as DroneMission
from drone.planner import LonLat

#: ``Mission.params["kind"]`` of a re-check mission (patrol missions have none).
KIND = "recheck"


@dataclass(frozen=True)
class RecheckRequest:
    """Grids whose open cases to visit, the camera preset, the altitude and an optional take-off point."""

    grid_codes: tuple[str, ...]
    camera: str = "mavic3e"
    altitude_m: float = 40.0
    home_lonlat: LonLat | None = None


def open_cases(session: Session, who: Principal, grid_codes: Sequence[str]) -> list[Case]:
    """Open cases of ``grid_codes`` that the caller sees, oldest first."""
    stmt = visible(who).where(Case.grid_code.in_(list(grid_codes)), Case.state.not_in(FINAL_STATES))
    return list(session.scalars(stmt.order_by(Case.id)))


def store_recheck(
    session: Session, who: Principal, request: RecheckRequest, data_dir: Path
) -> tuple[Mission, list[int]]:
    """Plan, store and write the re-check mission; returns the mission row and the cases it visits."""
    for code in request.grid_codes:
        who.require_territory(code, "grid")
    cases = open_cases(session, who, request.grid_codes)
    if not cases:
        raise InputError(
            f"no open cases in grid(s) {', '.join(request.grid_codes)} / 所选网格没有未结案件",
            where={"field": "grid_codes"},
        )
    mission = _plan(session, request, cases)
    row = Mission(
        name=mission.name,
        grid_codes=list(request.grid_codes),
        params={"kind": KIND, "altitude_m": request.altitude_m, "recheck_cases": len(cases)},
        created_by=who.username,
    )
    session.add(row)
    session.flush()
    for sortie in mission.sorties:
        waypoints = [[w.lon_deg, w.lat_deg, w.altitude_m] for w in sortie.waypoints]
        session.add(Sortie(mission_id=row.id, index=sortie.index, waypoints=waypoints))
    _write(mission, folder(data_dir, row.id))
    record(
        session,
        who,
        action="plan_recheck_mission",
        entity="mission",
        entity_id=row.id,
        after={"grid_codes": list(request.grid_codes), "case_ids": [c.id for c in cases]},
    )
    return row, [c.id for c in cases]


def _plan(session: Session, request: RecheckRequest, cases: list[Case]) -> DroneMission:
    if request.camera not in PRESETS:
        raise InputError(
            f"unknown camera {request.camera!r}; presets: {', '.join(PRESETS)}", where={"field": "camera"}
        )
    points = list(dict.fromkeys((c.lon, c.lat) for c in cases))
    home = request.home_lonlat or _middle(points)
    try:
        return plan_inspection(
            points,
            home_lonlat=home,
            settings=InspectionSettings(camera=PRESETS[request.camera].camera, altitude_m=request.altitude_m),
            no_fly=_no_fly(session, [home, *points]),
            name=f"recheck {','.join(request.grid_codes)}"[:128],
        )
    except MissionPlanError as error:
        raise InputError(
            f"cannot plan the re-check mission: {error}", where={"field": "grid_codes"}
        ) from None


def _middle(points: list[LonLat]) -> LonLat:
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2


def _no_fly(session: Session, points: list[LonLat]) -> gpd.GeoDataFrame | None:
    margin_deg = 0.02
    box = (
        min(p[0] for p in points) - margin_deg,
        min(p[1] for p in points) - margin_deg,
        max(p[0] for p in points) + margin_deg,
        max(p[1] for p in points) + margin_deg,
    )
    zones = session.scalars(in_bbox(session, Zone, box).where(Zone.kind == "no_fly")).all()
    if not zones:
        return None
    return gpd.GeoDataFrame(
        {"zone_id": [z.zone_id for z in zones]}, geometry=[z.geom for z in zones], crs=4326
    )


def folder(data_dir: Path, mission_id: int) -> Path:
    """Where the files of re-check mission ``mission_id`` are kept."""
    return data_dir / "missions" / f"recheck-{mission_id}"


def _write(mission: DroneMission, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)  # left by a rolled-back mission that had the same id
    for fmt in FORMATS:
        files = write_files(mission, target / fmt, fmt)
        if len(files) > 1:
            shutil.make_archive(str(target / f"{fmt}-sorties"), "zip", target / fmt)


def download(data_dir: Path, mission: Mission, fmt: str) -> tuple[Path, str, str]:
    """The file to send for ``fmt``: path, media type and file name (a zip when there are several sorties)."""
    base = folder(data_dir, mission.id)
    archive = base / f"{fmt}-sorties.zip"
    if archive.is_file():
        return archive, "application/zip", f"recheck{mission.id}-{fmt}.zip"
    files = sorted((base / fmt).glob("*")) if (base / fmt).is_dir() else []
    if fmt not in FORMATS or not files:
        raise NotFoundError(
            f"mission {mission.id} is not a re-check mission with {fmt} files",
            where={"mission_id": mission.id},
        )
    return files[0], FORMATS[fmt], f"recheck{mission.id}.{fmt}"


def recheck_mission(session: Session, who: Principal, mission_id: int) -> Mission:
    """The stored mission if one of its grids overlaps the caller's territory, else :class:`NotFoundError`."""
    row = session.get(Mission, mission_id)
    if row is None or not any(who.overlaps(str(code)) for code in row.grid_codes):
        raise NotFoundError(f"mission {mission_id} does not exist", where={"mission_id": mission_id})
    return row
