"""Bodies of the review queue, the case board, the dashboard trend and re-check missions (pydantic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.schemas import MAX_INT, CasePublic, CategoryCode, FlagPublic, Int

ReviewAction = Literal["accept", "reject", "duplicate", "recategorize", "accept_frame"]


class FlagReview(BaseModel):
    """One review decision on a new flag.

    ``accept`` files a case (source ``machine``) and registers it; ``reject`` keeps the flag as a hard
    negative; ``duplicate`` needs ``duplicate_of_case`` or ``duplicate_of_flag``; ``recategorize`` needs
    ``category``; ``accept_frame`` accepts every new flag of the same frame.
    """

    action: ReviewAction
    category: CategoryCode | None = None
    duplicate_of_case: Int | None = None
    duplicate_of_flag: Int | None = None
    note: str = Field(default="", max_length=2000)


class ReviewResult(BaseModel):
    """The flags a review changed (several for ``accept_frame``), with their cases."""

    flags: list[FlagPublic]


class FlagQueue(BaseModel):
    """A page of the review queue and how many new flags wait in all."""

    total: int
    offset: int
    flags: list[FlagPublic]


class CategoryPublic(BaseModel):
    code: str
    name_zh: str
    name_en: str
    standard: str
    urgent: bool
    handle_minutes: dict[str, int]


class BoardCase(CasePublic):
    """A case on the board: seconds to its deadline (negative when overdue; None without a deadline)."""

    seconds_left: int | None


class CaseBoard(BaseModel):
    """Open cases by level, overdue first then by deadline; ``undispatched`` awaits a level."""

    now: datetime
    undispatched: list[BoardCase]
    compound: list[BoardCase]
    community: list[BoardCase]
    street: list[BoardCase]


class TrendWeek(BaseModel):
    """One week (Monday to Sunday, UTC) of cases: filed, closed, closed on time, mean hours to close."""

    week_start: date
    filed: int
    closed: int
    closed_on_time: int
    mean_hours_to_close: float | None


class RecheckRequest(BaseModel):
    grid_codes: list[Annotated[str, Field(pattern=r"^\d{15}$")]] = Field(min_length=1, max_length=50)
    camera: str = Field(default="mavic3e", max_length=64, description="camera preset of drone.cameras")
    altitude_m: float = Field(default=40.0, gt=10, le=120, description="above the take-off point")
    home_lon: float | None = Field(default=None, ge=-180, le=180)
    home_lat: float | None = Field(default=None, ge=-90, le=90)


class RecheckMission(BaseModel):
    """The stored mission (``/api/v1/missions/{id}``), the cases it visits and where to download it."""

    mission_id: int = Field(le=MAX_INT)
    case_ids: list[int]
    sorties: int
    waypoints: int
    downloads: dict[str, str]
