"""Load one landing file: validated rows merged by natural key, in one transaction, exactly once.

First, for a partitioned table (conversations), the partitions of the months the file's rows
fall in are created, each in a short transaction of its own: creating one locks the whole table,
which the file's transaction must not hold for the length of a load.

Then per file, inside a single transaction:

1. an advisory lock per table (two loads of one table never interleave their merges) and the
   ledger check by content checksum (a copy of loaded content is recorded as 'duplicate');
2. the file is streamed chunk by chunk: each chunk is validated (:mod:`validate`), its bad rows
   and the rows the reader could not split into columns (``malformed_row``, their text - its
   start, if long - kept in ``raw_row._raw_text``) are COPYed into ``funnelhouse.ingest_rejects``
   and its good rows, still as text, are COPYed into a TEMP staging table;
3. checks that need the database run as SQL over the staging table: references (business keys
   present in PostgreSQL, or for a self-reference anywhere in this file), other unique keys (an
   employee's email), a conversation's key loaded before, or given earlier in the file, with
   another ``sent_at`` (it would be a second row, as the partitioned table's unique key includes
   sent_at: the first ``sent_at`` stands, later ones are rejected). Failing rows move from
   staging to the rejects table with the reason in words. A file of a batch older than the table's
   newest loaded batch (arriving late) also has its rows that would change a row stored by an
   earlier load rejected (``older_batch``): the newer batch's values stay, while its new keys and
   its rows identical to the stored ones load. Then a key repeated within the file keeps its last
   remaining row: the earlier ones count as loaded and as ``rows_superseded``, and move to
   ``funnelhouse.ingest_superseded`` (row number, the row that replaced them, values as written).
   Staging holds one chunk of a table merged chunk by chunk (below): a key repeated in a later
   chunk updates the row its earlier chunk merged, with the same outcome, but is not counted (that
   would take every key of the file kept aside for the whole load);
4. ``INSERT ... SELECT`` from staging with business keys joined to ids, ``ON CONFLICT (natural
   key) DO UPDATE ... WHERE (columns) IS DISTINCT FROM (new values)``: new rows are inserted,
   changed rows updated (and ``updated_at`` moves, by trigger), identical rows untouched - so a
   re-run, or an overlapping file, changes nothing and duplicates nothing. An empty value of a
   column with a DEFAULT in PostgreSQL is stored as that DEFAULT (``is_vip`` FALSE, a count 0),
   except in a NOT NULL column with a DEFAULT (``tier``, ``currency``, statuses), where it is
   "not given": a new row takes the DEFAULT, an existing one keeps its value
   (:meth:`MergePlan.sourced`);
5. the ledger row is finished (rows in = loaded + rejected, enforced by a CHECK; superseded rows
   are among the loaded) and the
   transaction commits. A kill at any point before that leaves no trace at all.

Steps 3-4 run per chunk (staging holds one chunk), in a writer thread that overlaps the reading
and validating of the next chunk, except for a table that references itself (customers), staged
whole and merged at the end. Memory is bounded by the chunk size, never by the file's.

A file that cannot be read, or that PostgreSQL refuses (its data, or content beyond its limits),
rolls back and is then recorded as 'failed' with the error; a file whose every row was rejected
commits its rejects as 'failed'.

A file of a table it references that the run could not load (``parents_not_loaded``, given by
:mod:`pipeline`) may have held the keys a row names: such a row is still quarantined as an unknown
reference (never loaded against what did load), and its reason, the file's result and, if every
row was rejected, its error name that file (:func:`waiting_words`) - one whose rows were read only
for a key among its rejected rows, one never read as one that may hold it - and what happens next:
the dependant has nothing to fix itself: a row rejected for a key not loaded yet loads when the
file is loaded again once the table it names holds the key (:func:`retry_words`). The landing sensor
does not request content already tried at its path again: ``funnelhouse ingest PATH`` does, or the
same file dropped under a new name.
"""

from __future__ import annotations

import queue
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import numpy as np
import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

from ingestion.contracts import CONTRACTS, Reference, TableContract
from ingestion.load import ledger
from ingestion.load.landing import LandingFile
from ingestion.load.readers import CHUNK_BYTES, MALFORMED_ROW, Chunk, LandingFileError, read_chunks
from ingestion.load.validate import ChunkValidator, DbColumn, rule_words
from ingestion.schema.locks import lock_table

