"""What the planner page does to a draft beyond single moves: tallies with the gridding rules checked for just
the grids concerned, moves by building or by grid, merging two grids, splitting one, and re-gridding a
selection of grids with :func:`gis.gridder.make_plan` while the rest of the plan stays as it is.

Every look-up goes through an index of the version (grid code, micro-grid code, building id of the district),
so an edit costs what the grids it touches cost, never what the district costs. Every change is audited and
claims the draft's revision (409 when someone else edited first), in the caller's transaction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from numpy.typing import NDArray
from sqlalchemy import Update, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from api.audit import record
from api.db import transaction
from api.deps import Service
from api.errors import ConflictError, InputError, NotFoundError
from api.models import (
    Building,
    BuildingUnit,
    Community,
    Grid,
    Job,
    MicroGrid,
    Plan,
    PlanVersion,
    Road,
    utcnow,
)
from api.plan_schemas import GridTally, GridWarning, MicroTally, MoveItem
from api.plans import WGS84, Move, claim_revision, get_version, grids_by_code, insert_layers, set_geom
from api.security import Principal
from api.spatial import in_bbox
from gis.gridder import make_plan
from gis.model import STATUS_OK, District, GridPlan, GridRules

log = logging.getLogger(__name__)
#: Pieces of a grid smaller than this (m²) are slivers, not a second piece.
_SLIVER_M2 = 1.0
_M_PER_DEG = 111_320.0
#: About 0.1 m: a community is widened by this before testing that a grid lies inside it.
_SLIVER_BUFFER_DEG = 1e-6


# --- tallies ------------------------------------------------------------------------------------------------


def tallies(session: Session, version: PlanVersion, codes: Iterable[str] | None = None) -> list[GridTally]:
    """Households and rule checks of the version's grids (of ``codes`` only, when given), in code order.

    Plain column reads (no ORM objects, micro-grids without geometry) and one prepared, slightly buffered
    community per community: a whole 250k-household version is tallied in a fraction of a second.
    """
    stmt = select(*_TALLY_COLUMNS).where(Grid.version_id == version.id)
    if codes is not None:
        stmt = stmt.where(Grid.grid_code.in_(set(codes)))
    grids = session.execute(stmt.order_by(Grid.grid_code)).all()
    rules = GridRules(**version.rules)
    micros = _micro_counts(session, version.id, [g.grid_code for g in grids] if codes is not None else None)
    geoms = np.array([g.geom for g in grids], dtype=object)
    connected = np.array([_pieces(geom) <= 1 for geom in geoms], dtype=bool)
    crosses = _crossing(geoms, [g.community_code for g in grids], _community_areas(session, version, grids))
    return [
        _tally(grid, micros.get(grid.grid_code, []), bool(connected[i]), bool(crosses[i]), rules)
        for i, grid in enumerate(grids)
    ]


_TALLY_COLUMNS = (
    Grid.grid_code,
    Grid.community_code,
    Grid.households,
    Grid.buildings,
    Grid.status,
    Grid.locked,
    Grid.geom,
)


def _micro_ranges(codes: list[str]) -> Any:
    """Micro-grids of ``codes`` as ranges of the (version, micro-grid code) index, not a scan of the version."""
    ranges = [MicroGrid.microgrid_code.between(f"{c}00", f"{c}99") for c in codes]
    return or_(*ranges) if ranges else MicroGrid.id < 0


def _micros_of(session: Session, version_id: int, codes: list[str]) -> dict[str, list[MicroGrid]]:
    stmt = select(MicroGrid).where(MicroGrid.version_id == version_id, _micro_ranges(codes))
    out: dict[str, list[MicroGrid]] = {}
    for micro in session.scalars(stmt.order_by(MicroGrid.microgrid_code)):
        out.setdefault(micro.grid_code, []).append(micro)
    return out


def _micro_counts(
    session: Session, version_id: int, codes: list[str] | None
) -> dict[str, list[tuple[str, int]]]:
    stmt = select(MicroGrid.grid_code, MicroGrid.microgrid_code, MicroGrid.households).where(
        MicroGrid.version_id == version_id
    )
    if codes is not None:
        stmt = stmt.where(_micro_ranges(codes))
    out: dict[str, list[tuple[str, int]]] = {}
    for grid_code, code, households in session.execute(stmt.order_by(MicroGrid.microgrid_code)):
        out.setdefault(grid_code, []).append((code, households))
    return out


def _community_areas(
    session: Session, version: PlanVersion, grids: Iterable[Any]
) -> dict[str, shapely.Geometry]:
    codes = {g.community_code for g in grids}
    plan = session.get(Plan, version.plan_id)
    if plan is None or not codes:
        return {}
    rows = session.execute(
        select(Community.code, Community.geom).where(
            Community.district_id == plan.district_id, Community.code.in_(codes)
        )
    )
    return {code: geom for code, geom in rows}


def _crossing(
    geoms: NDArray[np.object_], communities: list[str], areas: dict[str, shapely.Geometry]
) -> NDArray[np.bool_]:
    """Whether each grid reaches more than a sliver outside its community."""
    out = np.zeros(len(geoms), dtype=bool)
    owners = np.array(communities, dtype=object)
    for code, area in areas.items():
        mine = np.flatnonzero((owners == code) & ~shapely.is_empty(geoms))
        if not len(mine):
            continue
        loose = shapely.buffer(area, _SLIVER_BUFFER_DEG)  # shared edges never count as outside
        shapely.prepare(loose)
        doubtful = mine[~shapely.covers(loose, geoms[mine])]
        outside = shapely.area(shapely.difference(geoms[doubtful], area))
        out[doubtful] = outside * np.array([_m2_per_deg2(g) for g in geoms[doubtful]]) > _SLIVER_M2
    return out


def _tally(
    grid: Any, micros: list[tuple[str, int]], connected: bool, crosses: bool, rules: GridRules
) -> GridTally:
    in_range = rules.grid_min <= grid.households <= rules.grid_max
    micro_tallies = [  # trusted rows: built without re-validation
        MicroTally.model_construct(
            microgrid_code=code,
            households=households,
            in_range=rules.micro_min <= households <= rules.micro_max,
        )
        for code, households in micros
    ]
    warnings: list[GridWarning] = []
    if grid.households == 0:
        warnings.append("empty")
    elif not in_range:
        warnings.append("out_of_range")
    warnings += ["disconnected"] if not connected else []
    warnings += ["crosses_community"] if crosses else []
    warnings += ["microgrid_out_of_range"] if any(not m.in_range for m in micro_tallies) else []
    return GridTally(
        grid_code=grid.grid_code,
        community_code=grid.community_code,
        households=grid.households,
        buildings=grid.buildings,
        status=grid.status,
        locked=grid.locked,
        in_range=in_range,
        connected=connected,
        crosses_community=crosses,
        warnings=warnings,
        microgrids=micro_tallies,
    )


def _m2_per_deg2(geom: shapely.Geometry) -> float:
    lat = (shapely.bounds(geom)[1] + shapely.bounds(geom)[3]) / 2
    return _M_PER_DEG * _M_PER_DEG * max(math.cos(math.radians(lat)), 1e-6)


def _pieces(geom: shapely.Geometry | None) -> int:
    """Polygon pieces of a grid larger than a sliver."""
    if geom is None or geom.is_empty:
        return 0
    parts = shapely.get_parts(geom)
    areas = shapely.area(parts) * _m2_per_deg2(geom)
    return int(np.count_nonzero(areas > _SLIVER_M2))


# --- moves by building or grid --------------------------------------------------------------------------


def resolve_moves(session: Session, version: PlanVersion, items: list[MoveItem]) -> list[Move]:
    """Unit moves for the request's items; units already in the target grid are left out."""
    by_unit, by_building = _units_of(session, version, items)
    out: list[Move] = []
    nearest_cache: dict[str, list[MicroGrid]] = {}
    chosen: dict[tuple[str, str], str] = {}  # (building, grid) → micro-grid: a building's units stay together
    for index, item in enumerate(items):
        units = [by_unit[item.unit_id]] if item.unit_id is not None else by_building[str(item.building_id)]
        for unit in units:
            if item.microgrid_code is not None:
                target = item.microgrid_code
            elif unit.grid_code == item.grid_code:
                continue
            else:
                key = (unit.building_id, str(item.grid_code))
                if key not in chosen:
                    chosen[key] = _nearest_micro(session, version, key[1], unit, nearest_cache, index)
                target = chosen[key]
            out.append(Move(unit.id, target))
    return out


