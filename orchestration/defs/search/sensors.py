"""Launch the incremental sync when the index is behind PostgreSQL, or must be rebuilt.

Each tick, in order:

1. no search engine configured or running: skip, saying how to start one;
2. a run of the sync job is queued or running: skip (however many ticks see the same changes
   before it ends, they add nothing);
3. the live index needs a full rebuild (never built, alias gone, or its mapping version is not the
   code's after a deploy): request a run (the run rebuilds, see ``indexer.synchronise``), unless a
   run of the rebuild job is in flight (a second rebuild could only fail on its lock: wait for it);
4. PostgreSQL has changes the saved cursors have not passed: request a run.

No run key: whether a run is due is decided from the run history and the saved state, so a run
that failed (engine down, bulk refused) or skipped (the lock was held) leaves its changes pending
and a later tick requests a new run for them.
"""

import os

import dagster as dg

from ingestion.search import cursor_store, documents, probe, sync
from orchestration.defs.search.assets import missing_search_engine, search_rebuild_job, search_sync_job
from orchestration.defs.search.resources import SearchResource
from orchestration.runs import runs_not_ended

# How often the sensor looks (seconds); a tick is a few index lookups and two engine requests: cheap.
SENSOR_INTERVAL_S = int(os.environ.get("FUNNELHOUSE_SEARCH_SENSOR_INTERVAL", "300"))
REASON_TAG = "funnelhouse/search_sync_reason"


def _in_flight(context: dg.SensorEvaluationContext, job_name: str) -> dg.DagsterRun | None:
    """A run of the job that is queued or running, if any."""
    runs = runs_not_ended(context.instance, [job_name])
    return runs[0] if runs else None


def _rebuild_reason(context: dg.SensorEvaluationContext, search_index: SearchResource) -> str | None:
    """What the run would rebuild for (the run's own test, ``sync.rebuild_reason``), or None; an
    engine that does not answer gives None with a warning: the PostgreSQL probe then decides, and a
    run that fails is requested again on a later tick."""
    try:
        client = search_index.client()
        try:
            return sync.rebuild_reason(client, search_index.alias)
        finally:
            client.close()
    except Exception as error:
        context.log.warning(f"search engine did not answer ({error!r}): rebuild need unknown this tick")
        return None


@dg.sensor(
    job=search_sync_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reindexes changed conversations (and those of customers/employees whose tier, stage or "
    "department changed) into the search engine; rebuilds it when never built or its mapping changed "
    "(SkipReason when nothing changed, a sync run is in flight, or no search engine runs).",
)
def search_changes_sensor(context: dg.SensorEvaluationContext, search_index: SearchResource):
    missing = missing_search_engine()
    if missing:
        return dg.SkipReason(missing)
    if run := _in_flight(context, search_sync_job.name):
        return dg.SkipReason(
            f"sync run {run.run_id[:8]} is {run.status.value.lower()}: pending changes wait for it to end"
        )
    tags = {"search_alias": search_index.alias}
    reason = _rebuild_reason(context, search_index)
    if reason:
        if run := _in_flight(context, search_rebuild_job.name):
            return dg.SkipReason(
                f"full rebuild needed ({reason}); rebuild run {run.run_id[:8]} is {run.status.value.lower()}"
            )
        return dg.RunRequest(tags={**tags, REASON_TAG: f"full rebuild: {reason}"})
    with documents.connect(search_index.pg_dsn()) as conn:
        cursor_store.ensure_table(conn)
        saved = cursor_store.load(conn, search_index.alias)
        if not probe.has_changes(conn, saved.cursors, search_index.lag, saved.physical_index):
            changes = saved.cursors.changes
            return dg.SkipReason(
                f"no conversation (nor shown customer/employee attribute) changed after {changes.at.isoformat()}"
                f" (id {changes.id})"
            )
    return dg.RunRequest(tags={**tags, REASON_TAG: "pending changes"})
