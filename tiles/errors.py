"""Exception tree of the tiles package; the API edge maps these classes to HTTP status codes."""

from __future__ import annotations


class TilesError(Exception):
    """Base class of every error raised by :mod:`tiles`."""


class TileOutsideBoundsError(TilesError):
    """The requested z/x/y is not a tile of the Web Mercator pyramid (or of the package that was asked)."""


class TileLayerError(TilesError):
    """A layer given for tiling is unusable: no CRS, a missing property column, an unknown layer name."""


class PackageError(TilesError):
    """An offline basemap package could not be built or read (tippecanoe missing or failed, bad .pmtiles)."""


class RasterError(TilesError):
    """Frames could not be warped into raster tiles (no usable pose, empty image, bad tile format)."""
