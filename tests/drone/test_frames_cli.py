"""``skygrid frames``: each source kind detected, written as a frame folder, skips reported, bad input refused."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from drone.framedir import FrameDirSource
from gis.cli import cli
from tests.drone.test_sources import (
    TLOG_START,
    free_udp_port,
    vehicle_sending_positions,
    write_klv_ts,
    write_photo,
    write_srt,
    write_tlog,
    write_video,
)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["frames", *args])
    return result.exit_code, result.output


def test_video_with_srt_next_to_it(tmp_path: Path) -> None:
    video = write_video(tmp_path / "DJI_0001.AVI")
    write_srt(tmp_path / "DJI_0001.SRT")
    code, output = run(str(video), "-o", str(tmp_path / "out"), "--every-s", "0.5", "--camera", "m30")
    assert code == 0, output
    assert "wrote 6 frames" in output and "已写入 6 帧" in output
    frames = list(FrameDirSource(tmp_path / "out"))
    assert [f.frame_id for f in frames] == [f"DJI_0001-{i:06d}" for i in range(0, 30, 5)]
    assert frames[0].camera.name == "DJI Matrice 30 (wide) @ 160x120"


def test_srt_given_and_skips_reported(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi")
    srt = write_srt(tmp_path / "log.srt", cues=20)
    code, output = run(str(video), "--srt", str(srt), "-o", str(tmp_path / "out"), "--max-gap-s", "0.25")
    assert code == 0, output
    assert "wrote 22 frames" in output
    assert "skipped 8 (source: telemetry_gap 遥测中断)" in output


def test_photo_folder_then_frame_folder_copy(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    write_photo(photos / "DJI_0001.JPG")
    write_photo(photos / "DJI_0002.JPG", gps=False)
    code, output = run(str(photos), "-o", str(tmp_path / "out"))
    assert code == 0, output
    assert "wrote 1 frames" in output and "skipped 1 (source: no_gps 无GPS)" in output
    record = json.loads((tmp_path / "out" / "frames.jsonl").read_text(encoding="utf-8"))
    assert record["frame_id"] == "DJI_0001" and record["altitude_agl_m"] == 80.0
    code, output = run(str(tmp_path / "out"), "-o", str(tmp_path / "copy"))
    assert code == 0 and "wrote 1 frames" in output
    assert [f.frame_id for f in FrameDirSource(tmp_path / "copy")] == ["DJI_0001"]
    # running again appends nothing new: the ids are already there
    code, output = run(str(tmp_path / "out"), "-o", str(tmp_path / "copy"))
    assert code == 0 and "skipped 1 (writer: duplicate_frame_id 帧编号重复)" in output


def test_klv_transport_stream_is_detected(tmp_path: Path) -> None:
    ts = write_klv_ts(tmp_path / "uav.ts", frames=10, klv_frames=10, bad=-1)
    code, output = run(str(ts), "-o", str(tmp_path / "out"))
    assert code == 0, output
    assert "wrote 10 frames" in output
    assert all(f.source == "klv:uav.ts" for f in FrameDirSource(tmp_path / "out"))


def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    video = write_video(tmp_path / "lonely.avi")
    code, output = run(str(video), "-o", str(tmp_path / "out"))
    assert code == 1 and "no subtitle file lonely.SRT" in output
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = run(str(empty), "-o", str(tmp_path / "out"))
    assert code == 1 and "neither a frame folder" in output
    write_srt(tmp_path / "lonely.SRT")
    code, output = run(str(video), "-o", str(tmp_path / "out"), "--camera", "no-such-drone")
    assert code == 2 and "no-such-drone" in output
    code, output = run(str(video), "-o", str(tmp_path / "out"), "--time-offset-s", "100")
    assert code == 1 and "no frame of" in output and "telemetry_gap" in output


def test_video_with_mavlink_log(tmp_path: Path) -> None:
    video = write_video(tmp_path / "flight.avi", frames=10)
    tlog = write_tlog(tmp_path / "flight.tlog", [i / 10 for i in range(10)])
    start = TLOG_START.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
    code, output = run(str(video), "--tlog", str(tlog), "--start-time", start, "-o", str(tmp_path / "out"))
    assert code == 0, output
    assert "wrote 10 frames" in output
    frames = list(FrameDirSource(tmp_path / "out"))
    assert frames[4].pose.lat_deg == pytest.approx(31.30004) and frames[4].source == "mavlink:" + str(video)
    code, output = run(str(video), "--tlog", str(tlog), "-o", str(tmp_path / "out2"))
    assert code == 1 and "give the time the video started" in output


def test_stream_address_needs_telemetry(tmp_path: Path) -> None:
    code, output = run("rtsp://192.168.1.20:8554/live", "-o", str(tmp_path / "out"))
    assert code == 1 and "a stream needs MAVLink telemetry" in output


def test_every_s_thins_frame_folders_and_klv_by_time(tmp_path: Path) -> None:
    video = write_video(tmp_path / "DJI_0002.AVI")
    write_srt(tmp_path / "DJI_0002.SRT")
    assert run(str(video), "-o", str(tmp_path / "all"))[0] == 0
    code, output = run(str(tmp_path / "all"), "-o", str(tmp_path / "thin"), "--every-s", "1")
    assert code == 0 and "wrote 3 frames" in output
    assert [f.frame_id for f in FrameDirSource(tmp_path / "thin")] == [
        f"DJI_0002-{i:06d}" for i in (0, 10, 20)
    ]
    ts = write_klv_ts(tmp_path / "uav.ts", frames=20, klv_frames=20, bad=-1)
    code, output = run(str(ts), "-o", str(tmp_path / "klv"), "--every-s", "0.5")
    assert code == 0 and "wrote 4 frames" in output


def test_video_with_live_mavlink_link(tmp_path: Path) -> None:
    video = write_video(tmp_path / "live.avi", frames=10)
    port = free_udp_port()
    with vehicle_sending_positions(port):
        code, output = run(str(video), "--mavlink", f"udpin:127.0.0.1:{port}", "-o", str(tmp_path / "out"))
    assert code == 0, output
    assert "wrote 10 frames" in output
    assert all(f.pose.altitude_agl_m == 60.0 for f in FrameDirSource(tmp_path / "out"))
