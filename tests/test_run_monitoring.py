"""Run monitoring ends runs whose worker died (`dagster dev` restarted, a reboot mid-run). The default
run launcher cannot see a dead worker, so such a run stays STARTED, holding the `warehouse` pool, the
hourly schedule and the landing sensor, until it exceeds its maximum runtime: the shipped instance
settings must enable monitoring, and the jobs that write carry limits of their own."""

import datetime as dt
import logging
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

from orchestration.definitions import defs
from orchestration.defs.warehouse.replication_assets import WAREHOUSE_POOL

REPO = Path(__file__).resolve().parents[1]
HOUR = 60 * 60

# Jobs writing PostgreSQL or the search index, each with a limit of its own (the report jobs, and runs
# of an asset selection, fall back on the instance's `max_runtime_seconds`).
OTHER_WRITERS = ("crm_ingest", "search_sync", "search_full_rebuild", "postgres_backup_job")


@pytest.fixture
def shipped_instance(tmp_path, monkeypatch):
    """The instance `make ui` runs Dagster on: devstack/dagster.yaml in a DAGSTER_HOME of its own."""
    (tmp_path / "dagster.yaml").write_bytes((REPO / "devstack" / "dagster.yaml").read_bytes())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        yield instance


def _max_runtime(job: dg.JobDefinition) -> int | None:
    value = job.run_tags.get(dg.MAX_RUNTIME_SECONDS_TAG)
    return int(value) if value is not None else None


def test_the_shipped_instance_settings_enable_run_monitoring(shipped_instance):
    assert shipped_instance.run_monitoring_enabled
    assert shipped_instance.run_monitoring_start_timeout_seconds > 0  # runs stuck STARTING
    assert shipped_instance.run_monitoring_max_runtime_seconds >= HOUR  # runs without a limit of their own


def test_every_job_that_writes_has_a_max_runtime_of_its_own():
    jobs = defs.get_repository_def().get_all_jobs()
    warehouse_writers = {
        job.name for job in jobs if WAREHOUSE_POOL in {op.pool for op in job.graph.iterate_op_defs()}
    }
    warehouse_writers.discard("__ASSET_JOB")  # Dagster's own job of every asset (the UI's Materialize)
    assert {
        "warehouse_hourly_refresh",
        "warehouse_kpi_daily",
        "warehouse_nightly_full_build",
    } <= warehouse_writers
    limits = {job.name: _max_runtime(job) for job in jobs}
    for name in (*warehouse_writers, *OTHER_WRITERS):
        # an hour at least: far above a real run of any of them (a full build takes under a minute)
        assert limits[name] is not None and limits[name] >= HOUR, (name, limits[name])


class _MonitoringDaemon:
    """What one iteration of the monitoring daemon reads of its workspace: the instance (the default run
    launcher checks no worker's health, so the code location is never asked)."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def create_request_context(self):
        return None


def _started_run(instance: dg.DagsterInstance, job: dg.JobDefinition, seconds_ago: int) -> str:
    """A run of ``job`` with the tags a schedule or sensor gives it, started ``seconds_ago`` by a worker
    that is gone (none ever ran)."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name=job.name,
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTING,
            tags=job.run_tags,
        )
    )
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    start = dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=job.name)
    instance.run_storage.handle_run_event(run.run_id, start, update_timestamp=started)
    return run.run_id


def test_monitoring_fails_a_started_run_past_its_max_runtime(shipped_instance):
    refresh = defs.resolve_job_def("warehouse_hourly_refresh")
    limit = _max_runtime(refresh)
    dead = _started_run(shipped_instance, refresh, seconds_ago=limit + 60)
    running = _started_run(shipped_instance, refresh, seconds_ago=limit - 60)
    # no tag of its own: the instance's longer limit applies
    report = _started_run(shipped_instance, defs.resolve_job_def("daily_kpi_reports_job"), limit + 60)

    errors = [
        error
        for error in execute_run_monitoring_iteration(
            _MonitoringDaemon(shipped_instance), logging.getLogger()
        )
        if error
    ]
    assert not errors, errors

    status = {run_id: shipped_instance.get_run_by_id(run_id).status for run_id in (dead, running, report)}
    assert status == {
        dead: dg.DagsterRunStatus.FAILURE,
        running: dg.DagsterRunStatus.STARTED,
        report: dg.DagsterRunStatus.STARTED,
    }
    # why, in the run's log; and the event the run-failure sensor alerts on (the worker being gone, no
    # one acknowledges the termination: the run is forcibly marked as failed)
    canceling = shipped_instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_CANCELING)
    assert any(f"exceeding maximum runtime of {limit} seconds" in event.message for event in canceling)
    assert shipped_instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)
