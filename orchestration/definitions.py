"""The Dagster code location: it only merges the definitions of each domain.

Each domain keeps its ``defs`` in its own ``definitions`` module, never in the package's
``__init__``: the CLI imports plain modules of those packages (``warehouse.build``,
``reports.runner``), and an ``__init__`` that built Definitions would make every such command load
Dagster and the dbt manifest first (about three seconds per command). The modules are imported, not
their ``defs``: Dagster loads a module with exactly one Definitions object at its top level.

The run-failure alert is the location's, not a domain's: it watches every job, so it is added here,
with the alert of runs whose asset checks failed and the sensor that mails again the alerts the relay
did not take."""

import dagster as dg

from orchestration.defs.alerts.sensors import (
    failed_check_alert_sensor,
    run_failure_alert_retry_sensor,
    run_failure_alert_sensor,
)
from orchestration.defs.ingestion import definitions as ingestion
from orchestration.defs.operations import definitions as operations
from orchestration.defs.reports import definitions as reports
from orchestration.defs.search import definitions as search
from orchestration.defs.warehouse import definitions as warehouse

defs = dg.Definitions.merge(
    ingestion.defs,
    warehouse.defs,
    search.defs,
    reports.defs,
    operations.defs,
    dg.Definitions(
        sensors=[run_failure_alert_sensor, failed_check_alert_sensor, run_failure_alert_retry_sensor]
    ),
)
