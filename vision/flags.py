"""Flags: what an inspector reviews — one per real violation, with its category, place, grid and evidence.

A flag's category follows the case classification of digital city-management systems (数字化城管, the
GB/T 30428.2 lineage): ``0101`` 私搭乱建, ``0102`` 暴露垃圾, ``0505`` 机动车乱停放, ``0506`` 非机动车乱停放,
``0507`` 乱堆物堆料. Cities use local variants of that table, so the detector class → category mapping is a
:class:`CategoryScheme` that a city can override from a CSV file (:func:`read_scheme`).

Flags are written as the ``flags`` layer of a GeoPackage (Point geometry in WGS-84), atomically.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import geopandas as gpd
import pandas as pd
import shapely

from gis.io import gpkg_layers, write_layers

FLAGS_LAYER = "flags"
WGS84 = "EPSG:4326"
STANDARD = "GB/T 30428.2-2013"
SCHEME_COLUMNS = ("class_name", "code", "name", "name_en", "standard")
FLAG_COLUMNS = (
    "flag_id",
    "category_code",
    "category",
    "category_en",
    "standard",
    "class_name",
    "confidence",
    "rule",
    "severity",
    "grid_code",
    "microgrid_code",
    "sightings",
    "first_seen",
    "last_seen",
    "evidence",
    "frame_id",
    "frame_source",
    "frame_image",
    "error_m",
)


class FlagsError(ValueError):
    """A flags file or a category table is unusable; the message names the file, row and field."""


@dataclass(frozen=True)
class Category:
    """One case category of the city's classification: code, Chinese and English name, and its standard."""

    code: str
    name: str
    name_en: str
    standard: str = STANDARD


@dataclass(frozen=True)
class CategoryScheme:
    """Detector class name → case category. Immutable; :meth:`with_overrides` returns a new scheme."""

    by_class: Mapping[str, Category]

    def category(self, class_name: str) -> Category | None:
        """The category of ``class_name``, or None when the class is not a violation class (e.g. ``person``)."""
        return self.by_class.get(class_name)

    def groups(self) -> dict[str, str]:
        """Class → category code: classes of one category (shed, steel shack) are tracked as one object."""
        return {class_name: category.code for class_name, category in self.by_class.items()}

    def with_overrides(self, overrides: Mapping[str, Category]) -> CategoryScheme:
        """A new scheme where ``overrides`` replace or add classes."""
        return CategoryScheme(MappingProxyType({**self.by_class, **overrides}))


_ILLEGAL_STRUCTURE = Category("0101", "私搭乱建", "illegal structure")
DEFAULT_SCHEME = CategoryScheme(
    MappingProxyType(
        {
            "shed": _ILLEGAL_STRUCTURE,
            "steel_shack": _ILLEGAL_STRUCTURE,
            "garbage": Category("0102", "暴露垃圾", "exposed garbage"),
            "car": Category("0505", "机动车乱停放", "illegal car parking"),
            "motorbike": Category("0506", "非机动车乱停放", "illegal non-motor-vehicle parking"),
            "clutter": Category("0507", "乱堆物堆料", "piled materials"),
        }
    )
)


def read_scheme(path: Path, base: CategoryScheme = DEFAULT_SCHEME) -> CategoryScheme:
    """Read a city's category table (CSV, UTF-8, header ``class_name,code,name,name_en,standard``).

    Rows replace or add classes of ``base``; ``standard`` may be empty (then :data:`STANDARD`).

    Raises:
        FlagsError: the file is missing, a column is missing, or a row lacks a class name or code.
    """
    if not path.is_file():
        raise FlagsError(f"{path}: category table not found")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in SCHEME_COLUMNS[:3] if c not in (reader.fieldnames or ())]
        if missing:
            raise FlagsError(
                f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(SCHEME_COLUMNS)}"
            )
        overrides = {
            row["class_name"].strip(): _category_row(row, path, n) for n, row in enumerate(reader, 2)
        }
    return base.with_overrides(overrides)


def _category_row(row: Mapping[str, str | None], path: Path, line: int) -> Category:
    values = {key: (row.get(key) or "").strip() for key in SCHEME_COLUMNS}
    for key in ("class_name", "code", "name"):
        if not values[key]:
            raise FlagsError(f"{path}: line {line}: field {key} is empty")
    return Category(values["code"], values["name"], values["name_en"], values["standard"] or STANDARD)