# A partitioned table's unique keys must include its partition column, so the merge's conflict
# target is the natural key plus this column (conversations: UNIQUE (source_message_id, sent_at)).
PARTITION_COLUMNS = {"conversations": "sent_at"}
# Per partitioned table: the function saying whether a month needs its partition made, and the one
# making it (migration 0028: by the partitions' ranges, whatever their names).
_PARTITION_ENSURERS = {"conversations": ("conversation_month_missing", "ensure_conversation_partitions")}
# Partitions are created for the months of this range only. A stray date (an exporter's epoch
# zero 1970-01-01, 1900, 9999) would otherwise get a partition of its own; its row is held by the
# default partition, where nothing is lost.
PARTITION_RANGE = (pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
STAGE = "_funnelhouse_stage"
# The keys of the rows rejected from files of referenced tables that failed in the run (ParentFile):
# what a reject reason names a failed parent file by, built in the file's transaction.
PARENT_KEYS = "_funnelhouse_parent_keys"
# The key of a malformed row's raw_row: the row's text as written (it has no columns to name).
RAW_TEXT = "_raw_text"
# Of a malformed row's text, raw_row keeps the first MAX_RAW_TEXT_CHARS characters and, when that
# cuts it, its full length (characters) under RAW_TEXT_LENGTH. Quarantine is there to say why a row was refused and to find
# it (the row number, the start of its text), not to hold it: the landing file has it whole. A
# malformed row can be anything up to the readers' MAX_ROW_BYTES (a 64 MiB JSONL line, a JSON
# array export saved as .jsonl), and a jsonb string over 256 MB would make PostgreSQL refuse the
# whole file.
MAX_RAW_TEXT_CHARS = 64 * 1024
RAW_TEXT_LENGTH = "_raw_text_length"
# PostgreSQL's class 54, "program limit exceeded" (a jsonb string over 256 MB, JSON nested deeper
# than its stack, ...): an OperationalError, like a lost connection, but caused by the file's
# content, so the file fails (its ledger row says why) and the run goes on to the next file.
_BEYOND_POSTGRESQL_LIMITS = (
    psycopg.errors.ProgramLimitExceeded,
    psycopg.errors.StatementTooComplex,
    psycopg.errors.TooManyColumns,
    psycopg.errors.TooManyArguments,
)


def q(name: str) -> str:
    """A quoted identifier; column names come from the contract (some are Chinese: ``is_反问``)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class FileResult:
    file: LandingFile
    checksum: str | None  # None: the file could not be read
    status: str  # loaded | failed | duplicate
    rows_in: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_changed: int = 0
    rows_superseded: int = 0
    reasons: Counter = field(default_factory=Counter)  # rule id -> rows rejected by it (first failure)
    error: str | None = None
    seconds: float = 0.0
    file_id: int | None = None
    duplicate_of: str | None = None
    validation: dict = field(default_factory=dict)
    # Reading thread: read, validate, prepare (validation included), wait for database; writer
    # thread: db: copy, db: checks, db: merge. The threads overlap, so steps add up to more than seconds.
    seconds_by_step: Counter = field(default_factory=Counter)
    # URLs of files of referenced tables the run could not load that hold (among their rejected
    # rows) or may hold (never read) keys of rows rejected as unknown (rejected_for_parents of them,
    # among rows_rejected), which load once those files have (waiting_words).
    waiting_for: list[str] = field(default_factory=list)
    rejected_for_parents: int = 0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def catalog(conn: psycopg.Connection, table: str) -> dict[str, DbColumn]:
    rows = conn.execute(
        """SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale,
                  column_default
           FROM information_schema.columns
           WHERE table_name = %s
             AND table_schema = (SELECT relnamespace::regnamespace::text
                                  FROM pg_class WHERE oid = %s::regclass)""",
        (table, table),
    ).fetchall()
    return {name: DbColumn(*description) for name, *description in rows}


def unique_keys(conn: psycopg.Connection, table: str) -> list[tuple[str, ...]]:
    rows = conn.execute(
        """SELECT array_agg(a.attname::text ORDER BY k.ord)
           FROM pg_index i
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary
           GROUP BY i.indexrelid""",
        (table,),
    ).fetchall()
    return [tuple(r[0]) for r in rows]


def utc_timestamp(text: str) -> str:
    """SQL for the landing timestamp ``text`` as a UTC ``timestamp``.

    Landing timestamps are UTC. One written with an offset ('...+08:00', '...Z') is converted to
    UTC: a plain ``::timestamp`` cast would drop the offset and keep the local clock time (8 hours
    off, possibly another day and partition). One without an offset is taken as it is, never read
    on the session's time zone. Validation guarantees 'YYYY-MM-DD HH:MM:SS' first, so an offset
    is a sign or a Z after those 19 characters.
    """
    # The usual value, 19 characters, is told apart by its length, before any pattern is tried:
    # this runs for every timestamp of every row merged.
    return (
        f"(CASE WHEN length({text}) <= 19 THEN {text}::timestamp "
        f"WHEN substr({text}, 20) ~ '[-+Z]' THEN {text}::timestamptz AT TIME ZONE 'UTC' "
        f"ELSE {text}::timestamp END)"
    )


class MergePlan:
    """The SQL of one table's load, derived from its contract and PostgreSQL's catalog."""

    def __init__(self, contract: TableContract, columns: dict[str, DbColumn], unique: list[tuple[str, ...]]):
        self.contract = contract
        self.table = contract.table
        missing = [c.name for c in contract.columns if c.name not in columns]
        if missing:  # the database is not what the contract loads into: the file is not at fault
            raise psycopg.errors.UndefinedColumn(
                f"table {self.table} has no column(s) {', '.join(missing)} that its contract loads "
                "(a migration not applied, or a column dropped by hand)"
            )
        self.db = columns
        self.landing = contract.landing_columns
        self.plain = [c.name for c in contract.columns]
        # Column -> its DEFAULT (SQL) for every column with one that may be left empty: an empty
        # value (the readers give an empty CSV field, a JSON null or missing key, a Parquet null
        # all as NA, staged as NULL) is stored as the DEFAULT, as an INSERT without the column
        # would store it (funnel_bofu.is_vip FALSE, not NULL). The expressions are PostgreSQL's own
        # (:func:`catalog`, read once per file): the schema is their one source of truth, so a
        # migration changing a DEFAULT needs no contract change. Required columns are left out:
        # an empty value there is quarantined before (created_at's DEFAULT is the load time).
        self.defaults = {
            c.name: columns[c.name].default
            for c in contract.columns
            if not c.required and columns[c.name].default is not None
        }
        # Of those, the NOT NULL ones the contract names (``Column.default``: tier, currency,
        # statuses): there an empty value is "not given", so an existing row keeps its value.
        self.kept_when_empty = [c.name for c in contract.columns if c.default is not None]
        self.self_references = [r for r in contract.references if r.table == self.table]
        self.references = [r for r in contract.references if r.table != self.table]
        self.partition = PARTITION_COLUMNS.get(self.table)
        by_landing = {r.landing_column: r for r in contract.references}
        target: list[str] = []
        for key in contract.natural_key:
            target.extend(by_landing[key].db_columns if key in by_landing else (key,))
        if self.partition and self.partition not in target:
            target.append(self.partition)
        self.conflict_target = target
        natural_plain = all(k in self.plain for k in contract.natural_key)
        self.other_unique = [
            key
            for key in unique
            if set(key) != set(target) and all(c in self.plain for c in key) and natural_plain
        ]

    # -- expressions -------------------------------------------------------------------------
    def typed(self, column: str, alias: str = "s") -> str:
        db = self.db[column]
        kind = db.data_type
        value = f"{alias}.{q(column)}"
        if kind == "timestamp without time zone":
            return utc_timestamp(value)
        if kind == "numeric" and db.precision is not None:
            # Rounded as the column stores it: the value an insert stores, so comparing it with a
            # stored row (:meth:`MergePlan.older_batch_changes`) sees what the merge would see.
            return f"{value}::numeric({db.precision}, {db.scale or 0})"
        return value if kind in ("text", "character varying") else f"{value}::{kind}"

    def create_stage(self) -> str:
        columns = ", ".join(f"{q(c)} text" for c in self.landing)
        return f"CREATE TEMP TABLE {STAGE} (_row bigint NOT NULL, {columns}) ON COMMIT DROP"

    def copy_stage(self) -> str:
        return f"COPY {STAGE} (_row, {', '.join(q(c) for c in self.landing)}) FROM STDIN (FORMAT csv)"

    # -- checks over the whole staging table -----------------------------------------------------
    def _reference_missing(self, ref: Reference, alias: str) -> str:
        value = f"{alias}.{q(ref.landing_column)}"
        in_db = f"EXISTS (SELECT 1 FROM {q(ref.table)} t WHERE t.{q(ref.key_column)} = {value})"
        if ref.table == self.table:
            in_file = f"EXISTS (SELECT 1 FROM {STAGE} o WHERE o.{q(ref.key_column)} = {value})"
            return f"({value} IS NOT NULL AND NOT {in_db} AND NOT {in_file})"
        return f"({value} IS NOT NULL AND NOT {in_db})"

    def _reference_reason(self, ref: Reference, url: str, parents: ParentWords | None = None) -> str:
        """SQL of the reason of a row of ``url`` naming a key of ``ref.table`` that is not known:
        with ``parents`` (the files of ``ref.table`` this run could not load), the one among them whose
        rejected rows hold the key, or those that may hold it (never read); else what happens next."""
        where = "neither in PostgreSQL nor in this file" if ref.table == self.table else "not in PostgreSQL"
        reason = (
            f"'{ref.landing_column} ' || quote_literal(bad.{q(ref.landing_column)}) || "
            f"' is not a known {ref.table}.{ref.key_column} ({where})'"
        )
        parents = parents or ParentWords()
        plain = _literal(f": {retry_words(url, ref.table)}")
        if parents.unread:
            reason += " || " + _literal(f"; {ref.table} file {parents.unread}")
            plain = "''"
        if parents.read:
            # (the key among the rejected rows of a file of the run that failed: PARENT_KEYS)
            named = (
                f"(SELECT '; {ref.table} file ' || string_agg(DISTINCT p.path, ', ') || "
                f"{_literal(' ' + parents.read)} FROM {PARENT_KEYS} p WHERE p.table_name = "
                f"{_literal(ref.table)} AND p.key_column = {_literal(ref.key_column)} "
                f"AND p.key = bad.{q(ref.landing_column)})"
            )
            plain = f"COALESCE({named}, {plain})"
        reason += f" || {plain}"
        return reason.replace("%", "%%")  # (the checks run with parameters, and a URL may hold a %)

    def checks(
        self,
        url: str,
        older_batch: tuple[str, str] | None = None,
        waiting: Mapping[str, ParentWords] | None = None,
    ) -> list[tuple[str, list[tuple[str, Callable[[str], str], str]]]]:
        """``(name, [(rule, condition(alias), reason on bad)])`` groups; a group is one staging pass.

        Self-references are their own group, repeated until nothing moves: rejecting a referrer
        can orphan the rows that point at it. ``older_batch``: ``(the file's batch, the newer batch
        of the table already loaded)`` when the file arrives late; its rows that would change a
        stored row are then rejected (:meth:`older_batch_changes`), last, once the other checks
        have removed the rows the merge would not take anyway. ``waiting``: by referenced table,
        :func:`waiting_words` of its files the run could not load, told in the reasons of the rows
        naming a key of that table unknown; ``url``: the file's, named in those reasons.
        """
        waiting = waiting or {}
        groups = []
        refs = [
            (
                f"reference:{r.landing_column}",
                partial(self._reference_missing, r),
                self._reference_reason(r, url, waiting.get(r.table)),
            )
            for r in self.references
        ]
        if refs:
            groups.append(("references", refs))
        if self.self_references:
            groups.append(
                (
                    "self references",
                    [
                        (
                            f"reference:{r.landing_column}",
                            partial(self._reference_missing, r),
                            self._reference_reason(r, url, waiting.get(r.table)),
                        )
                        for r in self.self_references
                    ],
                )
            )
        for key in self.other_unique:
            shown = " || ', ' || ".join(f"quote_nullable(bad.{q(c)})" for c in key)
            reason = (
                f"'{', '.join(key)} ' || {shown} || ' already belongs to another {self.table} row "
                f"(unique in PostgreSQL)'"
            )
            groups.append(
                (f"unique {key}", [(f"unique:{','.join(key)}", partial(self._unique_clash, key), reason)])
            )
        if self.partition:
            reason = (
                f"'{', '.join(self.contract.natural_key)} already loaded with another {self.partition}; "
                f"{self.partition} of a loaded row cannot change'"
            )
            groups.append(("partition key", [(f"moved:{self.partition}", self._partition_moved, reason)]))
        # A table whose every column is its key (or partition) has nothing a row could change.
        if older_batch and self.updated_columns(self.sourced()[0]):
            batch, newer = older_batch
            # The table's newest batch, not the row's: a delta export's newer batch may not have carried
            # this row, so the reason says "may" and how to apply the row once that is known.
            reason = _literal(older_batch_reason(self.table, batch, newer))
            changes = self.older_batch_changes()
            groups.append(
                ("older batch", [("older_batch", lambda alias: f"{alias}._row IN {changes}", reason)])
            )
        return groups

    def older_batch_changes(self) -> str:
        """A subquery of the staged ``_row``s that would change a row stored by an earlier load.

        The merge's own values and joins (:meth:`sourced`, an empty :attr:`kept_when_empty` value
        keeping the stored one) compared as the merge compares them, so "would change" means what the merge
        would do. Uncorrelated: one pass over staging, each row looking up its stored row through
        the natural key's unique index. A row this load wrote (its key new to the table, inserted
        by an earlier chunk of this file: ``xmin`` is this transaction) is the file's own and may
        change; rows stored by earlier loads are the only ones a late batch must leave alone.

        A self-reference (a customer's referrer) counts as a value: a referrer other than the
        stored one is a change, and so is a referrer new in this file (the stored row cannot point
        at a row not inserted yet), so a late batch never repoints a stored row's referrer either.
        """
        columns, values, joins = self.sourced(fill_defaults=True, join_stored=True)
        referrer_new = []
        for i, ref in enumerate(self.self_references):
            join, value = self._self_reference_join(ref, f"sr{i}")
            joins.append(join)
            columns.extend(ref.db_columns)
            values.append(value)
            referrer_new.append(f"(s.{q(ref.landing_column)} IS NOT NULL AND {value} IS NULL)")
        changed = " OR ".join([self._changes("cur", columns, values), *referrer_new])
        return (
            f"(SELECT s._row FROM {STAGE} s {' '.join(joins)} "
            f"WHERE cur.id IS NOT NULL AND cur.xmin <> pg_current_xact_id()::xid AND ({changed}))"
        )

    def _unique_clash(self, key: tuple[str, ...], alias: str) -> str:
        """The row's value of another unique key belongs to another row, in the table or earlier in file."""
        natural = " AND ".join(f"t.{q(k)} = {self.typed(k, alias)}" for k in self.contract.natural_key)
        same = " AND ".join(f"t.{q(c)} = {self.typed(c, alias)}" for c in key)
        earlier_same = " AND ".join(f"o.{q(c)} = {alias}.{q(c)}" for c in key)
        other_key = " OR ".join(
            f"o.{q(k)} IS DISTINCT FROM {alias}.{q(k)}" for k in self.contract.natural_key
        )
        return (
            f"(EXISTS (SELECT 1 FROM {q(self.table)} t WHERE {same} AND NOT ({natural})) OR "
            f"EXISTS (SELECT 1 FROM {STAGE} o WHERE {earlier_same} AND ({other_key}) "
            f"AND o._row < {alias}._row))"
        )

    def moved_in_file(self) -> list[tuple[str, Callable[[str], str], str]]:
        """The check group for a key new to the table given again in the file with another
        partition value (a message repeated with another ``sent_at``): the key's first row in
        file order sets it, later rows with another one are rejected, as they would be in a
        later chunk or file (by :meth:`_partition_moved`) - so where chunks end does not matter.

        Run only on a chunk with repeated keys: one window pass over staging (uncorrelated, so
        evaluated once, not per row).
        """
        key = ", ".join(f"o.{q(k)}" for k in self.contract.natural_key)
        in_table = " AND ".join(f"t.{q(k)} = o.{q(k)}" for k in self.contract.natural_key)
        value = self.typed(self.partition, "o")
        later = (
            f"(SELECT _row FROM (SELECT o._row, {value} AS value, "
            f"first_value({value}) OVER (PARTITION BY {key} ORDER BY o._row) AS first "
            f"FROM {STAGE} o WHERE NOT EXISTS (SELECT 1 FROM {q(self.table)} t WHERE {in_table})) w "
            f"WHERE w.value IS DISTINCT FROM w.first)"
        )
        reason = (
            f"'{', '.join(self.contract.natural_key)} given earlier in this file with another "
            f"{self.partition}; the first {self.partition} of a row stands'"
        )
        return [(f"moved:{self.partition}", lambda alias: f"{alias}._row IN {later}", reason)]

    def _partition_moved(self, alias: str) -> str:
        natural = " AND ".join(f"t.{q(k)} = {alias}.{q(k)}" for k in self.contract.natural_key)
        return (
            f"EXISTS (SELECT 1 FROM {q(self.table)} t WHERE {natural} "
            f"AND t.{q(self.partition)} <> {self.typed(self.partition, alias)})"
        )

    def reject_sql(self, group: list[tuple[str, Callable[[str], str], str]]) -> str:
        conditions = " OR ".join(condition("s") for _, condition, _ in group)
        if len(group) == 1:  # every row deleted failed the one rule: its condition is not evaluated again
            [(rule_id, _, reason)] = group
            rule = _literal(rule_id)
        else:
            rule = (
                "COALESCE("
                + ", ".join(f"CASE WHEN {c('bad')} THEN '{rule}' END" for rule, c, _ in group)
                + ")"
            )
            reason = (
                "concat_ws('; ', "
                + ", ".join(f"CASE WHEN {c('bad')} THEN {r} END" for _, c, r in group)
                + ")"
            )
        return f"""WITH bad AS (DELETE FROM {STAGE} s WHERE {conditions} RETURNING s.*)
                   INSERT INTO {ledger.REJECTS} ({", ".join(ledger.REJECT_COLUMNS)})
                   SELECT %(file_id)s, %(path)s, %(table)s, bad._row, {rule}, {reason}, to_jsonb(bad) - '_row'
                   FROM bad RETURNING rule"""

    def carry_stored_values(self) -> str:
        """Before :meth:`drop_superseded`: a repeated key's last row gets, for each
        :attr:`kept_when_empty` column it leaves empty, the latest value an earlier row of the key
        gave (an empty value keeps the value the row had, whether stored or written earlier in the
        file: where chunks end does not matter)."""
        key = [q(k) for k in self.contract.natural_key]
        latest = ", ".join(
            f"(array_agg({q(c)} ORDER BY _row DESC) FILTER (WHERE {q(c)} IS NOT NULL))[1] AS {q(c)}"
            for c in self.kept_when_empty
        )
        fill = ", ".join(f"{q(c)} = COALESCE(b.{q(c)}, f.{q(c)})" for c in self.kept_when_empty)
        return (
            f"UPDATE {STAGE} b SET {fill} FROM (SELECT {', '.join(key)}, max(_row) AS _last, {latest} "
            f"FROM {STAGE} GROUP BY {', '.join(key)} HAVING count(*) > 1) f "
            f"WHERE {' AND '.join(f'b.{k} = f.{k}' for k in key)} AND b._row = f._last"
        )

    def drop_superseded(self) -> str:
        """Earlier rows of a key repeated in the file: the last occurrence is the row's final state.

        The earlier rows move from staging to ``funnelhouse.ingest_superseded`` with the row that
        replaced them and their values as written (one statement, counted by its row count): a
        key given to two different records by mistake (a deposit_code at 100.00, then 200.00)
        leaves its first record where it can be found, not nowhere."""
        key = [q(k) for k in self.contract.natural_key]
        same = " AND ".join(f"a.{k} = b.{k}" for k in key)
        return f"""WITH last AS (SELECT {", ".join(key)}, max(_row) AS _last FROM {STAGE}
                                 GROUP BY {", ".join(key)} HAVING count(*) > 1),
                   gone AS (DELETE FROM {STAGE} a USING last b WHERE {same} AND a._row < b._last
                            RETURNING a.*, b._last AS _superseded_by)
                   INSERT INTO {ledger.SUPERSEDED} ({", ".join(ledger.SUPERSEDED_COLUMNS)})
                   SELECT %(file_id)s, %(path)s, %(table)s, gone._row, gone._superseded_by,
                          to_jsonb(gone) - '_row' - '_superseded_by'
                   FROM gone"""

    # -- the merge ---------------------------------------------------------------------------------
    def sourced(
        self, fill_defaults: bool = False, join_stored: bool = False
    ) -> tuple[list[str], list[str], list[str]]:
        """``(columns, values, joins)``: the table's columns the merge writes, their values over
        staging ``s`` (references joined to ids), and the joins those values need.

        An empty value of a column with a DEFAULT (:attr:`defaults`) is stored as the DEFAULT.
        Loads are full-row upserts: the file's row is the row's whole state, so an empty value
        means the same on an existing row as on a new one - the DEFAULT (an ``is_vip`` stored TRUE
        and re-sent empty becomes FALSE, as an empty value of a column without a DEFAULT becomes
        NULL). The exception are the NOT NULL columns of :attr:`kept_when_empty`, where an empty
        value is "not given" and an existing row keeps its value.

        ``fill_defaults``: some staged row leaves a :attr:`kept_when_empty` column empty. Its value
        is then the stored one when the key exists (joined as ``cur``: an upsert that does not name
        a value keeps it) and the column's DEFAULT otherwise, as an INSERT without the column
        would give. Only then, as the join costs a lookup per row. ``join_stored``: join ``cur``
        anyway (:meth:`older_batch_changes` compares with it).
        """
        columns = list(self.plain)
        values = [self.typed(c) for c in self.plain]
        joins = []
        for i, ref in enumerate(self.references):
            alias = f"r{i}"
            joins.append(
                f"LEFT JOIN {q(ref.table)} {alias} ON {alias}.{q(ref.key_column)} = s.{q(ref.landing_column)}"
            )
            columns.extend(ref.db_columns)
            values.extend(f"{alias}.{q(t)}" for t in ref.target_columns)
        fill_defaults = fill_defaults and bool(self.kept_when_empty)
        if fill_defaults or join_stored:
            value_of = dict(zip(columns, values, strict=True))
            stored = " AND ".join(f"cur.{q(c)} = {value_of[c]}" for c in self.conflict_target)
            joins.append(f"LEFT JOIN {q(self.table)} cur ON {stored}")
        kept = set(self.kept_when_empty) if fill_defaults else set()
        values = [
            f"COALESCE({value}, {f'cur.{q(c)}, ' if c in kept else ''}{self.defaults[c]})"
            if c in self.defaults
            else value
            for c, value in zip(columns, values, strict=True)
        ]
        return columns, values, joins

    def updated_columns(self, columns: list[str]) -> list[str]:
        """Of ``columns``, those a merge of an existing row may change (not its conflict target)."""
        return [c for c in columns if c not in self.conflict_target]

    def _changes(self, stored: str, columns: list[str], values: list[str]) -> str:
        """Whether ``values`` of ``columns`` change the row ``stored`` (an alias): the merge's test."""
        value_of = dict(zip(columns, values, strict=True))
        updated = self.updated_columns(columns)
        return (
            f"({', '.join(f'{stored}.{q(c)}' for c in updated)}) IS DISTINCT FROM "
            f"({', '.join(value_of[c] for c in updated)})"
        )

    def merge(self, fill_defaults: bool = False) -> str:
        """The upsert of the staged rows (:meth:`sourced`); an existing row is updated only if
        the new values change it (:meth:`_changes`)."""
        columns, values, joins = self.sourced(fill_defaults)
        updated = self.updated_columns(columns)
        update = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in updated)
        changed = self._changes("t", updated, [f"EXCLUDED.{q(c)}" for c in updated])
        conflict = f"DO UPDATE SET {update} WHERE {changed}" if updated else "DO NOTHING"
        return (
            f"INSERT INTO {q(self.table)} AS t ({', '.join(q(c) for c in columns)}) "
            f"SELECT {', '.join(values)} FROM {STAGE} s {' '.join(joins)} "
            f"ON CONFLICT ({', '.join(q(c) for c in self.conflict_target)}) {conflict}"
        )

    def _self_reference_join(self, ref: Reference, alias: str) -> tuple[str, str]:
        """``(join, value)``: the referred row of staging ``s``'s self-reference, joined as
        ``alias``, and its id (NULL while the referred row is not in the table)."""
        (target,) = ref.target_columns
        join = f"LEFT JOIN {q(self.table)} {alias} ON {alias}.{q(ref.key_column)} = s.{q(ref.landing_column)}"
        return join, f"{alias}.{q(target)}"

    def merge_self_references(self) -> list[str]:
        """Second statement for a self-reference: every row of the file exists by now."""
        statements = []
        key = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in self.contract.natural_key)
        for ref in self.self_references:
            (column,) = ref.db_columns
            join, value = self._self_reference_join(ref, "r")
            statements.append(
                f"UPDATE {q(self.table)} t SET {q(column)} = {value} "
                f"FROM {STAGE} s {join} "
                f"WHERE {key} AND t.{q(column)} IS DISTINCT FROM {value}"
            )
        return statements


