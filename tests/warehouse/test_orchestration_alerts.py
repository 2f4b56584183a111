"""The code location's run-failure alert: it reacts to a failed run of any of its jobs (backups,
ingestion, reports, a materialisation started by hand), once each."""

from __future__ import annotations

import uuid

import dagster as dg
from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorDefinition


def _failure_sensors(repository) -> list[RunStatusSensorDefinition]:
    return [sensor for sensor in repository.sensor_defs if isinstance(sensor, RunStatusSensorDefinition)]


def _fail_a_run(instance, job_name: str) -> str:
    """A run record as the daemon would have made it, then failed (what the sensor reads)."""
    run = instance.add_run(
        dg.DagsterRun(job_name=job_name, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
    )
    instance.report_run_failed(run)
    return run.run_id


def test_a_failed_run_of_any_job_is_alerted_once(monkeypatch):
    from orchestration.definitions import defs

    monkeypatch.delenv("FUNNELHOUSE_ALERT_EMAIL", raising=False)  # logged only: no mail relay here
    repository = defs.get_repository_def()
    (sensor,) = _failure_sensors(repository)
    instance = dg.DagsterInstance.ephemeral()
    cursor = sensor.evaluate_tick(dg.build_sensor_context(instance=instance)).cursor  # starts from now

    # every job of the location, and the implicit job of a materialisation started from the UI
    job_names = sorted({job.name for job in repository.get_all_jobs()} | {"__ASSET_JOB"})
    assert {"postgres_backup_job", "crm_ingest", "warehouse_hourly_refresh"} <= set(job_names)
    failed = {_fail_a_run(instance, name): name for name in job_names}

    alerted: list[str] = []
    for _ in range(len(job_names) + 1):  # Dagster takes a few runs per tick
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
        cursor = data.cursor
        assert all(reaction.error is None for reaction in data.dagster_run_reactions)
        alerted += [reaction.dagster_run.run_id for reaction in data.dagster_run_reactions]
    assert sorted(failed[run_id] for run_id in alerted) == job_names  # each once, none left out
