"""A row deleted in PostgreSQL leaves nothing of its data in raw: its tombstone, which a
ReplacingMergeTree without CLEANUP keeps for good (``OPTIMIZE ... FINAL`` included), holds the row's
key, partition key and the columns readers of deletions use, every other column its type's default.
So a customer's erasure erases their replicated text (masked free text, city) from ClickHouse too."""

from __future__ import annotations

import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client, string_literal
from ingestion.replication.replicate import Replicator, replicate_tables
from orchestration.defs.warehouse.build import MARTS, build, marts_schema, run_dbt
from tests.fixtures.warehouse import load_fixture
from tests.warehouse.test_incremental_matches_full_refresh import CUSTOMER_GRAIN, FACTS, _contents

BOOKKEEPING = {"_version", "_is_deleted", "_replicated_at"}
# What a tombstone may keep of its row besides the key (id): the partition key (conversations'
# sent_at), and the columns the reconciliation (whom a row counted for) and the KPI mart (the
# months a row leaves) read from deleted rows (tombstones._READ_FROM_TOMBSTONES).
KEPT = {
    "customers": {"assigned_employee_id"},
    "conversations": {"sent_at"},
    "deposits": {"deposited_at"},
    "funnel_tofu": {"customer_id", "contact_date"},
    "funnel_mofu": {"customer_id", "account_opened", "opened_at"},
    "customer_journey": set(),
}
# Replicated text an erased customer leaves nowhere in ClickHouse.
CUSTOMER_TEXT = "occupation = 'Day trader', decision_style = 'cautious', city = 'Shenzhen'"


def _customers_rows(conn: psycopg.Connection, customer: int) -> dict[str, list[int]]:
    """Ids of the rows of ``customer`` (the customer's own row included) in each table of ``KEPT``."""
    return {
        table: [
            row_id
            for (row_id,) in conn.execute(
                f"select id from {table} where {'id' if table == 'customers' else 'customer_id'} = %s",
                (customer,),
            )
        ]
        for table in KEPT
    }


def _optimized_rows(client, raw_database: str, table: str, ids: list[int]) -> list[dict]:
    """Every row raw holds of ``ids`` once ``table`` is merged whole (``OPTIMIZE ... FINAL``)."""
    client.command(f"optimize table `{raw_database}`.`{table}` final")
    return list(
        client.query(
            f"select * from `{raw_database}`.`{table}` where id in {{ids:Array(Int64)}}",
            parameters={"ids": ids},
        ).named_results()
    )


def _defaults(client, raw_database: str, table: str) -> dict[str, object]:
    """Each column of the raw ``table`` with its type's default value, as ClickHouse returns it."""
    columns = client.query(
        "select name, type from system.columns where database = {db:String} and table = {table:String}",
        parameters={"db": raw_database, "table": table},
    ).result_rows
    [values] = client.query(
        "select " + ", ".join(f"defaultValueOfTypeName({string_literal(type_)})" for _, type_ in columns)
    ).result_rows
    return {name: value for (name, _), value in zip(columns, values, strict=True)}


def _assert_only_tombstones_with_defaults(client, raw_database: str, deleted: dict[str, list[int]]) -> None:
    """Of each deleted row raw holds one version, its tombstone, and it keeps only what ``KEPT`` allows;
    already as replication left it (its older versions merged away), not only once merged here."""
    for table, ids in deleted.items():
        live = client.query(
            f"select id from `{raw_database}`.`{table}` where id in {{ids:Array(Int64)}} and not _is_deleted",
            parameters={"ids": ids},
        ).result_rows
        assert live == [], (table, live)  # no FINAL: the last versions before the deletion are gone
        rows = _optimized_rows(client, raw_database, table, ids)
        assert sorted(row["id"] for row in rows) == sorted(ids), table  # one row each: the tombstone
        assert all(row["_is_deleted"] == 1 for row in rows), table
        _assert_keep_only_what_readers_need(client, raw_database, table, rows)


