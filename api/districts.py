"""District import and read-back: from an uploaded GeoPackage or zipped Shapefiles into the database.

The upload is checked by :func:`gis.io.read_district`; its :class:`~gis.errors.DistrictError` becomes an
:class:`~api.errors.InputError` naming the uploaded file, layer, row and field. Rows are written in the
caller's transaction, so a failed import leaves the database as it was.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from api.errors import InputError
from api.geometry import spatial
from api.models import Building, Community, Compound, District, Road, Zone
from api.security import Principal
from gis.errors import DistrictError
from gis.io import read_district
from gis.model import District as GisDistrict

WGS84 = "EPSG:4326"
#: GeoPackage layers imported as zones (layer name → zone kind).
ZONE_LAYERS = {
    "parking": "parking",
    "fire_lanes": "fire_lane",
    "green": "green",
    "public_space": "public_space",
    "no_fly": "no_fly",
}
_BATCH = 2000


def unpack_upload(path: Path, filename: str, work_dir: Path, *, max_bytes: int) -> Path:
    """The path ``read_district`` should read: the GeoPackage itself or the folder of an unzipped archive.

    Raises:
        InputError: the file is neither a GeoPackage nor a zip of layer files, or the zip is unsafe.
    """
    suffix = Path(filename).suffix.lower()
    if suffix == ".gpkg":
        return path
    if suffix != ".zip":
        raise InputError(
            f"{filename}: expected a GeoPackage (.gpkg) or zipped Shapefiles (.zip), got {suffix or 'no suffix'}"
            " / 仅支持 GeoPackage 或 Shapefile 压缩包",
            where={"file": filename},
        )
    return _unzip(path, filename, work_dir, max_bytes)


def _unzip(path: Path, filename: str, work_dir: Path, max_bytes: int) -> Path:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{filename}: not a readable zip archive", where={"file": filename}) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > max_bytes:
            raise InputError(f"{filename}: unpacks to more than {max_bytes} bytes", where={"file": filename})
        for member in members:
            target = (work_dir / member.filename).resolve()
            if not target.is_relative_to(work_dir.resolve()):
                raise InputError(
                    f"{filename}: member {member.filename} escapes the archive", where={"file": filename}
                )
        archive.extractall(work_dir)
    return _layer_folder(work_dir, filename)


def _layer_folder(root: Path, filename: str) -> Path:
    for folder, _dirs, files in os.walk(root):
        if any(Path(f).stem.lower() == "buildings" for f in files):
            return Path(folder)
    raise InputError(
        f"{filename}: no buildings layer (buildings.shp, .geojson or .fgb) in the archive",
        where={"file": filename, "layer": "buildings"},
    )


def read_upload(path: Path, filename: str) -> GisDistrict:
    """Read and check a district, translating gis errors to :class:`InputError` that name the upload."""
    try:
        return read_district(path)
    except DistrictError as error:
        where = {"file": filename, "layer": error.layer, "row": error.row, "field": error.field}
        location = ", ".join(f"{k} {v}" for k, v in where.items() if v is not None)
        raise InputError(f"{location}: {error.message}", where=where) from None


def district_code(communities: pd.Series) -> str:
    """The 6-digit district code shared by the community codes (raises when they span districts)."""
    prefixes = sorted({str(code)[:6] for code in communities})
    if len(prefixes) != 1:
        raise InputError(
            f"communities belong to {len(prefixes)} districts ({', '.join(prefixes[:5])}); import one at a time",
            where={"layer": "communities", "field": "community_code"},
        )
    return prefixes[0]


def store_district(
    session: Session, who: Principal, district: GisDistrict, *, name: str, source: Path, filename: str
) -> District:
    """Write a checked district and its zones (in WGS-84) in the session's transaction."""
    code = district_code(district.communities["community_code"])
    who.require_territory(code, "district")
    row = District(
        name=name, code=code, source=filename, households=district.households, imported_by=who.username
    )
    session.add(row)
    session.flush()
    _insert(session, Community, _community_rows(district.communities.to_crs(WGS84), row.id))
    _insert(session, Building, _building_rows(district.buildings.to_crs(WGS84), row.id))
    if district.compounds is not None:
        _insert(session, Compound, _compound_rows(district.compounds.to_crs(WGS84), row.id))
    if district.roads is not None:
        _insert(session, Road, _road_rows(district.roads.to_crs(WGS84), row.id))
    _insert(session, Zone, _zone_rows(source, row.id))
    return row


