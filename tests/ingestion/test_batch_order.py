"""A table's batches load in natural order (digit runs compared as numbers): they are upserts of the
same keys, so the text order, which put ``employees__10`` before ``employees__9``, let the older
batch overwrite the newer one's values."""

from __future__ import annotations

from ingestion.load.landing import landing_file, survey
from ingestion.load.pipeline import ingest
from orchestration.defs.ingestion.sensors import FILE_TAG
from tests.ingestion import landing_rows as rows
from tests.ingestion.test_dagster import run_requests, tick


def _batches(folder) -> list[str]:
    return [file.name for file in survey([str(folder)])[0]]


def test_survey_sorts_digit_runs_as_numbers_and_keeps_date_stamps_in_text_order(tmp_path):
    names = [
        "customers__10.csv",
        "customers__9.csv",
        "customers__part10.jsonl",
        "customers__part2.jsonl",
        "customers__20261130T0100.parquet",
        "customers__20261129T2300.parquet",
        "customers__2026_11.csv",
        "customers__2026_02.csv",
        "employees__10.csv",
    ]
    for name in names:
        (tmp_path / name).write_text("")
    assert _batches(tmp_path) == [
        "employees__10.csv",  # tables first in reference order, whatever their batches
        "customers__9.csv",
        "customers__10.csv",
        "customers__2026_02.csv",
        "customers__2026_11.csv",
        "customers__20261129T2300.parquet",
        "customers__20261130T0100.parquet",
        "customers__part2.jsonl",
        "customers__part10.jsonl",
    ]


def test_9_and_09_keep_one_order_whatever_the_listing(tmp_path):
    for name in ("employees__9.csv", "employees__09.csv", "employees__8.csv"):
        (tmp_path / name).write_text("")
    assert _batches(tmp_path) == ["employees__8.csv", "employees__09.csv", "employees__9.csv"]


def test_the_newest_batch_wins_on_every_path_into_the_database(landing, tmp_path, pg_dsn, run_ingest, sql):
    """The sensor requests a table's first pending batch only; a folder (``funnelhouse ingest DIR``,
    the assets) loads its batches in order; files handed over in any order are sorted too."""
    older = rows.write(landing, "employees", "9", [rows.employee(1, name="older")])
    rows.write(landing, "employees", "10", [rows.employee(1, name="newer")])

    (request,) = run_requests(tick(landing))
    assert request.tags[FILE_TAG] == str(older)

    assert list(run_ingest(landing)) == ["employees__9.csv", "employees__10.csv"]
    assert sql("SELECT name FROM employees") == [("newer",)]

    given = [
        landing_file(str(rows.write(tmp_path, "employees", batch, [rows.employee(1, name=name)])))
        for batch, name in (("part10", "part 10"), ("part2", "part 2"))
    ]
    results = ingest(pg_dsn, given)
    assert [r.file.name for r in results] == ["employees__part2.csv", "employees__part10.csv"]
    assert sql("SELECT name FROM employees") == [("part 10",)]
