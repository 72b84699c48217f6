"""The simulator as a frame source: poses along a mission's survey legs or from any track."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pyproj import Transformer

from drone.geometry import local_enu_crs
from drone.model import Camera, FrameSource, Mission, Pose, Sortie, Waypoint, WaypointAction
from drone.simsource import SimFrameSource, mission_poses, video_camera
from drone.world import World, build_world
from gis.demo import make_demo_district

START = datetime(2026, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))
CAMERA = Camera("small", 17.3, 17.3 * 9 / 16, 12.29, 480, 270)
HOME = (120.705, 31.305)


def _waypoints(points_m: list[tuple[float, float]], actions: list[WaypointAction]) -> tuple[Waypoint, ...]:
    to_wgs = Transformer.from_crs(local_enu_crs(*HOME), "EPSG:4326", always_xy=True)
    result = []
    for (x, y), action in zip(points_m, actions, strict=True):
        lon, lat = to_wgs.transform(x, y)
        result.append(Waypoint(lon, lat, 80.0, action))
    return tuple(result)


def _mission(points_m: list[tuple[float, float]], actions: list[WaypointAction], trigger_m: float) -> Mission:
    sortie = Sortie(0, Waypoint(*HOME, 0.0), _waypoints(points_m, actions), 10.0, trigger_m, 60.0, 100.0)
    return Mission("test", CAMERA, 80.0, (sortie,))


def _enu(pose: Pose) -> tuple[float, float]:
    x, y = Transformer.from_crs("EPSG:4326", local_enu_crs(*HOME), always_xy=True).transform(
        pose.lon_deg, pose.lat_deg
    )
    return float(x), float(y)


def test_poses_every_trigger_distance_along_the_surveyed_legs() -> None:
    start, stop, none = WaypointAction.START_SURVEY, WaypointAction.STOP_SURVEY, WaypointAction.NONE
    mission = _mission(
        [(0, 0), (100, 0), (100, 30), (0, 30), (0, 80)], [start, stop, start, stop, none], 20.0
    )
    poses = list(mission_poses(mission, start=START))
    positions = [_enu(p) for _, p in poses]
    # leg 1 east: 0, 20, ..., 100; the connector (100,0)→(100,30) is not surveyed; leg 2 west from (100,30)
    expected = [(x, 0.0) for x in range(0, 101, 20)] + [(100 - x, 30.0) for x in range(0, 101, 20)]
    np.testing.assert_allclose(positions, expected, atol=0.01)
    assert [p.gimbal_yaw_deg for _, p in poses[:6]] == pytest.approx([90.0] * 6)
    assert [p.gimbal_yaw_deg for _, p in poses[6:]] == pytest.approx([270.0] * 6)
    assert all(p.gimbal_pitch_deg == -90.0 and p.altitude_agl_m == 80.0 for _, p in poses)
    assert [(t - START).total_seconds() for t, _ in poses[:3]] == pytest.approx([0.0, 2.0, 4.0])


def test_a_sortie_without_survey_actions_is_photographed_on_every_leg() -> None:
    none = WaypointAction.NONE
    mission = _mission([(0, 0), (0, 50)], [none, none], 25.0)
    poses = list(mission_poses(mission, start=START, gimbal_pitch_deg=-60.0))
    np.testing.assert_allclose([_enu(p) for _, p in poses], [(0, 0), (0, 25), (0, 50)], atol=0.01)
    assert all(p.gimbal_pitch_deg == -60.0 and p.gimbal_yaw_deg == pytest.approx(0.0) for _, p in poses)


@pytest.fixture(scope="module")
def world() -> World:
    demo = make_demo_district(10_000, seed=1)
    return build_world(demo.district, demo.zones, seed=2)


def test_source_yields_posed_frames_and_records_truth(world: World) -> None:
    centre = world.objects[0].footprint.centroid
    track = []
    for i in range(3):
        lon, lat = world.to_wgs84(centre.x + 10.0 * i, centre.y)
        track.append((START + timedelta(seconds=i), Pose(lat, lon, 80.0)))
    track.insert(1, (START, Pose(math.nan, 120.7, 80.0)))
    source = SimFrameSource(world, CAMERA, track, seed=7)
    assert isinstance(source, FrameSource)
    frames = list(source)
    assert [f.frame_id for f in frames] == ["sim7-00000", "sim7-00002", "sim7-00003"]
    assert all(f.image.shape == (270, 480, 3) and f.camera == CAMERA for f in frames)
    assert frames[1].pose == track[2][1] and frames[1].timestamp == track[2][0]
    assert source.stats.frames == 3 and source.stats.skipped == {"pose_not_finite": 1}
    assert world.objects[0].object_id in {b.object_id for b in source.truth["sim7-00000"]}
    assert set(source.truth) == {f.frame_id for f in frames}


def test_video_camera_keeps_the_ground_sample_distance_scale() -> None:
    photo = Camera("m3e", 17.3, 13.0, 12.29, 5280, 3956)
    video = video_camera(photo)
    assert (video.image_width_px, video.image_height_px) == (1920, 1080)
    assert video.gsd_m_px(80.0) == pytest.approx(photo.gsd_m_px(80.0) * 5280 / 1920)
    assert video.footprint_m(80.0)[0] == pytest.approx(photo.footprint_m(80.0)[0])
