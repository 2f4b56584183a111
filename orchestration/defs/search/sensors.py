"""Launch the incremental sync when PostgreSQL has changes the index has not seen."""

import os

import dagster as dg

from ingestion.search import cursor_store, documents, probe
from orchestration.defs.search.assets import search_sync_job
from orchestration.defs.search.resources import SearchResource

# How often the sensor looks (seconds); the probe is two index lookups, so minutes are cheap.
SENSOR_INTERVAL_S = int(os.environ.get("FUNNELHOUSE_SEARCH_SENSOR_INTERVAL", "300"))


@dg.sensor(
    job=search_sync_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reindexes changed conversations (and those of customers/employees whose tier, stage or "
    "department changed) into the search engine (SkipReason when nothing changed).",
)
def search_changes_sensor(context: dg.SensorEvaluationContext, search_index: SearchResource):
    with documents.connect(search_index.pg_dsn()) as conn:
        cursor_store.ensure_table(conn)
        saved = cursor_store.load(conn, search_index.alias)
        never_built = saved.physical_index is None
        if not never_built and not probe.has_changes(conn, saved.cursors, search_index.lag, saved.physical_index):
            changes = saved.cursors.changes
            return dg.SkipReason(
                f"no conversation (nor shown customer/employee attribute) changed after {changes.at.isoformat()}"
                f" (id {changes.id})"
            )
        marker = probe.change_marker(conn)
    # One run per pending state: ticks that see the same changes before the run finishes add nothing.
    context.update_cursor(marker)
    return dg.RunRequest(run_key=f"search-sync:{marker}", tags={"search_alias": search_index.alias})
