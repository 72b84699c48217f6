"""A bounded in-memory tile cache keyed by (layer set, plan version, z, x, y), invalidated by plan version.

The cache is a plain object the service owns (one per process, or one per test): there is no module-level
state. :class:`DiskTileCache` is the same on disk, for tiles that should survive a restart. Entries are evicted least-recently-used first when either bound (bytes or tiles) is exceeded. When a
plan changes, its new version has a new etag (:func:`frames_etag`), so new requests miss; the old version's
tiles are dropped at once with :meth:`TileCache.invalidate` (or every other version's with :meth:`retain`).

Example:
    >>> cache = TileCache(max_bytes=1_000_000)
    >>> key = TileKey(("grids",), "v1", 14, 13685, 6690)
    >>> cache.get_or_render(key, lambda: b"tile bytes")
    b'tile bytes'
    >>> cache.get(key), cache.stats.hits
    (b'tile bytes', 1)
    >>> cache.invalidate("v1"), cache.get(key)
    (1, None)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

__all__ = ["CacheStats", "DiskTileCache", "TileCache", "TileKey", "frames_etag"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,79}")  # no ".", "..", hidden names or slashes


@dataclass(frozen=True)
class TileKey:
    """What identifies one rendered tile: the layers it holds (in order), the plan version and z/x/y."""

    layers: tuple[str, ...]
    version: str
    z: int
    x: int
    y: int


@dataclass(frozen=True)
class CacheStats:
    """Counters of a cache since it was made."""

    hits: int
    misses: int
    evictions: int
    tiles: int
    bytes: int


class TileCache:
    """Thread-safe LRU cache of encoded tiles, bounded in bytes and in number of tiles.

    Args:
        max_bytes: the most bytes of tile data held (default 256 MiB).
        max_tiles: the most tiles held (empty tiles count too).

    Raises:
        ValueError: a bound is not positive.
    """

    def __init__(self, *, max_bytes: int = 256 * 2**20, max_tiles: int = 200_000) -> None:
        if max_bytes <= 0 or max_tiles <= 0:
            raise ValueError(
                f"cache bounds must be positive, got max_bytes={max_bytes}, max_tiles={max_tiles}"
            )
        self._max_bytes = max_bytes
        self._max_tiles = max_tiles
        self._entries: OrderedDict[TileKey, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: TileKey) -> bytes | None:
        """The cached tile, or None; a hit makes the tile the most recently used."""
        with self._lock:
            data = self._entries.get(key)
            if data is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return data

    def probe(self, key: TileKey) -> bytes | None:
        """Like :meth:`get`, but a miss is not counted: for a fast path (a server's event loop) whose miss
        goes on to :meth:`get_or_render` the same key, which counts it, so a request is one hit or one miss."""
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
                self._hits += 1
            return data

    def put(self, key: TileKey, data: bytes) -> None:
        """Store a tile (replacing any under the same key) and evict old tiles beyond the bounds.

        A tile larger than ``max_bytes`` on its own is not stored.
        """
        if len(data) > self._max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= len(previous)
            self._entries[key] = data
            self._bytes += len(data)
            self._evict()

    def get_or_render(self, key: TileKey, render: Callable[[], bytes]) -> bytes:
        """The cached tile, else ``render()``'s result, stored. Rendering runs outside the lock."""
        data = self.get(key)
        if data is None:
            data = render()
            self.put(key, data)
        return data

    def invalidate(self, version: str) -> int:
        """Drop every tile of a plan version (the plan changed or was deleted); returns how many were dropped."""
        return self._drop(lambda key: key.version == version)

    def retain(self, version: str) -> int:
        """Drop the tiles of every version but ``version`` (the one now published); returns how many."""
        return self._drop(lambda key: key.version != version)

    def clear(self) -> None:
        """Drop everything (the counters stay)."""
        self._drop(lambda key: True)

    @property
    def stats(self) -> CacheStats:
        """Hits, misses and evictions so far, and the tiles and bytes held now."""
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, len(self._entries), self._bytes)

    def _drop(self, doomed: Callable[[TileKey], bool]) -> int:
        with self._lock:
            keys = [key for key in self._entries if doomed(key)]
            for key in keys:
                self._bytes -= len(self._entries.pop(key))
            return len(keys)

    def _evict(self) -> None:
        while self._bytes > self._max_bytes or len(self._entries) > self._max_tiles:
            _, data = self._entries.popitem(last=False)
            self._bytes -= len(data)
            self._evictions += 1


