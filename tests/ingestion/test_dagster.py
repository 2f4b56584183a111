"""The Dagster layer against the real PostgreSQL: the landing sensor, and the assets' failure and checks."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from orchestration.defs.ingestion.assets import CRM_ASSETS, asset_key
from orchestration.defs.ingestion.definitions import defs
from orchestration.defs.ingestion.resources import LandingZone, ingestion_resources
from orchestration.defs.ingestion.sensors import (
    CHECKSUM_TAG,
    FILE_TAG,
    MAX_ATTEMPTS,
    SETTLE_ENV,
    crm_landing_sensor,
    still_written,
    warn_skipped,
)
from tests.ingestion import landing_rows as rows
from tests.ingestion.test_cli import lose_the_connection_while_loading


def sensor_context(
    landing, instance: dg.DagsterInstance | None = None, cursor: str | None = None
) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={**ingestion_resources(), "landing_zone": LandingZone(url=str(landing))},
        definitions=defs,
        cursor=cursor,
    )


def tick(
    landing,
    instance: dg.DagsterInstance | None = None,
    settle_seconds: float = 0,
    context: dg.SensorEvaluationContext | None = None,
):
    """One evaluation of the landing sensor. The files tests write are complete when they tick, so
    by default the sensor does not wait for them to settle."""
    context = context or sensor_context(landing, instance)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SETTLE_ENV, str(settle_seconds))
        return crm_landing_sensor(context)


def run_requests(result) -> list[dg.RunRequest]:
    return [] if isinstance(result, dg.SkipReason) else list(result)


def materialise(landing, *tables, run_config=None):
    selection = [a for a in CRM_ASSETS if a.key in {asset_key(t) for t in tables}]
    return dg.materialize(
        selection,
        resources={**ingestion_resources(), "landing_zone": LandingZone(url=str(landing))},
        run_config=run_config,
        raise_on_error=False,
    )


def execute(request: dg.RunRequest, landing):
    """What the daemon would do with the request: run its asset with its config."""
    (key,) = request.asset_selection
    return materialise(landing, key.path[-1], run_config=request.run_config)


def test_sensor_launches_one_run_per_new_file_in_dependency_order(landing, pg_dsn, sql):
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    rows.write(landing, "customers", "b2", [rows.customer(2)])
    rows.write(landing, "conversations", "b1", [rows.conversation(1)])
    (landing / "_manifest.json").write_text("{}")  # not a landing file: ignored

    # Customers wait for employees, conversations for both.
    first = run_requests(tick(landing))
    assert [r.tags[FILE_TAG] for r in first] == [str(landing / "employees__b1.csv")]
    assert first[0].run_key.startswith(str(landing / "employees__b1.csv") + ":")
    assert execute(first[0], landing).success

    # Batches of one table load one after the other, in batch order: an older batch loaded after
    # a newer one would overwrite it.
    for batch in ("customers__b1.csv", "customers__b2.csv"):
        (request,) = run_requests(tick(landing))
        assert request.tags[FILE_TAG].rsplit("/", 1)[-1] == batch
        assert execute(request, landing).success

    third = run_requests(tick(landing))
    assert [r.asset_selection for r in third] == [[asset_key("conversations")]]
    assert execute(third[0], landing).success
    assert sql("SELECT count(*) FROM conversations") == [(1,)]

    # Everything is in the ledger now: nothing to launch, also for a re-dropped copy of a file.
    (landing / "customers__again.csv").write_bytes((landing / "customers__b1.csv").read_bytes())
    assert [r.tags[FILE_TAG].rsplit("/", 1)[-1] for r in run_requests(tick(landing))] == []
    skipped = tick(landing)
    assert isinstance(skipped, dg.SkipReason) and "no new landing file" in skipped.skip_message

    # A changed file under a known name is new content: one run.
    rows.write(landing, "customers", "b2", [rows.customer(2, tier="S")])
    assert [r.tags[FILE_TAG].rsplit("/", 1)[-1] for r in run_requests(tick(landing))] == ["customers__b2.csv"]


def _tick_warnings(landing, caplog, context) -> tuple[object, list[str]]:
    """One tick of the landing sensor in ``context``, and the warnings it logged."""
    caplog.clear()
    context.log.addHandler(caplog.handler)
    result = tick(landing, context=context)
    return result, [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_misnamed_files_are_named_with_why_once_per_version(landing, pg_dsn, caplog):
    """They never load until renamed: a warning names each, and every tick that launches nothing."""
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    misnamed = {
        "tags__b9 (1).csv": "batch 'b9 (1)' has a space, '(' and ')': a batch is [A-Za-z0-9_-]+",
        "tags__2026 11 03.csv": "batch '2026 11 03' has a space: a batch is [A-Za-z0-9_-]+",
        "tags__b1.CSV": "extension .CSV is not one of csv, jsonl, parquet",
        "notatable__a.csv": "unknown table 'notatable'",
    }
    for name in misnamed:
        (landing / name).write_text("name\nx\n")
    for name in ("_tags__b1.CSV", ".tags__b2 (1).csv"):  # being written, to be renamed: silent
        (landing / name).write_text("name\nx\n")

    def tick_warnings(context) -> tuple[object, list[str]]:
        return _tick_warnings(landing, caplog, context)

    first = sensor_context(landing)
    result, (warning,) = tick_warnings(first)
    assert [r.tags[FILE_TAG] for r in run_requests(result)] == [str(landing / "employees__b1.csv")]
    assert "4 file(s) in the landing zone skipped" in warning
    for name, reason in misnamed.items():
        assert f"{name} ({reason}" in warning, (name, warning)
    assert "_tags__b1" not in warning and ".tags__b2" not in warning

    # Named once per version of a file: not again at the next tick, again once it changes.
    assert tick_warnings(sensor_context(landing, cursor=first.cursor))[1] == []
    (landing / "tags__b1.CSV").write_text("name\nx\ny\n")
    again = sensor_context(landing, cursor=first.cursor)
    (warning,) = tick_warnings(again)[1]
    assert warning.startswith("1 file(s)") and f"tags__b1.CSV ({misnamed['tags__b1.CSV']}" in warning

    # A tick that launches nothing names them in its skip message, every time.
    (landing / "employees__b1.csv").unlink()
    skipped, _ = tick_warnings(sensor_context(landing, cursor=again.cursor))
    assert isinstance(skipped, dg.SkipReason)
    assert "4 skipped, not landing files: " in skipped.skip_message
    for name, reason in misnamed.items():
        assert f"{name} ({reason}" in skipped.skip_message, (name, skipped.skip_message)


def test_thousands_of_skipped_files_are_counted_past_the_first_ten_and_keep_the_cursor_small(
    landing, pg_dsn, caplog
):
    """Files kept beside loaded ones (compressed copies: named; ``.done`` markers: silent) by the
    thousand: the warning and every tick's skip message name ten with why and count the rest, and the
    cursor keeps a short digest per version, not its URL. An upload in progress, its size changing
    every tick, is never named."""
    count = 2000
    for i in range(count):
        (landing / f"deposits__2026_h{i}.csv.gz").write_text("x")
        (landing / f"deposits__2026_h{i}.csv.done").write_text("")
    upload = landing / "deposits__2026_h9999.csv.part"
    upload.write_text("x")

    first = sensor_context(landing)
    skipped, (warning,) = _tick_warnings(landing, caplog, first)
    assert isinstance(skipped, dg.SkipReason)
    for message in (warning, skipped.skip_message):
        assert f"{count}" in message and f"; ... and {count - 10} more" in message, message
        assert message.count("(extension .csv.gz is not one of csv, jsonl, parquet)") == 10, message
        assert ".done" not in message and ".part" not in message, message
        assert len(message) < 2_000, len(message)
    assert f"{count} skipped, not landing files: " in skipped.skip_message
    assert len(first.cursor) < count * 16 + 2, len(first.cursor)
    assert str(landing) not in first.cursor

    upload.write_text("xx")  # the upload goes on: a new version, still silent
    again = sensor_context(landing, cursor=first.cursor)
    assert _tick_warnings(landing, caplog, again)[1] == []
    (landing / "deposits__2026_h0.csv.gz").write_text("xy")  # a new version: named again, alone
    (warning,) = _tick_warnings(landing, caplog, sensor_context(landing, cursor=again.cursor))[1]
    assert warning.startswith("1 file(s)") and "deposits__2026_h0.csv.gz (" in warning
    assert "more" not in warning


def test_versions_named_in_an_earlier_releases_cursor_are_not_named_again(caplog):
    """Its cursor held each version's text (``url:size:modified``): read as their digests."""
    from ingestion.load.landing import Skipped

    skipped = [Skipped("/landing/tags__b1.CSV", "extension .CSV ...", 8, "1764547200.0")]
    context = dg.build_sensor_context(cursor=json.dumps(["/landing/tags__b1.CSV:8:1764547200.0"]))
    context.log.addHandler(caplog.handler)
    warn_skipped(context, skipped)
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
    assert json.loads(context.cursor) == [
        hashlib.sha1(b"/landing/tags__b1.CSV:8:1764547200.0").hexdigest()[:12]
    ]


