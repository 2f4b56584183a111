"""Hourly incremental refresh, nightly full build, today's KPI partition every hour, every KPI
partition nightly, the replication freshness checks every hour.

The nightly builds run on the sales team's clock like every other schedule (``FUNNELHOUSE_TIMEZONE``);
KPI partitions are UTC days, so their hourly schedule runs on UTC, and so does the hourly refresh: a
KPI run reads the models the refresh just built, half an hour before it (:15 and :45). On the team's
clock the refresh's :15 would be :45 UTC in a zone half an hour off UTC (Asia/Kolkata: both runs at
once, the KPIs an hour behind the models) and :00 in one 45 minutes off (Asia/Kathmandu).

The hourly ticks ask for nothing while a run that would do their work has not ended (queued behind
the ``warehouse`` pool or under way), of their jobs or of any job materialising their assets (by hand
in the UI, a backfill: Dagster's ``__ASSET_JOB``): a nightly full build that runs for hours would
otherwise find one hourly refresh and one KPI run queued per hour behind it, each waiting its turn
(or, on an instance without the pool's limit, waiting for the writer lock until it gives up). Nothing
is lost by skipping: the refresh carries every change since the refresh mark, and each KPI run
rebuilds the day before too, so the run under way or the next tick takes up what a skipped tick
would have."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from orchestration import environment
from orchestration.defs.warehouse.dbt_assets import KPI_OP, KPI_PARTITIONS
from orchestration.defs.warehouse.jobs import (
    hourly_refresh_job,
    kpi_daily_job,
    nightly_full_build_job,
    replication_freshness_job,
)
from orchestration.runs import described, runs_not_ended


def _not_ended(context: dg.ScheduleEvaluationContext, *jobs) -> list[dg.DagsterRun]:
    """The runs not ended of these jobs, or of any job materialising one of their assets (by hand in
    the UI, a backfill): they wait for the writer lock as much, and build what the tick would."""
    repository = context.repository_def
    keys = set().union(*(repository.get_job(job.name).asset_layer.selected_asset_keys for job in jobs))
    return runs_not_ended(context.instance, [job.name for job in jobs], asset_keys=keys)


def _skip_for(runs: list[dg.DagsterRun], work: str) -> dg.SkipReason:
    return dg.SkipReason(f"{work} is already queued or under way: {described(runs)}")


@dg.schedule(
    name="warehouse_hourly_refresh_schedule",
    job=hourly_refresh_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",  # half an hour before each KPI run, on any team clock (see above)
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def hourly_refresh_schedule(context: dg.ScheduleEvaluationContext):
    # An earlier refresh or a nightly full build carries every change since the mark, these ones too.
    pending = _not_ended(context, hourly_refresh_job, nightly_full_build_job)
    return _skip_for(pending, "a refresh") if pending else dg.RunRequest()


nightly_full_build_schedule = dg.ScheduleDefinition(
    name="warehouse_nightly_full_build_schedule",
    job=nightly_full_build_job,
    cron_schedule="30 2 * * *",
    execution_timezone=environment.schedule_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


# A read of the replication state, no writer: at :05, clear of the refresh (:15) and the KPI run (:45),
# and on UTC like them; no skipping behind running runs (it waits for none).
replication_freshness_schedule = dg.ScheduleDefinition(
    name="warehouse_replication_freshness_schedule",
    job=replication_freshness_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
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
    def kpi_today(context: dg.ScheduleEvaluationContext):
        today = KPI_PARTITIONS.get_partition_key_for_timestamp(context.scheduled_execution_time.timestamp())
        pending = [run for run in _not_ended(context, job) if _builds_day(run, today)]
        return _skip_for(pending, f"a KPI run of {today}") if pending else dg.RunRequest(partition_key=today)

    return kpi_today


def _builds_day(run: dg.DagsterRun, day: str) -> bool:
    """Whether a KPI run rebuilds ``day`` (a partition run of it, or a range holding it: the nightly
    rebuild, a backfill run of a range, in whichever job); keys are ISO dates, so they compare as
    strings."""
    if PARTITION_NAME_TAG in run.tags:
        return run.tags[PARTITION_NAME_TAG] == day
    first, last = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return first is not None and last is not None and first <= day <= last


def kpi_nightly_schedule(job=kpi_daily_job) -> dg.ScheduleDefinition:
    """Every KPI partition in one run, an hour after the nightly full build: one ``dbt build
    --full-refresh`` of the mart, every day of its date spine recomputed, the days before the first
    partition (``FUNNELHOUSE_KPI_FIRST_DAY``: a CRM with older history) included, which a build of
    the partitions' range would leave as they were. The hourly partition runs rebuild only the months
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
            run_config={"ops": {KPI_OP: {"config": {"full_refresh": True}}}},
            tags={
                ASSET_PARTITION_RANGE_START_TAG: KPI_PARTITIONS.get_first_partition_key(),
                ASSET_PARTITION_RANGE_END_TAG: today,
            },
        )

    return kpi_every_day
