"""Reading districts and household registers, writing and reading grid plans.

A district comes in as a GeoPackage (layers ``buildings``, ``communities`` and the optional ``compounds`` and
``roads``) or as a directory of GeoJSON, Shapefile or FlatGeobuf files with those names. Reading checks every
layer and normalises it to the column contract of :mod:`gis.model`; anything unusable raises a
:class:`~gis.errors.DistrictError` naming the file, layer, row and field. Rows are 0-based positions in
their layer; in a household register they are spreadsheet rows (the header is row 1).

Plans and districts are written to GeoPackages atomically: a failed write leaves an existing file untouched.
"""

from __future__ import annotations

import logging
import math
import os
import re
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis.crs import local_metric_crs, to_crs_of
from gis.errors import DistrictError, PlanError
from gis.model import (
    GRID_COLUMNS,
    MICROGRID_COLUMNS,
    UNIT_COLUMNS,
    District,
    GridPlan,
    GridRules,
)

log = logging.getLogger(__name__)

#: Logical layers of a district, in reading order; the first two are required.
DISTRICT_LAYERS = ("buildings", "communities", "compounds", "roads")
REQUIRED_LAYERS = ("buildings", "communities")
#: File suffixes recognised for the layers of a district directory, in order of preference.
DIRECTORY_SUFFIXES = (".geojson", ".json", ".shp", ".fgb")
#: Layers of a plan GeoPackage; ``rules`` is optional.
PLAN_LAYERS = ("grids", "microgrids", "building_units", "report")
RULES_LAYER = "rules"
#: A repaired geometry may change its area by less than this fraction.
MAX_REPAIR_AREA_CHANGE = 0.05

_DEFAULT_RULES = GridRules()
_CODE = re.compile(r"\d{12}")
_MAX_LISTED = 10
_FAMILIES = {
    "Polygon": "polygon",
    "MultiPolygon": "polygon",
    "LineString": "line",
    "MultiLineString": "line",
    "LinearRing": "line",
    "Point": "point",
    "MultiPoint": "point",
}
#: Contract columns longer than a Shapefile's 10-character field names.
_LONG_NAMES = ("building_id", "compound_id", "community_code")
_TRUE = {"1", "true", "t", "yes", "y"}
_PLAN_INTS = ("households", "buildings", "unit")
_PLAN_NULLABLE_INTS = ("floor_from", "floor_to")
_PLAN_CODES = ("grid_code", "microgrid_code", "community_code", "building_id")
_PLAN_TEXTS = ("status", "note")


class GeometryRepairedWarning(UserWarning):
    """Invalid geometries were repaired with ``shapely.make_valid`` while reading a district."""


@dataclass(frozen=True)
class RegisterReport:
    """What applying a household register matched.

    Args:
        matched: register rows whose building_id is in the buildings.
        unmatched_rows: spreadsheet rows (header = row 1) whose building_id is not in the buildings.
        unmatched_ids: the building_ids of those rows, in the same order.
    """

    matched: int
    unmatched_rows: tuple[int, ...]
    unmatched_ids: tuple[str, ...]


@dataclass(frozen=True)
class _Where:
    """Where a frame came from, to build errors that name file, layer, row and field."""

    file: str
    layer: str | None = None
    row_base: int = 0

    def row(self, position: int) -> int:
        return position + self.row_base

    def error(self, message: str, *, row: int | None = None, field: str | None = None) -> DistrictError:
        shown = None if row is None else self.row(row)
        return DistrictError(message, file=self.file, layer=self.layer, row=shown, field=field)


@dataclass(frozen=True)
class _Source:
    """One logical layer of a district: the file and, inside a GeoPackage, the table."""

    name: str
    file: Path
    table: str
    in_package: bool

    @property
    def where(self) -> _Where:
        return _Where(str(self.file), self.table)


# ---------------------------------------------------------------------------------------------- districts


