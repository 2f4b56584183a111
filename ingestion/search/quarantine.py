"""Documents the engine refuses for good, kept aside with the reason so that one bad row cannot stop
the sync of every row after it.

A refusal is *permanent* when the engine answers 400 with an error about the document itself (a
mapping or parsing error: ``DOCUMENT_ERRORS``), or when the document is too large to send (413:
larger than the bulk request budget, or refused by the engine as too large in a request of its own;
``SearchClient.bulk``): sending the same document again gets the same answer, and before this table
the cursor stayed on it forever. A too-large document's reason gives its id and size, nothing of
its content. Such a document is recorded here (which document, which operation, the engine's status
and reason, when, how often) and the sync moves on; PostgreSQL still holds the row, so nothing is
lost. Anything else is *transient*, and says nothing about the document: a 400 of another type
(``index_closed_exception``: an operator closed the index; ``illegal_argument_exception``: the alias
has no write index, e.g. it points to two indices), any failed delete (a delete has no content to be
wrong), a 5xx, a timeout, an index-wide block (403, e.g. set by an operator), a missing index (404);
429 is retried inside ``SearchClient.bulk``. Then the batch fails, the cursor stays, and the next
run sends it again: taken as permanent, such a failure would set aside every update and delete of
the batch, lost from the index until the next rebuild.

Kept per physical index (what that index lacks): a rebuild loads every row into a new index, which
starts with its own refusals, and dropping an index forgets its list. A document leaves quarantine
when a later write of it is accepted (the row changed and was sent again). The per-day count check
names the quarantined documents; ``funnelhouse search-quarantine`` lists them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import psycopg

from ingestion.search.bulk_lines import BulkItem
from ingestion.search.client import TOO_LARGE, BulkFailed, BulkOutcome, SearchClient

_DDL = """CREATE TABLE IF NOT EXISTS search_sync_quarantine (
    index_name TEXT NOT NULL,
    doc_id BIGINT NOT NULL,
    operation TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    first_failed_at TIMESTAMP NOT NULL,
    last_failed_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (index_name, doc_id)
)"""
_UTC_NOW = "clock_timestamp() AT TIME ZONE 'UTC'"
# The engine's reason can quote a whole field; the start says what went wrong.
_REASON_LIMIT = 2000
# The error types of "this document cannot be indexed as it is", with the status they come with:
# a mapping or parsing error (400; Elasticsearch 8+ says document_parsing_exception, OpenSearch 2
# and Elasticsearch 7 mapper_parsing_exception; both strict_dynamic_mapping_exception for a field
# the mapping lacks), too large to send (413, only ever one document's: ``SearchClient.bulk``).
DOCUMENT_ERRORS = {
    "document_parsing_exception": 400,
    "mapper_parsing_exception": 400,
    "strict_dynamic_mapping_exception": 400,
    "document_too_large": TOO_LARGE,
}


@dataclass(frozen=True)
class QuarantinedDocument:
    doc_id: int
    operation: str
    status: int
    reason: str
    first_failed_at: dt.datetime
    last_failed_at: dt.datetime
    attempts: int


def notice(quarantined: int) -> str:
    """What a sync or rebuild that quarantined documents tells its operator."""
    return (
        f"{quarantined} document(s) refused by the search engine were quarantined: "
        "`funnelhouse search-quarantine` lists them with the reason"
    )


def ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(_DDL)


def error_type(failure: dict) -> str | None:
    """The engine's error type of a bulk item's failure (None when it sent none, or only text)."""
    error = failure.get("error")
    return error.get("type") if isinstance(error, dict) else None


def is_permanent(failure: dict) -> bool:
    """Whether the engine refused this document itself (see the module docstring): an index write
    failing with a document-level error type at its status; never a delete."""
    return failure["op"] != "delete" and DOCUMENT_ERRORS.get(error_type(failure)) == int(failure["status"])


def index_of(client: SearchClient, alias: str) -> str | None:
    """The physical index whose quarantine the sync records and every reader lists for ``alias``: the
    one the alias points to, where the documents are written. Not the saved state's
    ``physical_index``, which lags the alias after a rebuild whose state save failed after the swap."""
    targets = client.alias_targets(alias)
    return targets[0] if targets else None


def refusals(outcome: BulkOutcome) -> list[dict]:
    """The permanent refusals of a bulk's ``outcome``; raises ``BulkFailed`` if any failure is transient."""
    transient = [failure for failure in outcome.failed if not is_permanent(failure)]
    if transient:
        raise BulkFailed(BulkOutcome(failed=transient))
    return outcome.failed


def reason(failure: dict) -> str:
    """The engine's error as one line: ``type: reason`` of the error and of what caused it."""
    parts, error = [], failure.get("error")
    while isinstance(error, dict):
        parts.append(f"{error.get('type', 'error')}: {error.get('reason', '')}".strip())
        error = error.get("caused_by")
    if error is not None:  # a plain string, or whatever else the engine sent
        parts.append(error if isinstance(error, str) else orjson.dumps(error).decode())
    return (" <- ".join(parts) or f"HTTP {failure['status']}")[:_REASON_LIMIT]


def settle(conn: psycopg.Connection, index: str, sent: Sequence[BulkItem], refused: Sequence[dict]) -> None:
    """After a bulk of ``sent``: record the ``refused`` documents, release the others that were
    quarantined (their write went through). In the caller's transaction: it commits together with
    the cursor move, so a crash can neither lose a refusal nor skip a row unrecorded."""
    if refused:
        conn.cursor().executemany(
            f"""INSERT INTO search_sync_quarantine AS q
                    (index_name, doc_id, operation, status, reason, first_failed_at, last_failed_at)
                VALUES (%s, %s, %s, %s, %s, {_UTC_NOW}, {_UTC_NOW})
                ON CONFLICT (index_name, doc_id) DO UPDATE SET operation = EXCLUDED.operation,
                    status = EXCLUDED.status, reason = EXCLUDED.reason,
                    last_failed_at = EXCLUDED.last_failed_at, attempts = q.attempts + 1""",
            [
                (index, int(failure["id"]), failure["op"], int(failure["status"]), reason(failure))
                for failure in refused
            ],
        )
    refused_ids = {str(failure["id"]) for failure in refused}
    accepted = [int(item.doc_id) for item in sent if item.doc_id not in refused_ids]
    if accepted:
        conn.execute(
            "DELETE FROM search_sync_quarantine WHERE index_name = %s AND doc_id = ANY(%s)", (index, accepted)
        )


def forget(conn: psycopg.Connection, index: str) -> None:
    """The index is gone (dropped, or a failed rebuild's): so is what it lacked."""
    conn.execute("DELETE FROM search_sync_quarantine WHERE index_name = %s", (index,))
    conn.commit()


def listed(conn: psycopg.Connection, index: str, limit: int | None = None) -> list[QuarantinedDocument]:
    ensure_table(conn)
    rows = conn.execute(
        """SELECT doc_id, operation, status, reason, first_failed_at, last_failed_at, attempts
           FROM search_sync_quarantine WHERE index_name = %s ORDER BY doc_id LIMIT %s""",
        (index, limit),
    ).fetchall()
    conn.commit()
    return [QuarantinedDocument(**row) for row in rows]


def count(conn: psycopg.Connection, index: str) -> int:
    ensure_table(conn)
    total = conn.execute(
        "SELECT count(*) AS total FROM search_sync_quarantine WHERE index_name = %s", (index,)
    ).fetchone()
    conn.commit()
    return total["total"]
