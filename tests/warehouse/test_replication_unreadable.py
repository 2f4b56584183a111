"""A value ClickHouse cannot read (a timestamp 'infinity', a numeric 'NaN', written by the CRM app or
an operator) no longer stops its table's replication: the row is quarantined with its reason, the
others arrive, and the row follows once fixed. The pulls that leave such a row out succeed only if
ClickHouse hands the exclusion to PostgreSQL (else it would read the row, and fail on it)."""

from __future__ import annotations

import logging

import psycopg

from ingestion.replication import quarantine
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from tests.fixtures.warehouse import load_fixture


def _replicate(pg_dsn: str, table: str, **options):
    [result] = replicate_tables(pg_dsn, [table], **options)
    return result


def _live(raw_database: str, table: str, column: str) -> dict:
    """id -> ``column`` of each live row (a timestamp as its naive UTC wall clock, as PostgreSQL has it)."""
    rows = clickhouse_client().query(f"select id, {column} from `{raw_database}`.`{table}` final").result_rows
    return dict(rows)


def _quarantine(raw_database: str, table: str) -> list[tuple]:
    """(id, column, reason, resolved) of each entry of ``table``, as it stands."""
    return (
        clickhouse_client()
        .query(
            f"select row_id, column_name, reason, resolved_at is not null from `{raw_database}`.{quarantine.TABLE}"
            " final where table_name = {table:String} order by row_id, column_name",
            parameters={"table": table},
        )
        .result_rows
    )


def _versions_recorded(raw_database: str) -> int:
    return (
        clickhouse_client()
        .query(f"select count() from `{raw_database}`.{quarantine.TABLE}")
        .result_rows[0][0]
    )


def test_an_infinite_timestamp_is_quarantined_until_the_row_is_fixed(pg_dsn, clickhouse_env, caplog):
    load_fixture(pg_dsn)
    _replicate(pg_dsn, "customers")
    before = _live(clickhouse_env, "customers", "last_contact_at")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update customers set last_contact_at = 'infinity' where id = 2")
        conn.execute(
            "insert into customers (id, customer_code, name, current_stage) values (5, 'CUST_5', 'N', 'Awareness')"
        )

    with caplog.at_level(logging.WARNING, logger=quarantine.__name__):
        held = _replicate(pg_dsn, "customers")
    assert (held.rows_copied, held.quarantined, held.live_rows) == (1, 1, 5)  # the new customer arrived
    assert held.as_dict()["quarantined"] == 1  # what Dagster's metadata shows
    assert any("1 row(s) ClickHouse cannot read" in message for message in caplog.messages)
    [(row_id, column, reason, resolved)] = _quarantine(clickhouse_env, "customers")
    assert (row_id, column, resolved) == (2, "last_contact_at", False) and "infinity" in reason
    # raw keeps the row's last readable version
    assert _live(clickhouse_env, "customers", "last_contact_at")[2] == before[2]

    recorded = _versions_recorded(clickhouse_env)
    again = _replicate(pg_dsn, "customers")
    assert (again.rows_copied, again.quarantined, again.changed) == (0, 1, False)
    assert _versions_recorded(clickhouse_env) == recorded  # a re-run writes nothing new
    # a reload (here: a full refresh) keeps it held back with its last readable version, not deleted
    reloaded = _replicate(pg_dsn, "customers", full_refresh=True)
    assert (reloaded.rows_copied, reloaded.tombstones, reloaded.quarantined, reloaded.live_rows) == (
        4,
        0,
        1,
        5,
    )
    assert _live(clickhouse_env, "customers", "last_contact_at")[2] == before[2]
    assert [entry[:2] for entry in _quarantine(clickhouse_env, "customers")] == [(2, "last_contact_at")]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update customers set last_contact_at = '2026-11-30 08:00' where id = 2")
        fixed_at = conn.execute("select last_contact_at from customers where id = 2").fetchone()[0]
    fixed = _replicate(pg_dsn, "customers")
    assert (fixed.rows_copied, fixed.quarantined) == (1, 0)
    assert _live(clickhouse_env, "customers", "last_contact_at")[2] == fixed_at
    assert [(entry[0], entry[3]) for entry in _quarantine(clickhouse_env, "customers")] == [(2, True)]


