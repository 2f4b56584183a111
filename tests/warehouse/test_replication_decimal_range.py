"""A ``numeric`` column declared without a precision (none of the seed's is; a later migration may
add one, and replication follows PostgreSQL's columns) holds numbers longer than the Decimal
ClickHouse reads it as: too many integer digits failed the whole pull, too many fraction digits were
cut off without a word. Such a row is quarantined with its reason instead, like an infinite date."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from tests.fixtures.warehouse import load_fixture
from tests.warehouse.test_replication_unreadable import _live, _quarantine, _replicate


def test_a_number_longer_than_clickhouses_decimal_is_quarantined_neither_failing_the_pull_nor_cut(
    pg_dsn, clickhouse_env
):
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("alter table deposits add column fee numeric")  # no precision: any number
        ids = [row_id for (row_id,) in conn.execute("select id from deposits order by id")]
        assert len(ids) == 4
        # ClickHouse 26 reads it as Decimal(38, 19): 19 integer digits and 19 fraction digits at most.
        fees = ["-1e30", "0.12345678901234567891", "1.50000000000000000000", "9999999999999999999.5"]
        for row_id, fee in zip(ids, fees, strict=True):
            conn.execute("update deposits set fee = %s::numeric where id = %s", (fee, row_id))

    first = _replicate(pg_dsn, "deposits")  # a new column: a reload from scratch
    assert (first.rows_copied, first.quarantined, first.live_rows) == (2, 2, 2)
    [(too_long_id, column, too_long, _), (too_fine_id, _, too_fine, _)] = _quarantine(
        clickhouse_env, "deposits"
    )
    assert (too_long_id, too_fine_id, column) == (ids[0], ids[1], "fee")
    assert "column fee holds a number of 31 integer and 0 fraction digits" in too_long
    assert "20 fraction digits" in too_fine
    assert all("Decimal(38, 19)" in reason for reason in (too_long, too_fine))
    # The reasons count digits and hold none of the numbers (the row's data stays in PostgreSQL).
    assert not any("1000000" in reason or "12345" in reason for reason in (too_long, too_fine))
    # Trailing zeros are no digits lost; the longest number the Decimal holds arrives whole.
    assert _live(clickhouse_env, "deposits", "fee") == {
        ids[2]: Decimal("1.5"),
        ids[3]: Decimal("9999999999999999999.5"),
    }

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update deposits set fee = 7.25 where id = %s", (ids[0],))
    fixed = _replicate(pg_dsn, "deposits")
    assert (fixed.rows_copied, fixed.quarantined, fixed.live_rows) == (1, 1, 3)
    assert _live(clickhouse_env, "deposits", "fee")[ids[0]] == Decimal("7.25")
    assert [(entry[0], entry[3]) for entry in _quarantine(clickhouse_env, "deposits")] == [
        (ids[0], True),
        (ids[1], False),
    ]
