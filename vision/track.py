"""Tracking in map space: the same object seen in many overlapping frames becomes one track.

Association runs per class (or per group of classes a detector confuses, such as shed and steel shack) on
located points in the working metric CRS (never in pixels, since the camera
moves): each frame's detections are matched one-to-one to the nearest open tracks of their class by the
Hungarian method (:func:`scipy.optimize.linear_sum_assignment`), within a gate of ``gate_sigma`` standard
deviations of the combined position error (at least ``min_gate_m``). A track's position is the
inverse-variance weighted mean of its sightings, where a box cut by the image edge (whose centre is not the
object's) counts 50 times less. It keeps the best evidence (the highest score, halved for a box cut by the
image edge), the frame that evidence came from, the number of sightings and the first and last
time seen.

A track's class is voted: each sighting adds its score to its class, and the class with the largest sum wins,
so one confident misreading among several agreeing sightings does not relabel the object.
:func:`distinct_objects` settles what per-class association cannot: the same object tracked twice under
two classes (a car read as a shed in some frames), where the track with the most evidence is the object.

Tracks stay open for the whole run, so an object seen again from a neighbouring flight line a minute later
joins its track instead of becoming a second flag. The tracker's state is plain data (:meth:`Tracker.state`)
so a restarted run continues with the same tracks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy.optimize import linear_sum_assignment
from shapely.geometry.base import BaseGeometry

from drone.model import Frame
from vision.geolocate import GroundDetections

_EDGE_PENALTY = 0.5
#: a box cut by the image edge is not centred on its object: its position counts this much less
_EDGE_WEIGHT = 0.02


@dataclass(frozen=True)
class Evidence:
    """The best view of a track: which frame, which box (pixels) and how good (score, edge-penalised)."""

    frame_id: str
    frame_source: str
    box_xyxy: tuple[float, float, float, float]
    score: float
    quality: float
    footprint_wkt: str


@dataclass(frozen=True)
class Track:
    """One real object: position (metric CRS) with its 1-sigma error, sightings and best evidence."""

    track_id: str
    class_name: str
    x_m: float
    y_m: float
    weight: float  # sum of 1/sigma² over the sightings
    sightings: int
    first_seen: datetime
    last_seen: datetime
    max_score: float
    evidence: Evidence
    floor_m: float  # the telemetry's horizontal accuracy: a bias shared by all sightings
    class_scores: Mapping[str, float]  # summed sighting score per class: the class vote
    looks: int = 0  # processed frames whose ground footprint holds the track (0: not counted yet)

    def evidence_mass(self, class_weight: Mapping[str, float]) -> float:
        """The evidence for the object: its sightings' summed scores, each class's sum times its weight
        (classes not listed weigh 1)."""
        return float(sum(class_weight.get(name, 1.0) * total for name, total in self.class_scores.items()))

    @property
    def error_m(self) -> float:
        """1-sigma error of the mean position: averaging sightings shrinks the random part of the error, never
        below the telemetry's own horizontal accuracy (its bias is common to nearby sightings)."""
        return max(float(1.0 / np.sqrt(self.weight)), self.floor_m)

    @property
    def footprint(self) -> BaseGeometry:
        """The best view's ground polygon, moved to the track's mean position."""
        polygon = shapely.from_wkt(self.evidence.footprint_wkt)
        centre = polygon.centroid
        moved: BaseGeometry = shapely.affinity.translate(polygon, self.x_m - centre.x, self.y_m - centre.y)
        return moved


@dataclass(frozen=True)
class TrackUpdate:
    """A track after one frame, and whether that frame gave it a better evidence crop."""

    track: Track
    new_evidence: bool


