"""Sliced inference for high-resolution frames, as SAHI does it: overlapping tiles plus one full-frame pass.

From 60–100 m a car is 20–40 px in a 1080p frame; shrunk to a 640 px network input it nearly vanishes.
:class:`SlicedDetector` wraps any :class:`~vision.model.Detector`, runs it on overlapping tiles of
``tile_px`` (batched across tiles and frames) and on the whole frame for the large objects, shifts the tile
boxes back into frame pixels and merges the overlapping results by non-maximum suppression (keep the best
box) or non-maximum merging (grow the best box over the boxes it matches).

Example:
    >>> sliced = SlicedDetector(OnnxDetector(Path("model.onnx")), SliceParams(tile_px=640, overlap=0.2))  # doctest: +SKIP
    >>> [detections] = sliced.detect([frame_bgr], ["frame-0001"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from vision.detector import FloatArray, IntArray, MatchMetric, greedy_groups
from vision.model import Detections, Detector

MergeMethod = Literal["nms", "nmm"]


@dataclass(frozen=True, kw_only=True)
class SliceParams:
    """Tile size and overlap (share of the tile, 0–0.9), the full-frame pass, and how results are merged."""

    tile_px: int = 640
    overlap: float = 0.2
    full_frame: bool = True
    merge: MergeMethod = "nmm"
    match_metric: MatchMetric = "ios"
    match_threshold: float = 0.5
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.tile_px < 32:
            raise ValueError(f"tile_px must be at least 32, got {self.tile_px}")
        if not 0.0 <= self.overlap <= 0.9:
            raise ValueError(f"overlap must lie in 0–0.9, got {self.overlap}")
        if not 0.0 < self.match_threshold <= 1.0:
            raise ValueError(f"match_threshold must lie in (0, 1], got {self.match_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


def tile_windows(width_px: int, height_px: int, tile_px: int, overlap: float) -> IntArray:
    """Tile windows (K×4 x1, y1, x2, y2) covering the image; the last row and column are shifted inwards.

    Neighbouring tiles overlap by at least ``overlap`` × ``tile_px``; an image side shorter than a tile gives
    one window spanning that side.
    """
    xs = _axis_starts(width_px, tile_px, overlap)
    ys = _axis_starts(height_px, tile_px, overlap)
    windows = [(x, y, min(x + tile_px, width_px), min(y + tile_px, height_px)) for y in ys for x in xs]
    return np.asarray(windows, np.int64).reshape(-1, 4)


def _axis_starts(length_px: int, tile_px: int, overlap: float) -> list[int]:
    if length_px <= tile_px:
        return [0]
    stride = max(1, int(tile_px * (1.0 - overlap)))
    count = -(-(length_px - tile_px) // stride) + 1
    # Spread the starts evenly so the overlap is at least the requested one and the last tile ends at the edge.
    return [round(index * (length_px - tile_px) / (count - 1)) for index in range(count)]


def merge_detections(
    frame_id: str,
    parts: Sequence[Detections],
    *,
    method: MergeMethod = "nmm",
    metric: MatchMetric = "ios",
    threshold: float = 0.5,
) -> Detections:
    """One frame's detections from several passes (all in frame pixels), merged by NMS or NMM.

    NMS keeps the best box of each overlapping group; NMM replaces it by the union of the group's boxes, so an
    object cut by a tile edge and seen whole elsewhere becomes one box. The merged score is the group's best.
    """
    if not parts:
        raise ValueError(f"frame {frame_id}: nothing to merge (no detection passes)")
    class_names = parts[0].class_names
    boxes = np.concatenate([part.boxes_xyxy for part in parts]).astype(np.float32)
    scores = np.concatenate([part.scores for part in parts]).astype(np.float32)
    class_ids = np.concatenate([part.class_ids for part in parts]).astype(np.int64)
    groups = greedy_groups(boxes, scores, class_ids, threshold, metric)
    if not groups:
        return Detections.empty(frame_id, class_names)
    leaders = np.asarray([group[0] for group in groups], np.int64)
    merged = boxes[leaders] if method == "nms" else _union_boxes(boxes, groups)
    return Detections(frame_id, merged, scores[leaders], class_ids[leaders], class_names)


def _union_boxes(boxes: FloatArray, groups: Sequence[IntArray]) -> FloatArray:
    union = [(*boxes[group, :2].min(axis=0), *boxes[group, 2:].max(axis=0)) for group in groups]
    return np.asarray(union, np.float32).reshape(-1, 4)


def _shift(detections: Detections, x_px: int, y_px: int, frame_id: str) -> Detections:
    offset = np.asarray([x_px, y_px, x_px, y_px], np.float32)
    return Detections(
        frame_id,
        detections.boxes_xyxy + offset,
        detections.scores,
        detections.class_ids,
        detections.class_names,
    )


class SlicedDetector:
    """A :class:`~vision.model.Detector` that runs another one on overlapping tiles plus the full frame."""

    def __init__(self, detector: Detector, params: SliceParams | None = None) -> None:
        self.detector = detector
        self.params = params or SliceParams()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.detector.class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        """Detections for each image in frame pixels, merged over its tiles and its full-frame pass."""
        if len(images) != len(frame_ids):
            raise ValueError(f"{len(images)} images but {len(frame_ids)} frame ids")
        tiled = self._detect_tiles(images, frame_ids)
        full = self._detect_full_frames(images, frame_ids)
        params = self.params
        return [
            merge_detections(
                frame_id,
                [*tiled[index], *full.get(index, ())],
                method=params.merge,
                metric=params.match_metric,
                threshold=params.match_threshold,
            )
            for index, frame_id in enumerate(frame_ids)
        ]

    def _detect_tiles(
        self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]
    ) -> list[list[Detections]]:
        """Each image's tile detections, shifted into frame pixels; tiles of all images share the batches."""
        tiles = [
            (index, x1, y1, np.ascontiguousarray(image[y1:y2, x1:x2]))
            for index, image in enumerate(images)
            for x1, y1, x2, y2 in tile_windows(
                image.shape[1], image.shape[0], self.params.tile_px, self.params.overlap
            ).tolist()
        ]
        found: list[list[Detections]] = [[] for _ in images]
        for start in range(0, len(tiles), self.params.batch_size):
            batch = tiles[start : start + self.params.batch_size]
            ids = [f"{frame_ids[index]}@{x},{y}" for index, x, y, _ in batch]
            results = self.detector.detect([crop for *_, crop in batch], ids)
            for (index, x, y, _), detections in zip(batch, results, strict=True):
                found[index].append(_shift(detections, x, y, frame_ids[index]))
        return found

    def _detect_full_frames(
        self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]
    ) -> dict[int, list[Detections]]:
        """The full-frame pass of every image larger than one tile (a one-tile image already had it)."""
        if not self.params.full_frame:
            return {}
        tile = self.params.tile_px
        large = [i for i, image in enumerate(images) if image.shape[0] > tile or image.shape[1] > tile]
        found: dict[int, list[Detections]] = {}
        for start in range(0, len(large), self.params.batch_size):
            chunk = large[start : start + self.params.batch_size]
            results = self.detector.detect([images[i] for i in chunk], [frame_ids[i] for i in chunk])
            found.update((index, [detections]) for index, detections in zip(chunk, results, strict=True))
        return found
