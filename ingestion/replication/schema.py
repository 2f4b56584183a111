"""DDL of the ``raw`` database: one ReplacingMergeTree per seed table, and the cursor table.

Column types come from ClickHouse's own reading of the PostgreSQL table (``DESCRIBE`` of the
pulling SELECT), so raw types are exactly what the pull produces and no type map is kept by hand,
except that every timestamp is declared in UTC (:func:`declared_type`), and that a table ClickHouse
cannot describe (a numeric of more than 76 digits) is read through a table declared by ClickHouse's
rules, kept by hand in ``declared_source`` and held to its description by a test.

The pull reads its ``source``: ``connections.source`` (the table function), or the declared table.
"""

from __future__ import annotations

import hashlib
import os
import re

from ingestion.replication.connections import string_literal
from ingestion.replication.tables import RawTable

DEFAULT_DATABASE = "raw"
STATE_TABLE = "_replication_state"
# The columns every pull adds: the row's version (its updated_at), the deletion flag, the load time.
VERSION_EXPRESSIONS = (
    ("_version", "toUInt64(toUnixTimestamp64Micro(updated_at))"),
    ("_is_deleted", "toUInt8(0)"),
    ("_replicated_at", "now64(3)"),
)


# A DateTime or DateTime64(p) without a zone argument (DateTime64 takes its precision first).
_ZONE_LESS_TIMESTAMP = re.compile(r"\bDateTime64\((\d+)\)|\bDateTime\b(?!\()")


def declared_type(column_type: str) -> str:
    """``column_type`` with each timestamp in it declared in UTC: ``DateTime64(6)`` becomes
    ``DateTime64(6, 'UTC')``, ``Nullable(DateTime)`` ``Nullable(DateTime('UTC'))``.

    A stored timestamp is an instant; a column without a zone of its own shows it (``toDate``,
    ``toString``, ``toYYYYMM``) in the zone of the session that created the table only until the
    server restarts, and then in the server's ``<timezone>`` (ClickHouse issue 93613): on a server
    set to Asia/Shanghai, KPI days, partitions and refresh marks would move 8 hours. Declared in
    UTC, they read as UTC on any server. The instants are the same either way: the UTC session
    reads PostgreSQL's ``timestamp without time zone`` values as UTC."""
    return _ZONE_LESS_TIMESTAMP.sub(
        lambda found: f"DateTime64({found[1]}, 'UTC')" if found[1] else "DateTime('UTC')", column_type
    )


def declare_timestamps_in_utc(client, database: str, table: str) -> None:
    """Declare in UTC each timestamp column of ``table`` created without a zone (by an older
    version). Only metadata changes: the stored instants stay, and a column already in UTC is left
    alone, so this is cheap to repeat."""
    columns = client.query(
        "select name, type from system.columns where database = {database:String} and table = {table:String}",
        parameters={"database": database, "table": table},
    ).result_rows
    if changes := [
        f"modify column `{name}` {declared_type(column_type)}"
        for name, column_type in columns
        if declared_type(column_type) != column_type
    ]:
        client.command(f"alter table `{database}`.`{table}` {', '.join(changes)}")


def raw_database() -> str:
    """Where replication writes and dbt's crm source reads (tests use one database each)."""
    return os.environ.get("FUNNELHOUSE_RAW_DATABASE", DEFAULT_DATABASE)


def source_types(client, source: str) -> list[tuple[str, str]]:
    """(name, ClickHouse type) of each column of the PostgreSQL table the pull reads through ``source``."""
    described = client.query(f"describe table {source}").result_rows
    return [(name, column_type) for name, column_type, *_ in described]


def select_list(table: RawTable, source_columns: list[str]) -> list[tuple[str, str]]:
    """(name, expression) pairs the pull selects: the ``source_columns`` the table replicates as they
    are, in the source's order, plus derived. Nothing else: a column is copied only once it is listed."""
    kept = [(name, f"`{name}`") for name in source_columns if name in table.replicated]
    return kept + list(table.derived.items())


def unclassified(table: RawTable, source_columns: list[str]) -> list[str]:
    """The ``source_columns`` neither replicated nor dropped by ``table``: not copied until classified."""
    return [name for name in source_columns if name not in (*table.replicated, *table.dropped)]


def _select_sql(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f"{expression} as `{name}`" for name, expression in columns)


def pull_sql(columns: list[tuple[str, str]], source: str, where: str = "") -> str:
    return f"select {_select_sql([*columns, *VERSION_EXPRESSIONS])} from {source}" + (
        f" where {where}" if where else ""
    )


def definitions(columns: list[tuple[str, str]]) -> dict[str, str]:
    """Each pulled column's definition, kept as its raw column's comment: a digest of the expression
    that fills it. A raw table whose comments differ was filled by another pull (a derived column's
    expression changed since, say a stricter tag filter) and is reloaded; columns recorded without
    one were created by an older version of replication."""
    return {
        name: "pull " + hashlib.sha256(expression.encode()).hexdigest()[:16]
        for name, expression in [*columns, *VERSION_EXPRESSIONS]
    }


