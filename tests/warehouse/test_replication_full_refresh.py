"""A full refresh, and a reload after a column change, build each raw table beside the live one and
swap it in: readers never find a table missing or half-loaded, and a run that fails half-way leaves
every table with its old rows."""

from __future__ import annotations

import psycopg
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from ingestion.replication.tables import RAW_TABLES
from tests.fixtures.warehouse import load_fixture


def _contents(client, raw_database: str) -> dict[str, tuple[int, int] | None]:
    """Each raw table's content (rows, hash of every row but its load time); None if it is missing."""
    return {
        table.name: schema.content_fingerprint(client, raw_database, table.name)
        if schema.table_exists(client, raw_database, table.name)
        else None
        for table in RAW_TABLES
    }


def _tables_named_like(client, raw_database: str, suffix: str) -> list[str]:
    return [
        name
        for (name,) in client.query(
            "select name from system.tables where database = {db:String} and endsWith(name, {suffix:String})",
            parameters={"db": raw_database, "suffix": suffix},
        ).result_rows
    ]


def test_a_full_refresh_that_fails_half_way_leaves_every_table_with_its_old_rows(
    pg_dsn, clickhouse_env, replicating
):
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn)
    client = clickhouse_client()
    before = _contents(client, clickhouse_env)
    assert None not in before.values()

    replicating("deposits", "audit_tags")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # A value ClickHouse cannot read and replication does not quarantine (a two-dimensional array
        # in a column declared with one dimension, which PostgreSQL does not enforce: the check before
        # the pull looks at values, not at arrays' shapes): the reload of deposits, the ninth of the 18
        # tables, fails while rows are being copied (and again once checked again, ``_checked_pull``).
        conn.execute("alter table deposits add column audit_tags text[]")
        (poisoned,) = conn.execute(
            "update deposits set audit_tags = '{{a,b},{c,d}}' where id = (select max(id) from deposits)"
            " returning id"
        ).fetchone()
    with pytest.raises(DatabaseError, match="Got more dimensions than expected"):
        replicate_tables(pg_dsn, full_refresh=True, workers=1)

    assert _contents(client, clickhouse_env) == before  # the reloaded, the failed and the unreached
    assert _tables_named_like(client, clickhouse_env, "__snapshot") == []  # no half-built copy left

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update deposits set audit_tags = '{a}' where id = %s", (poisoned,))
        conn.execute("delete from customer_tags where customer_id = 3")  # deleted since the last run
    rerun = {result.table: result for result in replicate_tables(pg_dsn, full_refresh=True)}
    assert all(result.window_start.startswith("1970-") for result in rerun.values())  # every table whole
    assert (rerun["deposits"].rows_copied, rerun["deposits"].live_rows) == (4, 4)
    # The deleted row arrives as a deletion, as after any reload (the incremental facts look for it).
    assert (rerun["customer_tags"].tombstones, rerun["customer_tags"].live_rows) == (1, 2)
    # (a tombstone keeps the row's key, not its data: tests/warehouse/test_replication_erasure.py)
    assert client.query(
        f"select customer_id, _is_deleted from `{clickhouse_env}`.customer_tags where _is_deleted"
    ).result_rows == [(0, 1)]
    assert _tables_named_like(client, clickhouse_env, "__snapshot") == []


def test_a_reload_an_older_version_left_unfinished_is_completed(pg_dsn, clickhouse_env):
    """Replication before the swapped reloads set the live table aside as <table>__before_reload and
    reloaded in place: a run that failed then left a partial live table and the last complete one
    aside. The next run reloads the table and owes a deletion for each row gone since."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["deposits"])
    client = clickhouse_client()
    raw = f"`{clickhouse_env}`"
    client.command(f"rename table {raw}.deposits to {raw}.deposits__before_reload")
    client.command(f"create table {raw}.deposits as {raw}.deposits__before_reload")  # reloaded: nothing yet
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from deposits where id = (select min(id) from deposits)")

    result = replicate_tables(pg_dsn, ["deposits"])[0]
    assert (result.rows_copied, result.tombstones, result.live_rows) == (3, 1, 3)
    assert _tables_named_like(client, clickhouse_env, "__before_reload") == []
    again = replicate_tables(pg_dsn, ["deposits"])[0]
    assert (again.rows_copied, again.tombstones, again.changed) == (0, 0, False)


def test_a_snapshot_with_new_content_but_as_many_rows_counts_as_changed(pg_dsn, clickhouse_env):
    """The snapshot is compared with the live table by content: a renamed tag must reach the models
    downstream of tags (an incremental build runs only those of changed tables)."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["tags"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update tags set name = 'VIP+' where id = 1")
    renamed = replicate_tables(pg_dsn, ["tags"])[0]
    assert (renamed.live_rows, renamed.changed) == (2, True)
    assert not replicate_tables(pg_dsn, ["tags"])[0].changed


def test_a_full_refresh_keeps_a_row_updated_after_its_bound_and_tombstones_only_the_deleted(
    pg_dsn, clickhouse_env
):
    """An open writing transaction holds the bound back; a row updated and committed meanwhile lies
    after the bound, so the reload does not copy it. PostgreSQL still has it: it keeps its old
    version (the next window brings the new one) instead of a tombstone, which would take it out of
    raw, staging and marts. A row deleted meanwhile is gone from PostgreSQL and gets its tombstone."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["customer_tags"])
    client = clickhouse_client()
    with psycopg.connect(pg_dsn) as holder, psycopg.connect(pg_dsn, autocommit=True) as writer:
        holder.execute("select pg_current_xact_id()")  # an open transaction with an xid
        (updated, deleted) = [
            row_id for (row_id,) in writer.execute("select id from customer_tags order by id limit 2")
        ]
        writer.execute("update customer_tags set is_auto = not is_auto where id = %s", (updated,))
        writer.execute("delete from customer_tags where id = %s", (deleted,))

        reloaded = replicate_tables(pg_dsn, ["customer_tags"], full_refresh=True)[0]
        live = {
            row_id
            for (row_id,) in client.query(
                f"select id from `{clickhouse_env}`.customer_tags final"
            ).result_rows
        }
    assert (reloaded.rows_copied, reloaded.tombstones, reloaded.live_rows) == (1, 1, 2)
    assert updated in live and deleted not in live

    caught_up = replicate_tables(pg_dsn, ["customer_tags"])[0]  # the transaction ended: the bound moves
    assert (caught_up.rows_copied, caught_up.live_rows) == (1, 2)


def test_a_column_whose_type_changed_in_postgresql_is_reloaded_in_its_new_type(pg_dsn, clickhouse_env):
    """The rows already in raw were read in the old type, and an incremental window would insert the
    new ones into it: four decimals truncated to two, a NULL turned into ''. The table is reloaded."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["deposits"])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("alter table deposits alter amount type numeric(14, 4), alter currency drop not null")
        (changed,) = conn.execute(
            "update deposits set amount = 1.2345, currency = null where id = (select min(id) from deposits)"
            " returning id"
        ).fetchone()

    result = replicate_tables(pg_dsn, ["deposits"])[0]
    assert (result.window_start[:5], result.rows_copied) == ("1970-", 4)  # reloaded whole
    client = clickhouse_client()
    assert client.query(
        f"select toString(amount), currency from `{clickhouse_env}`.deposits final where id = {changed}"
    ).result_rows == [("1.2345", None)]
    types = dict(
        client.query(
            "select name, type from system.columns where database = {db:String} and table = 'deposits'",
            parameters={"db": clickhouse_env},
        ).result_rows
    )
    assert (types["amount"], types["currency"]) == ("Decimal(14, 4)", "Nullable(String)")
