"""A landing file that cannot be read (gone since it was listed, or not ours to read) fails alone:
the sensor, ``pending`` and a run of the whole landing zone go on with the other files."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest
from typer.testing import CliRunner

from ingestion.load.landing import LandingFile, discover
from ingestion.load.loader import load_file
from ingestion.load.pipeline import connect, ingest, pending
from orchestration.cli import app
from orchestration.defs.ingestion.sensors import UNREADABLE_TAG
from tests.ingestion import landing_rows as rows
from tests.ingestion.test_dagster import execute, run_requests, tick


@pytest.fixture
def two_tables(landing):
    """employees and customers waiting in the landing folder, listed (not loaded)."""
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    return landing


def _opening_fails(monkeypatch, name: str, error: type[OSError], errno: int, text: str) -> None:
    """Opening the landing file ``name`` raises ``error``, any other file opens as usual."""
    opened = LandingFile.open

    def refusing(self, mode="rb"):
        if self.name == name:
            raise error(errno, text, self.url)
        return opened(self, mode)

    monkeypatch.setattr(LandingFile, "open", refusing)


@pytest.fixture
def unreadable_customers(monkeypatch):
    """Opening ``customers__b1.csv`` is refused, as for a file of another user's with mode 0600
    (the tests run as root, who may read anything)."""
    _opening_fails(monkeypatch, "customers__b1.csv", PermissionError, 13, "Permission denied")


def test_a_file_gone_since_listed_is_held_and_the_others_are_pending(two_tables, pg_dsn):
    files = discover([str(two_tables)])
    (two_tables / "customers__b1.csv").unlink()
    steps = []
    with connect(pg_dsn) as conn:
        waiting = pending(conn, files, on_step=steps.append)
    assert [file.name for file, _ in waiting] == ["employees__b1.csv"]
    assert len(steps) == 1 and steps[0].startswith("customers__b1.csv held (unreadable: ")


def test_a_run_of_the_landing_zone_loads_the_others_and_reports_the_file_gone(two_tables, pg_dsn, sql):
    rows.write(two_tables, "customers", "b2", [rows.customer(2)])
    files = discover([str(two_tables)])
    (two_tables / "customers__b1.csv").unlink()
    results = {r.file.name: r for r in ingest(pg_dsn, files)}
    assert {name: r.status for name, r in results.items()} == {
        "employees__b1.csv": "loaded",
        "customers__b1.csv": "failed",
        "customers__b2.csv": "loaded",
    }
    gone = results["customers__b1.csv"]
    assert gone.error.startswith(f"{gone.file.url}: unreadable: ") and gone.checksum is None
    assert sql("SELECT customer_code FROM customers") == [("CUST_0002",)]
    # Never read, it has no content to key a ledger row on: the result alone tells.
    assert sql("SELECT count(*) FROM funnelhouse.ingest_files WHERE path = %s", gone.file.url) == [(0,)]


def test_a_file_gone_after_hashing_is_recorded_failed_in_the_ledger(two_tables, pg_dsn, sql):
    with connect(pg_dsn) as conn:
        waiting = dict(pending(conn, discover([str(two_tables)])))
    customers = next(file for file in waiting if file.table == "customers")
    (two_tables / "customers__b1.csv").unlink()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        result = load_file(conn, customers, waiting[customers])
    assert result.status == "failed" and "unreadable: " in result.error
    assert sql(
        "SELECT status, position('unreadable' IN error) > 0 FROM funnelhouse.ingest_files WHERE path = %s",
        customers.url,
    ) == [("failed", True)]


def test_a_store_error_while_reading_is_left_to_a_retry_not_recorded_as_failed(
    two_tables, pg_dsn, sql, monkeypatch
):
    """A connection reset (S3, NFS) says nothing about the file: the run fails with no ledger row,
    so the sensor requests the file again, rather than a 'failed' row that settles it for good."""
    with connect(pg_dsn) as conn:
        waiting = dict(pending(conn, discover([str(two_tables)])))
    customers = next(file for file in waiting if file.table == "customers")

    _opening_fails(monkeypatch, customers.name, ConnectionResetError, 104, "Connection reset by peer")
    with psycopg.connect(pg_dsn, autocommit=True) as conn, pytest.raises(ConnectionResetError):
        load_file(conn, customers, waiting[customers])
    monkeypatch.undo()
    assert sql("SELECT count(*) FROM funnelhouse.ingest_files WHERE path = %s", customers.url) == [(0,)]
    with connect(pg_dsn) as conn:
        assert customers.url in [file.url for file, _ in pending(conn, discover([str(two_tables)]))]


def test_the_sensor_requests_the_others_when_a_file_cannot_be_opened(
    two_tables, pg_dsn, unreadable_customers
):
    requests = run_requests(tick(two_tables))
    assert [request.tags["funnelhouse/landing_file"] for request in requests] == [
        str(two_tables / "employees__b1.csv")
    ]
    # Once employees are in, conversations (of customers) still wait for the unreadable customers
    # file, as for a pending one: loaded now, their rows would be rejected as unknown customers.
    ingest(pg_dsn, discover([str(two_tables / "employees__b1.csv")]))
    rows.write(two_tables, "conversations", "b1", [rows.conversation(1)])
    requests = run_requests(tick(two_tables))
    # only the run that reports the unreadable file (below): nothing loads conversations yet
    assert [request.tags.get(UNREADABLE_TAG) for request in requests] == ["true"]


def test_a_file_that_cannot_be_read_is_alerted_by_a_run_failing_its_check(
    two_tables, pg_dsn, unreadable_customers
):
    """Held in silence, a file nobody may read would keep itself and everything depending on it out of
    the warehouse unseen: once nothing it depends on waits, the sensor requests one run per version of
    the file, whose landing_contract check fails with severity ERROR naming it (the failed-check alert
    mails that)."""
    ingest(pg_dsn, discover([str(two_tables / "employees__b1.csv")]))
    (request,) = run_requests(tick(two_tables))
    assert request.tags[UNREADABLE_TAG] == "true"
    assert request.run_key.startswith(str(two_tables / "customers__b1.csv") + ":unreadable:")
    assert run_requests(tick(two_tables))[0].run_key == request.run_key  # one per version of the file
    result = execute(request, two_tables)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "customers__b1.csv" in check.description and "could not be read" in check.description


def test_a_run_of_only_pending_files_skips_one_that_cannot_be_opened(
    two_tables, pg_dsn, unreadable_customers
):
    results = {r.file.name: r.status for r in ingest(pg_dsn, discover([str(two_tables)]), only_pending=True)}
    assert results == {"employees__b1.csv": "loaded"}


def test_ingest_of_the_landing_zone_fails_naming_a_file_it_could_not_read(
    two_tables, pg_dsn, unreadable_customers
):
    result = CliRunner().invoke(app, ["ingest"])
    assert result.exit_code == 1, result.output
    assert "customers__b1.csv held (unreadable: " in result.output
    assert "1 file(s) held unreadable: customers__b1.csv" in result.output


def test_via_dagster_a_file_it_could_not_read_fails_its_tables_check_and_the_command(
    two_tables, pg_dsn, unreadable_customers
):
    """The demo's path: the asset holds the file (nothing in the ledger), so its landing_contract check
    fails with severity ERROR naming it, and the command exits 1."""
    result = CliRunner().invoke(app, ["ingest", "--via-dagster", str(two_tables)])
    assert result.exit_code == 1, result.output
    assert "customers__b1.csv" in result.output and "could not be read" in result.output


def test_a_file_gone_since_listed_gets_no_report_run(two_tables, pg_dsn, monkeypatch):
    """A file deleted between the listing and its hashing is held, not reported: a run of it could not
    even find it (its step would fail), and the next tick no longer lists it."""
    ingest(pg_dsn, discover([str(two_tables / "employees__b1.csv")]))
    _opening_fails(monkeypatch, "customers__b1.csv", FileNotFoundError, 2, "No such file or directory")
    skipped = tick(two_tables)
    assert run_requests(skipped) == [] and "customers__b1.csv (unreadable: " in skipped.skip_message
