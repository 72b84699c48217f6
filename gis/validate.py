"""Check a grid plan against every rule of the plan contract and report each breach in plain words.

The rules: each grid and micro-grid is one connected valid polygon; a grid lies in exactly one community,
the one it names; the grids of a community tile it and the micro-grids of a grid tile the grid (gaps and
overlaps up to a tolerance); codes are well formed and unique; households add up from building units to
micro-grids, grids and back to the district's buildings; every building unit is assigned to an existing
grid and a micro-grid of that grid; a grid or micro-grid outside its household range names a known reason,
and a reason the plan itself can disprove (a "community too small" whose community holds enough households, an
"indivisible building" with no unit above the range, …) is reported as untrue; a building lies (mostly) in the micro-grids its units are assigned to.

Geometry is compared in the district's local metric CRS, so tolerances are in square metres; locations in
messages are given in the plan's CRS.

Example:
    >>> for violation in validate_plan(plan, district):  # doctest: +SKIP
    ...     print(violation.layer, violation.rule, violation.message)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray

from gis.metrics import Geoms, MetricLayers, clean_geoms, feasible, in_range, metric_layers, tiling
from gis.model import STATUS_OK, STATUS_REASONS, District, GridPlan

logger = logging.getLogger(__name__)

#: Share of a building's footprint that must lie in the micro-grids its units are assigned to.
MIN_BUILDING_SHARE = 0.5
_UNIT_KEY = ["building_id", "unit", "floor_from", "floor_to"]


@dataclass(frozen=True)
class Violation:
    """One breach of a plan rule.

    Attributes:
        rule: short code of the rule, e.g. ``"gap"`` or ``"grid_out_of_range"``.
        layer: the plan layer concerned: ``grids``, ``microgrids`` or ``building_units``.
        code: the grid code, micro-grid code, community code (gaps of a community) or building id concerned.
        message: what is wrong, in plain words with the numbers.
    """

    rule: str
    layer: str
    code: str | None
    message: str


@dataclass(frozen=True)
class _Layer:
    name: str  # plan layer
    noun: str  # in messages
    prefix: str  # of rule codes
    code: str  # code column
    digits: int  # digits added to the parent code


_GRIDS = _Layer("grids", "grid", "grid", "grid_code", 3)
_MICRO = _Layer("microgrids", "micro-grid", "microgrid", "microgrid_code", 2)
_UNITS = "building_units"


@dataclass(frozen=True)
class _Context:
    plan: GridPlan
    district: District
    layers: MetricLayers
    tolerance_m2: float
    to_plan: pyproj.Transformer
    plan_geographic: bool


def validate_plan(plan: GridPlan, district: District, *, tolerance_m2: float = 1.0) -> list[Violation]:
    """Check every rule of the plan contract.

    Args:
        plan: the grid plan to check.
        district: the district it was made for (any CRS; it need not be the plan's).
        tolerance_m2: gaps, overlaps and areas outside a parent up to this many square metres are accepted.

    Returns:
        The violations sorted by (layer, rule, code); empty for a valid plan.
    """
    context = _context(plan, district, tolerance_m2)
    found = [violation for check in _CHECKS for violation in check(context)]
    logger.info("plan checked: %d violation(s) of %d rule(s)", len(found), len({v.rule for v in found}))
    return sorted(found, key=lambda v: (v.layer, v.rule, v.code or ""))


def _context(plan: GridPlan, district: District, tolerance_m2: float) -> _Context:
    layers = metric_layers(plan, district)
    plan_crs = pyproj.CRS.from_user_input(plan.crs if plan.crs is not None else district.buildings.crs)
    return _Context(
        plan=plan,
        district=district,
        layers=layers,
        tolerance_m2=tolerance_m2,
        to_plan=pyproj.Transformer.from_crs(layers.crs, plan_crs, always_xy=True),
        plan_geographic=bool(plan_crs.is_geographic),
    )


# --- geometry of each polygon ---------------------------------------------------------------------------


def _check_shapes(ctx: _Context) -> Iterator[Violation]:
    yield from _shape_violations(ctx.plan.grids, _GRIDS)
    yield from _shape_violations(ctx.plan.microgrids, _MICRO)


def _shape_violations(frame: pd.DataFrame, layer: _Layer) -> Iterator[Violation]:
    geoms = np.asarray(frame.geometry.array, dtype=object)
    codes = frame[layer.code].to_numpy(dtype=object)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    polygonal = np.isin(
        shapely.get_type_id(geoms), [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON]
    )
    for i in np.flatnonzero(empty):
        yield _v(f"{layer.prefix}_empty", layer, codes[i], f"{layer.noun} {codes[i]} has no geometry")
    for i in np.flatnonzero(~empty & ~polygonal):
        message = f"{layer.noun} {codes[i]} is a {geoms[i].geom_type}, not a polygon"
        yield _v(f"{layer.prefix}_not_polygon", layer, codes[i], message)
    parts = shapely.get_num_geometries(geoms)
    for i in np.flatnonzero(~empty & polygonal & (parts > 1)):
        message = f"{layer.noun} {codes[i]} is in {parts[i]} separate parts; it must be one connected piece"
        yield _v(f"{layer.prefix}_not_connected", layer, codes[i], message)
    for i in np.flatnonzero(~empty & ~shapely.is_valid(geoms)):
        reason = shapely.is_valid_reason(geoms[i])
        yield _v(
            f"{layer.prefix}_invalid", layer, codes[i], f"{layer.noun} {codes[i]} is not valid: {reason}"
        )


# --- codes ----------------------------------------------------------------------------------------------


def _check_codes(ctx: _Context) -> Iterator[Violation]:
    grids, micro = ctx.plan.grids, ctx.plan.microgrids
    yield from _code_violations(grids, _GRIDS, "community_code", "community code")
    yield from _code_violations(micro, _MICRO, "grid_code", "grid code")
    for frame, layer in ((grids, _GRIDS), (micro, _MICRO)):
        yield from _duplicate_violations(frame, layer)
    community, grid = _text(grids["community_code"]), _text(micro["grid_code"])
    for i in np.flatnonzero(ctx.layers.grid_community < 0):
        code = grids["grid_code"].iloc[i]
        message = f"grid {code} names community '{community.iloc[i]}', which is not in the district"
        yield _v("unknown_community", _GRIDS, code, message)
    for i in np.flatnonzero(ctx.layers.micro_grid < 0):
        code = micro["microgrid_code"].iloc[i]
        yield _v(
            "unknown_grid", _MICRO, code, f"micro-grid {code} names grid '{grid.iloc[i]}', not in the plan"
        )


def _code_violations(
    frame: pd.DataFrame, layer: _Layer, parent: str, parent_noun: str
) -> Iterator[Violation]:
    codes, parents = _text(frame[layer.code]), _text(frame[parent])
    width = 12 if layer is _GRIDS else 15
    good = (
        parents.str.fullmatch(rf"\d{{{width}}}")
        & codes.str.fullmatch(rf"\d{{{width + layer.digits}}}")
        & (codes.str[:width] == parents)
    )
    for i in np.flatnonzero(~good.to_numpy(dtype=bool)):
        message = (
            f"{layer.noun} code '{codes.iloc[i]}' is not its {parent_noun} '{parents.iloc[i]}' "
            f"({width} digits) followed by {layer.digits} digits"
        )
        yield _v(f"bad_{layer.prefix}_code", layer, codes.iloc[i], message)


def _duplicate_violations(frame: pd.DataFrame, layer: _Layer) -> Iterator[Violation]:
    counts = frame[layer.code].value_counts()
    for code, count in counts[counts > 1].items():
        yield _v("duplicate_code", layer, code, f"{layer.noun} code {code} is used by {count} {layer.noun}s")


# --- grids in communities, tiling -----------------------------------------------------------------------


def _check_communities(ctx: _Context) -> Iterator[Violation]:
    layers, tol = ctx.layers, ctx.tolerance_m2
    n, codes = len(layers.grid_geoms), layers.grids["grid_code"].to_numpy(dtype=object)
    shares = _community_shares(layers)
    outside = shapely.area(layers.grid_geoms) - np.bincount(shares["grid"], weights=shares["m2"], minlength=n)
    shares = shares.loc[shares["m2"] > tol].sort_values(["grid", "m2"], ascending=[True, False])
    for i in np.flatnonzero((np.bincount(shares["grid"], minlength=n) > 1) | (outside > tol)):
        message = _crossing_message(codes[i], shares.loc[shares["grid"] == i], outside[i], tol)
        yield _v("grid_crosses_community", _GRIDS, codes[i], message)
    top = shares.drop_duplicates("grid")
    dominant = np.full(n, -1, dtype=np.intp)
    dominant[top["grid"].to_numpy()] = top["community"].to_numpy()
    own = layers.grid_community
    for i in np.flatnonzero((own >= 0) & (dominant >= 0) & (dominant != own)):
        message = (
            f"grid {codes[i]} names community {layers.community_codes[own[i]]} "
            f"but lies mostly in community {layers.community_codes[dominant[i]]}"
        )
        yield _v("community_mismatch", _GRIDS, codes[i], message)


def _community_shares(layers: MetricLayers) -> pd.DataFrame:
    """Per intersecting (grid, community) pair, the area of their intersection (community as its code)."""
    grid, community = shapely.STRtree(layers.communities).query(layers.grid_geoms, predicate="intersects")
    m2 = shapely.area(shapely.intersection(layers.grid_geoms[grid], layers.communities[community]))
    return pd.DataFrame(
        {"grid": grid, "community": community, "code": layers.community_codes[community], "m2": m2}
    )


def _crossing_message(code: str, part: pd.DataFrame, outside_m2: float, tol: float) -> str:
    inside = ", ".join(f"{c} ({m2:.1f} m²)" for c, m2 in zip(part["code"], part["m2"], strict=True))
    message = f"grid {code} lies in {len(part)} communities: {inside}" if len(part) else f"grid {code}"
    return message + (f"; {outside_m2:.1f} m² lie outside every community" if outside_m2 > tol else "")


def _check_grid_tiling(ctx: _Context) -> Iterator[Violation]:
    layers = ctx.layers
    result = tiling(layers.communities, layers.grid_geoms, layers.grid_community)
    communities = layers.community_codes.astype(object)
    yield from _gap_violations(ctx, result.gap, result.gap_m2, communities, _GRIDS, "community")
    codes = layers.grids["grid_code"].to_numpy(dtype=object)
    flagged = np.flatnonzero(result.overlap_m2 > ctx.tolerance_m2)
    yield from _overlap_violations(ctx, layers.grid_geoms, codes, layers.grid_community, flagged, _GRIDS)


def _check_micro_tiling(ctx: _Context) -> Iterator[Violation]:
    layers = ctx.layers
    grid_codes = layers.grids["grid_code"].to_numpy(dtype=object)
    result = tiling(layers.grid_geoms, layers.micro_geoms, layers.micro_grid)
    yield from _gap_violations(ctx, result.gap, result.gap_m2, grid_codes, _MICRO, "grid")
    codes = layers.microgrids["microgrid_code"].to_numpy(dtype=object)
    flagged = np.flatnonzero(result.overlap_m2 > ctx.tolerance_m2)
    yield from _overlap_violations(ctx, layers.micro_geoms, codes, layers.micro_grid, flagged, _MICRO)
    yield from _micro_outside_violations(ctx, codes, grid_codes)


def _gap_violations(
    ctx: _Context,
    gaps: Geoms,
    gap_m2: NDArray[np.float64],
    codes: NDArray[np.object_],
    layer: _Layer,
    parent: str,
) -> Iterator[Violation]:
    for i in np.flatnonzero(gap_m2 > ctx.tolerance_m2):
        pieces = shapely.get_parts(gaps[i])
        biggest = pieces[np.argmax(shapely.area(pieces))]
        x, y = ctx.to_plan.transform(*shapely.get_coordinates(shapely.point_on_surface(biggest))[0])
        where = f"({x:.6f}, {y:.6f})" if ctx.plan_geographic else f"({x:.1f}, {y:.1f})"
        message = (
            f"{parent} {codes[i]} has {gap_m2[i]:.1f} m² not covered by its {layer.noun}s; "
            f"the biggest gap ({shapely.area(biggest):.1f} m²) is around {where}"
        )
        yield _v("gap", layer, codes[i], message)


def _overlap_violations(
    ctx: _Context,
    geoms: Geoms,
    codes: NDArray[np.object_],
    parent_of: NDArray[np.intp],
    flagged: NDArray[np.intp],
    layer: _Layer,
) -> Iterator[Violation]:
    members = np.flatnonzero(np.isin(parent_of, flagged))
    left, right = shapely.STRtree(geoms[members]).query(geoms[members], predicate="intersects")
    left, right = members[left], members[right]
    same = (left < right) & (parent_of[left] == parent_of[right])
    left, right = left[same], right[same]
    m2 = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    for a, b, area in zip(left, right, m2, strict=True):
        if area > ctx.tolerance_m2:
            message = f"{layer.noun}s {codes[a]} and {codes[b]} overlap by {area:.1f} m²"
            yield _v("overlap", layer, codes[a], message)


def _micro_outside_violations(
    ctx: _Context, codes: NDArray[np.object_], grid_codes: NDArray[np.object_]
) -> Iterator[Violation]:
    layers = ctx.layers
    known = np.flatnonzero(layers.micro_grid >= 0)
    owner = layers.micro_grid[known]
    outside = shapely.area(shapely.difference(layers.micro_geoms[known], layers.grid_geoms[owner]))
    for i, grid, m2 in zip(known, owner, outside, strict=True):
        if m2 > ctx.tolerance_m2:
            message = f"micro-grid {codes[i]} extends {m2:.1f} m² outside its grid {grid_codes[grid]}"
            yield _v("microgrid_outside_grid", _MICRO, codes[i], message)


# --- households and building units ----------------------------------------------------------------------


def _check_layer_households(ctx: _Context) -> Iterator[Violation]:
    units = ctx.plan.building_units
    for layer, frame in ((_GRIDS, ctx.plan.grids), (_MICRO, ctx.plan.microgrids)):
        summed = frame[layer.code].map(units.groupby(layer.code)["households"].sum()).fillna(0)
        for i in np.flatnonzero((summed != frame["households"]).to_numpy(dtype=bool)):
            code = frame[layer.code].iloc[i]
            message = (
                f"{layer.noun} {code} says {frame['households'].iloc[i]} households, "
                f"its building units add up to {summed.iloc[i]:g}"
            )
            yield _v("households_mismatch", layer, code, message)


def _check_building_counts(ctx: _Context) -> Iterator[Violation]:
    grids, units = ctx.plan.grids, ctx.plan.building_units
    counted = grids["grid_code"].map(units.groupby("grid_code")["building_id"].nunique()).fillna(0)
    for i in np.flatnonzero((counted != grids["buildings"]).to_numpy(dtype=bool)):
        code = grids["grid_code"].iloc[i]
        message = (
            f"grid {code} says {grids['buildings'].iloc[i]} buildings, its units name {counted.iloc[i]:g}"
        )
        yield _v("building_count_mismatch", _GRIDS, code, message)


def _check_conservation(ctx: _Context) -> Iterator[Violation]:
    expected = ctx.district.buildings.groupby("building_id")["households"].sum()
    assigned = ctx.plan.building_units.groupby("building_id")["households"].sum()
    for building in expected.index.difference(assigned.index):
        message = f"building {building} ({expected[building]} households) has no building unit"
        yield Violation("building_missing", _UNITS, str(building), message)
    for building in assigned.index.difference(expected.index):
        message = f"building units name building {building}, which is not in the district"
        yield Violation("unknown_building", _UNITS, str(building), message)
    common = expected.index.intersection(assigned.index)
    for building in common[(expected[common] != assigned[common]).to_numpy(dtype=bool)]:
        wanted, got = expected[building], assigned[building]
        message = f"building {building} has {wanted} households, its units add up to {got}"
        yield Violation("households_not_conserved", _UNITS, str(building), message)


def _check_unit_links(ctx: _Context) -> Iterator[Violation]:
    units, links = ctx.plan.building_units, _unit_links(ctx.plan)
    known_grids = _text(ctx.plan.grids["grid_code"])
    grid, cell, owner = links["grid"], links["cell"], links["owner"]
    checks = (
        ("unit_unassigned", grid == "", "has no grid"),
        ("unit_unassigned", cell == "", "has no micro-grid"),
        (
            "unknown_grid",
            (grid != "") & ~grid.isin(known_grids),
            "is assigned to grid {grid}, not in the plan",
        ),
        (
            "unknown_microgrid",
            (cell != "") & (owner == ""),
            "is assigned to micro-grid {cell}, not in the plan",
        ),
        (
            "microgrid_grid_mismatch",
            (owner != "") & (owner != grid),
            "is in grid {grid}; micro-grid {cell} is in {owner}",
        ),
        ("negative_households", units["households"] < 0, "has {households} households"),
        ("duplicate_unit", units.duplicated(_UNIT_KEY, keep="first"), "appears more than once"),
    )
    for rule, mask, template in checks:
        for i in np.flatnonzero(mask.to_numpy(dtype=bool)):
            fields = {str(k): v for k, v in links.iloc[i].items()}
            message = f"{_unit_label(units.iloc[i])} {template.format(**fields)}"
            yield Violation(rule, _UNITS, str(units["building_id"].iloc[i]), message)


def _unit_links(plan: GridPlan) -> pd.DataFrame:
    """Per unit row: its grid, its micro-grid ('cell'), the micro-grid's own grid ('owner'), as text."""
    units, micro = plan.building_units, plan.microgrids
    grid_of_micro = micro.drop_duplicates("microgrid_code").set_index("microgrid_code")["grid_code"]
    return pd.DataFrame(
        {
            "grid": _text(units["grid_code"]).to_numpy(),
            "cell": _text(units["microgrid_code"]).to_numpy(),
            "owner": _text(units["microgrid_code"].map(grid_of_micro)).to_numpy(),
            "households": units["households"].to_numpy(),
        }
    )


def _unit_label(row: pd.Series) -> str:
    label = f"building {row['building_id']}"
    if pd.notna(row["unit"]) and row["unit"] != 0:
        label += f" stairwell {row['unit']}"
    if pd.notna(row["floor_from"]) or pd.notna(row["floor_to"]):
        label += f" floors {row['floor_from']}–{row['floor_to']}"
    return label


def _check_status(ctx: _Context) -> Iterator[Violation]:
    rules = ctx.plan.rules
    yield from _status_violations(ctx.plan.grids, _GRIDS, rules.grid_min, rules.grid_max)
    yield from _status_violations(ctx.plan.microgrids, _MICRO, rules.micro_min, rules.micro_max)


def _status_violations(frame: pd.DataFrame, layer: _Layer, low: int, high: int) -> Iterator[Violation]:
    status = frame["status"]
    known = (status == STATUS_OK) | status.isin(list(STATUS_REASONS))
    households = frame["households"]
    for i in np.flatnonzero(~known.to_numpy(dtype=bool)):
        code = frame[layer.code].iloc[i]
        message = (
            f"{layer.noun} {code} has status {status.iloc[i]!r}, neither '{STATUS_OK}' nor a known reason"
        )
        yield _v("unknown_status", layer, code, message)
    out = ~in_range(households, low, high) & (status == STATUS_OK).to_numpy(dtype=bool)
    for i in np.flatnonzero(out):
        code, count = frame[layer.code].iloc[i], households.iloc[i]
        side = f"below the minimum {low}" if count < low else f"above the maximum {high}"
        message = (
            f"{layer.noun} {code} has {count} households, {side}, and status '{STATUS_OK}' gives no reason"
        )
        yield _v(f"{layer.prefix}_out_of_range", layer, code, message)


def _check_reasons(ctx: _Context) -> Iterator[Violation]:
    """Out-of-range parts whose reason the plan's own numbers contradict (hand edits that kept an old status)."""
    plan, rules = ctx.plan, ctx.plan.rules
    grids, micro, units = plan.grids, plan.microgrids, plan.building_units
    units_hh = pd.to_numeric(units["households"], errors="coerce")
    community_hh = pd.to_numeric(grids["households"], errors="coerce").groupby(grids["community_code"]).sum()
    grid_hh = pd.to_numeric(grids["households"], errors="coerce").groupby(grids["grid_code"]).sum()
    yield from _reason_violations(
        grids,
        _GRIDS,
        (rules.grid_min, rules.grid_max),
        grids["community_code"].map(community_hh),
        grids["grid_code"].map(units_hh.groupby(units["grid_code"]).max()),
        _multipart_communities(ctx),
    )
    yield from _reason_violations(
        micro,
        _MICRO,
        (rules.micro_min, rules.micro_max),
        micro["grid_code"].map(grid_hh),
        micro["microgrid_code"].map(units_hh.groupby(units["microgrid_code"]).max()),
        frozenset(),
    )


def _multipart_communities(ctx: _Context) -> frozenset[str]:
    """Communities in several pieces: the gridder cuts each piece on its own, so a piece's reason (too small,
    infeasible) can hold where the community's total would not."""
    parts = shapely.get_num_geometries(ctx.layers.communities)
    return frozenset(str(code) for code in ctx.layers.community_codes[parts > 1])


def _reason_violations(
    frame: pd.DataFrame,
    layer: _Layer,
    limits: tuple[int, int],
    parent_hh: pd.Series,
    largest_unit_hh: pd.Series,
    pieced: frozenset[str],
) -> Iterator[Violation]:
    low, high = limits
    households = pd.to_numeric(frame["households"], errors="coerce").to_numpy(dtype=float)
    parent = pd.to_numeric(parent_hh, errors="coerce").fillna(0).to_numpy(dtype=float)
    largest = pd.to_numeric(largest_unit_hh, errors="coerce").fillna(0).to_numpy(dtype=float)
    status = _text(frame["status"]).to_numpy()
    in_pieces = _text(frame.get("community_code", pd.Series("", index=frame.index))).isin(pieced).to_numpy()
    untrue = {
        "community_too_small": (parent >= low) & ~in_pieces,
        "grid_too_small": parent >= low,
        "community_empty": (parent > 0) & ~in_pieces,
        "community_infeasible": feasible(parent, low, high) & ~in_pieces,
        "grid_infeasible": feasible(parent, low, high),
        "indivisible_building": largest <= high,
        "compound_kept_whole": households <= high,
    }
    outside = ~in_range(frame["households"], low, high)
    for reason, wrong in untrue.items():
        for i in np.flatnonzero(outside & (status == reason) & wrong):
            code = frame[layer.code].iloc[i]
            yield _v(
                "reason_untrue", layer, code, _untrue_message(layer, code, reason, parent[i], largest[i])
            )


def _untrue_message(layer: _Layer, code: object, reason: str, parent_hh: float, largest_hh: float) -> str:
    parent = "community" if layer is _GRIDS else "grid"
    facts = {
        "indivisible_building": f"its largest building unit has {largest_hh:.0f} households",
        "compound_kept_whole": "it is below the range, which keeping a compound whole cannot cause",
    }.get(reason, f"its {parent} has {parent_hh:.0f} households")
    return (
        f"{layer.noun} {code} is out of range with status {reason!r}, but {facts}; fix the status or the grid"
    )


def _check_locations(ctx: _Context) -> Iterator[Violation]:
    buildings, micro = ctx.layers.buildings, ctx.layers.microgrids
    pairs = ctx.plan.building_units[["building_id", "microgrid_code"]].drop_duplicates()
    b = _index_of(buildings["building_id"], pairs["building_id"])
    m = _index_of(micro["microgrid_code"], pairs["microgrid_code"])
    b, m = b[(b >= 0) & (m >= 0)], m[(b >= 0) & (m >= 0)]
    footprints = clean_geoms(buildings.geometry)
    inside = shapely.area(shapely.intersection(footprints[b], ctx.layers.micro_geoms[m]))
    touching = shapely.intersects(footprints[b], ctx.layers.micro_geoms[m]).astype(float)
    area = shapely.area(footprints)
    covered = np.bincount(b, weights=inside, minlength=len(area))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(area > 0, covered / area, np.bincount(b, weights=touching, minlength=len(area)))
    for i in np.flatnonzero(np.isin(np.arange(len(area)), b) & (share < MIN_BUILDING_SHARE)):
        building = str(buildings["building_id"].iloc[i])
        assigned = ", ".join(sorted(_text(micro["microgrid_code"].iloc[m[b == i]])))
        message = (
            f"building {building}: only {share[i]:.0%} of its footprint lies in its micro-grid(s) {assigned}"
        )
        yield Violation("building_outside_microgrid", _UNITS, building, message)


# --- helpers --------------------------------------------------------------------------------------------


def _v(rule: str, layer: _Layer, code: object, message: str) -> Violation:
    missing = code is None or code is pd.NA or (isinstance(code, float) and np.isnan(code))
    return Violation(rule, layer.name, None if missing else str(code), message)


def _text(values: pd.Series) -> pd.Series:
    """Values as strings, missing ones as ''."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _index_of(keys: pd.Series, values: pd.Series) -> NDArray[np.intp]:
    """Position of each value in ``keys`` (first occurrence), -1 where absent."""
    first = pd.Series(np.arange(len(keys)), index=keys.to_numpy(dtype=object))
    first = first[~first.index.duplicated()]
    return values.map(first).fillna(-1).to_numpy(dtype=np.intp)


_CHECKS: tuple[Callable[[_Context], Iterator[Violation]], ...] = (
    _check_shapes,
    _check_codes,
    _check_communities,
    _check_grid_tiling,
    _check_micro_tiling,
    _check_layer_households,
    _check_building_counts,
    _check_conservation,
    _check_unit_links,
    _check_status,
    _check_reasons,
    _check_locations,
)
