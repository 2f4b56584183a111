"""The generated files follow the landing contract: names, formats, columns, values, keys, references."""

from __future__ import annotations

from collections import Counter

from ingestion.contracts import CONTRACTS
from ingestion.generate import MANIFEST_NAME
from tests.generate import landing


def test_every_table_has_files_named_by_the_pattern(clean_dir, clean):
    names = sorted(p.name for p in clean_dir.iterdir())
    assert MANIFEST_NAME in names
    landing_files = [n for n in names if n != MANIFEST_NAME]
    assert all(landing.LANDING_NAME.match(n) for n in landing_files), landing_files
    assert sorted(landing_files) == sorted(f.file for f in clean.manifest.files)
    assert {landing.LANDING_NAME.match(n)["table"] for n in landing_files} == set(CONTRACTS)


def test_all_three_formats_are_used(clean):
    formats = {f.table: f.format for f in clean.manifest.files}
    assert formats["conversations"] == "parquet"
    assert formats["conversation_events"] == "jsonl"
    assert formats["customers"] == "csv"
    assert set(formats.values()) == {"csv", "jsonl", "parquet"}


def test_columns_are_exactly_the_contract_landing_columns(clean_dir, clean):
    for entry in clean.manifest.files:
        expected = CONTRACTS[entry.table].landing_columns
        for columns in landing.columns_of(clean_dir / entry.file):
            assert columns == expected, entry.file


def test_manifest_row_counts_match_files(clean_dir, clean):
    for entry in clean.manifest.files:
        assert len(landing.read_rows(clean_dir / entry.file)) == entry.rows, entry.file


def test_clean_rows_satisfy_types_sets_ranges_and_patterns(clean):
    problems = [
        (table, r.file, r.row_number, r.problems)
        for table, rows in clean.good.items()
        for r in rows
        if r.problems
    ]
    assert not problems, problems[:10]
    assert not any(clean.bad.values())


def test_natural_keys_are_unique_across_all_files(clean):
    for table, contract in CONTRACTS.items():
        keys = Counter(tuple(r[k] for k in contract.natural_key) for r in clean.rows(table))
        duplicates = [k for k, n in keys.items() if n > 1]
        assert not duplicates, (table, duplicates[:5])
        assert all(None not in key for key in keys), table


def test_every_reference_resolves_to_a_generated_parent(clean):
    parents = landing.parent_keys(clean)
    for table in CONTRACTS:
        broken = [
            (r.file, r.row_number, p)
            for r in clean.good[table]
            for p in landing.reference_problems(clean, r, table, parents)
        ]
        assert not broken, (table, broken[:5])


def test_referrers_are_earlier_customers(clean):
    seen: set[str] = set()
    referred = 0
    for row in clean.rows("customers"):
        if row["referrer_code"]:
            referred += 1
            assert row["referrer_code"] in seen
            assert row["source_channel"] == "推荐"
        seen.add(row["customer_code"])
    assert referred > 0


def test_codes_follow_the_seed_patterns(clean):
    assert all(r["customer_code"].startswith("CUST_") for r in clean.rows("customers"))
    assert all(r["employee_code"].startswith("EMP_") for r in clean.rows("employees"))
    for row in clean.rows("deposits"):
        assert row["deposit_code"].startswith(f"DEP_{row['deposited_at']:%Y%m%d}_")
    for row in clean.rows("withdrawals"):
        assert row["withdrawal_code"].startswith(f"WTH_{row['requested_at']:%Y%m%d}_")
