"""The flags layer: round trip through a GeoPackage, atomic replacement, bad input, city category tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyogrio
import pytest

from vision.flags import (
    DEFAULT_SCHEME,
    FLAG_COLUMNS,
    Flag,
    FlagsError,
    read_flags_frame,
    read_scheme,
    write_flags,
)

T0 = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)


def _flag(flag_id: str = "a-00001", **changes: object) -> Flag:
    category = DEFAULT_SCHEME.category("car")
    assert category is not None
    flag = Flag(
        flag_id=flag_id,
        lon_deg=120.71,
        lat_deg=31.31,
        class_name="car",
        category=category,
        confidence=0.87,
        rule="vehicle_in_fire_lane",
        severity=3,
        grid_code="320571001001001",
        microgrid_code="32057100100100101",
        sightings=4,
        first_seen=T0,
        last_seen=T0 + timedelta(seconds=6),
        evidence="evidence/a-00001.jpg",
        frame_id="f0007",
        frame_source="patrol",
        frame_image="evidence/frames/f0007.jpg",
        error_m=1.2,
    )
    return replace(flag, **changes)  # type: ignore[arg-type]


def test_round_trip_keeps_every_column(tmp_path: Path) -> None:
    path = tmp_path / "flags.gpkg"
    write_flags([_flag(), _flag("a-00002", microgrid_code=None, class_name="motorbike")], path)
    frame = read_flags_frame(path)
    assert set(FLAG_COLUMNS) <= set(frame.columns)
    first = frame.iloc[0]
    assert (first["flag_id"], first["category_code"], first["category"]) == (
        "a-00001",
        "0505",
        "机动车乱停放",
    )
    assert (first["rule"], first["severity"], first["sightings"]) == ("vehicle_in_fire_lane", 3, 4)
    assert first["standard"] == "GB/T 30428.2-2013"
    assert first.geometry.x == pytest.approx(120.71) and first.geometry.y == pytest.approx(31.31)
    assert first["last_seen"] - first["first_seen"] == timedelta(seconds=6)
    assert frame["microgrid_code"].isna().tolist() == [False, True]
    assert frame.crs == "EPSG:4326"


def test_empty_flags_still_make_a_layer(tmp_path: Path) -> None:
    path = tmp_path / "none.gpkg"
    write_flags([], path)
    assert len(read_flags_frame(path)) == 0


def test_duplicate_ids_are_refused_and_the_old_file_survives(tmp_path: Path) -> None:
    path = tmp_path / "flags.gpkg"
    write_flags([_flag()], path)
    with pytest.raises(FlagsError, match="a-00001 occurs twice"):
        write_flags([_flag(), _flag()], path)
    assert read_flags_frame(path)["flag_id"].tolist() == ["a-00001"]
    assert [p.name for p in tmp_path.iterdir()] == ["flags.gpkg"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lon_deg": 400.0}, "not a WGS-84"),
        ({"confidence": 1.5}, "confidence"),
        ({"sightings": 0}, "sightings"),
        ({"last_seen": T0 - timedelta(seconds=1)}, "sightings"),
    ],
)
def test_invalid_flags_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _flag("a-00009", **changes)


def test_reading_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FlagsError, match="not found"):
        read_flags_frame(tmp_path / "absent.gpkg")
    other = tmp_path / "other.gpkg"
    write_flags([_flag()], other)
    only_renamed = tmp_path / "renamed.gpkg"
    pyogrio.write_dataframe(read_flags_frame(other), only_renamed, layer="renamed", driver="GPKG")
    with pytest.raises(FlagsError, match=r"no layer 'flags'; layers present: \['renamed'\]"):
        read_flags_frame(only_renamed)


def test_a_city_table_overrides_categories(tmp_path: Path) -> None:
    table = tmp_path / "categories.csv"
    table.write_text("class_name,code,name,name_en,standard\ncar,0599,车辆乱停,vehicles,DB32/T 1\n", "utf-8")
    scheme = read_scheme(table)
    car = scheme.category("car")
    assert car is not None and (car.code, car.standard) == ("0599", "DB32/T 1")
    garbage = scheme.category("garbage")
    assert garbage is not None and garbage.code == "0102"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("class,code\ncar,1\n", "missing column"),
        ("class_name,code,name\ncar,,乱停\n", "line 2: field code is empty"),
    ],
)
def test_bad_city_tables_are_named(tmp_path: Path, text: str, message: str) -> None:
    table = tmp_path / "categories.csv"
    table.write_text(text, "utf-8")
    with pytest.raises(FlagsError, match=message):
        read_scheme(table)


def test_classes_of_one_category_form_one_tracking_group() -> None:
    groups = DEFAULT_SCHEME.groups()
    assert groups["shed"] == groups["steel_shack"] == "0101"
    assert (
        len({groups["car"], groups["motorbike"], groups["clutter"], groups["garbage"], groups["shed"]}) == 5
    )
