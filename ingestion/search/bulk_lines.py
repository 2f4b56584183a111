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


def _action_line(op: str, index_json: bytes, doc_id: str, version: int) -> bytes:
    # ``external_gte``: a replay of the same version rewrites itself, an older version gets a 409,
    # so re-sending a batch is harmless.
    return b'{"%s":{"_index":%s,"_id":"%s","version":%d,"version_type":"external_gte"}}\n' % (
        op.encode(),
        index_json,
        doc_id.encode(),
        version,
    )


def index_item(row, index_json: bytes) -> BulkItem:
    doc_id = str(row.id)
    return BulkItem(
        "index", doc_id, b"".join((_action_line("index", index_json, doc_id, row.version), row.source, b"\n"))
    )


def delete_item(tombstone: dict, index_json: bytes) -> BulkItem:
    doc_id = str(tombstone["row_id"])
    return BulkItem("delete", doc_id, _action_line("delete", index_json, doc_id, tombstone["version"]))


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