@dataclass(frozen=True)
class Flag:
    """One violation found from the air, ready for an inspector.

    ``lon_deg``/``lat_deg`` are WGS-84; ``error_m`` is the 1-sigma horizontal position error estimated from the
    telemetry's accuracy; ``severity`` is 1 (normal), 2 (severe) or 3 (most severe, e.g. a fire lane blocked);
    ``evidence`` is the path of the best crop and ``frame_image`` that of the full frame it was cut from (both
    relative to the flags file's folder); ``frame_id``/``frame_source`` name that frame in its source.
    """

    flag_id: str
    lon_deg: float
    lat_deg: float
    class_name: str
    category: Category
    confidence: float
    rule: str
    severity: int
    grid_code: str | None
    microgrid_code: str | None
    sightings: int
    first_seen: datetime
    last_seen: datetime
    evidence: str
    frame_id: str
    frame_source: str
    frame_image: str
    error_m: float

    def __post_init__(self) -> None:
        if not (-180.0 <= self.lon_deg <= 180.0 and -90.0 <= self.lat_deg <= 90.0):
            raise ValueError(f"flag {self.flag_id}: ({self.lon_deg}, {self.lat_deg}) is not a WGS-84 lon/lat")
        if not (0.0 <= self.confidence <= 1.0) or not math.isfinite(self.error_m):
            raise ValueError(
                f"flag {self.flag_id}: confidence {self.confidence} or error {self.error_m} invalid"
            )
        if self.sightings < 1 or self.last_seen < self.first_seen:
            raise ValueError(
                f"flag {self.flag_id}: {self.sightings} sightings, seen {self.first_seen}–{self.last_seen}"
            )


def flags_frame(flags: Sequence[Flag]) -> gpd.GeoDataFrame:
    """The flags as a GeoDataFrame in WGS-84 with the columns of :data:`FLAG_COLUMNS`."""
    rows = [_flag_row(flag) for flag in flags]
    table = pd.DataFrame(rows, columns=list(FLAG_COLUMNS))
    for column in ("first_seen", "last_seen"):
        table[column] = pd.to_datetime(table[column], utc=True)
    points = shapely.points([f.lon_deg for f in flags], [f.lat_deg for f in flags]) if flags else []
    return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(points, crs=WGS84), crs=WGS84)


def _flag_row(flag: Flag) -> dict[str, object]:
    return {
        "flag_id": flag.flag_id,
        "category_code": flag.category.code,
        "category": flag.category.name,
        "category_en": flag.category.name_en,
        "standard": flag.category.standard,
        "class_name": flag.class_name,
        "confidence": flag.confidence,
        "rule": flag.rule,
        "severity": flag.severity,
        "grid_code": flag.grid_code,
        "microgrid_code": flag.microgrid_code,
        "sightings": flag.sightings,
        "first_seen": flag.first_seen,
        "last_seen": flag.last_seen,
        "evidence": flag.evidence,
        "frame_id": flag.frame_id,
        "frame_source": flag.frame_source,
        "frame_image": flag.frame_image,
        "error_m": flag.error_m,
    }


def write_flags(flags: Iterable[Flag], path: Path) -> None:
    """Write the ``flags`` layer of a new GeoPackage at ``path`` atomically (an existing file is replaced only
    once the new one is complete).

    Raises:
        FlagsError: two flags share a flag id.
    """
    flags = list(flags)
    seen: set[str] = set()
    for flag in flags:
        if flag.flag_id in seen:
            raise FlagsError(f"{path}: flag id {flag.flag_id} occurs twice")
        seen.add(flag.flag_id)
    write_layers(path, {FLAGS_LAYER: flags_frame(flags)})


def read_flags_frame(path: Path) -> gpd.GeoDataFrame:
    """Read the ``flags`` layer of ``path`` in WGS-84.

    Raises:
        FlagsError: the file is missing or unreadable, has no ``flags`` layer, or lacks a required column.
    """
    layers = gpkg_layers(path, FlagsError)
    if FLAGS_LAYER not in layers:
        raise FlagsError(f"{path}: no layer {FLAGS_LAYER!r}; layers present: {sorted(layers)}")
    frame = gpd.read_file(path, layer=FLAGS_LAYER, engine="pyogrio")
    missing = [c for c in ("flag_id", "category_code", "class_name") if c not in frame.columns]
    if missing:
        raise FlagsError(f"{path}: layer {FLAGS_LAYER} lacks column(s) {', '.join(missing)}")
    if frame.crs is None:
        raise FlagsError(f"{path}: layer {FLAGS_LAYER} has no CRS")
    result: gpd.GeoDataFrame = frame.to_crs(WGS84)
    return result
