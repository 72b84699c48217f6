"""WGS-84 ↔ GCJ-02, the offset coordinates of Chinese web basemaps (Gaode/AMap, Tencent), for display only.

SkyGrid stores every coordinate in WGS-84 (CGCS2000 is within centimetres of it). Gaode and Tencent tiles are
drawn in GCJ-02 ("Mars coordinates"), which is WGS-84 shifted by a published obfuscation formula by about
300–700 m. To lay SkyGrid's data over such a basemap, the web map converts at the edge: WGS-84 → GCJ-02 for
what it draws, GCJ-02 → WGS-84 for what a user clicks or draws on it. Nothing in GCJ-02 is ever stored.

The forward transform is the formula of the common open reference implementations (eviltransform,
coordtransform): Krasovsky 1940 ellipsoid constants and the same rough "outside China" bounding box, in which
points pass through unchanged. The formula has no closed-form inverse; :func:`gcj02_to_wgs84` solves
``wgs84_to_gcj02(p) = q`` with Newton's method on the 2×2 Jacobian (numerical, central differences), which
converges to far below 1e-9° within a few steps, against the ~1e-5° (≈1 m) of the one-step inverse that
many libraries ship.

Example:
    >>> lon, lat = wgs84_to_gcj02(116.391349, 39.907375)
    >>> back = gcj02_to_wgs84(lon, lat)
    >>> abs(back[0] - 116.391349) < 1e-9 and abs(back[1] - 39.907375) < 1e-9
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely

__all__ = [
    "gcj02_to_wgs84",
    "geometry_gcj02_to_wgs84",
    "geometry_wgs84_to_gcj02",
    "in_china",
    "wgs84_to_gcj02",
]

FloatArray = npt.NDArray[np.float64]
GeometryT = TypeVar("GeometryT")

#: semi-major axis and first eccentricity squared of the Krasovsky 1940 ellipsoid, as in the reference code
_A_M = 6378245.0
_EE = 0.00669342162296594323
#: the rough rectangle the reference implementations treat as China (outside it: no offset)
_LON_RANGE = (72.004, 137.8347)
_LAT_RANGE = (0.8293, 55.8271)
#: inverse iteration: stop when the residual is below this (degrees), give up after this many steps
_TOLERANCE_DEG = 1e-12
_MAX_STEPS = 12
_STEP_DEG = 1e-6


def in_china(lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each point lies in the box where the GCJ-02 offset applies (the reference implementations' box)."""
    lon, lat = np.asarray(lon_deg, dtype=np.float64), np.asarray(lat_deg, dtype=np.float64)
    inside: npt.NDArray[np.bool_] = (
        (lon >= _LON_RANGE[0]) & (lon <= _LON_RANGE[1]) & (lat >= _LAT_RANGE[0]) & (lat <= _LAT_RANGE[1])
    )
    return inside


