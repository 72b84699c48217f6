"""Tracking across overlapping frames in map space: one track per real object, evidence, sightings, restart."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely

from drone.geometry import local_enu_crs
from drone.model import Camera, Frame, Pose
from tests.vision.oracle import OracleDetector, TruthObject
from vision.geolocate import Geolocator
from vision.model import Detections
from vision.track import Evidence, Track, Tracker, distinct_objects

CAMERA = Camera("square-pixels", 13.2, 8.8, 8.8, 1200, 800)
LON, LAT = 120.7, 31.3
CRS = local_enu_crs(LON, LAT)
GEOLOCATOR = Geolocator(CRS)
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
GEOD_STEP_DEG = 10.0 / 111_000.0  # ~10 m of latitude


def _car(object_id: str, x: float, y: float, class_name: str = "car") -> TruthObject:
    return TruthObject(object_id, class_name, shapely.box(x - 2.2, y - 0.9, x + 2.2, y + 0.9), 0.0, 1.6)


def _frames(count: int, step_deg: float = GEOD_STEP_DEG, *, yaw_deg: float = 0.0) -> list[Frame]:
    image = np.zeros((CAMERA.image_height_px, CAMERA.image_width_px, 3), np.uint8)
    frames = []
    for i in range(count):
        pose = Pose(LAT + (i - count // 2) * step_deg, LON, 80.0, yaw_deg=yaw_deg, gimbal_yaw_deg=yaw_deg)
        frames.append(Frame(f"f{i:03d}", T0 + timedelta(seconds=2 * i), image, pose, CAMERA, "test"))
    return frames


def _run(objects: list[TruthObject], frames: list[Frame], tracker: Tracker, **oracle: float) -> Tracker:
    detector = OracleDetector(objects, {f.frame_id: (f.pose, f.camera) for f in frames}, GEOLOCATOR, **oracle)  # type: ignore[arg-type]
    for frame in frames:
        detections = detector.detect([frame.image], [frame.frame_id])[0]
        tracker.update(GEOLOCATOR.locate(detections, frame), frame)
    return tracker


def test_each_object_is_one_track_across_overlapping_frames() -> None:
    objects = [_car("a", 0.0, 0.0), _car("b", 0.0, 2.6), _car("c", 15.0, -5.0, "motorbike")]
    frames = _frames(7)
    tracks = _run(objects, frames, Tracker(), jitter_px=1.0).tracks
    assert sorted(t.class_name for t in tracks) == ["car", "car", "motorbike"]
    truth = {o.object_id: np.array(o.footprint.centroid.coords[0]) for o in objects}
    for track, object_id in zip(sorted(tracks, key=lambda t: (t.class_name, t.y_m)), "abc", strict=True):
        assert np.linalg.norm(np.array([track.x_m, track.y_m]) - truth[object_id]) < 0.3
        assert track.sightings == 7
        assert (track.first_seen, track.last_seen) == (frames[0].timestamp, frames[-1].timestamp)


def test_tracks_follow_the_map_not_pixels_when_the_camera_turns() -> None:
    objects = [_car("a", 5.0, 5.0)]
    frames = _frames(3, 0.0)
    turned = _frames(3, 0.0, yaw_deg=90.0)
    turned = [
        Frame(f"g{i}", f.timestamp + timedelta(minutes=1), f.image, f.pose, f.camera)
        for i, f in enumerate(turned)
    ]
    tracks = _run(objects, [*frames, *turned], Tracker()).tracks
    assert len(tracks) == 1 and tracks[0].sightings == 6


def test_same_place_different_class_makes_separate_tracks() -> None:
    tracks = _run([_car("a", 0.0, 0.0), _car("b", 0.0, 0.0, "garbage")], _frames(2), Tracker()).tracks
    assert sorted(t.class_name for t in tracks) == ["car", "garbage"]


def test_an_object_beyond_the_gate_starts_a_new_track() -> None:
    frames = _frames(2, 0.0)
    tracker = _run([_car("a", 0.0, 0.0)], frames[:1], Tracker(max_gate_m=4.0))
    _run([_car("a", 0.0, 7.0)], frames[1:], tracker)
    assert len(tracker.tracks) == 2


def _detections(frame_id: str, box: list[float], score: float) -> Detections:
    return Detections(
        frame_id, np.array([box], np.float32), np.array([score], np.float32), np.array([0]), ("car",)
    )


def test_best_evidence_prefers_high_scores_away_from_the_image_edge() -> None:
    frames = _frames(3, 0.0)
    tracker = Tracker(min_gate_m=1000.0, max_gate_m=1000.0)  # one object, wherever its boxes land
    boxes = [
        ([590.0, 390.0, 610.0, 410.0], 0.6),
        ([591.0, 390.0, 611.0, 410.0], 0.9),
        ([0.0, 390.0, 20.0, 410.0], 0.99),
    ]
    new_evidence = []
    for frame, (box, score) in zip(frames, boxes, strict=True):
        located = GEOLOCATOR.locate(_detections(frame.frame_id, box, score), frame)
        new_evidence.append(tracker.update(located, frame)[0].new_evidence)
    assert new_evidence == [True, True, False]  # the edge box scores higher but is cut by the frame
    (track,) = tracker.tracks
    assert (track.evidence.frame_id, track.evidence.box_xyxy[0], track.sightings) == ("f001", 591.0, 3)
    assert track.max_score == pytest.approx(0.99)


def test_state_round_trips_through_json_and_continues() -> None:
    objects = [_car("a", 0.0, 0.0), _car("b", 10.0, 0.0)]
    frames = _frames(6)
    whole = _run(objects, frames, Tracker()).tracks
    first = _run(objects, frames[:3], Tracker())
    restored = Tracker.from_state(json.loads(json.dumps(first.state())))
    resumed = _run(objects, frames[3:], restored).tracks
    assert [(t.track_id, t.sightings, t.last_seen) for t in resumed] == [
        (t.track_id, t.sightings, t.last_seen) for t in whole
    ]
    np.testing.assert_allclose([[t.x_m, t.y_m] for t in resumed], [[t.x_m, t.y_m] for t in whole], atol=1e-9)


def test_bad_gates_are_refused() -> None:
    with pytest.raises(ValueError, match="min_gate_m"):
        Tracker(min_gate_m=5.0, max_gate_m=1.0)


def test_averaging_shrinks_the_error_but_not_below_the_telemetry_accuracy() -> None:
    objects = [_car("a", 0.0, 0.0)]
    rough = _run(objects, _frames(5), Tracker()).tracks[0]
    assert rough.error_m == pytest.approx(2.0)  # Pose's default horizontal accuracy
    precise_frames = [replace(f, pose=replace(f.pose, horizontal_accuracy_m=0.05)) for f in _frames(5)]
    once = _run(objects, precise_frames[:1], Tracker()).tracks[0]
    five = _run(objects, precise_frames, Tracker()).tracks[0]
    assert 0.05 <= five.error_m < once.error_m


def test_a_box_cut_by_the_image_edge_hardly_moves_the_track() -> None:
    frame = _frames(1, 0.0)[0]
    tracker = Tracker(min_gate_m=1000.0, max_gate_m=1000.0)
    tracker.update(
        GEOLOCATOR.locate(_detections(frame.frame_id, [590.0, 390.0, 610.0, 410.0], 0.8), frame), frame
    )
    before = tracker.tracks[0]
    clipped = _detections(frame.frame_id, [0.0, 390.0, 20.0, 410.0], 0.8)  # ~58 m west, touching the edge
    after = tracker.update(GEOLOCATOR.locate(clipped, frame), frame)[0].track
    assert after.sightings == 2
    assert abs(after.x_m - before.x_m) < 0.02 * 60.0


def _named(frame_id: str, class_id: int, score: float) -> Detections:
    names = ("shed", "steel_shack")
    box = np.array([[590.0, 390.0, 610.0, 410.0]], np.float32)
    return Detections(frame_id, box, np.array([score], np.float32), np.array([class_id]), names)


@pytest.mark.parametrize(("groups", "tracks"), [(None, 2), ({"shed": "0101", "steel_shack": "0101"}, 1)])
def test_confused_classes_of_one_group_stay_one_object(groups: dict[str, str] | None, tracks: int) -> None:
    frames = _frames(3, 0.0)
    tracker = Tracker(groups=groups)
    for frame, (class_id, score) in zip(frames, [(0, 0.5), (1, 0.8), (0, 0.6)], strict=True):
        tracker.update(GEOLOCATOR.locate(_named(frame.frame_id, class_id, score), frame), frame)
    assert len(tracker.tracks) == tracks
    if tracks == 1:  # shed 0.5 + 0.6 outvotes one steel shack at 0.8
        assert (tracker.tracks[0].class_name, tracker.tracks[0].sightings) == ("shed", 3)
        assert tracker.tracks[0].class_scores == pytest.approx({"shed": 1.1, "steel_shack": 0.8})


def _voted(sightings: list[tuple[int, float]]) -> str:
    frames = _frames(len(sightings), 0.0)
    tracker = Tracker(groups={"shed": "0101", "steel_shack": "0101"})
    for frame, (class_id, score) in zip(frames, sightings, strict=True):
        tracker.update(GEOLOCATOR.locate(_named(frame.frame_id, class_id, score), frame), frame)
    (track,) = tracker.tracks
    return track.class_name


def test_the_class_is_the_majority_of_summed_scores_not_the_best_or_last_sighting() -> None:
    assert _voted([(0, 0.6), (0, 0.6), (1, 0.9)]) == "shed"  # neither the best nor the last sighting
    assert _voted([(1, 0.9), (0, 0.4), (0, 0.4)]) == "steel_shack"  # 0.9 > 0.8
    assert _voted([(0, 0.5), (1, 0.5)]) == "shed"  # a tie keeps the class the track had


def _track_at(
    track_id: str, x_m: float, class_scores: dict[str, float], half_m: tuple[float, float] = (2.0, 1.0)
) -> Track:
    footprint = shapely.box(x_m - half_m[0], -half_m[1], x_m + half_m[0], half_m[1])
    evidence = Evidence("f", "test", (0.0, 0.0, 1.0, 1.0), 0.5, 0.5, footprint.wkt)
    return Track(
        track_id, max(class_scores, key=lambda c: class_scores[c]), x_m, 0.0, 1.0, len(class_scores),
        T0, T0, max(class_scores.values()), evidence, 0.0, class_scores,
    )  # fmt: skip


def test_one_object_tracked_under_two_classes_keeps_the_stronger_track() -> None:
    car = _track_at("car", 0.0, {"car": 2.4})
    shed = _track_at("shed", 0.3, {"shed": 1.2})  # the same car read as a shed in some frames: IoU 0.86
    neighbour = _track_at("next", 4.5, {"car": 0.6})  # a car parked beside it: not overlapping
    kept = distinct_objects([shed, car, neighbour], 0.5, {})
    assert [t.track_id for t in kept] == ["car", "next"]
    assert len(distinct_objects([shed, car], 0.9, {})) == 2
    apart = _track_at("shed", 3.0, {"shed": 1.2})  # IoU 2 / 14 m²
    assert len(distinct_objects([car, apart], 0.3, {})) == 2


def test_a_small_object_by_a_large_one_is_not_taken_for_it() -> None:
    shack = _track_at("shack", 0.0, {"steel_shack": 2.7}, half_m=(4.0, 3.0))
    motorbike = _track_at(
        "motorbike", 3.0, {"motorbike": 5.4}, half_m=(1.0, 0.4)
    )  # inside the shack's outline
    assert len(distinct_objects([shack, motorbike], 0.3, {})) == 2


def test_class_weights_settle_which_reading_of_one_object_is_kept() -> None:
    garbage = _track_at("garbage", 0.0, {"garbage": 1.8}, half_m=(1.0, 1.0))
    motorbike = _track_at("motorbike", 0.1, {"motorbike": 0.8}, half_m=(1.0, 1.0))
    assert [t.track_id for t in distinct_objects([garbage, motorbike], 0.5, {})] == ["garbage"]
    weighted = distinct_objects([garbage, motorbike], 0.5, {"motorbike": 3.0})  # 2.4 > 1.8
    assert [t.track_id for t in weighted] == ["motorbike"]
    assert motorbike.evidence_mass({"motorbike": 3.0}) == pytest.approx(2.4)
