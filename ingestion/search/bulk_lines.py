"""Bulk request lines, built once as bytes: an action line, and the document ``documents`` wrote.

``orjson`` writes non-ASCII text as UTF-8, as the engines expect. A full rebuild writes every
conversation on two cores shared with the search engine, so this step only prefixes each
document with its action line.

Requests are cut by bytes as well as by count: the engines refuse a request body larger than their
``http.max_content_length`` (100 MB by default) whole, so a batch of long conversations cut by count
alone failed on every run and held the sync's cursor (and every rebuild) back for good. A request
stays within ``max_request_bytes()`` (``FUNNELHOUSE_SEARCH_BULK_MAX_BYTES``), well under the
engine's default; a document larger than that on its own goes in a request of its own, which
``SearchClient.bulk`` refuses without sending (the sync quarantines it, ``quarantine``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import orjson

MAX_REQUEST_BYTES_VARIABLE = "FUNNELHOUSE_SEARCH_BULK_MAX_BYTES"
# A few MB per request is what the engines' tuning guides advise; 16 MiB leaves room for long
# conversations and stays far below the engines' 100 MB default limit.
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


class BadRequestBudget(ValueError):
    """``FUNNELHOUSE_SEARCH_BULK_MAX_BYTES`` is not a positive size."""


# Sizes as the engines write theirs (``http.max_content_length: 100mb``): bytes, or kb/mb/gb of 1024.
_SIZE = re.compile(r"(?P<number>[0-9]+)\s*(?P<unit>b|kb|mb|gb)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def max_request_bytes() -> int:
    """The byte budget of one bulk request body: ``$FUNNELHOUSE_SEARCH_BULK_MAX_BYTES`` (``15000000``,
    ``12mb``; read when called, never at import), else ``DEFAULT_MAX_REQUEST_BYTES``."""
    configured = os.environ.get(MAX_REQUEST_BYTES_VARIABLE, "").strip()
    if not configured:
        return DEFAULT_MAX_REQUEST_BYTES
    size = _SIZE.fullmatch(configured)
    budget = int(size["number"]) * _UNITS[(size["unit"] or "").lower()] if size else 0
    if budget <= 0:
        raise BadRequestBudget(
            f"{MAX_REQUEST_BYTES_VARIABLE} must be a positive size in bytes (or kb, mb, gb), not {configured!r}"
        )
    return budget


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


def by_size(
    items: Iterable[BulkItem], max_bytes: int, max_items: int | None = None
) -> Iterator[list[BulkItem]]:
    """``items`` in order, cut into requests of at most ``max_bytes`` (and ``max_items``, if given).
    An item larger than ``max_bytes`` by itself makes a request of its own."""
    chunk: list[BulkItem] = []
    size = 0
    for item in items:
        if chunk and size + len(item.lines) > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.lines)
        if size >= max_bytes or (max_items is not None and len(chunk) >= max_items):
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def chunks(
    batches: Iterable[list], index: str, chunk_docs: int, max_bytes: int | None = None
) -> Iterator[list[BulkItem]]:
    """Row batches (of any size) to bulk requests of ``chunk_docs`` documents each, or fewer where
    they would exceed ``max_bytes`` (default ``max_request_bytes()``)."""
    index_json = index_name_json(index)
    items = (index_item(row, index_json) for rows in batches for row in rows)
    return by_size(items, max_bytes or max_request_bytes(), chunk_docs)
