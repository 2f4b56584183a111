"""The SQL of a table's load (:class:`MergePlan`): staging, the checks run over the staged rows,
the merge by natural key, derived from the table's contract and PostgreSQL's catalog.

Kept apart from :mod:`ingestion.load.loader`, which runs it in a file's transaction, so that the SQL
can be read (and tested) without the threads and the ledger around it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import psycopg

from ingestion.contracts import Reference, TableContract
from ingestion.load import ledger
from ingestion.load.messages import ParentWords, older_batch_reason, retry_words
from ingestion.load.partitions import PARTITION_COLUMNS
from ingestion.load.validate import DbColumn

STAGE = "_funnelhouse_stage"
# The keys of the rows rejected from files of referenced tables that failed in the run (ParentFile):
# what a reject reason names a failed parent file by, built in the file's transaction.
PARENT_KEYS = "_funnelhouse_parent_keys"


def q(name: str) -> str:
    """A quoted identifier; column names come from the contract (some are Chinese: ``is_反问``)."""
    return '"' + name.replace('"', '""') + '"'


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


def _literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
