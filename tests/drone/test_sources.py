"""Frame sources on real files made here: a video (OpenCV) with its SRT, truncated and corrupt videos."""

from __future__ import annotations

import contextlib
import math
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image
from pymavlink import mavutil
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from drone.model import Camera, FrameSource
from drone.sources import (
    FrameSourceError,
    SourceOptions,
    ThinnedSource,
    fit_camera,
    frame_id_prefix,
    open_source,
)
from drone.sources.klv import (
    KlvError,
    KlvVideoSource,
    has_klv_stream,
    parse_local_set,
    split_local_sets,
    to_pose,
)
from drone.sources.mavlink_stream import LiveTelemetry, MavlinkVideoSource
from drone.sources.photos import PhotoFolderSource
from drone.sources.video_srt import VideoSrtSource, find_srt, probe_video
from drone.srt import CHINA_STANDARD_TIME, SrtError

CAMERA = Camera("test 4:3", 13.2, 9.9, 8.8, 640, 480)
FPS = 10
WIDTH, HEIGHT = 160, 120
START = datetime(2026, 5, 1, 9, 30, 0)


def write_video(path: Path, frames: int = 30, fourcc: str = "MJPG") -> Path:
    """A real video: frame ``i`` is grey level ``8·i`` with its number printed on it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((HEIGHT, WIDTH, 3), 8 * i, np.uint8)
        cv2.putText(image, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(image)
    writer.release()
    return path


def mavic3_cue(n: int, start_s: float, lat: float) -> str:
    def code(seconds: float) -> str:
        whole = int(seconds)
        return f"00:00:{whole:02d},{round((seconds - whole) * 1000):03d}"

    clock = START + timedelta(seconds=start_s)
    return (
        f"{n}\n{code(start_s)} --> {code(start_s + 0.1)}\n"
        f'<font size="28">FrameCnt: {n}, DiffTime: 100ms\n'
        f"{clock:%Y-%m-%d %H:%M:%S}.{clock.microsecond // 1000:03d}\n"
        f"[iso: 100] [focal_len: 24.00] [latitude: {lat:.6f}] [longitude: 120.600000] "
        f"[rel_alt: 80.000 abs_alt: 83.500] </font>\n"
    )


def write_srt(path: Path, cues: int = 30, *, skip: range = range(0)) -> Path:
    """One Mavic 3 cue per frame (0.1 s), latitude growing by 1e-5 per cue; cues in ``skip`` left out."""
    text = "\n".join(mavic3_cue(i + 1, i / FPS, 31.3 + i * 1e-5) for i in range(cues) if i not in skip)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def flight(tmp_path: Path) -> Path:
    video = write_video(tmp_path / "DJI_0001.AVI")
    write_srt(tmp_path / "DJI_0001.SRT")
    return video


def test_video_with_srt_next_to_it_gives_posed_frames(flight: Path) -> None:
    source = VideoSrtSource(flight, camera=CAMERA)
    assert isinstance(source, FrameSource)
    frames = list(source)
    assert len(frames) == 30 and source.stats.frames == 30 and source.stats.skipped == {}
    for i, frame in enumerate(frames):
        assert frame.frame_id == f"DJI_0001-{i:06d}"
        assert frame.pose.lat_deg == pytest.approx(31.3 + i * 1e-5)
        assert frame.pose.altitude_agl_m == 80.0 and frame.pose.altitude_amsl_m == 83.5
        assert frame.timestamp == (START + timedelta(seconds=i / FPS)).replace(tzinfo=CHINA_STANDARD_TIME)
        assert frame.image.shape == (HEIGHT, WIDTH, 3)
        assert abs(int(frame.image[5, 150, 0]) - 8 * i) <= 3  # the right picture for the right pose
    assert frames[0].camera == fit_camera(CAMERA, WIDTH, HEIGHT)
    assert frames[0].source == "video+srt:DJI_0001.AVI"


def test_every_s_keeps_one_frame_per_interval(flight: Path) -> None:
    frames = list(VideoSrtSource(flight, camera=CAMERA, every_s=1.0))
    assert [f.frame_id for f in frames] == ["DJI_0001-000000", "DJI_0001-000010", "DJI_0001-000020"]


def test_telemetry_gap_and_frames_after_the_last_cue_are_skipped(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi")
    srt = write_srt(tmp_path / "telemetry.srt", cues=25, skip=range(5, 25))
    source = VideoSrtSource(video, srt, camera=CAMERA, max_gap_s=0.55)
    frames = list(source)
    # cue 5 (0.4 s) still covers frames up to 0.9 s within 0.55 s; later frames lost their telemetry
    assert len(frames) == 10
    assert source.stats.skipped == {"telemetry_gap": 20}


def test_clock_skew_offset_shifts_the_telemetry(flight: Path) -> None:
    shifted = list(VideoSrtSource(flight, camera=CAMERA, time_offset_s=0.5))
    assert shifted[0].pose.lat_deg == pytest.approx(31.3 + 5e-5)
    early = VideoSrtSource(flight, camera=CAMERA, time_offset_s=-0.35)
    assert len(list(early)) == 26 and early.stats.skipped == {"no_telemetry": 4}


def test_truncated_video_yields_the_frames_before_the_cut(flight: Path) -> None:
    data = flight.read_bytes()
    flight.write_bytes(data[: len(data) * 2 // 3])
    source = VideoSrtSource(flight, camera=CAMERA)
    frames = list(source)
    assert 10 <= len(frames) < 30
    assert sum(source.stats.skipped.values()) >= 1
    assert set(source.stats.skipped) <= {"corrupt_frame", "unreadable_rest"}


def test_corrupt_frame_in_the_middle_is_skipped_and_counted(flight: Path) -> None:
    data = bytearray(flight.read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", bytes(data))]
    data[starts[15] + 20 : starts[15] + 400] = b"\x55" * 380
    flight.write_bytes(bytes(data))
    source = VideoSrtSource(flight, camera=CAMERA)
    frames = list(source)
    assert len(frames) == 29 and source.stats.skipped == {"corrupt_frame": 1}
    assert "DJI_0001-000014" in {f.frame_id for f in frames}


def test_unusable_inputs_are_clear_errors(tmp_path: Path) -> None:
    video = write_video(tmp_path / "a.avi")
    with pytest.raises(FrameSourceError, match=r"no subtitle file a\.SRT"):
        VideoSrtSource(video, camera=CAMERA)
    with pytest.raises(FrameSourceError, match="no such video"):
        VideoSrtSource(tmp_path / "missing.mp4", camera=CAMERA)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(write_video(tmp_path / "whole.mp4", fourcc="mp4v").read_bytes()[:2000])
    write_srt(tmp_path / "cut.SRT")
    with pytest.raises(FrameSourceError, match=r"cut\.mp4: cannot open the video"):
        VideoSrtSource(cut, camera=CAMERA)
    (tmp_path / "a.SRT").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n", encoding="utf-8")
    with pytest.raises(SrtError, match=r"a\.SRT:1: no subtitle cue"):
        VideoSrtSource(video, camera=CAMERA)


def test_srt_without_clock_uses_the_given_start_time(tmp_path: Path) -> None:
    video = write_video(tmp_path / "p4.avi", frames=20)
    cues = [
        f"{i + 1}\n00:00:{i:02d},000 --> 00:00:{i + 1:02d},000\n"
        f"F/5.6, SS 400, ISO 100, EV 0, GPS (120.600000, 31.300000, 15), D 10.0m, H 60.00m, H.S 0.00m/s, "
        f"V.S 0.00m/s, F.PRY (0.0°, 0.0°, 90.0°), G.PRY (-90.0°, 0.0°, 90.0°)\n"
        for i in range(2)
    ]
    srt = tmp_path / "p4.SRT"
    srt.write_text("\n".join(cues), encoding="utf-8")
    without = VideoSrtSource(video, srt, camera=CAMERA)
    assert list(without) == [] and without.stats.skipped == {"no_clock": 20}
    start = datetime(2026, 5, 1, 1, 30, tzinfo=UTC)
    frames = list(VideoSrtSource(video, srt, camera=CAMERA, start_time=start))
    assert frames[15].timestamp == start + timedelta(seconds=1.5)
    assert frames[15].pose.yaw_deg == 90.0 and frames[15].pose.altitude_agl_m == 60.0


def test_helpers(tmp_path: Path) -> None:
    assert frame_id_prefix("DJI 0001 航拍.MP4") == "DJI_0001"
    assert frame_id_prefix("..") == "frame"
    fitted = fit_camera(Camera("m3e", 17.3, 13.0, 12.29, 5280, 3956), 1920, 1080)
    assert fitted.sensor_height_mm == pytest.approx(17.3 * 1080 / 1920)
    assert fitted.gsd_m_px(100) == pytest.approx(17.3 * 100 / (1920 * 12.29))
    video = write_video(tmp_path / "v.avi")
    info = probe_video(str(video))
    assert (info.width_px, info.height_px, info.frames_per_s) == (WIDTH, HEIGHT, FPS)
    (tmp_path / "v.srt").write_text("x", encoding="utf-8")
    assert find_srt(video) == tmp_path / "v.srt"


DJI_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="DJI Meta Data" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
    'drone-dji:AbsoluteAltitude="+86.51" drone-dji:RelativeAltitude="{relative}" '
    'drone-dji:GimbalRollDegree="+0.00" drone-dji:GimbalYawDegree="-12.40" drone-dji:GimbalPitchDegree="-45.10" '
    'drone-dji:FlightRollDegree="+1.20" drone-dji:FlightYawDegree="-13.00" drone-dji:FlightPitchDegree="-3.50"/>'
    "</rdf:RDF></x:xmpmeta>"
)


def write_photo(
    path: Path,
    *,
    gps: bool = True,
    relative: str | None = "+80.00",
    lens: bool = True,
    south_west: bool = False,
) -> Path:
    """A JPEG with the EXIF and XMP a DJI Mavic 3E writes (4:3 image, 12.29 mm lens, 24 mm equivalent)."""
    image = Image.new("RGB", (400, 300), (40, 160, 90))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "DJI", "M3E"
    if gps:
        info = exif.get_ifd(ExifTags.IFD.GPSInfo)
        info[1], info[2] = ("S" if south_west else "N"), (31.0, 18.0, 3.6)
        info[3], info[4] = ("W" if south_west else "E"), (120.0, 36.0, 36.0)
        info[5], info[6] = 0, 86.5
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[0x9003], details[0x9291], details[0x9011] = "2026:05:01 09:30:00", "250", "+08:00"
    if lens:
        details[0x920A], details[0xA405] = 12.29, 24
    if relative is None:
        image.save(path, exif=exif)
    else:
        image.save(path, exif=exif, xmp=DJI_XMP.format(relative=relative).encode())
    return path


def test_dji_photos_give_pose_clock_and_camera_from_exif_and_xmp(tmp_path: Path) -> None:
    write_photo(tmp_path / "DJI_0001.JPG")
    write_photo(tmp_path / "DJI_0002.jpg", south_west=True)
    source = PhotoFolderSource(tmp_path)
    assert isinstance(source, FrameSource)
    first, second = list(source)
    assert first.frame_id == "DJI_0001" and first.source == "photo:DJI_0001.JPG"
    assert (first.pose.lat_deg, first.pose.lon_deg) == pytest.approx((31.301, 120.61))
    assert (second.pose.lat_deg, second.pose.lon_deg) == pytest.approx((-31.301, -120.61))
    pose = first.pose
    assert (pose.altitude_agl_m, pose.altitude_amsl_m) == (80.0, 86.51)
    assert (pose.gimbal_yaw_deg, pose.gimbal_pitch_deg, pose.gimbal_roll_deg) == (-12.4, -45.1, 0.0)
    assert (pose.yaw_deg, pose.pitch_deg, pose.roll_deg) == (-13.0, -3.5, 1.2)
    assert first.timestamp == datetime(2026, 5, 1, 1, 30, 0, 250000, tzinfo=UTC)
    assert first.image.shape == (300, 400, 3) and tuple(first.image[150, 200]) == pytest.approx(
        (90, 160, 40), abs=3
    )
    # 24 mm equivalent of a 12.29 mm lens: a 22.16 mm diagonal, 17.73 × 13.3 mm at 4:3 (Mavic 3E: 17.3 × 13)
    camera = first.camera
    assert camera.name == "DJI M3E" and camera.focal_length_mm == 12.29
    assert camera.sensor_width_mm == pytest.approx(17.73, abs=0.01)
    assert (camera.image_width_px, camera.image_height_px) == (400, 300)


def test_photos_without_exif_gps_height_or_lens_are_skipped_with_reasons(tmp_path: Path) -> None:
    write_photo(tmp_path / "a_good.jpg")
    write_photo(tmp_path / "b_no_gps.jpg", gps=False)
    write_photo(tmp_path / "c_no_height.jpg", relative=None)
    write_photo(tmp_path / "d_no_lens.jpg", lens=False)
    (tmp_path / "e_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    source = PhotoFolderSource(tmp_path)
    assert [f.frame_id for f in source] == ["a_good"]
    assert source.stats.skipped == {
        "no_gps": 1,
        "no_altitude": 1,
        "no_camera_model": 1,
        "unreadable_image": 1,
    }
    # a given camera and a given height fill what EXIF/XMP lack
    rescued = PhotoFolderSource(tmp_path, camera=CAMERA, altitude_agl_m=50.0)
    frames = {f.frame_id: f for f in rescued}
    assert set(frames) == {"a_good", "c_no_height", "d_no_lens"}
    assert frames["c_no_height"].pose.altitude_agl_m == 50.0
    assert frames["d_no_lens"].camera == fit_camera(CAMERA, 400, 300)


def test_photo_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FrameSourceError, match="not a folder"):
        PhotoFolderSource(tmp_path / "nope")
    with pytest.raises(FrameSourceError, match="no JPEG photos"):
        PhotoFolderSource(tmp_path)


# MISB ST 0601 packets built here from the standard's encodings, independently of drone.sources.klv.
KLV_START = datetime(2026, 5, 1, 1, 30, tzinfo=UTC)


def ber(length: int) -> bytes:
    if length < 128:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def word_sum(data: bytes) -> int:
    """ST 0601 checksum written as a sum of big-endian 16-bit words."""
    padded = data + b"\x00" * (len(data) % 2)
    return sum(int.from_bytes(padded[i : i + 2], "big") for i in range(0, len(padded), 2)) & 0xFFFF


def local_set(items: list[tuple[bytes, bytes]], *, bad_checksum: bool = False) -> bytes:
    body = b"".join(tag + ber(len(value)) + value for tag, value in items) + b"\x01\x02"
    head = bytes.fromhex("060E2B34020B01010E01030101000000") + ber(len(body) + 2)
    check = word_sum(head + body) ^ (0xFFFF if bad_checksum else 0)
    return head + body + check.to_bytes(2, "big")


def datalink_items(lat: float, lon: float, when: datetime, **extra: float) -> list[tuple[bytes, bytes]]:
    def i32(value: float, half: float) -> bytes:
        return round(value / half * 2147483647).to_bytes(4, "big", signed=True)

    def u16(value: float, low: float, high: float) -> bytes:
        return round((value - low) * 65535 / (high - low)).to_bytes(2, "big")

    micros = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return [
        (b"\x02", micros.to_bytes(8, "big")),
        (b"\x05", u16(extra.get("heading", 90.0), 0, 360)),
        (b"\x06", round(extra.get("pitch", -2.0) / 20 * 32767).to_bytes(2, "big", signed=True)),
        (b"\x07", round(extra.get("roll", 3.0) / 50 * 32767).to_bytes(2, "big", signed=True)),
        (b"\x0d", i32(lat, 90)),
        (b"\x0e", i32(lon, 180)),
        (b"\x0f", u16(extra.get("altitude", 180.0), -900, 19000)),
        (b"\x12", round(extra.get("azimuth", 350.0) * 4294967295 / 360).to_bytes(4, "big")),
        (b"\x13", i32(extra.get("elevation", -60.0), 180)),
        (b"\x19", u16(extra.get("ground", 5.0), -900, 19000)),
        (b"\x3b", b"SKYGRID-01"),  # platform call sign: not read, must be stepped over
        (b"\x81\x02", b"\x00" * 130),  # a two-byte BER-OID tag with a long-form length
    ]


def test_klv_local_set_decodes_per_st0601() -> None:
    packet = local_set(datalink_items(31.30123, 120.61234, KLV_START))
    datalink = parse_local_set(packet)
    assert datalink.timestamp == KLV_START
    assert (datalink.sensor_lat_deg, datalink.sensor_lon_deg) == pytest.approx(
        (31.30123, 120.61234), abs=1e-7
    )
    assert datalink.sensor_altitude_m == pytest.approx(180.0, abs=0.2)
    assert datalink.platform_heading_deg == pytest.approx(90.0, abs=0.01)
    assert (datalink.platform_pitch_deg, datalink.platform_roll_deg) == pytest.approx((-2.0, 3.0), abs=0.01)
    pose = to_pose(datalink)
    assert pose is not None and not pose.gimbal_absolute
    assert pose.altitude_agl_m == pytest.approx(175.0, abs=0.4)
    assert (pose.gimbal_yaw_deg, pose.gimbal_pitch_deg) == pytest.approx((-10.0, -60.0), abs=1e-6)
    assert list(split_local_sets(b"junk" + packet + packet[:30])) == [packet]
    for broken, message in [
        (local_set(datalink_items(31.3, 120.6, KLV_START), bad_checksum=True), "checksum mismatch"),
        (b"\x00" * 16 + packet[16:], "wrong universal key"),
        (packet[:40], "cut off"),
        (local_set(datalink_items(31.3, 120.6, KLV_START)[:4]), "no sensor latitude"),
        (local_set(datalink_items(31.3, 120.6, KLV_START)[1:]), "no precision time stamp"),
        (local_set([]).replace(b"\x01\x02", b"\x05\x02", 1), "no checksum"),
    ]:
        with pytest.raises(KlvError, match=message):
            parse_local_set(broken)


def write_klv_ts(path: Path, frames: int = 20, klv_frames: int = 15, bad: int = 7) -> Path:
    """An MPEG-TS (MPEG-2 video) with one KLV Local Set per frame for the first ``klv_frames`` frames."""
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("mpeg2video", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        data = out.add_data_stream(codec_name="klv")
        for i in range(frames):
            picture = av.VideoFrame.from_ndarray(
                np.full((HEIGHT, WIDTH, 3), 10 * i, np.uint8), format="bgr24"
            )
            picture.pts = i
            for packet in video.encode(picture):
                out.mux(packet)
            if i < klv_frames:
                when = KLV_START + timedelta(seconds=i / FPS)
                klv = av.Packet(
                    local_set(datalink_items(31.3 + i * 1e-5, 120.6, when), bad_checksum=i == bad)
                )
                klv.stream, klv.time_base = data, Fraction(1, 90000)
                klv.pts = klv.dts = i * 90000 // FPS
                out.mux(klv)
        for packet in video.encode():
            out.mux(packet)
    return path


def test_klv_transport_stream_gives_posed_frames(tmp_path: Path) -> None:
    ts = write_klv_ts(tmp_path / "uav.ts")
    assert has_klv_stream(ts) and not has_klv_stream(write_video(tmp_path / "plain.avi"))
    source = KlvVideoSource(ts, camera=CAMERA, max_gap_s=0.35)
    frames = list(source)
    # packet 7 fails its checksum (frame 7 takes packet 6); frames 18, 19 are > 0.35 s after the last packet
    assert source.stats.skipped == {"bad_klv": 1, "telemetry_gap": 2}
    assert len(frames) == 18
    by_index = {int(f.frame_id.rsplit("-", 1)[1]): f for f in frames}
    assert by_index[3].pose.lat_deg == pytest.approx(31.30003, abs=1e-7)
    assert by_index[7].pose.lat_deg == pytest.approx(31.30006, abs=1e-7)
    assert by_index[3].timestamp == KLV_START + timedelta(seconds=0.3)
    assert by_index[17].timestamp == KLV_START + timedelta(seconds=1.7)
    assert abs(int(by_index[12].image[60, 80, 1]) - 120) <= 4
    assert by_index[0].source == "klv:uav.ts" and by_index[0].pose.altitude_agl_m == pytest.approx(
        175, abs=0.4
    )


# MAVLink telemetry logs written with pymavlink: each message after its 8-byte big-endian µs UTC time.
TLOG_START = datetime(2026, 5, 1, 1, 30, tzinfo=UTC)


def quaternion(yaw_deg: float, pitch_deg: float, roll_deg: float) -> list[float]:
    y, p, r = (math.radians(a) / 2 for a in (yaw_deg, pitch_deg, roll_deg))
    return [
        math.cos(r) * math.cos(p) * math.cos(y) + math.sin(r) * math.sin(p) * math.sin(y),
        math.sin(r) * math.cos(p) * math.cos(y) - math.cos(r) * math.sin(p) * math.sin(y),
        math.cos(r) * math.sin(p) * math.cos(y) + math.sin(r) * math.cos(p) * math.sin(y),
        math.cos(r) * math.cos(p) * math.sin(y) - math.sin(r) * math.sin(p) * math.cos(y),
    ]


def write_tlog(path: Path, times_s: list[float], *, gimbal: str = "device") -> Path:
    """Positions (lat grows 1e-5 per 0.1 s) at ``times_s`` after TLOG_START; vehicle yaw 30°, gimbal 10° right."""
    with path.open("wb") as out:
        mav = mavlink2.MAVLink(out, srcSystem=1, srcComponent=1)
        for t in times_s:
            stamp = struct.pack(">Q", round((TLOG_START.timestamp() + t) * 1e6))
            boot_ms = round(t * 1000)
            attitude = mav.attitude_encode(
                boot_ms, math.radians(2.0), math.radians(-4.0), math.radians(30.0), 0, 0, 0
            )
            if gimbal == "device":
                angles = mav.gimbal_device_attitude_status_encode(
                    1, 1, boot_ms, 32, quaternion(10.0, -45.0, 0.0), 0, 0, 0, 0
                )
            else:
                angles = mav.mount_status_encode(1, 1, -4500, 0, 1000)
            lat = round((31.3 + t * 1e-4) * 1e7)
            position = mav.global_position_int_encode(boot_ms, lat, 1206000000, 95500, 80000, 0, 0, 0, 3000)
            for message in (attitude, angles, position):
                out.write(stamp + message.pack(mav))
    return path


def test_video_with_tlog_telemetry(tmp_path: Path) -> None:
    video = write_video(tmp_path / "flight.avi")
    times = [i / 10 for i in range(20) if not 10 <= i < 16]  # a 0.7 s telemetry gap after 0.9 s
    tlog = write_tlog(tmp_path / "flight.tlog", times)
    source = MavlinkVideoSource(str(video), tlog, camera=CAMERA, video_start=TLOG_START, max_gap_s=0.35)
    frames = {int(f.frame_id.rsplit("-", 1)[1]): f for f in source}
    # frames 13–15 are > 0.35 s after the 0.9 s sample, frames 23–29 > 0.35 s after the last (1.9 s)
    assert source.stats.skipped == {"telemetry_gap": 10} and len(frames) == 20
    assert 22 in frames and 23 not in frames
    pose = frames[5].pose
    assert pose.lat_deg == pytest.approx(31.30005) and pose.lon_deg == pytest.approx(120.6)
    assert (pose.altitude_agl_m, pose.altitude_amsl_m) == (80.0, 95.5)
    assert (pose.yaw_deg, pose.pitch_deg, pose.roll_deg) == pytest.approx((30.0, -4.0, 2.0))
    # the gimbal's yaw is in the vehicle frame (flag 32): 10° right of a 30° heading
    assert (pose.gimbal_yaw_deg, pose.gimbal_pitch_deg, pose.gimbal_roll_deg) == pytest.approx(
        (40.0, -45.0, 0.0), abs=1e-6
    )
    assert pose.gimbal_absolute
    assert frames[5].timestamp == TLOG_START + timedelta(seconds=0.5)
    assert frames[12].pose.lat_deg == pytest.approx(31.30009)
    skewed = MavlinkVideoSource(str(video), tlog, camera=CAMERA, video_start=TLOG_START, clock_offset_s=0.3)
    assert next(iter(skewed)).pose.lat_deg == pytest.approx(31.30003)


def test_mount_status_and_late_video_start(tmp_path: Path) -> None:
    video = write_video(tmp_path / "flight.avi", frames=10)
    tlog = write_tlog(tmp_path / "flight.tlog", [0.5 + i / 10 for i in range(10)], gimbal="mount")
    source = MavlinkVideoSource(str(video), tlog, camera=CAMERA, video_start=TLOG_START)
    frames = list(source)
    assert source.stats.skipped == {"no_telemetry": 5} and len(frames) == 5
    assert (frames[0].pose.gimbal_yaw_deg, frames[0].pose.gimbal_pitch_deg) == pytest.approx((40.0, -45.0))


def test_mavlink_source_errors(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", frames=3)
    tlog = write_tlog(tmp_path / "ok.tlog", [0.0, 0.1])
    with pytest.raises(FrameSourceError, match="no such telemetry log"):
        MavlinkVideoSource(str(video), tmp_path / "missing.tlog", camera=CAMERA, video_start=TLOG_START)
    (tmp_path / "junk.tlog").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(FrameSourceError, match="no GLOBAL_POSITION_INT"):
        MavlinkVideoSource(str(video), tmp_path / "junk.tlog", camera=CAMERA, video_start=TLOG_START)
    with pytest.raises(FrameSourceError, match="give the time the video started"):
        MavlinkVideoSource(str(video), tlog, camera=CAMERA)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def vehicle_sending_positions(
    port: int, every_s: float = 0.01, *, lon: float = 120.6, lat: float = 31.3, for_s: float = math.inf
) -> Iterator[None]:
    """A vehicle sending GLOBAL_POSITION_INT (at ``lon``, ``lat``, 60 m above home, heading 90°) to a UDP port
    on loopback every ``every_s`` for ``for_s`` seconds (then its radio drops), until the block ends."""
    stop = threading.Event()

    def vehicle() -> None:
        link = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=1)
        until = time.monotonic() + for_s
        while not stop.is_set() and time.monotonic() < until:
            lat_e7, lon_e7 = round(lat * 1e7), round(lon * 1e7)
            link.mav.global_position_int_send(0, lat_e7, lon_e7, 95500, 60000, 0, 0, 0, 9000)
            time.sleep(every_s)
        link.close()

    sender = threading.Thread(target=vehicle, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()


def test_live_mavlink_link_over_loopback(tmp_path: Path) -> None:
    video = write_video(tmp_path / "live.avi", frames=10)
    port = free_udp_port()
    with LiveTelemetry(f"udpin:127.0.0.1:{port}") as live, vehicle_sending_positions(port, every_s=0.02):
        frames = list(MavlinkVideoSource(str(video), live, camera=CAMERA))  # waits for the first position
    assert len(frames) == 10
    assert frames[0].pose.altitude_agl_m == 60.0 and frames[0].pose.yaw_deg == 90.0
    assert abs(frames[0].timestamp - datetime.now(UTC)) < timedelta(seconds=10)


def test_open_source_picks_the_adapter(tmp_path: Path, flight: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("DJI_0001.JPG", "DJI_0002.JPG", "DJI_0003.JPG"):
        write_photo(photos / name)  # all taken in the same second
    assert isinstance(open_source(photos), PhotoFolderSource)
    thinned = open_source(photos, SourceOptions(every_s=2.0))
    assert isinstance(thinned, ThinnedSource)
    assert [f.frame_id for f in thinned] == ["DJI_0001"] and thinned.stats.frames == 3
    ts = write_klv_ts(tmp_path / "uav.ts", frames=5, klv_frames=5, bad=-1)
    assert isinstance(open_source(ts), KlvVideoSource)
    tlog = write_tlog(tmp_path / "f.tlog", [0.0, 0.1])
    mavlink = open_source(str(flight), SourceOptions(tlog=tlog, start_time=TLOG_START, camera=CAMERA))
    assert isinstance(mavlink, MavlinkVideoSource) and mavlink.camera == fit_camera(CAMERA, WIDTH, HEIGHT)
    video = open_source(flight)
    assert isinstance(video, VideoSrtSource) and video.camera.name.startswith("DJI Mavic 3 Enterprise")
    with pytest.raises(FrameSourceError, match="no such file or folder"):
        open_source("rtmp://10.0.0.2/live/drone")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FrameSourceError, match="neither a frame folder"):
        open_source(empty)


def test_live_link_without_positions_is_a_clear_error(tmp_path: Path) -> None:
    video = write_video(tmp_path / "live.avi", frames=3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LiveTelemetry(f"udpin:127.0.0.1:{port}") as live:
        source = MavlinkVideoSource(str(video), live, camera=CAMERA, first_position_timeout_s=0.3)
        with pytest.raises(FrameSourceError, match=r"no GLOBAL_POSITION_INT .* within 0\.3 s"):
            list(source)
