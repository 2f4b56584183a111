"""The code location's run-failure alert: it reacts to a failed run of any of its jobs (backups,
ingestion, reports, a materialisation started by hand), once each; an alert the relay did not take is
mailed again on a later tick, once, or given up after FUNNELHOUSE_ALERT_RETRY_HOURS with an error.
Real aiosmtpd relay, real (ephemeral) Dagster instance: its run records and tags are the sensors'."""

from __future__ import annotations

import json
import socket
import uuid

import dagster as dg
import pytest
from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorDefinition

from orchestration.defs.warehouse import sensors as alerts
from tests.reports.conftest import messages_to, sink_in_this_process

ONCALL = "oncall@example.com"
RETRY_HOURS_ENV = "FUNNELHOUSE_ALERT_RETRY_HOURS"
# where an alert's state is kept: tags of the failed run (shown in the UI)
ALERT_TAG, ALERT_DETAIL_TAG = "funnelhouse/alert", "funnelhouse/alert-detail"


def _failure_sensors(repository) -> list[RunStatusSensorDefinition]:
    return [sensor for sensor in repository.sensor_defs if isinstance(sensor, RunStatusSensorDefinition)]


def _fail_a_run(instance, job_name: str, tags: dict[str, str] | None = None) -> str:
    """A run record as the daemon would have made it, then failed (what the sensor reads)."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name=job_name, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED, tags=tags or {}
        )
    )
    instance.report_run_failed(run)
    return run.run_id


def test_a_failed_run_of_any_job_is_alerted_once(monkeypatch):
    from orchestration.definitions import defs

    monkeypatch.delenv("FUNNELHOUSE_ALERT_EMAIL", raising=False)  # logged only: no mail relay here
    repository = defs.get_repository_def()
    (sensor,) = _failure_sensors(repository)
    instance = dg.DagsterInstance.ephemeral()
    cursor = sensor.evaluate_tick(dg.build_sensor_context(instance=instance)).cursor  # starts from now

    # every job of the location, and the implicit job of a materialisation started from the UI
    job_names = sorted({job.name for job in repository.get_all_jobs()} | {"__ASSET_JOB"})
    assert {"postgres_backup_job", "crm_ingest", "warehouse_hourly_refresh"} <= set(job_names)
    failed = {_fail_a_run(instance, name): name for name in job_names}

    alerted: list[str] = []
    for _ in range(len(job_names) + 1):  # Dagster takes a few runs per tick
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
        cursor = data.cursor
        assert all(reaction.error is None for reaction in data.dagster_run_reactions)
        alerted += [reaction.dagster_run.run_id for reaction in data.dagster_run_reactions]
    assert sorted(failed[run_id] for run_id in alerted) == job_names  # each once, none left out


@pytest.fixture
def relay(service_dirs, monkeypatch):
    """(switch, outbox): the alert relay (FUNNELHOUSE_SMTP_URL), down until ``switch("up")``. Down is an
    address where a socket is bound but not listening: every connection is refused (OSError)."""
    outbox = service_dirs("alert-smtp")
    with sink_in_this_process(outbox) as settings, socket.socket() as nobody_listens:
        nobody_listens.bind((settings.host, 0))
        addresses = {
            "up": f"smtp://{settings.host}:{settings.port}",
            "down": f"smtp://{settings.host}:{nobody_listens.getsockname()[1]}",
        }
        monkeypatch.setenv("FUNNELHOUSE_ALERT_EMAIL", ONCALL)
        monkeypatch.setenv("FUNNELHOUSE_SMTP_STARTTLS", "0")
        monkeypatch.delenv(RETRY_HOURS_ENV, raising=False)

        def switch(state: str) -> None:
            monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", addresses[state])

        switch("down")
        yield switch, outbox


class _Location:
    """The code location's two alert sensors over one instance, ticked as the daemon ticks them."""

    def __init__(self):
        from orchestration.definitions import defs

        self.defs = defs
        self.instance = dg.DagsterInstance.ephemeral()
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


