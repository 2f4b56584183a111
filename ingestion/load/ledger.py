"""The ingestion ledger (``funnelhouse.ingest_files``, ``funnelhouse.ingest_rejects``, migration 0006).

A file counts as ingested when its ledger row commits, and the loader writes that row in the
same transaction as the file's data and rejects: a crash leaves neither. Content, not name, is
the identity - ``(table, checksum)`` can be 'loaded' once - so a re-dropped copy is recorded as
'duplicate' of the first and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg.types.json import Jsonb

from ingestion.load.landing import LandingFile

FILES = "funnelhouse.ingest_files"
REJECTS = "funnelhouse.ingest_rejects"
REJECT_COLUMNS = ("file_id", "path", "table_name", "row_number", "rule", "reason", "raw_row")


def loaded_copy(conn: psycopg.Connection, table: str, checksum: str) -> tuple[int, str] | None:
    """``(id, path)`` of the ledger row that already loaded this content, if any."""
    return conn.execute(
        f"SELECT id, path FROM {FILES} WHERE table_name = %s AND checksum = %s AND status = 'loaded'",
        (table, checksum),
    ).fetchone()


def start(conn: psycopg.Connection, file: LandingFile, checksum: str, run_id: str | None) -> int:
    """The file's ledger row, status 'loading'; visible to others only if the load commits."""
    return conn.execute(
        f"""INSERT INTO {FILES} (path, checksum, size_bytes, modified, table_name, format, status, run_id)
            VALUES (%s, %s, %s, %s, %s, %s, 'loading', %s) RETURNING id""",
        (file.url, checksum, file.size, file.modified, file.table, file.format, run_id),
    ).fetchone()[0]


def finish(
    conn: psycopg.Connection,
    file_id: int,
    *,
    status: str,
    rows_in: int,
    rows_loaded: int,
    rows_rejected: int,
    rows_changed: int,
    validation: dict,
    error: str | None = None,
) -> None:
    conn.execute(
        f"""UPDATE {FILES} SET status = %s, rows_in = %s, rows_loaded = %s, rows_rejected = %s,
                   rows_changed = %s, validation = %s, error = %s, finished_at = clock_timestamp()
            WHERE id = %s""",
        (status, rows_in, rows_loaded, rows_rejected, rows_changed, Jsonb(validation), error, file_id),
    )


def record(
    conn: psycopg.Connection,
    file: LandingFile,
    checksum: str,
    *,
    status: str,
    run_id: str | None,
    error: str | None = None,
    duplicate_of: int | None = None,
) -> int:
    """A finished ledger row in one statement: a failed file (after its rollback) or a duplicate."""
    return conn.execute(
        f"""INSERT INTO {FILES} (path, checksum, size_bytes, modified, table_name, format, status, run_id,
                                 error, duplicate_of, rows_in, rows_loaded, rows_rejected, rows_changed,
                                 finished_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, 0, 0, clock_timestamp()) RETURNING id""",
        (
            file.url,
            checksum,
            file.size,
            file.modified,
            file.table,
            file.format,
            status,
            run_id,
            error,
            duplicate_of,
        ),
    ).fetchone()[0]


def seen(conn: psycopg.Connection, files: Iterable[LandingFile]) -> dict[str, str]:
    """Checksums of the files whose exact version (path, size, modification stamp) has a ledger row.

    Lets the sensor skip hashing what it has handled before; a file whose stamp is unknown is
    never taken as seen here (it is hashed and looked up by checksum instead).
    """
    candidates = [(f.url, f.size, f.modified) for f in files if f.modified is not None]
    if not candidates:
        return {}
    rows = conn.execute(
        f"""SELECT DISTINCT ON (f.path) f.path, f.checksum
            FROM {FILES} f
            JOIN unnest(%s::text[], %s::bigint[], %s::text[]) AS c(path, size, modified)
              ON f.path = c.path AND f.size_bytes = c.size AND f.modified = c.modified
            ORDER BY f.path, f.id DESC""",
        ([c[0] for c in candidates], [c[1] for c in candidates], [c[2] for c in candidates]),
    ).fetchall()
    return dict(rows)


def handled(conn: psycopg.Connection, table: str, path: str, checksum: str) -> bool:
    """Whether this content needs no automatic attempt: loaded anywhere, or tried at this path already.

    A failed file is not retried automatically (the sensor would relaunch it on every tick); a
    fixed file has a new checksum and is picked up, and ``funnelhouse ingest PATH`` retries on demand.
    """
    return conn.execute(
        f"""SELECT EXISTS (SELECT 1 FROM {FILES}
                           WHERE table_name = %s AND checksum = %s AND (status = 'loaded' OR path = %s))""",
        (table, checksum, path),
    ).fetchone()[0]