def older_batch_reason(table: str, batch: str, newer: str) -> str:
    """Why a late older batch's row that would change a stored row is quarantined (rule ``older_batch``)."""
    return (
        f"batch {batch} is older than batch {newer} already loaded into {table}: the stored row may hold "
        f"a newer batch's value, so this older one is not applied over it (if no newer batch carried this "
        f"row, as with delta exports, apply it by dropping the row again in a file whose batch sorts "
        f"after {newer})"
    )


class ParentFile(NamedTuple):
    """A file of a referenced table the run could not load (see load_file): ``file_id`` its ledger
    row when its rows were read and its rejects kept (every row rejected), so the keys it holds are
    known; None when it could not be read, or was refused whole (undecodable, rolled back)."""

    url: str
    file_id: int | None = None


@dataclass
class ParentWords:
    """What a reject reason adds about a referenced table's files the run could not load: ``unread``
    (whole words naming the files that may hold the key), ``read`` (words following the name of the
    file whose rejected rows hold it); empty when there are none."""

    unread: str = ""
    read: str = ""


def retry_words(url: str, table: str | None = None) -> str:
    """What loads a row of ``url`` rejected for a key (of ``table``) not loaded yet: the file loaded
    again once that table holds the key (the sensor does not retry a path it tried: ``ledger.handled``)."""
    return (
        f"once {table or 'the table it names'} has loaded the key, run `{ingest_command(url)}` (or drop "
        "the file again under a new name) to load this row: the landing sensor does not retry a path it tried"
    )


