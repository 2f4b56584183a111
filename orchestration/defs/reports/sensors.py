"""Failed report deliveries are sent again without anyone asking.

The reports' own SMTP retries cover a few seconds' trouble; a relay down for an hour outlasts them,
and the schedule's next tick reports the next period, not this one. So every few minutes
``report_redelivery_sensor`` asks the ledger (``Ledger.redeliveries_due``) for periods with a 'failed'
delivery that has waited long enough (``FUNNELHOUSE_REPORT_REDELIVERY_MINUTES``, default 30, doubled
after each run) and has had fewer than ``MAX_RUNS`` runs, and runs that period's partition again with
``redeliver``: only those deliveries are sent (``runner.run(only_failed=True)``), nobody who has the
report gets it twice (the ledger's claims), and each run counts against the bound.

Not retried here: 'bounced' deliveries (the server refused them for good) and 'unknown' ones (they
may have arrived; ``ledger``). The run key is the period's count of runs, so a period is asked for
once per state: a re-delivery run that fails before it reaches the ledger (ClickHouse down, say) is
not asked for again until another run of that partition moves the count on.
"""

from __future__ import annotations

import os

import dagster as dg

from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.reports.schedules import daily_reports_job, weekly_reports_job

DELAY_ENV = "FUNNELHOUSE_REPORT_REDELIVERY_MINUTES"
DEFAULT_DELAY_MINUTES = 30.0
_BY_KIND = {
    "daily": (daily_reports_job, daily_kpi_reports),
    "weekly": (weekly_reports_job, weekly_kpi_reports),
}


def redelivery_delay() -> float:
    """Minutes a failed delivery waits before its next run (read when the sensor runs, not at import)."""
    value = os.environ.get(DELAY_ENV, "").strip()
    try:
        return float(value) if value else DEFAULT_DELAY_MINUTES
    except ValueError:
        raise ValueError(f"{DELAY_ENV} must be a number of minutes, not {value!r}") from None


@dg.sensor(
    name="report_redelivery_sensor",
    jobs=[daily_reports_job, weekly_reports_job],
    minimum_interval_seconds=5 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def report_redelivery_sensor(context: dg.SensorEvaluationContext):
    from ingestion.reports.ledger import Ledger
    from orchestration import environment

    requests = []
    for due in Ledger(environment.pg_dsn()).redeliveries_due(redelivery_delay()):
        job, asset = _BY_KIND[due.period_kind]
        partition = due.period_start.isoformat()
        if not asset.partitions_def.has_partition_key(partition):
            # sent by hand for a period the schedule does not cover: `funnelhouse report` re-sends it
            context.log.info(f"failed {due.period_kind} deliveries of {partition}: no partition, skipped")
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"redeliver-{due.key}",
                job_name=job.name,
                partition_key=partition,
                run_config={"ops": {asset.key.path[-1]: {"config": {"redeliver": True}}}},
                tags={"funnelhouse/redelivery": due.key},
            )
        )
    return requests or dg.SkipReason("no failed report delivery is due for another run")
