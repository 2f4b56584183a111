"""Tables ClickHouse cannot describe: read through a table declared here, their exotic columns as text.

ClickHouse reads a PostgreSQL table (``postgresql(...)``, ``connections.source``) by describing it
first, each column's type from PostgreSQL's ``format_type`` (fetchPostgreSQLTableStructure in
ClickHouse's source). A ``numeric`` declared with more digits than ClickHouse's widest Decimal holds
(76, Decimal256) has no ClickHouse type, and the description fails for the whole table ("Precision
100 and scale 2 are too big and not supported"): not one of its columns could be read, and one such
column stopped its table. (None of the seed's columns is one; a migration may add one. One without
fraction digits ClickHouse describes as Int256, which fails the pull on any number past 2^255: read
as text as well.)

Such a column is replicated as text (``String``), exactly as PostgreSQL prints it: nothing is lost, a
NaN in it is text like any other (no reason for quarantine), and a model that needs the number casts
it (``toDecimal256OrNull`` keeps 76 digits: only the model knows which digits it can give up). The
other choice, leaving the column out, would have lost its values with nothing in raw to say so. The
column's type in raw (String, Array(Nullable(String)) for an array of them) says it was read as text,
and each run logs a warning naming it.

Such a table is read through a ``PostgreSQL`` engine table in the raw database
(``_source_<table>``), declared with ClickHouse's own reading of its columns (``clickhouse_type``:
ClickHouse's rules, which a test holds equal to its description of every seed table) and String for
the text columns. It holds no data, nor any password (it names the named collection), but whoever
may read raw may select from it while it exists, live from PostgreSQL: so it declares only the
columns the pull reads (``read_columns``: those the pull's select list names, ``schema.select_list``),
never a column that stays in PostgreSQL and no derived column reads (a customer's name or birth date),
nor one not classified yet. It exists while its table is replicated (``Replicator`` drops it
afterwards, and the next run replaces one a run that stopped left behind).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from ingestion.replication import quarantine, schema
from ingestion.replication.connections import string_literal
from ingestion.replication.tables import RawTable

PREFIX = "_source_"
# Digits of ClickHouse's widest Decimal (Decimal256): a numeric declared with more has no ClickHouse type.
MAX_DECIMAL_DIGITS = 76
# ClickHouse's reading of PostgreSQL's types as ``format_type`` names them (an array's elements less
# their "[]"), when it describes a table; what is not here, it reads as text (String).
_CLICKHOUSE_TYPES = {
    "smallint": "Int16",
    "integer": "Int32",
    "bigint": "Int64",
    "boolean": "UInt8",
    "real": "Float32",
    "double precision": "Float64",
    "date": "Date32",
    "uuid": "UUID",
    "numeric": "Decimal(38, 19)",  # no declared precision: a Decimal of ClickHouse's choosing
}
_DECLARED_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")


@dataclass(frozen=True)
class Declared:
    """How a table ClickHouse cannot describe is read."""

    # (name, ClickHouse type) of each of its columns, in order.
    columns: list[tuple[str, str]] = field(default_factory=list)
    # Column -> its PostgreSQL type, of each column ClickHouse has no type for: read as text.
    as_text: dict[str, str] = field(default_factory=dict)


def clickhouse_type(pg_type: str, not_null: bool, dimensions: int) -> tuple[str, bool]:
    """(ClickHouse type, whether it is text because ClickHouse has none) of a PostgreSQL column of
    ``format_type`` ``pg_type``, as ClickHouse describes it: Nullable unless declared NOT NULL (an
    array's elements, for an array), and an Array per dimension (``attndims``; 0, which an array
    created by ``create table ... as`` may have, counts as 1: ClickHouse would count the first row's)."""
    element = pg_type.removesuffix("[]" * pg_type.count("[]"))
    declared = _DECLARED_NUMERIC.fullmatch(element)
    as_text = declared is not None and int(declared[1]) > MAX_DECIMAL_DIGITS
    if as_text:
        column_type = "String"
    elif declared is not None:
        column_type = f"Decimal({declared[1]}, {declared[2]})"
    elif element.startswith("timestamp"):
        column_type = "DateTime64(6)"
    else:
        column_type = _CLICKHOUSE_TYPES.get(element, "String")
    if not not_null:
        column_type = f"Nullable({column_type})"
    for _ in range(max(dimensions, 1) if element != pg_type else 0):
        column_type = f"Array({column_type})"
    return column_type, as_text


def columns(pg_dsn: str) -> dict[str, list[tuple[str, str, str, bool]]]:
    """Table -> (name, PostgreSQL type, ClickHouse type, read as text) of each of its columns, in
    order (``clickhouse_type``), for every table of the public schema."""
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attndims"
            " from pg_attribute a"
            " join pg_class c on c.oid = a.attrelid and c.relnamespace = 'public'::regnamespace"
            " where c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped"
            " order by c.relname, a.attnum"
        ).fetchall()
    described: dict[str, list[tuple[str, str, str, bool]]] = {}
    for table, name, pg_type, not_null, dimensions in rows:
        described.setdefault(table, []).append(
            (name, pg_type, *clickhouse_type(pg_type, not_null, dimensions))
        )
    return described


