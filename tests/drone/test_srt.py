"""DJI SRT telemetry: every layout in ../shared/drone_samples/srt, broken files, and garbled input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drone.srt import CHINA_STANDARD_TIME, SrtError, parse_srt, parse_srt_text
from tests.shared_data import shared_path

SAMPLES = ("drone_samples", "srt")


def sample(name: str) -> Path:
    return shared_path(*SAMPLES, name)


# file, records, skipped, first (lat, lon, height above take-off), clock of the first cue (or None)
LAYOUTS = [
    ("MAVIC3_head.srt", 690, {}, (3.41531, -3.37440, -2.4), datetime(2021, 12, 25, 12, 27, 52, 373000)),
    ("air2s.srt", 17, {}, (41.424724, 2.234156, 117.0), datetime(2022, 8, 7, 13, 40, 40, 774808)),
    ("mavic_air2.srt", 25, {}, (41.420684, 2.162162, 27.3), datetime(2022, 5, 1, 15, 1, 58, 531716)),
    ("matrice_300.srt", 381, {}, (36.6146, -6.1120, 0.3), datetime(2022, 6, 21, 16, 6, 17)),
    ("mavic_2_style.SRT", 468, {}, (-20.2533, 149.0251, None), datetime(2017, 8, 5, 14, 11, 51, 393525)),
    ("mavic_mini.SRT", 117, {}, (48.0771, -121.7458, 200.7), None),
    ("mavic_pro.SRT", 468, {}, (-20.2533, 149.0251, 1.9), datetime(2017, 8, 5, 14, 11, 51)),
    (
        "mavic_pro_buggy.SRT",
        530,
        {"no_gps_fix": 16},
        (42.4668, -1.2218, 0.0),
        datetime(2018, 8, 19, 8, 0, 36),
    ),
    ("old_format.SRT", 468, {}, (-20.2533, 149.0251, 1.9), datetime(2017, 8, 5, 14, 11, 51)),
    ("p4_rtk.SRT", 55, {}, (-34.237922, -58.851745, 85.8), None),
    ("p4p_sample.SRT", 5, {}, (47.4692, 8.2090, 45.6), None),
    ("mix_p4rtk_mavic2pro.srt", 12, {}, (-34.650200, -59.409424, 17.39), None),
    (
        "broken_incomplete.SRT",
        19,
        {"no_position": 1},
        (-34.7383, -58.4563, 20.1),
        datetime(2017, 7, 3, 10, 15, 3),
    ),
    ("broken_incomplete2.SRT", 4, {"no_position": 2}, (-34.869950, -57.823395, 74.725998), None),
]


@pytest.mark.parametrize(("name", "count", "skipped", "first", "clock"), LAYOUTS)
def test_every_shared_layout(
    name: str,
    count: int,
    skipped: dict[str, int],
    first: tuple[float, float, float | None],
    clock: datetime | None,
) -> None:
    track = parse_srt(sample(name))
    assert len(track.records) == count
    assert track.skipped == skipped
    assert len(track.problems) == min(20, sum(skipped.values()))
    record = track.records[0]
    assert (record.lat_deg, record.lon_deg) == pytest.approx(first[:2])
    assert record.relative_altitude_m == (None if first[2] is None else pytest.approx(first[2]))
    if clock is not None:
        assert record.timestamp == clock.replace(tzinfo=CHINA_STANDARD_TIME)
    times = [r.video_time_s for r in track.records]
    assert times == sorted(times), "cues are in video order"


def test_mavic3_reads_height_above_sea_level_and_frame_timing() -> None:
    track = parse_srt(sample("MAVIC3_head.srt"))
    assert track.records[0].absolute_altitude_m == pytest.approx(0.401)
    assert track.records[-1].video_time_s == pytest.approx(13.78)
    assert track.at(0.05) == track.records[2]  # cue 3 runs 0.040–0.060 s


def test_phantom4_rtk_reads_flight_and_gimbal_angles() -> None:
    record = parse_srt(sample("p4_rtk.SRT")).records[0]
    assert (record.pitch_deg, record.roll_deg, record.yaw_deg) == (2.7, -7.0, 110.1)
    assert (record.gimbal_pitch_deg, record.gimbal_roll_deg, record.gimbal_yaw_deg) == (-24.4, 0.0, 110.4)
    pose = record.to_pose()
    assert pose.gimbal_pitch_deg == -24.4 and pose.yaw_deg == 110.1 and pose.altitude_agl_m == 85.8


def test_mixed_file_switches_layout_and_keeps_both() -> None:
    track = parse_srt(sample("mix_p4rtk_mavic2pro.srt"))
    compact, bracketed = track.records[0], track.records[-1]
    assert compact.timestamp is None and compact.video_time_s == pytest.approx(904.904)
    assert bracketed.lon_deg == pytest.approx(-59.409483) and bracketed.relative_altitude_m == pytest.approx(
        120.141
    )
    assert bracketed.timestamp == datetime(2020, 10, 7, 12, 0, 10, 403182, tzinfo=CHINA_STANDARD_TIME)


def test_mavic2_without_time_codes_is_timed_by_its_clock() -> None:
    track = parse_srt(sample("mavic_2_style.SRT"))
    assert [r.video_time_s for r in track.records[:3]] == pytest.approx([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="no height above take-off"):
        track.records[0].to_pose()
    assert track.records[0].to_pose(altitude_agl_m=60.0).altitude_agl_m == 60.0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("broken_empty.SRT", "empty"),
        ("broken_empty2.SRT", r"broken_empty2\.SRT:1: no subtitle cue with a usable position"),
        ("mavic_air.SRT", r"mavic_air\.SRT:1: .*2 no_position"),
    ],
)
def test_files_without_telemetry_are_clear_errors(name: str, message: str) -> None:
    with pytest.raises(SrtError, match=message):
        parse_srt(sample(name))


def test_strict_mode_names_the_line_of_the_first_bad_cue() -> None:
    with pytest.raises(SrtError, match=r"broken_incomplete2\.SRT:13: cue skipped: no position"):
        parse_srt(sample("broken_incomplete2.SRT"), strict=True)


GOOD_CUE = """{n}
00:00:0{n},000 --> 00:00:0{n},500
<font size="28">FrameCnt: {n}, DiffTime: 500ms
2024-03-01 10:00:0{n}.000
[iso: 100] [latitude: 31.2{n}] [longitude: 120.6] [rel_alt: 80.0 abs_alt: 85.0] [gb_yaw: 10.0 gb_pitch: -45.0 gb_roll: 0.0] </font>
"""


def test_garbled_cues_are_skipped_with_reasons_and_lines() -> None:
    garbled = "\n".join(
        [
            GOOD_CUE.format(n=1),
            "2\n00:00:02,000 --> 00:00:02,500\n[latitude: 1x2] [longitude: ...] \n",
            "3\n00:00:03,000 --> 00:00:03,500\n[latitude: 95.0] [longitude: 120.6] [rel_alt: 1 abs_alt: 2]\n",
            "4\n00:00:04,000 --> 00:00:04,500\nGPS(0.0,0.0,0) BAROMETER:0.0\n",
            "5\n\u0000\u00ff\ufffd garbage \u0001\n",
            "6\n2024-13-45 99:99:99\n[latitude: 31.2] [longitude: 120.6]\n",
            GOOD_CUE.format(n=7),
        ]
    )
    track = parse_srt_text(garbled, name="flight.SRT")
    assert [r.lat_deg for r in track.records] == [31.21, 31.27]
    assert track.skipped == {"no_position": 2, "position_out_of_range": 1, "no_gps_fix": 1, "no_time": 1}
    assert track.problems[0] == "flight.SRT:7: no position"
    pose = track.records[0].to_pose()
    assert (pose.gimbal_yaw_deg, pose.gimbal_pitch_deg, pose.altitude_amsl_m) == (10.0, -45.0, 85.0)


def test_gps_order_can_be_forced_and_auto_fixes_impossible_latitudes() -> None:
    cue = "1\n00:00:01,000 --> 00:00:02,000\nGPS({a},{b},12) BAROMETER:30.5\n"
    lonlat = parse_srt_text(cue.format(a="120.6", b="31.3"))
    assert (lonlat.records[0].lat_deg, lonlat.records[0].lon_deg) == (31.3, 120.6)
    forced = parse_srt_text(cue.format(a="31.3", b="60.6"), gps_order="lat_lon")
    assert (forced.records[0].lat_deg, forced.records[0].lon_deg) == (31.3, 60.6)
    # the Matrice layout (units on numbers) is latitude first
    matrice = parse_srt_text("1\n00:00:01,000 --> 00:00:02,000\nGPS(31.3,120.6,25.5M) BAROMETER:30.5M\n")
    record = matrice.records[0]
    assert (record.lat_deg, record.lon_deg, record.absolute_altitude_m) == (31.3, 120.6, 25.5)
    assert record.relative_altitude_m == 30.5


def test_clock_zone_can_be_given() -> None:
    track = parse_srt_text(GOOD_CUE.format(n=1), tz=UTC)
    assert track.records[0].timestamp == datetime(2024, 3, 1, 10, 0, 1, tzinfo=UTC)
    local = parse_srt_text(GOOD_CUE.format(n=1)).records[0].timestamp
    assert local is not None and local.utcoffset() == timedelta(hours=8)


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(SrtError, match="cannot read"):
        parse_srt(tmp_path / "missing.SRT")
    binary = tmp_path / "video.SRT"
    binary.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(SrtError, match=r"video\.SRT:1: no subtitle cue"):
        parse_srt(binary)


def test_cues_out_of_order_are_sorted_by_video_time() -> None:
    text = "\n".join([GOOD_CUE.format(n=3), GOOD_CUE.format(n=1), GOOD_CUE.format(n=2)])
    track = parse_srt_text(text)
    assert [r.lat_deg for r in track.records] == [31.21, 31.22, 31.23]
    assert track.at(2.2) == track.records[1] and track.at(0.5) is None


def test_utf16_files_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    path = tmp_path / "DJI_0003.SRT"
    path.write_bytes(GOOD_CUE.format(n=1).encode("utf-16"))
    assert [r.lat_deg for r in parse_srt(path).records] == [31.21]
