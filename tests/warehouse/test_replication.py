"""Replication PostgreSQL -> ClickHouse raw on the real servers: incremental by the visibility bound,
deletions as tombstones, snapshots swapped whole, and re-runs that change nothing."""

from __future__ import annotations

import dataclasses

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingestion.replication import cursor, tombstones
from ingestion.replication.connections import (
    clickhouse_client,
    collection_name,
    ensure_named_collection,
    replication_client,
    source,
)
from ingestion.replication.replicate import Replicator, replicate_tables
from ingestion.replication.tables import BY_NAME
from tests.fixtures.warehouse import load_fixture


def _live(raw_database: str, table: str, columns: str = "count()"):
    return clickhouse_client().query(f"select {columns} from `{raw_database}`.`{table}` final").result_rows


def _by_table(results):
    return {result.table: result for result in results}


def test_incremental_updates_deletes_and_idempotent_reruns(pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    first = _by_table(replicate_tables(pg_dsn))
    assert len(first) == 18
    assert first["customers"].rows_copied == 4 and first["conversations"].live_rows == 6

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update customers set tier = 'S' where customer_code = 'CUST_002'")
        conn.execute("delete from conversations where source_message_id = 'MSG5'")
        conn.execute("delete from customer_tags where customer_id = 3")
        conn.execute("update customers set tier = tier")  # no change: updated_at stays, nothing to copy

    second = _by_table(replicate_tables(pg_dsn))
    assert second["customers"].rows_copied == 1
    assert {name for name, result in second.items() if result.changed} == {
        "customers",
        "conversations",
        "customer_tags",
    }
    assert second["conversations"].tombstones == 1 and second["conversations"].live_rows == 5
    assert second["customer_tags"].tombstones == 1 and second["customer_tags"].live_rows == 2
    assert _live(clickhouse_env, "customers", "tier") and ("S",) in _live(clickhouse_env, "customers", "tier")

    third = _by_table(replicate_tables(pg_dsn))
    assert all(
        result.rows_copied == 0 and result.tombstones == 0
        for result in third.values()
        if result.mode == "incremental"
    )
    assert not any(result.changed for result in third.values())  # snapshots reloaded, same content
    assert {name: result.live_rows for name, result in third.items()} == {
        name: result.live_rows for name, result in second.items()
    }


def test_deleted_row_in_a_monthly_partition_disappears(pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["conversations"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from conversations where source_message_id in ('MSG1', 'MSG4')")  # two months
        remaining = {row[0] for row in conn.execute("select id from conversations")}
    replicate_tables(pg_dsn, ["conversations"])
    assert (
        len(remaining) == 4 and {row[0] for row in _live(clickhouse_env, "conversations", "id")} == remaining
    )


def test_deletions_are_tombstoned_batch_by_batch(pg_dsn, clickhouse_env, monkeypatch):
    """A purge is streamed from PostgreSQL in batches (never held whole) and every batch tombstoned."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["conversations"])
    window_start = cursor.exact_bound(pg_dsn).local
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(kept,)] = conn.execute("select min(id) from conversations").fetchall()
        purged = conn.execute("delete from conversations where id <> %s", (kept,)).rowcount
    window_end = cursor.exact_bound(pg_dsn).local
    batches = list(cursor.deletions(pg_dsn, "conversations", window_start, window_end, batch_size=2))
    assert purged == 5 and [len(batch) for batch in batches] == [2, 2, 1]

    monkeypatch.setattr(tombstones, "_TOMBSTONE_BATCH", 2)
    replicate_tables(pg_dsn, ["conversations"])
    assert _live(clickhouse_env, "conversations", "id") == [(kept,)]


def test_a_conversation_moved_to_another_month_stays_one_live_row(pg_dsn, clickhouse_env):
    """An update of sent_at to another month moves the row to another partition, in PostgreSQL (as a
    delete and an insert) and in raw: it is no deletion, and FINAL (which merges across partitions,
    the key being id alone) returns its moved version once."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["conversations"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        moved_id, moved_to = conn.execute(
            "update conversations set sent_at = sent_at - interval '62 days' where source_message_id = 'MSG1'"
            " returning id, sent_at"
        ).fetchone()
    moved = _by_table(replicate_tables(pg_dsn, ["conversations"]))["conversations"]
    assert (moved.rows_copied, moved.tombstones, moved.live_rows) == (1, 0, 6)
    assert [row for row in _live(clickhouse_env, "conversations", "id, sent_at") if row[0] == moved_id] == [
        (moved_id, moved_to)
    ]
    again = _by_table(replicate_tables(pg_dsn, ["conversations"]))["conversations"]
    assert (again.rows_copied, again.tombstones, again.live_rows, again.changed) == (0, 0, 6, False)

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from conversations where source_message_id = 'MSG1'")
    deleted = _by_table(replicate_tables(pg_dsn, ["conversations"]))["conversations"]
    assert deleted.live_rows == 5
    assert moved_id not in {row[0] for row in _live(clickhouse_env, "conversations", "id")}


def test_snapshot_tables_follow_deletes_without_tombstones(pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["tags"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from customer_tags where tag_id = 2")
        conn.execute("delete from tags where id = 2")
    result = _by_table(replicate_tables(pg_dsn, ["tags"]))["tags"]
    assert (result.mode, result.rows_copied, result.live_rows, result.changed) == ("snapshot", 1, 1, True)


def test_rows_of_an_open_transaction_are_not_skipped(pg_dsn, clickhouse_env):
    """A row stamped before a concurrent commit but committed after a run is still replicated."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["tags"])
    with psycopg.connect(pg_dsn) as slow:
        slow.execute(
            "insert into customer_tags (customer_id, tag_id) values (2, 1)"
        )  # stamped now, uncommitted
        with psycopg.connect(pg_dsn, autocommit=True) as fast:
            fast.execute(
                "insert into customer_tags (customer_id, tag_id) values (2, 2)"
            )  # stamped later, committed
        assert cursor.visible_bound(pg_dsn) <= _stamp(pg_dsn, 2, 2)
        during = _by_table(replicate_tables(pg_dsn, ["customer_tags"]))["customer_tags"]
        slow.commit()
    after = _by_table(replicate_tables(pg_dsn, ["customer_tags"]))["customer_tags"]
    assert during.live_rows == 3  # neither new row: the bound sits before the open transaction
    assert after.live_rows == 5


def test_full_refresh_reloads_from_scratch(pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["deposits"])
    result = _by_table(replicate_tables(pg_dsn, ["deposits"], full_refresh=True))["deposits"]
    assert (result.rows_copied, result.live_rows) == (4, 4)


def _stamp(dsn: str, customer_id: int, tag_id: int):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select updated_at from customer_tags where customer_id = %s and tag_id = %s",
            (customer_id, tag_id),
        ).fetchone()[0]


def test_a_raw_table_of_another_column_list_is_reloaded_not_filled_by_position(pg_dsn, clickhouse_env):
    """A column dropped from replication (it held contact details) leaves the existing raw table with
    it: the next run must reload the table, not insert the new column list into the old one."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["customers"])
    client = clickhouse_client()
    client.command(
        f"alter table `{clickhouse_env}`.customers add column phone_in_clear String default 'secret'"
    )
    messages = []
    result = _by_table(replicate_tables(pg_dsn, ["customers"], log=messages.append))["customers"]
    columns = [row[0] for row in client.query(f"describe table `{clickhouse_env}`.customers").result_rows]
    assert "phone_in_clear" not in columns
    assert result.rows_copied == 4 and result.live_rows == 4  # reloaded from scratch, every row
    assert any("reloading it from scratch" in message for message in messages)
    again = _by_table(replicate_tables(pg_dsn, ["customers"]))["customers"]
    assert again.rows_copied == 0 and again.live_rows == 4  # and incremental again after that


def test_raw_conversations_holding_message_ids_are_reloaded_without_them(pg_dsn, clickhouse_env):
    """Replication used to copy the platform's message id, which can hold the sender's phone number (a
    WhatsApp wamid: tests/warehouse/test_pii.py). A raw table it filled is reloaded by the next run by
    itself, and no version of a row keeps the id."""
    load_fixture(pg_dsn)
    current = BY_NAME["conversations"]
    copying_message_ids = dataclasses.replace(
        current,
        replicated=(*current.replicated, "source_message_id"),
        dropped=tuple(column for column in current.dropped if column != "source_message_id"),
    )
    with Replicator(pg_dsn) as older_replication:
        older_replication.replicate(copying_message_ids)
    client = clickhouse_client()
    assert client.query(
        f"select count() from `{clickhouse_env}`.conversations where source_message_id like 'wamid.%'"
    ).result_rows == [(1,)]

    messages = []
    reloaded = _by_table(replicate_tables(pg_dsn, ["conversations"], log=messages.append))["conversations"]
    assert (reloaded.rows_copied, reloaded.live_rows) == (6, 6)
    assert any(
        "gone source_message_id" in message and "reloading it from scratch" in message for message in messages
    )
    columns = [row[0] for row in client.query(f"describe table `{clickhouse_env}`.conversations").result_rows]
    assert "source_message_id" not in columns and "content_length" in columns
    again = _by_table(replicate_tables(pg_dsn, ["conversations"]))["conversations"]
    assert (again.rows_copied, again.changed) == (0, False)


def test_a_reload_leaves_a_tombstone_for_each_row_deleted_since_the_last_run(
    pg_dsn, clickhouse_env, replicating
):
    """A reload (here: a column added in PostgreSQL and replicated) copies live rows only; a row deleted since the
    last run must still arrive as a deletion, or the incremental facts, which remove only ids with a
    new raw version, keep it."""
    load_fixture(pg_dsn)
    first = _by_table(replicate_tables(pg_dsn, ["deposits"]))["deposits"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (deleted_id,) = conn.execute(
            "delete from deposits where id = (select min(id) from deposits) returning id"
        ).fetchone()
        conn.execute("alter table deposits add column channel_note text")
    replicating("deposits", "channel_note")
    reloaded = _by_table(replicate_tables(pg_dsn, ["deposits"]))["deposits"]
    assert (reloaded.tombstones, reloaded.live_rows) == (1, first.live_rows - 1)
    versions = (
        clickhouse_client()
        .query(
            f"select _is_deleted, _replicated_at > now64(3) - interval 1 minute "
            f"from `{clickhouse_env}`.deposits where id = {{id:Int64}}",
            parameters={"id": deleted_id},
        )
        .result_rows
    )
    assert versions == [(1, True)]  # a deletion, stamped with the reload (what the facts look for)
    assert (
        not clickhouse_client()
        .query(f"exists table `{clickhouse_env}`.deposits__before_reload")
        .result_rows[0][0]
    )
    again = _by_table(replicate_tables(pg_dsn, ["deposits"]))["deposits"]
    assert (again.rows_copied, again.tombstones, again.changed) == (0, 0, False)


def test_the_steps_of_one_orchestrated_run_share_its_bound(pg_dsn, clickhouse_env):
    """Dagster replicates each table in a step of its own: a customer created between the customers
    step and the funnel_tofu step must not arrive as a funnel row without its customer."""
    load_fixture(pg_dsn)
    bound = cursor.run_bound(pg_dsn, "run-before")  # the run's first step fixed it
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into customers (id, customer_code, name, current_stage) values (5, 'CUST_LATE', 'Late', 'Awareness')"
        )
        conn.execute(
            "insert into funnel_tofu (source_key, customer_id, employee_id, contact_date, source_channel)"
            " values ('T_LATE', 5, 2, current_date, 'TikTok')"
        )
    assert cursor.run_bound(pg_dsn, "run-before") == bound  # a later step (or a retry) reads it back
    for table in ("customers", "funnel_tofu"):
        Replicator(pg_dsn, bound=cursor.run_bound(pg_dsn, "run-before")).replicate(BY_NAME[table])
    assert (5,) not in _live(clickhouse_env, "customers", "id")
    assert (5,) not in _live(clickhouse_env, "funnel_tofu", "customer_id")

    later = cursor.run_bound(pg_dsn, "run-after")
    assert later > bound
    for table in ("funnel_tofu", "customers"):
        Replicator(pg_dsn, bound=later).replicate(BY_NAME[table])
    assert (5,) in _live(clickhouse_env, "customers", "id")
    assert (5,) in _live(clickhouse_env, "funnel_tofu", "customer_id")
    # a step of the older run that comes last reads nothing more and leaves the cursor where it is
    stale = Replicator(pg_dsn, bound=bound).replicate(BY_NAME["customers"])
    assert stale.rows_copied == 0 and stale.window_end == later.isoformat()


def test_a_database_without_the_run_bounds_table_gets_it_on_first_use(pg_dsn, clickhouse_env):
    """A deployment whose first Dagster run replicates before anything migrated the database."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE funnelhouse.replication_run_bounds")
        conn.execute(
            "DELETE FROM funnelhouse.schema_migrations WHERE version LIKE '0009%%' OR version LIKE '0017%%'"
        )
    bound = cursor.run_bound(pg_dsn, "first-run")
    assert cursor.run_bound(pg_dsn, "first-run") == bound


def _collections(client) -> set[str]:
    return {name for (name,) in client.query("select name from system.named_collections").result_rows}


def test_two_stacks_on_one_clickhouse_pull_through_collections_of_their_own(pg_dsn, clickhouse_env):
    """Two stacks isolated on one ClickHouse server by their raw databases, whose PostgreSQL databases
    are called alike (here the same server reached by another host name, as another machine's
    ``funnelhouse`` would be): each pulls through a collection of its own, so neither run points the
    other's pulls at its PostgreSQL. A raw database's collection for an earlier source (the embedded
    PostgreSQL came back on another port) is dropped, not left behind for good."""
    load_fixture(pg_dsn)
    client = replication_client()
    other_stack = make_conninfo(pg_dsn, host="localhost")
    other_raw = f"{clickhouse_env}_other_stack"
    moved = make_conninfo(pg_dsn, port=int(conninfo_to_dict(pg_dsn)["port"]) + 1)
    try:
        ours = ensure_named_collection(client, pg_dsn, clickhouse_env)
        theirs = ensure_named_collection(client, other_stack, other_raw)
        assert ours != theirs
        assert {ours, theirs} <= _collections(client)
        assert client.query(f"select count() from {source('customers', ours)}").result_rows == [(4,)]

        after_the_move = ensure_named_collection(client, moved, clickhouse_env)
        assert ours not in _collections(client) and {after_the_move, theirs} <= _collections(client)
    finally:
        for name in _collections(client) & {
            collection_name(dsn, raw)
            for dsn, raw in ((pg_dsn, clickhouse_env), (other_stack, other_raw), (moved, clickhouse_env))
        }:
            client.command(f"drop named collection if exists {name}")