def _units_of(
    session: Session, version: PlanVersion, items: list[MoveItem]
) -> tuple[dict[int, BuildingUnit], dict[str, list[BuildingUnit]]]:
    """The items' units by unit id and by building id, each kind read in one query."""
    unit_ids = {i.unit_id for i in items if i.unit_id is not None}
    building_ids = {i.building_id for i in items if i.building_id is not None}
    in_version = select(BuildingUnit).where(BuildingUnit.version_id == version.id)
    by_unit = (
        {u.id: u for u in session.scalars(in_version.where(BuildingUnit.id.in_(unit_ids)))}
        if unit_ids
        else {}
    )
    by_building: dict[str, list[BuildingUnit]] = {}
    if building_ids:
        rows = session.scalars(
            in_version.where(BuildingUnit.building_id.in_(building_ids)).order_by(BuildingUnit.id)
        )
        for unit in rows:
            by_building.setdefault(unit.building_id, []).append(unit)
    for index, item in enumerate(items):
        if (item.unit_id is not None and item.unit_id not in by_unit) or (
            item.building_id is not None and item.building_id not in by_building
        ):
            what = (
                f"building unit {item.unit_id}"
                if item.unit_id is not None
                else f"building {item.building_id}"
            )
            raise NotFoundError(
                f"{what} is not in version {version.number}", where={"field": f"moves[{index}]"}
            )
    return by_unit, by_building


