"""ClickHouse's own block compression, as answers to ``compress=1`` requests carry it.

The official Java client (client-v2, under clickhouse-jdbc and so Metabase) sends ``compress=1`` on
every query by default and reads the answer as a series of compressed blocks, each::

    16 bytes  CityHash128 (v1.0.2) of the 9 header bytes and the data, low then high half, little-endian
     1 byte   method: 0x82 = LZ4, 0x90 = ZSTD, 0x02 = none
     4 bytes  size of header (9 bytes) + data, little-endian
     4 bytes  size of the data once decompressed, little-endian
     ...      an LZ4 block (raw, without a frame), a ZSTD frame, or the data as it is

The method is the request's ``network_compression_method`` setting (LZ4 unless named otherwise, as in
ClickHouse): clickhouse-go sends it with ``compress=1``, as LZ4 or ZSTD, whichever its options chose.

The client verifies the checksum, so the hash must be ClickHouse's: CityHash 1.0.2 (later CityHash
releases changed the function), from ``clickhouse-cityhash``, the C binding ClickHouse's own Python
driver uses.
"""

from __future__ import annotations

import struct

import lz4.block
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

from devstack.clickhouse.errors import ClickHouseError

METHOD_NONE = 0x02
METHOD_LZ4 = 0x82
METHOD_ZSTD = 0x90
# network_compression_method values (case-insensitive, as ClickHouse reads them) -> method byte
METHODS = {"lz4": METHOD_LZ4, "lz4hc": METHOD_LZ4, "zstd": METHOD_ZSTD, "none": METHOD_NONE}
ZSTD_DEFAULT_LEVEL = 1  # ClickHouse's network_zstd_compression_level
HEADER = struct.Struct("<BII")  # method, compressed size with header, decompressed size
CHECKSUM = struct.Struct("<QQ")
BLOCK_SIZE = 1 << 20  # ClickHouse's max_compress_block_size

_MASK = (1 << 64) - 1


def method_named(name: str | None) -> int:
    """The method byte for a ``network_compression_method`` value (LZ4 when none is named)."""
    method = METHODS.get((name or "lz4").strip().lower())
    if method is None:
        raise ClickHouseError(
            89, f"Unknown compression method: {name} (the local server compresses with LZ4, ZSTD or NONE)"
        )
    return method


def zstd_level(value: str | None) -> int:
    """A ``network_zstd_compression_level`` value as a level zstd takes (1-22; ClickHouse's default when none)."""
    if value is None or value == "":
        return ZSTD_DEFAULT_LEVEL
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 22):
        raise ClickHouseError(36, f"network_zstd_compression_level must be from 1 to 22, not {value!r}")
    return int(value)


def compress(data: bytes, method: int = METHOD_LZ4, level: int = ZSTD_DEFAULT_LEVEL) -> bytes:
    """``data`` as ClickHouse compressed blocks (empty data: no block, as ClickHouse sends none)."""
    return b"".join(
        _block(data[start : start + BLOCK_SIZE], method, level) for start in range(0, len(data), BLOCK_SIZE)
    )


def _block(data: bytes, method: int, level: int) -> bytes:
    if method == METHOD_LZ4:
        packed = lz4.block.compress(data, store_size=False)
    elif method == METHOD_ZSTD:
        packed = zstandard.ZstdCompressor(level=level).compress(data)
    else:
        packed = data
    header_and_data = HEADER.pack(method, HEADER.size + len(packed), len(data)) + packed
    return CHECKSUM.pack(*cityhash128(header_and_data)) + header_and_data


def decompress(blocks: bytes) -> bytes:
    """The inverse of :func:`compress`, checksums verified (what the Java client does on its side)."""
    out, position = [], 0
    while position < len(blocks):
        expected = CHECKSUM.unpack_from(blocks, position)
        method, size, plain_size = HEADER.unpack_from(blocks, position + CHECKSUM.size)
        header_and_data = blocks[position + CHECKSUM.size : position + CHECKSUM.size + size]
        if method not in METHODS.values() or len(header_and_data) != size:
            raise ValueError(
                f"not a compressed block of {size} bytes at offset {position} (method {method:#x})"
            )
        if cityhash128(header_and_data) != expected:
            raise ValueError(f"checksum mismatch in the block at offset {position}")
        packed = header_and_data[HEADER.size :]
        if method == METHOD_LZ4:
            out.append(lz4.block.decompress(packed, uncompressed_size=plain_size))
        elif method == METHOD_ZSTD:
            out.append(zstandard.ZstdDecompressor().decompress(packed, max_output_size=plain_size))
        else:
            out.append(packed)
        position += CHECKSUM.size + size
    return b"".join(out)


def cityhash128(data: bytes) -> tuple[int, int]:
    """CityHash128 v1.0.2 of ``data`` as the two 64-bit halves in the order the block header stores them.
    ``clickhouse-cityhash`` (the binding clickhouse-driver uses) returns them as one 128-bit integer,
    the half stored first in its high bits."""
    value = CityHash128(data)
    return value >> 64, value & _MASK
