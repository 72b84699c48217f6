"""Flights: registered with their footage source, run through the vision pipeline as background jobs, with
frames, flags and progress pushed live to :mod:`api.flight_events` subscribers.

A flight's source is the simulator (the mission's first sortie flown over the simulated world of
:mod:`drone.world`, as ``skygrid demo-patrol`` does), a video with its DJI SRT, a folder of DJI photos, or a live
stream address with the vehicle's MAVLink link for telemetry (frames are posed with the position and gimbal the
link reports when they are decoded). Footage paths must lie inside the data folder or a configured import folder
(``SKYGRID_IMPORT_DIRS``), never anywhere else on the server.

Everything a run writes lives in ``<data>/flights/<id>/``: ``flight.json`` (the plan version the flags are
placed in, the grids, the SRT path or the telemetry link; written at registration), ``frames/`` (every frame, a
:class:`~api.models.Frame` row each), and the pipeline's ``flags.gpkg`` with its evidence crops and full frames.
Flags are stored as :class:`~api.models.Flag` rows as the pipeline confirms them (category = GB/T 30428.2 code,
grid and micro-grid from the plan, evidence paths relative to the data folder); a status goes registered →
running → done or failed, and the job row says why a run failed. A running flight can be stopped (a live stream
has no end of its own): it ends ``done`` with what it found so far.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path
from typing import Any

import cv2
import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import missions
from api.audit import record
from api.cases import locate
from api.db import transaction
from api.deps import Service
from api.districts import ZONE_LAYERS, load_district
from api.errors import ConflictError, InputError, NotFoundError
from api.flight_events import FlightChannel, FlightHub
from api.geometry import spatial
from api.models import (
    Detection,
    District,
    Flag,
    Flight,
    Frame,
    Job,
    Mission,
    Plan,
    PlanVersion,
    Zone,
    utcnow,
)
from api.plans import get_plan, get_version, load_plan
from api.security import Principal
from drone.framedir import write_jpeg
from drone.geometry import local_enu_crs
from drone.link import parse_url
from drone.model import Frame as SourceFrame
from drone.model import FrameSource, StreamStats
from drone.model import Mission as DroneMission
from drone.simsource import SimFrameSource, mission_poses, video_camera
from drone.sources import SourceOptions, open_source
from drone.sources.mavlink_stream import LiveTelemetry
from drone.world import build_world
from gis.crs import local_metric_crs
from gis.model import District as GisDistrict
from gis.model import GridPlan
from vision.cli_detect import default_model
from vision.detector import load_detector
from vision.flags import Flag as FoundFlag
from vision.geolocate import Geolocator
from vision.model import Detections, Detector
from vision.pipeline import Pipeline, PipelineConfig, PipelineReport
from vision.rules import ZONE_LAYERS as RULE_ZONE_LAYERS
from vision.rules import PlanIndex, Zones
from vision.slicing import SlicedDetector, SliceParams
from vision.track import Track

log = logging.getLogger(__name__)

SOURCE_KINDS = ("simulator", "video_srt", "photos", "stream")
FINAL_STATUSES = ("done", "failed")
STREAM_URL = re.compile(r"^(rtsp|rtsps|rtmp|srt|udp|http|https)://\S+$")
#: The simulated world's seed: the same mission always meets the same planted objects.
WORLD_SEED = 0
#: The simulated world reaches this far beyond the camera's view of the flown path.
WORLD_MARGIN_M = 60.0
#: Frames of a video are taken at most once per this many seconds.
VIDEO_EVERY_S = 1.0
#: Processed frames between the pipeline's checkpoints, where new flags are stored and pushed.
CHECKPOINT_EVERY = 3
#: Frames are kept for viewing at most this wide.
VIEW_WIDTH_PX = 1920
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class FlightSource:
    """Where a flight's frames come from: ``kind`` (see :data:`SOURCE_KINDS`), a path or address, an SRT, and
    for a stream the MAVLink link its telemetry comes over."""

    kind: str
    uri: str | None = None
    srt: str | None = None
    telemetry: str | None = None


@dataclass(frozen=True)
class FlightPlace:
    """What a flight is placed in: the plan version for grids, the district, the mission's grids."""

    plan_id: int
    version: int
    district_code: str
    grid_codes: tuple[str, ...]
    srt: str | None = None
    telemetry: str | None = None

    def codes(self) -> tuple[str, ...]:
        """The area codes a user's territory is checked against."""
        return self.grid_codes or (self.district_code,)


