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
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TypeVar

import psycopg
from clickhouse_connect.driver.exceptions import DatabaseError

from ingestion.replication import cursor, declared_source, quarantine, schema, tag_words
from ingestion.replication.connections import (
    as_utc,
    ensure_named_collection,
    replication_client,
    source,
    string_literal,
)
from ingestion.replication.tables import BY_NAME, RAW_TABLES, RawTable
from ingestion.schema import migrate

_TOMBSTONE_BATCH = 10_000
# Tables replicated at once by ``replicate_tables``. Most of a table's run is waiting (HTTP round
# trips to ClickHouse, ClickHouse waiting on PostgreSQL), so even on two cores a few at a time
# shorten an hourly run whose 18 tables mostly have nothing new.
DEFAULT_WORKERS = 4
# What ClickHouse says when a pull meets a value it cannot read ("Cannot parse PostgreSQL value
# 'infinity' as DateTime64(6)"): one the check before the pull did not see (``_checked_pull``).
_UNREADABLE_VALUE_MET = "Cannot parse PostgreSQL value"
_Pulled = TypeVar("_Pulled")

_log = logging.getLogger(__name__)

# What a tombstone (a deleted row's last version in raw) keeps besides the key (``id``), the columns of
# the partition key (``_tombstone_columns``) and the bookkeeping (``_version``, ``_is_deleted``,
# ``_replicated_at``): the columns that readers of raw without FINAL take from a deleted row, every
# version of a changed id, tombstones included. Nothing else: a ReplacingMergeTree without CLEANUP
# keeps a tombstone for good, so whatever it copied of the row (a customer's masked free text, city,
# occupation) would stay in ClickHouse after the row's erasure from PostgreSQL.
# - orchestration/defs/warehouse/reconciliation.py (``VIEW_SOURCES``, ``_ChangeReader.owners``): whom
#   a deleted customer or funnel row counted for;
# - dbt_project/models/marts/reporting/mart_kpi_employee_daily.sql (``changed_months``, and the account
#   openings of the customers of a changed funnel_mofu row): the months a deleted row leaves.
_READ_FROM_TOMBSTONES: dict[str, tuple[str, ...]] = {
    "customers": ("assigned_employee_id",),  # reconciliation
    "funnel_tofu": ("customer_id", "contact_date"),  # reconciliation; KPI mart
    "funnel_mofu": ("customer_id", "account_opened", "opened_at"),  # reconciliation; KPI mart
    "funnel_bofu": ("customer_id",),  # reconciliation
    "conversations": ("sent_at",),  # KPI mart (and the partition key)
    "deposits": ("deposited_at",),  # KPI mart
    "withdrawals": ("requested_at",),  # KPI mart
    "employee_kpis": ("date",),  # KPI mart
}


