"""Daily reports and weekly ones on Mondays at the report hour, on the managers' clock (the report
timezone; ``partitions.py``).

Each run reports the newest KPI day (or week) that had ended when the schedule fired: 09:00 in
Asia/Shanghai is 01:00 UTC, so the day before; a report hour before the UTC day's end reports the day
before that rather than a day still running. The assets then wait for marts holding every change
made before that end (``assets.py``). A tick whose period comes before the first partition (the first report day's, the
first Monday's) skips, saying so.

Dagster evaluates only the last of the ticks a schedule missed while its daemon was down (it catches up
only schedules with a partition set, which these are not), so a tick also asks for the periods that
ended after the newest one this schedule asked for: a daemon down across two report hours would
otherwise leave a period unreported, with no failed run to say so. (Run keys keep a retried tick from
launching a period twice; the ledger keeps any run from mailing anyone twice.)"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG, SCHEDULE_NAME_TAG

from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.reports.partitions import FIRST_REPORT_DAY, REPORT_HOUR, REPORT_TIMEZONE

daily_reports_job = dg.define_asset_job("daily_kpi_reports_job", selection=[daily_kpi_reports])
weekly_reports_job = dg.define_asset_job("weekly_kpi_reports_job", selection=[weekly_kpi_reports])


def last_ended_partition(partitions: dg.TimeWindowPartitionsDefinition, timestamp: float) -> str:
    """The newest partition whose time window had ended at ``timestamp``."""
    running = partitions.time_window_for_partition_key(partitions.get_partition_key_for_timestamp(timestamp))
    return partitions.get_partition_key_for_timestamp(running.start.timestamp() - 1)


# Periods one tick asks for at most (a daemon down for weeks: the newest ones; `funnelhouse report` or a
# backfill sends older ones).
CATCH_UP_PERIODS = 7


def periods_to_report(
    instance: dg.DagsterInstance,
    schedule_name: str,
    partitions: dg.TimeWindowPartitionsDefinition,
    reported: str,
) -> list[str]:
    """``reported``, after the periods that ended since the newest one this schedule asked for (ticks
    missed while the daemon was down), at most ``CATCH_UP_PERIODS`` in all, oldest first. Only
    ``reported`` when the schedule never asked for one: a first deployment mails no old reports."""
    # The newest period among its recent runs, not the newest run's: a re-execution of an older period's
    # run carries the schedule's tags too.
    recent = instance.get_run_records(
        filters=dg.RunsFilter(tags={SCHEDULE_NAME_TAG: schedule_name}), limit=50
    )
    last_asked = max((r.dagster_run.tags.get(PARTITION_NAME_TAG, "") for r in recent), default="") or None
    if last_asked is None or last_asked >= reported or not partitions.has_partition_key(last_asked):
        return [reported]
    since = partitions.get_partition_keys_in_range(dg.PartitionKeyRange(last_asked, reported))[1:]
    return since[-CATCH_UP_PERIODS:]


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
    def reports(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        reported = last_ended_partition(partitions, context.scheduled_execution_time.timestamp())
        if before_first := _before_first_partition(partitions, reported):
            return before_first
        return [
            dg.RunRequest(run_key=period, partition_key=period)
            for period in periods_to_report(context.instance, name, partitions, reported)
        ]

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
