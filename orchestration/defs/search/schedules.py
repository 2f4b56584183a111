"""Nightly full rebuild: compacts the index and is the safety net for anything incremental sync
could have missed (a change committed later than the cursor lag allows for)."""

import dagster as dg

from orchestration import environment
from orchestration.defs.search.assets import search_rebuild_job

nightly_search_rebuild = dg.ScheduleDefinition(
    name="nightly_search_rebuild",
    job=search_rebuild_job,
    cron_schedule="0 4 * * *",  # on the team's clock, after the warehouse build (02:30) and backup (03:00)
    execution_timezone=environment.schedule_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