def _age(path, seconds: float) -> None:
    """Make ``path`` look last modified ``seconds`` ago (instead of waiting that long)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_file_still_being_written_waits_until_it_has_settled(landing, pg_dsn, sql):
    """A tick meeting a half-copied file would load its cut-off last row as complete."""
    employees = rows.write(landing, "employees", "b1", [rows.employee(1), rows.employee(2)])
    complete = employees.read_bytes()
    employees.write_bytes(complete[: complete.rindex(b"EMP_002") + len(b"EMP_0")])  # copy under way
    customers = rows.write(landing, "customers", "b1", [rows.customer(1)])
    _age(customers, 3600)

    held = tick(landing, settle_seconds=60)
    assert isinstance(held, dg.SkipReason)
    assert re.search(r"employees__b1\.csv \(modified \ds ago, may still be being written", held.skip_message)
    assert "customers__b1.csv (waits for employees)" in held.skip_message  # it still blocks its dependents

    employees.write_bytes(complete)  # the copy ends: it settles from now on
    _age(employees, 30)
    assert isinstance(tick(landing, settle_seconds=60), dg.SkipReason)

    _age(employees, 61)
    (request,) = run_requests(tick(landing, settle_seconds=60))
    assert request.tags[FILE_TAG] == str(employees)
    assert request.tags[CHECKSUM_TAG] == hashlib.sha256(complete).hexdigest()
    assert execute(request, landing).success
    assert sql("SELECT employee_code FROM employees ORDER BY 1") == [("EMP_001",), ("EMP_002",)]


def test_remote_stores_modification_stamps_are_waited_for_too():
    """The stamps object stores list (S3's LastModified, GCS's updated ...) are dates, not floats."""
    from datetime import UTC, datetime

    from ingestion.load.landing import landing_file

    now = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC).timestamp()
    stamps = {
        "employees__local.csv": str(now - 5),  # a local mtime
        "employees__s3.csv": "2026-12-01 09:59:30+00:00",  # str(LastModified)
        "employees__gcs.csv": "2026-12-01T09:58:00.000Z",  # settled 120 s ago
        "employees__naive.csv": "2026-12-01 09:59:50",  # taken as UTC
        "employees__unknown.csv": "yesterday",  # unreadable: not waited for
    }
    files = [landing_file(f"s3://bucket/landing/{name}", 10, stamp) for name, stamp in stamps.items()]
    waiting = still_written(files, 60, now)
    assert {url.rsplit("/", 1)[-1]: age for url, age in waiting.items()} == {
        "employees__local.csv": 5,
        "employees__s3.csv": 30,
        "employees__naive.csv": 10,
    }
    assert still_written(files, 0, now) == {}


@dg.op
def _noop():
    pass


@dg.job
def _stand_in():
    _noop()


def test_a_killed_run_is_requested_again_until_its_attempts_are_used(landing, pg_dsn):
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    instance = dg.DagsterInstance.ephemeral()
    keys = []
    for _ in range(MAX_ATTEMPTS):
        (request,) = run_requests(tick(landing, instance))
        keys.append(request.run_key)
        # the daemon starts it: while it is queued or running, nothing more is requested
        run = instance.create_run_for_job(_stand_in, tags=request.tags, status=dg.DagsterRunStatus.STARTED)
        assert "queued or running" in tick(landing, instance).skip_message
        # ... and it is killed before the file's transaction commits: the file is still pending
        instance.report_run_canceled(run)
    assert len(set(keys)) == MAX_ATTEMPTS and keys[1].endswith(":attempt-2")
    held = tick(landing, instance)
    assert isinstance(held, dg.SkipReason) and f"{MAX_ATTEMPTS} runs of it ended" in held.skip_message


def test_asset_reports_rejects_in_its_check(landing, pg_dsn, sql):
    rows.write(landing, "employees", "b1", [rows.employee(1), rows.employee(2, role="intern")])
    result = materialise(landing, "employees")
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["rows_rejected"].value == 1
    assert check.metadata["expectations"].value["in_set:role"] == {
        "expectation": "expect_column_values_to_be_in_set",
        "unexpected": 1,
    }
    (materialization,) = result.asset_materializations_for_node("crm__employees")
    assert materialization.metadata["rows_loaded"].value == 1
    assert materialization.metadata["files"].value == 1
    assert [url.rsplit("/", 1)[-1] for url in materialization.metadata["file_urls"].value] == [
        "employees__b1.csv"
    ]


def test_a_broken_file_fails_the_check_and_the_files_that_loaded_are_still_reported(landing, pg_dsn, sql):
    """The loader records a failed file in the ledger; the asset says so in an ERROR check, and
    still reports (and materialises) what the run's other files changed in PostgreSQL."""
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    (landing / "employees__b2.csv").write_bytes(b"not,a,landing,file\n1,2,3,4\n")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [a for a in CRM_ASSETS if a.key == asset_key("employees")],
        resources={**ingestion_resources(), "landing_zone": LandingZone(url=str(landing))},
        instance=instance,
        raise_on_error=False,
    )
    assert result.success  # the failure is the check's: the dependants are not blocked

    check_key = dg.AssetCheckKey(asset_key("employees"), "landing_contract")
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])[check_key]
    assert record.status == AssetCheckExecutionRecordStatus.FAILED  # evaluated, not left PLANNED
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "1 of 2 employees file(s) failed" in check.description
    assert "employees__b2.csv" in check.description and "missing column" in check.description
    assert check.metadata["files_failed"].value == 1

    (materialization,) = result.asset_materializations_for_node("crm__employees")
    meta = materialization.metadata
    assert (meta["files"].value, meta["files_failed"].value, meta["rows_loaded"].value) == (2, 1, 1)
    assert "| employees__b1.csv | loaded | 1 | 1 |" in meta["per_file"].value
    assert "| employees__b2.csv | failed |" in meta["per_file"].value
    assert sql("SELECT employee_code FROM employees") == [("EMP_001",)]


