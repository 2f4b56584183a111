"""The one entry point every runner uses: Dagster assets, the sensor and ``funnelhouse ingest``.

Files are loaded one after another in :func:`ingestion.load.landing.in_load_order` (employees
before customers before conversations ..., a table's batches in natural order: 9 before 10), each
in its own transaction (see :mod:`loader`), so a file's references can point at anything an
earlier file of the same run loaded, and a newer batch's values are the ones that stay.

A file the run could not load (failed: undecodable, refused, every row rejected; or held
unreadable) does not hold back the files that reference its table: they load, and their rows
naming keys that are not in PostgreSQL are quarantined as unknown references, as for any failed
upstream file (the sensor and the assets do the same). Those rows' reason names a file that could
not be loaded when the key is among its rejected rows, or may be in it (never read: held, refused
whole) (:func:`unloaded_parents`), and the command that loads them once it has loaded: the
dependant itself has nothing to fix, and ingesting it again is safe (``ledger.loaded_copy``: content
loaded with rejects is no duplicate, and its rows already loaded change nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import psycopg

from ingestion.contracts import CONTRACTS
from ingestion.load import ledger
from ingestion.load.landing import LandingFile, discover, in_load_order
from ingestion.load.loader import FileResult, ParentFile, checksum_of, load_file
from ingestion.load.readers import CHUNK_BYTES
from ingestion.schema import migrate


class Observer:
    """Progress hooks (the CLI draws a progress bar with them; Dagster logs)."""

    def file_started(self, file: LandingFile, index: int, total: int) -> None: ...

    def rows_read(self, count: int) -> None: ...

    def step_started(self, message: str) -> None:
        """A long step with no rows to count begins on a big file ('hashing x.csv (1,000.0 MB)...')."""

    def file_finished(self, result: FileResult) -> None: ...

    def file_unreadable(self, file: LandingFile, error: OSError) -> None:
        """A pending candidate could not be read to hash it (gone, no permission ...): it is held."""
        self.step_started(unreadable_note(file, error))


def unreadable_note(file: LandingFile, error: OSError) -> str:
    return f"{file.name} held (unreadable: {error})"


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, application_name="funnelhouse-ingest")


def pending(
    conn: psycopg.Connection,
    files: Iterable[LandingFile],
    *,
    retry_failed: bool = False,
    on_step: Callable[[str], None] | None = None,
    on_unreadable: Callable[[LandingFile, OSError], None] | None = None,
) -> list[tuple[LandingFile, str]]:
    """The files needing an automatic attempt, with their checksums (see :func:`ledger.handled`).

    ``retry_failed`` also returns files whose content failed at this path before (unless loaded
    since, as the same or a newer batch: ``ledger.stale_copy``; never one loaded or recorded as a
    duplicate at this path: ``ledger.settled_here``): what a person running ``funnelhouse ingest
    --via-dagster DIR`` expects, as plain ``funnelhouse ingest DIR`` retries them. The sensor leaves it off (it would retry every tick).

    Each version of a file (path, size, modification stamp) is hashed once: its checksum is kept
    (:func:`ledger.remember_checksum`), so a backlog or a touched folder is not read on every tick.
    A file that cannot be read (gone since it was listed, no permission) is left out and the others
    go on; it is held, not settled: it is given to ``on_unreadable`` (else named to ``on_step``),
    so that a caller can hold what depends on it and tell that it was not loaded.
    """
    files = list(files)
    seen = ledger.seen(conn, files)
    hashed = ledger.hashed_before(conn, files)
    waiting = []
    for file in files:
        if file.url in seen and not retry_failed:
            continue
        checksum = seen.get(file.url) or hashed.get(file.url)
        if checksum is None:
            try:
                checksum = checksum_of(file, on_step)
            except OSError as error:  # vanished since listed, or not ours to read: the others go on
                if on_unreadable:
                    on_unreadable(file, error)
                elif on_step:
                    on_step(unreadable_note(file, error))
                continue
            ledger.remember_checksum(conn, file, checksum)
        if retry_failed:
            if not ledger.settled_here(conn, file.table, file.url, checksum) and (
                ledger.stale_copy(conn, file.table, file.batch, checksum) is None
            ):
                waiting.append((file, checksum))
        elif not ledger.handled(conn, file.table, file.url, checksum):
            waiting.append((file, checksum))
    return waiting


def unloaded_parents(
    conn: psycopg.Connection, table: str, not_loaded: dict[str, list[ParentFile]], run_id: str | None
) -> dict[str, list[ParentFile]]:
    """The files of the tables ``table`` references (itself included: a customer's referrer) that
    this run could not load, by table: ``not_loaded`` (this call's own failed and held files), and
    with a ``run_id`` the files the ledger has failed in that run (a Dagster run loads a table per
    step, each its own call of :func:`ingest`). A reject reason names one of them only for a key
    it holds among its rejected rows, or may hold (never read: held, or refused whole)."""
    tables = {reference.table for reference in CONTRACTS[table].references}
    found = {t: list(not_loaded[t]) for t in tables if not_loaded.get(t)}
    for t, url, file_id in ledger.failed_in_run(conn, run_id, tables) if run_id else ():
        if url not in {parent.url for parent in found.setdefault(t, [])}:
            found[t].append(ParentFile(url, file_id))
    return found


def ingest(
    dsn: str,
    files: Iterable[LandingFile],
    *,
    only_pending: bool = False,
    retry_failed: bool = False,
    run_id: str | None = None,
    observer: Observer | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> list[FileResult]:
    """Load the files in :func:`in_load_order`, whatever order they are given in; ``only_pending``
    skips those the ledger has handled (sensor/asset mode), except, with ``retry_failed``, files
    that failed before (see :func:`pending`).

    Without it (explicit paths on the command line) every file is attempted: loaded content is
    recognised by checksum and recorded as a duplicate, a failed file is retried.
    """
    observer = observer or Observer()
    migrate.apply(dsn, log=lambda *_: None)
    results = []
    not_loaded: dict[str, list[ParentFile]] = defaultdict(list)  # table -> its files this run could not load

    def held(file: LandingFile, error: OSError) -> None:
        not_loaded[file.table].append(ParentFile(file.url))
        observer.file_unreadable(file, error)

    with connect(dsn) as conn:
        files = in_load_order(files)
        todo = (
            pending(conn, files, retry_failed=retry_failed, on_step=observer.step_started, on_unreadable=held)
            if only_pending
            else [(f, None) for f in files]
        )
        for index, (file, checksum) in enumerate(todo):
            observer.file_started(file, index, len(todo))
            result = load_file(
                conn,
                file,
                checksum,
                run_id=run_id,
                chunk_bytes=chunk_bytes,
                on_rows=observer.rows_read,
                on_step=observer.step_started,
                parents_not_loaded=unloaded_parents(conn, file.table, not_loaded, run_id),
            )
            if not result.ok:  # (its rejected rows kept when it was read: rows_in)
                not_loaded[file.table].append(
                    ParentFile(file.url, result.file_id if result.rows_in else None)
                )
            observer.file_finished(result)
            results.append(result)
    return results


def ingest_locations(dsn: str, locations: Iterable[str], **options) -> list[FileResult]:
    return ingest(dsn, discover(locations), **options)