def _transform_lat(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _offset_deg(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 minus WGS-84 at WGS-84 points (degrees), zero outside China."""
    d_lat = _transform_lat(lon - 105.0, lat - 35.0)
    d_lon = _transform_lon(lon - 105.0, lat - 35.0)
    rad_lat = np.radians(lat)
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A_M * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = (d_lon * 180.0) / (_A_M / sqrt_magic * np.cos(rad_lat) * np.pi)
    inside = in_china(lon, lat)
    return np.where(inside, d_lon, 0.0), np.where(inside, d_lat, 0.0)


def _as_arrays(lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon, lat = np.broadcast_arrays(
        np.asarray(lon_deg, dtype=np.float64), np.asarray(lat_deg, dtype=np.float64)
    )
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        bad = int(np.flatnonzero(~(np.isfinite(lon) & np.isfinite(lat)).ravel())[0])
        raise ValueError(
            f"coordinates must be finite numbers; point {bad} is ({lon.ravel()[bad]}, {lat.ravel()[bad]})"
        )
    if np.any(np.abs(lat) > 90.0) or np.any(np.abs(lon) > 180.0):
        bad = int(np.flatnonzero(((np.abs(lat) > 90.0) | (np.abs(lon) > 180.0)).ravel())[0])
        raise ValueError(
            f"coordinates must be longitude/latitude in degrees (WGS-84 or GCJ-02); "
            f"point {bad} is ({lon.ravel()[bad]}, {lat.ravel()[bad]}) — projected metres?"
        )
    return lon.astype(np.float64), lat.astype(np.float64)


@overload
def wgs84_to_gcj02(lon_deg: float, lat_deg: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike) -> tuple[Any, Any]: ...
def wgs84_to_gcj02(lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike) -> tuple[Any, Any]:
    """Convert WGS-84 longitude/latitude (degrees) to GCJ-02; scalars give floats, arrays give arrays.

    Points outside China's box come back unchanged, as in the reference implementations.

    Raises:
        ValueError: a coordinate is not finite or not a longitude/latitude in degrees.
    """
    lon, lat = _as_arrays(lon_deg, lat_deg)
    d_lon, d_lat = _offset_deg(lon, lat)
    return _like_input(lon + d_lon, lat + d_lat, lon_deg)


@overload
def gcj02_to_wgs84(lon_deg: float, lat_deg: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike) -> tuple[Any, Any]: ...
def gcj02_to_wgs84(lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike) -> tuple[Any, Any]:
    """Convert GCJ-02 longitude/latitude (degrees) to WGS-84 exactly, by Newton iteration on the forward formula.

    The result ``p`` satisfies ``wgs84_to_gcj02(p) == (lon_deg, lat_deg)`` to within 1e-12° (micrometres).
    Points whose WGS-84 position lies outside China's box come back unchanged.

    Raises:
        ValueError: a coordinate is not finite or not a longitude/latitude in degrees.
    """
    target_lon, target_lat = _as_arrays(lon_deg, lat_deg)
    lon, lat = _newton_inverse(target_lon, target_lat)
    return _like_input(lon, lat, lon_deg)


def _newton_inverse(target_lon: FloatArray, target_lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    d_lon, d_lat = _offset_deg(target_lon, target_lat)
    lon, lat = target_lon - d_lon, target_lat - d_lat  # the usual one-step inverse: ~1e-5° off
    for _ in range(_MAX_STEPS):
        r_lon, r_lat = _residual(lon, lat, target_lon, target_lat)
        if (
            max(float(np.max(np.abs(r_lon), initial=0.0)), float(np.max(np.abs(r_lat), initial=0.0)))
            < _TOLERANCE_DEG
        ):
            break
        j = _jacobian(lon, lat)
        det = j[0] * j[3] - j[1] * j[2]
        lon = lon - (j[3] * r_lon - j[1] * r_lat) / det
        lat = lat - (j[0] * r_lat - j[2] * r_lon) / det
    return lon, lat


def _residual(
    lon: FloatArray, lat: FloatArray, target_lon: FloatArray, target_lat: FloatArray
) -> tuple[FloatArray, FloatArray]:
    d_lon, d_lat = _offset_deg(lon, lat)
    return lon + d_lon - target_lon, lat + d_lat - target_lat


def _jacobian(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Partial derivatives (∂lon'/∂lon, ∂lon'/∂lat, ∂lat'/∂lon, ∂lat'/∂lat) of the forward transform."""
    h = _STEP_DEG
    lon_e, lat_e = _offset_deg(lon + h, lat)
    lon_w, lat_w = _offset_deg(lon - h, lat)
    lon_n, lat_n = _offset_deg(lon, lat + h)
    lon_s, lat_s = _offset_deg(lon, lat - h)
    return (
        1.0 + (lon_e - lon_w) / (2 * h),
        (lon_n - lon_s) / (2 * h),
        (lat_e - lat_w) / (2 * h),
        1.0 + (lat_n - lat_s) / (2 * h),
    )


def _like_input(lon: FloatArray, lat: FloatArray, template: npt.ArrayLike) -> tuple[Any, Any]:
    if np.ndim(template) == 0 and lon.ndim == 0:
        return float(lon), float(lat)
    return lon, lat


def geometry_wgs84_to_gcj02(geometry: GeometryT) -> GeometryT:
    """Shift shapely geometries from WGS-84 to GCJ-02 for display on a Gaode/Tencent basemap.

    Takes a geometry, an array of geometries, a GeoSeries or a GeoDataFrame and returns a new object of the
    same kind (the input is unchanged). A GeoSeries/GeoDataFrame keeps its EPSG:4326 label because GCJ-02
    has no EPSG code: the result is for drawing only and must never be stored.
    """
    return _map_geometry(geometry, wgs84_to_gcj02)


def geometry_gcj02_to_wgs84(geometry: GeometryT) -> GeometryT:
    """Shift shapely geometries drawn on a GCJ-02 basemap back to WGS-84 (same kinds as the forward helper)."""
    return _map_geometry(geometry, gcj02_to_wgs84)


def _map_geometry(
    geometry: GeometryT, convert: Callable[[FloatArray, FloatArray], tuple[Any, Any]]
) -> GeometryT:
    def points(coords: FloatArray) -> FloatArray:
        if len(coords) == 0:
            return coords
        lon, lat = convert(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    result: Any
    if isinstance(geometry, gpd.GeoDataFrame):
        result = geometry.copy()
        result[geometry.geometry.name] = _map_geometry(geometry.geometry, convert)
    elif isinstance(geometry, gpd.GeoSeries):
        result = gpd.GeoSeries(
            shapely.transform(geometry.values, points), index=geometry.index, crs=geometry.crs
        )
    else:
        result = shapely.transform(geometry, points)
    return cast(GeometryT, result)
