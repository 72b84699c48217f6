"""Request and response bodies of plan editing (the planner page): moves with their tallies, split, merge,
re-gridding a selection, per-grid tallies with warnings, and the map-friendly diff."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from api.plans import Moved
from api.schemas import Int

GridCode = Annotated[str, Field(pattern=r"^\d{15}$", description="grid code: community code + 3 digits")]
MicroCode = Annotated[str, Field(pattern=r"^\d{17}$", description="micro-grid code: grid code + 2 digits")]
GridWarning = Literal["out_of_range", "disconnected", "crosses_community", "microgrid_out_of_range", "empty"]


class MoveItem(BaseModel):
    """Move one building unit (``unit_id``) or every unit of a building (``building_id``) to a micro-grid, or to
    a grid (its micro-grid nearest to the building is chosen)."""

    unit_id: Int | None = None
    building_id: str | None = Field(default=None, min_length=1, max_length=64)
    grid_code: GridCode | None = None
    microgrid_code: MicroCode | None = None

    @model_validator(mode="after")
    def _one_source_one_target(self) -> MoveItem:
        if (self.unit_id is None) == (self.building_id is None):
            raise ValueError("give exactly one of unit_id and building_id")
        if self.grid_code is None and self.microgrid_code is None:
            raise ValueError("give grid_code or microgrid_code (where to move to)")
        if self.grid_code and self.microgrid_code and not self.microgrid_code.startswith(self.grid_code):
            raise ValueError(f"micro-grid {self.microgrid_code} is not in grid {self.grid_code}")
        return self


class MoveRequest(BaseModel):
    revision: Int = Field(description="revision of the draft the edit was made on (409 when stale)")
    moves: list[MoveItem] = Field(min_length=1, max_length=1000)


class MicroTally(BaseModel):
    microgrid_code: str
    households: int
    in_range: bool


class GridTally(BaseModel):
    """A grid's households now and the gridding rules it breaks (checked on the server)."""

    grid_code: str
    community_code: str
    households: int
    buildings: int
    status: str
    locked: bool
    in_range: bool
    connected: bool
    crosses_community: bool
    warnings: list[GridWarning]
    microgrids: list[MicroTally]


class RulesPublic(BaseModel):
    grid_min: int
    grid_max: int
    micro_min: int
    micro_max: int


class TalliesPublic(BaseModel):
    revision: Int
    status: str
    rules: RulesPublic
    grids: list[GridTally]


class MoveResult(BaseModel):
    """The new revision, what moved, and the tallies of every grid the moves touched."""

    revision: Int
    moved: list[Moved] = Field(description="units that moved; moving one back to from_microgrid undoes it")
    grids: list[GridTally]


class MergeRequest(BaseModel):
    revision: Int
    grid_codes: list[GridCode] = Field(min_length=2, max_length=2, description="the first code is kept")


class EditResult(BaseModel):
    """The new revision and the tallies of the grids an edit made or changed."""

    revision: Int
    removed: list[str]
    grids: list[GridTally]


LonLat = tuple[
    Annotated[float, Field(ge=-180, le=180, description="WGS-84 longitude, degrees")],
    Annotated[float, Field(ge=-90, le=90, description="WGS-84 latitude, degrees")],
]


class SplitRequest(BaseModel):
    """Split a grid in two: along ``line`` (WGS-84 points, crossing the grid from edge to edge) when given,
    otherwise where the gridder cuts it best."""

    revision: Int
    line: list[LonLat] | None = Field(default=None, min_length=2, max_length=500)


class RegridRequest(BaseModel):
    revision: Int
    grid_codes: list[GridCode] = Field(min_length=1, max_length=200)
