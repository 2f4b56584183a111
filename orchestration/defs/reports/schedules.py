"""Daily reports at 07:00 and weekly ones on Monday 07:00, on the managers' clock (the report timezone).

Each run reports the KPI day (or week) the schedule fires in: 07:00 in Asia/Shanghai is 23:00 UTC of
the day being reported (``partitions.py``), the week's last day on a Monday morning."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.reports.partitions import REPORT_HOUR, REPORT_TIMEZONE

daily_reports_job = dg.define_asset_job("daily_kpi_reports_job", selection=[daily_kpi_reports])
weekly_reports_job = dg.define_asset_job("weekly_kpi_reports_job", selection=[weekly_kpi_reports])


def _reports_schedule(
    job: dg.UnresolvedAssetJobDefinition, name: str, cron: str, partitions
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=REPORT_TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def reports(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        reported = partitions.get_partition_key_for_timestamp(context.scheduled_execution_time.timestamp())
        return dg.RunRequest(run_key=reported, partition_key=reported)

    return reports


daily_reports_schedule = _reports_schedule(
    daily_reports_job,
    "daily_kpi_reports_schedule",
    f"0 {REPORT_HOUR} * * *",
    daily_kpi_reports.partitions_def,
)
weekly_reports_schedule = _reports_schedule(
    weekly_reports_job,
    "weekly_kpi_reports_schedule",
    f"0 {REPORT_HOUR} * * 1",
    weekly_kpi_reports.partitions_def,
)
