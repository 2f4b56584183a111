"""``crm_ingest``: every ``crm/*`` asset; the sensor runs it on the subset of one file's table."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ingestion.assets import GROUP

crm_ingest_job = dg.define_asset_job(
    "crm_ingest",
    selection=dg.AssetSelection.groups(GROUP),
    description="Ingest pending landing files into the operational PostgreSQL tables.",
    # Run monitoring (devstack/dagster.yaml) fails a run still going after 2 h: one whose worker died
    # (`dagster dev` restarted, a reboot) would otherwise hold its file from the landing sensor for
    # ever. At 14,000 rows/s (bench/results/ingest.md) 2 h loads ~100 M rows, 20 times the benchmark's
    # 5 M conversations; a sensor run loads one file.
    tags={"funnelhouse/domain": "ingestion", dg.MAX_RUNTIME_SECONDS_TAG: str(2 * 60 * 60)},
)
