"""Sliced inference: tile layout, merging, batching, and small objects that only tiles can see."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from vision.detector import iou_matrix, letterbox
from vision.model import Detections
from vision.slicing import SlicedDetector, SliceParams, merge_detections, tile_windows

INPUT_PX = 64


class BlobDetector:
    """A real detector for white blobs that, like a YOLO network, sees each image shrunk to a 64 px input.

    A blob smaller than 2×2 input pixels is lost, so a 40 px object in a 1920 px frame is invisible full-frame
    and visible in a 640 px tile. Every call's batch size is recorded.
    """

    class_names = ("blob",)

    def __init__(self) -> None:
        self.batches: list[int] = []

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        self.batches.append(len(images))
        return [self._detect_one(image, frame_id) for image, frame_id in zip(images, frame_ids, strict=True)]

    def _detect_one(self, image: npt.NDArray[np.uint8], frame_id: str) -> Detections:
        _, box = letterbox(image, (INPUT_PX, INPUT_PX))
        size = (round(image.shape[1] * box.scale), round(image.shape[0] * box.scale))
        shrunk = cv2.resize(image[:, :, 0], size, interpolation=cv2.INTER_AREA)
        count, _, stats, _ = cv2.connectedComponentsWithStats((shrunk > 200).astype(np.uint8))
        found = [row for row in stats[1:count] if row[4] >= 4]
        corners = [(x, y, x + w, y + h) for x, y, w, h, _ in found]
        pad = [box.pad_x, box.pad_y, box.pad_x, box.pad_y]
        xyxy = (np.asarray(corners, np.float32).reshape(-1, 4) + pad).astype(np.float32)
        boxes = box.to_image(xyxy, image.shape[1], image.shape[0])
        scores = np.full(len(found), 0.9, np.float32)
        return Detections(frame_id, boxes, scores, np.zeros(len(found), np.int64), self.class_names)


def _frame(squares: Sequence[tuple[int, int, int, int]]) -> npt.NDArray[np.uint8]:
    frame = np.zeros((1080, 1920, 3), np.uint8)
    for x1, y1, x2, y2 in squares:
        frame[y1:y2, x1:x2] = 255
    return frame


SMALL = [(100, 100, 140, 140), (900, 500, 940, 540), (1800, 1000, 1840, 1040), (1500, 80, 1540, 120)]


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (640, 640), (700, 300), (4000, 3000), (100, 50)])
@pytest.mark.parametrize("overlap", [0.0, 0.2, 0.5])
def test_tiles_cover_the_image_with_the_requested_overlap(width: int, height: int, overlap: float) -> None:
    windows = tile_windows(width, height, 640, overlap)
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in windows.tolist():
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert x2 - x1 == min(640, width) and y2 - y1 == min(640, height)
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    for axis in (0, 1):
        starts = np.unique(windows[:, axis])
        if len(starts) > 1:
            assert (640 - np.diff(starts)).min() >= int(640 * overlap)


def test_small_objects_are_found_only_with_tiles() -> None:
    frame = _frame(SMALL)
    truth = np.asarray(SMALL, np.float32)
    [full] = BlobDetector().detect([frame], ["f"])
    [sliced] = SlicedDetector(BlobDetector(), SliceParams(tile_px=640, overlap=0.2)).detect([frame], ["f"])
    assert len(full) == 0
    assert len(sliced) == len(SMALL)
    assert (iou_matrix(truth, sliced.boxes_xyxy).max(axis=1) > 0.7).all()
    assert sliced.frame_id == "f"


def test_object_cut_by_a_tile_edge_is_one_whole_box_with_nmm() -> None:
    # Tiles start at x = 0, 427, 853, 1280; this bar is whole in the first tile and cut by the second's edge.
    bar = (380, 300, 600, 340)
    frame = _frame([bar])
    nmm = SlicedDetector(BlobDetector(), SliceParams(overlap=0.2, full_frame=False, merge="nmm"))
    nms = SlicedDetector(BlobDetector(), SliceParams(overlap=0.2, full_frame=False, merge="nms"))
    [merged] = nmm.detect([frame], ["f"])
    [suppressed] = nms.detect([frame], ["f"])
    assert len(merged) == 1 and len(suppressed) == 1
    assert iou_matrix(merged.boxes_xyxy, np.asarray([bar], np.float32))[0, 0] > 0.8


def test_nms_and_nmm_merge_only_same_class_overlaps() -> None:
    names = ("car", "shed")
    whole = Detections(
        "f",
        np.asarray([[0, 0, 100, 40], [300, 300, 320, 320]], np.float32),
        np.asarray([0.6, 0.5], np.float32),
        np.asarray([0, 0], np.int64),
        names,
    )
    part = Detections(
        "f",
        np.asarray([[60, 0, 120, 40], [0, 0, 100, 40]], np.float32),
        np.asarray([0.9, 0.8], np.float32),
        np.asarray([0, 1], np.int64),
        names,
    )
    nms = merge_detections("f", [whole, part], method="nms", metric="ios", threshold=0.5)
    nmm = merge_detections("f", [whole, part], method="nmm", metric="ios", threshold=0.5)
    np.testing.assert_allclose(nms.boxes_xyxy, [[60, 0, 120, 40], [0, 0, 100, 40], [300, 300, 320, 320]])
    np.testing.assert_allclose(nmm.boxes_xyxy, [[0, 0, 120, 40], [0, 0, 100, 40], [300, 300, 320, 320]])
    np.testing.assert_allclose(nmm.scores, [0.9, 0.8, 0.5])
    assert nmm.labels() == ["car", "shed", "car"]
    iou_only = merge_detections("f", [whole, part], method="nmm", metric="iou", threshold=0.5)
    assert len(iou_only) == 4  # the cut car overlaps the whole one by IoU 0.25 only
    with pytest.raises(ValueError, match="frame f: nothing to merge"):
        merge_detections("f", [])


def test_tiles_of_several_frames_share_batches() -> None:
    blobs = BlobDetector()
    frames = [_frame(SMALL), _frame(SMALL[:1])]
    results = SlicedDetector(blobs, SliceParams(overlap=0.2, batch_size=5)).detect(frames, ["a", "b"])
    tiles = len(tile_windows(1920, 1080, 640, 0.2))
    assert sum(blobs.batches) == 2 * tiles + 2  # every tile of both frames plus two full-frame passes
    assert max(blobs.batches) == 5
    assert [len(found) for found in results] == [4, 1]
    assert [found.frame_id for found in results] == ["a", "b"]


def test_full_frame_pass_finds_an_object_larger_than_a_tile() -> None:
    big = (200, 100, 1700, 1000)
    frame = _frame([big])
    [with_full] = SlicedDetector(BlobDetector(), SliceParams(overlap=0.2)).detect([frame], ["f"])
    best = iou_matrix(np.asarray([big], np.float32), with_full.boxes_xyxy).max()
    assert best > 0.9


def test_image_within_one_tile_is_detected_once() -> None:
    blobs = BlobDetector()
    small = np.zeros((480, 640, 3), np.uint8)
    small[100:200, 100:200] = 255
    [found] = SlicedDetector(blobs).detect([small], ["f"])
    assert blobs.batches == [1] and len(found) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tile_px", 16, "tile_px must be at least 32"),
        ("overlap", 0.95, "overlap must lie in 0–0.9"),
        ("match_threshold", 0.0, "match_threshold must lie in"),
        ("batch_size", 0, "batch_size must be at least 1"),
    ],
)
def test_bad_slice_params_are_refused(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SliceParams(**{field: value})  # type: ignore[arg-type]
