"""The landing sensor reads each version of a landing file once: a backlog it requests one batch of
per tick, or a loaded folder merely touched, is not hashed again on every tick."""

from __future__ import annotations

import os

import pytest

from ingestion.load import pipeline
from tests.ingestion import landing_rows as rows
from tests.ingestion.test_dagster import run_requests, tick


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """Names of the files the sensor hashes, in order (``checksum_of`` wrapped, not replaced)."""
    names: list[str] = []
    real = pipeline.checksum_of

    def counting(file, on_step=None):
        names.append(file.name)
        return real(file, on_step)

    monkeypatch.setattr(pipeline, "checksum_of", counting)
    return names


def test_a_second_tick_over_an_unchanged_backlog_reads_no_file_again(landing, pg_dsn, hashed):
    for batch in range(1, 6):
        rows.write(landing, "customers", str(batch), [rows.customer(batch, assigned_employee_code=None)])
    first = run_requests(tick(landing))
    assert [r.tags["funnelhouse/landing_file"] for r in first] == [str(landing / "customers__1.csv")]
    assert len(hashed) == 5
    hashed.clear()
    second = run_requests(tick(landing))
    assert [r.run_key for r in second] == [r.run_key for r in first]  # (Dagster drops the repeat)
    assert hashed == []


def test_a_touched_loaded_folder_is_read_once(landing, pg_dsn, run_ingest, hashed):
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    assert {r.status for r in run_ingest(landing).values()} == {"loaded"}
    for path in landing.iterdir():
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime - 3600))  # touched: a new stamp
    assert run_requests(tick(landing)) == []
    assert sorted(hashed) == ["customers__b1.csv", "employees__b1.csv"]  # the new version, once
    hashed.clear()
    assert run_requests(tick(landing)) == []
    assert hashed == []