def plain_copies(columns: list[tuple[str, str]]) -> set[str]:
    """The pulled columns that copy a source column as it is (the others are derived)."""
    return {name for name, expression in columns if expression == f"`{name}`"}


def create_database(client, database: str) -> None:
    """The raw database and its state table. The cursors are PostgreSQL's wall-clock time in the zone
    the rows are stamped in (``cursor.py``); ``cursor_utc_offset_seconds`` turns them into UTC."""
    client.command(f"create database if not exists `{database}`")
    client.command(
        f"""create table if not exists `{database}`.{STATE_TABLE} (
            table_name String,
            rows_cursor DateTime64(6, 'UTC'),
            deletions_cursor DateTime64(6, 'UTC'),
            rows_copied UInt64,
            tombstones UInt64,
            recorded_at DateTime64(6, 'UTC') default now64(6),
            changed_at DateTime64(6, 'UTC') default recorded_at,
            live_rows Nullable(UInt64),
            replicated_through_ms Nullable(Int64),
            cursor_utc_offset_seconds Int32 default 0
        ) engine = ReplacingMergeTree(recorded_at) order by table_name"""
    )
    # State tables created before changed_at / live_rows / replicated_through existed: their rows
    # count as changed when recorded, their live rows as unknown (counted by the next run), and
    # their committed watermark as unknown (the models then rebuild what depends on them), and their
    # cursors as UTC (what freshness took them for; the next run records the real offset).
    client.command(
        f"alter table `{database}`.{STATE_TABLE} "
        "add column if not exists changed_at DateTime64(6, 'UTC') default recorded_at, "
        "add column if not exists live_rows Nullable(UInt64), "
        "add column if not exists replicated_through_ms Nullable(Int64), "
        "add column if not exists cursor_utc_offset_seconds Int32 default 0"
    )
    declare_timestamps_in_utc(client, database, STATE_TABLE)


def content_fingerprint(client, database: str, name: str) -> tuple[int, int, list[str]]:
    """(rows, hash of every row but its load time, column types): equal fingerprints mean the same
    content, declared the same way. (A snapshot whose timestamps an upgrade declared in UTC counts as
    changed once, so the models built from it are rebuilt with UTC columns too.)

    The row is hashed as one tuple: ``cityHash64(a, b, ...)`` of several arguments is NULL as soon as
    one of them is, which made the sum NULL (and every content change with the same row count
    invisible) for any table with a NULL in each row."""
    rows, content_hash = client.query(
        f"select count(), sum(cityHash64(tuple(* except (_replicated_at)))) from `{database}`.`{name}`"
    ).result_rows[0]
    return rows, content_hash, [column_type for _, column_type in column_types(client, database, name)]


def column_types(client, database: str, name: str) -> list[tuple[str, str]]:
    """(column, ClickHouse type) of each column of a raw table as it stands, in order."""
    return client.query(
        "select name, type from system.columns where database = {database:String} and table = {name:String}"
        " order by position",
        parameters={"database": database, "name": name},
    ).result_rows


def pulled_columns(client, columns: list[tuple[str, str]], source: str) -> list[tuple[str, str]]:
    """(name, ClickHouse type) of each column the pull writes, in order: the type the pull produces,
    with timestamps declared in UTC (:func:`declared_type`)."""
    described = client.query(f"describe ({pull_sql(columns, source)} limit 0)").result_rows
    return [(column, declared_type(column_type)) for column, column_type, *_ in described]


def table_exists(client, database: str, name: str) -> bool:
    return bool(client.query(f"exists table `{database}`.`{name}`").result_rows[0][0])


def existing_definitions(client, database: str, name: str) -> list[tuple[str, str]] | None:
    """(column, definition) of each column of a raw table as it stands, in order; None if there is
    no such table.

    A column declared otherwise than the pull's columns are now (a timestamp without a zone, from
    replication before :func:`declared_type`) has a definition no pull gives: its table is reloaded
    once, into columns declared in UTC."""
    if not table_exists(client, database, name):
        return None
    columns = client.query(
        "select name, comment, type from system.columns"
        " where database = {database:String} and table = {name:String} order by position",
        parameters={"database": database, "name": name},
    ).result_rows
    return [
        (
            column,
            comment if declared_type(column_type) == column_type else f"{comment} declared as {column_type}",
        )
        for column, comment, column_type in columns
    ]


def create_table(
    client,
    database: str,
    table: RawTable,
    pulled: list[tuple[str, str]],
    column_definitions: dict[str, str],
    name: str = "",
) -> None:
    """The raw table for the columns the pull writes (``pulled_columns``), each with its definition
    (``definitions``), unless it exists."""
    column_ddl = ",\n    ".join(
        f"`{column}` {column_type} comment {string_literal(column_definitions[column])}"
        for column, column_type in pulled
    )
    partition = f" partition by {table.partition_by}" if table.partition_by else ""
    client.command(
        f"create table if not exists `{database}`.`{name or table.name}` (\n    {column_ddl}\n)"
        f" engine = ReplacingMergeTree(_version, _is_deleted){partition} order by id"
    )
