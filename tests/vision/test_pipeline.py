"""The streaming pipeline on a known scene with the ORACLE detector: flags, restart, bad frames, backpressure."""

from __future__ import annotations

import _thread
import json
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import shapely

from drone.model import Frame
from tests.vision import scene
from tests.vision.oracle import OracleDetector
from vision.flags import read_flags_frame
from vision.model import Detections
from vision.pipeline import Pipeline, PipelineConfig, PipelineError, PipelineReport, state_path, with_looks
from vision.track import Evidence, Track

EXPECTED = sorted((o.object_id, rule) for o, violation, rule in scene.OBJECTS if violation)


def _pipeline(detector: object, **config: float) -> Pipeline:
    options = {"checkpoint_every": 5, **config}
    return Pipeline(
        detector,  # type: ignore[arg-type]
        scene.geolocator(),
        scene.zones(),
        scene.plan_index(),
        config=PipelineConfig(**options),  # type: ignore[arg-type]
    )


def _run(
    frames: list[Frame], output: Path, detector: object | None = None, **config: float
) -> PipelineReport:
    detector = detector or scene.oracle(frames)
    return _pipeline(detector, **config).run(scene.ListSource(frames), output, source_name="scene")


def _matched(output: Path) -> list[tuple[str, str]]:
    """(truth object id, rule) of every flag, matching each flag to the nearest truth object."""
    flags = read_flags_frame(output).to_crs(scene.CRS)
    truth = scene.truth().to_crs(scene.CRS)
    pairs = []
    for point, rule in zip(flags.geometry, flags["rule"], strict=True):
        distances = truth.geometry.centroid.distance(point)
        pairs.append((str(truth["object_id"].iloc[int(distances.argmin())]), str(rule)))
        assert distances.min() < 0.5, f"flag {rule} is {distances.min():.2f} m from the nearest object"
    return sorted(pairs)


def test_each_violation_becomes_one_flag_in_its_grid_with_evidence(tmp_path: Path) -> None:
    output = tmp_path / "flags.gpkg"
    report = _run(scene.frames(), output, novelty_min=0.0)
    assert _matched(output) == EXPECTED
    flags = read_flags_frame(output).set_index("rule")
    assert flags.loc["vehicle_in_fire_lane", "severity"] == 3
    assert flags.loc["vehicle_in_fire_lane", "category_code"] == "0505"
    assert flags.loc["structure_on_roof", "category_code"] == "0101"
    assert flags.loc["vehicle_in_fire_lane", "microgrid_code"] == scene.MICRO_EAST
    assert flags.loc["clutter_in_public_space", "microgrid_code"] == scene.MICRO_WEST
    assert (flags["grid_code"] == scene.GRID).all()
    assert (flags["sightings"] >= 2).all() and (flags["last_seen"] > flags["first_seen"]).all()
    for relative in [*flags["evidence"], *flags["frame_image"]]:
        assert (tmp_path / relative).stat().st_size > 0
    assert report.frames_read == len(scene.frames()) and report.flags == len(EXPECTED)
    assert {"read", "sample", "detect", "geolocate", "track", "rules", "sink"} <= set(report.stages)
    assert report.stages["read"].items == report.frames_read


def test_novelty_sampling_skips_covered_frames_but_misses_nothing(tmp_path: Path) -> None:
    every = _run(scene.frames(), tmp_path / "all.gpkg", novelty_min=0.0)
    sampled = _run(scene.frames(), tmp_path / "sampled.gpkg", novelty_min=0.5)
    assert every.frames_processed == every.frames_read
    assert sampled.frames_processed < 0.6 * every.frames_processed
    assert sampled.skipped["not_novel"] == sampled.frames_read - sampled.frames_processed
    assert _matched(tmp_path / "sampled.gpkg") == EXPECTED


class _CrashingDetector:
    """The oracle until its ``crash_after``-th call, then a failure (a killed process, as far as state goes)."""

    def __init__(self, inner: OracleDetector, crash_after: int) -> None:
        self.inner, self.crash_after = inner, crash_after

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inner.class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        if self.inner.calls >= self.crash_after:
            raise RuntimeError("power lost")
        return self.inner.detect(images, frame_ids)


