"""Ingestion in Dagster: ``crm/<table>`` assets, the landing sensor and the ``crm_ingest`` job.

Resource keys are ``postgres`` and ``landing_zone``; both resolve their address at run time.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ingestion.assets import CRM_ASSETS
from orchestration.defs.ingestion.jobs import crm_ingest_job
from orchestration.defs.ingestion.resources import LandingZone, PostgresResource
from orchestration.defs.ingestion.sensors import crm_landing_sensor


def resources() -> dict:
    return {"postgres": PostgresResource(), "landing_zone": LandingZone()}


defs = dg.Definitions(
    assets=CRM_ASSETS,
    sensors=[crm_landing_sensor],
    jobs=[crm_ingest_job],
    resources=resources(),
)
