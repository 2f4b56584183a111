"""Daily reports and weekly ones on Mondays at the report hour, on the managers' clock (the report
timezone; ``partitions.py``).

Each run reports the newest KPI day (or week) that had ended when the schedule fired: 09:00 in
Asia/Shanghai is 01:00 UTC, so the day before; a report hour before the UTC day's end reports the day
before that rather than a day still running. The assets then wait for a refresh made after that end
(``assets.py``). A tick whose period comes before the first partition (the first report day's, the
first Monday's) skips, saying so."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.reports.partitions import FIRST_REPORT_DAY, REPORT_HOUR, REPORT_TIMEZONE

daily_reports_job = dg.define_asset_job("daily_kpi_reports_job", selection=[daily_kpi_reports])
weekly_reports_job = dg.define_asset_job("weekly_kpi_reports_job", selection=[weekly_kpi_reports])


def last_ended_partition(partitions: dg.TimeWindowPartitionsDefinition, timestamp: float) -> str:
    """The newest partition whose time window had ended at ``timestamp``."""
    running = partitions.time_window_for_partition_key(partitions.get_partition_key_for_timestamp(timestamp))
    return partitions.get_partition_key_for_timestamp(running.start.timestamp() - 1)


def _before_first_partition(
    partitions: dg.TimeWindowPartitionsDefinition, reported: str
) -> dg.SkipReason | None:
    """A skip if ``reported`` comes before the first partition, else None. On the first report day (and
    the first Monday) the period that had ended is the one before ``FUNNELHOUSE_REPORT_START``: no
    partition holds it, and Dagster would reject the run request, failing the tick."""
    first = partitions.get_first_partition_key()  # None: the first one's period has not begun
    if first is not None and reported >= first:  # keys are ISO dates: they sort as the days do
        return None
    return dg.SkipReason(
        f"no report: the newest period that had ended ({reported}) is before the first report "
        f"partition ({first or 'none yet'}; FUNNELHOUSE_REPORT_START={FIRST_REPORT_DAY}); the first "
        "report follows once that partition's period has ended"
    )


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
    def reports(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        reported = last_ended_partition(partitions, context.scheduled_execution_time.timestamp())
        if before_first := _before_first_partition(partitions, reported):
            return before_first
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
