"""Nightly full rebuild: compacts the index and is the safety net for anything incremental sync
could have missed (a document refused for a while, a change an engine lost). Skipped, with how to
start one, when no search engine is configured or running; and while another full rebuild is queued
or under way (the sensor's, one started in the UI: it does this one's work, and a second could only
fail on the rebuild lock)."""

import dagster as dg

from orchestration import environment
from orchestration.defs.search.assets import missing_search_engine, search_rebuild_job
from orchestration.defs.search.sensors import rebuilds_in_flight
from orchestration.runs import described


@dg.schedule(
    name="nightly_search_rebuild",
    job=search_rebuild_job,
    cron_schedule="0 4 * * *",  # on the team's clock, after the warehouse build (02:30) and backup (03:00)
    execution_timezone=environment.schedule_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Full rebuild of the search index into a new versioned index, then an alias swap "
    "(SkipReason when no search engine runs, or another full rebuild is in flight).",
)
def nightly_search_rebuild(context: dg.ScheduleEvaluationContext):
    missing = missing_search_engine()
    if missing:
        return dg.SkipReason(missing)
    if rebuilding := rebuilds_in_flight(context.instance):
        return dg.SkipReason(f"a full rebuild is already queued or under way: {described(rebuilding)}")
    return dg.RunRequest()  # the job's own config: full_rebuild=True