def read_district(
    path: str | Path,
    *,
    rules: GridRules = _DEFAULT_RULES,
    register: str | Path | None = None,
    layers: Mapping[str, str] | None = None,
) -> District:
    """Read, check and normalise a district.

    Args:
        path: a GeoPackage, or a directory holding ``buildings.*``, ``communities.*`` and the
            optional ``compounds.*`` and ``roads.*`` as GeoJSON (.geojson/.json), Shapefile (.shp) or
            FlatGeobuf (.fgb).
        rules: gridding rules; ``m2_per_household`` estimates missing households.
        register: optional household register (CSV or XLSX) applied after reading, see :func:`read_register`.
        layers: renames of the logical layers, e.g. ``{"buildings": "my_layer"}`` (table or file stem).

    Returns:
        The district in the buildings' CRS, with buildings in the :data:`gis.model.BUILDING_COLUMNS` contract.

    Raises:
        DistrictError: the input is missing, malformed or inconsistent; the error names where.
    """
    sources = _locate_layers(Path(path), layers or {})
    frames = {name: _read_layer(source) for name, source in sources.items()}
    crs = frames["buildings"].crs
    for name in frames:
        frames[name] = _align_crs(frames[name], crs, sources[name])
    communities = _normalise_communities(frames["communities"], sources["communities"].where)
    compounds = (
        _normalise_compounds(frames["compounds"], sources["compounds"].where)
        if "compounds" in frames
        else None
    )
    roads = _normalise_roads(frames["roads"], sources["roads"].where) if "roads" in frames else None
    where = sources["buildings"].where
    buildings = _normalise_buildings(frames["buildings"], where)
    buildings = _assign_communities(buildings, communities, where)
    if compounds is not None:
        buildings = _fill_compounds(buildings, compounds)
    buildings = _estimate_households(buildings, rules)
    if register is not None:
        buildings = _apply_register(register, buildings)
    return District(buildings, communities, compounds, roads, source=str(path))


def write_district(district: District, path: str | Path) -> None:
    """Write a district to a GeoPackage: buildings, communities and, when present, compounds and roads."""
    frames: dict[str, pd.DataFrame] = {"buildings": district.buildings, "communities": district.communities}
    if district.compounds is not None:
        frames["compounds"] = district.compounds
    if district.roads is not None:
        frames["roads"] = district.roads
    write_layers(path, frames)


def _locate_layers(path: Path, renames: Mapping[str, str]) -> dict[str, _Source]:
    unknown = sorted(set(renames) - set(DISTRICT_LAYERS))
    if unknown:
        raise DistrictError(f"unknown layer(s) {', '.join(unknown)}; expected {', '.join(DISTRICT_LAYERS)}")
    if not path.exists():
        raise DistrictError("file not found", file=str(path))
    tables = {name: renames.get(name, name) for name in DISTRICT_LAYERS}
    return _locate_in_directory(path, tables) if path.is_dir() else _locate_in_package(path, tables)


def _locate_in_package(path: Path, tables: Mapping[str, str]) -> dict[str, _Source]:
    try:
        present = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:
        raise DistrictError(f"cannot open as a GeoPackage: {exc}", file=str(path)) from exc
    sources: dict[str, _Source] = {}
    for name, table in tables.items():
        if table in present:
            sources[name] = _Source(name, path, table, in_package=True)
        elif name in REQUIRED_LAYERS:
            found = ", ".join(present) or "none"
            raise DistrictError(
                f"layer '{table}' not found; layers present: {found}", file=str(path), layer=table
            )
    return sources


def _locate_in_directory(path: Path, tables: Mapping[str, str]) -> dict[str, _Source]:
    sources: dict[str, _Source] = {}
    for name, table in tables.items():
        files = [
            path / f"{table}{suffix}"
            for suffix in DIRECTORY_SUFFIXES
            if (path / f"{table}{suffix}").is_file()
        ]
        if len(files) > 1:
            listed = ", ".join(f.name for f in files)
            raise DistrictError(
                f"several files for layer '{table}': {listed}; keep one", file=str(path), layer=table
            )
        if files:
            sources[name] = _Source(name, files[0], table, in_package=False)
        elif name in REQUIRED_LAYERS:
            kinds = ", ".join(f"{table}{suffix}" for suffix in DIRECTORY_SUFFIXES)
            present = ", ".join(sorted(p.name for p in path.iterdir())) or "none"
            raise DistrictError(
                f"no file {kinds} found; files present: {present}", file=str(path), layer=table
            )
    return sources


