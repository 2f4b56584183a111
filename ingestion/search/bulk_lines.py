"""Bulk request lines, built once as bytes: the document's fields, plus the redacted free text.

A full rebuild writes every conversation, and the two cores it runs on are shared with the
search engine, so the Python step is kept to the minimum: redact the message, splice it and the
(cached) redacted tags into the JSON ``documents`` wrote, and prefix the action line. ``orjson``
writes non-ASCII text as UTF-8, as the engines expect.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import orjson

from ingestion.search.documents import FREE_TEXT_TAGS
from ingestion.search.redaction import redact, redact_all


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


def _strings(value) -> list[str]:
    """JSONB tags to a flat list of strings ("keywords": ["美股"], or {"signal": score} objects)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list):
        flat: list[str] = []
        for item in value:
            if isinstance(item, dict):
                flat.extend(str(v) for v in item.values() if isinstance(v, str))
            elif item is not None:
                flat.append(str(item))
        return flat
    return [str(value)]


_TAG_KEYS = tuple(b',"%s":' % tag.encode() for tag in FREE_TEXT_TAGS)
_tags_of = operator.attrgetter(*FREE_TEXT_TAGS)


@functools.lru_cache(maxsize=16384)
def redacted_tag_fields(*raw_json: str | None) -> bytes:
    """The tag fields of a document (``,"keywords":[...]`` and so on), redacted. Tags repeat across
    messages (a small vocabulary), so each distinct combination is redacted and serialised once."""
    return b"".join(
        key + orjson.dumps(redact_all(_strings(orjson.loads(raw) if raw is not None else None)))
        for key, raw in zip(_TAG_KEYS, raw_json, strict=True)
    )


def document_source(row) -> bytes:
    """The ``_source`` line: the document's fields with the redacted message and tags appended."""
    return b"".join(
        (
            row.fields,
            b',"content":',
            orjson.dumps(redact(row.content)),
            redacted_tag_fields(*_tags_of(row)),
            b"}\n",
        )
    )


def index_item(row, index_json: bytes) -> BulkItem:
    doc_id = str(row.id)
    return BulkItem(
        "index", doc_id, _action_line("index", index_json, doc_id, row.version) + document_source(row)
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
