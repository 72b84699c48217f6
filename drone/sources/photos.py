"""A folder of DJI photos → posed frames, from EXIF (GPS, clock, lens) and DJI's XMP (heights and angles).

DJI writes into every JPEG:

- EXIF GPS latitude/longitude (and GPS altitude above sea level), ``DateTimeOriginal`` in local time (with
  ``OffsetTimeOriginal`` on newer firmware), ``FocalLength``, ``FocalLengthIn35mmFilm`` and sometimes
  ``FocalPlaneXResolution``;
- XMP ``drone-dji:`` fields: ``RelativeAltitude`` (above take-off), ``AbsoluteAltitude``,
  ``GimbalYawDegree``/``GimbalPitchDegree``/``GimbalRollDegree`` (earth frame) and ``FlightYawDegree``/
  ``FlightPitchDegree``/``FlightRollDegree``.

A photo without GPS, without a height above take-off (and no ``altitude_agl_m`` given), without a clock, or
that cannot be decoded is skipped, counted by reason and logged with its file name.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from drone.model import Camera, Frame, Pose, StreamStats
from drone.sources import FrameSourceError, fit_camera, frame_id_prefix
from drone.srt import CHINA_STANDARD_TIME

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg"})
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
_XMP_ATTRIBUTE = re.compile(rb'drone-dji:(\w+)\s*=\s*"([^"]*)"')
_XMP_ELEMENT = re.compile(rb"<drone-dji:(\w+)>([^<]*)</drone-dji:\1>")
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # EXIF FocalPlaneResolutionUnit → mm per unit


class PhotoSkippedError(Exception):
    """Why one photo gives no frame; ``reason`` is the counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


@dataclass(frozen=True)
class PhotoMetadata:
    """What a DJI photo says about itself."""

    pose: Pose
    timestamp: datetime
    camera: Camera | None


def is_photo_folder(folder: Path) -> bool:
    """True when ``folder`` holds at least one JPEG photo."""
    return folder.is_dir() and any(p.suffix.lower() in PHOTO_SUFFIXES for p in folder.iterdir())


