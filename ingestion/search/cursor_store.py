"""Where the sync keeps its place: a row per alias in PostgreSQL, next to the data it tracks.

One place of truth: the cursor is saved only after the engine acknowledged a bulk, so a crash
replays at most one batch (harmless, see ``client.Action`` versions). A session-level advisory lock
per alias keeps the sensor's sync and a rebuild's alias swap from interleaving; a killed process
loses its session and so its lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from ingestion.search.documents import EPOCH, Cursor

_DDL = """
CREATE TABLE IF NOT EXISTS search_sync_state (
    index_alias TEXT PRIMARY KEY,
    physical_index TEXT,
    mapping_version INTEGER,
    changes_updated_at TIMESTAMP NOT NULL DEFAULT '1970-01-01',
    changes_id BIGINT NOT NULL DEFAULT 0,
    deletions_deleted_at TIMESTAMP NOT NULL DEFAULT '1970-01-01',
    deletions_id BIGINT NOT NULL DEFAULT 0,
    documents_written BIGINT NOT NULL DEFAULT 0,
    documents_deleted BIGINT NOT NULL DEFAULT 0,
    last_sync_at TIMESTAMP,
    last_rebuild_at TIMESTAMP
)
"""


@dataclass(frozen=True)
class SyncState:
    alias: str
    physical_index: str | None = None
    mapping_version: int | None = None
    changes: Cursor = Cursor()
    deletions: Cursor = Cursor()
    documents_written: int = 0
    documents_deleted: int = 0
    last_sync_at: dt.datetime | None = None
    last_rebuild_at: dt.datetime | None = None


def ensure_table(conn: psycopg.Connection) -> None:
    # Serialise concurrent first runs: CREATE TABLE IF NOT EXISTS can still race on the catalog.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('search_sync_state ddl'))")
    conn.execute(_DDL)
    conn.commit()


def load(conn: psycopg.Connection, alias: str) -> SyncState:
    row = conn.execute("SELECT * FROM search_sync_state WHERE index_alias = %s", (alias,)).fetchone()
    conn.commit()
    if row is None:
        return SyncState(alias)
    return SyncState(
        alias=alias,
        physical_index=row["physical_index"],
        mapping_version=row["mapping_version"],
        changes=Cursor(row["changes_updated_at"], row["changes_id"]),
        deletions=Cursor(row["deletions_deleted_at"], row["deletions_id"]),
        documents_written=row["documents_written"],
        documents_deleted=row["documents_deleted"],
        last_sync_at=row["last_sync_at"],
        last_rebuild_at=row["last_rebuild_at"],
    )


def save_progress(
    conn: psycopg.Connection, alias: str, changes: Cursor, deletions: Cursor, written: int, deleted: int
) -> None:
    conn.execute(
        """INSERT INTO search_sync_state AS s (index_alias, changes_updated_at, changes_id,
                   deletions_deleted_at, deletions_id, documents_written, documents_deleted, last_sync_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, clock_timestamp() AT TIME ZONE 'UTC')
           ON CONFLICT (index_alias) DO UPDATE SET
               changes_updated_at = EXCLUDED.changes_updated_at, changes_id = EXCLUDED.changes_id,
               deletions_deleted_at = EXCLUDED.deletions_deleted_at, deletions_id = EXCLUDED.deletions_id,
               documents_written = s.documents_written + EXCLUDED.documents_written,
               documents_deleted = s.documents_deleted + EXCLUDED.documents_deleted,
               last_sync_at = EXCLUDED.last_sync_at""",
        (alias, changes.at, changes.id, deletions.at, deletions.id, written, deleted),
    )
    conn.commit()


def save_rebuild(
    conn: psycopg.Connection, alias: str, index: str, mapping_version: int, changes: Cursor, deletions: Cursor
) -> None:
    conn.execute(
        """INSERT INTO search_sync_state AS s (index_alias, physical_index, mapping_version,
                   changes_updated_at, changes_id, deletions_deleted_at, deletions_id, last_rebuild_at, last_sync_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, clock_timestamp() AT TIME ZONE 'UTC', clock_timestamp() AT TIME ZONE 'UTC')
           ON CONFLICT (index_alias) DO UPDATE SET
               physical_index = EXCLUDED.physical_index, mapping_version = EXCLUDED.mapping_version,
               changes_updated_at = EXCLUDED.changes_updated_at, changes_id = EXCLUDED.changes_id,
               deletions_deleted_at = EXCLUDED.deletions_deleted_at, deletions_id = EXCLUDED.deletions_id,
               last_rebuild_at = EXCLUDED.last_rebuild_at, last_sync_at = EXCLUDED.last_sync_at""",
        (alias, index, mapping_version, changes.at, changes.id, deletions.at, deletions.id),
    )
    conn.commit()


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


__all__ = ["EPOCH", "SyncState", "ensure_table", "load", "lock", "save_progress", "save_rebuild", "try_lock", "unlock"]