def test_an_infinite_cursor_a_nan_amount_and_a_snapshot_row_are_held_back_and_the_cursor_moves_on(
    pg_dsn, clickhouse_env
):
    """updated_at itself infinite (written with the triggers off) puts the row in no window: it is
    found and quarantined anyway, the cursor stays finite, and the row arrives once fixed, even with
    an updated_at older than the window. A numeric NaN (no Decimal value either) is held back alike,
    and so is a snapshot table's unreadable row."""
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(stamped_id, stamped_at), (nan_id, _)] = conn.execute(
            "select id, updated_at from deposits where id in ((select min(id) from deposits),"
            " (select max(id) from deposits)) order by id"
        ).fetchall()
        conn.execute("update deposits set amount = 'NaN' where id = %s", (nan_id,))
        conn.execute("update tags set created_at = 'infinity' where id = 2")
        conn.execute("set session_replication_role = replica")  # the triggers stamping updated_at: off
        conn.execute("update deposits set updated_at = '-infinity' where id = %s", (stamped_id,))

    first = _replicate(pg_dsn, "deposits")  # the first run: a reload from scratch
    assert (first.rows_copied, first.quarantined, first.live_rows) == (2, 2, 2)
    [(_, cursor_column, cursor_reason, _), (_, nan_column, nan_reason, _)] = _quarantine(
        clickhouse_env, "deposits"
    )
    assert (cursor_column, nan_column) == ("updated_at", "amount")
    assert "-infinity" in cursor_reason and "NaN" in nan_reason
    [[rows_cursor]] = (
        clickhouse_client()
        .query(
            f"select rows_cursor from `{clickhouse_env}`._replication_state final where table_name = 'deposits'"
        )
        .result_rows
    )
    assert rows_cursor.isoformat() == first.window_end
    tags = _replicate(pg_dsn, "tags")
    assert (tags.rows_copied, tags.quarantined) == (1, 1)
    assert [entry[:2] for entry in _quarantine(clickhouse_env, "tags")] == [(2, "created_at")]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update deposits set amount = 100 where id = %s", (nan_id,))
        conn.execute("update tags set created_at = now() where id = 2")
        conn.execute("set session_replication_role = replica")
        # an updated_at behind the window: the row is taken by id
        conn.execute("update deposits set updated_at = %s where id = %s", (stamped_at, stamped_id))
    fixed = _replicate(pg_dsn, "deposits")
    assert (fixed.rows_copied, fixed.quarantined, fixed.live_rows) == (2, 0, 4)
    assert [(entry[0], entry[3]) for entry in _quarantine(clickhouse_env, "deposits")] == [
        (stamped_id, True),
        (nan_id, True),
    ]
    assert _replicate(pg_dsn, "tags").quarantined == 0


def test_a_value_turning_unreadable_between_the_check_and_the_pull_is_checked_again(
    pg_dsn, clickhouse_env, monkeypatch
):
    """The check and the pull read PostgreSQL in two statements: a snapshot table's row updated in
    between (its updated_at moving does not put it out of a snapshot's reach) fails the pull on its
    value; the run checks again, quarantines the row and makes the pull once more."""
    load_fixture(pg_dsn)
    checked = []

    def check_then_an_update_commits(conn, table, *arguments):
        found = real_check(conn, table, *arguments)
        if not checked:
            with psycopg.connect(pg_dsn, autocommit=True) as writer:
                writer.execute("update tags set created_at = 'infinity' where id = 2")
        checked.append(table)
        return found

    real_check = quarantine.check
    monkeypatch.setattr(quarantine, "check", check_then_an_update_commits)
    tags = _replicate(pg_dsn, "tags")
    assert checked == ["tags", "tags"]
    assert (tags.rows_copied, tags.quarantined, tags.live_rows) == (1, 1, 1)
    assert [entry[:2] for entry in _quarantine(clickhouse_env, "tags")] == [(2, "created_at")]
