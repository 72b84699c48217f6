"""Camera presets and photogrammetry maths (pinned against QGroundControl's numbers)."""

from __future__ import annotations

import pytest

from drone.cameras import PRESETS, custom_camera, parse_camera, preset


def test_mavic3e_at_80m_matches_qgc() -> None:
    camera = preset("mavic3e").camera
    assert camera.gsd_m_px(80.0) * 100 == pytest.approx(2.13, abs=0.005)
    assert camera.transect_spacing_m(80.0, 0.7) == pytest.approx(33.8, abs=0.05)
    assert camera.trigger_distance_m(80.0, 0.8) == pytest.approx(16.9, abs=0.05)


@pytest.mark.parametrize(
    ("key", "altitude_m", "gsd_cm"),
    [("m350-p1-35", 100.0, 1.25), ("m30", 100.0, 3.56), ("generic-1inch", 100.0, 2.74)],
)
def test_other_presets_ground_sample_distance(key: str, altitude_m: float, gsd_cm: float) -> None:
    assert preset(key).camera.gsd_m_px(altitude_m) * 100 == pytest.approx(gsd_cm, abs=0.01)


def test_dji_presets_carry_wpml_enums_and_generic_does_not() -> None:
    assert PRESETS["mavic3e"].dji_drone == (77, 0)
    assert all(PRESETS[k].dji_payload is not None for k in ("mavic3e", "m30", "m350-p1-35"))
    assert PRESETS["generic-1inch"].dji_drone is None


def test_custom_camera_from_text_and_keywords_agree() -> None:
    parsed = parse_camera("13.2x8.8:8.8:5472x3648").camera
    built = custom_camera(
        "x",
        sensor_width_mm=13.2,
        sensor_height_mm=8.8,
        focal_length_mm=8.8,
        image_width_px=5472,
        image_height_px=3648,
    ).camera
    assert parsed.footprint_m(50.0) == pytest.approx(built.footprint_m(50.0))
    assert parsed.footprint_m(50.0)[0] == pytest.approx(13.2 * 50.0 / 8.8)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("phantom9", "neither a preset"),
        ("13.2x8.8:8.8", "neither a preset"),
        ("0x8.8:8.8:5472x3648", "sensor_width_mm"),
    ],
)
def test_bad_camera_specs_are_explained(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_camera(spec)


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="mavic3e"):
        preset("nope")
