"""Compressed request bodies made of several frames or members, as clients write them.

clickhouse-connect compresses each insert block into a zstd (or LZ4) frame of its own; gzip writers
that append (``cat a.gz b.gz``, a log shipper's batches) send several members. ClickHouse decodes such
a body as one stream; a decoder that stops after its first frame either fails ("cannot use a
decompressobj multiple times", zstd) or silently drops the rest (gzip, deflate).
"""

from __future__ import annotations

import gzip
import zlib

import lz4.frame
import pytest
import zstandard

from tests.clickhouse.conftest import TEST_DATABASE, connect

# one compressor per Content-Encoding, each producing one complete frame (member) per call
FRAME_COMPRESSORS = {
    "zstd": zstandard.ZstdCompressor().compress,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "lz4": lz4.frame.compress,
}
PARTS, ROWS_PER_PART = 5, 2000


def in_chunks(data: bytes, size: int = 1000):
    """An iterable body: http.client sends it chunked, and the chunk edges fall inside frames."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def multi_frame_insert(table: str, compress) -> bytes:
    """``INSERT ... FORMAT CSV`` with its rows in PARTS frames, the statement in the first."""
    statement = f"INSERT INTO {table} FORMAT CSV\n".encode()
    parts = [
        "".join(f"{n},row{n}\n" for n in range(part * ROWS_PER_PART, (part + 1) * ROWS_PER_PART)).encode()
        for part in range(PARTS)
    ]
    return b"".join(compress(statement + part if index == 0 else part) for index, part in enumerate(parts))


def recreate(raw, table: str) -> None:
    status, _, body = raw.request(
        body=f"CREATE OR REPLACE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n".encode()
    )
    assert status == 200, body


@pytest.mark.parametrize("encoding", FRAME_COMPRESSORS)
def test_a_body_of_several_frames_inserts_every_row(raw, encoding):
    table = f"{TEST_DATABASE}.multi_frame_{encoding}"
    recreate(raw, table)
    body = multi_frame_insert(table, FRAME_COMPRESSORS[encoding])
    status, _, answer = raw.request(body=in_chunks(body), headers={"Content-Encoding": encoding})
    assert status == 200, answer
    _, _, answer = raw.request(body=f"SELECT count(), uniqExact(s), max(n) FROM {table}".encode())
    assert (
        answer == f"{PARTS * ROWS_PER_PART}\t{PARTS * ROWS_PER_PART}\t{PARTS * ROWS_PER_PART - 1}\n".encode()
    )


@pytest.mark.parametrize("encoding", FRAME_COMPRESSORS)
def test_a_body_cut_inside_a_frame_is_refused_and_inserts_nothing(raw, encoding):
    """The decoders return what they have when the input stops: without a check at the end, a body
    cut short (a proxy, a client killed mid-upload) would load its first rows and answer 200."""
    table = f"{TEST_DATABASE}.cut_frame_{encoding}"
    recreate(raw, table)
    body = multi_frame_insert(table, FRAME_COMPRESSORS[encoding])
    status, response, answer = raw.request(body=body[:-5], headers={"Content-Encoding": encoding})
    assert status == 500 and response.getheader("X-ClickHouse-Exception-Code") == "271"
    assert answer.startswith(f"Code: 271. DB::Exception: Cannot decompress {encoding} request body".encode())
    assert raw.request(body=f"SELECT count() FROM {table}".encode())[2] == b"0\n"


def test_a_body_with_bytes_after_its_last_frame_is_refused(raw):
    table = f"{TEST_DATABASE}.trailing_bytes"
    recreate(raw, table)
    body = multi_frame_insert(table, FRAME_COMPRESSORS["zstd"]) + b"not zstd"
    status, response, _ = raw.request(body=body, headers={"Content-Encoding": "zstd"})
    assert (status, response.getheader("X-ClickHouse-Exception-Code")) == (500, "271")
    assert raw.request(body=f"SELECT count() FROM {table}".encode())[2] == b"0\n"


def test_clickhouse_connect_zstd_insert_of_many_blocks_is_complete(clickhouse_server, database):
    """clickhouse-connect writes one zstd frame per Native block: 200,000 rows are several blocks."""
    client = connect(clickhouse_server, database=database, compress="zstd")
    try:
        client.command(
            "CREATE OR REPLACE TABLE zstd_blocks (id UInt64, label String) ENGINE = MergeTree ORDER BY id"
        )
        rows = [(n, f"label-{n}") for n in range(200_000)]
        summary = client.insert("zstd_blocks", rows, column_names=["id", "label"])
        assert summary.written_rows == 200_000
        assert client.query("SELECT count(), sum(id), uniqExact(label) FROM zstd_blocks").result_rows == [
            (200_000, sum(range(200_000)), 200_000)
        ]
    finally:
        client.close()
