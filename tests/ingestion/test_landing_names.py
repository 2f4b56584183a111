"""Landing file names as README's contract has them: ``<table>__<batch>.<csv|jsonl|parquet>``, the
batch made of letters, digits, ``_`` and ``-``."""

from __future__ import annotations

from ingestion.load.landing import _skip_reason, parse_name


def test_a_batch_may_hold_double_underscores_and_a_table_name_never_does():
    assert parse_name("customers__a__b.csv") == ("customers", "a__b", "csv")
    assert parse_name("customer_tags__2026-11_01.jsonl") == ("customer_tags", "2026-11_01", "jsonl")
    assert _skip_reason("customers__a__b.csv") is None  # a landing file: loaded, not skipped


def test_a_batch_outside_the_contract_is_skipped_with_the_rule():
    for name in ("customers__x.y.csv", "customers__a b.csv", "customers__.csv"):
        assert parse_name(name) is None, name
        reason = _skip_reason(name)
        assert reason is not None and "batch: letters, digits, _ and -" in reason, (name, reason)
    assert _skip_reason("notatable__a.csv").startswith("unknown table 'notatable'")
