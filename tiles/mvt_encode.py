"""Vectorised Mapbox Vector Tile encoding of geometries already in integer tile units (y down).

``mapbox_vector_tile.encode`` walks every vertex and builds every feature in Python; this module builds the
MVT command streams (MoveTo/LineTo/ClosePath with zig-zag deltas, spec 2.1 §4.3) and the protobuf
messages (varints, packed fields) for a whole layer at once with numpy, so a tile's cost grows with its
vertices in C, not with its features in Python. Property values are encoded once, when a layer is prepared
(:class:`Properties`); a tile picks its value table with integer operations. Tiles it writes decode with any
MVT reader, ``mapbox_vector_tile.decode`` included.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

__all__ = ["EncodedLayer", "Properties", "encode_layer", "encode_tile"]

IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

_MOVE_TO, _LINE_TO, _CLOSE_PATH = 1, 2, 7
_POINT, _LINE, _POLYGON = 1, 2, 3
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


def encode_layer(name: str, geometries: ObjectArray) -> EncodedLayer:
    """Encode the geometries of one layer, given in tile units (y down; rounded to integers here).

    Each geometry becomes one feature of the type of its highest dimension (lower-dimension parts of a
    collection are dropped); rings are oriented as the spec wants (exterior positive area), and empty or
    degenerate geometries (a ring with no area, a line of one point) are left out: ``rows`` says which
    inputs survived. Features come grouped by type (points, lines, polygons), each group in input order.
    """
    dims = shapely.get_dimensions(geometries)
    parts, owner = shapely.get_parts(geometries, return_index=True)
    keep = shapely.get_dimensions(parts) == dims[owner]
    parts, owner = parts[keep], owner[keep]
    part_dims = shapely.get_dimensions(parts)
    pieces = [
        _encode_points(parts, owner, part_dims == 0),
        _encode_lines(parts, owner, part_dims == 1),
        _encode_polygons(parts, owner, part_dims == 2),
    ]
    return _merge(name, [piece for piece in pieces if piece is not None])


@dataclass(frozen=True)
class _Streams:
    rows: IntArray
    types: IntArray
    geometry: IntArray
    offsets: IntArray


def _zigzag(values: IntArray) -> IntArray:
    return (values << 1) ^ (values >> 63)


def _feature_deltas(coords: IntArray, feature_of_point: IntArray) -> IntArray:
    """Delta of each point from the previous point of the same feature (the cursor starts at 0,0 per feature)."""
    previous = np.zeros_like(coords)
    previous[1:] = coords[:-1]
    first = np.ones(len(coords), dtype=bool)
    first[1:] = feature_of_point[1:] != feature_of_point[:-1]
    previous[first] = 0
    return _zigzag(coords - previous)


def _encode_points(parts: ObjectArray, owner: IntArray, mask: npt.NDArray[np.bool_]) -> _Streams | None:
    if not mask.any():
        return None
    coords = np.rint(shapely.get_coordinates(parts[mask])).astype(np.int64)
    point_owner = owner[mask]
    rows, starts, counts = np.unique(point_owner, return_index=True, return_counts=True)
    lengths = 1 + 2 * counts
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = np.empty(int(offsets[-1]), dtype=np.int64)
    out[offsets[:-1]] = _MOVE_TO | (counts << 3)
    index_in_feature = np.arange(len(coords)) - np.repeat(starts, counts)
    position = np.repeat(offsets[:-1], counts) + 1 + 2 * index_in_feature
    deltas = _feature_deltas(coords, point_owner)
    out[position], out[position + 1] = deltas[:, 0], deltas[:, 1]
    return _Streams(rows.astype(np.int64), np.full(len(rows), _POINT), out, offsets)


def _encode_lines(parts: ObjectArray, owner: IntArray, mask: npt.NDArray[np.bool_]) -> _Streams | None:
    if not mask.any():
        return None
    _, coords, (offsets,) = shapely.to_ragged_array(parts[mask])
    coords, counts = _drop_repeats(np.rint(coords).astype(np.int64), np.diff(offsets))
    good = counts >= 2
    if not good.any():
        return None
    coords = coords[np.repeat(good, counts)]
    return _sequences(coords, counts[good], owner[mask][good], closed=False)


def _encode_polygons(parts: ObjectArray, owner: IntArray, mask: npt.NDArray[np.bool_]) -> _Streams | None:
    if not mask.any():
        return None
    vertices, ring_counts, rings_per_polygon = _ring_layout(parts[mask])
    coords, counts = _drop_repeats(np.rint(vertices).astype(np.int64), ring_counts)
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
    deltas = _feature_deltas(coords, np.repeat(owner, counts))
    out[position], out[position + 1] = deltas[:, 0], deltas[:, 1]
    rows, first_seq = np.unique(owner, return_index=True)
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

    Args:
        layers: each encoded layer with the properties of its features (aligned with ``rows``).
        extent: tile extent written into each layer.
    """
    return b"".join(
        _field_bytes(3, _layer_bytes(encoded, properties, extent))
        for encoded, properties in layers
        if len(encoded.rows)
    )