def _nearest_micro(
    session: Session,
    version: PlanVersion,
    grid_code: str,
    unit: BuildingUnit,
    cache: dict[str, list[MicroGrid]],
    index: int,
) -> str:
    if grid_code not in cache:
        cache[grid_code] = _micros_of(session, version.id, [grid_code]).get(grid_code, [])
    micros = cache[grid_code]
    if not micros:
        raise InputError(
            f"grid {grid_code} is not in version {version.number} (or has no micro-grid)",
            where={"field": f"moves[{index}].grid_code"},
        )
    if unit.geom is None:
        return min(micros, key=lambda m: m.households).microgrid_code
    best = min(micros, key=lambda m: (shapely.distance(m.geom, unit.geom), m.households))
    return best.microgrid_code


# --- merge --------------------------------------------------------------------------------------------------


def merge_grids(
    session: Session, who: Principal, version: PlanVersion, *, seen: int, keep: str, absorb: str
) -> tuple[int, Grid]:
    """Merge grid ``absorb`` into ``keep`` (adjacent, same community, within the maximum); returns the new
    revision and the merged grid. The absorbed grid's micro-grids are renumbered under ``keep``."""
    revision = claim_revision(session, version, seen)
    kept, gone = _merge_pair(session, who, version, keep, absorb)
    before = {"grids": {keep: kept.households, absorb: gone.households}}
    renames = _renumber_micros(session, version, gone.grid_code, kept.grid_code)
    for old, new in renames.items():
        session.execute(
            _unit_update(version.id, gone.grid_code, old).values(grid_code=kept.grid_code, microgrid_code=new)
        )
    set_geom(kept, shapely.union(kept.geom, gone.geom))
    kept.households += gone.households
    kept.buildings = _count_buildings(session, version.id, kept.grid_code)
    kept.status, kept.note = _edited_status(kept.households, GridRules(**version.rules))
    session.delete(gone)
    session.flush()
    record(
        session,
        who,
        action="merge_grids",
        entity="grid",
        entity_id=kept.id,
        before=before,
        after={"grids": {keep: kept.households}, "microgrids": renames},
    )
    return revision, kept


def _merge_pair(
    session: Session, who: Principal, version: PlanVersion, keep: str, absorb: str
) -> tuple[Grid, Grid]:
    if keep == absorb:
        raise InputError("merge two different grids", where={"field": "grid_codes"})
    grids = grids_by_code(session, version.id, {keep, absorb})
    for code in (keep, absorb):
        if code not in grids:
            raise NotFoundError(f"grid {code} is not in version {version.number}", where={"grid_code": code})
        who.require_territory(grids[code].community_code, "grid")
        if grids[code].locked:
            raise ConflictError(f"grid {code} is locked / 网格已锁定", where={"grid_code": code})
    kept, gone = grids[keep], grids[absorb]
    _check_mergeable(kept, gone, GridRules(**version.rules))
    return kept, gone


