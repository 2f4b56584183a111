"""The ingestion domain's Dagster definitions (here, not in the package's ``__init__``: see
``orchestration.definitions``)."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ingestion.assets import CRM_ASSETS
from orchestration.defs.ingestion.jobs import crm_ingest_job
from orchestration.defs.ingestion.resources import ingestion_resources
from orchestration.defs.ingestion.sensors import crm_landing_sensor

defs = dg.Definitions(
    assets=CRM_ASSETS,
    sensors=[crm_landing_sensor],
    jobs=[crm_ingest_job],
    resources=ingestion_resources(),
)
