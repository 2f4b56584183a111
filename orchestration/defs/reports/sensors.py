"""Failed report deliveries are sent again without anyone asking.

The reports' own SMTP retries cover a few seconds' trouble; a relay down for an hour outlasts them,
and the schedule's next tick reports the next period, not this one. So every few minutes
``report_redelivery_sensor`` asks the ledger (``Ledger.redeliveries_due``) for periods with a 'failed'
delivery (or one a run claimed and died before handing over: 'sending' with no DATA begun, for longer
than ``ledger.STALE_CLAIM``) that has waited long enough (``FUNNELHOUSE_REPORT_REDELIVERY_MINUTES``, default 30, doubled
after each run) and has had fewer than ``MAX_RUNS`` runs, and runs that period's partition again with
``redeliver``: only those deliveries are sent (``runner.run(only_failed=True)``), nobody who has the
report gets it twice (the ledger's claims), and each run counts against the bound.

Only the deliveries a run of the partition sends are looked at: those to the configured recipients
(``recipients.resolve``), each of its own scope. A failed ``funnelhouse report --to`` of an address
that is no recipient (or of another scope), or one to a manager who has left since, is no run's to
send again by itself: a run asked for it would send nothing and show the partition materialised.
``funnelhouse report --send --to ...`` sends it again.

Not retried here: 'bounced' deliveries and 'failed' ones marked permanent (no retry changes them: a
relay without SMTPUTF8 for a non-ASCII local part; another run of the partition, without
``redeliver``, tries them once the address or the relay is fixed), and 'unknown' ones (they may have
arrived; ``ledger``).

While any run of the period's reports is under way (an earlier re-delivery, the schedule's run, one
started by hand), nothing is asked for: that run sends what is due itself, and one beside it would
only race it for the ledger's claims.

The run key is the period's count of ledger runs, so each state of the period is asked for once. A
re-delivery run that fails before it reaches the ledger (ClickHouse down, say) leaves that count as it
was; the sensor finds such runs by their tag (``REDELIVERY_TAG``, the key) in Dagster's run records,
counts each as a run against the bound and the back-off, and asks again under a key of its own.
"""

from __future__ import annotations

import time

import dagster as dg

from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.reports.schedules import daily_reports_job, weekly_reports_job
from orchestration.environment import number_setting
from orchestration.runs import runs_not_ended

DELAY_ENV = "FUNNELHOUSE_REPORT_REDELIVERY_MINUTES"
DEFAULT_DELAY_MINUTES = 30.0
REDELIVERY_TAG = "funnelhouse/redelivery"  # on the sensor's runs: the ledger state they were asked for
_BY_KIND = {
    "daily": (daily_reports_job, daily_kpi_reports),
    "weekly": (weekly_reports_job, weekly_kpi_reports),
}


def redelivery_delay() -> float:
    """Minutes a failed delivery waits before its next run (read when the sensor runs, not at import)."""
    return number_setting(DELAY_ENV, DEFAULT_DELAY_MINUTES, "minutes")


def _period_run_under_way(instance: dg.DagsterInstance, job: dg.JobDefinition, asset, partition: str) -> bool:
    """Whether a run of ``asset``'s ``partition`` has not ended: one of ``job`` (the schedule's, the
    sensor's) or another job selecting the asset (materialised by hand)."""
    return bool(
        runs_not_ended(instance, [job.name], {"dagster/partition": partition}, asset_keys=[asset.key])
    )


def _run_key(instance: dg.DagsterInstance, due, delay_minutes: float) -> tuple[str | None, str]:
    """The run key to ask for ``due`` (a ``ledger.Redelivery``) under, or None; and why.

    Runs already asked for in this ledger state (tagged with its key; all ended, see
    ``_period_run_under_way``) left the ledger as it was: they ended without anything to send
    (success), were stopped by someone (canceled), or failed before they reached it. Only the last
    kind is asked for again, each one counted as a run of the period's deliveries."""
    from ingestion.reports import ledger

    records = instance.get_run_records(filters=dg.RunsFilter(tags={REDELIVERY_TAG: due.key}))
    statuses = {record.dagster_run.status for record in records}
    if statuses & {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED}:
        return None, "its re-delivery run ended without changing the ledger (succeeded or canceled)"
    if not records:
        return f"redeliver-{due.key}", "due"
    runs = due.runs + len(records)  # every one of them failed before it reached the ledger
    if runs >= ledger.MAX_RUNS:
        return None, f"{len(records)} re-delivery run(s) failed before reaching the ledger: out of runs"
    last_ended = max(record.end_time or record.update_timestamp.timestamp() for record in records)
    if time.time() - last_ended < ledger.backoff(delay_minutes, runs).total_seconds():
        return None, "its last re-delivery run failed before reaching the ledger; waiting to try again"
    return f"redeliver-{due.key}-after-{len(records)}-failed", "due again"


@dg.sensor(
    name="report_redelivery_sensor",
    jobs=[daily_reports_job, weekly_reports_job],
    minimum_interval_seconds=5 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def report_redelivery_sensor(context: dg.SensorEvaluationContext):
    from ingestion.reports.ledger import Ledger
    from ingestion.reports.recipients import resolve
    from orchestration import environment

    delay = redelivery_delay()
    dsn = environment.pg_dsn()
    configured = {(r.email, r.scope) for r in resolve(dsn)}  # whom the runner's redelivery run sends to
    requests = []
    for due in Ledger(dsn).redeliveries_due(delay, configured):
        job, asset = _BY_KIND[due.period_kind]
        partition = due.period_start.isoformat()
        if not asset.partitions_def.has_partition_key(partition):
            # sent by hand for a period the schedule does not cover: `funnelhouse report` re-sends it
            context.log.info(f"failed {due.period_kind} deliveries of {partition}: no partition, skipped")
            continue
        if _period_run_under_way(context.instance, job, asset, partition):
            context.log.info(
                f"failed {due.period_kind} deliveries of {partition}: a run of it has not ended yet"
            )
            continue
        run_key, why = _run_key(context.instance, due, delay)
        if run_key is None:
            context.log.info(f"failed {due.period_kind} deliveries of {partition}: {why}")
            continue
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                job_name=job.name,
                partition_key=partition,
                # No waiting retries in the run (a server not answering): this sensor asks for a run
                # that failed before the ledger again itself, after the back-off, within the bound.
                run_config={
                    "ops": {asset.key.path[-1]: {"config": {"redeliver": True, "refresh_retries": 0}}}
                },
                tags={REDELIVERY_TAG: due.key},
            )
        )
    return requests or dg.SkipReason("no failed report delivery is due for another run")
