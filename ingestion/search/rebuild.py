"""Full rebuild: a new versioned index loaded from one PostgreSQL snapshot, then an atomic alias swap.

Searches keep hitting the alias, i.e. the previous index, until the very end. The steps, each there
for a reason:

1. create ``<alias>_v<N>_<stamp>`` with indexing-speed settings (no refresh, no replicas);
2. read every conversation in one REPEATABLE READ snapshot and bulk load it from a few sender
   threads: a reader thread fetches the next rows and writes their redacted documents
   (``documents``) while this thread builds the next request body (PostgreSQL, Python and the
   engine all busy at once: the engine, not Python, should be the bottleneck); the same snapshot
   transaction records the customer/employee attributes the documents hold (``related``);
   requests are cut by count and by bytes (``bulk_lines``), and a document too large to send is
   quarantined (it counts against the share a rebuild may leave out);
3. restore serving settings, refresh, and verify the index count equals the snapshot's count;
4. replay changes the snapshot may lack (from the bound read just before it, ``documents.read_bound``:
   a row stamped earlier belongs to a transaction committed before the snapshot), once freely and
   once more under the alias lock so the sensor's sync cannot slip in between;
5. swap the alias in one ``_aliases`` call, save the new cursor (and the replaced index's state),
   keep the previous index for rollback (``roll_back``) and delete older ones by exact name.

A failure deletes the new index, unless the alias already points to it (the swap went through, and
what failed came after it): searches then keep answering from the new index, and the error still
propagates. The saved state may then lag the alias (the next sync replays from its cursors, which
is harmless); an index that may be live is never deleted (a later rebuild drops it if it is not).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg

from ingestion.search import bulk_lines, cursor_store, documents, mapping, quarantine, related
from ingestion.search.client import BulkOutcome, SearchClient
from ingestion.search.documents import Cursor, Cursors
from ingestion.search.sync import DEFAULT_LAG, SyncReport, apply_changes, run_incremental

DEFAULT_CHUNK_DOCS = 2000
DEFAULT_SENDERS = 2
# A rebuild may leave out documents the engine refuses for good (quarantined), but only a few: a
# mapping that refuses many is a bug, and swapping in an index without them would hide the data.
DEFAULT_MAX_REFUSED_SHARE = 0.01


class RebuildInProgress(RuntimeError):
    pass


class RebuildVerificationFailed(RuntimeError):
    pass


@dataclass
class RebuildReport:
    alias: str
    index: str
    cjk: bool
    expected: int = 0
    loaded: int = 0
    quarantined: int = 0  # refused by the engine for good: listed in ``quarantine``, not in the index
    replayed_indexed: int = 0
    replayed_deleted: int = 0
    previous: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    total_seconds: float = 0.0
    swap_sent: bool = False  # the alias swap was requested: the alias may point to ``index`` from then on

    @property
    def docs_per_second(self) -> float:
        return round(self.loaded / self.load_seconds, 1) if self.load_seconds else 0.0


# While this thread builds request bodies (CPU-bound), a sender thread that got the engine's answer
# needs the GIL to send the next request; with Python's default 5 ms switch interval it can wait
# that long per hand-over while the engine idles. 0.5 ms measured ~9% more documents/s.
_SWITCH_INTERVAL_S = 0.0005
_switch_lock = threading.Lock()
_switch_users = 0
_switch_default = sys.getswitchinterval()


@contextlib.contextmanager
def _responsive_threads() -> Iterator[None]:
    """A short GIL switch interval while any load runs in this process, the default again after."""
    global _switch_users, _switch_default
    with _switch_lock:
        if _switch_users == 0:
            _switch_default = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_default, _SWITCH_INTERVAL_S))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_default)


def send_concurrently(
    send: Callable[[list], BulkOutcome], chunks: Iterable[list], senders: int
) -> BulkOutcome:
    """Send chunks from ``senders`` threads while this thread builds the next ones (iterating
    ``chunks``); at most two chunks in flight per sender, so memory stays bounded."""
    with _responsive_threads():
        return _send_concurrently(send, chunks, senders)


def _send_concurrently(
    send: Callable[[list], BulkOutcome], chunks: Iterable[list], senders: int
) -> BulkOutcome:
    total = BulkOutcome()
    in_flight = threading.BoundedSemaphore(senders * 2)
    futures: list[Future] = []
    with ThreadPoolExecutor(max_workers=senders, thread_name_prefix="bulk") as pool:
        for chunk in chunks:
            in_flight.acquire()
            future = pool.submit(send, chunk)
            future.add_done_callback(lambda _: in_flight.release())
            futures.append(future)
            # Collect finished ones as we go so a failure surfaces early and memory stays flat.
            while futures and futures[0].done():
                total.merge(futures.pop(0).result())
        for future in futures:
            total.merge(future.result())
    return total


def read_ahead(batches: Iterable[list]) -> Iterator[list]:
    """The same batches, the next one fetched by a helper thread while the caller works on this one:
    PostgreSQL reads the next rows while Python works on these, instead of each waiting for the
    other (psycopg releases the GIL while it waits). One batch ahead, so memory stays bounded; an
    error while fetching is raised here, at the batch it would have been."""
    iterator = iter(batches)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
        pending = reader.submit(next, iterator, None)
        while (batch := pending.result()) is not None:
            pending = reader.submit(next, iterator, None)
            yield batch


def _previous_versions_to_drop(
    client: SearchClient, alias: str, live: str, left: list[str], keep_previous: int
) -> list[str]:
    """All older versions but ``keep_previous`` of them: first the ones the alias just left (what a
    rollback returns to), then the newest."""
    # Only this alias's versions (the wildcard also matches another alias's: "conversations_vn"),
    # oldest first.
    stamps = {
        name: mapping.stamp_of(alias, name) for name in client.indices_matching(mapping.index_pattern(alias))
    }
    older = sorted((name for name, stamp in stamps.items() if stamp and name != live), key=stamps.__getitem__)
    preferred = [name for name in left if name in older] + [
        name for name in reversed(older) if name not in left
    ]
    kept = set(preferred[:keep_previous])
    return [name for name in older if name not in kept]


class NothingToRollBackTo(RuntimeError):
    pass


@dataclass
class RollbackReport:
    alias: str
    index: str
    left: list[str]
    caught_up: SyncReport


def roll_back(
    dsn: str, client: SearchClient, alias: str = mapping.DEFAULT_ALIAS, *, lag: dt.timedelta = DEFAULT_LAG
) -> RollbackReport:
    """Point the alias back at the index the last rebuild replaced (a bad rebuild's way out).

    The state that index had when it was replaced (its cursors) comes back with it, so the
    incremental sync then brings it up to date from exactly where it stood; the index left
    becomes the one to roll back to, so rolling back twice returns to it. An index of another
    mapping version is refused: the next sync would rebuild it straight away."""
    with documents.connect(dsn) as control:
        cursor_store.ensure_table(control)
        if not cursor_store.try_lock(control, f"{alias}:rebuild"):
            raise RebuildInProgress(f"a full rebuild of {alias!r} is running; roll back after it")
        try:
            cursor_store.lock(control, alias)
            try:
                previous = cursor_store.previous(control, alias)
                if previous is None or not client.index_exists(previous.physical_index):
                    raise NothingToRollBackTo(f"{alias!r} has no previous index to roll back to")
                if previous.mapping_version != mapping.MAPPING_VERSION:
                    raise NothingToRollBackTo(
                        f"{previous.physical_index} has mapping version {previous.mapping_version}, the code "
                        f"{mapping.MAPPING_VERSION}: the next sync would rebuild it; deploy the older code instead"
                    )
                left = client.alias_targets(alias)
                cursor_store.swap_with_previous(control, alias)
                client.update_aliases(
                    [{"remove": {"index": name, "alias": alias}} for name in left]
                    + [{"add": {"index": previous.physical_index, "alias": alias}}]
                )
                control.commit()  # the state follows the alias only once the alias has moved
            finally:
                control.rollback()
                cursor_store.unlock(control, alias)
        finally:
            cursor_store.unlock(control, f"{alias}:rebuild")
    caught_up = run_incremental(dsn, client, alias, lag=lag)
    return RollbackReport(alias, previous.physical_index, left, caught_up)


def full_rebuild(
    dsn: str,
    client: SearchClient,
    alias: str = mapping.DEFAULT_ALIAS,
    *,
    lag: dt.timedelta = DEFAULT_LAG,
    replicas: int = 0,
    chunk_docs: int = DEFAULT_CHUNK_DOCS,
    senders: int = DEFAULT_SENDERS,
    keep_previous: int = 1,
    after_load: Callable[[str], None] | None = None,
    max_refused_share: float = DEFAULT_MAX_REFUSED_SHARE,
) -> RebuildReport:
    started = time.monotonic()
    with documents.connect(dsn) as control:
        cursor_store.ensure_table(control)
        rebuild_lock = f"{alias}:rebuild"
        if not cursor_store.try_lock(control, rebuild_lock):
            raise RebuildInProgress(f"a full rebuild of {alias!r} is already running")
        try:
            cjk = client.analyzer_available("cjk")
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dt%H%M%S%f")
            report = RebuildReport(alias=alias, index=mapping.index_name(alias, stamp), cjk=cjk)
            client.create_index(report.index, mapping.index_body(cjk))
            try:
                _load_verify_and_swap(
                    dsn,
                    control,
                    client,
                    report,
                    lag,
                    replicas,
                    chunk_docs,
                    senders,
                    after_load,
                    max_refused_share=max_refused_share,
                )
            except BaseException:
                _discard_unless_live(control, client, report)
                raise
            report.dropped = _previous_versions_to_drop(
                client, alias, report.index, report.previous, keep_previous
            )
            for name in report.dropped:
                client.delete_index(name)
                related.forget(control, name)
                quarantine.forget(control, name)
        finally:
            cursor_store.unlock(control, rebuild_lock)
    report.total_seconds = round(time.monotonic() - started, 3)
    return report


def _discard_unless_live(control: psycopg.Connection, client: SearchClient, report: RebuildReport) -> None:
    """After a failed rebuild, delete the new index and its attribute snapshot, unless the alias points
    to it: once the swap is sent, searches may answer from the new index, so it stays (and so do the
    attributes the sync compares its customers/employees against)."""
    if report.swap_sent:
        try:
            live = report.index in client.alias_targets(report.alias)
        except Exception:
            live = True  # the engine cannot say: an index that may be live is never deleted
        if live:
            control.rollback()
            return
    client.delete_index(report.index)
    control.rollback()  # whatever statement failed, the session can clean up after it
    related.forget(control, report.index)
    quarantine.forget(control, report.index)


def _load_verify_and_swap(
    dsn: str,
    control: psycopg.Connection,
    client: SearchClient,
    report: RebuildReport,
    lag: dt.timedelta,
    replicas: int,
    chunk_docs: int,
    senders: int,
    after_load: Callable[[str], None] | None,
    *,
    max_refused_share: float,
) -> None:
    load_started = time.monotonic()
    with documents.connect(dsn) as snapshot:
        # Read before the snapshot, in a transaction of its own: a transaction that wrote a row
        # stamped before this bound had committed when it was read, so the snapshot holds the row;
        # anything stamped later is replayed. (A bound read inside the snapshot could pass a
        # transaction that committed between the snapshot and the read.)
        replay_from = documents.exact_read_bound(snapshot)  # (with its UTC offset: Cursors.rewound_for)
        snapshot.commit()
        snapshot.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        report.expected = documents.count_all(snapshot)  # the first statement fixes the snapshot
        related.remember_snapshot(snapshot, report.index)  # committed with the snapshot, if it loads
        # Requests of ``chunk_docs`` documents or ``max_bytes``, whichever comes first: a document
        # larger than that is refused unsent and quarantined like any refused document.
        max_bytes = bulk_lines.max_request_bytes()
        chunks = bulk_lines.chunks(
            read_ahead(documents.stream_all(snapshot)), report.index, chunk_docs, max_bytes
        )
        outcome = send_concurrently(functools.partial(client.bulk, max_bytes=max_bytes), chunks, senders)
        snapshot.commit()
    refused = quarantine.refusals(outcome)  # transient failures raise: the rebuild fails, nothing swapped
    if len(refused) > max_refused_share * report.expected:
        raise RebuildVerificationFailed(
            f"the engine refused {len(refused)} of {report.expected} documents, more than the "
            f"{max_refused_share:.0%} a rebuild may leave out; e.g. #{refused[0]['id']}: {quarantine.reason(refused[0])}"
        )
    if refused:
        quarantine.settle(control, report.index, (), refused)
        control.commit()
        report.quarantined = len(refused)
    report.loaded = outcome.succeeded + outcome.harmless
    client.put_settings(report.index, mapping.serving_settings(replicas))
    client.refresh(report.index)
    report.load_seconds = round(time.monotonic() - load_started, 3)
    indexed = client.count(report.index)
    if indexed != report.expected - report.quarantined:
        raise RebuildVerificationFailed(
            f"{report.index} holds {indexed} documents, PostgreSQL's snapshot {report.expected}"
            + (f" of which {report.quarantined} were refused (quarantined)" if report.quarantined else "")
        )
    if after_load:
        after_load(report.index)

    start = Cursors.all_at(Cursor(replay_from.local, 0), replay_from.utc_offset_seconds)
    replay = apply_changes(control, client, report.index, start, lag=lag)
    cursor_store.lock(control, report.alias)
    try:
        replay = apply_changes(control, client, report.index, replay.cursors, lag=lag, report=replay)
        client.refresh(report.index)
        report.previous = client.alias_targets(report.alias)
        report.swap_sent = True  # from here on a failure may leave the alias on the new index
        client.update_aliases(
            [{"remove": {"index": name, "alias": report.alias}} for name in report.previous]
            + [{"add": {"index": report.index, "alias": report.alias}}]
        )
        cursor_store.save_rebuild(
            control, report.alias, report.index, mapping.MAPPING_VERSION, replay.cursors
        )
    except BaseException:
        # A failed statement aborts the transaction, yet the lock must go and the error that propagates
        # must be the one that failed the rebuild (a lost connection has lost its lock anyway).
        with contextlib.suppress(psycopg.Error):
            control.rollback()
            cursor_store.unlock(control, report.alias)
        raise
    cursor_store.unlock(control, report.alias)
    report.replayed_indexed, report.replayed_deleted = replay.indexed, replay.deleted
