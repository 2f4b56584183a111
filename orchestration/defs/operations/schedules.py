"""The seed's backup rhythm: full daily at 03:00, incremental every 6 hours; partitions monthly."""

import dagster as dg

from orchestration import environment
from orchestration.defs.operations.jobs import conversation_partitions_job, postgres_backup_job
from orchestration.runs import WORK_TAG


def _backup_schedule(name: str, cron: str, kind: str) -> dg.ScheduleDefinition:
    """Full and incremental backups are one job: ``WORK_TAG`` tells the alert sensors each kind's
    failing streak apart (an incremental backup succeeding is no "recovered" of full ones failing)."""
    return dg.ScheduleDefinition(
        name=name,
        job=postgres_backup_job,
        cron_schedule=cron,
        execution_timezone=environment.schedule_timezone(),
        run_config={"ops": {"take_postgres_backup": {"config": {"kind": kind}}}},
        tags={WORK_TAG: kind},
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )


full_backup_schedule = _backup_schedule("postgres_full_backup_daily", "0 3 * * *", "full")
# 09:00, 15:00, 21:00: the 03:00 slot belongs to the full backup.
incremental_backup_schedule = _backup_schedule(
    "postgres_incremental_backup_6h", "0 9,15,21 * * *", "incremental"
)

partitions_ahead_schedule = dg.ScheduleDefinition(
    name="conversation_partitions_monthly",
    job=conversation_partitions_job,
    cron_schedule="0 1 1 * *",
    execution_timezone=environment.schedule_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
