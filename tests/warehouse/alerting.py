"""What the alert tests share: the on-call address, where an alert's state is kept, the code location's
alert sensors over one Dagster instance, and the alert mails per run. (The relay fixture they mail
through is ``relay`` in tests/warehouse/conftest.py.)"""

from __future__ import annotations

import json
from datetime import datetime

import dagster as dg

from tests.reports.conftest import messages_to

ONCALL = "oncall@example.com"
RETRY_HOURS_ENV = "FUNNELHOUSE_ALERT_RETRY_HOURS"
REPEAT_HOURS_ENV = "FUNNELHOUSE_ALERT_REPEAT_HOURS"
# where an alert's state is kept: tags of the failed run (shown in the UI)
ALERT_TAG, ALERT_DETAIL_TAG = "funnelhouse/alert", "funnelhouse/alert-detail"


class AlertSensors:
    """The code location's two alert sensors over one instance, ticked as the daemon ticks them."""

    def __init__(self, instance: dg.DagsterInstance | None = None):
        from orchestration.definitions import defs

        self.defs = defs
        self.instance = instance or dg.DagsterInstance.ephemeral()
        self.failures = defs.resolve_sensor_def("run_failure_alert_sensor")
        self.start = self.cursor = self.failures.evaluate_tick(
            dg.build_sensor_context(instance=self.instance)
        ).cursor

    def failure_ticks(self, cursor: str | None = None) -> list[str]:
        """Ticks of the run-failure sensor until it has seen every failure; the runs it reacted to."""
        seen: list[str] = []
        for _ in range(5):
            data = self.failures.evaluate_tick(
                dg.build_sensor_context(instance=self.instance, cursor=cursor or self.cursor)
            )
            cursor = self.cursor = data.cursor
            assert all(reaction.error is None for reaction in data.dagster_run_reactions)
            seen += [reaction.dagster_run.run_id for reaction in data.dagster_run_reactions]
        return seen

    def retry_tick(self) -> None:
        retries = self.defs.resolve_sensor_def("run_failure_alert_retry_sensor")
        retries.evaluate_tick(dg.build_sensor_context(instance=self.instance))

    def alert_state(self, run_id: str) -> tuple[str | None, int | None]:
        tags = self.instance.get_run_by_id(run_id).tags
        detail = json.loads(tags.get(ALERT_DETAIL_TAG) or "{}")
        return tags.get(ALERT_TAG), detail.get("attempts")


def alerts_for(outbox, run_ids: list[str]) -> list[int]:
    """How many alert mails the outbox holds for each run."""
    subjects = [message["Subject"] for message in messages_to(outbox, ONCALL)]
    return [sum(f"(run {run_id[:8]})" in subject for subject in subjects) for run_id in run_ids]


class CheckAlertSensor:
    """The failed-check alert sensor over the location's instance, ticked as the daemon ticks it."""

    def __init__(self, location: AlertSensors):
        self.instance = location.instance
        self.sensor = location.defs.resolve_sensor_def("failed_check_alert_sensor")
        self.start = self.cursor = self.sensor.evaluate_tick(
            dg.build_sensor_context(instance=self.instance)
        ).cursor

    def tick(self, cursor: str | None = None) -> str:
        data = self.sensor.evaluate_tick(
            dg.build_sensor_context(instance=self.instance, cursor=cursor or self.cursor)
        )
        self.cursor = data.cursor
        return data.skip_message


def mail_of(outbox, run_id: str):
    """The run's one alert mail."""
    [mail] = [mail for mail in messages_to(outbox, ONCALL) if f"(run {run_id[:8]})" in mail["Subject"]]
    return mail


KPI_JOB = "warehouse_kpi_daily"


def nightly_kpi_tags(night: str) -> dict[str, str]:
    """The tags of the run the nightly KPI rebuild's schedule asks for on ``night`` (an ISO date): the
    range from the first KPI partition to that day, and the schedule's name, as Dagster adds it."""
    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("warehouse_kpi_nightly_rebuild_schedule")
    at = datetime.fromisoformat(f"{night}T12:00:00+00:00")  # that UTC day on any team clock
    with dg.build_schedule_context(scheduled_execution_time=at) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    return dict(request.tags)