def _assert_keep_only_what_readers_need(client, raw_database: str, table: str, rows: list[dict]) -> None:
    """Each of ``rows`` (tombstones of ``table``) keeps only what ``KEPT`` allows, defaults elsewhere."""
    defaults = _defaults(client, raw_database, table)
    kept = {"id", *BOOKKEEPING, *KEPT[table]}
    for row in rows:
        not_default = {
            column: value for column, value in row.items() if column not in kept and value != defaults[column]
        }
        assert not_default == {}, (table, row["id"])


def test_an_erased_customer_leaves_no_data_in_raw_and_no_count_in_the_marts(
    built_warehouse, pg_dsn, clickhouse_env
):
    """Customer 2 and everything of theirs (a conversation with tags, a deposit, funnel rows, a journey
    step) deleted in PostgreSQL: after a build and a merge, raw holds of them tombstones with defaults in
    every text column, the marts count them nowhere, and the incremental build equals a full refresh."""
    client = clickhouse_client()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"update customers set {CUSTOMER_TEXT} where id = 2")
        conn.execute("""update conversations set keywords = '["美股"]' where customer_id = 2""")
    replicate_tables(pg_dsn)
    assert client.query(
        f"select occupation, city from `{clickhouse_env}`.customers final where id = 2"
    ).result_rows == [("Day trader", "Shenzhen")]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        deleted = _customers_rows(conn, 2)
        # customer_journey and customer_tags go with the customer (on delete cascade)
        for table in ("conversations", "deposits", "funnel_tofu", "funnel_mofu", "customers"):
            conn.execute(f"delete from {table} where {'id' if table == 'customers' else 'customer_id'} = 2")
    assert all(deleted.values()), deleted
    assert build(freshness=False, log=lambda _line: None).ok

    _assert_only_tombstones_with_defaults(client, clickhouse_env, deleted)
    # What the reconciliation reads of deleted rows (whom they counted for) is kept.
    assert client.query(
        f"select assigned_employee_id from `{clickhouse_env}`.customers where _is_deleted"
    ).result_rows == [(2,)]
    assert client.query(
        f"select customer_id from `{clickhouse_env}`.funnel_mofu where _is_deleted"
    ).result_rows == [(2,)]
    assert client.query(
        f"select count() from `{clickhouse_env}`.customers where occupation = 'Day trader' or city = 'Shenzhen'"
    ).result_rows == [(0,)]
    [conversation] = deleted["conversations"]
    assert client.query(
        f"select count() from `{clickhouse_env}`.conversations where id = {conversation} and keywords is not null"
    ).result_rows == [(0,)]

    # Counted nowhere: not in the customer mart, and no fact of theirs.
    overview = f"`{marts_schema()}`.mart_customer_overview"
    assert client.query(f"select count() from {overview} where customer_id = 2").result_rows == [(0,)]
    after_incremental = {relation: _contents(relation) for relation in (*FACTS, *CUSTOMER_GRAIN, *MARTS)}
    assert conversation not in {row[0] for row in after_incremental["fct_conversations"]}
    assert "DEP_20250101_4" not in {row[1] for row in after_incremental["fct_deposits"]}
    # The tombstones told the incremental models all they needed: a full refresh gives the same.
    output: list[str] = []
    assert run_dbt(["run", "--full-refresh"], log=output.append) == 0, "\n".join(output[-40:])
    for relation, rows in after_incremental.items():
        assert rows == _contents(relation), relation


def test_a_full_refresh_leaves_no_data_of_deleted_rows(pg_dsn, clickhouse_env):
    """A reload (``--full-refresh``) writes a tombstone for a row deleted since the last run with
    defaults as an incremental run does, and drops a tombstone an older replication wrote as a whole
    copy of its row (how a deployment gets rid of those)."""
    load_fixture(pg_dsn)
    client, raw = clickhouse_client(), f"`{clickhouse_env}`"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"update customers set {CUSTOMER_TEXT} where id = 4")
        [(conversation,)] = conn.execute("select id from conversations where source_message_id = 'MSG6'")
    replicate_tables(pg_dsn, ["customers", "conversations"])
    # What replication wrote before tombstones kept only what readers need: the whole row.
    client.command(
        f"insert into {raw}.conversations select * replace (toUInt8(1) as _is_deleted, _version + 1 as _version)"
        f" from {raw}.conversations final where id = {conversation}"
    )
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from conversations where id = %s", (conversation,))
        conn.execute("delete from customers where id = 4")

    results = {
        result.table: result
        for result in replicate_tables(pg_dsn, ["customers", "conversations"], full_refresh=True)
    }
    assert (results["customers"].tombstones, results["conversations"].tombstones) == (1, 0)
    _assert_only_tombstones_with_defaults(client, clickhouse_env, {"customers": [4]})
    assert client.query(
        f"select count() from {raw}.customers where occupation = 'Day trader' or city = 'Shenzhen'"
    ).result_rows == [(0,)]
    assert _optimized_rows(client, clickhouse_env, "conversations", [conversation]) == []