def _read_layer(source: _Source) -> gpd.GeoDataFrame:
    where = source.where
    try:
        frame = gpd.read_file(
            source.file, layer=source.table if source.in_package else None, engine="pyogrio"
        )
    except Exception as exc:
        raise where.error(f"cannot read layer: {exc}") from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame.columns:
        raise where.error("has no geometry column; it must be a feature layer")
    if len(frame) == 0:
        raise where.error("has no features")
    if frame.crs is None:
        raise where.error("has no CRS; declare one, e.g. EPSG:4326")
    frame = _restore_shapefile_names(frame.reset_index(drop=True))
    _check_geometries(frame, where, polygonal=source.name != "roads")
    return frame


def _align_crs(frame: gpd.GeoDataFrame, crs: object, source: _Source) -> gpd.GeoDataFrame:
    result = to_crs_of(frame, crs)
    if result is not frame:
        log.warning(
            "%s, layer %s is in %s; reprojected to the buildings' CRS", source.file, source.table, frame.crs
        )
    return result


# ----------------------------------------------------------------------------------------------- geometry


def _check_geometries(frame: gpd.GeoDataFrame, where: _Where, *, polygonal: bool) -> None:
    """Reject null, empty and mixed geometries; repair invalid polygons in place."""
    geometry = frame.geometry
    missing = geometry.isna() | geometry.is_empty
    if missing.any():
        row = _first(missing)
        raise where.error("geometry is null or empty", row=row, field="geometry")
    _check_geometry_types(frame, where, polygonal=polygonal)
    _repair_invalid(frame, where)


def _check_geometry_types(frame: gpd.GeoDataFrame, where: _Where, *, polygonal: bool) -> None:
    types = frame.geom_type
    families = types.map(lambda kind: _FAMILIES.get(kind, "collection"))
    counts = families.value_counts()
    expected = "polygon" if polygonal else str(counts.index[0])
    wrong = families != expected
    if not wrong.any():
        return
    row = _first(wrong)
    if len(counts) > 1:
        message = (
            f"mixed geometry types: a {types.iloc[row]} among {expected} features; use one kind per layer"
        )
    else:
        message = f"features must be polygons, found {types.iloc[row]}"
    raise where.error(message, row=row, field="geometry")


def _repair_invalid(frame: gpd.GeoDataFrame, where: _Where) -> None:
    """Repair invalid polygons with ``make_valid`` when the area changes by less than 5 %; else raise."""
    polygonal = frame.geom_type.isin(["Polygon", "MultiPolygon"])
    invalid = polygonal & ~frame.geometry.is_valid
    rows = [int(row) for row in np.flatnonzero(invalid.to_numpy())]
    if not rows:
        return
    geometries = frame.geometry.to_numpy().copy()
    for row in rows:
        geometries[row] = _repaired(geometries[row], where, row)
    frame[frame.geometry.name] = gpd.GeoSeries(geometries, index=frame.index, crs=frame.crs)
    listed = ", ".join(str(where.row(row)) for row in rows[:_MAX_LISTED])
    warnings.warn(
        f"{where.file}, layer {where.layer}: repaired {len(rows)} invalid geometries (rows {listed})",
        GeometryRepairedWarning,
        stacklevel=2,
    )


