"""The Native format at the protocol revision a client names (``client_protocol_version``).

Over HTTP, ClickHouse writes Native as the client's revision reads it: from revision 1 on each block
starts with its block info, and from 54454 (custom serialization) each column's type is followed by a
"has custom serialization" byte. clickhouse-go (and so Grafana's ClickHouse plugin) sends
``client_protocol_version`` on every request and decodes by the server's ``revision()``, so it cannot
read chDB's answer, which is always the revision-0 layout. This module rewrites chDB's blocks into the
revisioned layout. To find where one column ends and the next begins it walks each column's data by
its type; the data bytes themselves are copied unchanged.

chDB never writes custom (sparse) serialization into Native, so the flag is always 0. Types whose
data layout is not walked here (Variant, Dynamic, JSON, AggregateFunction, ...) are refused with a
clear error instead of producing blocks the client would misread.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Generator, Iterator

from devstack.clickhouse.errors import ClickHouseError

MIN_REVISION_WITH_CUSTOM_SERIALIZATION = 54454
# Block info as ClickHouse writes it: field 1 is_overflows = false, field 2 bucket_num = -1, end marker.
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
NO_CUSTOM_SERIALIZATION = b"\x00"

_FIXED_SIZES = {
    "UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1,
    "UInt16": 2, "Int16": 2, "Date": 2, "Enum16": 2, "BFloat16": 2,
    "UInt32": 4, "Int32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4, "Decimal32": 4, "Time": 4,
    "UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8, "Time64": 8,
    "UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
    "UInt256": 32, "Int256": 32, "Decimal256": 32,
}  # fmt: skip
# Geo types are names for nested layouts.
_ALIASES = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "MultiLineString": "Array(LineString)",
    "Polygon": "Array(Ring)",
    "MultiPolygon": "Array(Polygon)",
}
_INTERVAL = re.compile(r"^Interval[A-Z][a-z]+$")  # IntervalSecond, IntervalDay, ...: Int64
_LOW_CARDINALITY_KEY_SIZES = (1, 2, 4, 8)  # index type 0..3: UInt8 .. UInt64
_LOW_CARDINALITY_HAS_ADDITIONAL_KEYS = 1 << 9


class Incomplete(Exception):
    """The buffer ends inside a block: wait for more bytes."""


def rewrite(body: bytes, revision: int) -> bytes:
    """A whole revision-0 Native answer in the layout of ``revision``."""
    writer = RevisionWriter(revision)
    return writer.feed(body) + writer.finish()


class RevisionWriter:
    """Rewrites a stream of revision-0 Native bytes block by block; chunks need not end on blocks."""

    def __init__(self, revision: int):
        self.revision = revision
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        out, position = [], 0
        while position < len(data):
            try:
                block, position = self._block(data, position)
            except Incomplete:
                break
            out.append(block)
        self._pending = data[position:]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._pending:
            raise ClickHouseError(
                1001, f"the engine's Native answer ends inside a block ({len(self._pending)} bytes)"
            )
        return b""

    def _block(self, data: bytes, start: int) -> tuple[bytes, int]:
        reader = _Reader(data, start)
        columns, rows = reader.varint(), reader.varint()
        out = [BLOCK_INFO, _varint(columns), _varint(rows)]
        for _ in range(columns):
            head_start = reader.position
            reader.string()  # name
            type_name = reader.string().decode()
            out.append(data[head_start : reader.position])
            if self.revision >= MIN_REVISION_WITH_CUSTOM_SERIALIZATION:
                out.append(NO_CUSTOM_SERIALIZATION)
            data_start = reader.position
            if rows:
                node = parse_type(type_name)
                _skip_prefix(reader, node)
                _skip_data(reader, node, rows)
            out.append(data[data_start : reader.position])
        return b"".join(out), reader.position


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, position: int):
        self.data = data
        self.position = position

    def take(self, size: int) -> None:
        if self.position + size > len(self.data):
            raise Incomplete
        self.position += size

    def varint(self) -> int:
        value, shift, data = 0, 0, self.data
        while True:
            if self.position >= len(data):
                raise Incomplete
            byte = data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self) -> bytes:
        size = self.varint()
        start = self.position
        self.take(size)
        return self.data[start : self.position]

    def uint64(self) -> int:
        start = self.position
        self.take(8)
        return struct.unpack_from("<Q", self.data, start)[0]

    def uint64_at_end_of(self, count: int) -> int:
        """Skip ``count`` UInt64 values and return the last (an Array's total number of items)."""
        if count == 0:
            return 0
        start = self.position
        self.take(8 * count)
        return struct.unpack_from("<Q", self.data, start + 8 * (count - 1))[0]


# --- types -----------------------------------------------------------------------------------------


def parse_type(text: str) -> tuple:
    """A type name as a tree: ``(name, arguments)``, each argument a tree or a literal string."""
    node, rest = _parse(text.strip())
    if rest.strip():
        raise ClickHouseError(50, f"Cannot parse the type {text!r} of a Native column")
    return node


def _parse(text: str) -> tuple[tuple, str]:
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*", text)
    if not match:
        raise ClickHouseError(50, f"Cannot parse a type at {text[:40]!r}")
    name, rest = match.group(1), text[match.end() :]
    if not rest.startswith("("):
        return (name, ()), rest
    arguments, rest = [], rest[1:]
    while True:
        argument, rest = _argument(rest)
        arguments.append(argument)
        rest = rest.lstrip()
        if rest.startswith(","):
            rest = rest[1:]
        elif rest.startswith(")"):
            return (name, tuple(arguments)), rest[1:]
        else:
            raise ClickHouseError(50, f"Cannot parse type arguments at {rest[:40]!r}")


def _argument(text: str):
    """A type, a named tuple element (``name Type``) or a literal (number, quoted string, enum value)."""
    stripped = text.lstrip()
    literal = re.match(r"('(?:[^'\\]|\\.)*'(?:\s*=\s*-?\d+)?|-?\d+)", stripped)
    if literal:
        return literal.group(1), stripped[literal.end() :]
    element = re.match(r"([A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)*`)\s+(?=[A-Za-z_])", stripped)
    if element and not stripped[element.end(1) :].lstrip().startswith(("(", ",", ")")):
        return _parse(stripped[element.end() :])
    return _parse(stripped)


def _fixed_size(node: tuple) -> int | None:
    name, arguments = node
    if name in _FIXED_SIZES:
        return _FIXED_SIZES[name]
    if name == "Decimal":
        precision = int(arguments[0])
        return 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
    if name == "FixedString":
        return int(arguments[0])
    if name == "Nothing":
        return 1
    if _INTERVAL.match(name):
        return 8
    return None


def _element_types(node: tuple) -> tuple:
    return tuple(argument for argument in node[1] if isinstance(argument, tuple))


def _skip_prefix(reader: _Reader, node: tuple) -> None:
    """The serialization state prefix of a column (written for the whole column tree before its data)."""
    node = _resolved(node)
    name = node[0]
    if name == "LowCardinality":
        reader.take(8)  # key serialization version
    elif name in ("Nullable", "Array", "Tuple", "Map", "SimpleAggregateFunction"):
        for element in _element_types(node):
            _skip_prefix(reader, element)


def _resolved(node: tuple) -> tuple:
    return parse_type(_ALIASES[node[0]]) if node[0] in _ALIASES else node


def _skip_data(reader: _Reader, node: tuple, rows: int) -> None:
    node = _resolved(node)
    size = _fixed_size(node)
    if size is not None:
        reader.take(size * rows)
        return
    name = node[0]
    elements = _element_types(node)
    if name == "String":
        for _ in range(rows):
            reader.take(reader.varint())
    elif name == "Nullable":
        reader.take(rows)  # null map
        _skip_data(reader, elements[0], rows)
    elif name == "Array":
        items = reader.uint64_at_end_of(rows)
        _skip_data(reader, elements[0], items)
    elif name == "Map":
        items = reader.uint64_at_end_of(rows)
        for element in elements:  # keys, then values (an Array of Tuple(key, value))
            _skip_data(reader, element, items)
    elif name == "Tuple":
        for element in elements:
            _skip_data(reader, element, rows)
    elif name == "SimpleAggregateFunction":
        _skip_data(reader, elements[-1], rows)
    elif name == "LowCardinality":
        _skip_low_cardinality(reader, elements[0], rows)
    else:
        raise ClickHouseError(
            48,
            f"The local server cannot write columns of type {name} in Native at a client's protocol "
            "revision; cast the column (for example to String) or use another format",
        )


def _skip_low_cardinality(reader: _Reader, element: tuple, rows: int) -> None:
    dictionary_type = element[1][0] if element[0] == "Nullable" else element
    while rows > 0:
        index_type = reader.uint64()
        if index_type & _LOW_CARDINALITY_HAS_ADDITIONAL_KEYS:
            _skip_data(reader, dictionary_type, reader.uint64())
        indexes = reader.uint64()
        reader.take(indexes * _LOW_CARDINALITY_KEY_SIZES[index_type & 0xFF])
        rows -= indexes
        if indexes == 0:
            raise ClickHouseError(1001, "a LowCardinality column of the engine's answer has an empty part")


def rewritten_chunks(chunks: Generator[bytes], revision: int) -> Iterator[bytes]:
    """``chunks`` of a streamed Native answer, rewritten for ``revision`` as whole blocks arrive."""
    writer = RevisionWriter(revision)
    try:
        for chunk in chunks:
            out = writer.feed(chunk)
            if out:
                yield out
        writer.finish()
    finally:
        chunks.close()  # (a client that went away cancels the engine's query)
