"""Daily reports at 07:00 and weekly ones on Monday 07:00, in the report timezone (from the partitions)."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports

daily_reports_job = dg.define_asset_job("daily_kpi_reports_job", selection=[daily_kpi_reports])
weekly_reports_job = dg.define_asset_job("weekly_kpi_reports_job", selection=[weekly_kpi_reports])

daily_reports_schedule = dg.build_schedule_from_partitioned_job(
    daily_reports_job, name="daily_kpi_reports_schedule", default_status=dg.DefaultScheduleStatus.RUNNING
)
weekly_reports_schedule = dg.build_schedule_from_partitioned_job(
    weekly_reports_job, name="weekly_kpi_reports_schedule", default_status=dg.DefaultScheduleStatus.RUNNING
)
