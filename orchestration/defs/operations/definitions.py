"""The operations domain's Dagster definitions (here, not in the package's ``__init__``: see
``orchestration.definitions``)."""

import dagster as dg

from orchestration.defs.operations.jobs import conversation_partitions_job, postgres_backup_job
from orchestration.defs.operations.schedules import (
    full_backup_schedule,
    incremental_backup_schedule,
    partitions_ahead_schedule,
)

defs = dg.Definitions(
    jobs=[postgres_backup_job, conversation_partitions_job],
    schedules=[full_backup_schedule, incremental_backup_schedule, partitions_ahead_schedule],
)
