"""Map tiles served from the database: plan and district vector tiles, flag tiles and offline basemaps.

A :class:`TileService` (one per app, on ``app.state``) turns stored rows into a
:class:`tiles.mvt.VectorTileSource` per (plan version, revision, display CRS) and keeps a bounded LRU of those
sources plus a :class:`tiles.cache.TileCache` of encoded tiles. Every plan edit (moves, lock, split/merge)
bumps ``PlanVersion.revision``, so the next request misses both caches and builds fresh tiles; the older
revision's source and tiles are dropped at once. District layers never change after import and are cached
per district, and so is the prepared geometry (projected, indexed) of the district's buildings and
communities: a new revision rereads the plan's rows and builds only its grids and micro-grids. Flags arrive
live and are encoded per request from the rows in the tile.

The Python encoder serves both backends (SQLite and PostGIS alike): one code path, tested on both. On
PostGIS, ``ST_AsMVT`` with the same layers (``bench/tiles.py`` runs it as a peer) costs more per tile than a
prepared source: median ~20–45 ms a query against ~4 ms of CPU at z14 and ~5–15 ms against ~1.5 ms at z16 on
the 250k-household demo district; it is cheaper only for the first tile of a revision, which pays for the
source. Geometries are WGS-84 in storage; ``crs="gcj02"`` shifts them into GCJ-02 before encoding, for
display on a Gaode/Tencent basemap only (which ``ST_AsMVT`` could not do).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import geopandas as gpd
import mercantile
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from sqlalchemy import LargeBinary, func, literal_column, select, type_coerce
from sqlalchemy.orm import Session

from api.districts import load_district
from api.errors import ForbiddenError, InputError, NotFoundError
from api.models import (
    Building,
    BuildingUnit,
    Community,
    Compound,
    District,
    Flag,
    Flight,
    Grid,
    MicroGrid,
    Plan,
    PlanVersion,
    Road,
    Zone,
)
from api.models import Frame as FrameRow
from api.security import Principal
from api.spatial import in_bbox
from drone.cameras import PRESETS
from drone.model import Frame, Pose
from tiles.cache import TileCache, TileKey
from tiles.errors import TileOutsideBoundsError
from tiles.gcj02 import geometry_wgs84_to_gcj02
from tiles.mvt import LayerGeometry, LayerSpec, VectorTileSource, buildings_with_codes, check_tile
from tiles.pmtiles import basemap_layers, build_basemap
from tiles.raster import OrthoMosaic

WGS84 = "EPSG:4326"
Crs = Literal["wgs84", "gcj02"]
#: zoom range advertised in TileJSON (tiles outside it are still served)
MIN_ZOOM, MAX_ZOOM = 10, 18
#: tiles beyond this zoom are refused: nothing SkyGrid draws needs more detail
SERVE_MAX_ZOOM = 22

PLAN_SPECS: Mapping[str, LayerSpec] = {
    "buildings": LayerSpec(
        ("building_id", "households", "floors", "grid_code", "microgrid_code", "community_code"),
        13,
        0.5,
        id_column="id",
    ),
    "grids": LayerSpec(("grid_code", "community_code", "households", "status", "locked"), 0),
    "microgrids": LayerSpec(("microgrid_code", "grid_code", "households", "status"), 12),
    "communities": LayerSpec(("community_code", "name"), 0),
}
#: plan layers whose geometry is the district's (shared by every source of the district's plans)
_DISTRICT_PLAN_LAYERS = ("buildings", "communities")
#: zone kinds as stored (api.districts.ZONE_LAYERS) → tile layer name
ZONE_KINDS = {
    "parking": "parking",
    "fire_lane": "fire_lanes",
    "green": "green",
    "public_space": "public_space",
    "no_fly": "no_fly",
}
DISTRICT_SPECS: Mapping[str, LayerSpec] = {
    "communities": LayerSpec(("community_code", "name"), 0),
    "compounds": LayerSpec(("compound_id", "name"), 12),
    "roads": LayerSpec(("kind",), 10),
    "parking": LayerSpec(("zone_id",), 14),
    "fire_lanes": LayerSpec(("zone_id",), 14),
    "green": LayerSpec(("zone_id",), 13),
    "public_space": LayerSpec(("zone_id",), 13),
    "no_fly": LayerSpec(("zone_id",), 0),
}
FLAG_SPECS: Mapping[str, LayerSpec] = {
    "flags": LayerSpec(("flag_id", "category", "status", "score", "grid_code"), 0, id_column="flag_id"),
}
#: prepared orthomosaics kept (each holds its frames' images)
_MAX_MOSAICS = 4
_ORTHO_CAMERA = PRESETS["mavic3e"].camera
_FIELD_TYPES = {
    "households": "Number",
    "floors": "Number",
    "score": "Number",
    "flag_id": "Number",
    "locked": "Boolean",
}
#: how far around a tile flags are looked up in GCJ-02 mode (the offset is at most ~700 m)
_GCJ_PAD_DEG = 0.01


@dataclass(frozen=True)
class TileAddress:
    """One XYZ tile, checked on construction.

    Raises:
        InputError: the tile is not in the pyramid, or deeper than :data:`SERVE_MAX_ZOOM`.
    """

    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        where = {"tile": f"{self.z}/{self.x}/{self.y}"}
        if self.z > SERVE_MAX_ZOOM:
            raise InputError(f"zoom {self.z} is deeper than the {SERVE_MAX_ZOOM} served", where=where)
        try:
            check_tile(self.z, self.x, self.y)
        except TileOutsideBoundsError as error:
            raise InputError(str(error), where=where) from None


@dataclass(frozen=True)
class PlanRef:
    """A plan version as tiles see it: where it lives and which revision is current."""

    plan_id: int
    number: int
    version_id: int
    revision: int
    district_id: int
    district_code: str


@dataclass(frozen=True)
class TileJson:
    """What a TileJSON document needs besides the tile URL."""

    bounds: tuple[float, float, float, float]
    specs: Mapping[str, LayerSpec]


def tile_etag(data: bytes) -> str:
    """A strong HTTP ETag of tile bytes."""
    return '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


class TileService:
    """Sources and encoded tiles of plans and districts, bounded and invalidated by plan revision.

    Args:
        max_sources: the most prepared sources kept (each holds a district's layers, projected and indexed).
        max_tile_bytes: the most bytes of encoded tiles kept.
    """

    def __init__(self, *, max_sources: int = 16, max_tile_bytes: int = 128 * 2**20) -> None:
        self._max_sources = max_sources
        self._sources: OrderedDict[str, VectorTileSource] = OrderedDict()
        self._districts: OrderedDict[int, dict[str, gpd.GeoDataFrame]] = OrderedDict()
        self._shapes: OrderedDict[tuple[int, Crs], dict[str, LayerGeometry]] = OrderedDict()
        self._versions: OrderedDict[tuple[int, int], PlanRef] = OrderedDict()  # (plan, number) → last ref
        self._tiles = TileCache(max_bytes=max_tile_bytes)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._basemap_lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._mosaics: OrderedDict[tuple[int, int, int], OrthoMosaic] = OrderedDict()

    @property
    def tile_cache(self) -> TileCache:
        """The cache of encoded tiles (for statistics)."""
        return self._tiles

    def plan_tile(self, session: Session, ref: PlanRef, tile: TileAddress, crs: Crs) -> bytes:
        """Tile of a plan version at its current revision (``b""`` when empty)."""
        key = _plan_key(ref.version_id, ref.revision, crs)
        source = self._source(key, lambda: self._build_plan(session, ref, crs), stale=_older_revisions(ref))
        with self._lock:
            self._versions[(ref.plan_id, ref.number)] = ref
            self._versions.move_to_end((ref.plan_id, ref.number))
            while len(self._versions) > self._max_sources:
                self._versions.popitem(last=False)
        return self._tiles.get_or_render(_key(key, tile), lambda: self._render(source, tile))

    def known_plan_tile(
        self,
        who: Principal,
        plan_id: int,
        number: int,
        revision: int,
        tile: TileAddress,
        crs: Crs,
        *,
        cached_only: bool = False,
    ) -> bytes | None:
        """Tile of a plan version at ``revision`` from a source this service holds, without asking the
        database (the pages name the revision in every tile URL, and a revision's tiles never change); None
        when no source of that revision is here (a new revision, or one nobody asked for yet) or, with
        ``cached_only``, when the tile would have to be made (so that a caller on the event loop never
        renders).

        Raises:
            ForbiddenError: the plan's district is outside the caller's territory.
        """
        with self._lock:
            ref = self._versions.get((plan_id, number))
        if ref is None:
            return None
        key = _plan_key(ref.version_id, revision, crs)
        source = self._cached_source(key)
        if source is None:
            return None
        _check_plan_territory(who, plan_id, ref.district_code)
        if cached_only:
            return self._tiles.probe(_key(key, tile))
        return self._tiles.get_or_render(_key(key, tile), lambda: self._render(source, tile))

    def district_tile(self, session: Session, district_id: int, tile: TileAddress, crs: Crs) -> bytes:
        """Tile of a district's own layers: communities, compounds, roads and zones."""
        key = f"district:{district_id}:{crs}"
        source = self._source(
            key, lambda: _build(self._district_layers(session, district_id), DISTRICT_SPECS, crs)
        )
        return self._tiles.get_or_render(_key(key, tile), lambda: self._render(source, tile))

    def _render(self, source: VectorTileSource, tile: TileAddress) -> bytes:
        """Encode a tile, one at a time: a tile is mostly Python and numpy work under the GIL, so tiles made
        at once only take turns with the GIL (and pay for each hand-over); made in turn, each is done
        sooner (on the 250k district, 4 requests at a time: 10–30 % less server CPU a tile, lower p95)."""
        with self._render_lock:
            return source.tile(tile.z, tile.x, tile.y)

    def _source(
        self, key: str, build: Callable[[], VectorTileSource], *, stale: Callable[[str], bool] | None = None
    ) -> VectorTileSource:
        """The source under ``key``, built once even when many tile requests ask for it at the same time."""
        found = self._cached_source(key)
        if found is not None:
            return found
        with self._build_lock:
            found = self._cached_source(key)
            if found is None:
                found = build()
                self._store_source(key, found, stale)
        return found

    def _cached_source(self, key: str) -> VectorTileSource | None:
        with self._lock:
            source = self._sources.get(key)
            if source is not None:
                self._sources.move_to_end(key)
            return source

    def _store_source(self, key: str, source: VectorTileSource, stale: Callable[[str], bool] | None) -> None:
        with self._lock:
            doomed = [k for k in self._sources if stale is not None and stale(k)]
            self._sources[key] = source
            while len(self._sources) > self._max_sources:
                doomed.append(next(iter(self._sources)))
                self._sources.pop(doomed[-1])
            for old in doomed:
                self._sources.pop(old, None)
        for old in doomed:
            self._tiles.invalidate(old)

    def _build_plan(self, session: Session, ref: PlanRef, crs: Crs) -> VectorTileSource:
        district = self._district_layers(session, ref.district_id)
        frames = plan_frames(session, ref.version_id, district["buildings"], district["communities"])
        return _build(frames, PLAN_SPECS, crs, self._district_shapes(ref.district_id, district, crs))

    def _district_shapes(
        self, district_id: int, layers: dict[str, gpd.GeoDataFrame], crs: Crs
    ) -> dict[str, LayerGeometry]:
        """The district's buildings and communities projected and indexed once for every plan source: a
        plan edit changes the grid codes of buildings, never their footprints, so a new revision's source
        reads its properties and reuses these (and the simplifications its tiles already made)."""
        key = (district_id, crs)
        with self._lock:
            shapes = self._shapes.get(key)
            if shapes is not None:
                self._shapes.move_to_end(key)
                return shapes
        shapes = {
            name: LayerGeometry.of(name, _in_crs(layers[name], crs), PLAN_SPECS[name])
            for name in _DISTRICT_PLAN_LAYERS
        }
        with self._lock:
            self._shapes[key] = shapes
            while len(self._shapes) > self._max_sources:
                self._shapes.popitem(last=False)
        return shapes

    def _district_layers(self, session: Session, district_id: int) -> dict[str, gpd.GeoDataFrame]:
        with self._lock:
            layers = self._districts.get(district_id)
            if layers is not None:
                self._districts.move_to_end(district_id)
                return layers
        layers = district_frames(session, district_id)
        with self._lock:
            self._districts[district_id] = layers
            while len(self._districts) > self._max_sources:
                self._districts.popitem(last=False)
        return layers

    def basemap(self, session: Session, district_id: int, data_dir: Path) -> Path:
        """The district's offline basemap package, built with tippecanoe the first time it is asked for.

        Raises:
            PackageError: tippecanoe is missing or failed.
        """
        path = basemap_path(data_dir, district_id)
        with self._basemap_lock:
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                green = self._district_layers(session, district_id)["green"]
                build_basemap(basemap_layers(load_district(session, district_id), green=green), path)
        return path

    def ortho_tile(self, session: Session, flight_id: int, tile: TileAddress, data_dir: Path) -> bytes | None:
        """A flight's orthomosaic tile as PNG, or None where no frame covers it.

        The mosaic is prepared once per set of frames (a flight that gains frames gets a new one).
        """
        frames = frame_rows(session, flight_id)
        key = (flight_id, len(frames), max((f.id for f in frames), default=0))
        with self._lock:
            mosaic = self._mosaics.get(key)
        if mosaic is None:
            mosaic = OrthoMosaic.from_frames(posed_frames(frames, data_dir))
            with self._lock:
                self._mosaics[key] = mosaic
                while len(self._mosaics) > _MAX_MOSAICS:
                    self._mosaics.popitem(last=False)
        return mosaic.tile(tile.z, tile.x, tile.y)


def frame_rows(session: Session, flight_id: int) -> list[FrameRow]:
    """A flight's frames with a position, in order.

    Raises:
        NotFoundError: no such flight.
    """
    if session.get(Flight, flight_id) is None:
        raise NotFoundError(f"flight {flight_id} does not exist", where={"flight_id": flight_id})
    stmt = select(FrameRow).where(
        FrameRow.flight_id == flight_id, FrameRow.lon.is_not(None), FrameRow.lat.is_not(None)
    )
    return list(session.scalars(stmt.order_by(FrameRow.id)))


def posed_frames(rows: list[FrameRow], data_dir: Path) -> list[Frame]:
    """Stored frames as posed nadir frames (the table keeps position and height only: yaw 0, gimbal down,
    the Mavic 3E sensor at the image's own size); unreadable images and paths outside the data folder are
    left out."""
    root = data_dir.resolve()
    out = []
    for row in rows:
        path = (root / row.path).resolve()
        image = cv2.imread(str(path)) if path.is_relative_to(root) and path.is_file() else None
        if image is None:
            continue
        pose = Pose(
            lat_deg=float(row.lat or 0),
            lon_deg=float(row.lon or 0),
            altitude_agl_m=float(row.altitude_m or 80),
        )
        camera = replace(_ORTHO_CAMERA, image_width_px=image.shape[1], image_height_px=image.shape[0])
        taken = row.taken_at or datetime.fromtimestamp(row.id, UTC)
        pixels: npt.NDArray[np.uint8] = np.asarray(image, dtype=np.uint8)
        out.append(Frame(str(row.id), taken, pixels, pose, camera, row.path))
    return out


def _older_revisions(ref: PlanRef) -> Callable[[str], bool]:
    """Whether a source key is of the same plan version at an older revision (a late request for an older
    revision must not evict the newer one)."""
    prefix = f"plan:{ref.version_id}:"

    def older(key: str) -> bool:
        return key.startswith(prefix) and int(key.split(":")[2]) < ref.revision

    return older


def _plan_key(version_id: int, revision: int, crs: Crs) -> str:
    return f"plan:{version_id}:{revision}:{crs}"


def _key(version: str, tile: TileAddress) -> TileKey:
    return TileKey((), version, tile.z, tile.x, tile.y)


def _build(
    frames: Mapping[str, gpd.GeoDataFrame],
    specs: Mapping[str, LayerSpec],
    crs: Crs,
    shapes: Mapping[str, LayerGeometry] | None = None,
) -> VectorTileSource:
    """A source of ``frames`` in ``crs``; layers in ``shapes`` come with their geometry prepared already."""
    prepared = shapes or {}
    shown = {
        name: frames[name] if name in prepared else _in_crs(frames[name], crs)
        for name in specs
        if name in frames
    }
    return VectorTileSource.from_frames(shown, specs, geometries=prepared)


def _in_crs(frame: gpd.GeoDataFrame, crs: Crs) -> gpd.GeoDataFrame:
    return geometry_wgs84_to_gcj02(frame) if crs == "gcj02" else frame


# --- reading layers --------------------------------------------------------------------------------------


def _rows(session: Session, model: type[Any], columns: tuple[str, ...], *where: Any) -> gpd.GeoDataFrame:
    """Rows of ``model`` as a WGS-84 frame; geometries are read as WKB and parsed in one vectorised call
    (parsing row by row costs ~60 µs a geometry in shapely's argument handling)."""
    stmt = (
        select(*(getattr(model, c) for c in columns), _wkb(session, model)).where(*where).order_by(model.id)
    )
    rows = session.execute(stmt).all()
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    wkb = np.array([None if r[-1] is None else bytes(r[-1]) for r in rows], dtype=object)
    return gpd.GeoDataFrame(data, geometry=shapely.from_wkb(wkb), crs=WGS84)


def _wkb(session: Session, model: type[Any]) -> Any:
    """The geometry column of ``model`` as WKB bytes on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(func.ST_AsBinary(model.geom), LargeBinary)
    return type_coerce(literal_column(f"{model.__tablename__}.geom"), LargeBinary)


def district_frames(session: Session, district_id: int) -> dict[str, gpd.GeoDataFrame]:
    """A district's stored layers in WGS-84, by tile layer name (zones split by kind)."""
    buildings = _rows(
        session,
        Building,
        ("id", "building_id", "households", "floors", "community_code"),
        Building.district_id == district_id,
    )
    buildings["floors"] = buildings["floors"].astype("Int64")
    communities = _rows(session, Community, ("code", "name"), Community.district_id == district_id)
    zones = _rows(session, Zone, ("kind", "zone_id"), Zone.district_id == district_id)
    frames = {
        "buildings": buildings,
        "communities": communities.rename(columns={"code": "community_code"}),
        "compounds": _rows(session, Compound, ("compound_id", "name"), Compound.district_id == district_id),
        "roads": _rows(session, Road, ("kind",), Road.district_id == district_id),
    }
    for kind, layer in ZONE_KINDS.items():
        frames[layer] = zones[zones["kind"] == kind].drop(columns="kind").reset_index(drop=True)
    return frames


def plan_frames(
    session: Session, version_id: int, buildings: gpd.GeoDataFrame, communities: gpd.GeoDataFrame
) -> dict[str, gpd.GeoDataFrame]:
    """The plan layers of a version: buildings with their (largest part's) codes, grids, micro-grids and
    communities.

    Only each building's largest unit is read (ranked in SQL): a version has ~9 units a building, and
    reading them all is the costliest part of a new revision's tiles.
    """
    names = ("building_id", "households", "grid_code", "microgrid_code")
    order = (BuildingUnit.households.desc(), BuildingUnit.id)
    ranked = (
        select(
            *(getattr(BuildingUnit, name) for name in names),
            func.row_number().over(partition_by=BuildingUnit.building_id, order_by=order).label("rank"),
        )
        .where(BuildingUnit.version_id == version_id)
        .subquery()
    )
    unit_rows = session.execute(select(*(ranked.c[name] for name in names)).where(ranked.c.rank == 1)).all()
    units = pd.DataFrame({name: [row[i] for row in unit_rows] for i, name in enumerate(names)})
    grids = _rows(
        session,
        Grid,
        ("grid_code", "community_code", "households", "status", "locked"),
        Grid.version_id == version_id,
    )
    micros = _rows(
        session,
        MicroGrid,
        ("microgrid_code", "grid_code", "households", "status"),
        MicroGrid.version_id == version_id,
    )
    return {
        "buildings": buildings_with_codes(buildings, units),
        "grids": grids,
        "microgrids": micros,
        "communities": communities,
    }


def flag_frame(session: Session, territory: str, tile: TileAddress, crs: Crs) -> gpd.GeoDataFrame:
    """The flags of a territory (a district, or a user's part of it) in and around a tile (WGS-84)."""
    bounds = mercantile.bounds(tile.x, tile.y, tile.z)
    pad = _GCJ_PAD_DEG if crs == "gcj02" else (bounds.east - bounds.west) / 8
    bbox = (bounds.west - pad, bounds.south - pad, bounds.east + pad, bounds.north + pad)
    stmt = in_bbox(session, Flag, bbox).where(Flag.territory.startswith(territory)).order_by(Flag.id)
    flags = session.scalars(stmt).all()
    return gpd.GeoDataFrame(
        {
            "flag_id": [f.id for f in flags],
            "category": [f.category for f in flags],
            "status": [f.status for f in flags],
            "score": [f.score for f in flags],
            "grid_code": [f.grid_code for f in flags],
        },
        geometry=[f.geom for f in flags],
        crs=WGS84,
    )


def flag_tile(session: Session, territory: str, tile: TileAddress, crs: Crs) -> bytes:
    """Flags of a district in a tile, encoded now (flags arrive live, so they are not cached)."""
    frame = flag_frame(session, territory, tile, crs)
    if frame.empty:
        return b""
    return _build({"flags": frame}, FLAG_SPECS, crs).tile(tile.z, tile.x, tile.y)


# --- look-ups and scoping --------------------------------------------------------------------------------


def district_in_scope(session: Session, who: Principal, district_id: int) -> District:
    """The district, if the caller's territory overlaps it.

    Raises:
        NotFoundError: no such district.
        ForbiddenError: the district is outside the caller's territory.
    """
    district = session.get(District, district_id)
    if district is None:
        raise NotFoundError(f"district {district_id} does not exist", where={"district_id": district_id})
    if not who.overlaps(district.code):
        raise ForbiddenError(
            f"district {district.code} is outside your territory {who.territory} / 超出管辖范围",
            where={"district_id": district_id, "territory": who.territory},
        )
    return district


def plan_ref(session: Session, who: Principal, plan_id: int, number: int) -> PlanRef:
    """The plan version's tile reference, checked against the caller's territory (one query: every tile
    request asks).

    Raises:
        NotFoundError: no such plan or version.
        ForbiddenError: the plan's district is outside the caller's territory.
    """
    row = session.execute(
        select(Plan.district_id, District.code, PlanVersion.id, PlanVersion.revision)
        .join(District, District.id == Plan.district_id)
        .outerjoin(PlanVersion, (PlanVersion.plan_id == Plan.id) & (PlanVersion.number == number))
        .where(Plan.id == plan_id)
    ).first()
    if row is None:
        raise NotFoundError(f"plan {plan_id} does not exist", where={"plan_id": plan_id})
    district_id, code, version_id, revision = row
    _check_plan_territory(who, plan_id, code)
    if version_id is None:
        raise NotFoundError(
            f"plan {plan_id} has no version {number}", where={"plan_id": plan_id, "version": number}
        )
    return PlanRef(plan_id, number, int(version_id), int(revision), int(district_id), str(code))


def _check_plan_territory(who: Principal, plan_id: int, district_code: str) -> None:
    if not who.overlaps(district_code):
        raise ForbiddenError(
            f"district {district_code} is outside your territory {who.territory} / 超出管辖范围",
            where={"plan_id": plan_id, "territory": who.territory},
        )


def district_bounds(session: Session, district_id: int) -> tuple[float, float, float, float]:
    """The lon/lat box of a district's communities (the whole world when it has none)."""
    row = session.execute(
        select(
            func.min(Community.minx),
            func.min(Community.miny),
            func.max(Community.maxx),
            func.max(Community.maxy),
        ).where(Community.district_id == district_id)
    ).one()
    if row[0] is None:
        return (-180.0, -85.0511, 180.0, 85.0511)
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def tilejson(url_template: str, meta: TileJson, *, name: str) -> dict[str, Any]:
    """A TileJSON 3.0 document for ``url_template`` (``…/{z}/{x}/{y}.mvt?…``)."""
    west, south, east, north = meta.bounds
    return {
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [url_template],
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, 14],
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "vector_layers": [
            {
                "id": layer,
                "fields": {column: _FIELD_TYPES.get(column, "String") for column in spec.properties},
                "minzoom": max(spec.min_zoom, MIN_ZOOM),
                "maxzoom": MAX_ZOOM,
            }
            for layer, spec in meta.specs.items()
        ],
    }


def basemap_path(data_dir: Path, district_id: int) -> Path:
    """Where a district's offline basemap package is kept."""
    return data_dir / "basemaps" / f"district-{district_id}.pmtiles"


@dataclass(frozen=True)
class ByteRange:
    """The part of a file an HTTP ``Range`` header asks for (``end`` inclusive).

    ``partial`` is False when the whole file is to be sent (no header, or one this server ignores: another
    unit, several ranges, garbage); ``satisfiable`` is False when the range starts past the end (HTTP 416).
    """

    start: int
    end: int
    partial: bool
    satisfiable: bool = True

    @property
    def length(self) -> int:
        """Bytes in the range."""
        return self.end - self.start + 1


def byte_range(header: str | None, size: int) -> ByteRange:
    """Parse a single-range ``Range: bytes=…`` header against a file of ``size`` bytes (RFC 9110 §14)."""
    whole = ByteRange(0, size - 1, partial=False)
    if header is None or not header.startswith("bytes=") or "," in header:
        return whole
    first, _, last = header.removeprefix("bytes=").strip().partition("-")
    if (
        not (first.isdigit() or last.isdigit())
        or (first and not first.isdigit())
        or (last and not last.isdigit())
    ):
        return whole
    if not first:  # suffix: the last N bytes
        count = int(last)
        return ByteRange(max(size - count, 0), size - 1, True, satisfiable=count > 0 and size > 0)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return whole
    return ByteRange(start, end, True, satisfiable=start < size)
