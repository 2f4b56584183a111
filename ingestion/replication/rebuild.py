"""Whole-table copies: whether an incremental table must be reloaded from scratch (truncated, its
columns changed, never there), and the reload or snapshot built beside the live table and swapped in
with ``EXCHANGE TABLES`` (keeping rows held back in quarantine or written after the bound, and a
tombstone for each row gone). A part of ``replicate.Replicator``.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from ingestion.replication import cursor, quarantine, schema
from ingestion.replication.tables import RawTable
from ingestion.replication.tombstones import tombstone_columns


def _beside(table: RawTable) -> str:
    """The name a complete new copy of a raw table is built under, before it is swapped in."""
    return f"{table.name}__snapshot"


def _set_aside_by_older_versions(table: RawTable) -> str:
    """Where replication before the swapped reloads kept a table while reloading it in place: left
    behind by a reload that did not finish, it is the last complete table (its deletions are owed)."""
    return f"{table.name}__before_reload"


class RebuildMixin:
    """The whole-table steps of a ``replicate.Replicator`` (its client, database, bound and pulls)."""

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
        columns a tombstone keeps (``tombstone_columns``) it copies those the two tables mean alike
        (``_columns_alike``); the rest take their defaults, as a value the old definition let through
        (a tag now filtered out) must not come back with the tombstone. (Rows held back in quarantine
        are in ``new`` already: ``_keep_held_back``. Tombstones of ``old`` are not carried over: their
        rows are deleted, and a reload leaves nothing of them.)"""
        if not (alike := self._columns_alike(old, new, columns)):
            return 0
        return self._insert_tombstones(
            new, tombstone_columns(table, alike), "_version", self._vanished(old, new)
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
