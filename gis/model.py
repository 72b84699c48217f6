"""Core value types of the gridding pipeline: the district, the rules and the grid plan.

One district flows in, one plan flows out. Both hold GeoDataFrames in the *input's* CRS; the gridder works in
a local metric CRS internally and converts back at the boundary. Column contracts are written out below and
checked on construction, so a malformed frame fails where it is made, not three stages later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd

from gis.errors import PlanError, RulesError

#: Columns every buildings frame of a :class:`District` carries after reading.
BUILDING_COLUMNS = (
    "building_id",  # str, unique
    "households",  # int >= 0
    "households_estimated",  # bool: households came from area x floors / m2_per_household
    "floors",  # Int64 (nullable)
    "units",  # Int64 (nullable): number of stairwells
    "compound_id",  # str or None
    "community_code",  # str or None (filled by spatial join when absent)
)
COMMUNITY_COLUMNS = ("community_code", "name")
COMPOUND_COLUMNS = ("compound_id", "name")
ROAD_COLUMNS = ("kind",)

GRID_COLUMNS = ("grid_code", "community_code", "households", "buildings", "status", "note")
MICROGRID_COLUMNS = ("microgrid_code", "grid_code", "households", "status", "note")
UNIT_COLUMNS = (
    "building_id",
    "unit",  # 0 = whole building, else stairwell number 1..n
    "floor_from",  # Int64 (nullable) first floor of a floor-range split
    "floor_to",
    "households",
    "grid_code",
    "microgrid_code",
)

#: Status of a grid or micro-grid whose household count is inside its range.
STATUS_OK = "ok"
#: Reason codes for grids and micro-grids outside their range. Every non-ok status is one of these.
STATUS_REASONS: dict[str, str] = {
    "community_too_small": "the community has fewer households than a grid's minimum, so it is one grid",
    "community_infeasible": "the community's household total cannot be divided into parts inside the range",
    "community_empty": "the community has no households",
    "indivisible_building": "a building, stairwell or floor too large for the range cannot be split further",
    "compound_kept_whole": "keeping compounds whole left this grid outside the range",
    "grid_too_small": "the grid has fewer households than a micro-grid's minimum, so it is one micro-grid",
    "grid_infeasible": "the grid's household total cannot be divided into micro-grids inside the range",
    "disconnected_community": "the community area is in several pieces, each gridded separately",
    "no_balanced_cut": "no connected cut inside the range was found for this area",
    "edited": "set by hand in the editor",
}


@dataclass(frozen=True)
class GridRules:
    """Household ranges and estimation settings for gridding.

    Args:
        grid_min: smallest households of a grid (网格), default 300.
        grid_max: largest households of a grid, default 500.
        micro_min: smallest households of a micro-grid (微网格), default 50.
        micro_max: largest households of a micro-grid, default 80.
        m2_per_household: floor area per household used where households are missing.
        seed: seed of every random choice; same input and seed give the same plan.
        straighten_boundaries: pull shared grid and micro-grid boundaries taut between the buildings
            (:mod:`gis.smooth`); no building changes grid.
    """

    grid_min: int = 300
    grid_max: int = 500
    micro_min: int = 50
    micro_max: int = 80
    m2_per_household: float = 90.0
    seed: int = 0
    straighten_boundaries: bool = True

    def __post_init__(self) -> None:
        for low, high, what in (
            (self.grid_min, self.grid_max, "grid"),
            (self.micro_min, self.micro_max, "micro"),
        ):
            if not 0 < low <= high:
                raise RulesError(f"{what} range must satisfy 0 < min <= max, got {low}:{high}")
        if self.micro_max > self.grid_min:
            raise RulesError(
                f"micro-grid maximum {self.micro_max} exceeds grid minimum {self.grid_min}: "
                "a grid must hold at least one full micro-grid"
            )
        if self.m2_per_household <= 0:
            raise RulesError(f"m2_per_household must be positive, got {self.m2_per_household}")


@dataclass(frozen=True)
class District:
    """A district ready for gridding: buildings, communities and the optional compounds and roads.

    All frames share one CRS (the input's). ``source`` names where it came from, for messages.
    """

    buildings: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    compounds: gpd.GeoDataFrame | None = None
    roads: gpd.GeoDataFrame | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        _require(self.buildings, BUILDING_COLUMNS, "buildings", self.source)
        _require(self.communities, COMMUNITY_COLUMNS, "communities", self.source)
        if self.compounds is not None:
            _require(self.compounds, COMPOUND_COLUMNS, "compounds", self.source)
        if self.roads is not None:
            _require(self.roads, ROAD_COLUMNS, "roads", self.source)
        crs = self.buildings.crs
        if crs is None:
            raise PlanError(f"{self.source}: buildings have no CRS")
        for name, frame in (
            ("communities", self.communities),
            ("compounds", self.compounds),
            ("roads", self.roads),
        ):
            if frame is not None and frame.crs != crs:
                raise PlanError(
                    f"{self.source}: layer {name} is in {frame.crs}, buildings in {crs}; use to_crs()"
                )

    @property
    def households(self) -> int:
        """Total households of the district."""
        return int(self.buildings["households"].sum())


@dataclass(frozen=True)
class GridPlan:
    """The result of gridding: grids, micro-grids, building units and the quality report.

    This is the contract of the plan GeoPackage that the web editor, the drone planner and outside GIS
    users rely on; layers and columns are listed in :data:`GRID_COLUMNS`, :data:`MICROGRID_COLUMNS` and
    :data:`UNIT_COLUMNS`. ``report`` holds one row per community plus one ``overall`` row.
    """

    grids: gpd.GeoDataFrame
    microgrids: gpd.GeoDataFrame
    building_units: gpd.GeoDataFrame
    report: pd.DataFrame
    rules: GridRules = field(default_factory=GridRules)

    def __post_init__(self) -> None:
        _require(self.grids, GRID_COLUMNS, "grids", "plan")
        _require(self.microgrids, MICROGRID_COLUMNS, "microgrids", "plan")
        _require(self.building_units, UNIT_COLUMNS, "building_units", "plan")

    @property
    def crs(self) -> object:
        """CRS of every layer (the district's input CRS)."""
        return self.grids.crs


def _require(frame: pd.DataFrame, columns: tuple[str, ...], layer: str, source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PlanError(
            f"{source}: layer {layer} lacks column(s) {', '.join(missing)}; has {list(frame.columns)}"
        )
