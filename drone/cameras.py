"""Camera presets for the drones municipal teams fly, and custom cameras.

Each preset pairs a :class:`drone.model.Camera` (sensor, lens, image size: the photogrammetry maths) with the
DJI WPML enumeration values of the aircraft and payload, which DJI Pilot 2 needs to open a ``.kmz`` route.
"""

from __future__ import annotations

from dataclasses import dataclass

from drone.model import Camera


@dataclass(frozen=True)
class CameraPreset:
    """A named camera with the DJI drone/payload enumeration values (``None`` for non-DJI cameras)."""

    key: str
    camera: Camera
    dji_drone: tuple[int, int] | None = None  # (droneEnumValue, droneSubEnumValue)
    dji_payload: int | None = None  # payloadEnumValue


PRESETS: dict[str, CameraPreset] = {
    preset.key: preset
    for preset in (
        CameraPreset(
            "mavic3e",
            Camera("DJI Mavic 3 Enterprise (wide)", 17.3, 13.0, 12.29, 5280, 3956),
            dji_drone=(77, 0),
            dji_payload=66,
        ),
        CameraPreset(
            "m30",
            Camera("DJI Matrice 30 (wide)", 6.4, 4.8, 4.5, 4000, 3000),
            dji_drone=(67, 0),
            dji_payload=52,
        ),
        CameraPreset(
            "m350-p1-35",
            Camera("DJI Matrice 350 RTK + Zenmuse P1 35 mm", 35.9, 24.0, 35.0, 8192, 5460),
            dji_drone=(89, 0),
            dji_payload=50,
        ),
        CameraPreset(
            "generic-1inch",
            Camera("Generic 1-inch 20 MP", 13.2, 8.8, 8.8, 5472, 3648),
        ),
    )
}


def preset(key: str) -> CameraPreset:
    """Return the preset named ``key``.

    Raises:
        KeyError: unknown key; the message lists the known ones.
    """
    try:
        return PRESETS[key]
    except KeyError:
        raise KeyError(f"unknown camera {key!r}; known cameras: {', '.join(sorted(PRESETS))}") from None


def custom_camera(
    name: str,
    *,
    sensor_width_mm: float,
    sensor_height_mm: float,
    focal_length_mm: float,
    image_width_px: int,
    image_height_px: int,
) -> CameraPreset:
    """A camera that is not a preset (sensor in mm, focal length in mm, image in px); validated on creation."""
    camera = Camera(name, sensor_width_mm, sensor_height_mm, focal_length_mm, image_width_px, image_height_px)
    return CameraPreset(key=name, camera=camera)


def parse_camera(spec: str) -> CameraPreset:
    """A preset key, or a custom camera written ``W_MMxH_MM:FOCAL_MM:W_PXxH_PX`` (e.g. ``13.2x8.8:8.8:5472x3648``).

    Raises:
        ValueError: the text is neither a preset nor a well-formed custom camera.
    """
    if spec in PRESETS:
        return PRESETS[spec]
    try:
        sensor, focal, image = spec.split(":")
        width_mm, height_mm = (float(v) for v in sensor.lower().split("x"))
        width_px, height_px = (int(v) for v in image.lower().split("x"))
        focal_mm = float(focal)
    except ValueError:
        raise ValueError(
            f"camera {spec!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor "
            "SENSOR_W_MMxSENSOR_H_MM:FOCAL_MM:IMAGE_W_PXxIMAGE_H_PX"
        ) from None
    return custom_camera(
        spec,
        sensor_width_mm=width_mm,
        sensor_height_mm=height_mm,
        focal_length_mm=focal_mm,
        image_width_px=width_px,
        image_height_px=height_px,
    )
