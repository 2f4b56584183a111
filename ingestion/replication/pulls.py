"""The pulls: rows copied from PostgreSQL into a raw table by ClickHouse, after a check for values it
cannot read (left out and quarantined: ``quarantine.py``), checked again if one turned unreadable in
between; and the copy of an incremental run's window of changes. A part of ``replicate.Replicator``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from clickhouse_connect.driver.exceptions import DatabaseError

from ingestion.replication import declared_source, quarantine, schema
from ingestion.replication.tables import RawTable

# What ClickHouse says when a pull meets a value it cannot read ("Cannot parse PostgreSQL value
# 'infinity' as DateTime64(6)"): one the check before the pull did not see (``_checked_pull``).
_UNREADABLE_VALUE_MET = "Cannot parse PostgreSQL value"
_Pulled = TypeVar("_Pulled")


def _timestamp_literal(value: dt.datetime) -> str:
    return f"toDateTime64('{value.isoformat(sep=' ', timespec='microseconds')}', 6)"


class PullMixin:
    """The pull steps of a ``replicate.Replicator`` (its client, bound, sources and quarantine)."""

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