def _check_mergeable(kept: Grid, gone: Grid, rules: GridRules) -> None:
    where = {"grid_codes": [kept.grid_code, gone.grid_code]}
    if kept.community_code != gone.community_code:
        raise InputError(
            f"grids {kept.grid_code} and {gone.grid_code} are in different communities "
            f"({kept.community_code}, {gone.community_code}); a grid never crosses a community / 不能跨社区合并",
            where=where,
        )
    shared = shapely.intersection(shapely.boundary(kept.geom), shapely.boundary(gone.geom))
    if shapely.length(shared) <= 0:
        raise InputError(
            f"grids {kept.grid_code} and {gone.grid_code} do not share a boundary; only adjacent grids merge "
            "/ 网格不相邻",
            where=where,
        )
    total = kept.households + gone.households
    if total > rules.grid_max:
        raise InputError(
            f"grids {kept.grid_code} and {gone.grid_code} together have {total} households, above the "
            f"maximum {rules.grid_max} / 合并后超过户数上限",
            where=where,
        )


def _renumber_micros(session: Session, version: PlanVersion, source: str, target: str) -> dict[str, str]:
    micros = _micros_of(session, version.id, [source, target])
    used = [int(m.microgrid_code[-2:]) for m in micros.get(target, [])]
    moving = micros.get(source, [])
    start = max(used, default=0) + 1
    if start + len(moving) - 1 > 99:
        raise InputError(
            f"grid {target} would have more than 99 micro-grids", where={"grid_codes": [target, source]}
        )
    renames = {m.microgrid_code: f"{target}{start + i:02d}" for i, m in enumerate(moving)}
    for micro in moving:
        micro.microgrid_code, micro.grid_code = renames[micro.microgrid_code], target
    session.flush()
    return renames


def _unit_update(version_id: int, grid_code: str, microgrid_code: str) -> Update:
    return (
        update(BuildingUnit)
        .where(
            BuildingUnit.version_id == version_id,
            BuildingUnit.grid_code == grid_code,
            BuildingUnit.microgrid_code == microgrid_code,
        )
        .execution_options(synchronize_session=False)
    )


def _count_buildings(session: Session, version_id: int, grid_code: str) -> int:
    return int(
        session.scalar(
            select(func.count(func.distinct(BuildingUnit.building_id))).where(
                BuildingUnit.version_id == version_id, BuildingUnit.grid_code == grid_code
            )
        )
        or 0
    )


def _edited_status(households: int, rules: GridRules) -> tuple[str, str]:
    if rules.grid_min <= households <= rules.grid_max:
        return STATUS_OK, ""
    return "edited", "edited by hand / 人工调整"


# --- re-gridding a selection (and splitting one grid) ---------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Grids to re-grid, read from a version: their codes by community, and the district cut down to them."""

    version_id: int
    revision: int
    codes_by_community: dict[str, list[str]]
    district: District
    households: int


def read_selection(session: Session, version: PlanVersion, codes: list[str], *, seen: int) -> Selection:
    """The selected grids of the draft at revision ``seen`` as a small district (their buildings, their union
    per community, nearby roads); the revision is claimed when the result is stored.

    Raises :class:`NotFoundError` for an unknown grid, :class:`ConflictError` for a locked one and
    :class:`InputError` when a building is shared with a grid outside the selection.
    """
    grids = grids_by_code(session, version.id, set(codes))
    for code in codes:
        if code not in grids:
            raise NotFoundError(f"grid {code} is not in version {version.number}", where={"grid_code": code})
        if grids[code].locked:
            raise ConflictError(f"grid {code} is locked / 网格已锁定", where={"grid_code": code})
    units = _selection_units(session, version.id, list(grids))
    plan = session.get(Plan, version.plan_id)
    assert plan is not None  # versions belong to plans (foreign key)
    buildings = _selection_buildings(session, plan.district_id, units)
    by_community: dict[str, list[str]] = {}
    for grid in grids.values():
        by_community.setdefault(grid.community_code, []).append(grid.grid_code)
    district = District(
        buildings=buildings,
        communities=_selection_areas(session, plan.district_id, grids.values()),
        roads=_nearby_roads(session, plan.district_id, grids.values()),
        source=f"grids {', '.join(sorted(codes))}",
    )
    households = int(buildings["households"].sum())
    return Selection(version.id, seen, by_community, district, households)


