"""The alert sensors of the code location: not a domain's, since they watch every job's runs; what
they mail and record is ``orchestration.alerts``.

The run-failure alert always logs; mails FUNNELHOUSE_ALERT_EMAIL when set,
through the project's SMTP settings (the embedded sink locally), read at failure time, not import;
an alert the relay did not take is mailed again later, once.

``run_failure_alert_sensor`` watches every job of the code location, not only the warehouse's: a
failed backup, ingestion, search sync or report run matters as much as a failed refresh, and a
materialisation started by hand from the UI runs as Dagster's implicit asset job, which no list of
jobs names. ``orchestration.definitions`` registers it once for the merged location, with its
companions below.

``run_failure_alert_retry_sensor`` asks Dagster every minute for runs tagged pending and mails them,
oldest first; the first that fails again stops the tick (the relay is still down: the others would
only spend the tick's time limit waiting on it). An alert is retried until it is sent or
``FUNNELHOUSE_ALERT_RETRY_HOURS`` (default 24) have passed since it was first due; then it is given
up, with an error naming the run. While alerts are pending, a new failure joins the queue rather than
trying the relay itself, so alerts go out in order and a tick of the run-failure sensor never waits on
a relay known to be down.

A failed asset check (severity ERROR: a reconciliation that does not match, a dbt test that failed)
is alerted the same way, on its run: a failed run's alert lists the checks that failed in it (a dbt
test failing in the nightly build fails the run too: one alert, not two), and
``failed_check_alert_sensor`` alerts a run that succeeded with failed checks (the reconciliation
checks are not blocking: their run succeeds). Its cursor is Dagster's event log id of the last
successful run it read; the alert's state is on the run's tags as above, so the retry sensor and
``funnelhouse alerts`` handle it like any other. A check failing with severity WARN (a dbt test
configured ``severity: warn``) is left to the UI."""

from __future__ import annotations

import os
import time

import dagster as dg
from dagster._core.event_api import EventLogCursor

from orchestration.alerts.delivery import mail_again, send_alert
from orchestration.alerts.history import STILL_FAILING, judge_run
from orchestration.alerts.settings import (
    ALERT_EMAIL_ENV,
    REPEAT_HOURS_ENV,
    RETRY_HOURS_ENV,
    repeat_hours,
    retry_hours,
)
from orchestration.alerts.state import GAVE_UP, PENDING, Alert, alert_of, pending_alerts, record_alert
from orchestration.alerts.text import run_alert_text


def _raise_alert(instance: dg.DagsterInstance, log, run: dg.DagsterRun, subject: str, body: str) -> None:
    """Logs the run's alert and, with FUNNELHOUSE_ALERT_EMAIL set, mails it once (or queues it)."""
    log.error(body)
    if not os.environ.get(ALERT_EMAIL_ENV):
        log.info(f"no {ALERT_EMAIL_ENV}: logged only")
        return
    known = alert_of(run)
    if known is not None:  # this run seen before (a tick that did not finish): never mailed twice
        log.info(f"alert of run {run.run_id} already {known.state}")
        return
    alert = Alert(run, PENDING, time.time(), 0)
    waiting = pending_alerts(instance)
    if waiting:  # the relay failed the last try: queued behind them, mailed in order
        record_alert(instance, alert)
        log.warning(f"alert of run {run.run_id} queued behind {len(waiting)} not mailed yet")
        return
    send_alert(instance, log, alert, subject, body)


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    # No monitored_jobs: every job of this code location, the implicit asset job included.
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run.with_status(dg.DagsterRunStatus.FAILURE)  # its record may lag the event
    judged = judge_run(context.instance, context.log, run)
    text = run_alert_text(context.instance, run, context.failure_event.message, judged)
    if text is None:
        context.log.error(
            f"run {run.run_id} ({run.job_name}) failed: {judged[0].line()} Not mailed: reminded every "
            f"{repeat_hours():g} h ({REPEAT_HOURS_ENV})"
        )
        return
    _raise_alert(context.instance, context.log, run, *text)


# Successful runs read per tick; more wait for the next tick (the cursor says where it stopped).
_RUNS_PER_TICK = 100


@dg.sensor(
    name="failed_check_alert_sensor",
    # Every run of the instance (this code location is its only one), read from the event log.
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def failed_check_alert_sensor(context: dg.SensorEvaluationContext):
    instance = context.instance
    if context.cursor is None:  # from now on, as the run-failure sensor starts: no alert for the past
        latest = instance.event_log_storage.get_maximum_record_id() or 0
        context.update_cursor(EventLogCursor.from_storage_id(latest).to_string())
        return dg.SkipReason("watching the asset checks of runs that succeed from now on")
    ended = instance.fetch_run_status_changes(
        dg.DagsterEventType.RUN_SUCCESS, limit=_RUNS_PER_TICK, cursor=context.cursor, ascending=True
    )
    alerted = 0
    for record in ended.records:
        run = instance.get_run_by_id(record.run_id)
        if run is None:
            continue
        run = run.with_status(dg.DagsterRunStatus.SUCCESS)  # as its event says: its record may lag
        judged = judge_run(instance, context.log, run)
        for change in judged[1] if judged else []:
            if change.change == STILL_FAILING:
                context.log.info(
                    f"run {run.run_id}: {change.line()}; reminded every {repeat_hours():g} h "
                    f"({REPEAT_HOURS_ENV}), not mailed now"
                )
        text = run_alert_text(instance, run, None, judged)
        if text:
            _raise_alert(instance, context.log, run, *text)
            alerted += 1
    # A tick that stopped before this reads the same runs again: their tags say whose alert went out.
    context.update_cursor(ended.cursor)
    return dg.SkipReason(f"{alerted} of {len(ended.records)} successful run(s) with failed asset checks")


@dg.sensor(
    name="run_failure_alert_retry_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert_retry_sensor(context: dg.SensorEvaluationContext):
    waiting = pending_alerts(context.instance)
    if not waiting:
        return dg.SkipReason("no run-failure alert waiting to be mailed")
    if not os.environ.get(ALERT_EMAIL_ENV):
        return dg.SkipReason(f"{len(waiting)} run-failure alert(s) waiting; no {ALERT_EMAIL_ENV} set")
    hours = retry_hours()
    outcomes: dict[str, int] = {}
    for alert in waiting:
        run = alert.run
        if time.time() - alert.since >= hours * 3600:
            record_alert(context.instance, Alert(run, GAVE_UP, alert.since, alert.attempts))
            context.log.error(
                f"gave up mailing the alert of run {run.run_id} ({run.job_name}) after {alert.attempts} "
                f"attempt(s) in {hours:g} h ({RETRY_HOURS_ENV}); the failure stays in the run's log"
            )
            state = GAVE_UP
        else:
            context.log.info(
                f"retrying the alert of run {run.run_id} ({run.job_name}): attempt {alert.attempts + 1}"
            )
            state = mail_again(context.instance, context.log, alert)
        outcomes[state] = outcomes.get(state, 0) + 1
        if state == PENDING:  # the relay is still down: the rest wait for the next tick
            break
    summary = ", ".join(f"{count} {state}" for state, count in outcomes.items())
    return dg.SkipReason(f"run-failure alerts: {summary} of {len(waiting)} waiting")
