"""Arrays of the types the check before the pull looks at (a migration may add a ``numeric[]``, a
``date[]``, a ``timestamp[]``, and list it as replicated) are checked element by
element: a NaN, an infinity or a number too long for ClickHouse's Decimal inside an array failed the
whole pull (or, in a ``date[]``, arrived as 1970-01-01 without a word). Such a row is quarantined with
its reason instead, like one whose scalar column holds the value."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from tests.fixtures.warehouse import load_fixture
from tests.warehouse.test_replication_unreadable import _live, _quarantine, _replicate


def test_an_unreadable_element_of_an_array_quarantines_its_row(pg_dsn, clickhouse_env, replicating):
    load_fixture(pg_dsn)
    replicating("deposits", "fees", "due_dates", "seen_at")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "alter table deposits add column fees numeric[], add column due_dates date[],"
            " add column seen_at timestamp[]"
        )
        ids = [row_id for (row_id,) in conn.execute("select id from deposits order by id")]
        assert len(ids) == 4
        for row_id, (fees, due_dates, seen_at) in zip(
            ids,
            [
                ("{1.5,NaN}", "{2026-01-01}", "{2026-01-01 08:00,infinity}"),
                ("{1.5}", "{2026-01-01,-infinity}", "{2026-01-01 08:00}"),
                # ClickHouse reads an unconstrained numeric as Decimal(38, 19): 19 integer digits at most.
                ("{2,123456789012345678901234567890}", "{2026-01-01}", "{2026-01-01 08:00}"),
                ("{1.5,2}", "{2026-01-01,2026-02-01}", "{2026-01-01 08:00}"),
            ],
            strict=True,
        ):
            conn.execute(
                "update deposits set fees = %s, due_dates = %s, seen_at = %s where id = %s",
                (fees, due_dates, seen_at, row_id),
            )

    first = _replicate(pg_dsn, "deposits")  # new columns: a reload from scratch, which no value stops
    assert (first.rows_copied, first.quarantined, first.live_rows) == (1, 3, 1)
    entries = _quarantine(clickhouse_env, "deposits")
    assert [entry[:2] for entry in entries] == [
        (ids[0], "fees"),
        (ids[0], "seen_at"),
        (ids[1], "due_dates"),
        (ids[2], "fees"),
    ]
    reasons = [reason for _, _, reason, _ in entries]
    assert "column fees holds NaN in its array" in reasons[0]
    assert "column seen_at holds infinity in its array" in reasons[1]
    assert "column due_dates holds -infinity in its array" in reasons[2]
    assert "column fees holds in its array a number of 30 integer and 0 fraction digits" in reasons[3]
    assert "Decimal(38, 19)" in reasons[3] and "12345" not in reasons[3]  # digits counted, not shown
    assert _live(clickhouse_env, "deposits", "fees") == {ids[3]: [Decimal("1.5"), Decimal("2")]}

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update deposits set fees = '{2,7.25}' where id = %s", (ids[2],))
    fixed = _replicate(pg_dsn, "deposits")  # incremental: the window's rows are checked alike
    assert (fixed.rows_copied, fixed.quarantined, fixed.live_rows) == (1, 2, 2)
    assert _live(clickhouse_env, "deposits", "fees")[ids[2]] == [Decimal("2"), Decimal("7.25")]
    assert [(entry[0], entry[1], entry[3]) for entry in _quarantine(clickhouse_env, "deposits")] == [
        (ids[0], "fees", False),
        (ids[0], "seen_at", False),
        (ids[1], "due_dates", False),
        (ids[2], "fees", True),
    ]
