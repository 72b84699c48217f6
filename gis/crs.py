"""Choosing a local metric CRS for areas and distances, whatever CRS a district was declared in.

Areas (for household estimates) and distances (for gridding) must be measured in metres. A projected
CRS in metres is used as it is; a geographic CRS is projected to a zone around the data: the CGCS2000
3-degree Gauss–Krüger zone for CGCS2000 data (China's own datum), otherwise the WGS 84 UTM zone.
"""

from __future__ import annotations

import math

import geopandas as gpd
import pyproj

from gis.errors import DistrictError

#: EPSG code of "CGCS2000 / 3-degree Gauss-Kruger CM 75E"; the zones run on to 135E (EPSG:4554).
GK_FIRST_EPSG = 4534
GK_FIRST_MERIDIAN = 75
GK_LAST_MERIDIAN = 135
_CGCS2000_DATUM = "China 2000"
_METRE = ("metre", "meter", "m")


def local_metric_crs(gdf: gpd.GeoDataFrame) -> pyproj.CRS:
    """Return a CRS in metres suitable for measuring the frame's geometries.

    Args:
        gdf: any frame with a declared CRS.

    Returns:
        The frame's own CRS when it is projected in metres; for CGCS2000 data the 3-degree Gauss–Krüger
        zone (EPSG:4534–4554) whose central meridian is nearest the data's centre; otherwise the WGS 84
        UTM zone of the data's centre.

    Raises:
        DistrictError: the frame has no CRS.
    """
    if gdf.crs is None:
        raise DistrictError("has no CRS; declare one, e.g. EPSG:4326")
    crs = pyproj.CRS.from_user_input(gdf.crs)
    if is_metric(crs):
        return crs
    lon, lat = _centre_lonlat(gdf, crs)
    if _is_cgcs2000(crs):
        return gk_zone(lon)
    return utm_zone(lon, lat)


def is_metric(crs: pyproj.CRS) -> bool:
    """Whether ``crs`` measures true metres: projected, in metres, and not a (pseudo-)Mercator.

    Web Mercator (EPSG:3857) is in metres but stretches lengths by 1/cos(latitude), about 15-50 % across
    China, so it is treated like a geographic CRS and a local zone is chosen instead.
    """
    if not crs.is_projected or not all(axis.unit_name in _METRE for axis in crs.axis_info[:2]):
        return False
    operation = crs.coordinate_operation
    method = operation.method_name if operation is not None else ""
    return not ("Mercator" in method and "Transverse" not in method)


def gk_zone(lon: float) -> pyproj.CRS:
    """Return the CGCS2000 3-degree Gauss–Krüger CM zone whose central meridian is nearest ``lon``.

    Longitudes outside China's zones (75E–135E) get the nearest end zone.
    """
    meridian = min(max(round(lon / 3) * 3, GK_FIRST_MERIDIAN), GK_LAST_MERIDIAN)
    return pyproj.CRS.from_epsg(GK_FIRST_EPSG + (meridian - GK_FIRST_MERIDIAN) // 3)


def utm_zone(lon: float, lat: float) -> pyproj.CRS:
    """Return the WGS 84 UTM zone holding the point ``(lon, lat)`` (the regular 6° zones, as PROJ's
    ``query_utm_crs_info`` gives them; worked out here because asking PROJ's database costs 75–180 ms)."""
    zone = int((lon + 180) // 6) % 60 + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def to_metric(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return ``gdf`` in its :func:`local_metric_crs` (the frame itself when already metric)."""
    return to_crs_of(gdf, local_metric_crs(gdf))


def to_crs_of(gdf: gpd.GeoDataFrame, crs: object) -> gpd.GeoDataFrame:
    """Return ``gdf`` in ``crs``; the frame itself when it is already there."""
    if gdf.crs is not None and pyproj.CRS.from_user_input(gdf.crs) == pyproj.CRS.from_user_input(crs):
        return gdf
    result: gpd.GeoDataFrame = gdf.to_crs(crs)
    return result


def _is_cgcs2000(crs: pyproj.CRS) -> bool:
    datum = crs.datum
    return datum is not None and datum.name == _CGCS2000_DATUM


def _centre_lonlat(gdf: gpd.GeoDataFrame, crs: pyproj.CRS) -> tuple[float, float]:
    """Centre of the frame's bounds in longitude/latitude of the CRS's own datum."""
    west, south, east, north = (float(v) for v in gdf.total_bounds)
    if any(math.isnan(v) for v in (west, south, east, north)):
        raise DistrictError("has no geometries to locate")
    if not crs.is_geographic:
        geographic = crs.geodetic_crs or pyproj.CRS.from_epsg(4326)
        transformer = pyproj.Transformer.from_crs(crs, geographic, always_xy=True)
        west, south, east, north = transformer.transform_bounds(west, south, east, north)
    return (west + east) / 2, (south + north) / 2
