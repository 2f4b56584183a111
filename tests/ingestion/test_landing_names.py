"""Landing file names as README's contract has them: ``<table>__<batch>.<csv|jsonl|parquet>``, the
batch made of letters, digits, ``_`` and ``-``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ingestion.load.landing import _skip_reason, landing_file, parse_name, survey
from orchestration.cli import app

BATCH_RULE = "a batch is [A-Za-z0-9_-]+ (README's landing contract: ASCII letters, digits, _ and -)"
# Names of known tables that are no landing file's (seen in production), and the reason of each.
MISNAMED = {
    "tags__b9 (1).csv": f"batch 'b9 (1)' has a space, '(' and ')': {BATCH_RULE}",
    "tags__2026 11 03.csv": f"batch '2026 11 03' has a space: {BATCH_RULE}",
    "tags__b1.CSV": "extension .CSV is not one of csv, jsonl, parquet (lower case only)",
    "customers__20261103.xlsx": "extension .xlsx is not one of csv, jsonl, parquet",
    "customers__20261103.json": "extension .json is not one of csv, jsonl, parquet",
    "tags__b31.csv.gz": "extension .csv.gz is not one of csv, jsonl, parquet",
    "customers__b1": "no extension: expected one of csv, jsonl, parquet",
}
# The rename convention: a file being written is named so, and is never listed; nor is an upload in
# progress (its size changes every tick), nor a marker or a backup kept beside a landing file.
SILENT = (
    "_tags__b1.CSV",
    ".tags__b9 (1).csv",
    "_manifest.json",
    "notes.txt",
    "notatable__a.xlsx",
    "tags__b1.csv.part",
    "tags__b 1.csv.filepart",
    "customers__b2.jsonl.tmp",
    "tags__b1.csv.crdownload",
    "tags__b2.csv.done",
    "tags__b2.csv.BAK",
)


def test_a_batch_may_hold_double_underscores_and_a_table_name_never_does():
    assert parse_name("customers__a__b.csv") == ("customers", "a__b", "csv")
    assert parse_name("customer_tags__2026-11_01.jsonl") == ("customer_tags", "2026-11_01", "jsonl")
    assert _skip_reason("customers__a__b.csv") is None  # a landing file: loaded, not skipped


def test_a_batch_outside_the_contract_is_skipped_with_the_rule():
    for name in ("customers__x.y.csv", "customers__a b.csv", "customers__.csv"):
        assert parse_name(name) is None, name
        reason = _skip_reason(name)
        assert reason is not None and BATCH_RULE in reason, (name, reason)
    assert _skip_reason("customers__.csv").startswith("the batch is empty")
    assert _skip_reason("notatable__a.csv").startswith("unknown table 'notatable'")
    assert _skip_reason("Customers.csv").startswith("name is not <table>__<batch>")  # no table's: as before


@pytest.mark.parametrize("name", MISNAMED)
def test_a_known_tables_name_is_skipped_with_why_whatever_its_extension_or_batch(name):
    assert parse_name(name) is None
    assert _skip_reason(name) == MISNAMED[name]


def test_a_marker_or_backup_of_a_name_that_is_no_landing_files_is_named():
    """A ``.done`` or ``.bak`` is silent beside a landing file's name only: after a misnamed one it
    says what is wrong with that name (the data file beside it is named too)."""
    assert _skip_reason("tags__b 1.csv.done") == (
        f"extension .csv.done is not one of csv, jsonl, parquet; batch 'b 1' has a space: {BATCH_RULE}"
    )


def test_both_a_bad_extension_and_a_bad_batch_are_named():
    assert _skip_reason("tags__b 1.xlsx") == (
        f"extension .xlsx is not one of csv, jsonl, parquet; batch 'b 1' has a space: {BATCH_RULE}"
    )


@pytest.mark.parametrize("name", SILENT)
def test_files_being_written_and_other_files_stay_silent(name):
    assert _skip_reason(name) is None


def test_survey_lists_every_misnamed_file_with_why_and_a_file_named_explicitly_is_refused_with_it(tmp_path):
    for name in (*MISNAMED, *SILENT, "tags__b2.csv"):
        (tmp_path / name).write_text("name\nx\n")
    files, skipped = survey([str(tmp_path)])
    assert [file.name for file in files] == ["tags__b2.csv"]
    assert {entry.name: entry.reason for entry in skipped} == MISNAMED
    assert all(entry.size == len("name\nx\n") and entry.modified for entry in skipped)  # its version

    with pytest.raises(ValueError, match=r"tags__b1\.CSV: not a landing file name \(extension \.CSV is"):
        landing_file(str(tmp_path / "tags__b1.CSV"))


def test_the_cli_lists_every_skipped_name_with_why(tmp_path):
    """A folder of misnamed files only: nothing to load, so no database is needed."""
    for name in (*MISNAMED, *SILENT):
        (tmp_path / name).write_text("name\nx\n")
    result = CliRunner().invoke(app, ["ingest", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"{len(MISNAMED)} file(s) skipped" in result.output, result.output
    lines = {line.strip() for line in result.output.splitlines()}
    for name, reason in MISNAMED.items():
        assert f"{name}: {reason}" in lines, (name, result.output)
    for name in SILENT:
        assert name not in result.output


@pytest.mark.parametrize("where", ["argument", "FUNNELHOUSE_LANDING"])
def test_a_landing_url_with_a_password_is_refused_without_showing_it(where, monkeypatch):
    """Every file's URL is recorded in the ledger, tagged on Dagster runs and logged: a password in
    it would be kept everywhere. Refused before anything is listed, saying where credentials go."""
    url = "ftp://loader:s3cr3t-pw@127.0.0.1:1/landing"
    for given in (url, f"simplecache::{url}"):
        with pytest.raises(ValueError, match="must not carry a password") as refused:
            survey([given])
        assert "s3cr3t-pw" not in str(refused.value) and "FSSPEC_FTP_PASSWORD" in str(refused.value)

    if where == "argument":
        arguments = ["ingest", url]
    else:
        monkeypatch.setenv("FUNNELHOUSE_LANDING", url)
        arguments = ["ingest"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code != 0 and "must not carry a password" in result.output
    assert "s3cr3t-pw" not in result.output
