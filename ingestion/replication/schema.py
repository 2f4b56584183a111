"""DDL of the ``raw`` database: one ReplacingMergeTree per seed table, and the cursor table.

Column types come from ClickHouse's own reading of the PostgreSQL table (``DESCRIBE`` of the
pulling SELECT), so raw types are exactly what the pull produces and no type map is kept by hand.
"""

from __future__ import annotations

import os

from ingestion.replication.connections import source
from ingestion.replication.tables import RawTable

DEFAULT_DATABASE = "raw"
STATE_TABLE = "_replication_state"
VERSION_COLUMNS = ("_version", "_is_deleted", "_replicated_at")


def raw_database() -> str:
    """Where replication writes and dbt's crm source reads (tests use one database each)."""
    return os.environ.get("FUNNELHOUSE_RAW_DATABASE", DEFAULT_DATABASE)


def select_list(client, table: RawTable, collection: str) -> list[tuple[str, str]]:
    """(name, expression) pairs the pull selects: source columns minus the dropped ones, plus derived."""
    described = client.query(f"describe table {source(table.name, collection)}").result_rows
    kept = [(name, f"`{name}`") for name, *_ in described if name not in table.dropped]
    return kept + list(table.derived.items())


def _select_sql(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f"{expression} as `{name}`" for name, expression in columns)


def pull_sql(table: RawTable, columns: list[tuple[str, str]], collection: str, where: str = "") -> str:
    return (
        f"select {_select_sql(columns)}, toUInt64(toUnixTimestamp64Micro(updated_at)) as _version, "
        f"toUInt8(0) as _is_deleted, now64(3) as _replicated_at "
        f"from {source(table.name, collection)}" + (f" where {where}" if where else "")
    )


def create_database(client, database: str) -> None:
    client.command(f"create database if not exists `{database}`")
    client.command(
        f"""create table if not exists `{database}`.{STATE_TABLE} (
            table_name String,
            rows_cursor DateTime64(6),
            deletions_cursor DateTime64(6),
            rows_copied UInt64,
            tombstones UInt64,
            recorded_at DateTime64(6) default now64(6),
            changed_at DateTime64(6) default recorded_at,
            live_rows Nullable(UInt64),
            replicated_through_ms Nullable(Int64)
        ) engine = ReplacingMergeTree(recorded_at) order by table_name"""
    )
    # State tables created before changed_at / live_rows / replicated_through existed: their rows
    # count as changed when recorded, their live rows as unknown (counted by the next run), and
    # their committed watermark as unknown (the models then rebuild what depends on them).
    client.command(
        f"alter table `{database}`.{STATE_TABLE} "
        "add column if not exists changed_at DateTime64(6) default recorded_at, "
        "add column if not exists live_rows Nullable(UInt64), "
        "add column if not exists replicated_through_ms Nullable(Int64)"
    )


def content_fingerprint(client, database: str, name: str) -> tuple[int, int]:
    """(rows, hash of every row but its load time): equal fingerprints mean the same content."""
    return client.query(
        f"select count(), sum(cityHash64(* except (_replicated_at))) from `{database}`.`{name}`"
    ).result_rows[0]


def pulled_columns(
    client, table: RawTable, columns: list[tuple[str, str]], collection: str
) -> list[tuple[str, str]]:
    """(name, ClickHouse type) of each column the pull writes, in order."""
    described = client.query(f"describe ({pull_sql(table, columns, collection)} limit 0)").result_rows
    return [(column, column_type) for column, column_type, *_ in described]


def existing_columns(client, database: str, name: str) -> list[str] | None:
    """The columns of a raw table as it stands, None if there is none."""
    if not client.query(f"exists table `{database}`.`{name}`").result_rows[0][0]:
        return None
    return [column for column, *_ in client.query(f"describe table `{database}`.`{name}`").result_rows]


def create_table(
    client, database: str, table: RawTable, pulled: list[tuple[str, str]], name: str = ""
) -> None:
    """The raw table for the columns the pull writes (``pulled_columns``), unless it exists."""
    column_ddl = ",\n    ".join(f"`{column}` {column_type}" for column, column_type in pulled)
    partition = f" partition by {table.partition_by}" if table.partition_by else ""
    client.command(
        f"create table if not exists `{database}`.`{name or table.name}` (\n    {column_ddl}\n)"
        f" engine = ReplacingMergeTree(_version, _is_deleted){partition} order by id"
    )