# --- registration --------------------------------------------------------------------------------------


def flight_folder(data_dir: Path, flight_id: int) -> Path:
    return data_dir / "flights" / str(flight_id)


def register_flight(
    session: Session,
    who: Principal,
    *,
    mission_id: int | None,
    source: FlightSource,
    folders: tuple[Path, Sequence[Path]],
) -> Flight:
    """Check the source and the caller's territory, then store the flight and its ``flight.json``.

    ``folders`` are the data folder and the import folders footage may be read from.

    Raises:
        NotFoundError: the mission does not exist. ForbiddenError: a grid lies outside the caller's territory.
        InputError: the source is unusable (a path outside the allowed folders, a missing file, no mission for a
        simulator flight, no published plan).
    """
    data_dir, import_dirs = folders
    checked = check_source(source, data_dir, import_dirs)
    uri = checked.uri or source.kind
    place = _place(session, who, mission_id, source.kind)
    for code in place.grid_codes:
        who.require_territory(code, "grid")
    flight = Flight(
        mission_id=mission_id,
        source_kind=source.kind,
        source_uri=uri,
        status="registered",
        created_by=who.username,
    )
    session.add(flight)
    session.flush()
    try:
        _write_place(
            flight_folder(data_dir, flight.id), replace(place, srt=checked.srt, telemetry=checked.telemetry)
        )
    except OSError:
        discard_folder(data_dir, flight.id)
        raise
    record(
        session,
        who,
        action="register_flight",
        entity="flight",
        entity_id=flight.id,
        after={
            "mission_id": mission_id,
            "source_kind": source.kind,
            "source_uri": uri,
            "telemetry": checked.telemetry,
        },
    )
    return flight


def check_source(source: FlightSource, data_dir: Path, import_dirs: Sequence[Path]) -> FlightSource:
    """The source as stored (resolved paths for files); :class:`InputError` when unusable."""
    if source.kind == "simulator":
        return FlightSource("simulator", "simulator")
    if source.kind == "stream":
        return _check_stream(source)
    allowed = [data_dir.resolve(), *(folder.resolve() for folder in import_dirs)]
    uri = _allowed_path(source.uri, allowed, "source.uri", want_dir=source.kind == "photos")
    srt = _allowed_path(source.srt, allowed, "source.srt", want_dir=False) if source.srt else None
    return FlightSource(source.kind, str(uri), str(srt) if srt else None)


def _check_stream(source: FlightSource) -> FlightSource:
    if source.uri is None or not STREAM_URL.match(source.uri):
        raise InputError(
            "a stream needs an address such as rtsp://HOST/PATH or udp://HOST:PORT",
            where={"field": "source.uri"},
        )
    if not source.telemetry:
        raise InputError(
            "a stream needs the vehicle's MAVLink link to place its frames, e.g. udpin:0.0.0.0:14550 or "
            "serial:/dev/ttyUSB0:57600 (视频流须提供飞控遥测链路)",
            where={"field": "source.telemetry"},
        )
    try:
        parse_url(source.telemetry)
    except ValueError as error:
        raise InputError(str(error), where={"field": "source.telemetry"}) from None
    return FlightSource("stream", source.uri, telemetry=source.telemetry)


def _allowed_path(text: str | None, allowed: Sequence[Path], field: str, *, want_dir: bool) -> Path:
    if not text:
        raise InputError(f"{field} is required for this source", where={"field": field})
    path = Path(text)
    path = (path if path.is_absolute() else allowed[0] / path).resolve()
    if not any(path.is_relative_to(folder) for folder in allowed):
        raise InputError(
            f"{text} lies outside the data folder and the import folders ({', '.join(map(str, allowed))}); "
            "copy the footage there first / 素材须位于数据目录或导入目录内",
            where={"field": field},
        )
    if not (path.is_dir() if want_dir else path.is_file()):
        raise InputError(f"{text}: no such {'folder' if want_dir else 'file'}", where={"field": field})
    return path


