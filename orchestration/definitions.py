"""The Dagster code location: it only merges the definitions of each domain."""

import dagster as dg

from orchestration.defs import ingestion, operations, reports, search, warehouse

defs = dg.Definitions.merge(
    ingestion.defs,
    warehouse.defs,
    search.defs,
    reports.defs,
    operations.defs,
)
