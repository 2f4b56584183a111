"""The landing sensor: one run per new landing file, none for a file the ledger already knows.

Each tick lists the landing zone and asks the ledger which files are pending (new content, not
already tried at that path). A pending file gets a RunRequest of ``crm_ingest`` restricted to its
table's asset, with the file in the run config; ``run_key = path:checksum`` so Dagster never
launches the same content at the same path twice, even across ticks before the run finishes.

Order matters across runs: a conversations file loaded before its customers would have every row
rejected as an unknown reference. So a file waits (no request this tick) while any file of a
table it depends on is still pending; it is requested on a later tick, once those have loaded
(or failed, which is recorded, so nothing waits forever on a bad file).

A run killed before its file's transaction committed leaves no ledger row, so the file stays
pending; Dagster will not reuse its run_key, so recover by materialising the table's asset
without config (it loads every pending file of the table) or with ``funnelhouse ingest PATH``.

(No ``from __future__ import annotations``: Dagster reads resource and config classes from
the sensor function's real annotations.)
"""

import dagster as dg

from ingestion.contracts import CONTRACTS
from ingestion.load.landing import discover
from ingestion.load.pipeline import connect, pending
from orchestration.defs.ingestion.assets import asset_key, op_name
from orchestration.defs.ingestion.jobs import crm_ingest_job
from orchestration.defs.ingestion.resources import LandingZone, PostgresResource

FILE_TAG = "funnelhouse/landing_file"


def upstream(table: str) -> set[str]:
    """Every table ``table`` depends on, directly or not."""
    found: set[str] = set()
    todo = list(CONTRACTS[table].depends_on)
    while todo:
        dep = todo.pop()
        if dep not in found:
            found.add(dep)
            todo.extend(CONTRACTS[dep].depends_on)
    return found


@dg.sensor(
    job=crm_ingest_job,
    minimum_interval_seconds=30,
    description="Launch one ingestion run per new landing file.",
)
def crm_landing_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, landing_zone: LandingZone
):
    from ingestion.schema import migrate

    dsn = postgres.resolved_dsn()
    migrate.apply(dsn, log=lambda *_: None)  # the ledger must exist before it is read
    files = discover([landing_zone.resolved_url()])
    with connect(dsn) as conn:
        waiting = pending(conn, files)
    waiting_tables = {file.table for file, _ in waiting}
    requests, held = [], []
    for file, checksum in waiting:
        blocked = upstream(file.table) & waiting_tables
        if blocked:
            held.append(f"{file.name} (waits for {', '.join(sorted(blocked))})")
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{file.url}:{checksum}",
                asset_selection=[asset_key(file.table)],
                run_config={"ops": {op_name(file.table): {"config": {"paths": [file.url]}}}},
                tags={FILE_TAG: file.url, "funnelhouse/checksum": checksum, "funnelhouse/table": file.table},
            )
        )
    if held:
        context.log.info("held until their references load: " + "; ".join(held))
    if not requests:
        return dg.SkipReason(
            f"no new landing file in {landing_zone.resolved_url()}"
            + (f" ready to load ({len(held)} waiting on upstream files)" if held else "")
        )
    return requests
