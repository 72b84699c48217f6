"""The simulated camera: objects show where the camera model puts them, truth boxes match the pixels drawn."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely

from drone.geometry import FloatArray, ground_to_image
from drone.model import Camera, Pose
from drone.simcam import SimCamera, TruthBox
from drone.world import PlantedObject, World, build_world
from gis.demo import make_demo_district

CAMERA = Camera("video", 17.3, 17.3 * 9 / 16, 12.29, 960, 540)


@pytest.fixture(scope="module")
def world() -> World:
    demo = make_demo_district(10_000, seed=1)
    return build_world(demo.district, demo.zones, seed=3)


def _object(world: World, class_name: str, *, on_roof: bool = False) -> PlantedObject:
    return next(o for o in world.objects if o.class_name == class_name and (o.base_height_m > 0) == on_roof)


def _pose_over(
    world: World,
    obj: PlantedObject,
    shift_m: tuple[float, float] = (0.0, 0.0),
    *,
    gimbal_yaw_deg: float = 0.0,
    gimbal_pitch_deg: float = -90.0,
) -> Pose:
    centre = obj.footprint.centroid
    lon, lat = world.to_wgs84(centre.x + shift_m[0], centre.y + shift_m[1])
    altitude = 80.0 + obj.base_height_m
    return Pose(lat, lon, altitude, gimbal_yaw_deg=gimbal_yaw_deg, gimbal_pitch_deg=gimbal_pitch_deg)


def _top_centre_pixel(world: World, obj: PlantedObject, pose: Pose) -> FloatArray:
    centre = obj.footprint.centroid
    origin = world.to_local(pose.lon_deg, pose.lat_deg)
    top = [[centre.x, centre.y, obj.base_height_m + obj.height_m]]
    pixel: FloatArray = ground_to_image(top, pose, CAMERA, origin)[0]
    return pixel


def _box_of(frame_boxes: tuple[TruthBox, ...], obj: PlantedObject) -> tuple[float, float, float, float]:
    return next(b.box_xyxy for b in frame_boxes if b.object_id == obj.object_id)


@pytest.mark.parametrize(("yaw", "pitch"), [(0.0, -90.0), (137.0, -90.0), (60.0, -50.0), (200.0, -65.0)])
def test_planted_object_appears_at_the_predicted_pixel(world: World, yaw: float, pitch: float) -> None:
    target = _object(world, "steel_shack")
    # stand back so the optical axis meets the ground near the target, then step aside so it is off-centre
    back = 80.0 / np.tan(np.radians(-pitch))
    shift = (-back * np.sin(np.radians(yaw)) - 12.0, -back * np.cos(np.radians(yaw)) + 7.0)
    pose = _pose_over(world, target, shift, gimbal_yaw_deg=yaw, gimbal_pitch_deg=pitch)
    boxes = SimCamera(world, CAMERA, noise_sigma=0.0).render(pose).boxes
    predicted = _top_centre_pixel(world, target, pose)
    assert np.hypot(*(predicted - [480.0, 270.0])) > 50
    x0, y0, x1, y1 = _box_of(boxes, target)
    assert x0 < predicted[0] < x1 and y0 < predicted[1] < y1


def test_nadir_image_centre_is_the_pose_ground_point(world: World) -> None:
    car = _object(world, "car")
    pose = _pose_over(world, car, gimbal_yaw_deg=25.0)
    x0, y0, x1, y1 = _box_of(SimCamera(world, CAMERA).render(pose).boxes, car)
    # a car is about 4.5 m × 1.8 m, 1.5 m tall: at 80 m its box (about 80 × 50 px here) surrounds the centre
    assert x0 < CAMERA.image_width_px / 2 < x1 and y0 < CAMERA.image_height_px / 2 < y1
    assert 20 < max(x1 - x0, y1 - y0) < 120


@pytest.mark.parametrize("pitch", [-90.0, -55.0])
def test_truth_boxes_match_the_pixels_each_object_changes(world: World, pitch: float) -> None:
    sim_empty = SimCamera(dataclasses.replace(world, objects=()), CAMERA, noise_sigma=0.0)
    for class_name, on_roof in (("car", False), ("garbage", False), ("shed", True)):
        obj = _object(world, class_name, on_roof=on_roof)
        back = 80.0 / np.tan(np.radians(-pitch))
        shift = (-back * np.sin(np.radians(30.0)), -back * np.cos(np.radians(30.0)))
        pose = _pose_over(world, obj, shift, gimbal_yaw_deg=30.0, gimbal_pitch_deg=pitch)
        alone = SimCamera(dataclasses.replace(world, objects=(obj,)), CAMERA, noise_sigma=0.0).render(
            pose, seed=1
        )
        empty = sim_empty.render(pose, seed=1)
        changed = np.any(np.abs(alone.image.astype(int) - empty.image.astype(int)) > 2, axis=2)
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        (box,) = alone.boxes
        x0, y0, x1, y1 = box.box_xyxy
        # the 3×3 blur spreads an object's colours by one pixel around the painted shape
        assert cols[0] == pytest.approx(x0 - 1, abs=1) and cols[-1] + 1 == pytest.approx(x1 + 1, abs=1)
        assert rows[0] == pytest.approx(y0 - 1, abs=1) and rows[-1] + 1 == pytest.approx(y1 + 1, abs=1)
        assert box.class_name == class_name and box.visible_fraction > 0.9


def test_object_out_of_view_gets_no_box(world: World) -> None:
    car = _object(world, "car")
    far = next(o for o in reversed(world.objects) if o.base_height_m == 0)
    assert far.footprint.centroid.distance(car.footprint.centroid) > 200
    boxes = SimCamera(world, CAMERA).render(_pose_over(world, far)).boxes
    assert car.object_id not in {b.object_id for b in boxes}
    assert far.object_id in {b.object_id for b in boxes}


def test_building_hides_objects_behind_it(world: World) -> None:
    tallest = world.buildings.loc[world.buildings["height_m"].idxmax()]
    x0, _, x1, y1 = tallest.geometry.bounds
    centre = ((x0 + x1) / 2, y1 + 4.0)  # a car just north of the tallest building
    car = dataclasses.replace(
        _object(world, "car"),
        footprint=shapely.box(centre[0] - 0.9, centre[1] - 2.3, centre[0] + 0.9, centre[1] + 2.3),
    )
    sim = SimCamera(dataclasses.replace(world, objects=(car,)), CAMERA, noise_sigma=0.0)
    height = float(tallest["height_m"])
    altitude = height + 20.0
    for north_of_car, hidden in ((-120.0, True), (120.0, False)):
        # looking at the car from the south (behind the building) and from the north (in the open)
        lon, lat = world.to_wgs84(centre[0], centre[1] + north_of_car)
        yaw = 0.0 if north_of_car < 0 else 180.0
        pitch = -np.degrees(np.arctan2(altitude, abs(north_of_car)))
        pose = Pose(
            lat_deg=lat, lon_deg=lon, altitude_agl_m=altitude, gimbal_yaw_deg=yaw, gimbal_pitch_deg=pitch
        )
        assert (car.object_id not in {b.object_id for b in sim.render(pose).boxes}) is hidden


def test_rendering_is_deterministic_and_seed_changes_only_noise(world: World) -> None:
    sim = SimCamera(world, CAMERA)
    pose = _pose_over(world, _object(world, "car"), gimbal_yaw_deg=10.0)
    first, again, other = sim.render(pose, seed=5), sim.render(pose, seed=5), sim.render(pose, seed=6)
    assert np.array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)
    assert first.boxes == other.boxes
    assert first.image.shape == (540, 960, 3) and first.image.dtype == np.uint8


def test_sky_above_the_horizon_in_a_shallow_view(world: World) -> None:
    pose = _pose_over(world, _object(world, "car"), gimbal_pitch_deg=-5.0)
    image = SimCamera(world, CAMERA, noise_sigma=0.0).render(pose).image
    top = image[:5].reshape(-1, 3).astype(int)
    assert np.ptp(top, axis=0).max() <= 2  # one flat colour
    assert top[:, 0].mean() > top[:, 2].mean()  # bluish (BGR)
    assert not np.array_equal(image[-1, 0], image[0, 0])