def _place(session: Session, who: Principal, mission_id: int | None, kind: str) -> FlightPlace:
    if mission_id is None:
        if kind == "simulator":
            raise InputError(
                "a simulator flight flies a mission: give mission_id", where={"field": "mission_id"}
            )
        return _latest_published(session, who)
    row = session.get(Mission, mission_id)
    if row is None:
        raise NotFoundError(f"mission {mission_id} does not exist", where={"field": "mission_id"})
    plan = get_plan(session, int(row.params["plan_id"]))
    district = session.get(District, plan.district_id)
    code = district.code if district is not None else ""
    return FlightPlace(plan.id, int(row.params["version"]), code, tuple(row.grid_codes))


def _latest_published(session: Session, who: Principal) -> FlightPlace:
    stmt = (
        select(PlanVersion, Plan, District)
        .join(Plan, Plan.id == PlanVersion.plan_id)
        .join(District, District.id == Plan.district_id)
        .where(PlanVersion.status == "published")
        .order_by(PlanVersion.published_at.desc(), PlanVersion.id.desc())
    )
    for version, plan, district in session.execute(stmt):
        if who.overlaps(district.code):
            return FlightPlace(plan.id, version.number, district.code, ())
    raise InputError(
        "no published grid plan in your territory to place the flags in; publish one first",
        where={"field": "mission_id"},
    )


def _write_place(folder: Path, place: FlightPlace) -> None:
    """Start the flight's folder afresh (a folder left by another database under this id is stale)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data = {
        "plan_id": place.plan_id,
        "version": place.version,
        "district_code": place.district_code,
        "grid_codes": list(place.grid_codes),
        "srt": place.srt,
        "telemetry": place.telemetry,
    }
    temporary = folder / ".flight.json.tmp"
    temporary.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    os.replace(temporary, folder / "flight.json")


def read_place(data_dir: Path, flight_id: int) -> FlightPlace:
    """The ``flight.json`` of a flight; :class:`NotFoundError` when its folder is gone."""
    path = flight_folder(data_dir, flight_id) / "flight.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise NotFoundError(f"flight {flight_id}: its folder {path.parent} is unreadable ({error})") from None
    return FlightPlace(
        int(data["plan_id"]),
        int(data["version"]),
        str(data["district_code"]),
        tuple(data["grid_codes"]),
        data["srt"],
        data.get("telemetry"),
    )


def discard_folder(data_dir: Path, flight_id: int) -> None:
    """Remove a flight's folder (after its registration was rolled back)."""
    shutil.rmtree(flight_folder(data_dir, flight_id), ignore_errors=True)


# --- jobs ----------------------------------------------------------------------------------------------


def new_job(session: Session, who: Principal, kind: str, params: dict[str, Any]) -> Job:
    """A queued job row of ``kind`` for ``who``."""
    job = Job(
        kind=kind,
        status="queued",
        progress=0.0,
        message="queued / 排队中",
        params=params,
        created_by=who.username,
    )
    session.add(job)
    session.flush()
    return job


def update_job(service: Service, job_id: int, **fields: Any) -> None:
    """Set fields of a job row (``finished_at`` too when the status is final)."""
    with transaction(service.db.write) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        for name, value in fields.items():
            setattr(job, name, value)
        if fields.get("status") in FINAL_STATUSES:
            job.finished_at = utcnow()


def run_upload_job(service: Service, *, job_id: int, mission_id: int, connection: str, sortie: int) -> None:
    """Upload a stored mission's sortie, fence and rally points to a vehicle and verify them (a job)."""
    try:
        update_job(
            service, job_id, status="running", progress=0.1, message=f"connecting to {connection} / 连接飞控"
        )
        with service.db.read() as session:
            row = session.get(Mission, mission_id)
            if row is None:
                raise NotFoundError(f"mission {mission_id} does not exist")
            mission = missions.plan_mission(session, missions.request_of(row))
        counts = missions.upload_to_vehicle(mission, connection, sortie=sortie)
        summary = ", ".join(f"{n} {kind} items" for kind, n in counts.items())
        result = {"connection": connection, "sortie": sortie, "verified": True, **counts}
        update_job(
            service,
            job_id,
            status="done",
            progress=1.0,
            message=f"uploaded and verified {summary} / 上传并校验完成",
            result=result,
        )
    except missions.UploadError as error:  # the vehicle's answer, in words: no traceback needed
        log.warning("upload job %s failed: %s", job_id, error)
        update_job(service, job_id, status="failed", message=f"upload failed: {error} / 上传失败")
    except Exception as error:  # a job must end in a recorded state whatever failed; the cause is logged
        log.exception("upload job %s failed", job_id)
        update_job(service, job_id, status="failed", message=f"upload failed: {error} / 上传失败")


