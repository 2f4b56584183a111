"""The PostgreSQL side: which rows become documents, and what a document holds.

A document is one conversation joined to its customer (code, tier, stage) and employee (code,
department). Names, phone numbers, e-mails, messenger ids and birth dates of customers and
employees are never selected, and the message text goes through ``redaction`` first.

PostgreSQL builds each document's JSON itself (``row_to_json`` runs in C, next to the
data), except the free text that must be redacted in Python: the message and its tags. That
keeps a full rebuild's Python work to one redaction and a string splice per conversation.

A document's version is the newest ``updated_at`` of its three rows, so a customer's or an
employee's change makes a newer version of every conversation that shows it, and a document read
earlier (a replay, a slower writer) can never overwrite one read later.

Timestamps are ``TIMESTAMP`` without zone meaning UTC; every session here runs in UTC so that
``clock_timestamp()`` compares with ``updated_at`` as the triggers wrote it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import psycopg
from psycopg.rows import dict_row, namedtuple_row

EPOCH = dt.datetime(1970, 1, 1)

# Microseconds since the epoch, exact (numeric ``extract`` since PostgreSQL 14).
_VERSION_SQL = "(extract(epoch FROM {}) * 1000000)::bigint"
_ISO_SQL = """to_char({}, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""

# One row per document: its keyset position, its version, the fields PostgreSQL renders as JSON,
# and the free text (message, tags) that ``bulk_lines`` redacts before adding it. The JSON is
# ``row_to_json`` of a lateral row, not ``json_build_object``: the variadic builder looks up how to
# render each argument's type on every row, which measured 40% more PostgreSQL time per document.
_SELECT = f"""
SELECT c.id, c.updated_at AS cursor_at,
       {_VERSION_SQL.format("greatest(c.updated_at, cu.updated_at, e.updated_at)")} AS version,
       row_to_json(fields)::text AS fields,
       c.content, c.keywords::text AS keywords, c.intention_signals::text AS intention_signals,
       c.risk_keywords::text AS risk_keywords
FROM conversations c
JOIN customers cu ON cu.id = c.customer_id
JOIN employees e ON e.id = c.employee_id
CROSS JOIN LATERAL (
    SELECT c.id, c.source_message_id,
           cu.customer_code, cu.tier AS customer_tier, cu.current_stage AS customer_stage,
           e.employee_code, e.department AS employee_department,
           c.platform, c.message_type, c.direction, c.media_url IS NOT NULL AS has_media, c.sentiment,
           coalesce(c."is_反问", false) AS is_counter_question, c.script_used_id, c.quality_score,
           {_ISO_SQL.format("c.sent_at")} AS sent_at, {_ISO_SQL.format("c.created_at")} AS created_at,
           {_ISO_SQL.format("c.updated_at")} AS updated_at
) AS fields
"""
FREE_TEXT_TAGS = ("keywords", "intention_signals", "risk_keywords")

# "now" for the cursor's upper bound, in the same UTC wall-clock the triggers write.
NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"


@dataclass(frozen=True)
class Cursor:
    """A keyset position: everything at or before (at, id) has been applied to the index."""

    at: dt.datetime = EPOCH
    id: int = 0

    def as_tuple(self) -> tuple[dt.datetime, int]:
        return (self.at, self.id)


@dataclass(frozen=True)
class Cursors:
    """Where the sync stands in each table it follows: conversations, their tombstones, and the
    customers and employees whose attributes documents copy."""

    changes: Cursor = Cursor()
    deletions: Cursor = Cursor()
    customers: Cursor = Cursor()
    employees: Cursor = Cursor()

    @classmethod
    def all_at(cls, cursor: Cursor) -> Cursors:
        return cls(cursor, cursor, cursor, cursor)

    def of(self, table: str) -> Cursor:
        return getattr(self, table)

    def moved(self, table: str, cursor: Cursor) -> Cursors:
        return replace(self, **{table: cursor})


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    conn = psycopg.connect(dsn, row_factory=dict_row, **kwargs)
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


def version_of(timestamp: dt.datetime) -> int:
    """External document version: the row timestamp in microseconds, so newer always wins
    (integer arithmetic, equal to ``_VERSION_SQL``)."""
    return (timestamp - EPOCH) // dt.timedelta(microseconds=1)


def changed_rows(conn: psycopg.Connection, after: Cursor, lag: dt.timedelta, limit: int) -> list:
    """Rows changed after the cursor, oldest first, excluding the last ``lag``: a transaction that
    wrote a row a moment ago may commit after a later one, and the cursor must not pass it by."""
    with conn.cursor(row_factory=namedtuple_row) as cursor:
        return cursor.execute(
            _SELECT + f"WHERE (c.updated_at, c.id) > (%s, %s) AND c.updated_at < {NOW} - %s "
            "ORDER BY c.updated_at, c.id LIMIT %s",
            (after.at, after.id, lag, limit),
        ).fetchall()


def deleted_rows(conn: psycopg.Connection, after: Cursor, lag: dt.timedelta, limit: int) -> list[dict]:
    """Tombstones of deleted conversations after the cursor (same lag rule)."""
    return conn.execute(
        f"SELECT id, row_id, deleted_at, {_VERSION_SQL.format('deleted_at')} AS version FROM sync_deletions "
        f"WHERE table_name = 'conversations' AND (deleted_at, id) > (%s, %s) AND deleted_at < {NOW} - %s "
        "ORDER BY deleted_at, id LIMIT %s",
        (after.at, after.id, lag, limit),
    ).fetchall()


def _stream(conn: psycopg.Connection, name: str, sql: str, params: Sequence, batch_rows: int) -> Iterator[list]:
    """Rows in batches through a server-side cursor (constant memory at any size). Call inside a
    transaction the caller commits afterwards."""
    with conn.cursor(name=name, row_factory=namedtuple_row, binary=True) as cursor:
        cursor.itersize = batch_rows
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(batch_rows):
            yield rows


def stream_all(conn: psycopg.Connection, batch_rows: int = 5000) -> Iterator[list]:
    """Every conversation (inside the caller's snapshot transaction)."""
    return _stream(conn, "search_rebuild", _SELECT, (), batch_rows)


def stream_conversations_of(
    conn: psycopg.Connection, foreign_key: str, row_ids: list[int], batch_rows: int
) -> Iterator[list]:
    """Every conversation of these customers (``customer_id``) or employees (``employee_id``): one
    customer may have thousands, so they are streamed, never loaded at once."""
    if foreign_key not in ("customer_id", "employee_id"):
        raise ValueError(f"not a conversations foreign key: {foreign_key!r}")
    return _stream(conn, "search_related", _SELECT + f"WHERE c.{foreign_key} = ANY(%s)", (row_ids,), batch_rows)


def count_all(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) AS n FROM conversations").fetchone()["n"]


def counts_per_day(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT sent_at::date AS day, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {row["day"].isoformat(): row["n"] for row in rows}


def pending_days(conn: psycopg.Connection, changes: Cursor) -> set[str]:
    """Days with changes the index has not seen yet (what a per-day comparison may legitimately miss)."""
    rows = conn.execute(
        "SELECT DISTINCT sent_at::date AS day FROM conversations WHERE (updated_at, id) > (%s, %s)",
        changes.as_tuple(),
    ).fetchall()
    return {row["day"].isoformat() for row in rows}


def database_now(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute(f"SELECT {NOW} AS now").fetchone()["now"]