def _insert(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        session.execute(insert(model), rows[start : start + _BATCH])


def _text(value: Any) -> str | None:
    return (
        None
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
        else str(value)
    )


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _community_rows(frame: gpd.GeoDataFrame, district_id: int) -> list[dict[str, Any]]:
    return [
        {"district_id": district_id, "code": str(code), "name": str(name), **spatial(geom)}
        for code, name, geom in zip(frame["community_code"], frame["name"], frame.geometry, strict=True)
    ]


def _building_rows(frame: gpd.GeoDataFrame, district_id: int) -> list[dict[str, Any]]:
    records = frame[
        [
            "building_id",
            "households",
            "households_estimated",
            "floors",
            "units",
            "compound_id",
            "community_code",
        ]
    ].to_dict("records")
    return [
        {
            "district_id": district_id,
            "building_id": str(r["building_id"]),
            "households": int(r["households"]),
            "households_estimated": bool(r["households_estimated"]),
            "floors": _int(r["floors"]),
            "units": _int(r["units"]),
            "compound_id": _text(r["compound_id"]),
            "community_code": _text(r["community_code"]),
            **spatial(geom),
        }
        for r, geom in zip(records, frame.geometry, strict=True)
    ]


def _compound_rows(frame: gpd.GeoDataFrame, district_id: int) -> list[dict[str, Any]]:
    return [
        {"district_id": district_id, "compound_id": str(cid), "name": _text(name), **spatial(geom)}
        for cid, name, geom in zip(frame["compound_id"], frame["name"], frame.geometry, strict=True)
    ]


def _road_rows(frame: gpd.GeoDataFrame, district_id: int) -> list[dict[str, Any]]:
    return [
        {"district_id": district_id, "kind": _text(kind), **spatial(geom)}
        for kind, geom in zip(frame["kind"], frame.geometry, strict=True)
        if geom is not None and not geom.is_empty
    ]


def _zone_rows(source: Path, district_id: int) -> list[dict[str, Any]]:
    if source.suffix.lower() != ".gpkg":
        return []
    present = {str(layer) for layer, _kind in pyogrio.list_layers(source)}
    rows: list[dict[str, Any]] = []
    for layer, kind in ZONE_LAYERS.items():
        if layer not in present:
            continue
        frame = gpd.read_file(source, layer=layer, engine="pyogrio").to_crs(WGS84)
        for _, zone in frame.iterrows():
            if zone.geometry is None or zone.geometry.is_empty:
                continue
            rows.append(
                {
                    "district_id": district_id,
                    "kind": kind,
                    "zone_id": _text(zone.get("zone_id")),
                    "compound_id": _text(zone.get("compound_id")),
                    **spatial(zone.geometry),
                }
            )
    return rows


def load_district(session: Session, district_id: int) -> GisDistrict:
    """The stored district as a :class:`gis.model.District` in WGS-84, ready for gridding or validation."""
    buildings = _frame(
        session,
        Building,
        district_id,
        [
            "building_id",
            "households",
            "households_estimated",
            "floors",
            "units",
            "compound_id",
            "community_code",
        ],
    )
    buildings["floors"] = buildings["floors"].astype("Int64")
    buildings["units"] = buildings["units"].astype("Int64")
    communities = _frame(session, Community, district_id, ["code", "name"]).rename(
        columns={"code": "community_code"}
    )
    compounds = _frame(session, Compound, district_id, ["compound_id", "name"])
    roads = _frame(session, Road, district_id, ["kind"])
    return GisDistrict(
        buildings=buildings,
        communities=communities,
        compounds=compounds if len(compounds) else None,
        roads=roads if len(roads) else None,
        source=f"district {district_id}",
    )


def _frame(session: Session, model: type[Any], district_id: int, columns: list[str]) -> gpd.GeoDataFrame:
    stmt = select(*(getattr(model, c) for c in columns), model.geom).where(model.district_id == district_id)
    rows = session.execute(stmt.order_by(model.id)).all()
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    return gpd.GeoDataFrame(data, geometry=[r[-1] for r in rows], crs=WGS84)
