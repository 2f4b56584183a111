"""Bulk request lines, built once as bytes: an action line, and the document ``documents`` wrote.

``orjson`` writes non-ASCII text as UTF-8, as the engines expect. A full rebuild writes every
conversation on two cores shared with the search engine, so this step only prefixes each
document with its action line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import orjson


class BulkItem(NamedTuple):
    """One bulk operation, already NDJSON; ``op`` and ``doc_id`` say what failed, if it does."""

    op: str
    doc_id: str
    lines: bytes


def index_name_json(index: str) -> bytes:
    return orjson.dumps(index)


# ``external_gte``: a replay of the same version rewrites itself, an older version gets a 409, so
# re-sending a batch is harmless.
_ACTION_LINE = b'{"%s":{"_index":%s,"_id":"%d","version":%d,"version_type":"external_gte"}}\n'
# An index operation's two lines in one formatting step (a full rebuild writes a million of them).
_INDEX_LINES = _ACTION_LINE.replace(b'"%s":', b'"index":', 1) + b"%s\n"


def index_item(row, index_json: bytes) -> BulkItem:
    return BulkItem("index", str(row.id), _INDEX_LINES % (index_json, row.id, row.version, row.source))


def delete_item(tombstone: dict, index_json: bytes) -> BulkItem:
    row_id = tombstone["row_id"]
    return BulkItem(
        "delete", str(row_id), _ACTION_LINE % (b"delete", index_json, row_id, tombstone["version"])
    )


def index_items(rows: Iterable, index: str) -> list[BulkItem]:
    index_json = index_name_json(index)
    return [index_item(row, index_json) for row in rows]


def chunks(batches: Iterable[list], index: str, chunk_docs: int) -> Iterator[list[BulkItem]]:
    """Row batches (of any size) to bulk requests of ``chunk_docs`` documents each."""
    index_json = index_name_json(index)
    chunk: list[BulkItem] = []
    for rows in batches:
        for row in rows:
            chunk.append(index_item(row, index_json))
            if len(chunk) >= chunk_docs:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