def _alerts_for(outbox, run_ids: list[str]) -> list[int]:
    """How many alert mails the outbox holds for each run."""
    subjects = [message["Subject"] for message in messages_to(outbox, ONCALL)]
    return [sum(f"(run {run_id[:8]})" in subject for subject in subjects) for run_id in run_ids]


def _logged(capsys) -> str:
    """What the sensors logged since the last call: a sensor's logger writes to the console (and, under
    the daemon, to the tick's captured log), not through the root logger pytest's caplog watches."""
    return capsys.readouterr().err


def test_alerts_the_relay_did_not_take_are_mailed_once_when_it_is_back(relay, capsys):
    switch, outbox = relay
    location = _Location()
    run_ids = [
        _fail_a_run(location.instance, job)
        for job in ("crm_ingest", "warehouse_hourly_refresh", "postgres_backup_job")
    ]

    # the relay is down while three runs fail: nothing mailed, every alert kept
    assert sorted(location.failure_ticks()) == sorted(run_ids)
    assert _alerts_for(outbox, run_ids) == [0, 0, 0]
    assert [location.alert_state(run_id)[0] for run_id in run_ids] == ["pending"] * 3
    _logged(capsys)
    location.retry_tick()  # still down: tried again, still kept
    assert _alerts_for(outbox, run_ids) == [0, 0, 0]
    assert {location.alert_state(run_id)[0] for run_id in run_ids} == {"pending"}
    assert f"retrying the alert of run {run_ids[0]} (crm_ingest): attempt 2" in _logged(capsys)

    switch("up")
    location.retry_tick()
    assert _alerts_for(outbox, run_ids) == [1, 1, 1]
    assert {location.alert_state(run_id)[0] for run_id in run_ids} == {"sent"}
    [mail] = [m for m in messages_to(outbox, ONCALL) if run_ids[0][:8] in m["Subject"]]
    assert "crm_ingest failed" in mail["Subject"]

    # never twice: later ticks of both sensors, and a run-failure tick replayed from before the failures
    # (a tick that did not finish: Dagster keeps its old cursor)
    location.retry_tick()
    location.failure_ticks()
    assert sorted(location.failure_ticks(cursor=location.start)) == sorted(run_ids)
    assert _alerts_for(outbox, run_ids) == [1, 1, 1]


def test_an_alert_is_given_up_after_the_configured_hours(relay, capsys, monkeypatch):
    switch, outbox = relay
    location = _Location()
    run_id = _fail_a_run(location.instance, "postgres_backup_job")
    location.failure_ticks()
    assert location.alert_state(run_id) == ("pending", 1)

    monkeypatch.setenv(RETRY_HOURS_ENV, "0")  # every pending alert is past its bound
    switch("up")
    location.retry_tick()
    location.retry_tick()
    assert _alerts_for(outbox, [run_id]) == [0]
    assert location.alert_state(run_id) == ("gave-up", 1)
    [give_up] = [line for line in _logged(capsys).splitlines() if "gave up" in line]
    assert f"ERROR - gave up mailing the alert of run {run_id} (postgres_backup_job)" in give_up

    monkeypatch.setenv(RETRY_HOURS_ENV, "a day")
    with pytest.raises(ValueError, match="FUNNELHOUSE_ALERT_RETRY_HOURS must be a number of hours"):
        alerts.retry_hours()


def test_a_rerun_carrying_its_parents_alert_tags_is_alerted_on_its_own(relay):
    """Re-execution may copy the parent run's tags: a 'sent' copied from the parent is not this run's."""
    switch, outbox = relay
    switch("up")
    location = _Location()
    parent = str(uuid.uuid4())
    copied = {
        ALERT_TAG: "sent",
        ALERT_DETAIL_TAG: json.dumps({"run_id": parent, "since": 0, "attempts": 1}),
    }
    run_id = _fail_a_run(location.instance, "crm_ingest", tags=copied)
    location.failure_ticks()
    assert _alerts_for(outbox, [run_id]) == [1]
    assert location.alert_state(run_id) == ("sent", 1)