def test_a_connection_lost_mid_load_fails_the_step_naming_the_file_and_what_to_run(
    landing, pg_dsn, sql, monkeypatch
):
    """The backend is terminated while customers__b2.csv loads: the step fails (Dagster skips the
    dependants) with a description naming the file, that it was rolled back, and what to run again;
    not a bare psycopg AdminShutdown."""
    lose_the_connection_while_loading(monkeypatch, pg_dsn, "customers__b2.csv")
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    b2 = rows.write(landing, "customers", "b2", [rows.customer(2)])
    result = materialise(landing, "employees", "customers")
    assert not result.success
    failure = result.failure_data_for_node("crm__customers")
    assert failure is not None and failure.user_failure_data is not None, failure
    description = failure.user_failure_data.description
    assert "The connection to PostgreSQL was lost while loading " in description
    assert "customers__b2.csv: terminating connection due to administrator command (SQLSTATE 57P01)." in (
        description
    )
    assert "customers__b2.csv was rolled back, nothing of it loaded, unless its commit" in description
    assert "1 file(s) finished before (committed)" in description
    assert (
        "Once PostgreSQL is up, materialise crm/customers again, or run `funnelhouse ingest " in description
    )
    assert description.endswith(f"{b2.name}`")
    assert sql("SELECT count(*) FROM customers") == [(1,)]  # b1, committed before