def _repaired(geometry: shapely.Geometry, where: _Where, row: int) -> shapely.Geometry:
    reason = shapely.is_valid_reason(geometry)
    fixed = _polygonal_part(shapely.make_valid(geometry))
    before, after = abs(geometry.area), fixed.area
    if fixed.is_empty or before == 0 or abs(after - before) / before >= MAX_REPAIR_AREA_CHANGE:
        change = "to nothing" if fixed.is_empty or before == 0 else f"by {abs(after - before) / before:.0%}"
        raise where.error(
            f"invalid geometry ({reason}); repairing it would change its area {change}: fix it by hand",
            row=row,
            field="geometry",
        )
    return fixed


def _polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [part for part in shapely.get_parts(geometry) if part.geom_type in ("Polygon", "MultiPolygon")]
    polygons = [poly for part in parts for poly in shapely.get_parts(part)]
    return shapely.MultiPolygon(polygons) if polygons else shapely.Polygon()


# ------------------------------------------------------------------------------------------------ columns


def _normalise_communities(frame: gpd.GeoDataFrame, where: _Where) -> gpd.GeoDataFrame:
    _require_columns(frame, ("community_code",), where)
    codes = _identifiers(frame["community_code"], where, "community_code", required=True)
    _check_codes(codes, where)
    _check_unique(codes, where, "community_code")
    names = _texts(frame["name"]) if "name" in frame.columns else _nones(len(frame))
    return _with_columns(frame, {"community_code": codes, "name": names})


def _normalise_compounds(frame: gpd.GeoDataFrame, where: _Where) -> gpd.GeoDataFrame:
    _require_columns(frame, ("compound_id",), where)
    ids = _identifiers(frame["compound_id"], where, "compound_id", required=True)
    _check_unique(ids, where, "compound_id")
    names = _texts(frame["name"]) if "name" in frame.columns else _nones(len(frame))
    return _with_columns(frame, {"compound_id": ids, "name": names})


def _normalise_roads(frame: gpd.GeoDataFrame, where: _Where) -> gpd.GeoDataFrame:
    kinds = _texts(frame["kind"]) if "kind" in frame.columns else _nones(len(frame))
    return _with_columns(frame, {"kind": kinds})


def _normalise_buildings(frame: gpd.GeoDataFrame, where: _Where) -> gpd.GeoDataFrame:
    """Parse the buildings' attributes; households stay nullable until estimated."""
    _require_columns(frame, ("building_id",), where)
    ids = _identifiers(frame["building_id"], where, "building_id", required=True)
    _check_unique(ids, where, "building_id")
    columns: dict[str, pd.Series] = {"building_id": ids}
    columns["households"] = _counts(frame, "households", where, minimum=0)
    columns["households_estimated"] = _flags(frame, "households_estimated")
    columns["floors"] = _counts(frame, "floors", where, minimum=1)
    columns["units"] = _counts(frame, "units", where, minimum=1)
    for field in ("compound_id", "community_code"):
        present = field in frame.columns
        columns[field] = _identifiers(frame[field], where, field) if present else _nones(len(frame))
    _check_codes(columns["community_code"], where)
    return _with_columns(frame, columns)


def _with_columns(frame: gpd.GeoDataFrame, columns: Mapping[str, pd.Series]) -> gpd.GeoDataFrame:
    """The frame with ``columns`` first (replacing same-named ones), its other columns, then geometry."""
    geometry = frame.geometry.name
    extras = [c for c in frame.columns if c not in columns and c != geometry]
    data = {**columns, **{c: frame[c] for c in extras}}
    result = gpd.GeoDataFrame(data, geometry=frame.geometry.to_numpy(), crs=frame.crs, index=frame.index)
    return result.rename_geometry("geometry") if geometry != "geometry" and "geometry" not in data else result


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], where: _Where) -> None:
    for column in columns:
        if column not in frame.columns:
            present = ", ".join(str(c) for c in frame.columns if c != "geometry")
            raise where.error(f"missing required column '{column}'; columns present: {present}", field=column)


