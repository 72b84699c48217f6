"""Tile cache: LRU bounds, invalidation by plan version, thread safety, and content etags."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point

from tiles.cache import DiskTileCache, TileCache, TileKey, frames_etag


def _key(version: str = "v1", x: int = 0, layers: tuple[str, ...] = ("grids",)) -> TileKey:
    return TileKey(layers, version, 14, x, 0)


def test_hit_and_miss_are_counted() -> None:
    cache = TileCache()
    assert cache.get(_key()) is None
    cache.put(_key(), b"abc")
    assert cache.get(_key()) == b"abc"
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.tiles, stats.bytes) == (1, 1, 1, 3)


def test_a_probe_counts_a_hit_but_leaves_the_miss_to_the_render() -> None:
    cache = TileCache()
    assert cache.probe(_key()) is None
    assert cache.get_or_render(_key(), lambda: b"abc") == b"abc"
    assert cache.probe(_key()) == b"abc"
    stats = cache.stats
    assert (stats.hits, stats.misses) == (1, 1)


def test_key_includes_layers_and_version() -> None:
    cache = TileCache()
    cache.put(_key("v1", layers=("grids",)), b"grids v1")
    assert cache.get(_key("v1", layers=("grids", "buildings"))) is None
    assert cache.get(_key("v2", layers=("grids",))) is None
    assert cache.get(_key("v1", layers=("grids",))) == b"grids v1"


def test_byte_bound_evicts_least_recently_used() -> None:
    cache = TileCache(max_bytes=10)
    for x in range(3):
        cache.put(_key(x=x), b"1234")  # 12 bytes > 10: tile 0 goes
    assert cache.get(_key(x=0)) is None
    assert cache.get(_key(x=1)) == b"1234"  # now most recent
    cache.put(_key(x=3), b"1234")  # tile 2 is the least recently used
    assert cache.get(_key(x=2)) is None
    assert cache.get(_key(x=1)) == b"1234"
    assert cache.stats.evictions == 2
    assert cache.stats.bytes <= 10


def test_tile_bound_and_replacement() -> None:
    cache = TileCache(max_tiles=2)
    cache.put(_key(x=0), b"")
    cache.put(_key(x=0), b"longer")  # replaces, does not double count
    assert cache.stats.tiles == 1 and cache.stats.bytes == 6
    cache.put(_key(x=1), b"a")
    cache.put(_key(x=2), b"b")
    assert cache.get(_key(x=0)) is None
    assert cache.stats.tiles == 2


def test_oversized_tile_is_not_stored() -> None:
    cache = TileCache(max_bytes=4)
    cache.put(_key(), b"12345")
    assert cache.get(_key()) is None
    assert cache.stats.bytes == 0


def test_invalidate_and_retain_by_version() -> None:
    cache = TileCache()
    for version in ("v1", "v2", "v3"):
        for x in range(4):
            cache.put(_key(version, x), version.encode())
    assert cache.invalidate("v1") == 4
    assert cache.get(_key("v1", 0)) is None
    assert cache.retain("v3") == 4
    assert cache.stats.tiles == 4 and cache.stats.bytes == 8
    assert cache.get(_key("v3", 2)) == b"v3"
    cache.clear()
    assert cache.stats.tiles == 0


def test_get_or_render_renders_once() -> None:
    cache = TileCache()
    calls: list[int] = []

    def render() -> bytes:
        calls.append(1)
        return b"tile"

    assert cache.get_or_render(_key(), render) == b"tile"
    assert cache.get_or_render(_key(), render) == b"tile"
    assert len(calls) == 1


def test_bad_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_bytes=0"):
        TileCache(max_bytes=0)


def test_concurrent_use_keeps_the_byte_count_right() -> None:
    cache = TileCache(max_bytes=5_000)

    def work(worker: int) -> None:
        for i in range(400):
            cache.put(_key(x=(worker * 1000 + i) % 700), b"x" * (i % 37))
            cache.get(_key(x=i % 700))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.stats
    assert stats.bytes <= 5_000
    assert stats.hits + stats.misses == 1600


def _frame(households: int, x: float = 120.7) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"households": [households]}, geometry=[Point(x, 31.3)], crs="EPSG:4326")


def test_etag_follows_content() -> None:
    base = frames_etag({"grids": _frame(400)})
    assert frames_etag({"grids": _frame(400)}) == base
    assert frames_etag({"grids": _frame(401)}) != base  # an attribute changed
    assert frames_etag({"grids": _frame(400, x=120.71)}) != base  # a geometry moved
    assert frames_etag({"microgrids": _frame(400)}) != base  # another layer
    assert frames_etag({"grids": _frame(400).to_crs("EPSG:3857")}) != base


def test_disk_cache_survives_a_new_instance(tmp_path: Path) -> None:
    cache = DiskTileCache(tmp_path / "tiles")
    cache.put(_key("v1", 3), b"tile three")
    assert cache.get(_key("v1", 3)) == b"tile three"
    reopened = DiskTileCache(tmp_path / "tiles")
    assert reopened.get(_key("v1", 3)) == b"tile three"
    assert reopened.stats.bytes == len(b"tile three")
    assert reopened.get(_key("v1", 4)) is None
    assert (reopened.stats.hits, reopened.stats.misses, reopened.stats.tiles) == (1, 1, 1)
    assert not list((tmp_path / "tiles").rglob("*.tmp"))


def test_disk_cache_invalidates_and_retains(tmp_path: Path) -> None:
    cache = DiskTileCache(tmp_path)
    for version in ("v1", "v2"):
        for x in range(3):
            cache.put(_key(version, x), b"abcd")
    assert cache.invalidate("v1") == 3
    assert cache.get(_key("v1", 0)) is None and cache.get(_key("v2", 0)) == b"abcd"
    cache.put(_key("v3", 0), b"ef")
    assert cache.retain("v3") == 3
    assert cache.stats.tiles == 1 and cache.stats.bytes == 2


def test_disk_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = DiskTileCache(tmp_path, max_bytes=10)
    cache.put(_key(x=0), b"1234")
    cache.put(_key(x=1), b"1234")
    old = time.time() - 100
    os.utime(cache.path(_key(x=0)), (old, old))
    os.utime(cache.path(_key(x=1)), (old + 1, old + 1))
    assert cache.get(_key(x=0)) == b"1234"  # now the most recent
    cache.put(_key(x=2), b"1234")
    assert cache.get(_key(x=1)) is None
    assert cache.get(_key(x=0)) == b"1234" and cache.get(_key(x=2)) == b"1234"
    assert cache.stats.evictions == 1 and cache.stats.bytes == 8


def test_disk_cache_names_cannot_escape_the_folder(tmp_path: Path) -> None:
    cache = DiskTileCache(tmp_path / "cache")
    for version in ("..", "../evil", "a/b", ".hidden"):
        path = cache.path(TileKey(("grids", "../x"), version, 1, 0, 0))
        assert path.resolve().is_relative_to((tmp_path / "cache").resolve())
        assert ".." not in path.relative_to(tmp_path / "cache").parts
    cache.put(TileKey(("grids",), "../evil", 1, 0, 0), b"x")
    assert not (tmp_path / "evil").exists()
