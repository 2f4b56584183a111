"""Incremental sync: apply PostgreSQL changes to the index, in keyset order, exactly once in effect.

Each round reads a batch of changed rows ``(updated_at, id) > cursor`` (minus a small lag), bulk
indexes them, and only then moves the cursor; then the same for tombstones in ``sync_deletions``.
A crash between the bulk and the cursor save replays that batch next time, which changes nothing:
documents carry their row version (``external_gte``), so the same version rewrites itself and an
older one is refused.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from ingestion.search import cursor_store, documents, mapping
from ingestion.search.client import BulkFailed, BulkOutcome, SearchClient
from ingestion.search.documents import Cursor

DEFAULT_LAG = dt.timedelta(seconds=2)
DEFAULT_BATCH = 1000


@dataclass
class SyncReport:
    alias: str
    indexed: int = 0
    deleted: int = 0
    replayed: int = 0  # writes the engine already had (replays, stale versions)
    batches: int = 0
    changes: Cursor = field(default_factory=Cursor)
    deletions: Cursor = field(default_factory=Cursor)
    skipped: str | None = None
    needs_rebuild: str | None = None
    seconds: float = 0.0


ProgressCallback = Callable[[Cursor, Cursor, int, int], None]


def _bulk_or_raise(client: SearchClient, actions, index: str, refresh: bool) -> BulkOutcome:
    outcome = client.bulk(actions, index, refresh=refresh)
    if outcome.failed:
        # The cursor stays where it is: the next run retries this batch, and the error is visible.
        raise BulkFailed(outcome)
    return outcome


def apply_changes(
    conn: psycopg.Connection,
    client: SearchClient,
    index: str,
    changes: Cursor,
    deletions: Cursor,
    *,
    lag: dt.timedelta = DEFAULT_LAG,
    batch_size: int = DEFAULT_BATCH,
    on_progress: ProgressCallback | None = None,
    refresh: bool = False,
    report: SyncReport | None = None,
) -> SyncReport:
    """Apply every change visible now (beyond the lag) to ``index`` (an alias or a physical index)."""
    report = report or SyncReport(alias=index)
    while True:
        rows = documents.changed_rows(conn, changes, lag, batch_size)
        conn.commit()
        if rows:
            outcome = _bulk_or_raise(client, [documents.to_action(r) for r in rows], index, refresh)
            changes = Cursor(rows[-1]["updated_at"], rows[-1]["id"])
            report.indexed += outcome.succeeded
            report.replayed += outcome.harmless
            report.batches += 1
            if on_progress:
                on_progress(changes, deletions, outcome.succeeded, 0)
        tombstones = documents.deleted_rows(conn, deletions, lag, batch_size)
        conn.commit()
        if tombstones:
            outcome = _bulk_or_raise(client, [documents.delete_action(t) for t in tombstones], index, refresh)
            deletions = Cursor(tombstones[-1]["deleted_at"], tombstones[-1]["id"])
            report.deleted += outcome.succeeded
            report.replayed += outcome.harmless
            report.batches += 1
            if on_progress:
                on_progress(changes, deletions, 0, outcome.succeeded + outcome.harmless)
        if len(rows) < batch_size and len(tombstones) < batch_size:
            break
    report.changes, report.deletions = changes, deletions
    return report


def rebuild_reason(client: SearchClient, alias: str) -> str | None:
    """Why the live index cannot be synced incrementally, or None if it can."""
    targets = client.alias_targets(alias)
    if not targets:
        return f"alias {alias!r} does not exist yet"
    live_version = client.mapping_meta(targets[0]).get("mapping_version")
    if live_version != mapping.MAPPING_VERSION:
        return f"mapping version {live_version} in {targets[0]} != {mapping.MAPPING_VERSION}"
    return None


def run_incremental(
    dsn: str,
    client: SearchClient,
    alias: str = mapping.DEFAULT_ALIAS,
    *,
    lag: dt.timedelta = DEFAULT_LAG,
    batch_size: int = DEFAULT_BATCH,
    refresh: bool = False,
) -> SyncReport:
    """One incremental pass from the saved cursor; skips (does not wait) while another holds the lock."""
    started = time.monotonic()
    report = SyncReport(alias=alias)
    with documents.connect(dsn) as conn:
        cursor_store.ensure_table(conn)
        if not cursor_store.try_lock(conn, alias):
            report.skipped = "another sync or a rebuild's alias swap is running"
            return report
        try:
            reason = rebuild_reason(client, alias)
            if reason:
                report.needs_rebuild = reason
                return report
            saved = cursor_store.load(conn, alias)

            def save(changes: Cursor, deletions: Cursor, written: int, deleted: int) -> None:
                cursor_store.save_progress(conn, alias, changes, deletions, written, deleted)

            apply_changes(
                conn, client, alias, saved.changes, saved.deletions,
                lag=lag, batch_size=batch_size, on_progress=save, refresh=refresh, report=report,
            )
        finally:
            cursor_store.unlock(conn, alias)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def pending(dsn: str, alias: str = mapping.DEFAULT_ALIAS, lag: dt.timedelta = DEFAULT_LAG) -> bool:
    """Whether PostgreSQL holds changes the index has not seen (the sensor's cheap question)."""
    with documents.connect(dsn) as conn:
        cursor_store.ensure_table(conn)
        saved = cursor_store.load(conn, alias)
        return documents.has_changes(conn, saved.changes, saved.deletions, lag)