# --- running a flight ------------------------------------------------------------------------------------


def start_flight(service: Service, hub: FlightHub, *, flight_id: int, job_id: int) -> threading.Thread:
    """Run the flight on a background thread; the thread is returned (it need not be joined)."""
    thread = threading.Thread(
        target=run_flight,
        args=(service, hub.channel(flight_id)),
        kwargs={"flight_id": flight_id, "job_id": job_id},
        name=f"flight {flight_id}",
        daemon=True,
    )
    thread.start()
    return thread


def run_flight(service: Service, channel: FlightChannel, *, flight_id: int, job_id: int) -> None:
    """Run a registered flight through the vision pipeline; ends ``done`` or ``failed`` whatever happens."""
    run = _FlightRun(service, channel, flight_id, job_id)
    try:
        report = run.execute()
        stopped = " (stopped by the operator / 已手动停止)" if channel.stop.is_set() else ""
        run.finish("done", f"{report.frames_read} frames, {run.flags} flags{stopped} / 完成", _report(report))
    except Exception as error:  # the flight and its job must end in a recorded state; the cause is logged
        log.exception("flight %s failed", flight_id)
        run.finish("failed", f"{type(error).__name__}: {error} / 飞行处理失败", None)


def _report(report: PipelineReport) -> dict[str, Any]:
    return {
        "frames_read": report.frames_read,
        "frames_processed": report.frames_processed,
        "detections": report.detections,
        "flags": report.flags,
        "skipped": dict(report.skipped),
        "wall_s": round(report.wall_s, 2),
    }


@dataclass(frozen=True)
class _Context:
    """What a run needs, read from the database once."""

    kind: str
    uri: str
    place: FlightPlace
    mission: DroneMission | None
    plan: GridPlan
    district: GisDistrict
    zones: dict[str, gpd.GeoDataFrame]  # layer (parking, fire_lanes, green, public_space) → WGS-84 polygons


def _load(service: Service, flight_id: int) -> _Context:
    place = read_place(service.settings.data_dir, flight_id)
    with service.db.read() as session:
        flight = session.get(Flight, flight_id)
        if flight is None:
            raise NotFoundError(f"flight {flight_id} does not exist")
        version = get_version(session, place.plan_id, place.version)
        district_id = get_plan(session, place.plan_id).district_id
        mission = None
        if flight.mission_id is not None:
            row = session.get(Mission, flight.mission_id)
            if row is None:
                raise NotFoundError(f"mission {flight.mission_id} does not exist")
            mission = missions.plan_mission(session, missions.request_of(row))
        return _Context(
            kind=flight.source_kind,
            uri=flight.source_uri,
            place=place,
            mission=mission,
            plan=load_plan(session, version),
            district=load_district(session, district_id),
            zones=_zone_frames(session, district_id),
        )


def _zone_frames(session: Session, district_id: int) -> dict[str, gpd.GeoDataFrame]:
    frames = {}
    for layer, kind in ZONE_LAYERS.items():
        rows = session.scalars(
            select(Zone.geom).where(Zone.district_id == district_id, Zone.kind == kind)
        ).all()
        frames[layer] = gpd.GeoDataFrame(geometry=list(rows), crs="EPSG:4326")
    return frames


def _vision_zones(context: _Context, crs: Any) -> Zones:
    unions = {
        name: shapely.union_all(shapely.make_valid(context.zones[name].to_crs(crs).geometry.to_numpy()))
        for name in RULE_ZONE_LAYERS
    }
    buildings = context.district.buildings.to_crs(crs)
    heights = buildings["floors"].astype("Float64").fillna(0.0).to_numpy(dtype=float) * 3.0
    footprints = gpd.GeoDataFrame({"height_m": heights}, geometry=buildings.geometry.to_numpy(), crs=crs)
    return Zones(crs=crs, corridors=shapely.Polygon(), buildings=footprints, **unions)


