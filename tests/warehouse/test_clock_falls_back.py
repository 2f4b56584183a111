"""Replication when the clock the rows are stamped with falls back (daylight saving time ends, or the
server's TimeZone is changed to one behind it): rows written after it are stamped earlier than the
saved cursor, and must still arrive, as must their deletions (``cursor.window_start``).

The fall-back is real, not faked: the database's default TimeZone goes from UTC+1 ('<+01>-1', a POSIX
zone) to UTC between two runs, so new sessions (the writers' triggers) stamp an hour earlier."""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ingestion.replication import cursor
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import Replicator, replicate_tables
from ingestion.replication.tables import BY_NAME
from tests.fixtures.warehouse import load_fixture

AN_HOUR_AHEAD = "<+01>-1"


def _sql(pg_dsn: str, *statements: str) -> None:
    """``statements`` in a new session: stamped in the database's default zone as it is now."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _stamp_zone(pg_dsn: str, zone: str) -> None:
    _sql(pg_dsn, f"alter database \"{conninfo_to_dict(pg_dsn)['dbname']}\" set timezone to '{zone}'")


def _live_tags(raw_database: str) -> set[tuple[int, int]]:
    rows = (
        clickhouse_client()
        .query(f"select customer_id, tag_id from `{raw_database}`.customer_tags final where not _is_deleted")
        .result_rows
    )
    return set(rows)


def test_rows_and_deletions_written_after_the_clock_fell_back_are_replicated(pg_dsn, clickhouse_env):
    _stamp_zone(pg_dsn, AN_HOUR_AHEAD)
    load_fixture(pg_dsn)
    # Written well before (triggers off): their deletion after the fall-back is stamped later than them.
    _sql(
        pg_dsn,
        "set session_replication_role = replica",
        "update customer_tags set updated_at = updated_at - interval '2 hours'",
    )
    first = replicate_tables(pg_dsn, ["customer_tags"])[0]
    assert first.live_rows == 3

    _stamp_zone(pg_dsn, "UTC")  # the stamps' clock falls back an hour
    _sql(
        pg_dsn,
        "insert into customer_tags (customer_id, tag_id) values (2, 1)",
        "delete from customer_tags where customer_id = 1 and tag_id = 2",
    )
    after = replicate_tables(pg_dsn, ["customer_tags"])[0]
    assert (after.rows_copied, after.tombstones) == (1, 1)
    assert _live_tags(clickhouse_env) == {(1, 1), (3, 1), (2, 1)}

    again = replicate_tables(pg_dsn, ["customer_tags"])[0]  # the repeated hour is read once only
    assert (again.rows_copied, again.tombstones, again.changed) == (0, 0, False)

    _stamp_zone(pg_dsn, AN_HOUR_AHEAD)  # and a clock that moves ahead reads nothing again
    _sql(pg_dsn, "insert into customer_tags (customer_id, tag_id) values (2, 2)")
    ahead = replicate_tables(pg_dsn, ["customer_tags"])[0]
    assert (ahead.rows_copied, ahead.tombstones) == (1, 0)
    assert _live_tags(clickhouse_env) == {(1, 1), (3, 1), (2, 1), (2, 2)}


def test_a_run_bound_fixed_before_the_fall_back_keeps_its_offset(pg_dsn, clickhouse_env):
    """A Dagster step of a run whose bound was fixed before the fall-back, coming after a later run
    read the table: its bound has a later stamp but an earlier instant, so it reads nothing and
    leaves the cursor where the later run put it (not an hour ahead of every new stamp)."""
    customer_tags = BY_NAME["customer_tags"]
    _stamp_zone(pg_dsn, AN_HOUR_AHEAD)
    load_fixture(pg_dsn)
    earlier_run = cursor.run_bound(pg_dsn, "before-the-fall-back")
    assert earlier_run.utc_offset_seconds == 3600
    # A bound fixed before offsets were kept takes the one its stamp has.
    _sql(
        pg_dsn,
        "insert into funnelhouse.replication_run_bounds (run_id, bound) values ('older', '2026-01-15 12:00')",
    )
    assert cursor.run_bound(pg_dsn, "older") == cursor.Bound(dt.datetime(2026, 1, 15, 12), 3600)

    _stamp_zone(pg_dsn, "UTC")
    later_run = cursor.run_bound(pg_dsn, "after-the-fall-back")
    assert later_run.local < earlier_run.local and later_run > earlier_run
    assert cursor.run_bound(pg_dsn, "before-the-fall-back") == earlier_run  # read back with its offset
    Replicator(pg_dsn, bound=later_run).replicate(customer_tags)
    stale = Replicator(pg_dsn, bound=earlier_run).replicate(customer_tags)
    assert stale.rows_copied == 0 and stale.window_end == later_run.isoformat()

    _sql(pg_dsn, "insert into customer_tags (customer_id, tag_id) values (2, 1)")
    Replicator(pg_dsn, bound=cursor.run_bound(pg_dsn, "next")).replicate(customer_tags)
    assert (2, 1) in _live_tags(clickhouse_env)
