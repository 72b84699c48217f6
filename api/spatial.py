"""Spatial look-ups on both backends: candidates by bounding box (SQLite R*Tree or PostGIS ``&&``), then
exact tests in shapely; distances on the WGS-84 ellipsoid (pyproj ``Geod``).
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from pyproj import Geod
from sqlalchemy import Select, column, func, literal_column, select, table
from sqlalchemy.orm import Session

from api.geometry import SRID, BBox

_GEOD = Geod(ellps="WGS84")
_M_PER_DEG_LAT = 111_320.0


def bbox_around(lon: float, lat: float, radius_m: float) -> BBox:
    """A lon/lat box that contains every point within ``radius_m`` of (lon, lat)."""
    dlat = radius_m / _M_PER_DEG_LAT
    dlon = radius_m / (_M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 1e-6))
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat


def in_bbox(session: Session, model: type[Any], bbox: BBox) -> Select[Any]:
    """``select(model)`` restricted to rows whose bounding box meets ``bbox``, through the spatial index."""
    minx, miny, maxx, maxy = bbox
    if session.get_bind().dialect.name == "postgresql":
        envelope = func.ST_MakeEnvelope(minx, miny, maxx, maxy, SRID)
        return select(model).where(literal_column(f"{model.__tablename__}.geom").op("&&")(envelope))
    rtree = table(
        f"{model.__tablename__}_rtree",
        column("id"),
        column("minx"),
        column("maxx"),
        column("miny"),
        column("maxy"),
    )
    hits = select(rtree.c.id).where(
        rtree.c.minx <= maxx, rtree.c.maxx >= minx, rtree.c.miny <= maxy, rtree.c.maxy >= miny
    )
    return select(model).where(model.id.in_(hits))


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres."""
    return float(_GEOD.inv(lon1, lat1, lon2, lat2)[2])


def containing(session: Session, model: type[Any], lon: float, lat: float, *extra: Any) -> list[Any]:
    """Rows of ``model`` whose geometry contains the point, filtered further by ``extra`` conditions."""
    point = shapely.Point(lon, lat)
    candidates = session.scalars(in_bbox(session, model, (lon, lat, lon, lat)).where(*extra)).all()
    return [row for row in candidates if row.geom.covers(point)]