class Tracker:
    """Associates located detections frame by frame into tracks.

    Args:
        gate_sigma: association gate in standard deviations of the combined position error.
        min_gate_m: the gate is never narrower than this (box jitter on top of the telemetry's error).
        max_gate_m: nor wider (two neighbouring parked cars must stay two tracks).
        id_prefix: prefix of track ids, e.g. the run's name, so ids are unique across runs.
        tracks: tracks to continue (from :meth:`state` of an interrupted run).
        groups: class → association group, for classes a detector confuses with each other (a shed seen as a
            steel shack from another angle stays one object); a track takes the class with the largest summed
            score over its sightings. Classes not listed are their own group.
    """

    def __init__(
        self,
        *,
        gate_sigma: float = 3.0,
        min_gate_m: float = 1.5,
        max_gate_m: float = 6.0,
        id_prefix: str = "T",
        tracks: Sequence[Track] = (),
        groups: Mapping[str, str] | None = None,
    ) -> None:
        if not 0 < min_gate_m <= max_gate_m:
            raise ValueError(
                f"gates must satisfy 0 < min_gate_m ≤ max_gate_m, got {min_gate_m}, {max_gate_m}"
            )
        self._gate_sigma = gate_sigma
        self._gate_m = (min_gate_m, max_gate_m)
        self._prefix = id_prefix
        self._tracks: dict[str, Track] = {t.track_id: t for t in tracks}
        self._counter = len(self._tracks)
        self._groups = dict(groups or {})

    def _group(self, class_name: str) -> str:
        return self._groups.get(class_name, class_name)

    @property
    def tracks(self) -> tuple[Track, ...]:
        """Every track so far, in creation order."""
        return tuple(self._tracks.values())

    def update(self, located: GroundDetections, frame: Frame) -> list[TrackUpdate]:
        """Add one frame's located detections; returns the tracks they created or extended."""
        groups = np.array([self._group(label) for label in located.detections.labels()], dtype=object)
        updates: list[TrackUpdate] = []
        for group in sorted(set(groups.tolist())):
            indices = np.flatnonzero(groups == group)
            updates.extend(self._update_group(str(group), indices, located, frame))
        return updates

    def _update_group(
        self, group: str, indices: npt.NDArray[np.intp], located: GroundDetections, frame: Frame
    ) -> list[TrackUpdate]:
        candidates = [t for t in self._tracks.values() if self._group(t.class_name) == group]
        pairs = self._associate(candidates, located, indices)
        updates = []
        for row, index in enumerate(indices):
            sighting = _sighting(located, int(index), frame)
            track = candidates[pairs[row]] if row in pairs else None
            update = _extend(track, sighting) if track else TrackUpdate(self._new_track(sighting), True)
            self._tracks[update.track.track_id] = update.track
            updates.append(update)
        return updates

    def _associate(
        self, candidates: list[Track], located: GroundDetections, indices: npt.NDArray[np.intp]
    ) -> dict[int, int]:
        """Detection row → candidate position, one-to-one, nearest first, within the gate."""
        if not candidates:
            return {}
        points = located.points_xy[indices]
        centres = np.array([[t.x_m, t.y_m] for t in candidates])
        distances = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2)
        sigma = np.sqrt(
            located.error_m[indices][:, None] ** 2 + np.array([t.error_m for t in candidates]) ** 2
        )
        gate = np.clip(self._gate_sigma * sigma, *self._gate_m)
        cost = np.where(distances <= gate, distances, 1e9)
        rows, columns = linear_sum_assignment(cost)
        return {int(r): int(c) for r, c in zip(rows, columns, strict=True) if cost[r, c] < 1e9}

    def _new_track(self, sighting: _Sighting) -> Track:
        self._counter += 1
        return Track(
            track_id=f"{self._prefix}{self._counter:06d}",
            class_name=sighting.class_name,
            x_m=sighting.x_m,
            y_m=sighting.y_m,
            weight=sighting.weight,
            sightings=1,
            first_seen=sighting.timestamp,
            last_seen=sighting.timestamp,
            max_score=sighting.evidence.score,
            evidence=sighting.evidence,
            floor_m=sighting.floor_m,
            class_scores={sighting.class_name: sighting.evidence.score},
        )

    def state(self) -> list[dict[str, Any]]:
        """The tracks as JSON-ready dictionaries (datetimes as ISO-8601)."""
        return [_track_to_dict(t) for t in self._tracks.values()]

    @classmethod
    def from_state(cls, state: Sequence[Mapping[str, Any]], **options: Any) -> Tracker:
        """A tracker continuing the tracks of :meth:`state`."""
        return cls(tracks=[_track_from_dict(item) for item in state], **options)


@dataclass(frozen=True)
class _Sighting:
    class_name: str
    x_m: float
    y_m: float
    weight: float
    timestamp: datetime
    evidence: Evidence
    floor_m: float