class PhotoFolderSource:
    """Frames from the JPEG photos of ``folder`` in file-name order (DJI numbers them in flight order).

    ``camera`` overrides the camera model derived from EXIF (sensor from the 35 mm equivalent focal length or
    the focal plane resolution); a photo with neither and no ``camera`` is skipped as ``no_camera_model``.
    """

    def __init__(
        self,
        folder: Path,
        *,
        camera: Camera | None = None,
        altitude_agl_m: float | None = None,
        tz: tzinfo = CHINA_STANDARD_TIME,
    ) -> None:
        if not folder.is_dir():
            raise FrameSourceError(f"{folder}: not a folder of photos")
        self.photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        if not self.photos:
            raise FrameSourceError(f"{folder}: no JPEG photos (.jpg/.jpeg) in it")
        self.folder = folder
        self.camera = camera
        self.altitude_agl_m = altitude_agl_m
        self.tz = tz
        self._stats = StreamStats()

    @property
    def stats(self) -> StreamStats:
        return self._stats

    def __iter__(self) -> Iterator[Frame]:
        self._stats = StreamStats()
        for photo in self.photos:
            try:
                frame = self._frame(photo)
            except PhotoSkippedError as skipped:
                log.warning("%s skipped: %s", photo, skipped)
                self._stats.skip(skipped.reason)
                continue
            self._stats.frames += 1
            yield frame

    def _frame(self, photo: Path) -> Frame:
        metadata = read_photo_metadata(photo, altitude_agl_m=self.altitude_agl_m, tz=self.tz)
        image = cv2.imdecode(np.fromfile(photo, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise PhotoSkippedError("unreadable_image", "the image data cannot be decoded")
        height, width = image.shape[:2]
        camera = self.camera or metadata.camera
        if camera is None:
            raise PhotoSkippedError(
                "no_camera_model", "no focal length and sensor size in EXIF; give a camera"
            )
        return Frame(
            frame_id=frame_id_prefix(photo.name),
            timestamp=metadata.timestamp,
            image=np.asarray(image, np.uint8),
            pose=metadata.pose,
            camera=fit_camera(camera, width, height),
            source=f"photo:{photo.name}",
        )


def read_photo_metadata(
    photo: Path, *, altitude_agl_m: float | None = None, tz: tzinfo = CHINA_STANDARD_TIME
) -> PhotoMetadata:
    """Pose, clock and camera of one DJI photo.

    Raises:
        PhotoSkippedError: the photo cannot be read or lacks GPS, height or clock (``reason`` says which).
    """
    try:
        with Image.open(photo) as image:
            exif = image.getexif()
            gps = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
            details = {**exif, **exif.get_ifd(ExifTags.IFD.Exif)}
            xmp = _xmp_fields(image.info.get("xmp"))
            size = image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise PhotoSkippedError("unreadable_image", f"not a readable JPEG ({error})") from None
    lat, lon, gps_altitude = _gps(gps)
    relative = _number(xmp.get("RelativeAltitude"))
    height = relative if relative is not None else altitude_agl_m
    if height is None:
        raise PhotoSkippedError(
            "no_altitude", "no drone-dji:RelativeAltitude in XMP; give the height above take-off"
        )
    pose = Pose(
        lat_deg=lat,
        lon_deg=lon,
        altitude_agl_m=height,
        altitude_amsl_m=_number(xmp.get("AbsoluteAltitude"), gps_altitude),
        yaw_deg=_angle(xmp, "FlightYawDegree", 0.0),
        pitch_deg=_angle(xmp, "FlightPitchDegree", 0.0),
        roll_deg=_angle(xmp, "FlightRollDegree", 0.0),
        gimbal_yaw_deg=_angle(xmp, "GimbalYawDegree", _angle(xmp, "FlightYawDegree", 0.0)),
        gimbal_pitch_deg=_angle(xmp, "GimbalPitchDegree", -90.0),
        gimbal_roll_deg=_angle(xmp, "GimbalRollDegree", 0.0),
    )
    return PhotoMetadata(pose, _clock(details, tz), _exif_camera(details, size))


def _angle(xmp: Mapping[str, str], key: str, default: float) -> float:
    value = _number(xmp.get(key))
    return default if value is None else value


def _xmp_fields(packet: object) -> dict[str, str]:
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    if not isinstance(packet, bytes):
        return {}
    fields = {k.decode(): v.decode("utf-8", "replace") for k, v in _XMP_ATTRIBUTE.findall(packet)}
    fields.update({k.decode(): v.decode("utf-8", "replace") for k, v in _XMP_ELEMENT.findall(packet)})
    return fields


def _gps(gps: Mapping[int, Any]) -> tuple[float, float, float | None]:
    """(lat, lon, altitude above sea level) from the EXIF GPS IFD."""
    try:
        lat = _degrees(gps[2]) * (-1 if _text(gps.get(1)) == "S" else 1)
        lon = _degrees(gps[4]) * (-1 if _text(gps.get(3)) == "W" else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        raise PhotoSkippedError("no_gps", "no EXIF GPS latitude/longitude") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        raise PhotoSkippedError("no_gps", f"EXIF GPS position {lat}, {lon} is not a fix")
    altitude = float(gps[6]) if 6 in gps else None
    below_sea = gps.get(5) in (1, b"\x01", "1")
    return lat, lon, None if altitude is None else (-altitude if below_sea else altitude)


def _degrees(value: Any) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    return degrees + minutes / 60 + seconds / 3600


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    return str(value).strip() if value is not None else ""


def _number(text: object, default: float | None = None) -> float | None:
    try:
        value = float(str(text)) if text is not None else None
    except ValueError:
        return default
    return value if value is not None and math.isfinite(value) else default


def _clock(details: Mapping[int, Any], tz: tzinfo) -> datetime:
    original = details.get(0x9003) or details.get(0x0132)  # DateTimeOriginal, else DateTime
    try:
        clock = datetime.strptime(str(original).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        raise PhotoSkippedError("no_clock", f"no readable EXIF DateTimeOriginal ({original!r})") from None
    subseconds = str(details.get(0x9291, "")).strip("\x00 ")
    if subseconds.isdigit():
        clock += timedelta(seconds=float(f"0.{subseconds}"))
    return clock.replace(tzinfo=_offset(details.get(0x9011)) or tz)


def _offset(text: object) -> tzinfo | None:
    """EXIF ``OffsetTimeOriginal`` such as ``+08:00``."""
    found = re.fullmatch(r"([+-])(\d{2}):(\d{2})", str(text or "").strip("\x00 "))
    if not found:
        return None
    minutes = int(found[2]) * 60 + int(found[3])
    return timezone(timedelta(minutes=-minutes if found[1] == "-" else minutes))


def _exif_camera(details: Mapping[int, Any], size: tuple[int, int]) -> Camera | None:
    """Camera from EXIF focal length plus sensor width (focal plane resolution or 35 mm equivalent)."""
    focal_mm = _number(details.get(0x920A))
    if not focal_mm or focal_mm <= 0:
        return None
    width_px, height_px = size
    sensor_width_mm = _sensor_width_from_focal_plane(details, width_px)
    if sensor_width_mm is None:
        equivalent_mm = _number(details.get(0xA405))
        if not equivalent_mm or equivalent_mm <= 0:
            return None
        diagonal_mm = FULL_FRAME_DIAGONAL_MM * focal_mm / equivalent_mm
        sensor_width_mm = diagonal_mm * width_px / math.hypot(width_px, height_px)
    model = " ".join(_text(details.get(tag)) for tag in (0x010F, 0x0110)).strip() or "EXIF camera"
    return Camera(
        name=model,
        sensor_width_mm=sensor_width_mm,
        sensor_height_mm=sensor_width_mm * height_px / width_px,
        focal_length_mm=focal_mm,
        image_width_px=width_px,
        image_height_px=height_px,
    )


def _sensor_width_from_focal_plane(details: Mapping[int, Any], width_px: int) -> float | None:
    resolution = _number(details.get(0xA20E))
    unit_mm = _UNIT_MM.get(int(_number(details.get(0xA210), 2) or 2))
    if not resolution or resolution <= 0 or unit_mm is None:
        return None
    return width_px / resolution * unit_mm