def test_a_run_failing_before_the_merge_leaves_its_rerun_to_erase(pg_dsn, clickhouse_env, monkeypatch):
    """A run that wrote a deleted customer's tombstone but failed before merging their older versions
    away: its rerun finds the row already deleted under FINAL, writes no tombstone again, yet merges
    the older versions away and counts the table changed (the tombstone is news to the models)."""
    load_fixture(pg_dsn)
    client, raw = clickhouse_client(), f"`{clickhouse_env}`"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"update customers set {CUSTOMER_TEXT} where id = 4")
    replicate_tables(pg_dsn, ["customers"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from customers where id = 4")

    merge = Replicator._merge_away_deleted_versions

    def fail_once(self, table, ids):
        monkeypatch.setattr(Replicator, "_merge_away_deleted_versions", merge)
        raise RuntimeError("connection lost during OPTIMIZE")

    monkeypatch.setattr(Replicator, "_merge_away_deleted_versions", fail_once)
    with pytest.raises(RuntimeError, match="OPTIMIZE"):
        replicate_tables(pg_dsn, ["customers"])
    assert client.query(f"select count() from {raw}.customers where id = 4 and _is_deleted").result_rows == [
        (1,)
    ]

    [result] = replicate_tables(pg_dsn, ["customers"])
    _assert_only_tombstones_with_defaults(client, clickhouse_env, {"customers": [4]})
    assert (result.tombstones, result.changed) == (1, True)


def test_a_conversation_moved_to_another_month_then_deleted_leaves_no_data_in_raw(pg_dsn, clickhouse_env):
    """A conversation whose sent_at moved to another month left a version in each month's partition
    (FINAL merges across them, a ReplacingMergeTree's merges do not): deleted, it leaves a tombstone in
    each, so its text is erased from the older month too, and FINAL shows it nowhere."""
    load_fixture(pg_dsn)
    client, raw = clickhouse_client(), f"`{clickhouse_env}`"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(conversation,)] = conn.execute("select id from conversations where source_message_id = 'MSG1'")
        conn.execute("""update conversations set keywords = '["美股"]' where id = %s""", (conversation,))
    replicate_tables(pg_dsn, ["conversations"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "update conversations set sent_at = sent_at + interval '70 days' where id = %s", (conversation,)
        )
    replicate_tables(pg_dsn, ["conversations"])
    assert client.query(
        f"select uniqExact(_partition_id) from {raw}.conversations where id = {conversation}"
    ).result_rows == [(2,)]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from conversations where id = %s", (conversation,))
    [result] = replicate_tables(pg_dsn, ["conversations"])
    assert result.tombstones == 1
    assert client.query(
        f"select count() from {raw}.conversations where id = {conversation} and keywords is not null"
    ).result_rows == [(0,)]
    assert client.query(
        f"select count() from {raw}.conversations final where id = {conversation}"
    ).result_rows == [(0,)]
    live = client.query(
        f"select id from {raw}.conversations where id = {conversation} and not _is_deleted"
    ).result_rows
    assert live == []  # no FINAL: the versions before the deletion are gone, in both months
    rows = _optimized_rows(client, clickhouse_env, "conversations", [conversation])
    assert len(rows) == 2 and all(row["_is_deleted"] == 1 for row in rows)  # a tombstone in each month
    _assert_keep_only_what_readers_need(client, clickhouse_env, "conversations", rows)
