"""The PostgreSQL side: which rows become documents, and what a document holds.

A document is one conversation joined to its customer (code, tier, stage) and employee (code,
department). Names, phone numbers, e-mails, messenger ids and birth dates of customers and
employees are never selected, and the message text goes through ``redaction`` first.

Timestamps are ``TIMESTAMP`` without zone meaning UTC; every session here runs in UTC so that
``clock_timestamp()`` compares with ``updated_at`` as the triggers wrote it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from ingestion.search.client import Action
from ingestion.search.redaction import redact, redact_all

EPOCH = dt.datetime(1970, 1, 1)

_SELECT = """
SELECT c.id, c.source_message_id, c.message_type, c.direction, c.content,
       c.media_url IS NOT NULL AS has_media, c.sentiment, c.keywords, c.intention_signals,
       c.risk_keywords, c.script_used_id, c."is_反问" AS is_counter_question, c.quality_score,
       c.platform, c.sent_at, c.created_at, c.updated_at,
       cu.customer_code, cu.tier AS customer_tier, cu.current_stage AS customer_stage,
       e.employee_code, e.department AS employee_department
FROM conversations c
JOIN customers cu ON cu.id = c.customer_id
JOIN employees e ON e.id = c.employee_id
"""

# "now" for the cursor's upper bound, in the same UTC wall-clock the triggers write.
_NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"


@dataclass(frozen=True)
class Cursor:
    """A keyset position: everything at or before (at, id) has been applied to the index."""

    at: dt.datetime = EPOCH
    id: int = 0

    def as_tuple(self) -> tuple[dt.datetime, int]:
        return (self.at, self.id)


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    conn = psycopg.connect(dsn, row_factory=dict_row, **kwargs)
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


def version_of(timestamp: dt.datetime) -> int:
    """External document version: the row timestamp in microseconds, so newer always wins."""
    return int((timestamp - EPOCH).total_seconds() * 1_000_000)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") + "Z" if value else None


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


def to_document(row: dict) -> dict:
    return {
        "id": row["id"],
        "source_message_id": row["source_message_id"],
        "customer_code": row["customer_code"],
        "customer_tier": row["customer_tier"],
        "customer_stage": row["customer_stage"],
        "employee_code": row["employee_code"],
        "employee_department": row["employee_department"],
        "platform": row["platform"],
        "message_type": row["message_type"],
        "direction": row["direction"],
        "content": redact(row["content"]),
        "has_media": bool(row["has_media"]),
        "sentiment": row["sentiment"],
        "keywords": redact_all(_strings(row["keywords"])),
        "intention_signals": redact_all(_strings(row["intention_signals"])),
        "risk_keywords": redact_all(_strings(row["risk_keywords"])),
        "is_counter_question": bool(row["is_counter_question"]),
        "script_used_id": row["script_used_id"],
        "quality_score": row["quality_score"],
        "sent_at": _iso(row["sent_at"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def to_action(row: dict) -> Action:
    return Action("index", str(row["id"]), version_of(row["updated_at"]), to_document(row))


def changed_rows(conn: psycopg.Connection, after: Cursor, lag: dt.timedelta, limit: int) -> list[dict]:
    """Rows changed after the cursor, oldest first, excluding the last ``lag``: a transaction that
    wrote a row a moment ago may commit after a later one, and the cursor must not pass it by."""
    return conn.execute(
        _SELECT + f"WHERE (c.updated_at, c.id) > (%s, %s) AND c.updated_at < {_NOW} - %s "
        "ORDER BY c.updated_at, c.id LIMIT %s",
        (after.at, after.id, lag, limit),
    ).fetchall()


def deleted_rows(conn: psycopg.Connection, after: Cursor, lag: dt.timedelta, limit: int) -> list[dict]:
    """Tombstones of deleted conversations after the cursor (same lag rule)."""
    return conn.execute(
        "SELECT id, row_id, deleted_at FROM sync_deletions WHERE table_name = 'conversations' "
        f"AND (deleted_at, id) > (%s, %s) AND deleted_at < {_NOW} - %s ORDER BY deleted_at, id LIMIT %s",
        (after.at, after.id, lag, limit),
    ).fetchall()


def delete_action(tombstone: dict) -> Action:
    return Action("delete", str(tombstone["row_id"]), version_of(tombstone["deleted_at"]))


def has_changes(conn: psycopg.Connection, changes: Cursor, deletions: Cursor, lag: dt.timedelta) -> bool:
    """Cheap probe for the sensor: one index lookup per table, no documents built."""
    row = conn.execute(
        f"""SELECT EXISTS (SELECT 1 FROM conversations WHERE (updated_at, id) > (%s, %s)
                                AND updated_at < {_NOW} - %s)
               OR EXISTS (SELECT 1 FROM sync_deletions WHERE table_name = 'conversations'
                          AND (deleted_at, id) > (%s, %s) AND deleted_at < {_NOW} - %s) AS pending""",
        (changes.at, changes.id, lag, deletions.at, deletions.id, lag),
    ).fetchone()
    return bool(row["pending"])


def stream_all(conn: psycopg.Connection, batch_rows: int = 5000) -> Iterator[list[dict]]:
    """Every conversation, in batches, through a server-side cursor (constant memory at 1M rows).
    Call inside the caller's snapshot transaction."""
    with conn.cursor(name="search_rebuild", row_factory=dict_row) as cursor:
        cursor.itersize = batch_rows
        cursor.execute(_SELECT)
        while True:
            rows = cursor.fetchmany(batch_rows)
            if not rows:
                return
            yield rows


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
    return conn.execute(f"SELECT {_NOW} AS now").fetchone()["now"]


def change_marker(conn: psycopg.Connection) -> str:
    """A string that changes whenever conversations change (the sensor's run key, so one pending
    state launches one run however many ticks see it)."""
    row = conn.execute(
        """SELECT (SELECT max(updated_at) FROM conversations) AS changed,
                  (SELECT max(id) FROM sync_deletions WHERE table_name = 'conversations') AS deleted"""
    ).fetchone()
    return f"{row['changed']}|{row['deleted']}"
