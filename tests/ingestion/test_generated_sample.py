"""The generated sample end to end: exactly-once, idempotent, every bad row quarantined, nothing lost."""

from __future__ import annotations

import pytest

from ingestion.contracts import load_order
from ingestion.generate import Manifest, generate
from orchestration.commands.ingest import materialise_via_dagster

CUSTOMERS = 300


@pytest.fixture(scope="module")
def clean_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    generate(out, CUSTOMERS, seed=11)
    return out


@pytest.fixture(scope="module")
def dirty_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty")
    generate(out, CUSTOMERS, seed=12, bad_rows=0.02)
    return out


def table_fingerprints(sql) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every seed table, all columns (updated_at too)."""
    return {
        table: tuple(
            sql(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
                f"FROM {table} t"
            )[0]
        )
        for table in load_order()
    }


def test_the_sample_loads_through_the_assets_and_ingesting_again_changes_nothing(
    clean_sample, run_ingest, sql
):
    # First through the Dagster assets (what `make demo` does): one run, every file loaded.
    assert materialise_via_dagster(str(clean_sample))
    manifest = Manifest.read(clean_sample)
    ledger = dict(sql("SELECT path, rows_loaded FROM funnelhouse.ingest_files WHERE status = 'loaded'"))
    assert {path.rsplit("/", 1)[-1]: n for path, n in ledger.items()} == {
        f.file: f.rows for f in manifest.files
    }
    assert sql("SELECT count(DISTINCT run_id) FROM funnelhouse.ingest_files") == [(1,)]
    loaded = table_fingerprints(sql)
    assert all(loaded[t][0] == manifest.table_rows(t) for t in load_order())

    # Again, from the command line's code path: recognised by checksum, nothing runs.
    second = run_ingest(clean_sample)
    assert {r.status for r in second.values()} == {"duplicate"}
    assert table_fingerprints(sql) == loaded

    # Even with the ledger forgotten, the merge itself changes nothing (same rows, same updated_at).
    sql("DELETE FROM funnelhouse.ingest_files")
    third = run_ingest(clean_sample)
    assert {r.status for r in third.values()} == {"loaded"}
    assert sum(r.rows_changed for r in third.values()) == 0
    assert table_fingerprints(sql) == loaded


def test_every_bad_row_is_rejected_and_every_good_row_loaded(dirty_sample, run_ingest, sql):
    manifest = Manifest.read(dirty_sample)
    assert sum(len(f.bad_rows) for f in manifest.files) > 50
    results = run_ingest(dirty_sample)
    rejects: dict[str, set[int]] = {}
    unstorable: dict[str, set[int]] = {}
    for path, row, rule, reason in sql(
        "SELECT path, row_number, rule, reason FROM funnelhouse.ingest_rejects"
    ):
        assert reason
        rejects.setdefault(path.rsplit("/", 1)[-1], set()).add(row)
        if rule.startswith("storage:"):
            unstorable.setdefault(path.rsplit("/", 1)[-1], set()).add(row)
    for entry in manifest.files:
        result = results[entry.file]
        planned = {b.row for b in entry.bad_rows}
        # Besides the planned bad rows, only values PostgreSQL cannot store may be refused (the
        # generator can write e.g. a withdrawal rate of 3303.95 for a DECIMAL(5,2) column).
        assert planned <= rejects.get(entry.file, set()), entry.file
        assert rejects.get(entry.file, set()) - planned <= unstorable.get(entry.file, set()), entry.file
        assert (result.rows_in, result.rows_rejected) == (entry.rows, len(rejects.get(entry.file, ()))), (
            entry.file
        )
        assert result.rows_in == result.rows_loaded + result.rows_rejected
    ledger = sql(
        "SELECT count(*) FILTER (WHERE rows_in <> rows_loaded + rows_rejected), sum(rows_rejected) "
        "FROM funnelhouse.ingest_files WHERE status = 'loaded'"
    )
    assert ledger == [(0, sum(len(rows) for rows in rejects.values()))]
    for table in load_order():
        loaded = sum(r.rows_loaded for r in results.values() if r.file.table == table)
        assert sql(f"SELECT count(*) FROM {table}") == [(loaded,)], table
