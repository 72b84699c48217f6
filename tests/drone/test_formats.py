"""Mission files: .plan and .waypoints round trips (and pymavlink's reader), DJI KMZ structure, previews,
bad files, multi-sortie naming and atomic writes."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
from pymavlink import mavwp

from drone.cameras import PRESETS
from drone.formats import MissionFileError, write_mission
from drone.formats.qgc_plan import read_plan
from drone.formats.waypoints import read_waypoints
from drone.items import fence_items, rally_items, sortie_items
from drone.model import GeoFencePolygon, Mission, Sortie, Waypoint, WaypointAction
from tests.shared_data import shared_path

WPML = "{http://www.dji.com/wpmz/1.0.6}"
HOME = Waypoint(120.70, 31.30, 0.0)


def _sortie(index: int, offset: float = 0.0) -> Sortie:
    waypoints = (
        Waypoint(120.701 + offset, 31.301, 80.0),
        Waypoint(120.7011 + offset, 31.3011, 80.0, WaypointAction.START_SURVEY),
        Waypoint(120.7031 + offset, 31.3011, 80.0, WaypointAction.STOP_SURVEY),
        Waypoint(120.7031 + offset, 31.3014, 80.0, WaypointAction.START_SURVEY),
        Waypoint(120.7011 + offset, 31.3014, 80.0, WaypointAction.STOP_SURVEY),
        Waypoint(
            120.7015 + offset, 31.3016, 80.0, WaypointAction.HOVER_PHOTO, hover_s=3.0, gimbal_pitch_deg=-45.0
        ),
    )
    return Sortie(index, HOME, waypoints, 10.0, 16.9, 420.0, 2500.0)


def _mission(sorties: int = 1, camera: str = "mavic3e") -> Mission:
    return Mission(
        name="320571001001001",
        camera=PRESETS[camera].camera,
        altitude_m=80.0,
        sorties=tuple(_sortie(i, 0.001 * i) for i in range(sorties)),
        fence=(
            GeoFencePolygon(
                ((120.699, 31.299), (120.705, 31.299), (120.705, 31.303), (120.699, 31.303)), True
            ),
            GeoFencePolygon(((120.702, 31.3001), (120.7025, 31.3001), (120.7025, 31.3005)), False),
        ),
        rally_points=(Waypoint(120.6995, 31.2995, 30.0),),
    )


def test_plan_round_trip(tmp_path: Path) -> None:
    mission = _mission()
    [path] = write_mission(mission, tmp_path / "m.plan")
    plan = read_plan(path)
    assert plan.mission == sortie_items(mission.sorties[0], mission)
    assert plan.fence == fence_items(mission.fence)
    assert plan.rally == rally_items(mission.rally_points)
    assert plan.cruise_speed_m_s == 10.0


def test_plan_file_has_qgroundcontrol_layout(tmp_path: Path) -> None:
    [path] = write_mission(_mission(), tmp_path / "m.plan")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (document["fileType"], document["version"], document["mission"]["version"]) == ("Plan", 1, 2)
    assert document["mission"]["plannedHomePosition"] == [31.30, 120.70, 0.0]
    items = document["mission"]["items"]
    assert items[0]["command"] == 22 and items[0]["doJumpId"] == 1
    assert all(item["type"] == "SimpleItem" and len(item["params"]) == 7 for item in items)
    assert all(p is not None for item in items for p in item["params"])
    fence = document["geoFence"]["polygons"]
    assert [p["inclusion"] for p in fence] == [True, False]
    assert fence[0]["polygon"][0] == [31.299, 120.699]
    assert document["rallyPoints"]["points"] == [[31.2995, 120.6995, 30.0]]


def test_plan_written_by_qgroundcontrol_with_nulls_reads(tmp_path: Path) -> None:
    item = {"type": "SimpleItem", "command": 16, "frame": 3, "autoContinue": True, "doJumpId": 1}
    speed = {"type": "SimpleItem", "command": 178, "frame": 2, "autoContinue": True, "doJumpId": 2}
    document = {
        "fileType": "Plan",
        "mission": {
            "plannedHomePosition": [31.3, 120.7, 5.0],
            "items": [
                {**item, "params": [0, 0, 0, None, 31.301, 120.701, 50]},
                {**speed, "params": [1, 5, -1, None, 0, 0, 0]},
            ],
        },
    }
    path = tmp_path / "qgc.plan"
    path.write_text(json.dumps(document), encoding="utf-8")
    plan = read_plan(path)
    assert [it.seq for it in plan.mission] == [0, 1, 2]
    assert plan.mission[0].altitude_m == 5.0
    assert math.isnan(plan.mission[1].param4)
    assert plan.mission[2].param4 == 0.0
    assert plan.fence == () and plan.rally == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a JSON"),
        ('{"fileType": "Fence"}', "not a QGroundControl plan"),
        ('{"fileType": "Plan", "mission": {"items": []}}', "plannedHomePosition"),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": [{"type": "ComplexItem"}]}}',
            "item 1 is a 'ComplexItem'",
        ),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": '
            '[{"type": "SimpleItem", "command": 16, "frame": 3, "params": [0, 0]}]}}',
            "item 1 has 2 params",
        ),
    ],
)
def test_bad_plan_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.plan"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MissionFileError, match=message) as error:
        read_plan(path)
    assert str(path) in str(error.value)


def test_missing_plan_file() -> None:
    with pytest.raises(MissionFileError, match="not found"):
        read_plan("/nonexistent/x.plan")


def test_waypoints_round_trip_and_pymavlink_reads_them(tmp_path: Path) -> None:
    mission = _mission()
    [path] = write_mission(mission, tmp_path / "m.waypoints")
    items = sortie_items(mission.sorties[0], mission)
    assert read_waypoints(path) == items
    loader = mavwp.MAVWPLoader()
    assert loader.load(str(path)) == len(items)
    for i, item in enumerate(items):
        theirs = loader.wp(i)
        assert (theirs.seq, theirs.command, theirs.frame) == (item.seq, item.command, item.frame)
        assert (theirs.x, theirs.y, theirs.z) == pytest.approx((item.lat_deg, item.lon_deg, item.altitude_m))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("QGC WPL 100\n", "line 1 must be"),
        ("QGC WPL 110\n0\t1\t0\t16\t0\t0\n", "line 2 has 6 fields"),
        ("QGC WPL 110\n0\t1\t0\t16\t0\t0\t0\t0\tabc\t120.7\t0\t1\n", "line 2"),
    ],
)
def test_bad_waypoints_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.waypoints"
    path.write_text(text, encoding="ascii")
    with pytest.raises(MissionFileError, match=message):
        read_waypoints(path)


def test_several_sorties_give_numbered_files(tmp_path: Path) -> None:
    mission = _mission(sorties=3)
    paths = write_mission(mission, tmp_path / "patrol.plan")
    assert [p.name for p in paths] == ["patrol-1.plan", "patrol-2.plan", "patrol-3.plan"]
    assert read_plan(paths[2]).mission == sortie_items(mission.sorties[2], mission)


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "route.kmz"
    target.write_bytes(b"old")
    with pytest.raises(MissionFileError, match="not a DJI camera"):
        write_mission(_mission(camera="generic-1inch"), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["route.kmz"]


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MissionFileError, match="unknown mission format"):
        write_mission(_mission(), tmp_path / "m.txt")


def _kmz(path: Path) -> tuple[ET.Element, ET.Element]:
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["wpmz/template.kml", "wpmz/waylines.wpml"]
        return ET.fromstring(archive.read("wpmz/template.kml")), ET.fromstring(
            archive.read("wpmz/waylines.wpml")
        )


def _tags(element: ET.Element | None) -> set[str]:
    assert element is not None
    return {child.tag for child in element}


def test_kmz_has_the_structure_of_a_dji_pilot_export(tmp_path: Path) -> None:
    sample_template, sample_waylines = _kmz(shared_path("drone_samples", "dji_wpml", "pilot2_export_m3e.kmz"))
    [path] = write_mission(_mission(), tmp_path / "m.kmz")
    template, waylines = _kmz(path)
    for ours, theirs in ((template, sample_template), (waylines, sample_waylines)):
        assert ours.tag == theirs.tag
        ours_doc, theirs_doc = ours[0], theirs[0]
        assert _tags(ours_doc.find(f"{WPML}missionConfig")) == _tags(theirs_doc.find(f"{WPML}missionConfig"))
        ours_folder, theirs_folder = ours_doc.find("{*}Folder"), theirs_doc.find("{*}Folder")
        assert _tags(theirs_folder) <= _tags(ours_folder)
        assert ours_folder is not None and theirs_folder is not None
        ours_mark, theirs_mark = ours_folder.find("{*}Placemark"), theirs_folder.find("{*}Placemark")
        assert _tags(theirs_mark) - {f"{WPML}useGlobalHeadingParam"} <= _tags(ours_mark) | {
            f"{WPML}useGlobalHeadingParam"
        }


def test_kmz_content(tmp_path: Path) -> None:
    [path] = write_mission(_mission(), tmp_path / "m.kmz")
    _, waylines = _kmz(path)
    marks = waylines.findall(".//{*}Placemark")
    assert len(marks) == 6
    assert marks[0].findtext("{*}Point/{*}coordinates", "").startswith("120.701000000000,31.301000000000")
    assert [m.findtext(f"{WPML}executeHeight") for m in marks] == ["80"] * 6
    groups = waylines.findall(f".//{WPML}actionGroup")
    survey = [g for g in groups if g.findtext(f".//{WPML}actionTriggerType") == "multipleDistance"]
    assert [
        (g.findtext(f"{WPML}actionGroupStartIndex"), g.findtext(f"{WPML}actionGroupEndIndex")) for g in survey
    ] == [
        ("1", "2"),
        ("3", "4"),
    ]
    assert survey[0].findtext(f".//{WPML}actionTriggerParam") == "16.9"
    hover = next(g for g in groups if g.findtext(f".//{WPML}actionTriggerType") == "reachPoint")
    funcs = [a.findtext(f"{WPML}actionActuatorFunc") for a in hover.findall(f"{WPML}action")]
    assert funcs == ["gimbalRotate", "hover", "takePhoto"]
    assert hover.findtext(f".//{WPML}gimbalPitchRotateAngle") == "-45"
    assert waylines.findtext(f".//{WPML}droneEnumValue") == "77"


def test_geojson_preview_opens_in_geopandas(tmp_path: Path) -> None:
    [path] = write_mission(_mission(sorties=2), tmp_path / "m.geojson")
    frame = gpd.read_file(path)
    kinds = frame["kind"].value_counts().to_dict()
    assert kinds["sortie"] == 2 and kinds["fence_inclusion"] == 1 and kinds["fence_exclusion"] == 1
    line = frame[frame["kind"] == "sortie"].geometry.iloc[0]
    assert line.coords[0][:2] == (120.70, 31.30) and line.coords[1][2] == 80.0


def test_kml_preview_opens_in_gdal(tmp_path: Path) -> None:
    [path] = write_mission(_mission(sorties=2), tmp_path / "m.kml")
    frame = gpd.read_file(path)
    assert len(frame) == 4
    assert list(frame.geom_type) == ["LineString", "LineString", "Polygon", "Polygon"]
