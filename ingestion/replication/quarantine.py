"""Rows ClickHouse cannot read: kept out of the pull and listed in ``raw._replication_quarantine``.

PostgreSQL's ``timestamp`` and ``date`` hold 'infinity' and '-infinity', its ``numeric`` 'NaN' (and
'Infinity' without a declared precision); ClickHouse's DateTime64, Date and Decimal have no such value,
and a pull that meets one fails whole ("Cannot parse PostgreSQL value 'infinity' as DateTime64(6)"):
one such row, written by the CRM app or an operator (landing files cannot carry one: the loader
refuses it), stopped its table's replication for good. Other dates and times arrive changed without
an error (measured with ClickHouse 26.9, whose Date32 and DateTime64 span 0001-01-01 to 9999-12-31:
``tests/warehouse/test_replication_date_range.py``): one BC as the same year AD ('0044-03-15 BC' as
0044-03-15), one after 9999 as a day or an instant of 1970 (a date as 1970-01-01, '10000-01-01
00:00' as 1970-01-01 02:46:40), and, inside a ``timestamp[]`` or ``timestamptz[]``, one before 1970
as 1970-01-01 00:00:00; a row whose ``updated_at`` lies before 1970 or after 9999 is in no window of
the pull (they start at 1970) and never arrived. (A ``timestamptz`` arrives as its wall clock in the
TimeZone ClickHouse's PostgreSQL session starts with, the offset dropped: its range is of that wall
clock. Floats' NaN is read without an error.) A ``numeric`` declared without a precision holds
numbers of any length, which ClickHouse reads into a Decimal(P, S) of its own choosing (Decimal(38,
19) in ClickHouse 26): more than P - S integer digits fail the pull ("Decimal value is too big"), and
fraction digits beyond S are cut off without a word, so such a number is unreadable too (a column
with a declared precision maps to a Decimal that holds all its values). Arrays of them are no
different: a NaN or an overlong number in a ``numeric[]`` fails the pull, an infinity in a
``timestamp[]`` too, and one in a ``date[]`` or ``timestamptz[]`` arrives as 1970-01-01 without an
error. So before each pull the rows it would read are checked on the PostgreSQL side, each
timestamp, date and numeric column the pull reads, and each element of an array of them, by the same
test per type (a date or time outside the range ClickHouse stores as it is, infinities included;
NaN; a number longer than its Decimal); their ids are left out of the pull (``id not in (...)``, a
condition ClickHouse hands to PostgreSQL: see ``exclusion``), and each is recorded here with nothing of
the row but its id (data protection; a reason names a date's column, type and range, a number's digit
counts, never the value): table, id, column, reason, when it was quarantined and when resolved.

What the check reads is bounded by what the pull reads: an incremental pull's window (``updated_at``
in ``[start, bound)``, found through the ``(updated_at, id)`` index every seed table has), the rows
whose ``updated_at`` is outside every window (infinite, before 1970 or after 9999; the same index
finds them), and the rows already in quarantine (by id). A quarantined row does not hold the cursor
back: it is looked at again by id on every run until it can be read. Fixed in PostgreSQL (its
``updated_at`` moves into a later window) it is pulled, and its entry is marked resolved; one fixed
without its ``updated_at`` moving (triggers bypassed) is pulled by id. A quarantined row deleted from
PostgreSQL is resolved too (its deletion reaches raw as a tombstone). Until then raw keeps the row's
last readable version, if it had one.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import psycopg
from psycopg import sql

from ingestion.replication.connections import as_utc
from ingestion.replication.cursor import EPOCH, STAMP_ZONE

TABLE = "_replication_quarantine"
CURSOR_COLUMN = "updated_at"
# The type ``checkable_columns`` gives a ``numeric`` column declared without a precision.
UNCONSTRAINED_NUMERIC = "numeric without precision"
# What ``checkable_columns`` appends to the type of an array column's elements: "date[]".
ARRAY = "[]"
_NOT_A_NUMBER = ("NaN", "Infinity", "-Infinity")
_INFINITE = ("infinity", "-infinity")
_DATE = "date"
_TIMESTAMP = "timestamp without time zone"
_TIMESTAMPTZ = "timestamp with time zone"
_NUMBERS = ("numeric", UNCONSTRAINED_NUMERIC)
# The types (as ``format_type`` names them) whose values, or an array's elements, may be unreadable.
CHECKED_TYPES = (_TIMESTAMP, _TIMESTAMPTZ, _DATE, *_NUMBERS)


class _Range(NamedTuple):
    """The dates or times ClickHouse stores as PostgreSQL holds them: from ``first`` up to ``past``
    (excluded), on the wall clock ClickHouse reads; ``shown`` in reasons, with what becomes of the
    others (``otherwise``)."""

    first: str
    past: str
    shown: str
    otherwise: str


_LAST_TIME = "9999-12-31 23:59:59.999999"
_DAYS = _Range(
    "0001-01-01",
    "10000-01-01",
    "0001-01-01 .. 9999-12-31",
    "a date BC arrives as the same year AD, a later one as 1970-01-01",
)
_TIMES = _Range(
    "0001-01-01 00:00:00",
    "10000-01-01 00:00:00",
    f"0001-01-01 00:00:00 .. {_LAST_TIME}",
    "a time BC arrives as the same year AD, a later one as a time of 1970",
)
# An array's times are read otherwise than a column's: none before 1970 (ClickHouse's epoch).
_TIMES_IN_ARRAY = _TIMES._replace(
    first=EPOCH.isoformat(sep=" "),
    shown=f"{EPOCH.isoformat(sep=' ')} .. {_LAST_TIME}",
    otherwise="in an array, an earlier time arrives as 1970-01-01 00:00:00, a later one as a time of 1970",
)
# updated_at's are those of the pull's windows, which start at the cursor's EPOCH (1970).
_CURSOR_RANGE = _TIMES_IN_ARRAY._replace(
    otherwise="a row stamped otherwise is in no window of the pull and never arrives"
)
# (type, in an array) -> the values of a date or time type ClickHouse stores as they are.
_READABLE = {
    (_DATE, False): _DAYS,
    (_DATE, True): _DAYS,
    (_TIMESTAMP, False): _TIMES,
    (_TIMESTAMP, True): _TIMES_IN_ARRAY,
    (_TIMESTAMPTZ, False): _TIMES,
    (_TIMESTAMPTZ, True): _TIMES_IN_ARRAY,
}
_DECIMAL = re.compile(r"\bDecimal\((\d+),\s*(\d+)\)")

log = logging.getLogger(__name__)


@dataclass
class Check:
    """What the check before one pull of a table found."""

    # (id, column) -> reason of each unreadable value in the rows this pull would read, or in rows
    # already in quarantine.
    unreadable: dict[tuple[int, str], str] = field(default_factory=dict)
    # Rows in quarantine that can be read now and are pulled by this run (or gone from PostgreSQL).
    resolved: set[int] = field(default_factory=set)
    # Of those, the rows whose updated_at lies before the window (fixed without it moving): pulled by id.
    behind_window: list[int] = field(default_factory=list)
    # Rows in quarantine that can be read now but changed after the run's bound: the next run pulls them.
    pending: set[int] = field(default_factory=set)
    # The table's entries in quarantine before this run (``open_entries``).
    entries: dict[tuple[int, str], tuple[str, dt.datetime]] = field(default_factory=dict)

    @property
    def held_back(self) -> list[int]:
        """The ids this pull leaves out."""
        return sorted({row_id for row_id, _ in self.unreadable})

    @property
    def in_quarantine(self) -> int:
        """Rows of the table in quarantine once this run is done."""
        return len(set(self.held_back) | self.pending)


def create_table(client, database: str) -> None:
    """One entry per (table, row, column), its newest version (``recorded_at``) standing: quarantining
    a row again and resolving it write new versions of the same entry, so re-runs add nothing."""
    client.command(
        f"""create table if not exists `{database}`.{TABLE} (
            table_name String,
            row_id Int64,
            column_name String,
            reason String,
            quarantined_at DateTime64(6, 'UTC'),
            resolved_at Nullable(DateTime64(6, 'UTC')),
            recorded_at DateTime64(6, 'UTC')
        ) engine = ReplacingMergeTree(recorded_at) order by (table_name, row_id, column_name)"""
    )


def open_entries(client, database: str) -> dict[str, dict[tuple[int, str], tuple[str, dt.datetime]]]:
    """Table -> (id, column) -> (reason, quarantined_at) of the rows in quarantine now: read once per
    run (a table is replicated once in a run, and only its own run settles its entries)."""
    rows = client.query(
        f"select table_name, row_id, column_name, reason, quarantined_at from `{database}`.{TABLE} final"
        " where resolved_at is null"
    ).result_rows
    entries: dict[str, dict[tuple[int, str], tuple[str, dt.datetime]]] = {}
    for table, row_id, column, reason, quarantined_at in rows:
        entries.setdefault(table, {})[(row_id, column)] = (reason, quarantined_at)
    return entries


def checkable_columns(pg_dsn: str) -> dict[str, list[tuple[str, str]]]:
    """Table -> (name, type) of its timestamp, date and numeric columns and of its arrays of them, in
    order: where a value ClickHouse cannot read may be. A numeric without a declared precision is
    UNCONSTRAINED_NUMERIC, an array's type its elements' followed by ARRAY ("date[]", however many
    dimensions it has: ``unnest`` takes all apart). Read once per run, for every table. (A domain
    over such a type is none of them: ClickHouse reads it as text.)"""
    with psycopg.connect(pg_dsn) as conn:
        typed = conn.execute(
            """select table_name, column_name, element_type || case when is_array then %s else '' end
            from (
                select c.relname as table_name, a.attname as column_name, a.attnum,
                    t.typcategory = 'A' as is_array,
                    case when e.oid = 'numeric'::regtype and a.atttypmod = -1 then %s
                        else format_type(e.oid, null) end as element_type
                from pg_attribute a
                join pg_class c on c.oid = a.attrelid and c.relnamespace = 'public'::regnamespace
                join pg_type t on t.oid = a.atttypid
                join pg_type e on e.oid = case when t.typcategory = 'A' then t.typelem else t.oid end
                where a.attnum > 0 and not a.attisdropped
            ) as columns
            where element_type = any(%s) order by table_name, attnum""",
            (ARRAY, UNCONSTRAINED_NUMERIC, list(CHECKED_TYPES)),
        ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, name, data_type in typed:
        columns.setdefault(table, []).append((name, data_type))
    return columns


def _element_type(data_type: str) -> tuple[str, bool]:
    """(the type of the values, whether they are an array's elements) of a ``checkable_columns`` type."""
    return data_type.removesuffix(ARRAY), data_type.endswith(ARRAY)


def unconstrained(data_type: str) -> bool:
    """Whether a ``checkable_columns`` type holds numbers ClickHouse reads into a Decimal of its own
    choosing: a numeric without a declared precision, or an array of them."""
    return _element_type(data_type)[0] == UNCONSTRAINED_NUMERIC


def decimals(clickhouse_types: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """Column -> (precision, scale) of each column ClickHouse reads as a Decimal, of its description
    of the PostgreSQL table (name -> type, ``Nullable(Decimal(38, 19))``)."""
    return {
        name: (int(found[1]), int(found[2]))
        for name, clickhouse_type in clickhouse_types.items()
        if (found := _DECIMAL.search(clickhouse_type))
    }


def read_by_pull(checkable: list[tuple[str, str]], expressions: Iterable[str]) -> list[tuple[str, str]]:
    """Of a table's ``checkable`` columns, those the pull reads: named by one of the select list's
    ``expressions``, or the cursor column (``_version`` is computed from it). ClickHouse asks
    PostgreSQL for those columns only, so an infinity elsewhere (a dropped birth date) harms nothing."""
    read = " ".join(expressions)
    return [
        (name, data_type)
        for name, data_type in checkable
        if name == CURSOR_COLUMN or re.search(rf"\b{re.escape(name)}\b", read)
    ]


def check(
    conn: psycopg.Connection,
    table: str,
    columns: list[tuple[str, str]],
    window: tuple[dt.datetime, dt.datetime] | None,
    entries: dict[tuple[int, str], tuple[str, dt.datetime]],
    read_as: Mapping[str, tuple[int, int]] | None = None,
) -> Check:
    """Look for unreadable values in the rows a pull of ``window`` (``[start, bound)`` of
    ``updated_at``; None: the whole table, a snapshot) would read, in the ``columns`` it reads
    (``read_by_pull``), and look again at the table's rows in quarantine (``entries``, of
    ``open_entries``). ``read_as``: the Decimal (precision, scale) ClickHouse reads each
    UNCONSTRAINED_NUMERIC column (or array of them) as (``decimals``); a number too long for it is
    unreadable."""
    read_as = {
        column: read_as[column]
        for column, data_type in columns
        if unconstrained(data_type) and column in (read_as or {})
    }
    in_quarantine = sorted({row_id for row_id, _ in entries})
    start, bound = window or (None, None)
    if not columns:
        return Check(resolved=set(in_quarantine), entries=entries)  # nothing it reads can be unreadable
    rows = conn.execute(
        check_query(table, columns, windowed=window is not None, read_as=read_as),
        {"start": start, "bound": bound, "in_quarantine": in_quarantine},
    ).fetchall()
    found = Check(entries=entries)
    types = dict(columns)
    readable: dict[int, tuple[bool, bool]] = {}
    for row_id, before_window, before_bound, column, value in rows:
        if column is None:
            readable[row_id] = (bool(before_window), bool(before_bound))
        else:
            found.unreadable[(row_id, column)] = _reason(column, types[column], value, read_as.get(column))
    still_unreadable = set(found.held_back)
    for row_id in in_quarantine:
        if row_id in still_unreadable:
            continue
        if row_id in readable and window is not None:
            before_window, before_bound = readable[row_id]
            if not before_bound:
                found.pending.add(row_id)
                continue
            if before_window:
                found.behind_window.append(row_id)
        found.resolved.add(row_id)  # readable and pulled now, or no longer in PostgreSQL
    return found


def check_query(
    table: str,
    columns: list[tuple[str, str]],
    windowed: bool,
    read_as: Mapping[str, tuple[int, int]] | None = None,
) -> sql.Composed:
    """(id, updated_at before the window, before the bound, column, value) of each unreadable value of
    ``columns`` in the rows of the window (``windowed``; else the whole table), in the rows whose
    updated_at is infinite, and in the rows in quarantine; and a row without column for each row in
    quarantine that can be read. What it reads is what the pull reads: the window's rows, through the
    ``(updated_at, id)`` index; the infinite ones, through the same index; and the quarantined ones,
    through the primary key. ``read_as``: as in ``check``."""
    cursor = sql.Identifier(CURSOR_COLUMN)
    # Column -> the first value of it that ClickHouse cannot read, as text (NULL if there is none).
    unreadable = {
        column: _first_unreadable(column, data_type, (read_as or {}).get(column))
        for column, data_type in columns
    }
    tests = sql.SQL(", ").join(
        sql.SQL("({name}, {value})").format(name=sql.Literal(column), value=value)
        for column, value in unreadable.items()
    )
    in_window = (
        sql.SQL("(t.{cursor} >= %(start)s and t.{cursor} < %(bound)s)").format(cursor=cursor)
        if windowed
        else sql.SQL("true")
    )
    # The rows' test first, so that only the rows it finds are taken apart column by column.
    all_readable = sql.SQL(" and ").join(
        sql.SQL("{value} is null").format(value=value) for value in unreadable.values()
    )
    # A row stamped outside the cursor's range (infinite, before 1970, after 9999) is in no window.
    outside_every_window = _unreadable(
        sql.SQL("t.") + cursor, CURSOR_COLUMN, dict(columns).get(CURSOR_COLUMN, _TIMESTAMP)
    )
    return sql.SQL(
        """select t.id, t.{cursor} < %(start)s, t.{cursor} < %(bound)s, bad.column_name, bad.value
        from public.{table} t
        left join lateral (select * from (values {tests}) as v(column_name, value) where value is not null)
            as bad on true
        where ({in_window} or {outside_every_window} or t.id = any(%(in_quarantine)s::bigint[]))
            and (not ({all_readable}) or t.id = any(%(in_quarantine)s::bigint[]))
            and (bad.value is not null or t.id = any(%(in_quarantine)s::bigint[]))"""
    ).format(
        cursor=cursor,
        table=sql.Identifier(table),
        tests=tests,
        in_window=in_window,
        outside_every_window=outside_every_window,
        all_readable=all_readable,
    )


def _first_unreadable(column: str, data_type: str, read_as: tuple[int, int] | None) -> sql.Composed:
    """An expression over the row ``t``: the first value of ``column`` (of the ``checkable_columns``
    type ``data_type``) that ClickHouse cannot read, as text, or NULL. A column's value is tested as
    it is, an array's elements one by one, by the same test of their type (``_unreadable``)."""
    in_array = _element_type(data_type)[1]
    value = sql.SQL("element") if in_array else sql.SQL("t.") + sql.Identifier(column)
    test = _unreadable(value, column, data_type, read_as)
    if in_array:
        return sql.SQL(
            "(select element::text from unnest(t.{column}) as element where {test} limit 1)"
        ).format(column=sql.Identifier(column), test=test)
    return sql.SQL("case when {test} then {value}::text end").format(test=test, value=value)


def _unreadable(
    value: sql.Composable, column: str, data_type: str, read_as: tuple[int, int] | None = None
) -> sql.Composed:
    """The test of a ``value`` of ``column`` (the column's own, or an element of it, an array of the
    ``checkable_columns`` type ``data_type``) that ClickHouse cannot store as PostgreSQL holds it: a
    date or time outside its range (``_readable_range``; infinities are outside every range), a number
    'NaN' or infinite (compared as text: 'Infinity'::numeric is not valid input before PostgreSQL 14)
    or too long for the Decimal ``read_as`` ClickHouse reads an unconstrained number as."""
    element_type = _element_type(data_type)[0]
    if element_type in _NUMBERS:
        test = sql.SQL("{value}::text in ('NaN', 'Infinity', '-Infinity')").format(value=value)
        if read_as is None:
            return test
        return sql.SQL("{test} or {too_long}").format(test=test, too_long=_too_long_for(value, *read_as))
    readable = _readable_range(column, data_type)
    if element_type == _TIMESTAMPTZ:  # ClickHouse reads its wall clock in the zone sessions start with
        value = sql.SQL("({value} at time zone {zone})").format(value=value, zone=sql.SQL(STAMP_ZONE))
    return sql.SQL("({value} < {first} or {value} >= {past})").format(
        value=value, first=sql.Literal(readable.first), past=sql.Literal(readable.past)
    )


def _readable_range(column: str, data_type: str) -> _Range:
    """The dates or times of ``column`` (of the date or time ``checkable_columns`` type ``data_type``)
    ClickHouse stores as they are; the cursor column's are those the pull's windows hold."""
    return _CURSOR_RANGE if column == CURSOR_COLUMN else _READABLE[_element_type(data_type)]


def _too_long_for(value: sql.Composable, precision: int, scale: int) -> sql.Composed:
    """A test of a number ``value`` that ClickHouse's Decimal(``precision``, ``scale``) cannot hold:
    more integer digits than it has (the pull fails), or more fraction digits than it keeps, trailing
    zeros aside (cut off without an error)."""
    return sql.SQL("abs({value}) >= {limit} or min_scale({value}) > {scale}").format(
        value=value, limit=sql.Literal(10 ** (precision - scale)), scale=sql.Literal(scale)
    )


def _reason(column: str, data_type: str, value: str, read_as: tuple[int, int] | None = None) -> str:
    """Why ``column`` (of the ``checkable_columns`` type ``data_type``) is unreadable, its ``value``
    named only if it is infinite or not a number (no data of the row's)."""
    what = "cursor column" if column == CURSOR_COLUMN else "column"
    element_type, in_array = _element_type(data_type)
    if value in _INFINITE + _NOT_A_NUMBER:
        where = f"holds {value} in its array" if in_array else f"is {value}"
        return f"{what} {column} {where}, which ClickHouse cannot read (no infinite or NaN timestamp, date or decimal)"
    if element_type not in _NUMBERS:
        readable = _readable_range(column, data_type)
        wall_clock = " (its wall clock in PostgreSQL's TimeZone)" if element_type == _TIMESTAMPTZ else ""
        return (
            f"{what} {column} ({data_type}) holds{' in its array' if in_array else ''} a value outside"
            f" {readable.shown}{wall_clock}, the range ClickHouse stores as it is ({readable.otherwise})"
        )
    # The digits are counted, the number itself is not recorded: it is the row's data.
    precision, scale = read_as
    integer_part, _, fraction_part = value.lstrip("-").partition(".")
    return (
        f"{what} {column} holds{' in its array' if in_array else ''} a number of {len(integer_part.lstrip('0'))} integer and"
        f" {len(fraction_part.rstrip('0'))} fraction digits, beyond the Decimal({precision}, {scale})"
        f" ClickHouse reads the column as (no declared precision): at most {precision - scale} integer digits"
        f" (more fail the pull) and {scale} fraction digits (more would be cut off)"
    )


def exclusion(ids: list[int]) -> str:
    """The pull's condition that leaves ``ids`` out: a literal list, which ClickHouse hands to
    PostgreSQL with the rest of the WHERE clause (an array parameter it would evaluate itself, after
    reading, and failing to parse, every row). The pulls insist on it (``external_table_strict_query``)."""
    return f"id not in ({_listed(ids)})" if ids else ""


def inclusion(ids: list[int]) -> str:
    """The pull's condition that takes ``ids`` only (the rows behind the window: ``Check.behind_window``)."""
    return f"id in ({_listed(ids)})"


def _listed(ids: Iterable[int]) -> str:
    return ", ".join(str(int(row_id)) for row_id in ids)


def settle(client, database: str, table: str, found: Check, now: dt.datetime) -> None:
    """After the pull: record the rows it left out, and resolve the entries of rows it pulled (or that
    are gone, or whose column is fixed while another is not). An entry already recorded as it is keeps
    its version: re-runs write nothing."""
    entries = found.entries
    rows = [
        [table, row_id, column, reason, as_utc(now), None, as_utc(now)]
        for (row_id, column), reason in found.unreadable.items()
        if entries.get((row_id, column), (None,))[0] != reason
    ]
    still_unreadable = set(found.held_back)
    rows += [
        [table, row_id, column, reason, as_utc(quarantined_at), as_utc(now), as_utc(now)]
        for (row_id, column), (reason, quarantined_at) in entries.items()
        if row_id in found.resolved
        or (row_id in still_unreadable and (row_id, column) not in found.unreadable)
    ]
    if rows:
        client.insert(
            f"{database}.{TABLE}",
            rows,
            column_names=[
                "table_name",
                "row_id",
                "column_name",
                "reason",
                "quarantined_at",
                "resolved_at",
                "recorded_at",
            ],
        )
    if found.held_back:
        log.warning(
            "%s: %d row(s) ClickHouse cannot read were left out of the pull and quarantined (%s.%s), "
            "e.g. id %d: %s",
            table,
            len(found.held_back),
            database,
            TABLE,
            found.held_back[0],
            next(reason for (row_id, _), reason in found.unreadable.items() if row_id == found.held_back[0]),
        )