def _restore_shapefile_names(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rename Shapefile-truncated columns (``community_`` for ``community_code``) back."""
    renames = {c[:10]: c for c in _LONG_NAMES if c not in frame.columns and c[:10] in frame.columns}
    return frame.rename(columns=renames) if renames else frame


def _identifiers(values: pd.Series, where: _Where, field: str, *, required: bool = False) -> pd.Series:
    """Identifiers as ``str`` (whole floats lose their ``.0``), missing ones as None."""
    result = [_identifier(value) for value in values]
    if required:
        for row, value in enumerate(result):
            if value is None:
                raise where.error(f"{field} is empty", row=row, field=field)
    return pd.Series(result, index=values.index, dtype=object)


def _identifier(value: object) -> str | None:
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _texts(values: pd.Series) -> pd.Series:
    return pd.Series([None if _is_missing(v) else str(v) for v in values], index=values.index, dtype=object)


def _nones(length: int) -> pd.Series:
    return pd.Series([None] * length, dtype=object)


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _check_codes(codes: pd.Series, where: _Where) -> None:
    for row, code in enumerate(codes):
        if code is not None and not _CODE.fullmatch(code):
            message = f"community_code '{code}' is not a 12-digit administrative division code"
            raise where.error(message, row=row, field="community_code")


def _check_unique(values: pd.Series, where: _Where, field: str) -> None:
    duplicated = values.duplicated(keep=False) & values.notna()
    if not duplicated.any():
        return
    first = _first(duplicated)
    value = values.iloc[first]
    second = next(row for row in range(first + 1, len(values)) if values.iloc[row] == value)
    message = f"duplicate {field} '{value}' in rows {where.row(first)} and {where.row(second)}"
    raise where.error(message, row=second, field=field)


def _counts(frame: pd.DataFrame, field: str, where: _Where, *, minimum: int) -> pd.Series:
    """A whole-number column as nullable Int64; absent column → all missing; bad cells raise."""
    if field not in frame.columns:
        return pd.Series(pd.array([pd.NA] * len(frame), dtype="Int64"), index=frame.index)
    parsed = [_count(value, field, where, row, minimum) for row, value in enumerate(frame[field])]
    return pd.Series(pd.array(parsed, dtype="Int64"), index=frame.index)


def _count(value: object, field: str, where: _Where, row: int, minimum: int) -> int | None:
    if isinstance(value, str):
        value = value.strip() or None
    if _is_missing(value):
        return None
    number = _as_number(value)
    if number is None or not math.isfinite(number):
        raise where.error(f"{field} must be a number, got '{value}'", row=row, field=field)
    if not number.is_integer():
        raise where.error(f"{field} must be a whole number, got {value}", row=row, field=field)
    if number < minimum:
        raise where.error(f"{field} must be {minimum} or more, got {value}", row=row, field=field)
    return int(number)


def _as_number(value: object) -> float | None:
    if isinstance(value, bool | np.bool_):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _flags(frame: pd.DataFrame, field: str) -> pd.Series:
    if field not in frame.columns:
        return pd.Series(False, index=frame.index, dtype=bool)
    flags = [not _is_missing(v) and str(v).strip().lower() in _TRUE for v in frame[field]]
    return pd.Series(flags, index=frame.index, dtype=bool)


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy(dtype=bool))[0])


# ------------------------------------------------------------------------------------------ spatial joins


def _containing(buildings: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, key: str) -> pd.Series:
    """For each building, the ``key`` values of the areas holding its representative point, in area order."""
    points = gpd.GeoDataFrame(geometry=buildings.geometry.representative_point(), crs=buildings.crs)
    joined = gpd.sjoin(points, areas[[key, "geometry"]], predicate="within", how="inner")
    joined = joined.sort_values("index_right", kind="stable")
    hits = joined.groupby(level=0)[key].agg(list)
    return pd.Series([hits.get(row, []) for row in buildings.index], index=buildings.index, dtype=object)


def _assign_communities(
    buildings: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, where: _Where
) -> gpd.GeoDataFrame:
    """Fill or correct community_code from where each building lies; reject buildings outside every one."""
    hits = _containing(buildings, communities, "community_code")
    _reject_outside(buildings, hits, where)
    given = buildings["community_code"]
    codes = [_choose_community(code, found) for code, found in zip(given, hits, strict=True)]
    moved = sum(code is not None and code != chosen for code, chosen in zip(given, codes, strict=True))
    if moved:
        log.warning(
            "%s: %d buildings lie in another community than their community_code says; "
            "used the community they lie in",
            where.file,
            moved,
        )
    overlapping = int((given.isna() & (hits.map(len) > 1)).sum())
    if overlapping:
        log.warning("%s: %d buildings lie in several communities; took the first", where.file, overlapping)
    result = buildings.copy()
    result["community_code"] = pd.Series(codes, index=buildings.index, dtype=object)
    _check_known_codes(result["community_code"], communities, where)
    return result


def _choose_community(given: str | None, found: list[str]) -> str:
    """The code a building lies in when unambiguous or none is given, else the given one."""
    if given is None or len(found) == 1:
        return found[0]
    return given


def _reject_outside(buildings: gpd.GeoDataFrame, hits: pd.Series, where: _Where) -> None:
    outside = hits.map(len) == 0
    if not outside.any():
        return
    ids = buildings.loc[outside, "building_id"].tolist()
    listed = ", ".join(ids[:_MAX_LISTED]) + (", …" if len(ids) > _MAX_LISTED else "")
    raise where.error(f"{len(ids)} buildings lie outside every community: {listed}")


def _check_known_codes(codes: pd.Series, communities: gpd.GeoDataFrame, where: _Where) -> None:
    known = set(communities["community_code"])
    for row, code in enumerate(codes):
        if code not in known:
            message = f"community_code '{code}' is not in the communities layer"
            raise where.error(message, row=row, field="community_code")


def _fill_compounds(buildings: gpd.GeoDataFrame, compounds: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    missing = buildings["compound_id"].isna()
    if not missing.any():
        return buildings
    hits = _containing(buildings, compounds, "compound_id")
    ids = [
        (found[0] if found else None) if given is None else given
        for given, found in zip(buildings["compound_id"], hits, strict=True)
    ]
    result = buildings.copy()
    result["compound_id"] = pd.Series(ids, index=buildings.index, dtype=object)
    return result


# ------------------------------------------------------------------------------------------- households


def _estimate_households(buildings: gpd.GeoDataFrame, rules: GridRules) -> gpd.GeoDataFrame:
    """Fill missing households from footprint area × floors / ``rules.m2_per_household``."""
    missing = buildings["households"].isna()
    result = buildings.copy()
    if missing.any():
        metric = buildings.geometry[missing].to_crs(local_metric_crs(buildings))
        floors = buildings.loc[missing, "floors"]
        no_floors = int(floors.isna().sum())
        if no_floors:
            log.warning(
                "%d buildings without households have no floors either; counted as 1 floor", no_floors
            )
        area = metric.area.to_numpy() * floors.fillna(1).to_numpy(dtype=float)
        estimate = np.floor(area / rules.m2_per_household + 0.5).astype("int64")
        result.loc[missing, "households"] = estimate
        log.info("estimated households of %d buildings from footprint area and floors", int(missing.sum()))
    result["households"] = result["households"].astype("int64")
    result["households_estimated"] = (
        buildings["households_estimated"].to_numpy(dtype=bool) | missing.to_numpy()
    )
    return result


# -------------------------------------------------------------------------------------------- registers


def read_register(path: str | Path, buildings: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, RegisterReport]:
    """Apply a household register (CSV or XLSX) to buildings.

    The register has columns ``building_id`` and ``households`` and optionally ``floors`` and ``units``.
    CSV may be UTF-8 (with or without BOM) or GB18030.

    Args:
        path: the register file.
        buildings: buildings in the :data:`gis.model.BUILDING_COLUMNS` contract.

    Returns:
        A copy of the buildings with households (and given floors, units) replaced for matched building_ids,
        ``households_estimated`` False for them; and the report of matched and unmatched register rows.

    Raises:
        DistrictError: the file is missing or unreadable, lacks a column, or holds a bad or duplicate value.
    """
    path = Path(path)
    where = _Where(str(path), row_base=2)
    table = _read_table(path, where)
    _require_columns(table, ("building_id", "households"), where)
    ids = _identifiers(table["building_id"], where, "building_id", required=True)
    _check_unique(ids, where, "building_id")
    values = {field: _counts(table, field, where, minimum=m) for field, m in (("floors", 1), ("units", 1))}
    households = _counts(table, "households", where, minimum=0)
    if households.isna().any():
        raise where.error("households is empty", row=_first(households.isna()), field="households")
    values["households"] = households
    matched = ids.isin(set(buildings["building_id"]))
    result = _merge_register(buildings, ids[matched], {k: v[matched] for k, v in values.items()})
    unmatched = [int(row) for row in np.flatnonzero(~matched.to_numpy())]
    report = RegisterReport(
        matched=int(matched.sum()),
        unmatched_rows=tuple(where.row(row) for row in unmatched),
        unmatched_ids=tuple(str(ids.iloc[row]) for row in unmatched),
    )
    return result, report


def _apply_register(path: str | Path, buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    result, report = read_register(path, buildings)
    log.info("%s: register matched %d buildings", path, report.matched)
    if report.unmatched_rows:
        rows = ", ".join(str(row) for row in report.unmatched_rows[:_MAX_LISTED])
        log.warning(
            "%s: %d register rows name no known building (rows %s)", path, len(report.unmatched_rows), rows
        )
    return result


def _merge_register(
    buildings: gpd.GeoDataFrame, ids: pd.Series, values: Mapping[str, pd.Series]
) -> gpd.GeoDataFrame:
    result = buildings.copy()
    position = pd.Series(range(len(result)), index=result["building_id"].to_numpy())
    rows = position.loc[ids.to_numpy()].to_numpy()
    for field, column in values.items():
        given = column.notna().to_numpy()
        target = result.columns.get_loc(field)
        result.iloc[rows[given], target] = column[given].astype("int64").to_numpy()
    result["households"] = result["households"].astype("int64")
    estimated = result["households_estimated"].to_numpy(dtype=bool).copy()
    estimated[rows] = False
    result["households_estimated"] = estimated
    return result


def _read_table(path: Path, where: _Where) -> pd.DataFrame:
    if not path.is_file():
        raise DistrictError("file not found", file=str(path))
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".csv": _read_csv,
        ".txt": _read_csv,
        ".xlsx": _read_xlsx,
        ".xlsm": _read_xlsx,
    }
    reader = readers.get(suffix)
    if reader is None:
        raise where.error(f"unsupported register format '{suffix}'; use CSV or XLSX")
    try:
        table = reader(path)
    except Exception as exc:
        raise where.error(f"cannot read register: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table.reset_index(drop=True)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except UnicodeDecodeError:
        return pd.read_csv(path, dtype=str, encoding="gb18030")


def _read_xlsx(path: Path) -> pd.DataFrame:
    return pd.read_excel(path, dtype=object, engine="openpyxl")


# ------------------------------------------------------------------------------------------------ writing


def write_layers(path: str | Path, layers: Mapping[str, pd.DataFrame]) -> None:
    """Write frames as the layers of a new GeoPackage, atomically.

    GeoDataFrames become feature layers and plain DataFrames attribute tables. The file is written next to
    ``path`` under a temporary name and moved into place only when every layer is written, so a failure
    leaves an existing file at ``path`` untouched (and no temporary file behind).

    Args:
        path: the GeoPackage to create or replace.
        layers: layer name → frame, written in order.
    """
    path = Path(path)
    if not layers:
        raise ValueError("write_layers needs at least one layer")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.gpkg")
    try:
        for name, frame in layers.items():
            pyogrio.write_dataframe(frame, temporary, layer=name, driver="GPKG")
        os.replace(temporary, path)
    except BaseException:
        for leftover in path.parent.glob(f"{temporary.name}*"):
            leftover.unlink(missing_ok=True)
        raise


def write_plan(plan: GridPlan, path: str | Path) -> None:
    """Write a plan GeoPackage: layers grids, microgrids, building_units, report and the rules table."""
    write_layers(
        path,
        {
            "grids": plan.grids,
            "microgrids": plan.microgrids,
            "building_units": plan.building_units,
            "report": plan.report,
            RULES_LAYER: pd.DataFrame([asdict(plan.rules)]),
        },
    )


def gpkg_layers(path: Path, error: Callable[[str], Exception], *, what: str = "file") -> set[str]:
    """The layer names of the GeoPackage at ``path``.

    Raises:
        Exception: ``error(message)`` when the file is missing ("PATH: WHAT not found") or cannot be opened
            as a GeoPackage.
    """
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return {str(row[0]) for row in pyogrio.list_layers(path)}
    except Exception as exc:
        raise error(f"{path}: cannot open as a GeoPackage: {exc}") from exc


def read_plan(path: str | Path) -> GridPlan:
    """Read a plan GeoPackage written by :func:`write_plan` (or edited outside, keeping its contract).

    Raises:
        PlanError: the file is missing or unreadable, or a layer or column of the contract is missing.
    """
    path = Path(path)
    present = gpkg_layers(path, PlanError)
    missing = [layer for layer in PLAN_LAYERS if layer not in present]
    if missing:
        raise PlanError(f"{path}: missing layer(s) {', '.join(missing)}; layers present: {sorted(present)}")
    return GridPlan(
        grids=_read_plan_layer(path, "grids", GRID_COLUMNS),
        microgrids=_read_plan_layer(path, "microgrids", MICROGRID_COLUMNS),
        building_units=_read_plan_layer(path, "building_units", UNIT_COLUMNS),
        report=pyogrio.read_dataframe(path, layer="report", read_geometry=False),
        rules=_read_rules(path) if RULES_LAYER in present else GridRules(),
    )


def _read_plan_layer(path: Path, layer: str, columns: tuple[str, ...]) -> gpd.GeoDataFrame:
    frame = gpd.read_file(path, layer=layer, engine="pyogrio")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PlanError(
            f"{path}: layer {layer} lacks column(s) {', '.join(missing)}; has {list(frame.columns)}"
        )
    try:
        return _plan_dtypes(frame)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{path}: layer {layer}: {exc}") from exc


def _plan_dtypes(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    for column in frame.columns.intersection(_PLAN_INTS):
        frame[column] = frame[column].astype("int64")
    for column in frame.columns.intersection(_PLAN_NULLABLE_INTS):
        frame[column] = frame[column].astype("Int64")
    for column in frame.columns.intersection(_PLAN_CODES):
        frame[column] = pd.Series([_identifier(v) for v in frame[column]], index=frame.index, dtype=object)
    for column in frame.columns.intersection(_PLAN_TEXTS):
        frame[column] = _texts(frame[column])
    return frame


def _read_rules(path: Path) -> GridRules:
    table = pyogrio.read_dataframe(path, layer=RULES_LAYER, read_geometry=False)
    if len(table) != 1:
        raise PlanError(f"{path}: layer {RULES_LAYER} must hold one row, has {len(table)}")
    row = table.iloc[0]
    try:
        return GridRules(
            grid_min=int(row["grid_min"]),
            grid_max=int(row["grid_max"]),
            micro_min=int(row["micro_min"]),
            micro_max=int(row["micro_max"]),
            m2_per_household=float(row["m2_per_household"]),
            seed=int(row["seed"]),
            # plans written before boundary straightening existed have no such column: today's default
            straighten_boundaries=bool(row.get("straighten_boundaries", GridRules.straighten_boundaries)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path}: layer {RULES_LAYER}: {exc}") from exc
