"""Vectorised Mapbox Vector Tile encoding of geometries, mapped to integer tile units (y down) on the way.

``mapbox_vector_tile.encode`` walks every vertex and builds every feature in Python; this module builds the
MVT command streams (MoveTo/LineTo/ClosePath with zig-zag deltas, spec 2.1 §4.3) and the protobuf
messages (varints, packed fields) for all the layers of a tile at once with numpy, so a tile's cost grows
with its vertices in C, not with its features (or layers) in Python: a tile holds a few hundred features,
and what is left is mostly the fixed cost of each numpy call, paid once a tile. Property values are encoded once, when a layer is prepared
(:class:`Properties`); a tile picks its value table with integer operations. Tiles it writes decode with any
MVT reader, ``mapbox_vector_tile.decode`` included.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

__all__ = [
    "TILE_UNITS",
    "EncodedLayer",
    "Properties",
    "TileGrid",
    "encode_layer",
    "encode_layers",
    "encode_tile",
]

IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

_MOVE_TO, _LINE_TO, _CLOSE_PATH = 1, 2, 7
_POINT, _LINE, _POLYGON = 1, 2, 3
_POLYGON_TYPE = shapely.GeometryType.POLYGON
_PROTO_LAYER_VERSION = 2
_ONE_BYTE = tuple(bytes((value,)) for value in range(0x80))


@dataclass(frozen=True)
class EncodedLayer:
    """One layer's features as MVT geometry streams, ready for the protobuf.

    Attributes:
        name: layer name.
        rows: for each feature, its position in the geometries given to :func:`encode_layer` (callers may
            map it to their source row); :func:`encode_tile` writes ``rows + 1`` as the feature id.
        types: MVT geometry type of each feature (1 point, 2 line, 3 polygon).
        geometry: the concatenated command streams; feature i owns ``geometry[offsets[i]:offsets[i + 1]]``.
        offsets: feature boundaries in ``geometry`` (length = features + 1).
    """

    name: str
    rows: IntArray
    types: IntArray
    geometry: IntArray
    offsets: IntArray


@dataclass(frozen=True)
class TileGrid:
    """The affine map from a geometry's coordinates to integer tile units: ``(xy - origin) * scale``,
    rounded. Applied to the coordinate arrays the encoder extracts anyway, so no geometry is rebuilt in
    tile units first (rebuilding them costs as much as encoding them)."""

    origin_x: float = 0.0
    origin_y: float = 0.0
    scale_x: float = 1.0
    scale_y: float = 1.0

    def snap(self, coords: npt.NDArray[np.float64]) -> IntArray:
        """Coordinates (n × 2) in integer tile units."""
        origin = np.array([self.origin_x, self.origin_y])
        scale = np.array([self.scale_x, self.scale_y])
        snapped: IntArray = np.rint((coords - origin) * scale).astype(np.int64)
        return snapped


#: geometries already in tile units
TILE_UNITS = TileGrid()


def encode_layer(name: str, geometries: ObjectArray, grid: TileGrid = TILE_UNITS) -> EncodedLayer:
    """Encode the geometries of one layer, mapped to integer tile units (y down) by ``grid`` (default: they
    are in tile units already, and are only rounded).

    Each geometry becomes one feature of the type of its highest dimension (lower-dimension parts of a
    collection are dropped); rings are oriented as the spec wants (exterior positive area), and empty or
    degenerate geometries (a ring with no area, a line of one point) are left out: ``rows`` says which
    inputs survived. Features come grouped by type (points, lines, polygons), each group in input order.
    """
    parts, owner, part_dims = _parts(geometries)
    pieces = [
        _encode_points(parts, owner, part_dims == 0, grid),
        _encode_lines(parts, owner, part_dims == 1, grid),
        _encode_polygons(parts, owner, part_dims == 2, grid),
    ]
    return _merge(name, [piece for piece in pieces if piece is not None])


def _parts(geometries: ObjectArray) -> tuple[ObjectArray, IntArray, IntArray]:
    """The single parts of the highest dimension of each geometry, in order: the parts, their owner and
    their dimension.

    Only the collections (multi-parts, a clip's leftovers) are taken apart: single polygons (footprints,
    grids: most features of a tile) are their own part, and taking them apart would only copy them.
    """
    single = shapely.get_type_id(geometries) == _POLYGON_TYPE
    if single.all():
        return geometries, np.arange(len(geometries)), np.full(len(geometries), 2)
    several = np.flatnonzero(~single)
    parts, index = shapely.get_parts(geometries[several], return_index=True)
    owner = several[index]
    part_dims = shapely.get_dimensions(parts)
    keep = part_dims == shapely.get_dimensions(geometries[several])[index]
    owner = np.concatenate([np.flatnonzero(single), owner[keep]])
    order = np.argsort(owner, kind="stable")
    parts = np.concatenate([geometries[single], parts[keep]])[order]
    dims = np.concatenate([np.full(int(single.sum()), 2), part_dims[keep]])[order]
    return parts, owner[order], dims


def encode_layers(
    layers: Sequence[tuple[str, ObjectArray]], grid: TileGrid = TILE_UNITS
) -> list[EncodedLayer]:
    """:func:`encode_layer` of each (name, geometries), in one pass over all their geometries when they are
    polygons (a tile's layers: the fixed cost of the numpy calls is paid once, not once a layer).
    """
    sizes = [len(geometries) for _, geometries in layers]
    together = encode_layer(
        "", np.concatenate([g for _, g in layers]) if layers else np.empty(0, object), grid
    )
    if np.any(np.diff(together.rows) <= 0):  # features of other types come first: not in layer order
        return [encode_layer(name, geometries, grid) for name, geometries in layers]
    first_row = np.cumsum([0, *sizes])
    cuts = np.searchsorted(together.rows, first_row)
    return [
        EncodedLayer(
            name,
            together.rows[start:end] - row,
            together.types[start:end],
            together.geometry[together.offsets[start] : together.offsets[end]],
            together.offsets[start : end + 1] - together.offsets[start],
        )
        for (name, _), row, start, end in zip(layers, first_row[:-1], cuts[:-1], cuts[1:], strict=True)
    ]


@dataclass(frozen=True)
class _Streams:
    rows: IntArray
    types: IntArray
    geometry: IntArray
    offsets: IntArray


def _zigzag(values: IntArray) -> IntArray:
    return (values << 1) ^ (values >> 63)


def _feature_deltas(coords: IntArray, firsts: IntArray) -> IntArray:
    """Delta of each point from the previous point of the same feature, zig-zagged; ``firsts`` are the
    positions of each feature's first point, whose delta is from 0,0 (the cursor starts there)."""
    deltas = np.empty_like(coords)
    deltas[1:] = coords[1:] - coords[:-1]
    deltas[firsts] = coords[firsts]
    return _zigzag(deltas)


def _encode_points(
    parts: ObjectArray, owner: IntArray, mask: npt.NDArray[np.bool_], grid: TileGrid
) -> _Streams | None:
    if not mask.any():
        return None
    coords = grid.snap(shapely.get_coordinates(parts[mask]))
    point_owner = owner[mask]
    rows, starts, counts = np.unique(point_owner, return_index=True, return_counts=True)
    lengths = 1 + 2 * counts
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = np.empty(int(offsets[-1]), dtype=np.int64)
    out[offsets[:-1]] = _MOVE_TO | (counts << 3)
    index_in_feature = np.arange(len(coords)) - np.repeat(starts, counts)
    position = np.repeat(offsets[:-1], counts) + 1 + 2 * index_in_feature
    deltas = _feature_deltas(coords, starts)
    out[position], out[position + 1] = deltas[:, 0], deltas[:, 1]
    return _Streams(rows.astype(np.int64), np.full(len(rows), _POINT), out, offsets)


def _encode_lines(
    parts: ObjectArray, owner: IntArray, mask: npt.NDArray[np.bool_], grid: TileGrid
) -> _Streams | None:
    if not mask.any():
        return None
    _, coords, (offsets,) = shapely.to_ragged_array(parts[mask])
    coords, counts = _drop_repeats(grid.snap(coords), np.diff(offsets))
    good = counts >= 2
    if not good.any():
        return None
    coords = coords[np.repeat(good, counts)]
    return _sequences(coords, counts[good], owner[mask][good], closed=False)


def _encode_polygons(
    parts: ObjectArray, owner: IntArray, mask: npt.NDArray[np.bool_], grid: TileGrid
) -> _Streams | None:
    if not mask.any():
        return None
    vertices, ring_counts, rings_per_polygon = _ring_layout(parts[mask])
    coords, counts = _drop_repeats(grid.snap(vertices), ring_counts)
    ring_owner = np.repeat(owner[mask], rings_per_polygon)
    exterior = np.zeros(len(counts), dtype=bool)
    exterior[np.concatenate([[0], np.cumsum(rings_per_polygon)[:-1]])] = True
    area2 = _ring_areas2(coords, counts)
    # a polygon whose exterior collapsed when snapped to the grid goes; so does a collapsed hole
    solid = (counts >= 4) & (area2 != 0)
    solid &= np.repeat(solid[exterior], rings_per_polygon[rings_per_polygon > 0])
    if not solid.any():
        return None
    coords = _orient(coords, counts, reverse=(area2 > 0) != exterior)
    keep_point = np.repeat(solid, counts)
    coords, counts, ring_owner = coords[keep_point], counts[solid], ring_owner[solid]
    # the closing vertex repeats the first; ClosePath stands for it
    last = np.cumsum(counts) - 1
    closing = np.zeros(len(coords), dtype=bool)
    closing[last] = True
    return _sequences(coords[~closing], counts - 1, ring_owner, closed=True)


def _ring_layout(polygons: ObjectArray) -> tuple[npt.NDArray[np.float64], IntArray, IntArray]:
    """Vertices of polygons, vertices per ring and rings per polygon, without a Python object per ring.

    (``shapely.get_rings`` and ``to_ragged_array`` make one per ring, which dominates a tile's time; most
    footprints have no holes, so only polygons with holes are split into rings.)
    """
    coords = shapely.get_coordinates(polygons)
    holes = shapely.get_num_interior_rings(polygons).astype(np.int64)
    rings_per_polygon = holes + 1
    ring_counts = np.empty(int(rings_per_polygon.sum()), dtype=np.int64)
    holed_ring = np.repeat(holes > 0, rings_per_polygon)
    ring_counts[~holed_ring] = shapely.get_num_coordinates(polygons[holes == 0])
    if holed_ring.any():
        ring_counts[holed_ring] = shapely.get_num_coordinates(shapely.get_rings(polygons[holes > 0]))
    return coords, ring_counts, rings_per_polygon


def _drop_repeats(coords: IntArray, counts: IntArray) -> tuple[IntArray, IntArray]:
    """Remove consecutive duplicate vertices of each sequence (rounding to the grid makes them)."""
    sequence = np.repeat(np.arange(len(counts)), counts)
    keep = np.ones(len(coords), dtype=bool)
    keep[1:] = np.any(coords[1:] != coords[:-1], axis=1) | (sequence[1:] != sequence[:-1])
    return coords[keep], np.bincount(sequence[keep], minlength=len(counts)).astype(np.int64)


def _ring_areas2(coords: IntArray, counts: IntArray) -> IntArray:
    """Twice the signed area of each closed ring (shoelace in tile units; positive = MVT exterior)."""
    ring = np.repeat(np.arange(len(counts)), counts)
    cross = np.zeros(len(coords), dtype=np.int64)
    cross[:-1] = coords[:-1, 0] * coords[1:, 1] - coords[1:, 0] * coords[:-1, 1]
    last = np.cumsum(counts) - 1
    cross[last[counts > 0]] = 0
    return np.bincount(ring, weights=cross, minlength=len(counts)).astype(np.int64)


def _orient(coords: IntArray, counts: IntArray, *, reverse: npt.NDArray[np.bool_]) -> IntArray:
    """Reverse the vertex order of the flagged rings (MVT: exteriors positive area, holes negative)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ends = starts + counts - 1
    index = np.arange(len(coords))
    flip = np.repeat(reverse, counts)
    index[flip] = (np.repeat(starts, counts) + np.repeat(ends, counts) - index)[flip]
    return coords[index]


def _sequences(coords: IntArray, counts: IntArray, owner: IntArray, *, closed: bool) -> _Streams:
    """Command streams of line strings (``closed=False``) or polygon rings without their closing vertex."""
    lengths = 2 * counts + 2 + (1 if closed else 0)
    seq_offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = np.empty(int(seq_offsets[-1]), dtype=np.int64)
    out[seq_offsets[:-1]] = _MOVE_TO | (1 << 3)
    out[seq_offsets[:-1] + 3] = _LINE_TO | ((counts - 1) << 3)
    if closed:
        out[seq_offsets[1:] - 1] = _CLOSE_PATH | (1 << 3)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index_in_seq = np.arange(len(coords)) - np.repeat(starts, counts)
    position = np.repeat(seq_offsets[:-1], counts) + 1 + 2 * index_in_seq + (index_in_seq > 0)
    first_seq = np.flatnonzero(np.concatenate([[True], owner[1:] != owner[:-1]]))  # owners come in order
    deltas = _feature_deltas(coords, starts[first_seq])
    out[position], out[position + 1] = deltas[:, 0], deltas[:, 1]
    rows = owner[first_seq]
    offsets = np.concatenate([seq_offsets[first_seq], [seq_offsets[-1]]])
    kind = _POLYGON if closed else _LINE
    return _Streams(rows.astype(np.int64), np.full(len(rows), kind), out, offsets)


def _merge(name: str, pieces: list[_Streams]) -> EncodedLayer:
    if not pieces:
        empty = np.zeros(0, dtype=np.int64)
        return EncodedLayer(name, empty, empty, empty, np.zeros(1, dtype=np.int64))
    shift = np.cumsum([0] + [len(piece.geometry) for piece in pieces[:-1]])
    offsets = np.concatenate([piece.offsets[:-1] + s for piece, s in zip(pieces, shift, strict=True)])
    return EncodedLayer(
        name,
        np.concatenate([piece.rows for piece in pieces]),
        np.concatenate([piece.types for piece in pieces]),
        np.concatenate([piece.geometry for piece in pieces]),
        np.concatenate([offsets, [sum(len(piece.geometry) for piece in pieces)]]),
    )


@dataclass(frozen=True)
class Properties:
    """Feature properties as indices into one table of values encoded once (when a layer is prepared), so
    that a tile's value table is made with integer operations rather than by hashing values per tile.

    Build with :meth:`from_columns`; :meth:`take` selects the features of a tile.

    Attributes:
        keys: the property names.
        codes: features × keys: each feature's value as an index into ``values``; -1 = no such property.
        values: each distinct value once, as its MVT ``value`` message; equal bytes mean equal value and type.
    """

    keys: tuple[str, ...]
    codes: IntArray
    values: ObjectArray

    @classmethod
    def from_columns(cls, columns: Mapping[str, npt.ArrayLike], n: int) -> Properties:
        """The properties of ``n`` features from columns of values (str, int of any sign, float, bool, and
        their numpy kinds, each kept with its type; None, NaN and pandas NA mean no property).

        Raises:
            ValueError: a column does not hold ``n`` values.
        """
        table: dict[tuple[type, object], int] = {}
        codes = np.full((n, len(columns)), -1, dtype=np.int64)
        for k, (key, values) in enumerate(columns.items()):
            column = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
            if column.shape != (n,):
                raise ValueError(f"property {key} has {column.shape} values for {n} features")
            codes[:, k] = _column_codes(column, table)
        encoded = np.empty(len(table), dtype=object)
        encoded[:] = [_value_message(value) for _, value in table]
        return cls(tuple(columns), codes, encoded)

    def take(self, rows: IntArray) -> Properties:
        """The properties of the features at ``rows``."""
        return Properties(self.keys, self.codes[rows], self.values)


def _column_codes(column: npt.NDArray[Any], table: dict[tuple[type, object], int]) -> IntArray:
    """Each value's index in ``table`` (added when new); -1 for a missing value. Values are looked up once
    per distinct value, except in a column mixing bools, ints and floats, whose values pandas would merge
    (True == 1 == 1.0) and which are therefore looked up one by one."""
    if column.dtype == object and len({_number_kind(kind) for kind in set(map(type, column))} - {None}) > 1:
        return np.array([_table_index(_plain(value), table) for value in column], dtype=np.int64)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    index = np.array([*(_table_index(_plain(value), table) for value in uniques), -1], dtype=np.int64)
    result: IntArray = index[codes]  # code -1 (missing) picks the trailing -1
    return result


def _number_kind(kind: type) -> str | None:
    if issubclass(kind, bool | np.bool_):
        return "bool"
    if issubclass(kind, int | np.integer):
        return "int"
    if issubclass(kind, float | np.floating):
        return "float"
    return None


def _table_index(value: object, table: dict[tuple[type, object], int]) -> int:
    if value is None:
        return -1
    return table.setdefault((type(value), value), len(table))  # the type keeps True apart from 1


def _plain(value: object) -> object:
    """A value as the Python scalar an MVT value holds (str, int, float, bool), or None when missing."""
    if type(value) is str:  # codes and names: most values
        return value
    if value is None or value is pd.NA or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value)
    return str(value)


def encode_tile(layers: Sequence[tuple[EncodedLayer, Properties]], *, extent: int = 4096) -> bytes:
    """Write encoded layers as MVT protobuf bytes (spec 2.1), each feature with the id ``row + 1``.

    The feature messages of every layer are written in one pass (:func:`_feature_messages`) and cut into
    layers after: a tile's cost is then mostly its vertices, not a fixed price per layer.

    Args:
        layers: each encoded layer with the properties of its features (aligned with ``rows``).
        extent: tile extent written into each layer.
    """
    present = [(encoded, properties) for encoded, properties in layers if len(encoded.rows)]
    if not present:
        return b""
    tables = [_tag_table(properties) for _, properties in present]
    features = _feature_messages([encoded for encoded, _ in present], tables)
    return b"".join(
        _field_bytes(3, _layer_bytes(encoded, properties, table, messages, extent))
        for (encoded, properties), (_, _, table), messages in zip(present, tables, features, strict=True)
    )


def _layer_bytes(
    encoded: EncodedLayer, properties: Properties, table: bytes, features: bytes, extent: int
) -> bytes:
    head = _varint_field(15, _PROTO_LAYER_VERSION) + _field_bytes(1, encoded.name.encode())
    keys = b"".join(_field_bytes(3, key.encode()) for key in properties.keys)
    return head + features + keys + table + _varint_field(5, extent)


def _tag_table(properties: Properties) -> tuple[IntArray, IntArray, bytes]:
    """Tags of all features (concatenated key/value index pairs), tags per feature, and the value table
    (the values the tile uses, in the order of the layer's table)."""
    present = properties.codes >= 0
    codes = properties.codes[present]
    seen = np.zeros(len(properties.values), dtype=bool)
    seen[codes] = True  # the values in use, found without sorting the codes
    used = np.flatnonzero(seen)
    local = (np.cumsum(seen) - 1)[codes]
    keys = np.broadcast_to(np.arange(len(properties.keys)), properties.codes.shape)[present]
    tags = np.empty(2 * len(local), dtype=np.int64)
    tags[0::2], tags[1::2] = keys, local
    return tags, 2 * present.sum(axis=1), b"".join(properties.values[used])


def _feature_messages(
    layers: Sequence[EncodedLayer], tables: Sequence[tuple[IntArray, IntArray, bytes]]
) -> list[bytes]:
    """The ``feature`` messages (field 2) of each layer, written as one stream of integers varint-encoded at
    once and cut at the layers' boundaries.

    Per feature the stream holds ``0x12, body length, 0x08, id, 0x12, tags length, tags…, 0x18, type,
    0x22, geometry length, geometry…``: field keys are single-byte varints and every other item is a varint
    of its own, so encoding each integer of the stream as a varint gives the protobuf bytes. A handful of
    numpy calls per tile, whatever its layers and features: a tile holds a few hundred features, too few to
    amortise more.
    """
    tags = np.concatenate([tags for tags, _, _ in tables])
    tag_counts = np.concatenate([counts for _, counts, _ in tables])
    geometry = np.concatenate([layer.geometry for layer in layers])
    geom_counts = np.concatenate([np.diff(layer.offsets) for layer in layers])
    sizes = _varint_sizes(np.concatenate([tags, geometry]))
    tag_len = _run_sums(sizes[: len(tags)], np.concatenate([[0], np.cumsum(tag_counts)]))
    geom_len = _run_sums(sizes[len(tags) :], np.concatenate([[0], np.cumsum(geom_counts)]))
    ids = np.concatenate([layer.rows for layer in layers]) + 1
    types = np.concatenate([layer.types for layer in layers])
    body_len = 5 + _varint_sizes(ids) + _varint_sizes(tag_len) + tag_len + _varint_sizes(geom_len) + geom_len
    n = len(ids)
    head = np.stack([np.full(n, 0x12), body_len, np.full(n, 0x08), ids, np.full(n, 0x12), tag_len], axis=1)
    middle = np.stack([np.full(n, 0x18), types, np.full(n, 0x22), geom_len], axis=1)
    counts = len(_HEAD) + len(_MIDDLE) + tag_counts + geom_counts
    starts = np.cumsum(counts) - counts
    tag_at = starts + len(_HEAD)
    geom_at = tag_at + tag_counts + len(_MIDDLE)
    stream = np.empty(int(counts.sum()), dtype=np.int64)
    stream[(starts[:, None] + _HEAD).ravel()] = head.ravel()
    stream[(tag_at + tag_counts)[:, None] + _MIDDLE] = middle
    stream[_spread(tag_at, tag_counts)] = tags
    stream[_spread(geom_at, geom_counts)] = geometry
    data = _varint_bytes(stream, _varint_sizes(stream))
    message_bytes = np.concatenate([[0], np.cumsum(1 + _varint_sizes(body_len) + body_len)])
    cuts = message_bytes[np.cumsum([0, *(len(layer.rows) for layer in layers)])]
    return [data[start:end] for start, end in itertools.pairwise(cuts)]


_HEAD = np.arange(6)
_MIDDLE = np.arange(4)


def _spread(starts: IntArray, counts: IntArray) -> IntArray:
    """Positions ``starts[i], starts[i] + 1, … starts[i] + counts[i] - 1`` of every run, concatenated."""
    run_start = np.cumsum(counts) - counts
    return np.repeat(starts - run_start, counts) + np.arange(int(counts.sum()))


def _run_sums(values: IntArray, offsets: IntArray) -> IntArray:
    """Sums of ``values`` over the runs ``offsets[i]:offsets[i + 1]`` (runs may be empty)."""
    total = np.concatenate([[0], np.cumsum(values)])
    result: IntArray = total[offsets[1:]] - total[offsets[:-1]]
    return result


def _varint_sizes(values: IntArray) -> IntArray:
    """Bytes of the protobuf varint of each integer (non-negative, below 2**63)."""
    v = np.asarray(values, dtype=np.int64)
    sizes = np.ones(len(v), dtype=np.int64)
    top = int(v.max(initial=0))
    for k in range(1, (top.bit_length() + 6) // 7):
        sizes += v >= 1 << (7 * k)
    return sizes


def _varint_bytes(values: IntArray, sizes: IntArray) -> bytes:
    """Protobuf base-128 varints of integers (non-negative, below 2**63) whose sizes are ``sizes``,
    concatenated.

    Written one digit at a time over the values that still have that digit: most values of a tile (field
    keys, commands, short deltas) are one byte, so later digits touch few values.
    """
    v = np.asarray(values, dtype=np.int64)
    width = int(sizes.max(initial=1))
    if width == 1:
        return v.astype(np.uint8).tobytes()
    at = np.cumsum(sizes) - sizes
    out = np.empty(int(at[-1] + sizes[-1]), dtype=np.uint8)
    out[at] = (v & 0x7F).astype(np.uint8) | ((sizes > 1).view(np.uint8) << np.uint8(7))
    for k in range(1, width):
        todo = np.flatnonzero(sizes > k)
        digit = ((v[todo] >> (7 * k)) & 0x7F).astype(np.uint8)
        out[at[todo] + k] = digit | ((sizes[todo] > k + 1).view(np.uint8) << np.uint8(7))
    return out.tobytes()


def _varints(values: IntArray) -> tuple[npt.NDArray[np.uint8], IntArray]:
    """Protobuf base-128 varints of non-negative integers: the bytes, and the byte count of each value."""
    sizes = _varint_sizes(values)
    return np.frombuffer(_varint_bytes(values, sizes), dtype=np.uint8), sizes


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:  # lengths, field tags and small numbers: most varints a value table holds
        return _ONE_BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint_field(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _field_bytes(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def _value_message(value: object) -> bytes:
    """A layer's ``values`` field (4) holding one value; a short string (codes, names) is written directly."""
    if type(value) is str and len(data := value.encode()) < 0x7E:  # both lengths fit one byte
        return bytes((0x22, len(data) + 2, 0x0A, len(data))) + data
    return _field_bytes(4, _value_bytes(value))


def _value_bytes(value: object) -> bytes:
    """A ``value`` message: bool, sint64 (zig-zag), double or string."""
    if isinstance(value, bool | np.bool_):
        return _varint_field(7, int(value))
    if isinstance(value, int | np.integer):
        number = int(value)
        return _varint_field(6, (number << 1) ^ (number >> 63))
    if isinstance(value, float | np.floating):
        return b"\x19" + struct.pack("<d", float(value))
    return _field_bytes(1, str(value).encode())