class DiskTileCache:
    """Tiles kept as files under a folder, so they survive a restart: ``ROOT/VERSION/LAYERS/Z/X/Y.mvt``.

    Same interface as :class:`TileCache`. Writes are atomic (a temporary file renamed into place), a hit
    refreshes the file's modification time, and when the folder grows past ``max_bytes`` the least recently
    used tiles are deleted. Version and layer names that are not plain file names are hashed.

    Args:
        root: the cache folder (created if needed).
        max_bytes: the most bytes of tile files kept (default 1 GiB).
    """

    def __init__(self, root: Path, *, max_bytes: int = 2**30) -> None:
        if max_bytes <= 0:
            raise ValueError(f"cache bound must be positive, got max_bytes={max_bytes}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._bytes = sum(path.stat().st_size for path in self._tiles())
        self._hits = self._misses = self._evictions = 0

    def path(self, key: TileKey) -> Path:
        """Where the tile of ``key`` is (or would be) stored."""
        layers = _file_name("+".join(key.layers))
        return self.root / _file_name(key.version) / layers / str(key.z) / str(key.x) / f"{key.y}.mvt"

    def get(self, key: TileKey) -> bytes | None:
        """The cached tile, or None."""
        path = self.path(key)
        try:
            data = path.read_bytes()
            os.utime(path)
        except FileNotFoundError:
            with self._lock:
                self._misses += 1
            return None
        with self._lock:
            self._hits += 1
        return data

    def put(self, key: TileKey, data: bytes) -> None:
        """Store a tile atomically, then trim the folder to ``max_bytes``."""
        if len(data) > self._max_bytes:
            return
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_bytes(data)
            previous = path.stat().st_size if path.exists() else 0
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        with self._lock:
            self._bytes += len(data) - previous
            if self._bytes > self._max_bytes:
                self._evict()

    def get_or_render(self, key: TileKey, render: Callable[[], bytes]) -> bytes:
        """The cached tile, else ``render()``'s result, stored."""
        data = self.get(key)
        if data is None:
            data = render()
            self.put(key, data)
        return data

    def invalidate(self, version: str) -> int:
        """Delete every tile of a plan version; returns how many were deleted."""
        return self._remove([self.root / _file_name(version)])

    def retain(self, version: str) -> int:
        """Delete the tiles of every version but ``version``; returns how many were deleted."""
        keep = _file_name(version)
        return self._remove([folder for folder in self.root.iterdir() if folder.name != keep])

    @property
    def stats(self) -> CacheStats:
        """Hits, misses and evictions of this object, and the tiles and bytes on disk now."""
        tiles = sum(1 for _ in self._tiles())
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, tiles, self._bytes)

    def _tiles(self) -> Iterator[Path]:
        return self.root.glob("*/*/*/*/*.mvt")

    def _remove(self, folders: list[Path]) -> int:
        with self._lock:
            doomed = [path for folder in folders for path in folder.glob("*/*/*/*.mvt")]
            self._bytes -= sum(path.stat().st_size for path in doomed)
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
            return len(doomed)

    def _evict(self) -> None:
        """Delete least recently used tiles until under the bound (called with the lock held)."""
        by_age = sorted(((path.stat().st_mtime_ns, path) for path in self._tiles()), key=lambda item: item[0])
        for _, path in by_age:
            if self._bytes <= self._max_bytes:
                break
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            self._bytes -= size
            self._evictions += 1


def _file_name(name: str) -> str:
    """``name`` if it is a safe file name, else a hash of it."""
    if _SAFE_NAME.fullmatch(name):
        return name
    return hashlib.blake2b(name.encode(), digest_size=12).hexdigest()


def frames_etag(frames: Mapping[str, gpd.GeoDataFrame]) -> str:
    """A content hash of layers (names, CRS, columns, values and geometries): equal content, equal etag.

    Use it as the plan version of :class:`TileKey` when the store has no version number, or as the HTTP ETag.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(frames):
        frame = frames[name]
        digest.update(f"{name}\x1e{frame.crs}".encode())
        digest.update("\x1f".join(map(str, frame.columns)).encode())
        attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        digest.update(pd.util.hash_pandas_object(attributes.astype(str), index=False).to_numpy().tobytes())
        for wkb in shapely.to_wkb(frame.geometry.to_numpy(), hex=False):
            digest.update(b"" if wkb is None else wkb)
    return digest.hexdigest()