def _sighting(located: GroundDetections, index: int, frame: Frame) -> _Sighting:
    box = tuple(float(v) for v in located.detections.boxes_xyxy[index])
    score = float(located.detections.scores[index])
    height_px, width_px = frame.image.shape[:2]
    at_edge = bool(located.detections.at_edge(width_px, height_px)[index])
    evidence = Evidence(
        frame_id=frame.frame_id,
        frame_source=frame.source,
        box_xyxy=(box[0], box[1], box[2], box[3]),
        score=score,
        quality=score * (_EDGE_PENALTY if at_edge else 1.0),
        footprint_wkt=shapely.to_wkt(located.footprints[index], rounding_precision=3),
    )
    x_m, y_m = (float(v) for v in located.points_xy[index])
    weight = (_EDGE_WEIGHT if at_edge else 1.0) / max(float(located.error_m[index]), 1e-3) ** 2
    class_name = located.detections.class_names[int(located.detections.class_ids[index])]
    return _Sighting(
        class_name, x_m, y_m, weight, frame.timestamp, evidence, frame.pose.horizontal_accuracy_m
    )


def _extend(track: Track, sighting: _Sighting) -> TrackUpdate:
    weight = track.weight + sighting.weight
    better = sighting.evidence.quality > track.evidence.quality
    votes = dict(track.class_scores)
    votes[sighting.class_name] = votes.get(sighting.class_name, 0.0) + sighting.evidence.score
    extended = replace(
        track,
        class_name=_voted_class(votes, track.class_name),
        x_m=(track.x_m * track.weight + sighting.x_m * sighting.weight) / weight,
        y_m=(track.y_m * track.weight + sighting.y_m * sighting.weight) / weight,
        weight=weight,
        sightings=track.sightings + 1,
        first_seen=min(track.first_seen, sighting.timestamp),
        last_seen=max(track.last_seen, sighting.timestamp),
        max_score=max(track.max_score, sighting.evidence.score),
        evidence=sighting.evidence if better else track.evidence,
        floor_m=min(track.floor_m, sighting.floor_m),
        class_scores=votes,
    )
    return TrackUpdate(extended, better)


def _voted_class(votes: Mapping[str, float], current: str) -> str:
    """The class with the largest summed score; a tie keeps the current class."""
    best = max(votes.values())
    return current if votes.get(current, 0.0) >= best else max(votes, key=lambda name: votes[name])


def _track_to_dict(track: Track) -> dict[str, Any]:
    """Field by field (not :func:`dataclasses.asdict`, whose deep copies cost more than the rest of a
    checkpoint): the state of every track is written at each one."""
    data = {f.name: getattr(track, f.name) for f in fields(Track)}
    data["first_seen"] = track.first_seen.isoformat()
    data["last_seen"] = track.last_seen.isoformat()
    data["evidence"] = {f.name: getattr(track.evidence, f.name) for f in fields(Evidence)}
    data["class_scores"] = dict(track.class_scores)
    return data


def _track_from_dict(data: Mapping[str, Any]) -> Track:
    evidence = dict(data["evidence"])
    evidence["box_xyxy"] = tuple(evidence["box_xyxy"])
    return Track(
        **{
            **data,
            "first_seen": datetime.fromisoformat(data["first_seen"]),
            "last_seen": datetime.fromisoformat(data["last_seen"]),
            "evidence": Evidence(**evidence),
        }
    )


def distinct_objects(
    tracks: Sequence[Track], same_object_overlap: float, class_weight: Mapping[str, float]
) -> list[Track]:
    """The tracks that are distinct objects, in their order.

    Two real objects never share ground, so two tracks whose ground footprints overlap by at least
    ``same_object_overlap`` (intersection over union) are one object tracked twice — under two classes the
    detector confused, or split by a missed association. (Intersection over union, not over the smaller
    footprint: a motorbike parked by a shack lies partly inside the shack's box outline on the ground, yet the
    two are different objects.) The track with the larger
    :meth:`Track.evidence_mass` is that object; the other is dropped. ``class_weight`` corrects a detector that
    systematically under-scores a class against the one it confuses it with. Going from the strongest track
    down, a dropped track drops nothing (and a kept one was never overlapped enough by a stronger one, the
    overlap being symmetric).
    """
    footprints = [track.footprint for track in tracks]
    areas = shapely.area(np.asarray(footprints, dtype=object)) if footprints else np.zeros(0)
    masses = [track.evidence_mass(class_weight) for track in tracks]
    tree = shapely.STRtree(footprints)
    dropped: set[int] = set()
    for index in sorted(range(len(tracks)), key=lambda i: -masses[i]):
        if index in dropped:
            continue
        for other in tree.query(footprints[index], predicate="intersects").tolist():
            if other == index or other in dropped:
                continue
            shared = footprints[index].intersection(footprints[other]).area
            if shared >= same_object_overlap * (areas[index] + areas[other] - shared):
                dropped.add(other)
    return [track for index, track in enumerate(tracks) if index not in dropped]
