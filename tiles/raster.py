"""Orthomosaic raster tiles (XYZ, Web Mercator) from a flight's posed nadir frames.

Each frame's pose and camera give the homography from the ground plane (in an azimuthal equidistant frame
centred on the camera, :func:`drone.geometry.local_enu_crs`) to its image (:func:`drone.geometry.plane_homography`).
A tile pixel goes Web Mercator → that ground frame (pyproj, on a coarse grid refined by bilinear
interpolation) → image pixel, and OpenCV's ``remap`` samples the frame there. Where frames overlap, the
mosaic rule picks one per pixel: ``"nearest_nadir"`` (the frame whose camera was closest above the pixel:
least perspective lean, a Voronoi-like seamline) or ``"latest"`` (the most recent frame: the current state).
The ground is taken as flat at the take-off height; roofs lean as in any orthomosaic without a surface model.

Example::

    mosaic = OrthoMosaic.from_frames(frames)
    png = mosaic.tile(18, 219_008, 107_151)          # bytes, or None where no frame covers the tile
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import mercantile
import numpy as np
import numpy.typing as npt
import pyproj
import shapely

from drone.geometry import image_to_ground, local_enu_crs, plane_homography
from drone.model import Frame
from tiles.errors import RasterError
from tiles.mvt import WEB_MERCATOR, check_tile

__all__ = ["MosaicRule", "OrthoMosaic", "TileFormat"]

MosaicRule = Literal["nearest_nadir", "latest"]
TileFormat = Literal["png", "webp"]
FloatArray = npt.NDArray[np.float64]
#: tile pixels per side of the grid where the exact mapping is computed (the rest is interpolated)
_GRID_STEP_PX = 16
_WEBP_QUALITY = 90


@dataclass(frozen=True, eq=False)
class _Warp:
    """One frame ready for warping: its image, Web Mercator → its ground frame, ground → image, and footprint."""

    image: npt.NDArray[np.uint8]
    to_ground: pyproj.Transformer
    homography: FloatArray
    footprint: shapely.Polygon
    nadir_xy: tuple[float, float]
    timestamp: float


@dataclass(frozen=True, eq=False)
class OrthoMosaic:
    """Posed frames indexed by their ground footprints; :meth:`tile` renders one XYZ tile.

    Build with :meth:`from_frames`. ``skipped`` counts the frames left out, by reason.
    """

    warps: tuple[_Warp, ...]
    rule: MosaicRule = "nearest_nadir"
    skipped: dict[str, int] = field(default_factory=dict)
    _tree: shapely.STRtree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rule not in ("nearest_nadir", "latest"):
            raise RasterError(f"mosaic rule must be 'nearest_nadir' or 'latest', got {self.rule!r}")
        object.__setattr__(self, "_tree", shapely.STRtree([warp.footprint for warp in self.warps]))

    @classmethod
    def from_frames(cls, frames: Iterable[Frame], *, rule: MosaicRule = "nearest_nadir") -> OrthoMosaic:
        """Prepare frames: a frame whose image corners do not all reach the ground (oblique, looking at the
        horizon) or whose image is empty is skipped and counted in ``skipped``."""
        warps: list[_Warp] = []
        skipped: dict[str, int] = {}
        for frame in frames:
            warp, reason = _prepare(frame)
            if warp is None:
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                warps.append(warp)
        return cls(tuple(warps), rule, skipped)

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        """West, south, east, north (degrees, WGS-84) of the frames' footprints, or None without frames."""
        if not self.warps:
            return None
        west, south = mercantile.lnglat(*shapely.total_bounds(self._tree.geometries)[:2])
        east, north = mercantile.lnglat(*shapely.total_bounds(self._tree.geometries)[2:])
        return float(west), float(south), float(east), float(north)

    def tile(self, z: int, x: int, y: int, *, size_px: int = 256, fmt: TileFormat = "png") -> bytes | None:
        """Render tile z/x/y as a PNG or WebP with transparency where no frame covers; None if none does.

        Raises:
            TileOutsideBoundsError: z/x/y is not a tile of the pyramid.
            RasterError: an unknown format or a tile size outside 16–1024.
        """
        pixels = self.tile_array(z, x, y, size_px=size_px)
        return None if pixels is None else _encode(pixels, fmt)

    def tile_array(self, z: int, x: int, y: int, *, size_px: int = 256) -> npt.NDArray[np.uint8] | None:
        """The tile as a size×size×4 BGRA array (alpha 0 where no frame covers), or None if no frame does."""
        check_tile(z, x, y)
        if not 16 <= size_px <= 1024:
            raise RasterError(f"tile size must be 16–1024 pixels, got {size_px}")
        bounds = mercantile.xy_bounds(x, y, z)
        hits = self._tree.query(shapely.box(bounds.left, bounds.bottom, bounds.right, bounds.top))
        if len(hits) == 0:
            return None
        mercator_x, mercator_y = _pixel_centres(bounds, size_px)
        out = np.zeros((size_px, size_px, 4), dtype=np.uint8)
        best = np.full((size_px, size_px), np.inf)
        for index in np.sort(hits):
            warp = self.warps[index]
            colour, valid = _sample(warp, mercator_x, mercator_y, size_px)
            score = self._score(warp, mercator_x, mercator_y)
            take = valid & (score < best)
            out[take, :3] = colour[take]
            out[take, 3] = 255
            best[take] = score[take]
        return out if out[:, :, 3].any() else None

    def _score(self, warp: _Warp, mercator_x: FloatArray, mercator_y: FloatArray) -> FloatArray:
        """Lower wins: distance to the frame's nadir point, or minus its timestamp."""
        if self.rule == "latest":
            return np.full(mercator_x.shape, -warp.timestamp)
        distance: FloatArray = np.hypot(mercator_x - warp.nadir_xy[0], mercator_y - warp.nadir_xy[1])
        return distance


