"""The Dagster code location: it only merges the definitions of each domain.

Each domain keeps its ``defs`` in its own ``definitions`` module, never in the package's
``__init__``: the CLI imports plain modules of those packages (``warehouse.build``,
``reports.runner``), and an ``__init__`` that built Definitions would make every such command load
Dagster and the dbt manifest first (about three seconds per command)."""

import dagster as dg

from orchestration.defs.ingestion.definitions import defs as ingestion_defs
from orchestration.defs.operations.definitions import defs as operations_defs
from orchestration.defs.reports.definitions import defs as reports_defs
from orchestration.defs.search.definitions import defs as search_defs
from orchestration.defs.warehouse.definitions import defs as warehouse_defs

defs = dg.Definitions.merge(ingestion_defs, warehouse_defs, search_defs, reports_defs, operations_defs)
