"""Deletions as tombstones: a deleted row's last version in raw, flagged deleted, what it keeps of the
row (``tombstone_columns``), the tombstones of an incremental run's window of deletions and the merge
that takes the deleted rows' versions out of raw. A part of ``replicate.Replicator``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from ingestion.replication import cursor
from ingestion.replication.connections import string_literal
from ingestion.replication.tables import RawTable

_TOMBSTONE_BATCH = 10_000

# What a tombstone (a deleted row's last version in raw) keeps besides the key (``id``), the columns of
# the partition key (``tombstone_columns``) and the bookkeeping (``_version``, ``_is_deleted``,
# ``_replicated_at``): the columns that readers of raw without FINAL take from a deleted row, every
# version of a changed id, tombstones included. Nothing else: a ReplacingMergeTree without CLEANUP
# keeps a tombstone for good, so whatever it copied of the row (a customer's masked free text, city,
# occupation) would stay in ClickHouse after the row's erasure from PostgreSQL.
# - orchestration/defs/warehouse/changed_since_build.py (``VIEW_SOURCES``, ``_ChangeReader.owners``): whom
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


def tombstone_columns(table: RawTable, columns: Iterable[str]) -> list[str]:
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


class TombstoneMixin:
    """The tombstone steps of a ``replicate.Replicator`` (its client, database, bound and DSN)."""

    def _insert_tombstones(self, into: str, kept: list[str], version: str, rows: str, parameters=None) -> int:
        """Tombstones inserted into ``into``, one for each of ``rows`` (FROM and WHERE over a raw table):
        its columns ``kept`` (``tombstone_columns``), ``version`` (an expression over ``rows``) as its
        version, flagged deleted and stamped now. Every other column takes its type's default."""
        listed = "".join(f"`{column}`, " for column in kept)
        summary = self.client.command(
            f"insert into {self._qualified(into)} ({listed}`_version`, `_is_deleted`, `_replicated_at`) "
            f"select {listed}{version}, toUInt8(1), now64(3) {rows}",
            parameters=parameters,
        )
        return int(summary.written_rows)

    def _tombstone(self, table: RawTable, columns, start: dt.datetime) -> int:
        """Tombstones for each row deleted since ``start``, versioned by its deletion time: one in
        each partition holding a live version of the row older than the deletion, keeping what
        ``tombstone_columns`` keeps of that partition's last version (its partition key among them),
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
        kept = tombstone_columns(table, [name for name, _ in columns])
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