def _prepare(frame: Frame) -> tuple[_Warp | None, str]:
    height, width = frame.image.shape[:2]
    if frame.image.size == 0 or frame.image.ndim != 3:
        return None, "empty or not a colour image"
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    ground = image_to_ground(corners, frame.pose, frame.camera)
    if np.isnan(ground).any():
        return None, "image corners do not reach the ground (oblique view)"
    enu = local_enu_crs(frame.pose.lon_deg, frame.pose.lat_deg)
    from_ground = pyproj.Transformer.from_crs(enu, WEB_MERCATOR, always_xy=True)
    corner_x, corner_y = from_ground.transform(ground[:, 0], ground[:, 1])
    nadir_x, nadir_y = from_ground.transform(0.0, 0.0)
    warp = _Warp(
        image=frame.image,
        to_ground=pyproj.Transformer.from_crs(WEB_MERCATOR, enu, always_xy=True),
        homography=plane_homography(frame.pose, frame.camera),
        footprint=shapely.Polygon(np.column_stack([corner_x, corner_y])),
        nadir_xy=(float(nadir_x), float(nadir_y)),
        timestamp=frame.timestamp.timestamp(),
    )
    return warp, ""


def _pixel_centres(bounds: mercantile.Bbox, size_px: int) -> tuple[FloatArray, FloatArray]:
    step = (bounds.right - bounds.left) / size_px
    xs = bounds.left + (np.arange(size_px) + 0.5) * step
    ys = bounds.top - (np.arange(size_px) + 0.5) * step
    grid_x, grid_y = np.meshgrid(xs, ys)
    return grid_x, grid_y


def _sample(
    warp: _Warp, mercator_x: FloatArray, mercator_y: FloatArray, size_px: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """The frame's colours at the tile pixels, and where the frame actually sees them."""
    map_x, map_y = _image_coordinates(warp, mercator_x, mercator_y, size_px)
    colour = cv2.remap(
        warp.image, map_x - 0.5, map_y - 0.5, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    height, width = warp.image.shape[:2]
    valid = (map_x >= 0) & (map_x <= width) & (map_y >= 0) & (map_y <= height)
    return np.asarray(colour, dtype=np.uint8), valid


def _image_coordinates(
    warp: _Warp, mercator_x: FloatArray, mercator_y: FloatArray, size_px: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Image pixel of every tile pixel: exact on a coarse grid, bilinear in between (sub-pixel at tile scale)."""
    step = max(1, size_px // _GRID_STEP_PX)
    rows = np.unique(np.r_[np.arange(0, size_px, step), size_px - 1])
    grid_x, grid_y = mercator_x[np.ix_(rows, rows)], mercator_y[np.ix_(rows, rows)]
    east, north = warp.to_ground.transform(grid_x, grid_y)
    projected = np.stack([east, north, np.ones_like(east)], axis=-1) @ warp.homography.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(projected[..., 2] > 0, projected[..., 0] / projected[..., 2], -1e6)
        v = np.where(projected[..., 2] > 0, projected[..., 1] / projected[..., 2], -1e6)
    return _refine(u, rows, size_px), _refine(v, rows, size_px)


def _refine(coarse: FloatArray, rows: npt.NDArray[np.int_], size_px: int) -> npt.NDArray[np.float32]:
    """Interpolate values known at ``rows`` × ``rows`` to every pixel (separable linear interpolation)."""
    full = np.arange(size_px)
    across = np.stack([np.interp(full, rows, line) for line in coarse])
    result = np.stack([np.interp(full, rows, column) for column in across.T], axis=1)
    return result.astype(np.float32)


def _encode(pixels: npt.NDArray[np.uint8], fmt: TileFormat) -> bytes:
    if fmt == "png":
        ok, data = cv2.imencode(".png", pixels)
    elif fmt == "webp":
        ok, data = cv2.imencode(".webp", pixels, [cv2.IMWRITE_WEBP_QUALITY, _WEBP_QUALITY])
    else:
        raise RasterError(f"tile format must be 'png' or 'webp', got {fmt!r}")
    if not ok:
        raise RasterError(f"OpenCV could not encode the tile as {fmt}")
    return bytes(data.tobytes())