def waiting_words(parents: Sequence[str], url: str, *, may: bool = True, table: str | None = None) -> str:
    """'<parents> could not be loaded in this run and may hold the key: ... <retry_words>', the end of
    what is said about the rows of ``url`` rejected for keys those files may hold (the reject reason,
    the file's error, ``funnelhouse ingest``'s notes); ``may`` False: the words after the name of a
    file known to hold the key (its rejected rows do)."""
    held = "may hold the key" if may else "holds the key among its rejected rows"
    named = f"{', '.join(parents)} " if may else ""
    return f"{named}could not be loaded in this run and {held}: fix it; {retry_words(url, table)}"


def ingest_command(url: str) -> str:
    """The command that loads ``url`` again, quoted for a shell (a path may hold spaces or quotes)."""
    return f"funnelhouse ingest {shlex.quote(url)}"


def _literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _stage_bytes(frame: pd.DataFrame, columns: list[str]) -> memoryview:
    """Good rows as CSV for COPY: nulls unquoted-empty, every string quoted (so '' stays '').

    Written into an Arrow buffer and handed over without a copy: a chunk exists once in memory.
    """
    table = pa.table(
        {
            "_row": pa.array(frame.index.to_numpy(dtype=np.int64)),
            **{c: pa.array(frame[c], type=pa.string(), from_pandas=True) for c in columns},
        }
    )
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return memoryview(sink.getvalue())


