"""Hourly incremental refresh, nightly full build, today's KPI partition every hour, every KPI
partition nightly.

The refresh and the nightly builds run on the sales team's clock like every other schedule
(``FUNNELHOUSE_TIMEZONE``); KPI partitions are UTC days, so their hourly schedule runs on UTC."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration import environment
from orchestration.defs.warehouse.dbt_assets import KPI_PARTITIONS
from orchestration.defs.warehouse.jobs import hourly_refresh_job, kpi_daily_job, nightly_full_build_job

hourly_refresh_schedule = dg.ScheduleDefinition(
    name="warehouse_hourly_refresh_schedule",
    job=hourly_refresh_job,
    cron_schedule="15 * * * *",
    execution_timezone=environment.schedule_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

nightly_full_build_schedule = dg.ScheduleDefinition(
    name="warehouse_nightly_full_build_schedule",
    job=nightly_full_build_job,
    cron_schedule="30 2 * * *",
    execution_timezone=environment.schedule_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def kpi_daily_schedule(job=kpi_daily_job) -> dg.ScheduleDefinition:
    """Today's partition every hour, half an hour after the refresh: a day's KPIs follow the day as it
    happens, so a report read at any hour finds them at most an hour old rather than as they stood
    at one early run. Each run also rebuilds yesterday (``kpi_window_vars``), which completes the
    day that just ended (by 00:45 UTC, before the managers' reports), also across a month's end."""

    @dg.schedule(
        name="warehouse_kpi_daily_schedule",
        job=job,
        cron_schedule="45 * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def kpi_today(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        today = KPI_PARTITIONS.get_partition_key_for_timestamp(context.scheduled_execution_time.timestamp())
        return dg.RunRequest(partition_key=today)

    return kpi_today


def kpi_nightly_schedule(job=kpi_daily_job) -> dg.ScheduleDefinition:
    """Every KPI partition in one run (one ``dbt build`` of the mart over its whole range: every month
    rebuilt), an hour after the nightly full build. The hourly partition runs rebuild only the months
    of yesterday and today (and the table's first and last): a late change to an older month (a
    deposit confirmed late, a corrected ``employee_kpis`` row, a deletion) reaches the mart here."""

    @dg.schedule(
        name="warehouse_kpi_nightly_rebuild_schedule",
        job=job,
        cron_schedule="30 3 * * *",
        execution_timezone=environment.schedule_timezone(),
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def kpi_every_day(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        today = KPI_PARTITIONS.get_partition_key_for_timestamp(context.scheduled_execution_time.timestamp())
        return dg.RunRequest(
            tags={
                ASSET_PARTITION_RANGE_START_TAG: KPI_PARTITIONS.get_first_partition_key(),
                ASSET_PARTITION_RANGE_END_TAG: today,
            }
        )

    return kpi_every_day