def _layer_bytes(encoded: EncodedLayer, properties: Properties, extent: int) -> bytes:
    tags, tag_counts, table = _tag_table(properties)
    features = _feature_messages(encoded, tags, tag_counts)
    head = _varint_field(15, _PROTO_LAYER_VERSION) + _field_bytes(1, encoded.name.encode())
    keys = b"".join(_field_bytes(3, key.encode()) for key in properties.keys)
    return head + features + keys + table + _varint_field(5, extent)


def _tag_table(properties: Properties) -> tuple[IntArray, IntArray, bytes]:
    """Tags of all features (concatenated key/value index pairs), tags per feature, and the value table
    (the values the tile uses, in the order of the layer's table)."""
    present = properties.codes >= 0
    used, local = np.unique(properties.codes[present], return_inverse=True)
    keys = np.broadcast_to(np.arange(len(properties.keys)), properties.codes.shape)[present]
    tags = np.empty(2 * len(local), dtype=np.int64)
    tags[0::2], tags[1::2] = keys, local
    return tags, 2 * present.sum(axis=1), b"".join(properties.values[used])


def _feature_messages(encoded: EncodedLayer, tags: IntArray, tag_counts: IntArray) -> bytes:
    """All ``feature`` messages of a layer (field 2), laid out with numpy: no Python work per feature."""
    n = len(encoded.rows)
    tag_bytes, tag_sizes = _varints(tags)
    geom_bytes, geom_sizes = _varints(encoded.geometry)
    tag_len = _per_feature(tag_sizes, tag_counts)
    geom_len = _per_feature(geom_sizes, np.diff(encoded.offsets))
    ids = _varints(encoded.rows + 1)
    parts = [
        _constant(0x08, n), ids,
        _constant(0x12, n), _varints(tag_len), (tag_bytes, tag_len),
        _constant(0x18, n), _varints(encoded.types),
        _constant(0x22, n), _varints(geom_len), (geom_bytes, geom_len),
    ]  # fmt: skip
    body_len = np.sum([lengths for _, lengths in parts], axis=0)
    return _interleave([_constant(0x12, n), _varints(body_len), *parts])


Ragged = tuple[npt.NDArray[np.uint8], IntArray]


def _constant(byte: int, n: int) -> Ragged:
    return np.full(n, byte, dtype=np.uint8), np.ones(n, dtype=np.int64)


def _per_feature(sizes: IntArray, counts: IntArray) -> IntArray:
    """Sum ``sizes`` over consecutive runs of ``counts`` items (runs may be empty)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return np.bincount(owner, weights=sizes, minlength=len(counts)).astype(np.int64)


def _varints(values: IntArray) -> Ragged:
    """Protobuf base-128 varints of non-negative integers: the bytes, and the byte count of each value."""
    v = np.asarray(values, dtype=np.uint64)
    top = int(v.max(initial=0))
    if top < 0x80:  # the common case (types, counts, small tags): one byte each
        return v.astype(np.uint8), np.ones(len(v), dtype=np.int64)
    widths = (top.bit_length() + 6) // 7
    sizes = np.ones(len(v), dtype=np.int64)
    for k in range(1, widths):
        sizes += v >= np.uint64(1 << (7 * k))
    starts = np.cumsum(sizes) - sizes
    out = np.empty(int(sizes[-1] + starts[-1]), dtype=np.uint8)
    for k in range(widths):
        sel = np.flatnonzero(sizes > k) if k else np.arange(len(v))
        byte = ((v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        out[starts[sel] + k] = byte | np.where(sizes[sel] > k + 1, np.uint8(0x80), np.uint8(0))
    return out, sizes


def _interleave(parts: list[Ragged]) -> bytes:
    """Per feature, the bytes of each part in turn: part 0 of feature 0, part 1 of feature 0, … part 0 of 1, …"""
    lengths = np.stack([sizes for _, sizes in parts], axis=1)
    within = np.cumsum(lengths, axis=1) - lengths
    feature_start = np.cumsum(lengths.sum(axis=1)) - lengths.sum(axis=1)
    out = np.empty(int(lengths.sum()), dtype=np.uint8)
    for k, (data, sizes) in enumerate(parts):
        first = np.cumsum(sizes) - sizes
        index_in_part = np.arange(len(data)) - np.repeat(first, sizes)
        out[np.repeat(feature_start + within[:, k], sizes) + index_in_part] = data
    return out.tobytes()


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
