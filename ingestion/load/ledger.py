"""The ingestion ledger (``funnelhouse.ingest_files``, ``funnelhouse.ingest_rejects``, migration 0006;
``funnelhouse.ingest_superseded``, migration 0024).

A file counts as ingested when its ledger row commits, and the loader writes that row in the
same transaction as the file's data and rejects: a crash leaves neither. Content, not name, is
the identity: a re-dropped copy of loaded content is recorded as 'duplicate' of it and changes
nothing - unless it is a newer batch of the table (:func:`duplicate_of`), or its load rejected
rows (:func:`loaded_copy`: a re-drop retries them). Daily full exports of a value going ON, OFF,
then ON again make day 3 the same bytes as day 1, and day 3's values are the ones that must stay
(a newer batch's values stay, see :mod:`ingestion.load.pipeline`); merging it is no risk, as a
merge of rows already there changes nothing.

New content of an older batch arriving late (day 1's file dropped after day 2's was loaded) is
loaded, but never over the newer batch's values: :func:`newer_batch_loaded` tells the loader, which
quarantines the rows that would change a stored row (rule ``older_batch``).
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg.types.json import Jsonb

from ingestion.load.landing import LandingFile, batch_order, parse_name

FILES = "funnelhouse.ingest_files"
REJECTS = "funnelhouse.ingest_rejects"
REJECT_COLUMNS = ("file_id", "path", "table_name", "row_number", "rule", "reason", "raw_row")
# Rows a later row of the same key in the same file replaced: loaded (the key's last row holds the
# row's state), not rejected, but kept with the row that replaced them (migration 0024).
SUPERSEDED = "funnelhouse.ingest_superseded"
SUPERSEDED_COLUMNS = ("file_id", "path", "table_name", "row_number", "superseded_by", "raw_row")


def loaded_copy(conn: psycopg.Connection, table: str, checksum: str) -> tuple[int, str] | None:
    """``(id, path)`` of the latest ledger row that loaded this content with no row rejected, if any.

    A load that rejected rows leaves them to a later load of the same content: rejected as an
    unknown reference (the upstream file had failed, is fixed since) or as an ``older_batch`` row,
    they load once the content is dropped again (the same path through ``funnelhouse ingest PATH``,
    or a new name). Merging it again changes nothing for its rows already loaded."""
    return conn.execute(
        f"""SELECT id, path FROM {FILES}
            WHERE table_name = %s AND checksum = %s AND status = 'loaded' AND rows_rejected = 0
            ORDER BY id DESC LIMIT 1""",
        (table, checksum),
    ).fetchone()


def _batch_of(path: str) -> str | None:
    parsed = parse_name(path.rstrip("/").rsplit("/", 1)[-1])
    return parsed[1] if parsed else None


def _newest_loaded_batch(conn: psycopg.Connection, table: str) -> str | None:
    """The batch of ``table`` loaded so far that sorts last (in the pipeline's
    :func:`~ingestion.load.landing.batch_order`), None before the first load."""
    paths = conn.execute(
        f"SELECT DISTINCT path FROM {FILES} WHERE table_name = %s AND status = 'loaded'", (table,)
    ).fetchall()
    loaded = [b for (path,) in paths if (b := _batch_of(path)) is not None]
    return max(loaded, key=batch_order, default=None)


def _newer_than_loaded(conn: psycopg.Connection, table: str, batch: str) -> bool:
    """Whether ``batch`` sorts after every batch of ``table`` loaded so far."""
    newest = _newest_loaded_batch(conn, table)
    return newest is None or batch_order(batch) > batch_order(newest)


def newer_batch_loaded(conn: psycopg.Connection, table: str, batch: str) -> str | None:
    """The newest batch of ``table`` loaded so far if it sorts strictly after ``batch``, else None.

    A file of ``batch`` then arrives late: the newer batch's values are in the table and must stay,
    so the loader merges only its rows that change nothing stored (new keys, identical rows) and
    quarantines the others (:meth:`~ingestion.load.merge_sql.MergePlan.checks`, rule ``older_batch``).
    A file of the newest batch itself (a fixed re-drop of it) is not older and merges as usual.
    Asked under the table's load lock, like :func:`duplicate_of`.
    """
    newest = _newest_loaded_batch(conn, table)
    return newest if newest is not None and batch_order(newest) > batch_order(batch) else None


def stale_copy(conn: psycopg.Connection, table: str, batch: str, checksum: str) -> tuple[int, str] | None:
    """``(id, path)`` of the latest load of this content if a file of ``batch`` bringing it again
    must not be merged: its batch does not sort after the newest batch of the table loaded, so
    its values are not the newest (and a true re-drop of a loaded file is such a file). None for
    new content, and for old content in a newer batch, which the loader merges."""
    copy = loaded_copy(conn, table, checksum)
    if copy is None or _newer_than_loaded(conn, table, batch):
        return None
    return copy


def duplicate_of(conn: psycopg.Connection, file: LandingFile, checksum: str) -> tuple[int, str] | None:
    """``(id, path)`` of the loaded copy the loader records ``file`` as a duplicate of; None: load it.

    A :func:`stale_copy`, or content that is what the table's latest load brought (the same
    export two days running, a copy under a new name): nothing loaded since could have changed
    what it would merge. Asked under the table's load lock, which orders the table's loads by id.
    """
    copy = loaded_copy(conn, file.table, checksum)
    if copy is None:
        return None
    latest = conn.execute(
        f"SELECT max(id) FROM {FILES} WHERE table_name = %s AND status = 'loaded'", (file.table,)
    ).fetchone()[0]
    if copy[0] == latest or not _newer_than_loaded(conn, file.table, file.batch):
        return copy
    return None


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
    rows_superseded: int = 0,
    error: str | None = None,
) -> None:
    """The file's counts; ``rows_superseded`` (of ``rows_loaded``) a later row of their key replaced."""
    conn.execute(
        f"""UPDATE {FILES} SET status = %s, rows_in = %s, rows_loaded = %s, rows_rejected = %s,
                   rows_changed = %s, rows_superseded = %s, validation = %s, error = %s,
                   finished_at = clock_timestamp()
            WHERE id = %s""",
        (
            status,
            rows_in,
            rows_loaded,
            rows_rejected,
            rows_changed,
            rows_superseded,
            Jsonb(validation),
            error,
            file_id,
        ),
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


def failed_in_run(
    conn: psycopg.Connection, run_id: str, tables: Iterable[str]
) -> list[tuple[str, str, int | None]]:
    """``(table, path, id)`` of the files of ``tables`` that failed in the run ``run_id``, oldest
    first; ``id`` None unless its rejected rows were kept (every row rejected: its keys are known)."""
    return conn.execute(
        f"""SELECT table_name, path, CASE WHEN rows_in > 0 THEN id END FROM {FILES}
            WHERE run_id = %s AND table_name = ANY(%s) AND status = 'failed' ORDER BY id""",
        (run_id, list(tables)),
    ).fetchall()


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


CHECKSUMS = "funnelhouse.landing_checksums"


def hashed_before(conn: psycopg.Connection, files: Iterable[LandingFile]) -> dict[str, str]:
    """Checksums of the files whose exact version (path, size, modification stamp) was hashed
    before (:func:`remember_checksum`), by URL: what a tick need not read again (migration 0021)."""
    candidates = [(f.url, f.size, f.modified) for f in files if f.size is not None and f.modified is not None]
    if not candidates:
        return {}
    rows = conn.execute(
        f"""SELECT h.path, h.checksum FROM {CHECKSUMS} h
            JOIN unnest(%s::text[], %s::bigint[], %s::text[]) AS c(path, size, modified)
              ON h.path = c.path AND h.size_bytes = c.size AND h.modified = c.modified""",
        ([c[0] for c in candidates], [c[1] for c in candidates], [c[2] for c in candidates]),
    ).fetchall()
    return dict(rows)


def remember_checksum(conn: psycopg.Connection, file: LandingFile, checksum: str) -> None:
    """Keep the checksum of this version of ``file`` (committed at once on an autocommit
    connection, so a tick cut short by its timeout keeps what it hashed)."""
    if file.size is None or file.modified is None:
        return  # a version a later listing could not tell apart from another
    conn.execute(
        f"""INSERT INTO {CHECKSUMS} (path, size_bytes, modified, checksum) VALUES (%s, %s, %s, %s)
            ON CONFLICT (path, size_bytes, modified) DO UPDATE SET checksum = EXCLUDED.checksum""",
        (file.url, file.size, file.modified, checksum),
    )


def _recorded_here(
    conn: psycopg.Connection, table: str, path: str, checksum: str, *, failed_too: bool
) -> bool:
    """Whether the ledger has a row of this content at this path (a failed one only if ``failed_too``)."""
    return conn.execute(
        f"""SELECT EXISTS (SELECT 1 FROM {FILES}
                           WHERE table_name = %s AND checksum = %s AND path = %s
                             AND (%s OR status <> 'failed'))""",
        (table, checksum, path, failed_too),
    ).fetchone()[0]


def settled_here(conn: psycopg.Connection, table: str, path: str, checksum: str) -> bool:
    """Whether this content was loaded at this path already, or recorded there as a duplicate: an
    attempt that needs no retry (a failed one does)."""
    return _recorded_here(conn, table, path, checksum, failed_too=False)


def handled(conn: psycopg.Connection, table: str, path: str, checksum: str) -> bool:
    """Whether this content needs no automatic attempt: tried at this path already, or a
    :func:`stale_copy` (loaded, and this path's batch is not newer than the table's newest loaded).

    A failed file is not retried automatically (the sensor would relaunch it on every tick); a
    fixed file has a new checksum and is picked up, and ``funnelhouse ingest PATH`` retries on demand.
    Only :func:`stale_copy` is asked, not :func:`duplicate_of`: a run decides what is pending before
    it loads anything, and the earlier batches it loads first can make a repeat of the latest load
    worth merging (ON loaded; OFF and ON again pending). Such a file is attempted and, if still
    a duplicate when its turn comes, recorded as one.
    """
    tried_here = _recorded_here(conn, table, path, checksum, failed_too=True)
    batch = _batch_of(path)
    return tried_here or (batch is not None and stale_copy(conn, table, batch, checksum) is not None)
