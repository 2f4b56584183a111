"""Where the sync keeps its place: a row per alias in PostgreSQL, next to the data it tracks.

One place of truth: a cursor is saved only after the engine acknowledged a bulk, so a crash
replays at most one batch (harmless: documents carry their rows' version, see ``bulk_lines``).
A session-level advisory lock per alias keeps the sensor's sync and a rebuild's alias swap from
interleaving; a killed process loses its session and so its lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg

from ingestion.search import quarantine, related
from ingestion.search.documents import EPOCH, Cursor, Cursors

# One (timestamp, id) column pair per followed table, named after the ``Cursors`` field.
_CURSOR_COLUMNS = {
    "changes": ("changes_updated_at", "changes_id"),
    "deletions": ("deletions_deleted_at", "deletions_id"),
    "customers": ("customers_updated_at", "customers_id"),
    "employees": ("employees_updated_at", "employees_id"),
}
# The UTC offset of the stamps' clock at the bound the cursors were read up to (``Cursors``): NULL in
# a state saved before it was kept (its cursors are then taken as they are).
_OFFSET_COLUMN = "cursor_utc_offset_seconds"
# Every column a ``Cursors`` is saved in.
_CURSORS_COLUMNS = [*(c for pair in _CURSOR_COLUMNS.values() for c in pair), _OFFSET_COLUMN]
_DDL = [
    """CREATE TABLE IF NOT EXISTS search_sync_state (
        index_alias TEXT PRIMARY KEY,
        physical_index TEXT,
        mapping_version INTEGER,
        documents_written BIGINT NOT NULL DEFAULT 0,
        documents_deleted BIGINT NOT NULL DEFAULT 0,
        last_sync_at TIMESTAMP,
        last_rebuild_at TIMESTAMP
    )""",
    # Added one by one so that a table created by an older version gains the newer cursors.
    *(
        f"ALTER TABLE search_sync_state ADD COLUMN IF NOT EXISTS {at} TIMESTAMP NOT NULL DEFAULT '1970-01-01', "
        f"ADD COLUMN IF NOT EXISTS {row_id} BIGINT NOT NULL DEFAULT 0"
        for at, row_id in _CURSOR_COLUMNS.values()
    ),
    "ALTER TABLE search_sync_state ADD COLUMN IF NOT EXISTS previous JSONB",
    f"ALTER TABLE search_sync_state ADD COLUMN IF NOT EXISTS {_OFFSET_COLUMN} INTEGER",
]
# The columns of one index's state, with their types; a rebuild keeps the state it replaced in
# ``previous`` so that a rollback restores it exactly (the previous index then catches up from its
# own cursors).
_STATE_COLUMNS = {
    "physical_index": "text",
    "mapping_version": "integer",
    **{c: "timestamp" if c.endswith("_at") else "bigint" for pair in _CURSOR_COLUMNS.values() for c in pair},
    _OFFSET_COLUMN: "integer",
}
_STATE_AS_JSON = "jsonb_build_object(" + ", ".join(f"'{c}', s.{c}" for c in _STATE_COLUMNS) + ")"
_CURSOR_ASSIGNMENTS = ", ".join(f"{c} = EXCLUDED.{c}" for c in _CURSORS_COLUMNS)
_CURSOR_NAMES = ", ".join(_CURSORS_COLUMNS)
_CURSOR_PLACEHOLDERS = ", ".join(["%s"] * len(_CURSORS_COLUMNS))
_UTC_NOW = "clock_timestamp() AT TIME ZONE 'UTC'"


@dataclass(frozen=True)
class SyncState:
    alias: str
    physical_index: str | None = None
    mapping_version: int | None = None
    cursors: Cursors = field(default_factory=Cursors)
    documents_written: int = 0
    documents_deleted: int = 0
    last_sync_at: dt.datetime | None = None
    last_rebuild_at: dt.datetime | None = None


def ensure_table(conn: psycopg.Connection) -> None:
    # Serialise concurrent first runs: CREATE TABLE IF NOT EXISTS can still race on the catalog.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('search_sync_state ddl'))")
    for statement in _DDL:
        conn.execute(statement)
    related.ensure_table(conn)
    quarantine.ensure_table(conn)
    conn.commit()


def _cursor_values(cursors: Cursors) -> list:
    return [
        *(value for name in _CURSOR_COLUMNS for value in cursors.of(name).as_tuple()),
        cursors.utc_offset_seconds,
    ]


def load(conn: psycopg.Connection, alias: str) -> SyncState:
    row = conn.execute("SELECT * FROM search_sync_state WHERE index_alias = %s", (alias,)).fetchone()
    conn.commit()
    if row is None:
        return SyncState(alias)
    cursors = Cursors(
        **{name: Cursor(row[at], row[row_id]) for name, (at, row_id) in _CURSOR_COLUMNS.items()},
        utc_offset_seconds=row[_OFFSET_COLUMN],
    )
    return SyncState(
        alias=alias,
        physical_index=row["physical_index"],
        mapping_version=row["mapping_version"],
        cursors=cursors,
        documents_written=row["documents_written"],
        documents_deleted=row["documents_deleted"],
        last_sync_at=row["last_sync_at"],
        last_rebuild_at=row["last_rebuild_at"],
    )


def save_progress(conn: psycopg.Connection, alias: str, cursors: Cursors, written: int, deleted: int) -> None:
    conn.execute(
        f"""INSERT INTO search_sync_state AS s (index_alias, {_CURSOR_NAMES}, documents_written,
                   documents_deleted, last_sync_at)
           VALUES (%s, {_CURSOR_PLACEHOLDERS}, %s, %s, {_UTC_NOW})
           ON CONFLICT (index_alias) DO UPDATE SET {_CURSOR_ASSIGNMENTS},
               documents_written = s.documents_written + EXCLUDED.documents_written,
               documents_deleted = s.documents_deleted + EXCLUDED.documents_deleted,
               last_sync_at = EXCLUDED.last_sync_at""",
        (alias, *_cursor_values(cursors), written, deleted),
    )
    conn.commit()


def save_rebuild(
    conn: psycopg.Connection, alias: str, index: str, mapping_version: int, cursors: Cursors
) -> None:
    conn.execute(
        f"""INSERT INTO search_sync_state AS s (index_alias, physical_index, mapping_version, {_CURSOR_NAMES},
                   last_rebuild_at, last_sync_at)
           VALUES (%s, %s, %s, {_CURSOR_PLACEHOLDERS}, {_UTC_NOW}, {_UTC_NOW})
           ON CONFLICT (index_alias) DO UPDATE SET
               previous = CASE WHEN s.physical_index IS NOT NULL THEN {_STATE_AS_JSON} END,
               physical_index = EXCLUDED.physical_index, mapping_version = EXCLUDED.mapping_version,
               {_CURSOR_ASSIGNMENTS},
               last_rebuild_at = EXCLUDED.last_rebuild_at, last_sync_at = EXCLUDED.last_sync_at""",
        (alias, index, mapping_version, *_cursor_values(cursors)),
    )
    conn.commit()


def previous(conn: psycopg.Connection, alias: str) -> SyncState | None:
    """The state the last rebuild (or rollback) replaced, if any."""
    row = conn.execute("SELECT previous FROM search_sync_state WHERE index_alias = %s", (alias,)).fetchone()
    conn.commit()
    saved = row and row["previous"]
    if not saved:
        return None
    at = dt.datetime.fromisoformat
    cursors = Cursors(
        **{name: Cursor(at(saved[a]), saved[i]) for name, (a, i) in _CURSOR_COLUMNS.items()},
        utc_offset_seconds=saved.get(_OFFSET_COLUMN),
    )
    return SyncState(alias, saved["physical_index"], saved["mapping_version"], cursors)


def swap_with_previous(conn: psycopg.Connection, alias: str) -> None:
    """Make the previous state current and the current one previous, in the caller's transaction
    (committed by the caller once the alias points where the state says)."""
    assignments = ", ".join(f"{c} = (s.previous->>'{c}')::{kind}" for c, kind in _STATE_COLUMNS.items())
    conn.execute(
        f"UPDATE search_sync_state AS s SET {assignments}, previous = {_STATE_AS_JSON}, "
        f"last_rebuild_at = {_UTC_NOW} WHERE index_alias = %s AND previous IS NOT NULL",
        (alias,),
    )


def _lock_key(alias: str) -> str:
    return f"search_sync:{alias}"


def try_lock(conn: psycopg.Connection, alias: str) -> bool:
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS got", (_lock_key(alias),)).fetchone()
    conn.commit()
    return bool(got["got"])


def lock(conn: psycopg.Connection, alias: str) -> None:
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (_lock_key(alias),))
    conn.commit()


def unlock(conn: psycopg.Connection, alias: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_lock_key(alias),))
    conn.commit()


__all__ = [
    "EPOCH",
    "SyncState",
    "ensure_table",
    "load",
    "lock",
    "previous",
    "save_progress",
    "save_rebuild",
    "swap_with_previous",
    "try_lock",
    "unlock",
]
