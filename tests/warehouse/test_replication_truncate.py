"""A TRUNCATE in PostgreSQL reaches ClickHouse: it fires no row-level trigger, so it leaves no
tombstones, only a marker (migration 0023), and replication then reloads the table whole, with a
tombstone for every row gone; the incremental models drop those rows on the next build."""

from __future__ import annotations

import psycopg

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.defs.warehouse.build import build, marts_schema
from tests.fixtures.warehouse import load_fixture


def _ids_in_postgresql(pg_dsn: str, table: str) -> set[int]:
    with psycopg.connect(pg_dsn) as conn:
        return {row_id for (row_id,) in conn.execute(f"select id from {table}")}


def _live_ids_in_raw(raw_database: str, table: str) -> set[int]:
    return {
        row_id
        for (row_id,) in clickhouse_client()
        .query(f"select id from `{raw_database}`.`{table}` final where not _is_deleted")
        .result_rows
    }


def _assert_raw_matches_postgresql(pg_dsn: str, raw_database: str, *tables: str) -> None:
    for table in tables:
        assert _live_ids_in_raw(raw_database, table) == _ids_in_postgresql(pg_dsn, table), table


def test_truncated_tables_leave_no_live_row_in_raw_and_rows_inserted_since_arrive(pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn)
    tables = ["training_progress", "deposits", "system_settings"]  # small, larger incremental; snapshot
    before = {table: _live_ids_in_raw(clickhouse_env, table) for table in tables}
    assert all(before.values())
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("truncate training_progress, deposits, system_settings")
        conn.execute(
            "insert into training_progress (employee_id, course_id, status, progress_percentage)"
            " values (3, 2, 'in_progress', 10)"
        )
        conn.execute(
            "insert into deposits (deposit_code, customer_id, employee_id, amount, currency, deposit_type,"
            " status, deposited_at) values ('DEP_20260101_9', 2, 2, 70, 'USD', '首金', 'confirmed', now())"
        )
        conn.execute("insert into system_settings (key, value, value_type) values ('k', 'v', 'string')")

    results = {result.table: result for result in replicate_tables(pg_dsn, tables)}

    _assert_raw_matches_postgresql(pg_dsn, clickhouse_env, *tables)
    for table in tables:
        assert not _live_ids_in_raw(clickhouse_env, table) & before[table], table
        assert results[table].changed and results[table].live_rows == 1, results[table]
    for table in ("training_progress", "deposits"):  # every old row gone as a deletion
        assert results[table].tombstones == len(before[table]), results[table]

    # Idempotent: the marker is behind the cursors now, so the next run reloads nothing.
    again = {result.table: result for result in replicate_tables(pg_dsn, tables[:2])}
    for table in tables[:2]:
        assert not again[table].changed and not again[table].window_start.startswith("1970-"), again[table]
    _assert_raw_matches_postgresql(pg_dsn, clickhouse_env, *tables)


def test_a_truncated_partition_and_a_truncated_partitioned_table_reach_raw(pg_dsn, clickhouse_env):
    """conversations is partitioned: TRUNCATE of one partition fires only the partition's triggers
    (the parent's statement-level ones are not cloned onto partitions), so each partition has its own,
    partitions created later (ensure_conversation_partitions) included."""
    load_fixture(pg_dsn)
    tables = ["conversations", "conversation_events"]
    replicate_tables(pg_dsn, tables)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (partition,) = conn.execute(
            "select tableoid::regclass::text from conversations order by sent_at limit 1"
        ).fetchone()
        (remaining,) = conn.execute(
            f"select count(*) from conversations where tableoid <> '{partition}'::regclass"
        ).fetchone()
        assert remaining > 0  # the other months keep theirs
        # (conversation_events references conversations: TRUNCATE must cascade to it)
        conn.execute(f"truncate {partition} cascade")

    results = {result.table: result for result in replicate_tables(pg_dsn, tables)}
    _assert_raw_matches_postgresql(pg_dsn, clickhouse_env, *tables)
    assert len(_live_ids_in_raw(clickhouse_env, "conversations")) == remaining
    assert results["conversations"].tombstones > 0 and results["conversation_events"].tombstones == 1

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # a partition made after the migration: its rows, then its TRUNCATE
        conn.execute("select ensure_conversation_partitions(date '2031-03-01', date '2031-03-01')")
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " content, platform, sent_at) values ('LATER', 1, 2, 'text', 'inbound', 'hi', 'wechat', '2031-03-05')"
        )
    replicate_tables(pg_dsn, tables)
    assert len(_live_ids_in_raw(clickhouse_env, "conversations")) == remaining + 1
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("truncate conversations_2031_03 cascade")
    replicate_tables(pg_dsn, tables)
    _assert_raw_matches_postgresql(pg_dsn, clickhouse_env, *tables)

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("truncate conversations cascade")
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " content, platform, sent_at) values ('AFTER', 1, 2, 'text', 'inbound', 'hi', 'wechat', now())"
        )
    replicate_tables(pg_dsn, tables)
    _assert_raw_matches_postgresql(pg_dsn, clickhouse_env, *tables)
    assert len(_live_ids_in_raw(clickhouse_env, "conversations")) == 1


def test_a_truncate_rolled_back_changes_nothing(pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["deposits"])
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("truncate deposits")
        conn.rollback()
        assert conn.execute("select count(*) from sync_truncations").fetchone() == (0,)
    [result] = replicate_tables(pg_dsn, ["deposits"])
    assert not result.changed and not result.window_start.startswith("1970-"), result
    _assert_raw_matches_postgresql(pg_dsn, clickhouse_env, "deposits")
    assert len(_ids_in_postgresql(pg_dsn, "deposits")) == 4


def test_an_incremental_build_drops_the_truncated_rows_from_the_marts(built_warehouse, pg_dsn):
    def completions() -> int:
        return (
            clickhouse_client()
            .query(f"select sum(courses_completed) from `{marts_schema()}`.mart_training_completion")
            .result_rows[0][0]
        )

    assert completions() == 2
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("truncate training_progress")
    output: list[str] = []
    assert build(freshness=False, log=output.append).ok, "\n".join(output[-40:])
    assert completions() == 0
