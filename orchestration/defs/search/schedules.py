"""Nightly full rebuild: compacts the index and is the safety net for anything incremental sync
could have missed (a change committed later than the cursor lag allows for)."""

import dagster as dg

from orchestration.defs.search.assets import search_rebuild_job

nightly_search_rebuild = dg.ScheduleDefinition(
    name="nightly_search_rebuild",
    job=search_rebuild_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
