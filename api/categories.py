"""The case categories: one table for flags, cases, time limits and Open311 services.

The codes are those of the detector's category scheme (:data:`vision.flags.DEFAULT_SCHEME`, the GB/T 30428.2
lineage of digital city management): ``0101`` 私搭乱建, ``0102`` 暴露垃圾, ``0505`` 机动车乱停放,
``0506`` 非机动车乱停放, ``0507`` 乱堆物堆料. A city replaces or adds categories with the same CSV file the
detector reads (``SKYGRID_CATEGORIES_CSV``, see :func:`vision.flags.read_scheme`) and overrides time limits
and urgency per code in the settings, so the detector and the service always speak the same codes.

Example:
    >>> table = default_table()
    >>> table.require("0505").name_zh
    '机动车乱停放'
    >>> table.handle_minutes()["0505"]["compound"]
    60
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from api.errors import InputError
from api.workflow import FALLBACK_HANDLE_MINUTES
from vision.flags import DEFAULT_SCHEME, CategoryScheme, FlagsError, read_scheme

#: Minutes to handle a case per level when its category has no limits of its own (``"*"`` in settings).
FALLBACK_MINUTES: Final[Mapping[str, int]] = MappingProxyType(dict(FALLBACK_HANDLE_MINUTES))
_HOUR = 60
_DAY = 24 * _HOUR
#: Default minutes to handle per category code and level (compound, community, street).
DEFAULT_LIMITS: Final[Mapping[str, Mapping[str, int]]] = MappingProxyType(
    {
        "0101": {"compound": 7 * _DAY, "community": 15 * _DAY, "street": 30 * _DAY},
        "0102": {"compound": 4 * _HOUR, "community": 12 * _HOUR, "street": _DAY},
        "0505": {"compound": 60, "community": 2 * _HOUR, "street": 4 * _HOUR},
        "0506": {"compound": 2 * _HOUR, "community": 4 * _HOUR, "street": 8 * _HOUR},
        "0507": {"compound": 12 * _HOUR, "community": _DAY, "street": 2 * _DAY},
    }
)
#: Codes dispatched within the urgent limit whatever the report's priority (a parked car drives away).
DEFAULT_URGENT: Final = frozenset({"0505"})


@dataclass(frozen=True)
class CaseCategory:
    """One category: code, Chinese and English name, the standard it comes from, urgency and time limits."""

    code: str
    name_zh: str
    name_en: str
    standard: str
    urgent: bool
    handle_minutes: Mapping[str, int]


@dataclass(frozen=True)
class CategoryTable:
    """The categories by code (immutable)."""

    by_code: Mapping[str, CaseCategory]
    fallback_minutes: Mapping[str, int] = field(default_factory=lambda: FALLBACK_MINUTES)

    def codes(self) -> list[str]:
        """The valid codes, sorted."""
        return sorted(self.by_code)

    def get(self, code: str) -> CaseCategory | None:
        """The category of ``code``, or None."""
        return self.by_code.get(code)

    def require(self, code: str, field: str = "category") -> CaseCategory:
        """The category of ``code``; raises :class:`InputError` naming the valid codes."""
        category = self.by_code.get(code)
        if category is None:
            valid = ", ".join(f"{c.code} {c.name_zh}" for c in self.by_code.values())
            raise InputError(
                f"unknown category {code!r}; valid codes: {valid} / 未知类别", where={"field": field}
            )
        return category

    def handle_minutes(self) -> dict[str, dict[str, int]]:
        """Time limits per code and level plus the ``"*"`` fallback, as :class:`api.workflow.TimeLimits` takes."""
        table = {code: dict(c.handle_minutes) for code, c in self.by_code.items()}
        return {"*": dict(self.fallback_minutes), **table}

    def urgent_codes(self) -> frozenset[str]:
        """Codes whose cases are always dispatched within the urgent limit."""
        return frozenset(code for code, c in self.by_code.items() if c.urgent)


def table_from_scheme(
    scheme: CategoryScheme,
    *,
    limits: Mapping[str, Mapping[str, int]] = DEFAULT_LIMITS,
    urgent: Iterable[str] = DEFAULT_URGENT,
) -> CategoryTable:
    """The categories of a detector scheme (one per code), with time limits and urgency per code.

    Levels missing from ``limits`` (and codes missing altogether) take ``limits["*"]``, else
    :data:`FALLBACK_MINUTES`.
    """
    urgent_codes = frozenset(urgent)
    fallback = {**FALLBACK_MINUTES, **limits.get("*", {})}
    by_code: dict[str, CaseCategory] = {}
    for category in scheme.by_class.values():
        minutes = {**fallback, **limits.get(category.code, {})}
        by_code[category.code] = CaseCategory(
            code=category.code,
            name_zh=category.name,
            name_en=category.name_en,
            standard=category.standard,
            urgent=category.code in urgent_codes,
            handle_minutes=MappingProxyType(minutes),
        )
    return CategoryTable(MappingProxyType(dict(sorted(by_code.items()))), MappingProxyType(fallback))


def default_table() -> CategoryTable:
    """The table of :data:`vision.flags.DEFAULT_SCHEME` with the default limits and urgency."""
    return table_from_scheme(DEFAULT_SCHEME)


def load_table(
    csv_path: Path | None,
    *,
    limits: Mapping[str, Mapping[str, int]],
    urgent: Iterable[str],
) -> CategoryTable:
    """The service's table: the default scheme, or a city's CSV over it, with ``limits`` over the defaults.

    Raises:
        InputError: the CSV is unreadable (the message names the file, line and field), or ``limits`` name
            an unknown code or level.
    """
    try:
        scheme = DEFAULT_SCHEME if csv_path is None else read_scheme(csv_path)
    except FlagsError as error:
        raise InputError(str(error), where={"setting": "categories_csv"}) from None
    merged = {code: {**DEFAULT_LIMITS.get(code, {}), **levels} for code, levels in limits.items()}
    _check_limits(table_from_scheme(scheme), limits)
    return table_from_scheme(scheme, limits={**DEFAULT_LIMITS, **merged}, urgent=urgent)


def _check_limits(table: CategoryTable, limits: Mapping[str, Mapping[str, int]]) -> None:
    for code, levels in limits.items():
        if code != "*" and table.get(code) is None:
            table.require(code, field="handle_minutes")
        unknown = set(levels) - set(FALLBACK_MINUTES)
        if unknown:
            raise InputError(
                f"handle_minutes[{code!r}]: unknown level(s) {', '.join(sorted(unknown))}; "
                f"levels are {', '.join(FALLBACK_MINUTES)}",
                where={"setting": "handle_minutes", "code": code},
            )
