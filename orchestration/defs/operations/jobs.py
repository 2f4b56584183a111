"""Upkeep of the operational database: backups (seed section 6) and conversation partitions
created ahead of time (seed section 5), as Dagster jobs so failures show up where everything else does."""

import time

import dagster as dg
import psycopg
from dateutil.relativedelta import relativedelta

from ingestion.maintenance import backups
from ingestion.schema.locks import lock_table
from orchestration import environment

PARTITION_MONTHS_AHEAD = 3


class BackupConfig(dg.Config):
    kind: str = "full"


@dg.op
def take_postgres_backup(context: dg.OpExecutionContext, config: BackupConfig) -> None:
    """Back up, copy off-site, apply retention. Retention runs whatever happens to the backup or its
    copy: a missing s3fs or an outage of the store would otherwise keep every full backup until the
    disk fills. The run still fails with the error, afterwards. The local backup is taken even when
    the off-site store cannot be used (its package missing: ``copy_offsite`` says which): a backup on
    this machine is better than none while the configuration is fixed."""
    root = environment.backup_dir()
    offsite = environment.backup_offsite_url()
    try:
        backup = backups.take_backup(environment.pg_dsn(), root, config.kind, log=context.log)
        context.log.info(f"{backup.kind} backup {backup.name} written to {root}")
        offsite_removed = _copy_offsite(context, backup, offsite)
    finally:
        removed = backups.prune(root)
        if removed:
            context.log.info(f"retention ({backups.RETENTION_DAYS} days) removed {', '.join(removed)}")
    context.add_output_metadata(
        {
            "backup": backup.name,
            "kind": backup.kind,
            "pruned": len(removed),
            "offsite": offsite is not None,
            "offsite_pruned": len(offsite_removed),
        }
    )


def _copy_offsite(context: dg.OpExecutionContext, backup: backups.Backup, offsite: str | None) -> list[str]:
    """Copy the backup's chain off-site and apply retention there; the names pruned off-site."""
    if not offsite:
        # Seed section 6 asks for an off-site copy; a machine-only backup dies with the machine.
        context.log.warning("no off-site copy: set FUNNELHOUSE_BACKUP_OFFSITE_URL (seed section 6)")
        return []
    copied = backups.copy_offsite(backup, offsite, log=context.log)
    context.log.info(f"copied off-site: {', '.join(copied) or 'nothing new'}")
    offsite_removed = backups.prune_offsite(offsite)
    if offsite_removed:
        context.log.info(f"off-site retention removed {', '.join(offsite_removed)}")
    return offsite_removed


# Creating a partition of conversations takes ACCESS EXCLUSIVE on it and, for the foreign key of
# conversation_events into it (0001, 0022), SHARE ROW EXCLUSIVE on conversation_events, which waits
# for every transaction writing events. So the job waits first for the loader's locks on both tables
# (ingestion/schema/locks.py), then for the table locks. Waiting for the first blocks nobody, so it
# may last a load; while waiting for the second, every new reader of conversations queues behind
# the job, so it is kept short (a long report query holding the table, not a load). Without the
# events lock, the job took conversations during an events load, queued its readers, then timed out
# on conversation_events. On a timeout the transaction is rolled back and, after a pause, tried
# again; after the last attempt the run fails. Nothing is lost then: partitions are created months
# ahead, and the next run (or a rerun) catches up.
PARTITION_LOAD_LOCK_TIMEOUT = "10min"
PARTITION_TABLE_LOCK_TIMEOUT = "5s"
PARTITION_ATTEMPTS = 4
PARTITION_RETRY_PAUSE_SECONDS = 30.0


@dg.op
def create_conversation_partitions_ahead(context: dg.OpExecutionContext) -> None:
    with psycopg.connect(environment.pg_dsn(), autocommit=True) as conn:
        # This month on the clock of sent_at (UTC), whatever the server's timezone; months ahead are
        # created long before their first row (the schedule fires on the 1st, on the team's clock).
        this_month = conn.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date").fetchone()[0]
        last_month = this_month + relativedelta(months=PARTITION_MONTHS_AHEAD)
        for attempt in range(1, PARTITION_ATTEMPTS + 1):
            waiting_for = "a load of conversations to finish (the loader's lock on conversations)"
            try:
                with conn.transaction():
                    _set_lock_timeout(conn, PARTITION_LOAD_LOCK_TIMEOUT)
                    lock_table(conn, "conversations")
                    waiting_for = (
                        "a load of conversation_events to finish (the loader's lock on conversation_events)"
                    )
                    lock_table(conn, "conversation_events")
                    waiting_for = (
                        "the table locks a new partition takes: ACCESS EXCLUSIVE on conversations (a long "
                        "query is reading it) or SHARE ROW EXCLUSIVE on conversation_events (a transaction "
                        "outside a load is writing it)"
                    )
                    _set_lock_timeout(conn, PARTITION_TABLE_LOCK_TIMEOUT)
                    created = conn.execute(
                        "SELECT ensure_conversation_partitions(%s, %s)", (this_month, last_month)
                    ).fetchone()[0]
                break
            except psycopg.errors.LockNotAvailable:
                if attempt == PARTITION_ATTEMPTS:
                    raise dg.Failure(
                        f"no partition of conversations created: gave up waiting for {waiting_for} "
                        f"after {PARTITION_ATTEMPTS} attempts. Partitions are created {PARTITION_MONTHS_AHEAD} "
                        "months ahead, so the next run catches up (or run conversation_partitions_job "
                        "again once the load or query has ended); no row is lost meanwhile: a month "
                        "without its partition is held by conversations_default."
                    ) from None
                context.log.warning(
                    f"attempt {attempt}/{PARTITION_ATTEMPTS}: timed out waiting for {waiting_for}; "
                    f"trying again in {PARTITION_RETRY_PAUSE_SECONDS:g}s"
                )
                time.sleep(PARTITION_RETRY_PAUSE_SECONDS)
    context.log.info(f"{created} new monthly partition(s) of conversations")


def _set_lock_timeout(conn: psycopg.Connection, timeout: str) -> None:
    """For the rest of the transaction (SET LOCAL cannot take a parameter; set_config can)."""
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (timeout,))


# How long a run may last before run monitoring (devstack/dagster.yaml) fails it, as it does a run
# whose worker died (`dagster dev` restarted, a reboot): it would otherwise stay STARTED, never alerted.
# A backup: 6 h, the gap between incremental backups, so a dead one is failed before the next backup
# is due; time enough for pg_basebackup (disk speed) and an off-site copy of tens of GB over a slow link.
BACKUP_MAX_RUNTIME = {dg.MAX_RUNTIME_SECONDS_TAG: str(6 * 60 * 60)}
# A few empty partitions, after waiting for locks at most PARTITION_ATTEMPTS times (about 45 minutes).
PARTITIONS_MAX_RUNTIME = {dg.MAX_RUNTIME_SECONDS_TAG: str(60 * 60)}


@dg.job(
    description="pg_basebackup of the operational database, with retention and off-site copy",
    tags=BACKUP_MAX_RUNTIME,
)
def postgres_backup_job():
    take_postgres_backup()


@dg.job(
    description="Create the next months' partitions of conversations before rows arrive",
    tags=PARTITIONS_MAX_RUNTIME,
)
def conversation_partitions_job():
    create_conversation_partitions_ahead()