def _raw_row(frame: pd.DataFrame, row: int) -> str:
    """The row as JSON for ``raw_row``; a NUL (rejected for that very reason) becomes U+FFFD, as
    jsonb cannot hold it and would fail the file instead of quarantining the row."""
    values = frame.loc[row]
    return orjson.dumps(
        {k: (None if pd.isna(v) else str(v).replace("\x00", "\ufffd")) for k, v in values.items()}
    ).decode()


def _raw_text(text: str) -> str:
    """A row the reader could not split into columns, as ``raw_row``: its text, cut to
    :data:`MAX_RAW_TEXT_CHARS` (NUL made U+FFFD, as in :func:`_raw_row`)."""
    raw: dict[str, str | int] = {RAW_TEXT: text[:MAX_RAW_TEXT_CHARS].replace("\x00", "\ufffd")}
    if len(text) > MAX_RAW_TEXT_CHARS:
        raw[RAW_TEXT_LENGTH] = len(text)
    return orjson.dumps(raw).decode()


@dataclass
class _Batch:
    """One validated chunk, ready for the database."""

    rejects: list[tuple]  # rows of ingest_rejects
    staged: memoryview | None  # the good rows as COPY input
    repeats: bool  # a key occurs more than once among the good rows
    fill_defaults: bool  # a good row leaves a kept_when_empty column empty (see MergePlan.sourced)