@pytest.mark.parametrize("asset", CRM_ASSETS, ids=lambda a: a.key.to_user_string())
def test_assets_follow_the_contract_dependencies(asset):
    from ingestion.contracts import CONTRACTS

    table = asset.key.path[-1]
    assert asset.key == dg.AssetKey(["crm", table])
    deps = {dep.path[-1] for dep in asset.asset_deps[asset.key]}
    assert deps == set(CONTRACTS[table].depends_on)


def test_the_run_log_shows_a_long_load_progressing_without_a_line_per_chunk():
    from ingestion.load.landing import LandingFile
    from orchestration.ingest_log import LogObserver

    class Log:
        def __init__(self):
            self.lines: list[str] = []

        def info(self, line: str) -> None:
            self.lines.append(line)

    log, now = Log(), [0.0]
    observer = LogObserver(log, every_seconds=15, clock=lambda: now[0])
    observer.file_started(
        LandingFile("/landing/conversations__b1.csv", "conversations", "b1", "csv", size=2_500_000_000), 0, 2
    )
    for _ in range(100):  # a chunk of 50,000 rows every second for 100 s
        now[0] += 1
        observer.rows_read(50_000)
    assert log.lines[0] == "conversations__b1.csv: loading (file 1 of 2, 2,500.0 MB)"
    progress = log.lines[1:]
    assert len(progress) == 6  # at 15, 30, ... 90 s
    assert progress[0] == "conversations__b1.csv: 750,000 rows read so far"
    assert progress[-1] == "conversations__b1.csv: 4,500,000 rows read so far"


