"""--bad-rows: the manifest is exact ground truth, and the good data is untouched."""

from __future__ import annotations

from ingestion.contracts import CONTRACTS
from ingestion.generate.bad_rows import KINDS, TYPED_FORMAT_KINDS
from tests.generate import landing
from tests.generate.conftest import BAD_FRACTION

_PROBLEM_OF_KIND = {
    "wrong_type": "wrong_type/bad_date",
    "bad_date": "wrong_type/bad_date",
    "out_of_range": "out_of_range",
    "unknown_enum": "unknown_enum",
    "missing_required": "missing_required",
    "broken_reference": "broken_reference",
}


def test_about_the_requested_fraction_is_bad(dirty):
    files = dirty.manifest.files
    total = sum(f.rows for f in files)
    bad = sum(len(f.bad_rows) for f in files)
    assert 0.6 * BAD_FRACTION < bad / total < 1.5 * BAD_FRACTION
    for entry in files:
        if entry.rows - len(entry.bad_rows) >= 20:
            assert entry.bad_rows, entry.file
    assert {b.kind for f in files for b in f.bad_rows} == set(KINDS)


def test_each_listed_row_has_its_stated_defect(dirty):
    parents = landing.parent_keys(dirty)
    kinds_by_file = {f.file: {b.row: b for b in f.bad_rows} for f in dirty.manifest.files}
    for table, rows in dirty.bad.items():
        for located in rows:
            stated = kinds_by_file[located.file][located.row_number]
            found = located.problems + landing.reference_problems(dirty, located, table, parents)
            expected = f"{_PROBLEM_OF_KIND[stated.kind]} {stated.column}"
            assert any(p.startswith(expected) for p in found), (
                located.file,
                located.row_number,
                stated,
                found,
            )


def test_rows_not_listed_are_good(dirty):
    parents = landing.parent_keys(dirty)
    for table, rows in dirty.good.items():
        for located in rows:
            assert not located.problems, (located.file, located.row_number, located.problems)
            assert not landing.reference_problems(dirty, located, table, parents), (
                located.file,
                located.row_number,
            )


def test_bad_rows_never_reuse_a_good_natural_key(dirty):
    for table, contract in CONTRACTS.items():
        good = {tuple(r[k] for k in contract.natural_key) for r in dirty.rows(table)}
        for located in dirty.bad[table]:
            key = tuple(located.typed.get(k) for k in contract.natural_key)
            assert key not in good, (table, located.file, located.row_number, key)


def test_parquet_files_only_get_typed_defects(dirty):
    for entry in dirty.manifest.files:
        if entry.format == "parquet":
            assert {b.kind for b in entry.bad_rows} <= set(TYPED_FORMAT_KINDS), entry.file


def test_good_rows_identical_to_a_clean_run(clean, dirty):
    for table in CONTRACTS:
        assert dirty.rows(table) == clean.rows(table), table