class _Writer(threading.Thread):
    """Sends validated chunks to PostgreSQL while the next chunk is read and validated.

    The two sides run at the same time (Arrow, pandas and psycopg's socket I/O release the GIL,
    and PostgreSQL is another process), so a file takes about as long as the slower of them
    rather than their sum. The queue holds one chunk: memory stays bounded.
    """

    def __init__(self, load: _FileLoad):
        super().__init__(name=f"ingest-writer-{load.file.name}", daemon=True)
        self.load = load
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.load.write(batch)
                except BaseException as error:  # handed to the reading thread, which re-raises it
                    self.error = error

    def put(self, batch: _Batch) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(batch)

    def close(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error


class _FileLoad:
    """One file's transaction.

    Tables without a self-reference are merged chunk by chunk (staging holds one chunk at a time,
    checked and merged before the next arrives), so merging overlaps reading and validating.
    A table that references itself (customers.referrer_code) is staged whole and merged at the
    end: a referrer may come later in the file than the row naming it.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        file: LandingFile,
        file_id: int,
        parents_not_loaded: Mapping[str, Sequence[ParentFile]] | None = None,
    ):
        self.conn, self.file, self.file_id = conn, file, file_id
        self.parents = {table: list(files) for table, files in (parents_not_loaded or {}).items() if files}
        # Referenced table -> ParentWords of its files the run could not load (see load_file).
        self.waiting = {
            table: ParentWords(
                unread=waiting_words(self._unread(table), file.url, table=table)
                if self._unread(table)
                else "",
                read=waiting_words([], file.url, may=False, table=table) if self._read(table) else "",
            )
            for table in self.parents
        }
        self._keep_parent_keys()
        contract = CONTRACTS[file.table]
        self.plan = MergePlan(contract, catalog(conn, file.table), unique_keys(conn, file.table))
        self.validator = ChunkValidator(file.table, self.plan.db)
        self.per_chunk = not self.plan.self_references
        self.rows_in = self.rows_changed = self.rows_superseded = 0
        self.rejected: Counter[str] = Counter()  # by the reading thread
        self.rejected_in_sql: Counter[str] = Counter()  # by the writer thread
        self.key_hashes: list[np.ndarray] = []
        self.fill_defaults = False  # whole-file mode: some row leaves a kept_when_empty column empty
        self.params = {"file_id": file_id, "path": file.url, "table": file.table}
        # A late file of a batch older than one loaded: its changes to stored rows are quarantined.
        newer = ledger.newer_batch_loaded(conn, file.table, file.batch)
        self.older_batch = (file.batch, newer) if newer else None
        self.seconds: Counter[str] = Counter()  # see FileResult.seconds_by_step

    def _unread(self, table: str) -> list[str]:
        return [parent.url for parent in self.parents.get(table, ()) if parent.file_id is None]

    def _read(self, table: str) -> list[int]:
        return [parent.file_id for parent in self.parents.get(table, ()) if parent.file_id is not None]

    def _references_to_read_parents(self) -> list[Reference]:
        return [r for r in CONTRACTS[self.file.table].references if self._read(r.table)]

    def _keep_parent_keys(self) -> None:
        """:data:`PARENT_KEYS`: the keys of the rows rejected from the failed files of referenced
        tables whose rows were read, so a reason names such a file only for a key it holds."""
        refs = self._references_to_read_parents()
        if not refs:
            return
        self.conn.execute(
            f"CREATE TEMP TABLE {PARENT_KEYS} (table_name text, key_column text, key text, path text) "
            "ON COMMIT DROP"
        )
        for table, key_column in sorted({(r.table, r.key_column) for r in refs}):
            self.conn.execute(
                f"""INSERT INTO {PARENT_KEYS}
                    SELECT %s, %s, raw_row ->> %s, path FROM {ledger.REJECTS} WHERE file_id = ANY(%s)""",
                (table, key_column, key_column, self._read(table)),
            )
        self.conn.execute(f"CREATE INDEX ON {PARENT_KEYS} (table_name, key_column, key)")
        self.conn.execute(f"ANALYZE {PARENT_KEYS}")

    def waiting_for(self, reasons: Counter) -> tuple[int, list[str]]:
        """Of the rows rejected as unknown references, how many name a failed parent file (one that
        may hold their key, or whose rejected rows hold it), and those files' URLs."""
        count, urls = 0, []
        for ref in CONTRACTS[self.file.table].references:
            rule = f"reference:{ref.landing_column}"
            if not reasons.get(rule) or ref.table not in self.parents:
                continue
            named = self._unread(ref.table)
            if named:
                count += reasons[rule]
            elif self._read(ref.table):
                rejected, paths = self.conn.execute(
                    f"""SELECT count(DISTINCT r.id), array_agg(DISTINCT p.path) FILTER (WHERE p.path IS NOT NULL)
                        FROM {ledger.REJECTS} r JOIN {PARENT_KEYS} p ON p.table_name = %s
                             AND p.key_column = %s AND p.key = r.raw_row ->> %s
                        WHERE r.file_id = %s AND r.rule = %s""",
                    (ref.table, ref.key_column, ref.landing_column, self.file_id, rule),
                ).fetchone()
                count += rejected
                named = [p.url for p in self.parents[ref.table] if p.url in (paths or ())]
            urls.extend(url for url in named if url not in urls)
        return count, urls

    # -- reading thread ------------------------------------------------------------------------
    def run(self, chunk_bytes: int, on_rows: Callable[[int], None] | None) -> None:
        self.conn.execute(self.plan.create_stage())
        writer = _Writer(self)
        writer.start()
        try:
            clock = time.perf_counter()
            for chunk in read_chunks(self.file, chunk_bytes):
                self.rows_in += len(chunk)
                clock = self._tick("read", clock)
                batch = self._prepare(chunk)
                clock = self._tick("prepare", clock)
                writer.put(batch)
                clock = self._tick("wait for database", clock)
                if on_rows:
                    on_rows(len(chunk))
        finally:
            writer.close()
        if not self.per_chunk:
            clock = time.perf_counter()
            self._settle_file()
            self._tick("db: checks and merge", clock)

    def _tick(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[step] += now - since
        return now

    def _prepare(self, chunk: Chunk) -> _Batch:
        frame = chunk.frame
        clock = time.perf_counter()
        verdict = self.validator.validate(frame)
        self.seconds["validate"] += time.perf_counter() - clock
        rejects = [self._reject(m.row, MALFORMED_ROW, m.reason, _raw_text(m.text)) for m in chunk.malformed]
        for row, problems in sorted(verdict.failures.items()):
            reason = "; ".join(reason for _, reason in problems)
            rejects.append(self._reject(row, problems[0][0], reason, _raw_row(frame, row)))
        good = frame.loc[~frame.index.isin(list(verdict.failures))] if verdict.failures else frame
        key = list(self.plan.contract.natural_key)
        # Repeated keys stay staged until the SQL checks have run: dropping the earlier rows here
        # would lose one (neither loaded nor quarantined) whose later repeat is then rejected.
        repeats = bool(good.duplicated(subset=key).any())
        kept = self.plan.kept_when_empty
        fill_defaults = bool(kept) and bool(good[kept].isna().to_numpy().any())
        if not self.per_chunk and len(good):
            self.key_hashes.append(pd.util.hash_pandas_object(good[key], index=False).to_numpy())
            self.fill_defaults |= fill_defaults
        staged = _stage_bytes(good, self.plan.landing) if len(good) else None
        return _Batch(rejects, staged, repeats, fill_defaults)

    def _reject(self, row: int, rule: str, reason: str, raw_row: str) -> tuple:
        """A row of ``ingest_rejects``, counted under its (first) rule. A NUL in the reason (a key
        outside the contract named with one) becomes U+FFFD, as in :func:`_raw_row`: PostgreSQL's
        text cannot hold it, and would fail the file instead of quarantining the row."""
        self.rejected[rule] += 1
        reason = reason.replace("\x00", "\ufffd")
        return (self.file_id, self.file.url, self.file.table, row, rule, reason, raw_row)

    # -- writer thread ---------------------------------------------------------------------------
    def write(self, batch: _Batch) -> None:
        with self.conn.cursor() as cursor:
            clock = time.perf_counter()
            if batch.rejects:
                with cursor.copy(
                    f"COPY {ledger.REJECTS} ({', '.join(ledger.REJECT_COLUMNS)}) FROM STDIN"
                ) as copy:
                    for reject in batch.rejects:
                        copy.write_row(reject)
            if batch.staged is not None:
                with cursor.copy(self.plan.copy_stage()) as copy:
                    copy.write(batch.staged)
            clock = self._tick("db: copy", clock)
        if batch.staged is None:
            return
        if self.per_chunk:
            self._reject_in_sql(batch.repeats)
            if batch.repeats:
                self._supersede(batch.fill_defaults)
            clock = self._tick("db: checks", clock)
            self.rows_changed += self.conn.execute(self.plan.merge(batch.fill_defaults)).rowcount
            self.conn.execute(f"TRUNCATE {STAGE}")
            self._tick("db: merge", clock)

    # -- SQL steps -----------------------------------------------------------------------------------
    def _reject_in_sql(self, repeats: bool) -> None:
        """The SQL checks; ``repeats``: some key occurs more than once in staging."""
        groups = self.plan.checks(self.file.url, self.older_batch, self.waiting)
        if repeats and self.plan.partition:
            groups.append(("partition key in file", self.plan.moved_in_file()))
        for name, group in groups:
            sql = self.plan.reject_sql(group)
            while True:
                rules = [r[0] for r in self.conn.execute(sql, self.params).fetchall()]
                self.rejected_in_sql.update(rules)
                if not rules or name != "self references":
                    break

    def _supersede(self, fill_defaults: bool) -> None:
        """Keep the last staged row of each repeated key (empty kept_when_empty values carried over)."""
        if fill_defaults and self.plan.kept_when_empty:
            self.conn.execute(self.plan.carry_stored_values())
        self.rows_superseded += self.conn.execute(self.plan.drop_superseded(), self.params).rowcount

    def _settle_file(self) -> None:
        """Whole-file mode: checks, repeated keys, merge, self-references."""
        hashes = np.concatenate(self.key_hashes) if self.key_hashes else np.empty(0)
        repeats = len(np.unique(hashes)) < len(hashes)  # a hash collision only costs a statement or two
        self._reject_in_sql(repeats)
        if repeats:
            self._supersede(self.fill_defaults)
        self.conn.execute(f"ANALYZE {STAGE}")
        # A new row that is then given its referrer is one changed row, not two: count the ids.
        merge = self.plan.merge(self.fill_defaults) + " RETURNING t.id"
        changed = {row_id for (row_id,) in self.conn.execute(merge)}
        for statement in self.plan.merge_self_references():
            changed.update(row_id for (row_id,) in self.conn.execute(statement + " RETURNING t.id"))
        self.rows_changed += len(changed)

    @property
    def reasons(self) -> Counter:
        return self.rejected + self.rejected_in_sql


# A file at least this big gets a line before each step that reads it whole with no rows to
# count (hashing it, scanning it for months): seconds to minutes of silence otherwise (a checksum
# of 1 GB takes seconds; a multi-GB file, more). Smaller files stay quiet.
ANNOUNCE_BYTES = 64 * 1024 * 1024


def announce(file: LandingFile, doing: str, on_step: Callable[[str], None] | None) -> None:
    """Tell ``on_step`` (an :class:`~ingestion.load.pipeline.Observer`'s ``step_started``) that
    ``doing`` ('hashing x.csv') begins, when ``file`` is big enough for it to take a while."""
    if on_step and file.size and file.size >= ANNOUNCE_BYTES:
        on_step(f"{doing} ({file.size / 1e6:,.1f} MB)...")


def checksum_of(file: LandingFile, on_step: Callable[[str], None] | None = None) -> str:
    """``file.checksum()``, announced for a big file: hashing reads all of it."""
    announce(file, f"hashing {file.name}", on_step)
    return file.checksum()


def _months_present(file: LandingFile, column: str, chunk_bytes: int) -> set[str]:
    """First days ('YYYY-MM-01') of the UTC months of ``column`` in the file, within PARTITION_RANGE.

    Only the months that occur: one stray date must not stand for every month up to it. Values
    that are no timestamp are skipped (validation rejects their rows).
    """
    low, high = PARTITION_RANGE
    months: set[str] = set()
    for chunk in read_chunks(file, chunk_bytes):
        stamps = pd.to_datetime(chunk.frame[column], utc=True, format="ISO8601", errors="coerce")
        months.update(stamps[(stamps >= low) & (stamps < high)].dt.strftime("%Y-%m-01").unique())
    return months


def _create_partitions(
    conn: psycopg.Connection,
    file: LandingFile,
    checksum: str,
    chunk_bytes: int,
    on_step: Callable[[str], None] | None = None,
) -> None:
    """The partitions the file's rows need, each created in a short transaction of its own, before
    the file's transaction.

    Creating a partition locks the whole partitioned table (ACCESS EXCLUSIVE) until its transaction
    ends: inside the file's transaction, every reader of the table (replication, search sync,
    reports) would wait for the whole load. A partition created for a load that then fails stays,
    empty and harmless. A month the file brings that has no partition (outside PARTITION_RANGE) is
    held by the default partition.

    The table's load lock is taken first: while another file of the table loads, this one waits
    for it there, not in the table's lock queue, where every new reader would queue behind it.
    """
    if file.table not in _PARTITION_ENSURERS:
        return
    missing, ensurer = _PARTITION_ENSURERS[file.table]
    with conn.transaction():
        if ledger.duplicate_of(conn, file, checksum):
            return  # loaded before: this copy loads nothing
    announce(file, f"scanning {file.name} for months", on_step)
    for month in sorted(_months_present(file, PARTITION_COLUMNS[file.table], chunk_bytes)):
        with conn.transaction():
            lock_table(conn, file.table)
            # A month a partition covers needs nothing (the ensurer would do nothing), so no wait
            # for a load of events: only a new partition locks conversation_events too (its foreign
            # key). The database decides, by the partitions' ranges: a month covered in part by a
            # partition made by hand is not asked for, its other rows are held by the default one.
            if conn.execute(f"SELECT {missing}(%s::date)", (month,)).fetchone()[0]:
                lock_table(conn, "conversation_events")
                conn.execute(f"SELECT {ensurer}(%s::date, %s::date)", (month, month))


def load_file(
    conn: psycopg.Connection,
    file: LandingFile,
    checksum: str | None = None,
    *,
    run_id: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    on_rows: Callable[[int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    parents_not_loaded: Mapping[str, Sequence[ParentFile]] | None = None,
) -> FileResult:
    """Ingest one file on ``conn`` (which must not be inside a transaction); never raises for bad data.

    ``on_rows`` gets the rows read, chunk by chunk; ``on_step`` a line before the long steps of a
    big file that come before them (:func:`announce`). ``parents_not_loaded``: URLs of the files
    of tables ``file`` references that the run could not load, by table (see the module's doc)."""
    started = time.monotonic()
    result = FileResult(file, checksum, "loaded")
    try:
        # (in the try: a file gone since it was listed, or one we may not read, fails alone)
        result.checksum = checksum = checksum or checksum_of(file, on_step)
        _create_partitions(conn, file, checksum, chunk_bytes, on_step)
        with conn.transaction():
            conn.execute("SET LOCAL work_mem = '64MB'")
            # A killed loader's server process notices the dead client within seconds instead of
            # finishing its statement first; its transaction is rolled back either way.
            conn.execute("SET LOCAL client_connection_check_interval = '2s'")
            lock_table(conn, file.table)
            earlier = ledger.duplicate_of(conn, file, checksum)
            if earlier:
                result.status, result.duplicate_of = "duplicate", earlier[1]
                result.file_id = ledger.record(
                    conn, file, checksum, status="duplicate", run_id=run_id, duplicate_of=earlier[0]
                )
                return result
            result.file_id = ledger.start(conn, file, checksum, run_id)
            load = _FileLoad(conn, file, result.file_id, parents_not_loaded)
            load.run(chunk_bytes, on_rows)
            result.rows_changed, result.rows_superseded = load.rows_changed, load.rows_superseded
            result.rows_in = load.rows_in
            result.seconds_by_step = load.seconds
            result.reasons = load.reasons
            result.rows_rejected = sum(result.reasons.values())
            result.rows_loaded = result.rows_in - result.rows_rejected
            result.validation = load.validator.summary()
            result.rejected_for_parents, result.waiting_for = load.waiting_for(result.reasons)
            if result.rows_in and not result.rows_loaded:
                result.status = "failed"
                result.error = _all_rejected(result)
            ledger.finish(
                conn,
                result.file_id,
                status=result.status,
                rows_in=result.rows_in,
                rows_loaded=result.rows_loaded,
                rows_rejected=result.rows_rejected,
                rows_changed=result.rows_changed,
                rows_superseded=result.rows_superseded,
                validation=result.validation,
                error=result.error,
            )
    except (
        LandingFileError,
        psycopg.DataError,
        psycopg.IntegrityError,
        psycopg.ProgrammingError,
        *NOT_READABLE_BY_US,
        *_BEYOND_POSTGRESQL_LIMITS,
    ) as error:
        _record_failure(conn, result, error, run_id)
    finally:
        result.seconds = time.monotonic() - started
    return result


# The errors that say the file itself is not there or not ours to read: it fails alone (recorded).
# Any other OSError (a connection reset, a timeout, EIO on S3 or NFS) is the store's, not the
# file's: it propagates, the run fails with no ledger row, and the sensor requests the file again.
NOT_READABLE_BY_US = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
# What to do about a failed file, the end of its error (ledger, CLI, Dagster): a fixed file has a
# new checksum, so the sensor picks it up where it was dropped; `ingest PATH` retries at once.
_TO_RETRY = "fix the file, then drop it again or run `{command}`"
# A refusal about the database rather than the file (a table or column missing, a grant): the file is
# not at fault, and the fix is the database's.
_SCHEMA_OR_GRANTS = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.InsufficientPrivilege,
)
_TO_RETRY_AFTER_THE_DATABASE = (
    "check the database (`funnelhouse migrate` applies missing migrations; the loading role needs its "
    "grants), then run `{command}`"
)
# The readers' messages that name their own fix ("close the quote ... and drop the file again").
_OWN_REMEDY = "drop the file again"


def _all_rejected(result: FileResult) -> str:
    """The error of a file whose every row was rejected: what to fix, or what to wait for (rows
    rejected for a key not loaded yet load when the file is loaded again: retry_words)."""
    url = result.file.url
    error = (
        f"{url}: all {result.rows_in} rows rejected ({describe_reasons(result.reasons)}). "
        "The rows and why are in funnelhouse.ingest_rejects"
    )
    references = sum(n for rule, n in result.reasons.items() if rule.startswith("reference:"))
    named = {
        r.table
        for r in CONTRACTS[result.file.table].references
        if result.reasons[f"reference:{r.landing_column}"]
    }
    parts = []
    if result.rejected_for_parents:
        parts.append(
            f"{result.rejected_for_parents} of them name keys missing because "
            f"{waiting_words(result.waiting_for, url)}"
        )
    if unknown := references - result.rejected_for_parents:
        parts.append(
            f"{unknown} of them name keys not loaded yet: {retry_words(url, ' or '.join(sorted(named)))}"
        )
    fix = _TO_RETRY.format(command=ingest_command(url))
    if not parts:  # no row waits for a key: the file itself is to fix
        return f"{error}: {fix}"
    if others := result.rows_rejected - references:
        parts.append(f"for the other {others}, {fix}")
    return f"{error}; " + "; ".join(parts)


def _record_failure(
    conn: psycopg.Connection, result: FileResult, error: Exception, run_id: str | None
) -> None:
    message = shown = str(error)
    if isinstance(error, OSError):
        message = shown = f"{result.file.url}: unreadable: {error}"
    elif isinstance(error, psycopg.Error):
        # The full text stays in the ledger, inside PostgreSQL; its DETAIL can quote the row
        # ("Failing row contains (... e-mail, phone ...)"), so logs and Dagster get the primary
        # message only.
        refused = f"{result.file.url}: PostgreSQL refused the file: "
        message = refused + message.strip()
        shown = refused + (error.diag.message_primary or str(error).strip() or type(error).__name__)
        if error.sqlstate:
            shown += f" (SQLSTATE {error.sqlstate})"
    if _OWN_REMEDY not in message:
        to_retry = _TO_RETRY_AFTER_THE_DATABASE if isinstance(error, _SCHEMA_OR_GRANTS) else _TO_RETRY
        remedy = f". Nothing was loaded: {to_retry.format(command=ingest_command(result.file.url))}"
        message, shown = message.rstrip(". ") + remedy, shown.rstrip(". ") + remedy
    # A NUL (in a column name the error quotes) becomes U+FFFD: PostgreSQL's text cannot hold it,
    # and recording the failure would fail in turn, ending the run with the file unrecorded.
    message, shown = message.replace("\x00", "\ufffd"), shown.replace("\x00", "\ufffd")
    result.status, result.error = "failed", shown
    result.rows_in = result.rows_loaded = result.rows_rejected = result.rows_changed = 0
    result.rows_superseded = result.rejected_for_parents = 0
    result.reasons, result.waiting_for = Counter(), []
    if result.checksum is None:
        return  # never read (gone, or not ours to read): the ledger keys on content, the result tells
    with conn.transaction():
        result.file_id = ledger.record(
            conn, result.file, result.checksum, status="failed", run_id=run_id, error=message
        )


def describe_reasons(reasons: Counter, limit: int = 5) -> str:
    """'3 x tier: not in the allowed set, 1 x age: out of range' (the most frequent first)."""
    shown = [f"{count} x {rule_words(rule)}" for rule, count in reasons.most_common(limit)]
    more = len(reasons) - limit
    return ", ".join(shown) + (f", and {more} more rule(s)" if more > 0 else "")
