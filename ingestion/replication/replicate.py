"""Run replication: each seed table into ``raw``, incremental or snapshot, deletions as tombstones.

Idempotent by construction: a window of changes read twice inserts the same versions again, which
ReplacingMergeTree collapses. A table copied whole (a snapshot table each run; an incremental one on
``--full-refresh`` or when its columns changed) is built beside the live table and swapped in with
``EXCHANGE TABLES``, atomic on the Atomic database engine (ClickHouse's default, which ``raw`` is
created with): readers see the old complete table or the new one, never none or half of one, and a
run that fails half-way leaves every table as it was.

Each run also says which tables changed (rows inserted or updated, tombstones, a snapshot whose
content differs) and records when a table last changed (``changed_at`` in the state table): an
incremental dbt build then runs only the models downstream of those tables.

``replicated_through_ms`` in the state table is the table's committed watermark: the greatest
``_replicated_at`` (Unix milliseconds, free of time zones) of the last run that changed it, written only after that run's rows are all
visible. ClickHouse commits a large INSERT ... SELECT part by part, so ``max(_replicated_at)`` of
what a reader sees may belong to a load still in progress; every row stamped at or before
``replicated_through_ms`` is committed, which is what the incremental models bound their windows by
(dbt_project/macros/watermarks.sql). Runs of one table must not overlap (the Dagster raw assets and
dbt share the ``warehouse`` pool), or a later run's stamp could pass an earlier run's uncommitted rows.

A row holding a value ClickHouse cannot read (a timestamp 'infinity', a numeric 'NaN') is left out of
the pull and quarantined instead of failing it (``quarantine.py``), as is one that turned unreadable
between the check and the pull (checked again: ``Replicator._checked_pull``); ``TableResult.quarantined``
counts a table's rows in quarantine. A column ClickHouse has no type for (a numeric of more than 76
digits) is replicated as text, its table read through a table declared for it (``declared_source.py``).

The steps of a table's run are split by role, each a part of ``Replicator``: the pulls and the window
copy (``pulls.py``), tombstones (``tombstones.py``), whole-table reloads and snapshots
(``rebuild.py``); what a table's run did is a ``TableResult`` (``results.py``). This module keeps the
run: its bound, the state table, each table's run and the run over tables (``replicate_tables``).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import psycopg

from ingestion.replication import cursor, declared_source, quarantine, schema, tag_words
from ingestion.replication.connections import (
    as_utc,
    ensure_named_collection,
    replication_client,
    source,
)
from ingestion.replication.pulls import PullMixin
from ingestion.replication.rebuild import RebuildMixin
from ingestion.replication.results import TableResult
from ingestion.replication.tables import BY_NAME, RAW_TABLES, RawTable
from ingestion.replication.tombstones import TombstoneMixin
from ingestion.schema import migrate

# Tables replicated at once by ``replicate_tables``. Most of a table's run is waiting (HTTP round
# trips to ClickHouse, ClickHouse waiting on PostgreSQL), so even on two cores a few at a time
# shorten an hourly run whose 18 tables mostly have nothing new.
DEFAULT_WORKERS = 4

_log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    """The clock of the state table's timestamps (naive UTC), shared with the build's refresh marks."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Replicator(RebuildMixin, PullMixin, TombstoneMixin):
    """One replication run: a single visibility bound shared by every table of the run."""

    def __init__(
        self,
        pg_dsn: str,
        client=None,
        database: str | None = None,
        log=None,
        bound: cursor.Bound | dt.datetime | None = None,
    ):
        """``bound``: the run's visibility bound when the run spans several of these (``cursor.run_bound``);
        by default this one fixes its own (a bare stamp is taken with the UTC offset PostgreSQL gives it)."""
        self.pg_dsn = pg_dsn
        self.client = client or replication_client()
        self.database = database or schema.raw_database()
        self.log: Callable[[str], None] = log or (lambda _message: None)
        self.collection = ensure_named_collection(self.client, pg_dsn, self.database)
        schema.create_database(self.client, self.database)
        quarantine.create_table(self.client, self.database)
        # A partition detached, dropped or attached since the last poll leaves its TRUNCATE marker
        # now (migration 0026: no trigger sees that DDL), before the bound: in this run's window. A
        # run bound fixed earlier (a Dagster run's first step) was fixed after a poll of its own
        # (``cursor.run_bound``); what this one finds is then the next run's.
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            migrate.record_partition_changes(conn, self.log)
        self.bound = cursor.as_bound(pg_dsn, bound) if bound else cursor.exact_bound(pg_dsn)
        # Read once for the run's every table (not one query each per table): what quarantine holds,
        # and where an unreadable value may be.
        self.quarantined = quarantine.open_entries(self.client, self.database)
        self.checkable_columns = quarantine.checkable_columns(pg_dsn)
        self.without_description = declared_source.tables_without_description(pg_dsn)
        declared_source.drop_leftovers(self.client, self.database, keep=self.without_description)
        self._pg: psycopg.Connection | None = None

    def __enter__(self) -> Replicator:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        """Close this run's PostgreSQL session (the ClickHouse client is the caller's to close)."""
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    def _pg_connection(self) -> psycopg.Connection:
        """This run's (this worker's) PostgreSQL session for the checks before each pull: one per
        run, not one per table. Autocommit: each check reads what is committed when it runs."""
        if self._pg is None or self._pg.closed:
            self._pg = psycopg.connect(self.pg_dsn, autocommit=True)
        return self._pg

    def with_client(self, client) -> Replicator:
        """The same run (bound, collection, database) on another connection: a ClickHouse session
        serves one query at a time, so each concurrent worker needs its own."""
        twin = copy.copy(self)
        twin.client = client
        twin._pg = None  # a session of its own too
        return twin

    @functools.cached_property
    def known_tag_words(self) -> tuple[str, ...]:
        """The deployment's words for the tag filter (``tag_words``), read once per run."""
        return tag_words.configured(self.pg_dsn)

    def _qualified(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def _state(self, table: str) -> tuple:
        """(rows cursor, deletions cursor, last change, live rows then, committed watermark) of
        ``table``, the cursors with their UTC offset; a new table never changed, and live rows are
        unknown until a run counted them."""
        rows = self.client.query(
            f"select rows_cursor, deletions_cursor, cursor_utc_offset_seconds, changed_at, live_rows, "
            f"replicated_through_ms from {self._qualified(schema.STATE_TABLE)} final "
            f"where table_name = {{table:String}}",
            parameters={"table": table},
        ).result_rows
        if not rows:
            never = cursor.Bound(cursor.EPOCH, 0)
            return (never, never, None, None, None)
        rows_cursor, deletions_cursor, offset, *rest = rows[0]
        return (cursor.Bound(rows_cursor, offset), cursor.Bound(deletions_cursor, offset), *rest)

    def _save_state(
        self,
        table: str,
        bound: cursor.Bound,
        rows_copied: int = 0,
        tombstones: int = 0,
        changed: bool = True,
        live_rows: int | None = None,
        changed_before: dt.datetime | None = None,
        replicated_before: int | None = None,
    ) -> None:
        """Record the cursors; ``changed_at`` and ``replicated_through_ms`` move only when the run
        changed the table (and are written after the rows are visible, so a build started later,
        or bounded by them, sees every row they cover)."""
        recorded_at = utc_now()
        changed_at = recorded_at if changed else (changed_before or recorded_at)
        # (A state recorded before the watermark existed gets one now.)
        replicated_through = (
            self._max_replicated_at(table) if changed or replicated_before is None else replicated_before
        )
        self.client.insert(
            f"{self.database}.{schema.STATE_TABLE}",
            [
                [
                    table,
                    as_utc(bound.local),
                    as_utc(bound.local),
                    rows_copied,
                    tombstones,
                    as_utc(recorded_at),
                    as_utc(changed_at),
                    live_rows,
                    replicated_through,
                    bound.utc_offset_seconds,
                ]
            ],
            column_names=[
                "table_name",
                "rows_cursor",
                "deletions_cursor",
                "rows_copied",
                "tombstones",
                "recorded_at",
                "changed_at",
                "live_rows",
                "replicated_through_ms",
                "cursor_utc_offset_seconds",
            ],
        )

    def _max_replicated_at(self, table: str) -> int | None:
        """The newest load stamp in ``table`` in Unix ms (a column scan: tens of ms on millions of rows)."""
        return self.client.query(
            f"select if(count() = 0, null, toUnixTimestamp64Milli(max(_replicated_at))) from {self._qualified(table)}"
        ).result_rows[0][0]

    def _live_rows(self, table: str) -> int:
        return self.client.query(f"select count() from {self._qualified(table)} final").result_rows[0][0]

    def _source(self, table: RawTable) -> str:
        """What the pulls of ``table`` read: the PostgreSQL table through the table function, or
        through the table declared for it if ClickHouse cannot describe it (``_declared_source``)."""
        if table.name in self.without_description:
            return self._qualified(declared_source.name(table.name))
        return source(table.name, self.collection)

    @contextlib.contextmanager
    def _declared_source(self, table: RawTable):
        """The table that reads ``table`` if ClickHouse cannot describe it (``declared_source``),
        while ``table`` is replicated; the columns it reads as text are named in a warning."""
        declared = self.without_description.get(table.name)
        if declared is None:
            yield
            return
        for column, pg_type in declared.as_text.items():
            if column not in table.replicated:  # not copied: nothing to say of its type
                continue
            self._warn(
                f"{table.name}: column {column} is {pg_type}, more digits than ClickHouse's widest Decimal"
                f" ({declared_source.MAX_DECIMAL_DIGITS}); replicated as text (String), as PostgreSQL prints it"
            )
        declared_source.create(self.client, self.database, table, declared, self.collection)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a run that stopped leaves it, replaced by the next
                self.client.command(f"drop table if exists {self._source(table)}")

    def _source_columns(self, table: RawTable) -> list[str]:
        """Every column of the PostgreSQL table ``table``: of a table read through a declared table,
        as PostgreSQL lists them (the declared table has only those the pull reads)."""
        if (declared := self.without_description.get(table.name)) is not None:
            return [name for name, _ in declared.columns]
        return [name for name, _ in schema.source_types(self.client, self._source(table))]

    def _warn(self, message: str) -> None:
        """A warning in the log and the run's progress (the CLI's output, Dagster's run log)."""
        _log.warning(message)
        self.log(message)

    def _warn_unclassified(self, table: RawTable, source_columns: list[str]) -> None:
        """Name each source column ``table`` neither replicates nor drops: it is left out of raw (the
        replication is an allowlist), each run, until someone decides what it is."""
        for column in schema.unclassified(table, source_columns):
            self._warn(
                f"{table.name}.{column}: a PostgreSQL column not classified, so not replicated; list it in"
                " ingestion/replication/tables.py as replicated, or as dropped if it may hold personal data"
            )

    def replicate(self, table: RawTable, full_refresh: bool = False) -> TableResult:
        """Bring ``table`` up to the run's bound; ``full_refresh`` copies it whole even if a window
        of changes would do."""
        with self._declared_source(table):
            return self._replicate(table, full_refresh)

    def _replicate(self, table: RawTable, full_refresh: bool) -> TableResult:
        started = time.perf_counter()
        if table.tag_columns:
            table = table.with_known_tag_words(self.known_tag_words)
        source_columns = self._source_columns(table)
        self._warn_unclassified(table, source_columns)
        columns = schema.select_list(table, source_columns)
        pulled = schema.pulled_columns(self.client, columns, self._source(table))
        rows_saved, deletions_saved, changed_before, live_before, replicated_before = self._state(table.name)
        if table.incremental and rows_saved > self.bound:
            # Another run read this table further (a shared run bound fixed before it ran): nothing
            # older is left to read, and the cursors must not move back. (Compared as instants: after
            # the stamps' clock fell back, a later bound has an earlier stamp.)
            twin = copy.copy(self)
            twin.bound = rows_saved
            return twin._replicate(table, full_refresh)
        # At the cursors, or earlier if the stamps' clock fell back since (``cursor.window_start``).
        rows_start = cursor.window_start(rows_saved, self.bound)
        deletions_start = cursor.window_start(deletions_saved, self.bound)
        if table.incremental and (
            full_refresh
            or self._truncated(table, deletions_start)
            or self._needs_reload(table, columns, pulled)
        ):
            rows_start = cursor.EPOCH
            unreadable, (copied, tombstones) = self._checked_pull(
                table,
                columns,
                (rows_start, self.bound.local),
                lambda found: self._reload(table, columns, pulled, found),
            )
            changed, live_rows = True, self._live_rows(table.name)
        elif table.incremental:
            unreadable, copied = self._checked_pull(
                table,
                columns,
                (rows_start, self.bound.local),
                lambda found: self._copy_window(table, columns, rows_start, found),
            )
            tombstones = self._tombstone(table, columns, deletions_start)
            changed = bool(copied or tombstones)
            # Counting live rows needs a FINAL scan (seconds on millions of conversations): an
            # unchanged table keeps the count of the run that last changed it.
            live_rows = (
                live_before if not changed and live_before is not None else self._live_rows(table.name)
            )
        else:
            schema.create_table(self.client, self.database, table, pulled, schema.definitions(columns))
            rows_start = cursor.EPOCH
            unreadable, (copied, changed) = self._checked_pull(
                table, columns, None, lambda found: self._snapshot(table, columns, pulled, found)
            )
            tombstones = 0
            # A fresh copy of a table keyed by id: one row per id (and those held back in quarantine).
            live_rows = self._live_rows(table.name) if unreadable.held_back else copied
        quarantine.settle(self.client, self.database, table.name, unreadable, utc_now())
        self._save_state(
            table.name, self.bound, copied, tombstones, changed, live_rows, changed_before, replicated_before
        )
        result = TableResult(
            table=table.name,
            mode=table.mode,
            rows_copied=copied,
            tombstones=tombstones,
            live_rows=live_rows,
            seconds=round(time.perf_counter() - started, 3),
            window_start=rows_start.isoformat(),
            window_end=self.bound.isoformat(),
            changed=changed,
            quarantined=unreadable.in_quarantine,
        )
        self.log(
            f"{table.name}: {result.mode}{'' if changed else ' (unchanged)'}, {copied} row(s) copied, "
            f"{tombstones} deletion(s), "
            f"{result.live_rows} live, "
            + (f"{result.quarantined} in quarantine (unreadable), " if result.quarantined else "")
            + f"{result.seconds:.2f}s"
        )
        return result


def replicate_tables(
    pg_dsn: str,
    tables: Iterable[str] | None = None,
    *,
    full_refresh: bool = False,
    database: str | None = None,
    client=None,
    log=None,
    workers: int = DEFAULT_WORKERS,
) -> list[TableResult]:
    """Replicate ``tables`` (default: all 18 seed tables) and return what each run did, in order.

    Tables run ``workers`` at a time, each worker on its own ClickHouse connection, all sharing the
    run's one visibility bound. A caller's own ``client`` is one session, so with it they run one
    after the other."""
    selected = [BY_NAME[name] for name in tables] if tables is not None else list(RAW_TABLES)
    replicator = Replicator(pg_dsn, client=client, database=database, log=log)

    if client is not None or workers <= 1 or len(selected) <= 1:
        with replicator:
            return [replicator.replicate(table, full_refresh) for table in selected]
    own = threading.local()
    twins: list[Replicator] = []
    twins_lock = threading.Lock()

    def replicate(table: RawTable) -> TableResult:
        if not hasattr(own, "replicator"):
            own.replicator = replicator.with_client(replication_client())
            with twins_lock:
                twins.append(own.replicator)
        return own.replicator.replicate(table, full_refresh)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replicate") as pool:
            return list(pool.map(replicate, selected))
    finally:
        for worker in [*twins, replicator]:
            worker.close()
            worker.client.close()
