"""Exception tree of the gis package.

Every error names where the problem is: the file, the layer, the row and the field, so a planner can fix
the input without reading code. The API edge maps these classes to HTTP status codes.
"""

from __future__ import annotations


class GisError(Exception):
    """Base class of every error raised by :mod:`gis`."""


class DistrictError(GisError):
    """The district input is unusable as given.

    Args:
        message: what is wrong, in plain words.
        file: the file that was read.
        layer: the layer (GeoPackage table or file) where the problem is.
        row: the 0-based row in that layer, or None when the problem is not about one row.
        field: the column, or None when the problem is not about one column.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        layer: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.layer = layer
        self.row = row
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        """Return the message prefixed by its location, e.g. ``district.gpkg, layer buildings, row 4: …``."""
        where = [part for part in (self.file, _opt("layer", self.layer), _opt("row", self.row)) if part]
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class PlanError(GisError):
    """A grid plan file is unreadable or does not follow the plan contract."""


class RulesError(GisError, ValueError):
    """Grid rules are inconsistent (e.g. a minimum above its maximum)."""


def _opt(name: str, value: object) -> str | None:
    return None if value is None else f"{name} {value}"