class _LivePipeline(Pipeline):
    """The vision pipeline, handing the flags of every checkpoint (with their boxes) to ``on_flags``."""

    on_flags: Callable[[list[FoundFlag], dict[str, tuple[float, float, float, float]]], None]

    def flags(
        self, tracks: Sequence[Track], evidence_of: Callable[[Track], tuple[str, str]]
    ) -> list[FoundFlag]:
        found = super().flags(tracks, evidence_of)
        self.on_flags(found, {t.track_id: t.evidence.box_xyxy for t in tracks})
        return found


class _Recorded:
    """A frame source whose every frame is first handed to ``on_frame``; it ends early once ``stop`` is set."""

    def __init__(
        self, source: FrameSource, on_frame: Callable[[SourceFrame], None], stop: threading.Event
    ) -> None:
        self._source = source
        self._on_frame = on_frame
        self._stop = stop

    @property
    def stats(self) -> StreamStats:
        return self._source.stats

    def __iter__(self) -> Iterator[SourceFrame]:
        frames = iter(self._source)
        try:
            for frame in frames:
                if self._stop.is_set():
                    return
                self._on_frame(frame)
                yield frame
        finally:
            close = getattr(frames, "close", None)
            if close is not None:  # a generator: let it close its stream or file now
                close()


class _RecordingDetector:
    """A detector whose every result is first handed to ``on_detections``."""

    def __init__(self, detector: Detector, on_detections: Callable[[list[Detections]], None]) -> None:
        self._detector = detector
        self._on_detections = on_detections

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._detector.class_names

    def detect(self, images: Sequence[np.ndarray[Any, Any]], frame_ids: Sequence[str]) -> list[Detections]:
        results = self._detector.detect(images, frame_ids)
        self._on_detections(results)
        return results


