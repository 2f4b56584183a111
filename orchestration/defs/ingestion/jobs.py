"""``crm_ingest``: every ``crm/*`` asset; the sensor runs it on the subset of one file's table."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ingestion.assets import GROUP

crm_ingest_job = dg.define_asset_job(
    "crm_ingest",
    selection=dg.AssetSelection.groups(GROUP),
    description="Ingest pending landing files into the operational PostgreSQL tables.",
    tags={"funnelhouse/domain": "ingestion"},
)
