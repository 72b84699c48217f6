"""Frame folders: write, append, read back; cut-off lines, broken images and bad frames are skipped and counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from drone.framedir import FrameDirError, FrameDirSource, write_frame_dir
from drone.model import Camera, Frame, FrameSource, Pose

CAMERA = Camera("test 1-inch", 13.2, 8.8, 8.8, 320, 240)
CHINA = timezone(timedelta(hours=8))


def smooth_image(index: int) -> np.ndarray:
    """A gradient that differs per frame (JPEG keeps smooth images within a few levels)."""
    rows, cols = np.mgrid[0:240, 0:320]
    return np.dstack([rows + index * 5, cols // 2, (rows + cols) // 3]).astype(np.uint8)


def make_frame(index: int, *, frame_id: str | None = None, image: np.ndarray | None = None) -> Frame:
    pixels = smooth_image(index) if image is None else image
    pose = Pose(
        lat_deg=31.3 + index * 1e-4,
        lon_deg=120.6,
        altitude_agl_m=80.0,
        altitude_amsl_m=None if index % 2 else 85.5,
        yaw_deg=12.5,
        gimbal_pitch_deg=-60.0,
        gimbal_absolute=index % 2 == 0,
    )
    stamp = datetime(2026, 5, 1, 9, 0, tzinfo=CHINA) + timedelta(seconds=index)
    return Frame(frame_id or f"f{index:04d}", stamp, pixels, pose, CAMERA, source="unit-test")


def test_round_trip_keeps_pose_camera_timestamp_and_pixels(tmp_path: Path) -> None:
    frames = [make_frame(i) for i in range(4)]
    stats = write_frame_dir(frames, tmp_path, jpeg_quality=100)
    assert stats.frames == 4 and stats.skipped == {}
    source = FrameDirSource(tmp_path)
    assert isinstance(source, FrameSource)
    back = list(source)
    assert [f.frame_id for f in back] == [f.frame_id for f in frames]
    for original, read in zip(frames, back, strict=True):
        assert read.pose == original.pose
        assert read.camera == original.camera
        assert read.timestamp == original.timestamp and read.timestamp.utcoffset() == timedelta(hours=8)
        assert read.source == "unit-test"
        assert read.image.shape == original.image.shape and read.image.dtype == np.uint8
        assert np.abs(read.image.astype(int) - original.image.astype(int)).mean() < 2
    assert source.stats.frames == 4 and source.stats.skipped == {}


def test_index_lines_name_their_image_and_every_field(tmp_path: Path) -> None:
    write_frame_dir([make_frame(0)], tmp_path)
    record = json.loads((tmp_path / "frames.jsonl").read_text(encoding="utf-8"))
    assert record["image"] == "images/f0000.jpg" and (tmp_path / record["image"]).is_file()
    assert record["timestamp"] == "2026-05-01T09:00:00+08:00"
    assert record["lat_deg"] == pytest.approx(31.3) and record["camera"]["focal_length_mm"] == 8.8
    assert not list((tmp_path / "images").glob(".*partial"))


def test_append_skips_duplicate_ids_and_keeps_earlier_frames(tmp_path: Path) -> None:
    write_frame_dir([make_frame(0), make_frame(1)], tmp_path)
    stats = write_frame_dir([make_frame(1), make_frame(2)], tmp_path)
    assert stats.frames == 1 and stats.skipped == {"duplicate_frame_id": 1}
    assert [f.frame_id for f in FrameDirSource(tmp_path)] == ["f0000", "f0001", "f0002"]


def test_bad_frames_are_counted_not_raised(tmp_path: Path) -> None:
    naive = make_frame(3)
    naive = Frame(naive.frame_id, naive.timestamp.replace(tzinfo=None), naive.image, naive.pose, CAMERA)
    frames = [
        make_frame(0, frame_id="../escape"),
        make_frame(1, image=np.zeros((10, 10), np.uint8)),
        make_frame(2, image=np.zeros((10, 10, 3), np.float32)),
        naive,
        make_frame(4),
    ]
    stats = write_frame_dir(frames, tmp_path)
    assert stats.frames == 1
    assert stats.skipped == {"invalid_frame_id": 1, "invalid_image": 2, "timestamp_without_zone": 1}
    assert not (tmp_path.parent / "escape.jpg").exists()


def test_cut_off_line_and_broken_images_are_skipped_and_counted(tmp_path: Path) -> None:
    write_frame_dir([make_frame(i) for i in range(4)], tmp_path)
    (tmp_path / "images" / "f0001.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "images" / "f0002.jpg").unlink()
    with (tmp_path / "frames.jsonl").open("a", encoding="utf-8") as out:
        out.write('{"frame_id": "f0009", "timestamp": "2026-05')  # a crash mid-line
    source = FrameDirSource(tmp_path)
    assert [f.frame_id for f in source] == ["f0000", "f0003"]
    assert source.stats.frames == 2
    assert source.stats.skipped == {"unreadable_image": 1, "missing_image": 1, "bad_record": 1}
    # appending after the crash starts a fresh line, so the new frame is readable
    assert write_frame_dir([make_frame(5)], tmp_path).frames == 1
    assert [f.frame_id for f in FrameDirSource(tmp_path)] == ["f0000", "f0003", "f0005"]


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("image", "/etc/passwd"),
        ("image", "../outside.jpg"),
        ("lat_deg", "31.3"),
        ("gimbal_absolute", 1),
        ("timestamp", "2026-05-01T09:00:00"),
        ("camera", {"name": "x"}),
    ],
)
def test_malformed_records_are_skipped(tmp_path: Path, change: str, value: object) -> None:
    write_frame_dir([make_frame(0), make_frame(1)], tmp_path)
    index = tmp_path / "frames.jsonl"
    first, second = index.read_text(encoding="utf-8").splitlines()
    record = json.loads(first)
    record[change] = value
    index.write_text(json.dumps(record) + "\n" + second + "\n", encoding="utf-8")
    source = FrameDirSource(tmp_path)
    assert [f.frame_id for f in source] == ["f0001"]
    assert source.stats.skipped == {"bad_record": 1}


def test_missing_folder_or_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FrameDirError, match="not a folder"):
        FrameDirSource(tmp_path / "nope")
    with pytest.raises(FrameDirError, match=r"no frames\.jsonl"):
        FrameDirSource(tmp_path)


def test_jpeg_quality_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jpeg_quality"):
        write_frame_dir([make_frame(0)], tmp_path, jpeg_quality=0)


def test_utc_timestamps_round_trip(tmp_path: Path) -> None:
    frame = make_frame(0)
    utc = Frame(frame.frame_id, frame.timestamp.astimezone(UTC), frame.image, frame.pose, CAMERA)
    write_frame_dir([utc], tmp_path)
    (back,) = FrameDirSource(tmp_path)
    assert back.timestamp == frame.timestamp and back.timestamp.utcoffset() == timedelta(0)