class _FlightRun:
    """One run of one flight: frames and flags stored and published as they come."""

    def __init__(self, service: Service, channel: FlightChannel, flight_id: int, job_id: int) -> None:
        self.service = service
        self.channel = channel
        self.flight_id = flight_id
        self.job_id = job_id
        self.folder = flight_folder(service.settings.data_dir, flight_id)
        self.frames = 0
        self.flags = 0
        self.expected_frames = 0
        self._flag_rows: dict[str, int] = {}
        self._frame_rows: dict[str, int] = {}
        self.config = PipelineConfig(checkpoint_every=CHECKPOINT_EVERY)
        self._district_code = ""

    def execute(self) -> PipelineReport:
        self._set_status("running", "preparing the flight / 准备中")
        context = _load(self.service, self.flight_id)
        self._district_code = context.place.district_code
        crs = local_metric_crs(context.plan.grids)
        zones = _vision_zones(context, crs)
        detector = _RecordingDetector(
            SlicedDetector(load_detector(default_model()), SliceParams(full_frame=False)),
            self._store_detections,
        )
        pipeline = _LivePipeline(
            detector,
            Geolocator(crs, zones.buildings),
            zones,
            PlanIndex(context.plan, crs),
            config=self.config,
        )
        pipeline.on_flags = self._store_flags
        with ExitStack() as resources:
            source = _Recorded(self._source(context, resources), self._on_frame, self.channel.stop)
            self._set_status("running", "flying and detecting / 飞行识别中")
            return pipeline.run(source, self.folder / "flags.gpkg", source_name=f"flight-{self.flight_id}")

    def _source(self, context: _Context, resources: ExitStack) -> FrameSource:
        """The flight's frames; a live link is opened on ``resources`` and closed with them."""
        if context.kind == "simulator":
            if context.mission is None:
                raise InputError("a simulator flight needs its mission")
            source, self.expected_frames = _simulated(context, context.mission)
            return source
        if context.kind == "stream":
            return self._stream(context, resources)
        every_s = VIDEO_EVERY_S if context.kind == "video_srt" else 0.0
        srt = Path(context.place.srt) if context.place.srt else None
        return open_source(context.uri, SourceOptions(srt=srt, every_s=every_s))

    def _stream(self, context: _Context, resources: ExitStack) -> FrameSource:
        """A live stream posed by the vehicle's MAVLink link, listened to for as long as the run lasts."""
        link = context.place.telemetry
        if not link:
            raise InputError(
                f"{context.uri}: this stream flight has no MAVLink link to place its frames with"
            )
        self._set_status("running", f"waiting for positions on {link} / 等待遥测")
        live = resources.enter_context(LiveTelemetry(link))
        wait_s = self.service.settings.stream_position_wait_s
        return open_source(
            context.uri, SourceOptions(every_s=VIDEO_EVERY_S, position_wait_s=wait_s), live=live
        )

    # ----------------------------------------------------------------------------------------- frames
    def _on_frame(self, frame: SourceFrame) -> None:
        name = f"{_UNSAFE.sub('_', frame.frame_id)[:80]}.jpg"
        write_jpeg(self.folder / "frames" / name, _for_viewing(frame.image), quality=85)
        taken = frame.timestamp if frame.timestamp.tzinfo else frame.timestamp.replace(tzinfo=UTC)
        pose = frame.pose
        with transaction(self.service.db.write) as session:
            row = Frame(
                flight_id=self.flight_id,
                path=f"flights/{self.flight_id}/frames/{name}",
                taken_at=taken,
                lon=pose.lon_deg,
                lat=pose.lat_deg,
                altitude_m=pose.altitude_agl_m,
            )
            session.add(row)
            session.flush()
            frame_id = row.id
        self._frame_rows[frame.frame_id] = frame_id
        self.frames += 1
        position = {"lon": pose.lon_deg, "lat": pose.lat_deg, "altitude_m": pose.altitude_agl_m}
        self.channel.publish("position", {**position, "heading_deg": pose.yaw_deg, "t": taken.isoformat()})
        self.channel.publish(
            "frame", {"frame_id": frame_id, "url": f"/api/v1/flights/{self.flight_id}/frames/{frame_id}.jpg"}
        )
        if self.frames % 5 == 0:
            self._publish_status("running")
            if self.expected_frames:
                update_job(self.service, self.job_id, progress=min(0.95, self.frames / self.expected_frames))

    def _store_detections(self, results: list[Detections]) -> None:
        """Keep what the detector found in each frame (the scores the pipeline keeps too)."""
        with transaction(self.service.db.write) as session:
            for found in results:
                kept = found.filter(found.scores >= self.config.min_score)
                frame_row = self._frame_rows[found.frame_id]
                for box, score, label in zip(kept.boxes_xyxy, kept.scores, kept.labels(), strict=True):
                    box_xyxy = [round(float(v), 1) for v in box]
                    session.add(
                        Detection(frame_id=frame_row, category=label, score=float(score), box_xyxy=box_xyxy)
                    )

    # ------------------------------------------------------------------------------------------ flags
    def _store_flags(
        self, found: list[FoundFlag], boxes: dict[str, tuple[float, float, float, float]]
    ) -> None:
        """Insert new flags, update known ones (more sightings, a better view), and publish what changed."""
        changed: list[tuple[str, Flag]] = []
        with transaction(self.service.db.write) as session:
            for flag in found:
                row = (
                    session.get(Flag, self._flag_rows[flag.flag_id])
                    if flag.flag_id in self._flag_rows
                    else None
                )
                if row is None:
                    row = Flag(
                        flight_id=self.flight_id, status="new", territory=self._territory(session, flag)
                    )
                    session.add(row)
                elif row.sightings == flag.sightings and row.score == flag.confidence:
                    continue
                _fill(row, flag, boxes.get(flag.flag_id), f"flights/{self.flight_id}")
                changed.append((flag.flag_id, row))
            session.flush()
        for track_id, row in changed:
            self.flags += track_id not in self._flag_rows
            self._flag_rows[track_id] = row.id
            self.channel.publish("flag", _flag_event(row))

    def _territory(self, session: Session, flag: FoundFlag) -> str:
        if flag.grid_code:
            return flag.grid_code
        try:
            return locate(session, flag.lon_deg, flag.lat_deg)[1]
        except InputError:
            return self._district_code

    # ----------------------------------------------------------------------------------------- status
    def _set_status(self, status: str, message: str) -> None:
        with transaction(self.service.db.write) as session:
            flight = session.get(Flight, self.flight_id)
            if flight is not None:
                flight.status = status
        update_job(self.service, self.job_id, status=status, message=message)
        self._publish_status(status)

    def _publish_status(self, status: str) -> None:
        self.channel.publish("status", {"status": status, "frames": self.frames, "flags": self.flags})

    def finish(self, status: str, message: str, result: dict[str, Any] | None) -> None:
        with transaction(self.service.db.write) as session:
            flight = session.get(Flight, self.flight_id)
            if flight is not None:
                flight.status = status
        fields: dict[str, Any] = {"status": status, "message": message, "result": result}
        update_job(self.service, self.job_id, **({**fields, "progress": 1.0} if status == "done" else fields))
        self._publish_status(status)
        self.channel.publish("done", {"status": status, "message": message})


