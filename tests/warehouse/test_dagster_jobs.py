"""The warehouse jobs as Dagster runs them (in process, through the whole code location): the
hourly refresh carries a new PostgreSQL row to the marts (and records what its replication step copied
beside its mark: a period ending in between is not complete), a KPI partition run builds its mart, and the
nightly full build reports every dbt test (of models and of the raw sources) as an asset check."""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import utc_now
from ingestion.reports.periods import Period
from orchestration.defs.reports import runner
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import marts_schema
from tests.warehouse.conftest import LATE_DAY_SQL, quality_conversations_on_the_late_day


def _run(job_name: str, **kwargs) -> dg.ExecuteInProcessResult:
    from orchestration.definitions import defs

    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, **kwargs)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(str(event.event_specific_data) for event in result.all_events if event.is_failure)[
        -3000:
    ]


STILL_BEING_WRITTEN = (
    "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
    " sentiment, quality_score, platform, sent_at)"
    " values ('MSG_STILL_WRITTEN', 4, 3, 'text', 'outbound', 'positive', 9, 'wechat', now())"
)


def test_the_warehouse_jobs_run_through_dagster(
    built_as_of_the_real_day, pg_dsn, clickhouse_env, monkeypatch
):
    core = marts_schema().removesuffix("marts") + "core"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(new_id,), _] = conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " sentiment, quality_score, platform, sent_at)"
            " values ('MSG_DAGSTER', 4, 3, 'text', 'outbound', 'positive', 9, 'wechat', now() - interval '1 hour'),"
            # late news of an older month: neither the mart's first month nor yesterday's or today's
            f"        ('MSG_LATE', 4, 3, 'text', 'outbound', 'positive', 9, 'wechat', {LATE_DAY_SQL})"
            " returning id"
        ).fetchall()

    # A change still being written while the job replicates holds replication's bound at its start, so
    # a period that ends before the dbt step starts is after the refresh mark's... but not complete: the
    # reports read the earlier data bound recorded beside the mark (refresh_state.Refresh).
    with psycopg.connect(pg_dsn) as writer:
        writer.execute(STILL_BEING_WRITTEN)
        [(written_from,)] = writer.execute(
            "select (xact_start at time zone 'UTC')::timestamp from pg_stat_activity where pid = pg_backend_pid()"
        ).fetchall()
        time.sleep(0.05)
        period_end = utc_now()
        refresh = _run("warehouse_hourly_refresh")
        writer.rollback()  # (the quiet hour below stays quiet)
    assert refresh.success, _failure(refresh)
    client = clickhouse_client()
    messages = client.query(f"select conversation_id from `{core}`.fct_conversations").result_rows
    assert (new_id,) in messages
    models = refresh_state.models_refresh(client, clickhouse_env, marts_schema())
    assert models.data_through <= written_from < period_end < models.mark
    monkeypatch.delenv("FUNNELHOUSE_MARTS_DATABASE", raising=False)  # the reports read these marts
    monkeypatch.setattr(runner, "period_end", lambda period: period_end)
    with pytest.raises(runner.Incomplete):
        runner.check_complete(client, Period.daily(period_end.date()))
    # An hour without changes: dbt has nothing to run, and the refresh mark moves on all the same.
    marked = refresh_state.last_refresh(client, clickhouse_env, marts_schema())
    quiet = _run("warehouse_hourly_refresh")
    assert quiet.success, _failure(quiet)
    refreshed = refresh_state.last_refresh(client, clickhouse_env, marts_schema())
    assert refreshed > marked
    # The hourly job leaves the KPI mart to its own job: its mark stays behind until that runs.
    kpi_marked = refresh_state.last_kpi_refresh(client, clickhouse_env, marts_schema())
    assert kpi_marked is None or kpi_marked < refreshed

    today = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1).get_last_partition_key()
    kpi = _run("warehouse_kpi_daily", partition_key=today)
    assert kpi.success, _failure(kpi)
    checks = kpi.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)  # dbt tests of the mart, as asset checks
    days = client.query(f"select max(kpi_date) from `{marts_schema()}`.mart_kpi_employee_daily").result_rows
    assert str(days[0][0]) == today
    # ... and then it was built from the facts as of the last refresh (what the reports wait for)
    assert refresh_state.last_kpi_refresh(client, clickhouse_env, marts_schema()) == refreshed
    models, kpi_mart = refresh_state.recorded_refreshes(client, clickhouse_env, marts_schema())
    assert kpi_mart == models and kpi_mart.data_through is not None  # the models' data bound too
    in_mart, in_facts = quality_conversations_on_the_late_day(client, core)
    assert in_mart == in_facts - 1  # the hourly partition run leaves that month as it was

    # the nightly KPI schedule: every partition in one run, the whole mart rebuilt (--full-refresh)
    from orchestration.definitions import defs

    nightly_kpi = defs.resolve_schedule_def("warehouse_kpi_nightly_rebuild_schedule")
    with dg.build_schedule_context(
        repository_def=defs.get_repository_def(), scheduled_execution_time=dt.datetime.now(dt.UTC)
    ) as context:
        (request,) = nightly_kpi.evaluate_tick(context).run_requests
    everything = _run("warehouse_kpi_daily", tags=request.tags, run_config=request.run_config)
    assert everything.success, _failure(everything)
    assert quality_conversations_on_the_late_day(client, core) == (in_facts, in_facts)

    # (one test, one warehouse: building it is most of the cost)
    nightly = _run("warehouse_nightly_full_build")
    assert nightly.success, _failure(nightly)
    checks = nightly.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)
    checked = {check.asset_key.path[0] for check in checks}
    assert "raw" in checked and "mart_customer_overview" in checked  # source tests too, not observations
