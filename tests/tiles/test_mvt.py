"""Vector tiles: decode what we encode and check features, properties, placement, winding, buffers and errors."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import mercantile
import numpy as np
import pandas as pd
import pytest
import shapely
from mapbox_vector_tile.Mapbox import vector_tile_pb2
from shapely.geometry import LineString, Point, Polygon, box, shape

from gis.demo import make_demo_district
from gis.gridder import make_plan
from gis.io import read_district
from gis.model import GridRules
from tests.shared_data import shared_path
from tiles.errors import TileLayerError, TileOutsideBoundsError
from tiles.mvt import (
    TILE_EXTENT,
    LayerGeometry,
    LayerSpec,
    VectorTileSource,
    buildings_with_codes,
    plan_layers,
)
from tiles.mvt_encode import (
    Properties,
    TileGrid,
    _varint,
    _varints,
    encode_layer,
    encode_layers,
    encode_tile,
)

Z = 16
LON, LAT = 120.7050, 31.3050
TILE = mercantile.tile(LON, LAT, Z)
WEST, SOUTH, EAST, NORTH = mercantile.bounds(TILE)


def _at(fx: float, fy: float) -> tuple[float, float]:
    """Lon/lat at a fraction of the test tile (fx from west, fy from north)."""
    x0, y0, x1, y1 = mercantile.xy_bounds(TILE)
    lon, lat = mercantile.lnglat(x0 + fx * (x1 - x0), y1 - fy * (y1 - y0))
    return float(lon), float(lat)


def _polygon(*fractions: tuple[float, float]) -> Polygon:
    return Polygon([_at(fx, fy) for fx, fy in fractions])


@pytest.fixture(scope="module")
def frames() -> dict[str, gpd.GeoDataFrame]:
    outer = [(0.1, 0.1), (0.4, 0.1), (0.4, 0.4), (0.1, 0.4)]
    hole = [(0.2, 0.2), (0.3, 0.2), (0.3, 0.3), (0.2, 0.3)]
    courtyard = Polygon([_at(*f) for f in outer], [[_at(*f) for f in hole]])
    buildings = gpd.GeoDataFrame(
        {
            "building_id": ["B1", "B2", "B3"],
            "households": [120, 6, 0],
            "secret": ["x", "y", "z"],
        },
        geometry=[
            courtyard,
            _polygon((0.6, 0.6), (0.7, 0.6), (0.7, 0.7), (0.6, 0.7)),
            _polygon((-0.005, 0.5), (-0.001, 0.5), (-0.001, 0.51), (-0.005, 0.51)),  # in the buffer, west
        ],
        crs="EPSG:4326",
    )
    roads = gpd.GeoDataFrame(
        {"kind": ["secondary"]}, geometry=[LineString([_at(-0.5, 0.5), _at(1.5, 0.5)])], crs="EPSG:4326"
    )
    flags = gpd.GeoDataFrame(
        {"flag_id": [7], "category": ["illegal_parking"], "confidence": [0.875]},
        geometry=[Point(_at(0.5, 0.25))],
        crs="EPSG:4326",
    )
    return {"buildings": buildings, "roads": roads, "flags": flags}


@pytest.fixture(scope="module")
def source(frames: dict[str, gpd.GeoDataFrame]) -> VectorTileSource:
    specs = {
        "buildings": LayerSpec(("building_id", "households"), min_zoom=14, simplify=0.0),
        "roads": LayerSpec(("kind",)),
        "flags": LayerSpec(("flag_id", "category", "confidence")),
    }
    return VectorTileSource.from_frames(frames, specs)


def _decode(data: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    return decoded


def _to_lonlat(x: float, y: float, tile: mercantile.Tile = TILE) -> tuple[float, float]:
    x0, _, x1, y1 = mercantile.xy_bounds(tile)
    size = x1 - x0
    lon, lat = mercantile.lnglat(x0 + x * size / TILE_EXTENT, y1 - y * size / TILE_EXTENT)
    return float(lon), float(lat)


def _pixel_deg() -> float:
    return float(EAST - WEST) / TILE_EXTENT


def test_features_and_selected_properties(source: VectorTileSource) -> None:
    layers = _decode(source.tile(TILE.z, TILE.x, TILE.y))
    assert set(layers) == {"buildings", "roads", "flags"}
    buildings = {f["properties"]["building_id"]: f for f in layers["buildings"]["features"]}
    assert set(buildings) == {"B1", "B2", "B3"}
    assert buildings["B1"]["properties"] == {"building_id": "B1", "households": 120}  # "secret" not selected
    assert buildings["B3"]["properties"]["households"] == 0
    flag = layers["flags"]["features"][0]
    assert flag["properties"] == {"flag_id": 7, "category": "illegal_parking", "confidence": 0.875}
    assert layers["roads"]["features"][0]["geometry"]["type"] == "LineString"


def test_coordinates_map_back_within_a_pixel(
    source: VectorTileSource, frames: dict[str, gpd.GeoDataFrame]
) -> None:
    layers = _decode(source.tile(TILE.z, TILE.x, TILE.y))
    b2 = next(f for f in layers["buildings"]["features"] if f["properties"]["building_id"] == "B2")
    decoded = np.array([_to_lonlat(x, y) for x, y in b2["geometry"]["coordinates"][0]])
    original = np.array(frames["buildings"].geometry.iloc[1].exterior.coords)
    for vertex in original:
        assert np.min(np.hypot(*(decoded - vertex).T)) <= _pixel_deg()
    flag = layers["flags"]["features"][0]["geometry"]["coordinates"]
    assert np.allclose(_to_lonlat(*flag), _at(0.5, 0.25), atol=_pixel_deg())


def test_polygon_with_hole_keeps_it(source: VectorTileSource) -> None:
    layers = _decode(source.tile(TILE.z, TILE.x, TILE.y))
    b1 = next(f for f in layers["buildings"]["features"] if f["properties"]["building_id"] == "B1")
    polygon = shape(b1["geometry"])
    assert len(polygon.interiors) == 1
    assert polygon.area == pytest.approx((0.3 * 4096) ** 2 - (0.1 * 4096) ** 2, rel=0.01)


def _raw_rings(data: bytes, layer_name: str) -> list[list[tuple[int, int]]]:
    """Rings of the first feature of a layer, decoded from the command stream by the spec (independently)."""
    tile = vector_tile_pb2.tile()
    tile.ParseFromString(data)
    layer = next(layer for layer in tile.layers if layer.name == layer_name)
    commands = list(layer.features[0].geometry)
    rings: list[list[tuple[int, int]]] = []
    x = y = i = 0
    while i < len(commands):
        command, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if command == 7:
            continue
        if command == 1:
            rings.append([])
        for _ in range(count):
            dx, dy = commands[i], commands[i + 1]
            x += (dx >> 1) ^ -(dx & 1)
            y += (dy >> 1) ^ -(dy & 1)
            rings[-1].append((x, y))
            i += 2
    return rings


def _shoelace(ring: list[tuple[int, int]]) -> float:
    xs, ys = np.array(ring).T
    return float(np.sum(xs * np.roll(ys, -1) - np.roll(xs, -1) * ys)) / 2


def test_winding_order_follows_the_spec(source: VectorTileSource) -> None:
    exterior, hole = _raw_rings(source.tile(TILE.z, TILE.x, TILE.y), "buildings")
    assert _shoelace(exterior) > 0 > _shoelace(hole)


def test_buffer_keeps_edge_features_and_neighbour_shares_them(source: VectorTileSource) -> None:
    layers = _decode(source.tile(TILE.z, TILE.x, TILE.y))
    b3 = next(f for f in layers["buildings"]["features"] if f["properties"]["building_id"] == "B3")
    xs = [x for x, _ in b3["geometry"]["coordinates"][0]]
    assert max(xs) < 0 and min(xs) >= -64
    west = _decode(source.tile(TILE.z, TILE.x - 1, TILE.y))
    west_b3 = next(f for f in west["buildings"]["features"] if f["properties"]["building_id"] == "B3")
    assert west_b3["id"] == b3["id"]  # stable feature ids across tiles (for feature-state painting)
    road_xs = [x for x, _ in layers["roads"]["features"][0]["geometry"]["coordinates"]]
    assert min(road_xs) == -64 and max(road_xs) == TILE_EXTENT + 64


def test_empty_tile_and_min_zoom(source: VectorTileSource) -> None:
    far = mercantile.tile(2.35, 48.85, Z)
    assert source.tile(far.z, far.x, far.y) == b""
    parent = mercantile.parent(TILE, zoom=13)
    assert "buildings" not in _decode(source.tile(parent.z, parent.x, parent.y))
    assert "flags" in _decode(source.tile(parent.z, parent.x, parent.y))


def test_layer_selection(source: VectorTileSource) -> None:
    assert set(_decode(source.tile(TILE.z, TILE.x, TILE.y, layers=("flags",)))) == {"flags"}
    with pytest.raises(TileLayerError, match=r"unknown layer.*zones"):
        source.tile(TILE.z, TILE.x, TILE.y, layers=("zones",))


@pytest.mark.parametrize(("z", "x", "y"), [(-1, 0, 0), (25, 0, 0), (3, 8, 0), (3, 0, -1)])
def test_tiles_outside_the_pyramid_are_rejected(source: VectorTileSource, z: int, x: int, y: int) -> None:
    with pytest.raises(TileOutsideBoundsError, match=f"{z}"):
        source.tile(z, x, y)


def test_bad_layers_are_rejected(frames: dict[str, gpd.GeoDataFrame]) -> None:
    no_crs = frames["flags"].set_crs(None, allow_override=True)
    with pytest.raises(TileLayerError, match="layer flags: the frame has no CRS"):
        VectorTileSource.from_frames({"flags": no_crs}, {"flags": LayerSpec()})
    with pytest.raises(TileLayerError, match=r"layer roads: property column.*width_m"):
        VectorTileSource.from_frames({"roads": frames["roads"]}, {"roads": LayerSpec(("width_m",))})


def test_encoder_agrees_with_mapbox_vector_tile() -> None:
    rng = np.random.default_rng(3)
    centres = rng.uniform(100, 4000, size=(60, 2))
    shapes = np.array(
        [shapely.buffer(Point(*c), rng.uniform(5, 80), quad_segs=int(rng.integers(1, 6))) for c in centres]
        + [box(500, 500, 900, 900).difference(box(600, 600, 700, 700))]
        + [LineString([(0, 0), (100.4, 2000.6), (4096, 3)]), Point(10, 20)],
        dtype=object,
    )
    ours = _decode_ours(shapes)
    features = [{"geometry": g, "properties": {"i": i}} for i, g in enumerate(shapes)]
    theirs = mapbox_vector_tile.decode(
        mapbox_vector_tile.encode(
            [{"name": "t", "features": features}], default_options={"y_coord_down": True}
        ),
        default_options={"y_coord_down": True},
    )["t"]["features"]
    theirs = sorted(theirs, key=lambda f: f["properties"]["i"])
    assert len(ours) == len(theirs) == len(shapes)
    for a, b in zip(ours, theirs, strict=True):
        assert shape(a["geometry"]).equals(shape(b["geometry"]))


def _decode_ours(shapes: np.ndarray[Any, np.dtype[np.object_]]) -> list[dict[str, Any]]:
    encoded = encode_layer("t", shapes)
    assert sorted(encoded.rows) == list(range(len(shapes)))
    data = encode_tile([(encoded, Properties.from_columns({"i": encoded.rows}, len(encoded.rows)))])
    features: list[dict[str, Any]] = _decode(data)["t"]["features"]
    return sorted(features, key=lambda f: f["properties"]["i"])


def _same_layer(a: Any, b: Any) -> None:
    assert a.name == b.name
    for field in ("rows", "types", "geometry", "offsets"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


@pytest.mark.parametrize("with_points", [False, True])
def test_layers_encoded_together_equal_layers_encoded_apart(with_points: bool) -> None:
    rng = np.random.default_rng(5)
    polygons = [shapely.buffer(Point(*rng.uniform(0, 4000, 2)), 40.0) for _ in range(30)]
    sliver = Polygon([(10, 10), (10.2, 10), (10.2, 10.3)])  # dropped: rows of later layers still match
    first = np.array([*polygons[:10], sliver, *polygons[10:12]], dtype=object)
    second = np.array(polygons[12:] + ([Point(5, 5)] if with_points else []), dtype=object)
    named = [("a", first), ("empty", np.empty(0, dtype=object)), ("b", second)]
    grid = TileGrid(100.0, 4000.0, 0.5, -0.5)
    together = encode_layers(named, grid)
    assert [layer.name for layer in together] == ["a", "empty", "b"]
    for layer, (name, shapes) in zip(together, named, strict=True):
        _same_layer(layer, encode_layer(name, shapes, grid))
    assert 10 not in together[0].rows and len(together[1].rows) == 0


def test_a_tile_grid_maps_to_tile_units() -> None:
    shapes = np.array([box(1000, 1000, 1010, 1010), LineString([(1000, 1020), (1003.25, 1001.5)])])
    moved = encode_layer("t", shapes, TileGrid(1000.0, 1020.0, 2.0, -2.0))
    by_hand = shapely.transform(shapes, lambda xy: (xy - [1000.0, 1020.0]) * [2.0, -2.0])
    assert shapely.equals(by_hand[0], box(0, 20, 20, 40)) and shapely.equals(
        by_hand[1], LineString([(0, 0), (6.5, 37.0)])
    )
    _same_layer(moved, encode_layer("t", by_hand))


def test_a_tile_of_several_layers_agrees_with_mapbox_vector_tile() -> None:
    rng = np.random.default_rng(8)
    layers = {
        name: [shapely.buffer(Point(*rng.uniform(0, 4096, 2)), 300.0, quad_segs=3) for _ in range(count)]
        for name, count in (("one", 7), ("two", 1), ("three", 12))
    }
    encoded = encode_layers([(name, np.array(shapes, dtype=object)) for name, shapes in layers.items()])
    data = encode_tile(
        [
            (layer, Properties.from_columns({"n": [f"{layer.name}{i}" for i in layer.rows]}, len(layer.rows)))
            for layer in encoded
        ]
    )
    decoded = _decode(data)
    assert list(decoded) == list(layers)
    for name, shapes in layers.items():
        features = decoded[name]["features"]
        assert [f["properties"]["n"] for f in features] == [f"{name}{i}" for i in range(len(shapes))]
        assert [f["id"] for f in features] == list(range(1, len(shapes) + 1))
        for feature, original in zip(features, shapes, strict=True):
            assert shape(feature["geometry"]).symmetric_difference(original).area < 0.02 * original.area


def test_degenerate_geometries_are_dropped() -> None:
    sliver = Polygon([(10, 10), (10.2, 10), (10.2, 10.3)])  # collapses on the integer grid
    encoded = encode_layer("t", np.array([sliver, box(0, 0, 50, 50), LineString([(1, 1), (1.2, 1.1)])]))
    assert list(encoded.rows) == [1]


@pytest.fixture(scope="module")
def demo_source() -> tuple[VectorTileSource, Any]:
    demo = make_demo_district(10_000, seed=2)
    plan = make_plan(demo.district, GridRules())
    return VectorTileSource.from_frames(plan_layers(plan, demo.district, zones=demo.zones)), plan


def test_plan_layers_carry_grid_codes(demo_source: tuple[VectorTileSource, Any]) -> None:
    source, plan = demo_source
    units = plan.building_units
    largest = units.sort_values("households", ascending=False, kind="stable").drop_duplicates("building_id")
    grid_of = dict(zip(largest["building_id"], largest["grid_code"], strict=True))
    centre = plan.grids.geometry.union_all().representative_point()
    tile = mercantile.tile(centre.x, centre.y, 15)
    layers = _decode(source.tile(tile.z, tile.x, tile.y))
    assert {"buildings", "grids", "microgrids", "communities"} <= set(layers)
    buildings = layers["buildings"]["features"]
    assert buildings
    for feature in buildings:
        assert feature["properties"]["grid_code"] == grid_of[feature["properties"]["building_id"]]
    codes = {f["properties"]["grid_code"] for f in layers["grids"]["features"]}
    assert codes <= set(plan.grids["grid_code"])


def test_property_types_round_trip() -> None:
    shapes = np.array([Point(i * 10, 20) for i in range(4)], dtype=object)
    columns = {
        "name": np.array(["网格一", "b", None, "网格一"], dtype=object),
        "count": np.array([-3, 0, 2**40, None], dtype=object),
        "share": np.array([0.5, -1.25, None, 1e-9], dtype=object),
        "locked": np.array([True, False, None, True], dtype=object),
    }
    encoded = encode_layer("p", shapes)
    properties = Properties.from_columns(columns, 4).take(encoded.rows)
    decoded = _decode(encode_tile([(encoded, properties)]))["p"]["features"]
    by_x = {f["geometry"]["coordinates"][0] // 10: f for f in decoded}
    for i in range(4):
        expected = {key: values[i] for key, values in columns.items() if values[i] is not None}
        assert by_x[i]["properties"] == expected
        assert by_x[i]["id"] == i + 1
    assert isinstance(by_x[0]["properties"]["locked"], bool)
    assert isinstance(by_x[1]["properties"]["count"], int)  # 0 is not False: the value table keeps types


def test_feature_ids_are_source_rows_even_after_empty_geometries() -> None:
    flags = gpd.GeoDataFrame(
        {"flag_id": [1, 2, 3]}, geometry=[None, Point(), Point(_at(0.5, 0.5))], crs="EPSG:4326"
    )
    source = VectorTileSource.from_frames({"flags": flags}, {"flags": LayerSpec(("flag_id",))})
    (feature,) = _decode(source.tile(TILE.z, TILE.x, TILE.y))["flags"]["features"]
    assert feature["properties"] == {"flag_id": 3}
    assert feature["id"] == 3  # row 2 + 1


def test_vectorised_varints_match_the_protobuf_rule() -> None:
    values = np.array([0, 1, 127, 128, 300, 16_383, 16_384, 2**21, 2**35 + 7, 2**63 - 1], dtype=np.int64)
    data, sizes = _varints(values)
    expected = [_varint(int(value)) for value in values]
    assert data.tobytes() == b"".join(expected)
    assert list(sizes) == [len(chunk) for chunk in expected]
    assert _varint(300) == b"\xac\x02"  # the example of the protobuf encoding guide


def test_real_footprints_in_a_projected_crs() -> None:
    buildings = read_district(shared_path("data", "suzhou_district.gpkg")).buildings  # UTM 51N metres
    source = VectorTileSource.from_frames(
        {"buildings": buildings}, {"buildings": LayerSpec(("building_id",), simplify=0.0)}
    )
    centre = buildings.to_crs("EPSG:4326").geometry.union_all().centroid
    tile = mercantile.tile(centre.x, centre.y, 16)
    decoded = _decode(source.tile(tile.z, tile.x, tile.y))["buildings"]["features"]
    x0, y0, x1, y1 = mercantile.xy_bounds(tile)
    pad = (x1 - x0) * 64 / TILE_EXTENT
    window = box(x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    in_window = buildings.to_crs("EPSG:3857")
    expected = set(in_window.loc[in_window.intersects(window), "building_id"])
    got = {feature["properties"]["building_id"] for feature in decoded}
    assert len(expected) > 10
    # a sliver clipped at the buffer edge may vanish on the integer grid; nothing else may be missing
    assert got <= expected and len(expected - got) <= 2
    inside = in_window.loc[in_window.within(box(x0, y0, x1, y1))].iloc[0]
    feature = next(f for f in decoded if f["properties"]["building_id"] == inside["building_id"])
    vertices = np.array(feature["geometry"]["coordinates"][0], dtype=float)
    size = (x1 - x0) / TILE_EXTENT
    mercator = np.column_stack([x0 + vertices[:, 0] * size, y1 - vertices[:, 1] * size])
    original = np.array(inside.geometry.exterior.coords)
    nearest = np.min(np.hypot(*(mercator[:, None, :] - original[None, :, :]).transpose(2, 0, 1)), axis=1)
    assert nearest.max() <= size  # every vertex within one tile unit (15 cm of Mercator at z16)


def test_multipart_and_mixed_collections() -> None:
    two = shapely.MultiPolygon([box(0, 0, 10, 10), box(20, 20, 30, 30)])
    mixed = shapely.GeometryCollection([box(40, 40, 50, 50), LineString([(0, 0), (5, 5)]), Point(1, 1)])
    lines = shapely.MultiLineString([[(0, 0), (10, 0)], [(0, 5), (10, 5)]])
    encoded = encode_layer("m", np.array([two, mixed, lines], dtype=object))
    properties = Properties.from_columns({"i": encoded.rows}, len(encoded.rows))
    features = {
        f["properties"]["i"]: f for f in _decode(encode_tile([(encoded, properties)]))["m"]["features"]
    }
    assert shape(features[0]["geometry"]).equals(two)
    assert shape(features[1]["geometry"]).equals(box(40, 40, 50, 50))  # lower-dimension parts dropped
    assert shape(features[2]["geometry"]).equals(lines)


def _ring_vertices(data: bytes, layer: str) -> int:
    return sum(len(ring) for ring in _raw_rings(data, layer))


def test_detailed_layers_are_simplified_per_zoom() -> None:
    z17 = mercantile.tile(LON, LAT, 17)
    west, south, east, north = mercantile.bounds(z17)
    centre = shapely.Point((west + east) / 2, (south + north) / 2)
    disc = shapely.buffer(centre, 0.0001, quad_segs=64)  # ~10 m radius, 257 vertices, inside the z17 tile
    frame = gpd.GeoDataFrame({"zone_id": ["Z1"]}, geometry=[disc], crs="EPSG:4326")
    counts: dict[bool, list[int]] = {}
    for simplify in (True, False):
        spec = LayerSpec(("zone_id",), simplify=1.0 if simplify else 0.0)
        source = VectorTileSource.from_frames({"green": frame}, {"green": spec})
        assert not source.layers[0].shape.levels  # made on first use
        tiles = [mercantile.parent(z17, zoom=z) for z in (13, 15)] + [z17]
        counts[simplify] = [_ring_vertices(source.tile(t.z, t.x, t.y), "green") for t in tiles]
        assert set(source.layers[0].shape.levels) == ({13, 15} if simplify else set())
    assert counts[True][0] < counts[True][1] < counts[True][2]
    assert all(a <= b for a, b in zip(counts[True], counts[False], strict=True))
    assert counts[True][0] < counts[False][0]


def test_a_level_simplifies_only_the_features_its_tiles_need() -> None:
    z15 = mercantile.tile(LON, LAT, 15)
    discs = []
    for corner in (mercantile.bounds(z15), mercantile.bounds(z15.x + 3, z15.y, 15)):
        centre = shapely.Point((corner.west + corner.east) / 2, (corner.south + corner.north) / 2)
        discs.append(shapely.buffer(centre, 0.0005, quad_segs=64))
    frame = gpd.GeoDataFrame({"zone_id": ["near", "far"]}, geometry=discs, crs="EPSG:4326")
    source = VectorTileSource.from_frames({"green": frame}, {"green": LayerSpec(("zone_id",))})
    source.tile(z15.z, z15.x, z15.y)
    level = source.layers[0].shape.levels[15]
    assert level[0] is not None and level[1] is None  # the far disc waits for a tile that shows it
    far = _decode(source.tile(15, z15.x + 3, z15.y))["green"]["features"]
    assert [f["properties"]["zone_id"] for f in far] == ["far"] and level[1] is not None


def test_sources_share_a_prepared_geometry_and_read_their_own_properties() -> None:
    frame = gpd.GeoDataFrame(
        {"grid_code": ["A", "B"]},
        geometry=[_polygon((0.1, 0.1), (0.3, 0.1), (0.3, 0.3)), _polygon((0.5, 0.5), (0.7, 0.5), (0.7, 0.7))],
        crs="EPSG:4326",
    )
    spec = LayerSpec(("grid_code",))
    shared = LayerGeometry.of("b", frame, spec)
    painted = frame.assign(grid_code=["A", "A"])
    source = VectorTileSource.from_frames({"b": painted}, {"b": spec}, geometries={"b": shared})
    assert source.layers[0].shape is shared
    features = _decode(source.tile(Z, TILE.x, TILE.y))["b"]["features"]
    assert sorted(f["properties"]["grid_code"] for f in features) == ["A", "A"]
    with pytest.raises(TileLayerError, match="prepared geometry"):
        VectorTileSource.from_frames({"b": painted.iloc[:1]}, {"b": spec}, geometries={"b": shared})
    with pytest.raises(TileLayerError, match="prepared geometry"):
        VectorTileSource.from_frames(
            {"b": painted}, {"b": LayerSpec(("grid_code",), 3)}, geometries={"b": shared}
        )


def test_a_column_mixing_bools_and_numbers_keeps_each_type() -> None:
    column = np.array([True, 1, 1.0, False, 0, None], dtype=object)
    properties = Properties.from_columns({"v": column}, len(column))
    encoded = encode_layer("p", np.array([Point(i * 10, 20) for i in range(len(column))], dtype=object))
    decoded = _decode(encode_tile([(encoded, properties.take(encoded.rows))]))["p"]["features"]
    values = [f["properties"].get("v") for f in sorted(decoded, key=lambda f: f["id"])]
    assert [(type(v), v) for v in values] == [
        (bool, True), (int, 1), (float, 1.0), (bool, False), (int, 0), (type(None), None)
    ]  # fmt: skip


def test_runtime_simplification_beyond_the_levels() -> None:
    centre = shapely.Point(_at(0.5, 0.5))
    disc = shapely.buffer(centre, 0.00002, quad_segs=64)  # ~2 m radius: at z18 one tile unit is 1 cm
    frame = gpd.GeoDataFrame({"zone_id": ["Z1"]}, geometry=[disc], crs="EPSG:4326")
    coarse = VectorTileSource.from_frames({"green": frame}, {"green": LayerSpec(("zone_id",), simplify=50.0)})
    fine = VectorTileSource.from_frames({"green": frame}, {"green": LayerSpec(("zone_id",), simplify=0.0)})
    tile = mercantile.tile(centre.x, centre.y, 20)
    assert _ring_vertices(coarse.tile(20, tile.x, tile.y), "green") < _ring_vertices(
        fine.tile(20, tile.x, tile.y), "green"
    )


def test_feature_ids_from_an_id_column() -> None:
    frame = gpd.GeoDataFrame(
        {"id": [907, 31], "name": ["a", "b"]},
        geometry=[_polygon((0.1, 0.1), (0.2, 0.1), (0.2, 0.2)), _polygon((0.5, 0.5), (0.6, 0.5), (0.6, 0.6))],
        crs="EPSG:4326",
    )
    source = VectorTileSource.from_frames({"b": frame}, {"b": LayerSpec(("name",), id_column="id")})
    features = mapbox_vector_tile.decode(source.tile(Z, TILE.x, TILE.y))["b"]["features"]
    assert {f["id"]: f["properties"]["name"] for f in features} == {907: "a", 31: "b"}


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([0, 1], "positive integers"),  # zero is no feature id
        ([1.5, 2], "positive integers"),  # not whole
        ([None, 2], "positive integers"),  # missing
    ],
)
def test_bad_id_columns_are_rejected(ids: list[Any], message: str) -> None:
    frame = gpd.GeoDataFrame({"id": ids}, geometry=[Point(LON, LAT), Point(LON, LAT)], crs="EPSG:4326")
    with pytest.raises(TileLayerError, match=message):
        VectorTileSource.from_frames({"p": frame}, {"p": LayerSpec(id_column="id")})
    with pytest.raises(TileLayerError, match="missing"):
        VectorTileSource.from_frames({"p": frame}, {"p": LayerSpec(id_column="row_id")})


def test_buildings_with_codes_keep_columns_and_take_the_largest_part() -> None:
    buildings = gpd.GeoDataFrame(
        {"building_id": ["B1", "B2", "B3"], "community_code": ["c", "c", "c"], "id": [5, 6, 7]},
        geometry=[Point(LON, LAT)] * 3,
        crs="EPSG:4326",
    )
    units = pd.DataFrame(
        {
            "building_id": ["B1", "B1", "B2"],
            "households": [10, 30, 8],
            "grid_code": ["G1", "G2", "G1"],
            "microgrid_code": ["G101", "G201", "G102"],
        }
    )
    result = buildings_with_codes(buildings, units)
    assert list(result["grid_code"][:2]) == ["G2", "G1"] and result["grid_code"].isna()[2]
    assert list(result["microgrid_code"][:2]) == ["G201", "G102"]
    assert {"community_code", "id"} <= set(result.columns) and "grid_code" not in buildings.columns
