"""Customers and employees: rows whose attributes every one of their conversations' documents copies.

A customer's new tier or stage, or an employee's new department, changes no conversation row, so the
conversations cursor never sees it. Each of the two tables has its own ``(updated_at, id)`` cursor.
Most updates of these rows touch nothing a document shows (last contact, scores, logins), and an
employee may have tens of thousands of conversations, so a changed row's conversations are re-sent
only when the attributes documents copy differ from those the index holds.

What the index holds is remembered per physical index in ``search_indexed_attributes``: written in
the full rebuild's snapshot transaction (exactly the values it loaded), and after each successful
re-send with the values read *before* the conversations were (never newer than what was sent, so a
change racing the re-send is seen again, not lost). A row missing from it counts as changed.
"""

from __future__ import annotations

import datetime as dt

import psycopg

from ingestion.search.documents import CUSTOMER, EMPLOYEE, Cursor, Party

_DDL = """
CREATE TABLE IF NOT EXISTS search_indexed_attributes (
    physical_index TEXT NOT NULL,
    source_table TEXT NOT NULL,
    row_id BIGINT NOT NULL,
    attributes JSONB NOT NULL,
    PRIMARY KEY (physical_index, source_table, row_id)
)
"""


# Each table's name is also the name of its cursor in ``documents.Cursors``.
RELATED_TABLES = (CUSTOMER, EMPLOYEE)


def _attributes(related: Party) -> str:
    """What documents copy from a row ``t``, as one comparable JSONB value."""
    return "jsonb_build_array(" + ", ".join(f"t.{column}" for column in related.fields.values()) + ")"


def ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(_DDL)


def _changed_after(related: Party) -> str:
    """FROM/WHERE of the rows changed after a cursor and before a bound (params: physical index,
    cursor at, id, bound from ``documents.read_bound``)."""
    return f"""FROM {related.table} t
        LEFT JOIN search_indexed_attributes a ON a.physical_index = %s
             AND a.source_table = '{related.table}' AND a.row_id = t.id
        WHERE (t.updated_at, t.id) > (%s, %s) AND t.updated_at < %s"""


def changed_rows(
    conn: psycopg.Connection,
    related: Party,
    physical_index: str,
    after: Cursor,
    bound: dt.datetime,
    limit: int,
) -> list[dict]:
    """Rows changed after the cursor (oldest first, same bound as conversations), each with its
    attributes and whether they differ from those the index holds (``stale``)."""
    return conn.execute(
        f"""SELECT t.id, t.updated_at, {_attributes(related)}::text AS attributes,
                   {_attributes(related)} IS DISTINCT FROM a.attributes AS stale
            {_changed_after(related)} ORDER BY t.updated_at, t.id LIMIT %s""",
        (physical_index, after.at, after.id, bound, limit),
    ).fetchall()


def stale_exists_sql(related: Party) -> str:
    """An EXISTS for the sensor's probe (params as ``_changed_after``)."""
    return f"EXISTS (SELECT 1 {_changed_after(related)} AND {_attributes(related)} IS DISTINCT FROM a.attributes)"


def remember(conn: psycopg.Connection, related: Party, physical_index: str, rows: list[dict]) -> None:
    """The attributes the index now holds for these rows (as read before their conversations)."""
    if not rows:
        return
    conn.execute(
        """INSERT INTO search_indexed_attributes (physical_index, source_table, row_id, attributes)
           SELECT %s, %s, row_id, attributes::jsonb FROM unnest(%s::bigint[], %s::text[]) AS r(row_id, attributes)
           ON CONFLICT (physical_index, source_table, row_id) DO UPDATE SET attributes = EXCLUDED.attributes""",
        (physical_index, related.table, [r["id"] for r in rows], [r["attributes"] for r in rows]),
    )
    conn.commit()


def remember_snapshot(conn: psycopg.Connection, physical_index: str) -> None:
    """In the rebuild's snapshot transaction: the attributes of every row, as the load saw them."""
    for related in RELATED_TABLES:
        conn.execute(
            f"""INSERT INTO search_indexed_attributes (physical_index, source_table, row_id, attributes)
                SELECT %s, %s, t.id, {_attributes(related)} FROM {related.table} t""",
            (physical_index, related.table),
        )


def forget(conn: psycopg.Connection, physical_index: str) -> None:
    conn.execute("DELETE FROM search_indexed_attributes WHERE physical_index = %s", (physical_index,))
    conn.commit()
