"""Dates and times ClickHouse stores as something else than PostgreSQL holds, without an error. Measured
with ClickHouse 26.9 (Date32 and DateTime64 span 0001-01-01 to 9999-12-31: year 1899 and 2300 arrive
whole): a date or time BC arrives as the same year AD ('0044-03-15 BC' as 0044-03-15), one after 9999
as a day or an instant of 1970 (a date as 1970-01-01, '10000-01-01 00:00' as 1970-01-01 02:46:40),
and inside a ``timestamp[]`` or ``timestamptz[]`` one before 1970 as 1970-01-01 00:00:00. A row whose
``updated_at`` lies before 1970 is in no window of the pull and never arrived. Such a row is
quarantined with a reason naming the column, its type and the range, never the value, like an
infinite date; the values at the range's edges arrive exactly."""

from __future__ import annotations

import datetime as dt

import psycopg

from tests.fixtures.warehouse import load_fixture
from tests.warehouse.test_replication_unreadable import _live, _quarantine, _replicate

FIRST_TIME, LAST_TIME = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
EPOCH = dt.datetime(1970, 1, 1)
# id -> (due, due_dates, seen_at, seen_ats, paid_at, paid_ats) as PostgreSQL reads them; a
# timestamptz in UTC (the test database's TimeZone, and the wall clock ClickHouse reads).
AT_THE_EDGES = {
    10: ("0001-01-01", "{0001-01-01,9999-12-31}", "0001-01-01 00:00", "{1970-01-01 00:00}",
         "0001-01-01 00:00+00", "{1970-01-01 00:00+00}"),
    11: ("9999-12-31", "{1899-12-31,2300-01-01}", "9999-12-31 23:59:59.999999",
         "{9999-12-31 23:59:59.999999}", "9999-12-31 23:59:59.999999+00", "{9999-12-31 23:59:59.999999+00}"),
}  # fmt: skip
READ_OTHERWISE = {
    20: ("0044-03-15 BC", None, None, None, None, None),
    21: (None, "{2026-01-01,10000-01-01}", None, None, None, None),
    22: (None, None, "10000-01-01 00:00", None, "0044-03-15 12:00+00 BC", None),
    23: (None, None, None, "{2026-01-01 00:00,1969-12-31 23:59:59.999999}", None, "{1900-01-01 00:00+00}"),
}


def test_dates_clickhouse_would_change_are_quarantined_and_the_edges_of_its_range_arrive_exactly(
    pg_dsn, clickhouse_env, replicating
):
    load_fixture(pg_dsn)
    replicating("customers", "due", "due_dates", "seen_at", "seen_ats", "paid_at", "paid_ats")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "alter table customers add column due date, add column due_dates date[],"
            " add column seen_at timestamp, add column seen_ats timestamp[],"
            " add column paid_at timestamptz, add column paid_ats timestamptz[]"
        )
        for row_id, values in {**AT_THE_EDGES, **READ_OTHERWISE}.items():
            conn.execute(
                "insert into customers (id, customer_code, name, current_stage,"
                " due, due_dates, seen_at, seen_ats, paid_at, paid_ats)"
                " values (%s, %s, 'N', 'Awareness', %s, %s, %s, %s, %s, %s)",
                (row_id, f"CUST_{row_id}", *values),
            )
        conn.execute("set session_replication_role = replica")  # the triggers stamping updated_at: off
        conn.execute("update customers set updated_at = '1969-12-31 23:59:59.999999' where id = 1")

    first = _replicate(pg_dsn, "customers")  # new columns: a reload from scratch
    # the fixture's 4 customers but id 1, the 2 rows at the edges; the rest held back
    assert (first.rows_copied, first.quarantined) == (3 + len(AT_THE_EDGES), 1 + len(READ_OTHERWISE))
    entries = _quarantine(clickhouse_env, "customers")
    assert [entry[:2] for entry in entries] == [
        (1, "updated_at"),
        (20, "due"),
        (21, "due_dates"),
        (22, "paid_at"),
        (22, "seen_at"),
        (23, "paid_ats"),
        (23, "seen_ats"),
    ]
    reasons = {(row_id, column): reason for row_id, column, reason, _ in entries}
    assert (
        "cursor column updated_at (timestamp without time zone) holds a value outside 1970-01-01 00:00:00"
        in (reasons[1, "updated_at"])
    )
    assert "column due (date) holds a value outside 0001-01-01 .. 9999-12-31" in reasons[20, "due"]
    assert (
        "column due_dates (date[]) holds in its array a value outside 0001-01-01 .. 9999-12-31"
        in (reasons[21, "due_dates"])
    )
    assert (
        "column seen_at (timestamp without time zone) holds a value outside 0001-01-01 00:00:00 .. "
        in (reasons[22, "seen_at"])
    )
    assert (
        "column paid_at (timestamp with time zone) holds a value outside 0001-01-01 00:00:00"
        in (reasons[22, "paid_at"])
    )
    for column in ("seen_ats", "paid_ats"):
        assert (
            "holds in its array a value outside 1970-01-01 00:00:00 .. 9999-12-31 23:59:59.999999"
            in (reasons[23, column])
        )
    # The reasons name the range, never the value (the row's data stays in PostgreSQL).
    assert not any(
        value in reason for value in ("0044", "10000", "1969-12-31", "1900") for reason in reasons.values()
    )

    # Within the range every value arrives as PostgreSQL holds it, at its edges too.
    added = "tuple(due, due_dates, seen_at, seen_ats, paid_at, paid_ats)"
    edges = {
        row_id: row
        for row_id, row in _live(clickhouse_env, "customers", added).items()
        if row_id in AT_THE_EDGES
    }
    assert edges == {
        10: (
            dt.date(1, 1, 1),
            [dt.date(1, 1, 1), dt.date(9999, 12, 31)],
            FIRST_TIME,
            [EPOCH],
            FIRST_TIME,
            [EPOCH],
        ),
        11: (
            dt.date(9999, 12, 31),
            [dt.date(1899, 12, 31), dt.date(2300, 1, 1)],
            LAST_TIME,
            [LAST_TIME],
            LAST_TIME,
            [LAST_TIME],
        ),
    }

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "update customers set due = '2026-03-15', due_dates = '{2026-01-01}', seen_at = '2026-01-01',"
            " paid_at = '2026-01-01 00:00+00', seen_ats = '{2026-01-01}', paid_ats = '{2026-01-01 00:00+00}'"
            " where id >= 20"
        )
        conn.execute("update customers set name = 'M' where id = 1")  # the trigger stamps updated_at now
    fixed = _replicate(pg_dsn, "customers")
    assert (fixed.rows_copied, fixed.quarantined, fixed.live_rows) == (1 + len(READ_OTHERWISE), 0, 10)
    assert all(resolved for *_, resolved in _quarantine(clickhouse_env, "customers"))
    assert _live(clickhouse_env, "customers", "due")[20] == dt.date(2026, 3, 15)
