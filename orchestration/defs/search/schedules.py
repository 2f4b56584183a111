"""Nightly full rebuild: picks up what incremental sync cannot see (a customer's new tier or stage,
an employee's new department) and compacts the index."""

import dagster as dg

from orchestration.defs.search.assets import search_rebuild_job

nightly_search_rebuild = dg.ScheduleDefinition(
    name="nightly_search_rebuild",
    job=search_rebuild_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