def _selection_units(session: Session, version_id: int, codes: list[str]) -> pd.DataFrame:
    rows = session.execute(
        select(BuildingUnit.building_id, BuildingUnit.grid_code, BuildingUnit.households).where(
            BuildingUnit.version_id == version_id, BuildingUnit.grid_code.in_(codes)
        )
    ).all()
    units = pd.DataFrame(rows, columns=["building_id", "grid_code", "households"])
    outside = session.execute(
        select(BuildingUnit.building_id, BuildingUnit.grid_code).where(
            BuildingUnit.version_id == version_id,
            BuildingUnit.building_id.in_(set(units["building_id"])),
            BuildingUnit.grid_code.not_in(codes),
        )
    ).first()
    if outside is not None:
        raise InputError(
            f"building {outside[0]} is shared with grid {outside[1]}, outside the selection; "
            "select that grid too / 楼栋跨选区，请一并选择",
            where={"building_id": outside[0], "grid_code": outside[1]},
        )
    return units


def _selection_buildings(session: Session, district_id: int, units: pd.DataFrame) -> gpd.GeoDataFrame:
    columns = ["building_id", "households_estimated", "floors", "units", "compound_id", "community_code"]
    ids = sorted(set(units["building_id"]))
    rows = session.execute(
        select(*(getattr(Building, c) for c in columns), Building.geom).where(
            Building.district_id == district_id, Building.building_id.in_(ids)
        )
    ).all()
    frame = gpd.GeoDataFrame(
        {c: [r[i] for r in rows] for i, c in enumerate(columns)}, geometry=[r[-1] for r in rows], crs=WGS84
    )
    households = units.groupby("building_id")["households"].sum()
    frame["households"] = frame["building_id"].map(households).astype("int64")
    frame["floors"] = frame["floors"].astype("Int64")
    frame["units"] = frame["units"].astype("Int64")
    return frame


def _selection_areas(session: Session, district_id: int, grids: Iterable[Grid]) -> gpd.GeoDataFrame:
    geoms: dict[str, list[shapely.Geometry]] = {}
    for grid in grids:
        geoms.setdefault(grid.community_code, []).append(grid.geom)
    names = dict(
        session.execute(
            select(Community.code, Community.name).where(
                Community.district_id == district_id, Community.code.in_(set(geoms))
            )
        ).all()
    )
    codes = sorted(geoms)
    return gpd.GeoDataFrame(
        {"community_code": codes, "name": [names.get(c, c) for c in codes]},
        geometry=[shapely.make_valid(shapely.union_all(geoms[c])) for c in codes],
        crs=WGS84,
    )


def _nearby_roads(session: Session, district_id: int, grids: Iterable[Grid]) -> gpd.GeoDataFrame | None:
    bounds = np.array([[g.minx, g.miny, g.maxx, g.maxy] for g in grids])
    box = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
    roads = list(session.scalars(in_bbox(session, Road, box).where(Road.district_id == district_id)))
    if not roads:
        return None
    return gpd.GeoDataFrame({"kind": [r.kind for r in roads]}, geometry=[r.geom for r in roads], crs=WGS84)


