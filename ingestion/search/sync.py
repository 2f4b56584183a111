"""Incremental sync: apply PostgreSQL changes to the index, in keyset order, exactly once in effect.

Each round reads a batch of changed conversations ``(updated_at, id) > cursor``, stamped before the
start of the oldest transaction still writing (``documents.read_bound``: a row of a transaction
that commits later is not passed by; the cursors are moved back first if the stamps' clock fell
back since: ``Cursors.rewound_for``), bulk indexes them, and only then moves the cursor; then the
same for tombstones in ``sync_deletions``; then for customers and employees whose copied attributes
changed (``related``), whose conversations are re-sent from PostgreSQL, streamed. A document the
engine refuses for good, or too large to send in a bulk request (``bulk_lines`` cuts batches into
requests by bytes too), is set aside with the reason (``quarantine``) and the cursor moves past it;
an error about the index (closed, no write index...) fails the batch and the cursor stays.
While the live index awaits a rebuild (its mapping version is outdated) it is still synced, so that a
rebuild that fails leaves no deleted conversation searchable (``run_incremental``).
A crash between a bulk and the cursor save replays that batch next time, which changes nothing:
documents carry their rows' version (``external_gte``), so the same version rewrites itself and an
older one is refused. A delete the engine refuses as older than the document it holds is not taken
as done while the conversation is gone from PostgreSQL (``_delete``).
A TRUNCATE (of conversations, one of its partitions, or the customers or employees documents quote)
leaves no tombstone, only a marker (``documents.last_truncation``): one stamped in the deletions'
window has every document whose conversation PostgreSQL no longer has deleted (``_delete_absent``:
the index's ids are read and looked up a page at a time, ``absent``), and the deletions cursor then
passes it. A partition of conversations detached, dropped or attached leaves such a marker too,
recorded when the sync (or ``pending``) first asks (migration 0026,
``migrate.record_partition_changes``); after one, the conversations behind the changes cursor that
the index lacks (an attached month's) are indexed as well (``_index_missing``: their ids are read
first, and only those the index holds no document of are made documents, ``missing``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from ingestion.schema import migrate
from ingestion.search import (
    absent,
    bulk_lines,
    cursor_store,
    documents,
    mapping,
    missing,
    probe,
    quarantine,
    related,
)
from ingestion.search.bulk_lines import BulkItem
from ingestion.search.client import BulkOutcome, SearchClient
from ingestion.search.documents import Cursor, Cursors

log = logging.getLogger(__name__)

# No fixed lag is needed: reads stop at ``documents.read_bound``; a lag only holds changes back more.
DEFAULT_LAG = dt.timedelta(0)
DEFAULT_BATCH = 1000


@dataclass
class SyncReport:
    alias: str
    indexed: int = 0
    deleted: int = 0
    replayed: int = 0  # writes the engine already had (replays, stale versions)
    related_reindexed: int = 0  # of ``indexed``: re-sent because their customer or employee changed
    quarantined: int = 0  # refused by the engine for good, set aside with the reason (``quarantine``)
    batches: int = 0
    cursors: Cursors = field(default_factory=Cursors)
    skipped: str | None = None
    needs_rebuild: str | None = None
    seconds: float = 0.0


ProgressCallback = Callable[[Cursors, int, int], None]


def _send(
    conn: psycopg.Connection,
    client: SearchClient,
    items: list[BulkItem],
    refresh: bool,
    report: SyncReport,
    physical_index: str,
) -> BulkOutcome:
    """Bulk ``items``. A transient failure raises: the cursor stays where it is, the next run sends the
    batch again, and the error is visible. A document the engine refuses for good is quarantined
    (with the reason, in the transaction that moves the cursor) instead of blocking every row after it."""
    outcome = client.bulk(items, refresh=refresh)
    refused = quarantine.refusals(outcome)
    quarantine.settle(conn, physical_index, items, refused)
    if refused:
        report.quarantined += len(refused)
        log.warning(
            "%d document(s) refused by the search engine, quarantined (search_sync_quarantine), e.g. %s: %s",
            len(refused),
            refused[0]["id"],
            quarantine.reason(refused[0]),
        )
    return outcome


def _delete(
    conn: psycopg.Connection,
    client: SearchClient,
    index: str,
    tombstones: list[dict],
    refresh: bool,
    report: SyncReport,
    physical_index: str,
) -> BulkOutcome:
    """Delete the tombstones' documents, also those whose version outranks their tombstone.

    A delete carries the time it ran, a document the newest change of its conversation, customer and
    employee. A customer change committed while the delete's transaction was still open can reach the
    index first (a sync reads the conversation, still there, with the customer's newer version), and
    then the engine refuses the older delete. Refused deletes of conversations PostgreSQL no longer
    has are sent again with the version the index holds; a conversation inserted again under the
    same id keeps its document, which is newer than the delete and belongs to the new row."""
    index_json = bulk_lines.index_name_json(index)
    deletes = [bulk_lines.delete_item(tombstone, index_json) for tombstone in tombstones]
    outcome = _send(conn, client, deletes, refresh, report, physical_index)
    if not outcome.outranked_deletes:
        return outcome
    # (in the transaction that moves the cursor, like the quarantine's records of this batch)
    present = documents.present_conversations(conn, [int(doc_id) for doc_id in outcome.outranked_deletes])
    gone = [doc_id for doc_id in dict.fromkeys(outcome.outranked_deletes) if int(doc_id) not in present]
    held = client.versions(index, gone)
    last_tombstone = {str(tombstone["row_id"]): tombstone for tombstone in tombstones}
    again = [
        bulk_lines.delete_item(
            {**last_tombstone[doc_id], "version": max(last_tombstone[doc_id]["version"], held[doc_id])},
            index_json,
        )
        for doc_id in gone
        if doc_id in held  # (one gone meanwhile needs no delete)
    ]
    if not again:
        return outcome
    resent = _send(conn, client, again, refresh, report, physical_index)
    if resent.outranked_deletes:
        # Nothing else writes this index while the sync holds its lock: fail, keep the cursor, retry.
        raise RuntimeError(
            f"deletes of conversations {resent.outranked_deletes[:5]} were refused again by version"
        )
    outcome.harmless -= len(again)
    outcome.succeeded += resent.succeeded
    outcome.harmless += resent.harmless
    return outcome


def _delete_absent(
    conn: psycopg.Connection,
    client: SearchClient,
    index: str,
    truncated_at: dt.datetime,
    refresh: bool,
    report: SyncReport,
    physical_index: str,
) -> BulkOutcome:
    """Delete every document whose conversation PostgreSQL no longer has: what a TRUNCATE removed has
    no tombstone to name it. The index's ids are read a page at a time and looked up in PostgreSQL
    (``absent``), each page's absent ones deleted before the next page is read; the deletes carry the
    truncation's time as their version, so a conversation inserted again under the same id since
    keeps its (newer) document, and ``_delete`` deals with documents that outrank it.
    The quarantined ids are looked up too (never in the index): a delete releases them from the list,
    as a tombstone's does. Running it again finds nothing left to delete."""
    client.refresh(index)  # documents indexed moments ago are read too
    version = documents.version_of(truncated_at)
    quarantined = [entry.doc_id for entry in quarantine.listed(conn, physical_index)]
    conn.commit()
    total = BulkOutcome()
    for gone in absent.gone(conn, client, index, quarantined):
        tombstones = [{"row_id": row_id, "deleted_at": truncated_at, "version": version} for row_id in gone]
        total.merge(_delete(conn, client, index, tombstones, refresh, report, physical_index))
        conn.commit()  # (the quarantine's release of these ids)
    return total


def _index_missing(
    conn: psycopg.Connection,
    client: SearchClient,
    index: str,
    marked_at: dt.datetime,
    changes: Cursor,
    batch_size: int,
    refresh: bool,
    report: SyncReport,
    physical_index: str,
) -> BulkOutcome:
    """Index every conversation PostgreSQL has and the index lacks (holds no document of under its id,
    whatever the content or version of one it holds) whose change the ``changes`` cursor has passed: a
    partition attached (migration 0026's marker) brings back rows whose updated_at is behind the cursor,
    which no window reads again (those after it the changes' window sends). Each is sent with at least
    the marker's version: a detach's deletes (``_delete_absent``, with the earlier marker's version) may
    still be remembered by the engine and would refuse the row's older version; any later change of the
    row is stamped after the marker, so it still wins. The quarantined ids are left alone: the engine
    refused them for good, and their next change sends them again. After a plain TRUNCATE nothing behind
    the cursor is missing, and nothing is sent."""
    version = documents.version_of(marked_at)
    quarantined = {int(entry.doc_id) for entry in quarantine.listed(conn, physical_index)}
    conn.commit()
    client.refresh(index)  # (``missing.lacking`` counts what a refresh made visible)
    total = BulkOutcome()
    for ids in missing.ids_behind(conn, changes, max(batch_size, missing.COUNTED_IDS)):
        conn.commit()  # as after every read here: no transaction stays open while the engine works
        wanted = [row_id for row_id in ids if row_id not in quarantined]
        for lacked in missing.lacking(client, index, wanted, batch_size):
            rows = [
                row._replace(version=max(row.version, version))
                for row in documents.documents_of(conn, lacked)
            ]
            conn.commit()
            total.merge(
                _send(conn, client, bulk_lines.index_items(rows, index), refresh, report, physical_index)
            )
            conn.commit()  # (the quarantine's records of these ids)
    conn.commit()  # (the ids' cursor closed)
    return total


def _resend_conversations_of(
    conn: psycopg.Connection,
    client: SearchClient,
    index: str,
    table: documents.Party,
    row_ids: list[int],
    batch_size: int,
    refresh: bool,
    report: SyncReport,
    physical_index: str,
) -> BulkOutcome:
    """Every conversation of these customers/employees, read now and sent in ``batch_size`` chunks."""
    total = BulkOutcome()
    for rows in documents.stream_conversations_of(conn, table.foreign_key, row_ids, batch_size):
        items = bulk_lines.index_items(rows, index)
        total.merge(_send(conn, client, items, refresh, report, physical_index))
    conn.commit()  # ends the streaming cursor's transaction
    return total


def apply_changes(
    conn: psycopg.Connection,
    client: SearchClient,
    index: str,
    cursors: Cursors,
    *,
    physical_index: str | None = None,
    lag: dt.timedelta = DEFAULT_LAG,
    batch_size: int = DEFAULT_BATCH,
    on_progress: ProgressCallback | None = None,
    refresh: bool = False,
    report: SyncReport | None = None,
) -> SyncReport:
    """Apply every change committed now (stamped before ``documents.read_bound``, taken once per
    call) to ``index`` (an alias or a physical index; ``physical_index`` names the index behind it,
    whose customer/employee attributes are tracked)."""
    report = report or SyncReport(alias=index)
    physical_index = physical_index or index
    # A partition detached, dropped or attached since the last poll leaves its TRUNCATE marker now
    # (migration 0026), committed before the bound is read: in this sync's window.
    migrate.record_partition_changes(conn)  # (its notices logged by ingestion.schema.migrate)
    exact_bound = documents.exact_read_bound(conn, lag)
    conn.commit()  # as after every read here: no transaction stays open while the engine works
    bound = exact_bound.local
    # Moved back if the stamps' clock fell back since they were read (saved with the next batch).
    cursors = cursors.rewound_for(exact_bound)

    def progress(written: int, deleted: int, *, sent: bool = True) -> None:
        report.batches += sent
        if on_progress:
            on_progress(cursors, written, deleted)

    # A TRUNCATE in the deletions' window (their cursor and bound, same clock): first, so that a crash
    # after it leaves the marker in the window of the next sync, which deletes again what is left.
    truncated = documents.last_truncation(conn, cursors.deletions.at, bound)
    conn.commit()
    if truncated:
        table, at = truncated
        log.info(
            "%s was truncated in PostgreSQL at %s: deleting from %s every document whose conversation "
            "PostgreSQL no longer has (a TRUNCATE leaves no tombstones)",
            table,
            at.isoformat(),
            index,
        )
        outcome = _delete_absent(conn, client, index, at, refresh, report, physical_index)
        report.deleted += outcome.succeeded
        report.replayed += outcome.harmless
        progress(0, outcome.succeeded, sent=bool(outcome.succeeded or outcome.harmless))
        log.info("%s: %d document(s) of conversations gone from PostgreSQL deleted", index, outcome.succeeded)
        outcome = _index_missing(
            conn, client, index, at, cursors.changes, batch_size, refresh, report, physical_index
        )
        report.indexed += outcome.succeeded
        report.replayed += outcome.harmless
        progress(outcome.succeeded, 0, sent=bool(outcome.succeeded or outcome.harmless))
        if outcome.succeeded:
            log.info("%s: %d conversation(s) PostgreSQL has again indexed", index, outcome.succeeded)

    while True:
        full_batches = 0
        rows = documents.changed_rows(conn, cursors.changes, bound, batch_size)
        conn.commit()
        if rows:
            outcome = _send(
                conn, client, bulk_lines.index_items(rows, index), refresh, report, physical_index
            )
            cursors = cursors.moved("changes", Cursor(rows[-1].cursor_at, rows[-1].id))
            report.indexed += outcome.succeeded
            report.replayed += outcome.harmless
            progress(outcome.succeeded, 0)
        full_batches += len(rows) == batch_size

        tombstones = documents.deleted_rows(conn, cursors.deletions, bound, batch_size)
        conn.commit()
        if tombstones:
            outcome = _delete(conn, client, index, tombstones, refresh, report, physical_index)
            cursors = cursors.moved("deletions", Cursor(tombstones[-1]["deleted_at"], tombstones[-1]["id"]))
            report.deleted += outcome.succeeded
            report.replayed += outcome.harmless
            progress(0, outcome.succeeded + outcome.harmless)
        full_batches += len(tombstones) == batch_size

        for table in related.RELATED_TABLES:
            changed = related.changed_rows(
                conn, table, physical_index, cursors.of(table.table), bound, batch_size
            )
            conn.commit()
            if not changed:
                continue
            stale = [row for row in changed if row["stale"]]
            outcome = BulkOutcome()
            if stale:
                outcome = _resend_conversations_of(
                    conn,
                    client,
                    index,
                    table,
                    [row["id"] for row in stale],
                    batch_size,
                    refresh,
                    report,
                    physical_index,
                )
                related.remember(conn, table, physical_index, stale)
            cursors = cursors.moved(table.table, Cursor(changed[-1]["updated_at"], changed[-1]["id"]))
            report.indexed += outcome.succeeded
            report.related_reindexed += outcome.succeeded
            report.replayed += outcome.harmless
            progress(outcome.succeeded, 0, sent=bool(stale))
            full_batches += len(changed) == batch_size
        if not full_batches:
            break
    if truncated:
        # Every tombstone stamped before the bound is applied now: the deletions cursor moves to the
        # bound, past the marker, so the next sync does not look for absent conversations again.
        cursors = cursors.moved("deletions", Cursor(bound, 0))
        progress(0, 0, sent=False)
    report.cursors = cursors
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


def _apply_saved(
    conn: psycopg.Connection,
    client: SearchClient,
    alias: str,
    lag: dt.timedelta,
    batch_size: int,
    refresh: bool,
    report: SyncReport,
) -> None:
    """Apply the changes after the alias's saved cursors, saving them after each batch."""
    saved = cursor_store.load(conn, alias)

    def save(cursors: Cursors, written: int, deleted: int) -> None:
        cursor_store.save_progress(conn, alias, cursors, written, deleted)

    apply_changes(
        conn,
        client,
        alias,
        saved.cursors,
        physical_index=quarantine.index_of(client, alias),
        lag=lag,
        batch_size=batch_size,
        on_progress=save,
        refresh=refresh,
        report=report,
    )


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
            report.needs_rebuild = rebuild_reason(client, alias)
            # A live index of an older mapping version still gets the changes until a rebuild replaces
            # it (the rebuild may fail, e.g. its verification, and leave it live for long): deletions
            # always, updates where its mapping takes them (the others are quarantined under it).
            if client.alias_targets(alias):
                _apply_saved(conn, client, alias, lag, batch_size, refresh, report)
        except BaseException:
            # A failed statement aborts the transaction: roll it back so that the lock can go, and
            # the error that propagates is the one that failed the sync, not "transaction aborted"
            # (a lost connection has lost its lock anyway).
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
                cursor_store.unlock(conn, alias)
            raise
        cursor_store.unlock(conn, alias)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def pending(dsn: str, alias: str = mapping.DEFAULT_ALIAS, lag: dt.timedelta = DEFAULT_LAG) -> bool:
    """Whether PostgreSQL holds changes the index has not seen (the sensor's cheap question)."""
    with documents.connect(dsn) as conn:
        cursor_store.ensure_table(conn)
        saved = cursor_store.load(conn, alias)
        migrate.record_partition_changes(conn)  # (as the sync would: ``apply_changes``)
        return probe.has_changes(conn, saved.cursors, lag, saved.physical_index)
