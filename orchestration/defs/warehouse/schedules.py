"""Hourly incremental refresh, nightly full build, daily KPI partition. FUNNELHOUSE_SCHEDULE_TIMEZONE
sets the schedules' time zone (default UTC); it is read when the code location loads, not a secret."""

from __future__ import annotations

import os

import dagster as dg

from orchestration.defs.warehouse.jobs import hourly_refresh_job, kpi_daily_job, nightly_full_build_job


def schedule_timezone() -> str:
    return os.environ.get("FUNNELHOUSE_SCHEDULE_TIMEZONE", "UTC")


hourly_refresh_schedule = dg.ScheduleDefinition(
    name="warehouse_hourly_refresh_schedule",
    job=hourly_refresh_job,
    cron_schedule="15 * * * *",
    execution_timezone=schedule_timezone(),
)

nightly_full_build_schedule = dg.ScheduleDefinition(
    name="warehouse_nightly_full_build_schedule",
    job=nightly_full_build_job,
    cron_schedule="30 2 * * *",
    execution_timezone=schedule_timezone(),
)


def kpi_daily_schedule(job=kpi_daily_job) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, hour_of_day=3, minute_of_hour=0, name="warehouse_kpi_daily_schedule"
    )
