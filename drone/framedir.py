"""A frame folder: posed frames on disk, the hand-over format between frame sources and the detector.

Layout::

    DIR/frames.jsonl          one JSON object per frame, in the order written
    DIR/images/<frame_id>.jpg the frame's image

Each line holds ``frame_id``, ``timestamp`` (ISO-8601 with its zone), ``image`` (path relative to ``DIR``),
every :class:`~drone.model.Pose` field by name, ``camera`` (every :class:`~drone.model.Camera` field) and
``source``. Writing appends: a line is written only after its image is completely on disk, so a crash can
leave an unreferenced image or a cut-off last line, never a line that points at half an image. Readers skip
(and count) cut-off lines and unreadable images.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import numpy.typing as npt

from drone.model import Camera, Frame, Pose, StreamStats

log = logging.getLogger(__name__)

INDEX_NAME = "frames.jsonl"
IMAGES_NAME = "images"
_FRAME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_POSE_FIELDS = tuple(f.name for f in fields(Pose))
_CAMERA_FIELDS = tuple(f.name for f in fields(Camera))


class FrameDirError(Exception):
    """A frame folder cannot be used at all (missing, not a folder, no index)."""


def write_frame_dir(frames: Iterable[Frame], directory: Path, *, jpeg_quality: int = 92) -> StreamStats:
    """Append ``frames`` to the frame folder ``directory`` (created if needed) and count what was written.

    A frame whose image is not an H×W×3 uint8 array, whose id is not a safe file name, whose timestamp has no
    zone, or whose id is already in the folder is skipped and counted, never raised.

    Args:
        frames: the frames to write, e.g. a :class:`~drone.model.FrameSource`.
        directory: the frame folder.
        jpeg_quality: JPEG quality 1–100.

    Returns:
        Counts of frames written and skipped by reason (this call only).
    """
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1–100, got {jpeg_quality}")
    images = directory / IMAGES_NAME
    images.mkdir(parents=True, exist_ok=True)
    index = directory / INDEX_NAME
    known = _known_ids(index)
    stats = StreamStats()
    with _open_for_append(index) as out:
        for frame in frames:
            problem = _frame_problem(frame, known)
            if problem:
                log.warning("frame %r not written: %s", frame.frame_id, problem)
                stats.skip(problem)
                continue
            write_jpeg(images / f"{frame.frame_id}.jpg", frame.image, quality=jpeg_quality, fsync=True)
            out.write(json.dumps(frame_record(frame), ensure_ascii=False) + "\n")
            out.flush()
            known.add(frame.frame_id)
            stats.frames += 1
        os.fsync(out.fileno())
    return stats


def frame_record(frame: Frame) -> dict[str, Any]:
    """The JSON object of one frame in ``frames.jsonl`` (image path relative to the folder)."""
    return {
        "frame_id": frame.frame_id,
        "timestamp": frame.timestamp.isoformat(),
        "image": f"{IMAGES_NAME}/{frame.frame_id}.jpg",
        **asdict(frame.pose),
        "camera": asdict(frame.camera),
        "source": frame.source,
    }


class FrameDirSource:
    """A :class:`~drone.model.FrameSource` over a frame folder written by :func:`write_frame_dir`.

    Lines that are not valid records (a cut-off last line, hand edits) and images that are missing or cannot
    be decoded are skipped and counted in :attr:`stats`; each iteration starts its counts afresh.
    """

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise FrameDirError(f"{directory}: not a folder (expected a frame folder with {INDEX_NAME})")
        if not (directory / INDEX_NAME).is_file():
            raise FrameDirError(f"{directory}: no {INDEX_NAME}, so this is not a frame folder")
        self.directory = directory
        self._stats = StreamStats()

    @property
    def stats(self) -> StreamStats:
        return self._stats

    def __iter__(self) -> Iterator[Frame]:
        self._stats = StreamStats()
        index = self.directory / INDEX_NAME
        with index.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                frame = self._load(line, f"{index}:{number}")
                if frame is not None:
                    self._stats.frames += 1
                    yield frame

    def _load(self, line: str, where: str) -> Frame | None:
        try:
            record = json.loads(line)
            image_path = self._image_path(record["image"])
            parts = _frame_parts(record)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("%s: not a frame record (%s), skipped", where, error)
            self._stats.skip("bad_record")
            return None
        image = _read_image(image_path)
        if image is None:
            reason = "unreadable_image" if image_path.exists() else "missing_image"
            log.warning("%s: image %s is %s, skipped", where, image_path, reason.replace("_", " "))
            self._stats.skip(reason)
            return None
        return Frame(image=image, **parts)

    def _image_path(self, relative: object) -> Path:
        if not isinstance(relative, str) or Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise ValueError(f"image must be a path inside the folder, got {relative!r}")
        return self.directory / relative


def _known_ids(index: Path) -> set[str]:
    if not index.exists():
        return set()
    known: set[str] = set()
    with index.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                known.add(str(json.loads(line)["frame_id"]))
            except (ValueError, KeyError, TypeError):
                continue
    return known


def _open_for_append(index: Path) -> IO[str]:
    """Open the index for appending, ending a cut-off last line first so the next record starts on its own."""
    cut_off = False
    if index.exists() and index.stat().st_size > 0:
        with index.open("rb") as existing:
            existing.seek(-1, os.SEEK_END)
            cut_off = existing.read(1) != b"\n"
    out = index.open("a", encoding="utf-8")
    if cut_off:
        out.write("\n")
    return out


def _frame_problem(frame: Frame, known: set[str]) -> str | None:
    image = frame.image
    if not _FRAME_ID.match(frame.frame_id):
        return "invalid_frame_id"
    if frame.frame_id in known:
        return "duplicate_frame_id"
    if frame.timestamp.tzinfo is None:
        return "timestamp_without_zone"
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return "invalid_image"
    return None


def write_jpeg(path: Path, image: npt.NDArray[np.uint8], *, quality: int, fsync: bool = False) -> None:
    """Encode ``image`` (BGR) as JPEG and write it to ``path`` atomically (a temporary file, then a rename).

    The folder is created if needed; ``fsync`` flushes the file to disk before the rename (frame folders that
    must survive a power cut). Raises OSError when OpenCV cannot encode the image.
    """
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"OpenCV could not encode the image for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as out:
        out.write(encoded.tobytes())
        if fsync:
            out.flush()
            os.fsync(out.fileno())
    os.replace(partial, path)


def _read_image(path: Path) -> npt.NDArray[np.uint8] | None:
    if not path.is_file():
        return None
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else np.asarray(image, dtype=np.uint8)


def _frame_parts(record: dict[str, Any]) -> dict[str, Any]:
    """Every field of a frame but its image, from one record; ValueError/KeyError/TypeError when malformed."""
    timestamp = datetime.fromisoformat(record["timestamp"])
    if timestamp.tzinfo is None:
        raise ValueError(f"timestamp {timestamp.isoformat()} has no zone")
    camera = record["camera"]
    return {
        "frame_id": str(record["frame_id"]),
        "timestamp": timestamp,
        "pose": Pose(**{name: _pose_value(name, record[name]) for name in _POSE_FIELDS if name in record}),
        "camera": Camera(**{name: camera[name] for name in _CAMERA_FIELDS}),
        "source": str(record.get("source", "")),
    }


def _pose_value(name: str, value: object) -> Any:
    if name == "gimbal_absolute":
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
        return value
    if value is None and name == "altitude_amsl_m":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