def test_a_backlog_of_held_files_is_named_ten_at_a_time(landing, pg_dsn):
    """Thousands of files waiting for their table's first batch: the skip message names ten."""
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    for batch in range(1, 31):
        rows.write(landing, "customers", f"b{batch:02d}", [rows.customer(batch)])
    skipped = tick(landing, settle_seconds=3600)  # every file modified just now: all held
    assert isinstance(skipped, dg.SkipReason)
    assert "31 held: " in skipped.skip_message and "; ... and 21 more" in skipped.skip_message


def _request_and_run(landing, instance, name: str) -> dg.RunRequest:
    """The one request of the next tick, for the file ``name``, executed as the daemon would."""
    (request,) = run_requests(tick(landing, instance))
    assert request.tags[FILE_TAG] == str(landing / name)
    assert execute(request, landing).success
    return request


def test_rows_whose_parent_arrives_in_a_later_file_say_how_they_load(landing, pg_dsn, sql, run_ingest):
    """A dependant dropped before its parent: its rows naming the parent's keys are rejected, and the
    file's error and the rows' reasons say what loads them (the sensor does not request a path it
    tried again): `funnelhouse ingest PATH` once the parent has loaded; never "fix the file"."""
    instance = dg.DagsterInstance.ephemeral()
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    _request_and_run(landing, instance, "employees__b1.csv")
    _request_and_run(landing, instance, "customers__b1.csv")
    every = rows.write(landing, "deposits", "s1", [rows.deposit(1, customer_code="CUST_SX1")])
    some = rows.write(
        landing,
        "deposits",
        "s2",
        [rows.deposit(2, customer_code="CUST_0001"), rows.deposit(3, customer_code="CUST_SX2")],
    )
    _request_and_run(landing, instance, "deposits__s1.csv")
    _request_and_run(landing, instance, "deposits__s2.csv")
    (error,) = sql("SELECT error FROM funnelhouse.ingest_files WHERE path = %s", str(every))[0]
    assert "all 1 rows rejected" in error and "fix the file" not in error
    assert f"once customers has loaded the key, run `funnelhouse ingest {every}`" in error
    (reason,) = sql("SELECT reason FROM funnelhouse.ingest_rejects WHERE path = %s", str(some))[0]
    assert reason.endswith(
        f"once customers has loaded the key, run `funnelhouse ingest {some}` (or drop the file again "
        "under a new name) to load this row: the landing sensor does not retry a path it tried"
    )

    rows.write(
        landing,
        "customers",
        "s1",
        [rows.customer(3, customer_code="CUST_SX1"), rows.customer(4, customer_code="CUST_SX2")],
    )
    _request_and_run(landing, instance, "customers__s1.csv")
    assert "no new landing file" in tick(landing, instance).skip_message
    # What the messages say to run loads the rows; those loaded before merge again unchanged.
    assert run_ingest(every)[every.name].rows_loaded == 1
    retried = run_ingest(some)[some.name]
    assert (retried.status, retried.rows_loaded, retried.rows_rejected, retried.rows_changed) == (
        "loaded",
        2,
        0,
        1,
    )
    assert sorted(sql("SELECT deposit_code FROM deposits")) == [
        ("DEP_20250101_1",),
        ("DEP_20250101_2",),
        ("DEP_20250101_3",),
    ]
