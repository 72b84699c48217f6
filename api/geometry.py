"""Geometry columns that work on both backends: PostGIS ``geometry(…, 4326)`` or WKB bytes on SQLite.

Geometries are shapely objects in WGS-84 (EPSG:4326) on the Python side. On SQLite each spatial table also
carries ``minx``/``miny``/``maxx``/``maxy`` columns, mirrored into an R*Tree virtual table (``<table>_rtree``)
by triggers that the migration creates; on PostgreSQL a GiST index serves the same queries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import geoalchemy2
import shapely
from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

SRID = 4326
BBox = tuple[float, float, float, float]


class Geometry(TypeDecorator[shapely.Geometry]):
    """A WGS-84 geometry: PostGIS ``geometry`` on PostgreSQL, WKB in a BLOB elsewhere."""

    impl = LargeBinary
    cache_ok = True
    #: Read by GeoAlchemy2's DDL hooks: the GiST index is created by the migration instead.
    spatial_index = False

    def load_dialect_impl(self, dialect: Dialect | None) -> TypeEngine[Any]:
        # GeoAlchemy2's DDL hooks call this without a dialect; the GiST index comes from the migration.
        if dialect is None:
            return LargeBinary()
        if dialect.name == "postgresql":
            return dialect.type_descriptor(geoalchemy2.Geometry(srid=SRID, spatial_index=False))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: shapely.Geometry | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return geoalchemy2.WKBElement(shapely.to_wkb(value), srid=SRID)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> shapely.Geometry | None:
        if value is None:
            return None
        if isinstance(value, geoalchemy2.WKBElement):
            return shapely.from_wkb(bytes(value.data))
        if isinstance(value, str):
            return shapely.from_wkb(value)
        return shapely.from_wkb(bytes(value))


def spatial(geometry: shapely.Geometry) -> dict[str, Any]:
    """Column values of a spatial row: the geometry and its bounding box."""
    minx, miny, maxx, maxy = (float(v) for v in shapely.bounds(geometry))
    return {"geom": geometry, "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC time on both backends (SQLite stores it naive; it is read back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given; times are stored as UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
