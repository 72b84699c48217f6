"""Orthomosaic tiles: frames rendered from a known ground image must mosaic back to that image."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import mercantile
import numpy as np
import numpy.typing as npt
import pyproj
import pytest
from PIL import Image

from drone.geometry import image_to_ground, local_enu_crs
from drone.model import Camera, Frame, Pose
from tiles.errors import RasterError, TileOutsideBoundsError
from tiles.raster import OrthoMosaic

LON0, LAT0 = 120.70, 31.30
TRUTH_GSD_M = 0.1
TRUTH_HALF_M = 100.0
SQUARE_M = 4.0
CAMERA = Camera("test", 13.2, 9.9, 8.8, 400, 300)
Z = 19
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
TRUTH_CRS = local_enu_crs(LON0, LAT0)


def _truth() -> npt.NDArray[np.uint8]:
    """A 200 m × 200 m ground image of 4 m squares in random colours (north up, 0.1 m/pixel)."""
    rng = np.random.default_rng(5)
    squares = int(2 * TRUTH_HALF_M / SQUARE_M)
    colours = rng.integers(0, 256, size=(squares, squares, 3), dtype=np.uint8)
    per_square = int(SQUARE_M / TRUTH_GSD_M)
    return np.repeat(np.repeat(colours, per_square, axis=0), per_square, axis=1)


TRUTH = _truth()


def _truth_colour(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    east, north = pyproj.Transformer.from_crs("EPSG:4326", TRUTH_CRS, always_xy=True).transform(lon, lat)
    col = np.clip(((east + TRUTH_HALF_M) / TRUTH_GSD_M).astype(int), 0, TRUTH.shape[1] - 1)
    row = np.clip(((TRUTH_HALF_M - north) / TRUTH_GSD_M).astype(int), 0, TRUTH.shape[0] - 1)
    colour: npt.NDArray[np.uint8] = TRUTH[row, col]
    return colour


def _frame(
    east_m: float, north_m: float, *, yaw_deg: float = 0.0, minutes: int = 0, invert: bool = False
) -> Frame:
    """A nadir frame from 60 m over (east_m, north_m) of the truth, rendered pixel by pixel from the truth."""
    lon, lat = pyproj.Transformer.from_crs(TRUTH_CRS, "EPSG:4326", always_xy=True).transform(east_m, north_m)
    pose = Pose(lat_deg=lat, lon_deg=lon, altitude_agl_m=60.0, gimbal_yaw_deg=yaw_deg)
    u, v = np.meshgrid(np.arange(CAMERA.image_width_px) + 0.5, np.arange(CAMERA.image_height_px) + 0.5)
    ground = image_to_ground(np.column_stack([u.ravel(), v.ravel()]), pose, CAMERA)
    to_lonlat = pyproj.Transformer.from_crs(local_enu_crs(lon, lat), "EPSG:4326", always_xy=True)
    ground_lon, ground_lat = to_lonlat.transform(ground[:, 0], ground[:, 1])
    image = _truth_colour(ground_lon, ground_lat).reshape(CAMERA.image_height_px, CAMERA.image_width_px, 3)
    if invert:
        image = 255 - image
    return Frame(f"f{east_m}_{north_m}", START + timedelta(minutes=minutes), image, pose, CAMERA)


def _tile_lonlat(
    tile: mercantile.Tile, size: int = 256
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    bounds = mercantile.xy_bounds(tile)
    step = (bounds.right - bounds.left) / size
    x, y = np.meshgrid(
        bounds.left + (np.arange(size) + 0.5) * step, bounds.top - (np.arange(size) + 0.5) * step
    )
    lon, lat = pyproj.Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True).transform(x, y)
    return lon, lat


def _close(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    difference = np.abs(a.astype(int) - b.astype(int)).max(axis=-1)
    close: npt.NDArray[np.bool_] = difference <= 30
    return close


@pytest.mark.parametrize("yaw_deg", [0.0, 37.0])
def test_tile_reproduces_the_ground(yaw_deg: float) -> None:
    mosaic = OrthoMosaic.from_frames([_frame(0.0, 0.0, yaw_deg=yaw_deg)])
    tile = mercantile.tile(LON0, LAT0, Z)
    pixels = mosaic.tile_array(tile.z, tile.x, tile.y)
    assert pixels is not None
    covered = pixels[:, :, 3] == 255
    assert covered.mean() > 0.5  # a 90 m × 67 m footprint around a point of a 65 m (ground) z19 tile
    truth = _truth_colour(*_tile_lonlat(tile))  # same channel order as the frames
    assert _close(pixels[:, :, :3], truth)[covered].mean() > 0.9


def test_png_and_webp_open_with_pillow() -> None:
    mosaic = OrthoMosaic.from_frames([_frame(0.0, 0.0)])
    tile = mercantile.tile(LON0, LAT0, Z)
    png = mosaic.tile(tile.z, tile.x, tile.y)
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (256, 256)
    webp = mosaic.tile(tile.z, tile.x, tile.y, fmt="webp", size_px=512)
    assert webp is not None
    assert Image.open(io.BytesIO(webp)).size == (512, 512)


def test_mosaic_rules_pick_nearest_or_latest() -> None:
    early = _frame(-10.0, 0.0, minutes=0)
    late = _frame(10.0, 0.0, minutes=5, invert=True)
    tile = mercantile.tile(LON0, LAT0, Z)
    lon, lat = _tile_lonlat(tile)
    east, _ = pyproj.Transformer.from_crs("EPSG:4326", TRUTH_CRS, always_xy=True).transform(lon, lat)
    truth = _truth_colour(lon, lat)
    nearest = OrthoMosaic.from_frames([late, early]).tile_array(tile.z, tile.x, tile.y)
    latest = OrthoMosaic.from_frames([early, late], rule="latest").tile_array(tile.z, tile.x, tile.y)
    assert nearest is not None and latest is not None
    overlap_west = (east > -25) & (east < -5) & (nearest[:, :, 3] == 255)
    assert overlap_west.sum() > 1000
    assert _close(nearest[:, :, :3], truth)[overlap_west].mean() > 0.9  # the early frame is nearer there
    assert _close(latest[:, :, :3], 255 - truth)[overlap_west & (east > -20)].mean() > 0.9


def test_uncovered_tiles_and_bounds() -> None:
    mosaic = OrthoMosaic.from_frames([_frame(0.0, 0.0)])
    far = mercantile.tile(LON0 + 0.01, LAT0, Z)
    assert mosaic.tile(far.z, far.x, far.y) is None
    bounds = mosaic.bounds
    assert bounds is not None
    west, south, east, north = bounds
    assert west < LON0 < east and south < LAT0 < north
    assert OrthoMosaic.from_frames([]).bounds is None


def test_oblique_frames_are_skipped_and_counted() -> None:
    frame = _frame(0.0, 0.0)
    oblique = Frame(
        "sky",
        START,
        frame.image,
        Pose(lat_deg=LAT0, lon_deg=LON0, altitude_agl_m=60, gimbal_pitch_deg=0),
        CAMERA,
    )
    mosaic = OrthoMosaic.from_frames([oblique, frame])
    assert len(mosaic.warps) == 1
    assert mosaic.skipped == {"image corners do not reach the ground (oblique view)": 1}


def test_bad_requests_are_rejected() -> None:
    mosaic = OrthoMosaic.from_frames([_frame(0.0, 0.0)])
    tile = mercantile.tile(LON0, LAT0, Z)
    with pytest.raises(RasterError, match="'tiff'"):
        mosaic.tile(tile.z, tile.x, tile.y, fmt="tiff")  # type: ignore[arg-type]
    with pytest.raises(RasterError, match="16–1024"):
        mosaic.tile(tile.z, tile.x, tile.y, size_px=4)
    with pytest.raises(TileOutsideBoundsError):
        mosaic.tile(Z, -1, 0)
    with pytest.raises(RasterError, match="mosaic rule"):
        OrthoMosaic.from_frames([], rule="brightest")  # type: ignore[arg-type]