def _flag_event(row: Flag) -> dict[str, Any]:
    return {
        "id": row.id,
        "category": row.category,
        "score": row.score,
        "lon": row.lon,
        "lat": row.lat,
        "grid_code": row.grid_code,
        "sightings": row.sightings,
    }


def _fill(row: Flag, flag: FoundFlag, box: tuple[float, float, float, float] | None, prefix: str) -> None:
    row.category = flag.category.code
    row.score = flag.confidence
    row.lon, row.lat = flag.lon_deg, flag.lat_deg
    for name, value in spatial(shapely.Point(flag.lon_deg, flag.lat_deg)).items():
        setattr(row, name, value)
    row.grid_code, row.microgrid_code = flag.grid_code, flag.microgrid_code
    row.class_name, row.rule, row.severity = flag.class_name, flag.rule, flag.severity
    row.sightings, row.first_seen, row.last_seen = flag.sightings, flag.first_seen, flag.last_seen
    row.evidence_path = f"{prefix}/{flag.evidence}"
    row.frame_path = f"{prefix}/{flag.frame_image}"
    row.frame_box = [round(float(v), 1) for v in box] if box is not None else None
    row.error_m = flag.error_m


def _simulated(context: _Context, mission: DroneMission) -> tuple[FrameSource, int]:
    """The mission's first sortie flown over the simulated world; returns the source and its frame count."""
    first = replace(mission, sorties=mission.sorties[:1])
    video = video_camera(mission.camera)
    poses = list(mission_poses(first, start=utcnow()))
    world = build_world(context.district, context.zones, seed=WORLD_SEED, area_wgs84=_seen_area(first, video))
    return SimFrameSource(world, video, poses, seed=WORLD_SEED, source="simulator"), len(poses)


def _seen_area(mission: DroneMission, video: Any) -> shapely.Geometry:
    """The ground the camera can see along the sortie (its path grown by half a frame and a margin)."""
    sortie = mission.sorties[0]
    points = [(sortie.home.lon_deg, sortie.home.lat_deg), *((w.lon_deg, w.lat_deg) for w in sortie.waypoints)]
    crs = local_enu_crs(sortie.home.lon_deg, sortie.home.lat_deg)
    reach_m = max(video.footprint_m(mission.altitude_m)) / 2 + WORLD_MARGIN_M
    path = gpd.GeoSeries([LineString(points)], crs="EPSG:4326").to_crs(crs).buffer(reach_m)
    area: shapely.Geometry = path.to_crs("EPSG:4326").iloc[0]
    return area


def _for_viewing(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The frame at most :data:`VIEW_WIDTH_PX` wide (flags keep their full-resolution evidence frames)."""
    height, width = image.shape[:2]
    if width <= VIEW_WIDTH_PX:
        return image
    size = (VIEW_WIDTH_PX, round(height * VIEW_WIDTH_PX / width))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# --- reading ---------------------------------------------------------------------------------------------


def flight_counts(session: Session, flight_id: int) -> tuple[int, int]:
    """Frames and flags stored for a flight."""
    frames = session.scalar(select(func.count()).select_from(Frame).where(Frame.flight_id == flight_id))
    flags = session.scalar(select(func.count()).select_from(Flag).where(Flag.flight_id == flight_id))
    return int(frames or 0), int(flags or 0)


def last_frame(session: Session, flight_id: int) -> Frame | None:
    """The newest frame of a flight."""
    stmt = select(Frame).where(Frame.flight_id == flight_id).order_by(Frame.id.desc()).limit(1)
    return session.scalars(stmt).first()


def require_registered(flight: Flight) -> None:
    """A flight runs once: :class:`ConflictError` unless it is still ``registered``."""
    if flight.status != "registered":
        raise ConflictError(
            f"flight {flight.id} is {flight.status}; a flight runs once — register a new one to fly again",
            where={"status": flight.status},
        )