def tables_without_description(pg_dsn: str) -> dict[str, Declared]:
    """Table -> how it is read (``Declared``), of each table with a column ClickHouse has no type
    for. Read once per run, for every table."""
    return {
        table: Declared(
            columns=[(name, column_type) for name, _, column_type, _ in described],
            as_text={name: pg_type for name, pg_type, _, as_text in described if as_text},
        )
        for table, described in columns(pg_dsn).items()
        if any(as_text for *_, as_text in described)
    }


def name(table: str) -> str:
    """The raw database's table that reads the PostgreSQL table ``table`` while it is replicated."""
    return f"{PREFIX}{table}"


def read_columns(table: RawTable, declared: Declared) -> list[tuple[str, str]]:
    """(name, ClickHouse type) of each of ``declared``'s columns the pull of ``table`` reads, in
    order: those its select list (``schema.select_list``, the version columns included) names, found
    as the quarantine check finds them (``quarantine.read_by_pull``). ``id``, which the pull's
    conditions name, is replicated by every table."""
    select_list = [
        *schema.select_list(table, [name for name, _ in declared.columns]),
        *schema.VERSION_EXPRESSIONS,
    ]
    return quarantine.read_by_pull(declared.columns, [expression for _, expression in select_list])


def create(client, database: str, table: RawTable, declared: Declared, collection: str) -> str:
    """Declare the table that reads ``table`` through the named collection ``collection``, with the
    columns its pull reads (``read_columns``), replacing one a run that stopped left behind; its
    qualified name."""
    qualified = f"`{database}`.`{name(table.name)}`"
    column_ddl = ", ".join(
        f"`{column}` {column_type}" for column, column_type in read_columns(table, declared)
    )
    client.command(
        f"create or replace table {qualified} ({column_ddl})"
        f" engine = PostgreSQL({collection}, table = {string_literal(table.name)})"
    )
    return qualified


def drop_leftovers(client, database: str, keep: Iterable[str]) -> None:
    """Drop each declared table in ``database`` that a run which stopped left behind for a table not in
    ``keep`` (one ClickHouse can describe again, say its wide column was dropped since), which no run
    would replace: it would go on reading PostgreSQL. Those of ``keep`` are replaced by ``create``
    (and may be in use by a concurrent run)."""
    leftovers = client.query(
        "select name from system.tables where database = {database:String} and startsWith(name, {prefix:String})",
        parameters={"database": database, "prefix": PREFIX},
    ).result_rows
    for (leftover,) in leftovers:
        if leftover.removeprefix(PREFIX) not in keep:
            client.command(f"drop table if exists `{database}`.`{leftover}`")