def test_a_restarted_run_continues_and_never_duplicates_a_flag(tmp_path: Path) -> None:
    frames = scene.frames()
    whole = tmp_path / "whole.gpkg"
    _run(frames, whole, novelty_min=0.0, batch_size=1)
    output = tmp_path / "flags.gpkg"
    with pytest.raises(PipelineError, match="power lost"):
        _run(frames, output, _CrashingDetector(scene.oracle(frames), 12), novelty_min=0.0, batch_size=1)
    interrupted = read_flags_frame(output)
    assert len(interrupted) < len(EXPECTED)  # the second flight line, which alone sees T4, never ran
    done = len(json.loads(state_path(output).read_text("utf-8"))["processed"])
    assert 1 <= done <= 12
    resumed_detector = scene.oracle(frames)
    resumed = _run(frames, output, resumed_detector, novelty_min=0.0, batch_size=1)
    assert resumed.skipped["already_processed"] == done
    assert resumed_detector.calls == len(frames) - resumed.skipped["already_processed"]
    flags = read_flags_frame(output)
    assert flags["flag_id"].is_unique
    assert _matched(output) == EXPECTED
    reference = read_flags_frame(whole)
    assert sorted(flags["sightings"]) == sorted(reference["sightings"])
    again = _run(frames, output, scene.oracle(frames), novelty_min=0.0)
    assert again.frames_processed == 0 and len(read_flags_frame(output)) == len(EXPECTED)


def test_state_of_another_source_is_refused(tmp_path: Path) -> None:
    output = tmp_path / "flags.gpkg"
    _run(scene.frames()[:3], output)
    with pytest.raises(PipelineError, match="not 'other'"):
        _pipeline(scene.oracle(scene.frames())).run(
            scene.ListSource(scene.frames()), output, source_name="other"
        )
    state_path(output).write_text("{broken", "utf-8")
    with pytest.raises(PipelineError, match="unreadable run state"):
        _run(scene.frames(), output)


def test_corrupt_frames_and_pose_gaps_are_counted_and_skipped(tmp_path: Path) -> None:
    frames = scene.frames()
    broken = [
        replace(frames[3], frame_id="gray", image=np.zeros((480, 640), np.uint8)),
        replace(frames[4], frame_id="empty", image=np.zeros((0, 0, 3), np.uint8)),
        replace(frames[5], frame_id="nopose", pose=replace(frames[5].pose, lat_deg=math.nan)),
        replace(frames[6], frame_id="ground", pose=replace(frames[6].pose, altitude_agl_m=0.0)),
    ]
    report = _run([*frames[:3], *broken, *frames[3:]], tmp_path / "flags.gpkg", novelty_min=0.0)
    assert report.skipped["corrupt_frame"] == 2 and report.skipped["pose_gap"] == 2
    assert report.frames_processed == len(frames)
    assert _matched(tmp_path / "flags.gpkg") == EXPECTED


class _SlowDetector:
    def __init__(self, inner: OracleDetector, source: scene.ListSource, delay_s: float) -> None:
        self.inner, self.source, self.delay_s = inner, source, delay_s
        self.lead: list[int] = []  # frames handed out by the source minus frames detected, at each call
        self.detected = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inner.class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        time.sleep(self.delay_s)
        self.detected += len(frame_ids)
        self.lead.append(self.source.yielded - self.detected)
        return self.inner.detect(images, frame_ids)


def test_a_slow_detector_holds_the_source_back(tmp_path: Path) -> None:
    frames = scene.frames()
    source = scene.ListSource(frames)
    detector = _SlowDetector(scene.oracle(frames), source, 0.01)
    pipeline = _pipeline(detector, novelty_min=0.0, queue_size=2, batch_size=1)
    report = pipeline.run(source, tmp_path / "flags.gpkg", source_name="scene")
    assert report.frames_processed == len(frames)
    assert max(detector.lead) <= 2 + 2 + 1  # two queues of two frames, one frame in the reader's hands
    assert report.max_queue_depth <= 2


def test_flags_file_survives_a_failed_run(tmp_path: Path) -> None:
    output = tmp_path / "flags.gpkg"
    _run(scene.frames(), output)
    before = read_flags_frame(output)
    state_path(output).unlink()
    with pytest.raises(PipelineError, match="power lost"):
        _run(scene.frames(), output, _CrashingDetector(scene.oracle(scene.frames()), 0))
    after = read_flags_frame(output)
    assert after["flag_id"].tolist() == before["flag_id"].tolist()