@dataclass(frozen=True)
class TableResult:
    table: str
    mode: str
    rows_copied: int
    tombstones: int
    live_rows: int
    seconds: float
    window_start: str
    window_end: str
    # Rows inserted, updated or deleted; for a snapshot, content different from the previous one.
    changed: bool
    # Rows left in quarantine after the run: values ClickHouse cannot read (``quarantine.py``).
    quarantined: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def utc_now() -> dt.datetime:
    """The clock of the state table's timestamps (naive UTC), shared with the build's refresh marks."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _beside(table: RawTable) -> str:
    """The name a complete new copy of a raw table is built under, before it is swapped in."""
    return f"{table.name}__snapshot"


def _set_aside_by_older_versions(table: RawTable) -> str:
    """Where replication before the swapped reloads kept a table while reloading it in place: left
    behind by a reload that did not finish, it is the last complete table (its deletions are owed)."""
    return f"{table.name}__before_reload"


def _tombstone_columns(table: RawTable, columns: Iterable[str]) -> list[str]:
    """Of ``columns`` (of a raw copy of ``table``), those its tombstones copy from the deleted row, in
    their order: ``id`` (the sort key, which the tombstone replaces the row by), the columns of the
    partition key (a ReplacingMergeTree replaces a row only within its partition: a tombstone elsewhere
    would leave the row's last version for good) and those read from tombstones
    (``_READ_FROM_TOMBSTONES``). Every other column of a tombstone takes its type's default."""
    kept = {"id", *_READ_FROM_TOMBSTONES.get(table.name, ())}
    partition_key = table.partition_by or ""
    return [
        column
        for column in columns
        if column in kept or re.search(rf"\b{re.escape(column)}\b", partition_key)
    ]


def _timestamp_literal(value: dt.datetime) -> str:
    return f"toDateTime64('{value.isoformat(sep=' ', timespec='microseconds')}', 6)"


class Replicator:
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

    def _truncated(self, table: RawTable, deletions_start: dt.datetime) -> bool:
        """Whether ``table`` was truncated in PostgreSQL in this run's window of deletions. TRUNCATE
        leaves no tombstone for the rows it removes, only a marker (``cursor.last_truncation``), so
        the table is reloaded whole as on ``--full-refresh``: ``_reload`` tombstones every row raw
        holds that PostgreSQL no longer has, stamped now, so the incremental models drop them too."""
        at = cursor.last_truncation(self._pg_connection(), table.name, deletions_start, self.bound.local)
        if at is not None:
            self.log(f"{table.name}: truncated in PostgreSQL at {at.isoformat()}; reloading it whole")
        return at is not None

    def _needs_reload(self, table: RawTable, columns, pulled: list[tuple[str, str]]) -> bool:
        """INSERT ... SELECT fills columns by position: a raw table created for another column list (a
        column classified as replicated, dropped or derived here since) would take later values into the
        wrong columns without an error, and keep what it held in a column no longer replicated (a
        column found to hold contact details). A column now filled by another expression (a derived
        column's rule changed: a stricter tag filter) keeps what the old one let through, and one whose
        PostgreSQL type changed (a numeric given more decimals, a NOT NULL dropped) would truncate or
        default the new values into the old type, nothing changing the rows' updated_at. Such a table
        is reloaded from scratch, as is one an older reload in place left unfinished, and one not there
        (a first run, or a table dropped by hand whose cursors would otherwise fill it from the middle)."""
        existing = schema.existing_definitions(self.client, self.database, table.name)
        if existing is None:
            return True
        names, existing_names = [name for name, _ in pulled], [name for name, _ in existing]
        definitions = schema.definitions(columns)
        if existing_names != names:
            self.log(
                f"{table.name}: columns changed (now {', '.join(sorted(set(names) - set(existing_names))) or '-'}, "
                f"gone {', '.join(sorted(set(existing_names) - set(names))) or '-'}); reloading it from scratch"
            )
            return True
        if redefined := [name for name, definition in existing if definitions[name] != definition]:
            self.log(
                f"{table.name}: {', '.join(redefined)} filled differently now (or recorded by an older"
                " replication without their definitions); reloading it from scratch"
            )
            return True
        existing_types = dict(schema.column_types(self.client, self.database, table.name))
        if retyped := [
            f"{name} {existing_types[name]} -> {type_}"
            for name, type_ in pulled
            if existing_types[name] != type_
        ]:
            self.log(
                f"{table.name}: {', '.join(retyped)} (the PostgreSQL column's type changed; the rows in raw"
                " were read in the old one); reloading it from scratch"
            )
            return True
        return schema.table_exists(self.client, self.database, _set_aside_by_older_versions(table))

    @contextlib.contextmanager
    def _built_beside(self, table: RawTable, columns, pulled: list[tuple[str, str]]):
        """An empty table beside ``table`` for a complete new copy of it. Gone afterwards: swapped in,
        it holds the old table then; and a run that failed leaves no half-built copy behind (if the
        failure also prevents dropping it, the next run does)."""
        name = _beside(table)
        drop = f"drop table if exists {self._qualified(name)}"
        self.client.command(drop)
        schema.create_table(self.client, self.database, table, pulled, schema.definitions(columns), name=name)
        try:
            yield name
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.command(drop)
            raise
        self.client.command(drop)

    def _swap_in(self, table: RawTable, new: str) -> None:
        """Put the complete copy ``new`` in the place of the live table in one step."""
        if schema.table_exists(self.client, self.database, table.name):
            self.client.command(f"exchange tables {self._qualified(new)} and {self._qualified(table.name)}")
        else:
            self.client.command(f"rename table {self._qualified(new)} to {self._qualified(table.name)}")

    def _reload(
        self, table: RawTable, columns, pulled: list[tuple[str, str]], unreadable: quarantine.Check
    ) -> tuple[int, int]:
        """(rows copied, tombstones) of a reload from scratch: every readable row up to the bound, built
        beside the live table, plus the old version of each of its rows written after the bound
        (``_keep_updated_after_bound``) and a tombstone for each deleted since (``_tombstone_vanished``),
        then swapped in."""
        older_aside = _set_aside_by_older_versions(table)
        with self._built_beside(table, columns, pulled) as new:
            copied = self._copy_window(table, columns, cursor.EPOCH, unreadable, into=new)
            for old in (table.name, older_aside):
                self._keep_held_back(old, new, columns, unreadable.held_back)
            for old in (table.name, older_aside):
                self._keep_updated_after_bound(table, old, new, columns)
            tombstones = sum(
                self._tombstone_vanished(table, old, new, columns) for old in (table.name, older_aside)
            )
            self._swap_in(table, new)
        self.client.command(f"drop table if exists {self._qualified(older_aside)}")
        return copied, tombstones

    def _columns_alike(self, old: str, new: str, columns) -> list[str]:
        """The columns of ``new`` (a complete new copy) that the table ``old`` means alike, but the
        deletion flag and load time: source columns copied as they are, and derived ones still defined
        the same way. Empty if there is no table ``old``."""
        old_definitions = dict(schema.existing_definitions(self.client, self.database, old) or [])
        if not old_definitions:
            return []
        definitions, plain = schema.definitions(columns), schema.plain_copies(columns)
        return [
            column
            for column, _ in schema.existing_definitions(self.client, self.database, new) or []
            if column in old_definitions
            and column not in ("_is_deleted", "_replicated_at")
            and (column in plain or column == "_version" or old_definitions[column] == definitions[column])
        ]

    def _keep_held_back(self, old: str, new: str, columns, held_back: list[int]) -> None:
        """The version ``old`` had of each row ``held_back`` in quarantine, copied into ``new`` (a
        reload or a snapshot): such a row is no deletion, and keeps its last readable version as an
        incremental run would leave it, load time included (nothing new of it reached raw). Columns
        ``old`` does not mean alike take their defaults (``_columns_alike``)."""
        if not held_back or not (alike := self._columns_alike(old, new, columns)):
            return
        self._copy_old_versions(
            new, alike, f"{self._vanished(old, new)} and {quarantine.inclusion(held_back)}"
        )

    def _copy_old_versions(self, new: str, alike: list[str], rows: str) -> None:
        """Copy into ``new`` the old versions ``rows`` (FROM and WHERE over the old table), load time
        included: rows the reload must keep as they were."""
        listed = ", ".join(f"`{column}`" for column in alike)
        self.client.command(
            f"insert into {self._qualified(new)} ({listed}, `_is_deleted`, `_replicated_at`) "
            f"select {listed}, _is_deleted, _replicated_at {rows}"
        )

    def _vanished(self, old: str, new: str) -> str:
        """FROM and WHERE of the live rows of ``old`` that the reload ``new`` (so far) lacks."""
        return (
            f"from {self._qualified(old)} final "
            f"where not _is_deleted and id not in (select id from {self._qualified(new)})"
        )

    def _keep_updated_after_bound(self, table: RawTable, old: str, new: str, columns) -> None:
        """The version ``old`` had of each row the reload ``new`` lacks but PostgreSQL still has,
        copied into ``new``, load time included. Such a row was written at or after the bound (an open
        writing transaction holds the bound back), so the reload's window left it out: it is no
        deletion, and the next window brings its new version, as an incremental run would.

        Asked of PostgreSQL itself, in ClickHouse's own pull (the ids of the source table), not of
        ``sync_deletions``: a reload is also what repairs a raw table that went wrong, and only the
        table says which rows exist whatever the tombstones recorded. Only the ids are read, and only
        when some row is missing (after a quiet reload none is, and PostgreSQL is not asked)."""
        if not (alike := self._columns_alike(old, new, columns)):
            return
        if not self.client.query(
            f"select count() from (select id {self._vanished(old, new)} limit 1)"
        ).result_rows[0][0]:
            return
        self._copy_old_versions(
            new, alike, f"{self._vanished(old, new)} and id in (select id from {self._source(table)})"
        )

    def _tombstone_vanished(self, table: RawTable, old: str, new: str, columns) -> int:
        """A tombstone in ``new`` (a reload) for each live row of ``old`` that PostgreSQL no longer has
        (those it still has are in ``new`` by now: ``_keep_updated_after_bound``).

        The reload copies live rows only, so a row deleted since the last run would leave no trace,
        and the incremental facts, which remove the ids that have a new raw version, would keep it.
        The tombstone keeps the old version and is stamped now, as every row of the reload is. Of the
        columns a tombstone keeps (``_tombstone_columns``) it copies those the two tables mean alike
        (``_columns_alike``); the rest take their defaults, as a value the old definition let through
        (a tag now filtered out) must not come back with the tombstone. (Rows held back in quarantine
        are in ``new`` already: ``_keep_held_back``. Tombstones of ``old`` are not carried over: their
        rows are deleted, and a reload leaves nothing of them.)"""
        if not (alike := self._columns_alike(old, new, columns)):
            return 0
        return self._insert_tombstones(
            new, _tombstone_columns(table, alike), "_version", self._vanished(old, new)
        )

    def _insert_tombstones(self, into: str, kept: list[str], version: str, rows: str, parameters=None) -> int:
        """Tombstones inserted into ``into``, one for each of ``rows`` (FROM and WHERE over a raw table):
        its columns ``kept`` (``_tombstone_columns``), ``version`` (an expression over ``rows``) as its
        version, flagged deleted and stamped now. Every other column takes its type's default."""
        listed = "".join(f"`{column}`, " for column in kept)
        summary = self.client.command(
            f"insert into {self._qualified(into)} ({listed}`_version`, `_is_deleted`, `_replicated_at`) "
            f"select {listed}{version}, toUInt8(1), now64(3) {rows}",
            parameters=parameters,
        )
        return int(summary.written_rows)

    def _check_readable(
        self, table: RawTable, columns, window: tuple[dt.datetime, dt.datetime] | None
    ) -> quarantine.Check:
        """What the pull of ``window`` (None: a snapshot) must leave out, and the rows in quarantine
        it can take again."""
        as_text = self.without_description.get(table.name, declared_source.Declared()).as_text
        read = [
            (column, data_type)
            for column, data_type in quarantine.read_by_pull(
                self.checkable_columns.get(table.name, []), [expression for _, expression in columns]
            )
            if column not in as_text  # text holds any value
        ]
        entries = self.quarantined.get(table.name, {})
        # The Decimal ClickHouse reads a number without declared precision as: asked only of a table
        # with such a column (none of the seed's has one), and of ClickHouse itself, never assumed.
        read_as = (
            quarantine.decimals(dict(schema.source_types(self.client, self._source(table))))
            if any(quarantine.unconstrained(data_type) for _, data_type in read)
            else {}
        )
        return quarantine.check(self._pg_connection(), table.name, read, window, entries, read_as)

    def _checked_pull(
        self,
        table: RawTable,
        columns,
        window: tuple[dt.datetime, dt.datetime] | None,
        pull: Callable[[quarantine.Check], _Pulled],
    ) -> tuple[quarantine.Check, _Pulled]:
        """The check before the pull of ``window`` (``_check_readable``), and ``pull`` given what it
        found. The check and the pull read PostgreSQL in two statements (ClickHouse's own connection
        cannot share the check's snapshot), so a row may turn unreadable between them: updated
        without its updated_at moving past the run's bound (in a snapshot table, or with the triggers
        off). Its pull then fails on the value, leaving nothing behind (a reload or a snapshot drops its
        half-built copy; a window's rows read twice collapse), and is checked and made once more."""
        found = self._check_readable(table, columns, window)
        try:
            return found, pull(found)
        except DatabaseError as error:
            if _UNREADABLE_VALUE_MET not in str(error):
                raise
        self.log(f"{table.name}: the pull met a value that turned unreadable after the check; checking again")
        found = self._check_readable(table, columns, window)
        return found, pull(found)

    def _pull(self, table: RawTable, columns, into: str, *conditions: str) -> int:
        """Rows inserted into ``into`` by a pull of the rows meeting every condition. ClickHouse must
        hand the whole WHERE clause to PostgreSQL (``external_table_strict_query``), or fail: a
        condition it kept would read the whole table, and parse the rows left out for being unreadable."""
        where = " and ".join(condition for condition in conditions if condition)
        summary = self.client.command(
            f"insert into {self._qualified(into)} {schema.pull_sql(columns, self._source(table), where)}",
            settings={"external_table_strict_query": 1} if where else None,
        )
        return int(summary.written_rows)

    def _copy_window(
        self, table: RawTable, columns, start: dt.datetime, unreadable: quarantine.Check, into: str = ""
    ) -> int:
        """Rows copied from the window ``[start, bound)``, less the unreadable ones, and the rows
        leaving quarantine whose ``updated_at`` lies before it (fixed without it moving)."""
        into = into or table.name
        before_bound = f"updated_at < {_timestamp_literal(self.bound.local)}"
        copied = self._pull(
            table,
            columns,
            into,
            f"updated_at >= {_timestamp_literal(start)}",
            before_bound,
            quarantine.exclusion(unreadable.held_back),
        )
        if unreadable.behind_window:
            copied += self._pull(
                table, columns, into, quarantine.inclusion(unreadable.behind_window), before_bound
            )
        return copied

    def _tombstone(self, table: RawTable, columns, start: dt.datetime) -> int:
        """Tombstones for each row deleted since ``start``, versioned by its deletion time: one in
        each partition holding a live version of the row older than the deletion, keeping what
        ``_tombstone_columns`` keeps of that partition's last version (its partition key among them),
        every other column its type's default: once merged with the row's older versions, it is all
        raw keeps of the row. A row moved to another partition (a conversation whose sent_at moved to
        another month) left a version in each: a ReplacingMergeTree replaces a version only within its
        partition, so one tombstone in the last version's partition would leave the older one for
        good. FINAL, merging across partitions, shows the id nowhere (its tombstones share the
        deletion's version, all deleted).

        Only versions older than the deletion are tombstoned, so an id written again after its
        deletion (explicit ids, restores) survives.

        Counted (and merged with the older versions) are all the window's tombstones in raw, those a
        failed run wrote too: its rerun finds the rows deleted under FINAL and writes none again, yet
        must still merge their older versions away, and move the table's watermark past them.
        """
        kept = _tombstone_columns(table, [name for name, _ in columns])
        qualified = self._qualified(table.name)
        tombstoned, deleted = 0, []
        for batch in cursor.deletions(self.pg_dsn, table.name, start, self.bound.local, _TOMBSTONE_BATCH):
            deleted += [row_id for row_id, _ in batch]
            # Parsed by ClickHouse like the pulled updated_at values, so both versions share one clock.
            deletion_version = (
                "toUInt64(toUnixTimestamp64Micro(toDateTime64("
                "transform(id, {ids:Array(Int64)}, {deleted_at:Array(String)}, '1970-01-01 00:00:00'), 6)))"
            )
            parameters = {
                "ids": [row_id for row_id, _ in batch],
                "deleted_at": [deleted_at.isoformat(sep=" ") for _, deleted_at in batch],
            }
            last_in_each_partition = (
                f"select * from {qualified} where id in {{ids:Array(Int64)}}"
                " order by _version desc limit 1 by id, _partition_id"
            )
            self._insert_tombstones(
                table.name,
                kept,
                deletion_version,
                f"from ({last_in_each_partition}) where not _is_deleted and _version < {deletion_version}",
                parameters=parameters,
            )
            tombstoned += self.client.query(
                f"select uniqExact(id) from {qualified} "
                f"where id in {{ids:Array(Int64)}} and _is_deleted and _version = {deletion_version}",
                parameters=parameters,
            ).result_rows[0][0]
        if tombstoned:
            self._merge_away_deleted_versions(table, deleted)
        return tombstoned

    def _merge_away_deleted_versions(self, table: RawTable, ids: list[int]) -> None:
        """Merge the partitions holding ``ids``' tombstones now (``OPTIMIZE ... FINAL``), so that the
        deleted rows' last versions leave the table: ClickHouse would merge a large part with a few
        new rows' part only when it chose to, hours later or never, and until then the erased row's
        text stays readable in raw. Only those partitions: deletions are few, a month of
        conversations is rewritten for one deleted message. (On a server keeping old parts for
        ``old_parts_lifetime``, the merged-away part is removed from disk once that has passed.)"""
        qualified = self._qualified(table.name)
        partitions = self.client.query(
            f"select distinct _partition_id from {qualified} where id in {{ids:Array(Int64)}}",
            parameters={"ids": ids},
        ).result_rows
        for (partition_id,) in partitions:
            self.client.command(
                f"optimize table {qualified} partition id {string_literal(partition_id)} final"
            )

    def _snapshot(
        self, table: RawTable, columns, pulled: list[tuple[str, str]], unreadable: quarantine.Check
    ) -> tuple[int, bool]:
        """Rows copied (all but the unreadable ones), and whether the new snapshot differs from the
        live one. It is swapped in either way, so its _replicated_at (source freshness) says the table
        was checked just now."""
        with self._built_beside(table, columns, pulled) as new:
            copied = self._pull(table, columns, new, quarantine.exclusion(unreadable.held_back))
            self._keep_held_back(table.name, new, columns, unreadable.held_back)
            changed = schema.content_fingerprint(
                self.client, self.database, new
            ) != schema.content_fingerprint(self.client, self.database, table.name)
            self._swap_in(table, new)
        return copied, changed


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