def split_rules(selection: Selection, rules: GridRules) -> GridRules:
    """Rules under which the gridder cuts the selection's households into exactly two grids.

    Raises :class:`InputError` when there are too few households for two grids of full micro-grids.
    """
    total = selection.households
    low = max(rules.micro_max, total // 3 + 1)
    if 2 * low > total:
        raise InputError(
            f"{total} households are too few to split into two grids of at least {rules.micro_max} / 户数过少无法拆分",
            where={"households": total},
        )
    return GridRules(
        grid_min=low,
        grid_max=total - low,
        micro_min=rules.micro_min,
        micro_max=rules.micro_max,
        m2_per_household=rules.m2_per_household,
        seed=rules.seed,
    )


def split_by_line(selection: Selection, line: list[tuple[float, float]], rules: GridRules) -> GridPlan:
    """The selected grid cut along ``line`` into two grids, each divided into micro-grids by the gridder.

    Raises :class:`InputError` unless the line cuts the grid into exactly two parts with buildings on both.
    """
    communities = selection.district.communities
    area, community = communities.geometry.iloc[0], str(communities["community_code"].iloc[0])
    pieces = [p for p in shapely.get_parts(shapely.ops.split(area, shapely.LineString(line))) if p.area > 0]
    where = {"field": "line", "grid_code": selection.codes_by_community[community][0]}
    if len(communities) != 1 or len(pieces) != 2:
        raise InputError(
            f"the line cuts the grid into {len(pieces)} part(s); draw it across the grid from edge to edge so "
            "that it makes exactly two / 分割线需横穿网格，将其分为两部分",
            where=where,
        )
    buildings = selection.district.buildings
    second = buildings.geometry.representative_point().within(pieces[1]).to_numpy()
    if second.all() or not second.any():
        raise InputError("the line leaves no building on one side / 分割线一侧没有楼栋", where=where)
    parts = [
        _grid_piece(selection, piece, buildings[mask].reset_index(drop=True), rules)
        for piece, mask in ((pieces[0], ~second), (pieces[1], second))
    ]
    return _joined(parts[0], _renumbered(parts[1], community), rules)


def _grid_piece(
    selection: Selection, piece: shapely.Geometry, buildings: gpd.GeoDataFrame, rules: GridRules
) -> GridPlan:
    households = int(buildings["households"].sum())
    one_grid = GridRules(
        grid_min=rules.micro_max,
        grid_max=max(rules.micro_max, households),
        micro_min=rules.micro_min,
        micro_max=rules.micro_max,
        m2_per_household=rules.m2_per_household,
        seed=rules.seed,
    )
    communities = selection.district.communities
    district = District(
        buildings=buildings,
        communities=gpd.GeoDataFrame(communities.drop(columns="geometry"), geometry=[piece], crs=WGS84),
        roads=selection.district.roads,
        source=selection.district.source,
    )
    return make_plan(district, one_grid)


def _renumbered(plan: GridPlan, community: str) -> GridPlan:
    """``plan``'s grid codes moved past ``community``'s first number (``…001`` → ``…002``)."""

    def shift(codes: pd.Series) -> pd.Series:
        return codes.str[:12] + (codes.str[12:15].astype(int) + 1).map("{:03d}".format) + codes.str[15:]

    frames = [frame.copy() for frame in (plan.grids, plan.microgrids, plan.building_units)]
    for frame in frames:
        for column in ("grid_code", "microgrid_code"):
            if column in frame:
                frame[column] = shift(frame[column].astype(str))
    return replace(plan, grids=frames[0], microgrids=frames[1], building_units=frames[2])


def _joined(first: GridPlan, second: GridPlan, rules: GridRules) -> GridPlan:
    def both(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(pd.concat([a, b.to_crs(a.crs)], ignore_index=True), crs=a.crs)

    return GridPlan(
        both(first.grids, second.grids),
        both(first.microgrids, second.microgrids),
        both(first.building_units, second.building_units),
        report=pd.DataFrame(),
        rules=rules,
    )


def grid_selection(selection: Selection, rules: GridRules) -> GridPlan:
    """Grid the selection (pure computation, outside any transaction)."""
    return make_plan(selection.district, rules)


def replace_selection(
    session: Session, who: Principal, version: PlanVersion, selection: Selection, grid_plan: GridPlan
) -> tuple[int, list[str], list[str]]:
    """Swap the selected grids for ``grid_plan``'s; returns the new revision, the grid codes now there and the
    selected codes that are gone. Codes of the selection are reused first, new ones follow the community's
    highest code; 409 when the draft changed since the selection was read."""
    revision = claim_revision(session, version, selection.revision)
    old = [code for codes in selection.codes_by_community.values() for code in codes]
    before = {g.grid_code: g.households for g in grids_by_code(session, version.id, set(old)).values()}
    renames = _new_codes(session, version, selection, grid_plan)
    grids, micros, units = _renamed(grid_plan, renames)
    grids = _restatus(grids, GridRules(**version.rules))
    _delete_grids(session, version.id, old)
    insert_layers(session, version.id, grids, micros, units)
    new_codes = sorted(renames.values())
    record(
        session,
        who,
        action="regrid",
        entity="plan_version",
        entity_id=version.id,
        before={"grids": before},
        after={"grids": dict(zip(grids["grid_code"], (int(h) for h in grids["households"]), strict=True))},
    )
    return revision, new_codes, sorted(set(old) - set(new_codes))


def _new_codes(
    session: Session, version: PlanVersion, selection: Selection, grid_plan: GridPlan
) -> dict[str, str]:
    renames: dict[str, str] = {}
    for community, reused in selection.codes_by_community.items():
        made = sorted(c for c in grid_plan.grids["grid_code"] if str(c).startswith(community))
        existing = session.scalars(
            select(Grid.grid_code).where(
                Grid.version_id == version.id, Grid.grid_code.between(f"{community}000", f"{community}999")
            )
        ).all()
        next_number = max((int(c[-3:]) for c in existing), default=0) + 1
        fresh = [f"{community}{n:03d}" for n in range(next_number, next_number + len(made))]
        if next_number + len(made) - len(reused) > 1000:
            raise InputError(
                f"community {community} would have more than 999 grids", where={"community": community}
            )
        renames.update(zip(made, [*sorted(reused), *fresh], strict=False))
    return renames


def _renamed(
    grid_plan: GridPlan, renames: dict[str, str]
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    grids = grid_plan.grids.to_crs(WGS84).copy()
    micros = grid_plan.microgrids.to_crs(WGS84).copy()
    units = grid_plan.building_units.to_crs(WGS84).copy()
    grids["grid_code"] = grids["grid_code"].map(renames)
    for frame in (micros, units):
        frame["microgrid_code"] = frame["grid_code"].map(renames) + frame["microgrid_code"].str[-2:]
        frame["grid_code"] = frame["grid_code"].map(renames)
    return grids, micros, units


def _restatus(grids: gpd.GeoDataFrame, rules: GridRules) -> gpd.GeoDataFrame:
    """Grids the selection's own rules (a split's) let through but the version's range does not are marked
    as edited by hand, the reason the validator accepts."""
    out = grids.copy()
    households = out["households"].astype(int)
    outside = (out["status"] == STATUS_OK) & ((households < rules.grid_min) | (households > rules.grid_max))
    out.loc[outside, "status"] = "edited"
    out.loc[outside, "note"] = "split or re-gridded by hand / 人工拆分或重划"
    return out


def _delete_grids(session: Session, version_id: int, codes: list[str]) -> None:
    ranges = [MicroGrid.microgrid_code.between(f"{c}00", f"{c}99") for c in codes]
    session.execute(
        delete(BuildingUnit).where(BuildingUnit.version_id == version_id, BuildingUnit.grid_code.in_(codes))
    )
    session.execute(delete(MicroGrid).where(and_(MicroGrid.version_id == version_id, or_(*ranges))))
    session.execute(delete(Grid).where(Grid.version_id == version_id, Grid.grid_code.in_(codes)))
    session.flush()


# --- the background job -------------------------------------------------------------------------------------


def run_regrid_job(
    service: Service, who: Principal, *, job_id: int, plan_id: int, number: int, codes: list[str], seen: int
) -> None:
    """Re-grid ``codes`` of draft ``number`` (seen at revision ``seen``) and store the result in one transaction;
    the job row records progress and ends ``done`` (result: revision, grids, removed) or ``failed``."""
    try:
        _set_job(service, job_id, 0.1, "reading the selected grids / 读取所选网格")
        with service.db.read() as session:
            version = get_version(session, plan_id, number)
            selection = read_selection(session, version, codes, seen=seen)
            rules = GridRules(**version.rules)
        _set_job(service, job_id, 0.3, f"gridding {selection.households} households / 重新划分")
        grid_plan = grid_selection(selection, rules)
        _set_job(service, job_id, 0.8, f"storing {len(grid_plan.grids)} grids / 保存")
        with transaction(service.db.write) as session:
            version = get_version(session, plan_id, number)
            revision, made, removed = replace_selection(session, who, version, selection, grid_plan)
        _end_job(service, job_id, "done", {"revision": revision, "grids": made, "removed": removed})
    except Exception as error:  # a job must end in a recorded state whatever failed; the cause is logged
        log.exception("re-grid job %s failed", job_id)
        _end_job(service, job_id, "failed", None, message=f"{type(error).__name__}: {error}")


def _set_job(service: Service, job_id: int, progress: float, message: str) -> None:
    with transaction(service.db.write) as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.status, job.progress, job.message = "running", progress, message


def _end_job(
    service: Service, job_id: int, status: str, result: dict[str, Any] | None, message: str = "done / 完成"
) -> None:
    with transaction(service.db.write) as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.status, job.message, job.result, job.finished_at = status, message, result, utcnow()
            job.progress = 1.0 if status == "done" else job.progress
