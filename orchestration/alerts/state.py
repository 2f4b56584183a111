"""Where an alert is: its state kept on its run's tags, the one store both alert sensors and
``funnelhouse alerts`` read and write.

A relay that is down when a run fails is when the alert matters most (the relay and the warehouse
fail together), so an alert that could not be mailed is not dropped: its state is kept on the failed
run itself, as tags (``ALERT_TAG``: pending, sending, sent, not-sent, gave-up; ``ALERT_DETAIL_TAG``:
the run it belongs to, when it was first due, how many attempts). Run tags are Dagster's own storage:
they outlive ticks and daemon restarts, one run's state never races another's (several runs failing
while the relay is down each keep their own), and the UI shows them. The run-failure sensor's cursor
is Dagster's, and a sensor cursor holding a queue would be written by two sensors at once.

A run whose tags were copied from the run it re-executes is told apart by the run id in
``ALERT_DETAIL_TAG``."""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg

ALERT_TAG = "funnelhouse/alert"  # on the failed run: where its alert is
ALERT_DETAIL_TAG = "funnelhouse/alert-detail"  # JSON: run_id, since (epoch seconds), attempts
PENDING, SENDING, SENT, NOT_SENT, GAVE_UP = "pending", "sending", "sent", "not-sent", "gave-up"
UNSENT = [PENDING, SENDING, NOT_SENT, GAVE_UP]  # what `funnelhouse alerts` lists


@dataclass(frozen=True)
class Alert:
    """A failed run's alert and where it is: ``since`` it was first due, after ``attempts`` tries."""

    run: dg.DagsterRun
    state: str
    since: float
    attempts: int


def alert_of(run: dg.DagsterRun) -> Alert | None:
    """The run's alert as its tags record it; None if they do not, or were copied from another run."""
    try:
        detail = json.loads(run.tags.get(ALERT_DETAIL_TAG) or "null")
    except ValueError:
        return None
    if ALERT_TAG not in run.tags or not isinstance(detail, dict) or detail.get("run_id") != run.run_id:
        return None
    return Alert(run, run.tags[ALERT_TAG], float(detail["since"]), int(detail["attempts"]))


def record_alert(instance: dg.DagsterInstance, alert: Alert) -> None:
    detail = {"run_id": alert.run.run_id, "since": alert.since, "attempts": alert.attempts}
    instance.add_run_tags(alert.run.run_id, {ALERT_TAG: alert.state, ALERT_DETAIL_TAG: json.dumps(detail)})


def alert_records(instance: dg.DagsterInstance, states: list[str]) -> list[tuple[Alert, dg.RunRecord]]:
    """The alerts in ``states`` with their failed runs' records (when each ended), oldest first."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={ALERT_TAG: states}))
    found = [(alert, record) for record in records if (alert := alert_of(record.dagster_run)) is not None]
    return sorted(found, key=lambda pair: pair[0].since)


def pending_alerts(instance: dg.DagsterInstance) -> list[Alert]:
    """Alerts waiting to be mailed, oldest first."""
    return [alert for alert, _ in alert_records(instance, [PENDING])]