def test_state_holds_tracks_and_covered_ground(tmp_path: Path) -> None:
    output = tmp_path / "flags.gpkg"
    _run(scene.frames(), output, novelty_min=0.5)
    state = json.loads(state_path(output).read_text("utf-8"))
    covered = shapely.union_all([shapely.from_wkt(text) for text in state["coverage"]])
    for obj, _, _ in scene.OBJECTS:
        assert covered.contains(obj.footprint)
    assert len(state["tracks"]) == len(scene.OBJECTS)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="novelty_min"):
        PipelineConfig(novelty_min=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        PipelineConfig(batch_size=0)
    with pytest.raises(ValueError, match="at least 1"):
        PipelineConfig(min_sightings=0)
    with pytest.raises(ValueError, match="same_object_overlap"):
        PipelineConfig(same_object_overlap=0.0)


class _InterruptingDetector(_CrashingDetector):
    """Presses Ctrl-C (interrupts the main thread) at its ``crash_after``-th call."""

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        if self.inner.calls == self.crash_after:
            _thread.interrupt_main()
        return self.inner.detect(images, frame_ids)


def test_ctrl_c_checkpoints_and_the_next_run_finishes_the_job(tmp_path: Path) -> None:
    frames = scene.frames()
    output = tmp_path / "flags.gpkg"
    with pytest.raises(KeyboardInterrupt):
        _run(frames, output, _InterruptingDetector(scene.oracle(frames), 8), novelty_min=0.0, batch_size=1)
    done = len(json.loads(state_path(output).read_text("utf-8"))["processed"])
    assert done >= 1
    resumed = _run(frames, output, novelty_min=0.0, batch_size=1)
    assert resumed.skipped["already_processed"] == done
    assert _matched(output) == EXPECTED


def _track(track_id: str, class_name: str, sightings: int, max_score: float, x_m: float = 75.0) -> Track:
    """A track in the scene's fire lane (a violation for a car, a motorbike or clutter)."""
    footprint = shapely.box(x_m - 2.25, 21.6, x_m + 2.25, 23.4)
    evidence = Evidence("f0000", "scene", (0.0, 0.0, 10.0, 10.0), max_score, max_score, footprint.wkt)
    return Track(
        track_id, class_name, x_m, 22.5, 4.0, sightings, scene.T0, scene.T0, max_score, evidence, 0.5,
        {class_name: max_score * sightings},
    )  # fmt: skip


def _flagged(tracks: list[Track], **config: float) -> list[str]:
    flags = _pipeline(None, **config).flags(tracks, lambda track: ("crop.jpg", "frame.jpg"))
    return [flag.flag_id for flag in flags]


def test_a_track_seen_too_few_times_is_flagged_only_at_the_flag_score() -> None:
    once, twice, sure = (
        _track("once", "car", 1, 0.4),
        _track("twice", "car", 2, 0.4, 90.0),
        _track("sure", "car", 1, 0.8, 105.0),
    )
    assert _flagged([once, twice, sure], min_sightings=2, flag_score=0.5) == ["twice", "sure"]
    assert _flagged([once, twice, sure], min_sightings=3, flag_score=0.5) == ["sure"]
    assert _flagged([once, twice, sure], min_sightings=1, flag_score=0.5) == ["once", "twice", "sure"]


def test_one_object_read_as_two_classes_becomes_one_flag_of_the_stronger_reading() -> None:
    car = _track("car", "car", 4, 0.8)  # mass 3.2
    clutter = _track("clutter", "clutter", 3, 0.6, 75.3)  # mass 1.8, the same object
    assert _flagged([clutter, car]) == ["car"]
    motorbike = _track("motorbike", "motorbike", 3, 0.4, 75.3)  # mass 1.2, weighed 3 by default
    assert _flagged([motorbike, car]) == ["motorbike"]
    assert _flagged([motorbike, car], class_weight={}) == ["car"]  # type: ignore[arg-type]


class _Relabelled:
    """The oracle, with one class read as another (a detector's confusion)."""

    def __init__(self, inner: OracleDetector, read: str, as_class: str) -> None:
        self.inner = inner
        self.mapping = {inner.class_names.index(read): inner.class_names.index(as_class)}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inner.class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        return [
            replace(found, class_ids=np.array([self.mapping.get(int(c), int(c)) for c in found.class_ids]))
            for found in self.inner.detect(images, frame_ids)
        ]


def test_a_detection_of_a_size_its_class_cannot_have_is_dropped(tmp_path: Path) -> None:
    frames = scene.frames()
    misread = _Relabelled(scene.oracle(frames), "motorbike", "car")  # T3, 2 m long, read as a car
    report = _run(frames, tmp_path / "gated.gpkg", misread, novelty_min=0.0)
    assert report.implausible > 0
    assert [pair for pair in _matched(tmp_path / "gated.gpkg") if pair[0] == "T3"] == []
    ungated = _run(frames, tmp_path / "all.gpkg", misread, novelty_min=0.0, class_size_m={})  # type: ignore[arg-type]
    assert ungated.implausible == 0
    assert ("T3", "vehicle_on_green") in _matched(tmp_path / "all.gpkg")


class _Faint:
    """The oracle with every score lowered to ``score`` (below the flag score), seen only in ``frame_ids``."""

    def __init__(self, inner: OracleDetector, score: float, frame_ids: set[str]) -> None:
        self.inner, self.score, self.frame_ids = inner, score, frame_ids

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inner.class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        found = []
        for detections in self.inner.detect(images, frame_ids):
            seen = detections.frame_id in self.frame_ids
            kept = detections.filter(np.full(len(detections), seen))
            found.append(replace(kept, scores=np.full(len(kept), self.score, np.float32)))
        return found


def test_a_faint_object_in_view_of_one_frame_only_still_becomes_a_flag(tmp_path: Path) -> None:
    """A short patrol's single pass: the one frame that looked saw the object, so one sighting is enough."""
    frames = scene.frames()
    only = frames[5:6]
    report = _run(only, tmp_path / "one.gpkg", _Faint(scene.oracle(only), 0.3, {only[0].frame_id}))
    flagged = _matched(tmp_path / "one.gpkg")
    assert report.flags >= 1 and set(flagged) <= set(EXPECTED)
    state = json.loads(state_path(tmp_path / "one.gpkg").read_text("utf-8"))
    assert all(track["sightings"] == 1 for track in state["tracks"])


def test_a_faint_one_frame_reading_where_several_frames_looked_is_no_flag(tmp_path: Path) -> None:
    frames = scene.frames()
    detector = _Faint(scene.oracle(frames), 0.3, {frames[5].frame_id})
    report = _run(frames, tmp_path / "many.gpkg", detector, novelty_min=0.0)
    assert report.tracks >= 1 and report.flags == 0


def test_looks_count_the_processed_footprints_holding_a_track() -> None:
    inside, outside = _track("inside", "car", 1, 0.3, 75.0), _track("outside", "car", 1, 0.3, 500.0)
    footprints = [shapely.box(0, 0, 100, 50), shapely.box(50, 0, 150, 50), shapely.box(200, 0, 300, 50)]
    assert [t.looks for t in with_looks([inside, outside], footprints)] == [2, 0]
    assert with_looks([], footprints) == []


def test_a_track_needs_no_more_sightings_than_frames_looked_at_it() -> None:
    once, twice = _track("once", "car", 1, 0.3), _track("twice", "car", 2, 0.3, 90.0)
    single_look = [replace(once, looks=1), replace(twice, looks=2)]
    assert _flagged(single_look, min_sightings=3) == ["once", "twice"]
    many_looks = [replace(once, looks=4), replace(twice, looks=4)]
    assert _flagged(many_looks, min_sightings=3) == []
    assert _flagged([once, twice], min_sightings=2) == ["twice"]  # looks not counted: min_sightings holds


def test_each_track_keeps_one_crop_of_its_best_view(tmp_path: Path) -> None:
    output = tmp_path / "flags.gpkg"
    _run(scene.frames(), output, scene.oracle(scene.frames(), jitter_px=3.0), novelty_min=0.0)
    tracks = json.loads(state_path(output).read_text("utf-8"))["tracks"]
    crops = sorted(p.name for p in (tmp_path / "flags_evidence").glob("*.jpg"))
    assert crops == sorted(f"{t['track_id']}_{t['evidence']['frame_id']}.jpg" for t in tracks)
    first_frames = [
        f"f{(datetime.fromisoformat(t['first_seen']) - scene.T0).seconds // 2:04d}" for t in tracks
    ]
    assert any(t["evidence"]["frame_id"] != first for t, first in zip(tracks, first_frames, strict=True))
