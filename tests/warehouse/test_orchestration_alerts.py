"""The code location's run-failure alert: it reacts to a failed run of any of its jobs (backups,
ingestion, reports, a materialisation started by hand), once each; an alert the relay did not take is
mailed again on a later tick, once, or given up after FUNNELHOUSE_ALERT_RETRY_HOURS with an error;
what no sensor mails again is the operator's (`funnelhouse alerts`, `resend`, `delivered`).
Real aiosmtpd relay, real Dagster instances (ephemeral, or in DAGSTER_HOME for the commands): their
run records and tags are the sensors'."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, PARTITION_NAME_TAG, SCHEDULE_NAME_TAG

from orchestration.alerts.delivery import mail_again
from orchestration.alerts.history import REMINDER, JobChange
from orchestration.alerts.settings import retry_hours
from orchestration.alerts.state import PENDING, alert_records
from orchestration.alerts.text import alert_text
from orchestration.defs.ingestion.sensors import FILE_TAG
from orchestration.runs import WORK_TAG
from tests.reports.conftest import messages_to, sink_in_this_process
from tests.warehouse.alerting import (
    ALERT_DETAIL_TAG,
    ALERT_TAG,
    KPI_JOB,
    ONCALL,
    REPEAT_HOURS_ENV,
    RETRY_HOURS_ENV,
    AlertSensors,
    CheckAlertSensor,
    alerts_for,
    mail_of,
    nightly_kpi_tags,
)


def _failure_sensors(repository) -> list[RunStatusSensorDefinition]:
    return [sensor for sensor in repository.sensor_defs if isinstance(sensor, RunStatusSensorDefinition)]


def _fail_a_run(
    instance,
    job_name: str,
    tags: dict[str, str] | None = None,
    message: str | None = None,
    assets: list[str] | None = None,
) -> str:
    """A run record as the daemon would have made it, then failed (what the sensor reads); ``message``:
    its failure's (a failure outside any step), else Dagster's for a run failed from outside;
    ``assets``: its asset selection (else the whole job)."""
    run = _start_a_run(instance, job_name, tags, assets)
    instance.report_run_failed(run, message=message)
    return run.run_id


def _succeed_a_run(
    instance, job_name: str, tags: dict[str, str] | None = None, assets: list[str] | None = None
) -> str:
    """A run record that succeeded, as the event log has it (what the failed-check sensor reads)."""
    run = _start_a_run(instance, job_name, tags, assets)
    event = dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, job_name, message="succeeded")
    instance.report_dagster_event(event, run_id=run.run_id)
    return run.run_id


def _start_a_run(
    instance, job_name: str, tags: dict[str, str] | None, assets: list[str] | None = None
) -> dg.DagsterRun:
    status = dg.DagsterRunStatus.STARTED
    selection = frozenset(dg.AssetKey(name) for name in assets) if assets else None
    run = dg.DagsterRun(
        job_name=job_name, run_id=str(uuid.uuid4()), status=status, tags=tags or {}, asset_selection=selection
    )
    return instance.add_run(run)


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


def _logged(capsys) -> str:
    """What the sensors logged since the last call: a sensor's logger writes to the console (and, under
    the daemon, to the tick's captured log), not through the root logger pytest's caplog watches."""
    return capsys.readouterr().err


def test_alerts_the_relay_did_not_take_are_mailed_once_when_it_is_back(relay, capsys):
    switch, outbox = relay
    location = AlertSensors()
    run_ids = [
        _fail_a_run(location.instance, job)
        for job in ("crm_ingest", "warehouse_hourly_refresh", "postgres_backup_job")
    ]

    # the relay is down while three runs fail: nothing mailed, every alert kept
    assert sorted(location.failure_ticks()) == sorted(run_ids)
    assert alerts_for(outbox, run_ids) == [0, 0, 0]
    assert [location.alert_state(run_id)[0] for run_id in run_ids] == ["pending"] * 3
    _logged(capsys)
    location.retry_tick()  # still down: tried again, still kept
    assert alerts_for(outbox, run_ids) == [0, 0, 0]
    assert {location.alert_state(run_id)[0] for run_id in run_ids} == {"pending"}
    assert f"retrying the alert of run {run_ids[0]} (crm_ingest): attempt 2" in _logged(capsys)

    switch("up")
    location.retry_tick()
    assert alerts_for(outbox, run_ids) == [1, 1, 1]
    assert {location.alert_state(run_id)[0] for run_id in run_ids} == {"sent"}
    [mail] = [m for m in messages_to(outbox, ONCALL) if run_ids[0][:8] in m["Subject"]]
    assert "crm_ingest failed" in mail["Subject"]

    # never twice: later ticks of both sensors, and a run-failure tick replayed from before the failures
    # (a tick that did not finish: Dagster keeps its old cursor)
    location.retry_tick()
    location.failure_ticks()
    assert sorted(location.failure_ticks(cursor=location.start)) == sorted(run_ids)
    assert alerts_for(outbox, run_ids) == [1, 1, 1]


def test_an_alert_is_given_up_after_the_configured_hours(relay, capsys, monkeypatch):
    switch, outbox = relay
    location = AlertSensors()
    run_id = _fail_a_run(location.instance, "postgres_backup_job")
    location.failure_ticks()
    assert location.alert_state(run_id) == ("pending", 1)

    monkeypatch.setenv(RETRY_HOURS_ENV, "0")  # every pending alert is past its bound
    switch("up")
    location.retry_tick()
    location.retry_tick()
    assert alerts_for(outbox, [run_id]) == [0]
    assert location.alert_state(run_id) == ("gave-up", 1)
    [give_up] = [line for line in _logged(capsys).splitlines() if "gave up" in line]
    assert f"ERROR - gave up mailing the alert of run {run_id} (postgres_backup_job)" in give_up

    monkeypatch.setenv(RETRY_HOURS_ENV, "a day")
    with pytest.raises(ValueError, match="FUNNELHOUSE_ALERT_RETRY_HOURS must be a number of hours"):
        retry_hours()


def test_a_rerun_carrying_its_parents_alert_tags_is_alerted_on_its_own(relay):
    """Re-execution may copy the parent run's tags: a 'sent' copied from the parent is not this run's."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    parent = str(uuid.uuid4())
    copied = {
        ALERT_TAG: "sent",
        ALERT_DETAIL_TAG: json.dumps({"run_id": parent, "since": 0, "attempts": 1}),
    }
    run_id = _fail_a_run(location.instance, "crm_ingest", tags=copied)
    location.failure_ticks()
    assert alerts_for(outbox, [run_id]) == [1]
    assert location.alert_state(run_id) == ("sent", 1)


# --- a job that keeps failing: mailed when it starts, fails differently, as a reminder, recovers ---

CONNECTION_LOST = "could not connect to PostgreSQL\nTraceback (most recent call last): ..."


def test_a_job_failing_every_hour_is_mailed_when_it_starts_differently_or_as_a_reminder(
    relay, monkeypatch, capsys
):
    """The hourly refresh failing all night (PostgreSQL down): not one mail an hour. Other jobs, and
    other partitions of one job (other days), fail on their own."""
    switch, outbox = relay
    switch("up")
    monkeypatch.delenv(REPEAT_HOURS_ENV, raising=False)  # the default: a reminder a day
    location = AlertSensors()
    instance = location.instance
    first = _fail_a_run(instance, "crm_ingest")
    other_job = _fail_a_run(instance, "postgres_backup_job")
    today, march = (
        _fail_a_run(instance, "warehouse_kpi_daily", tags={PARTITION_NAME_TAG: day})
        for day in ("2026-11-30", "2026-03-01")
    )
    second = _fail_a_run(instance, "crm_ingest")
    _logged(capsys)
    location.failure_ticks()
    assert alerts_for(outbox, [first, other_job, today, march, second]) == [1, 1, 1, 1, 0]
    logged = _logged(capsys)
    assert f"run {second} (crm_ingest) failed: Still failing as in run {first[:8]} before it" in logged
    assert "2 failed run(s). Not mailed: reminded every 24 h (FUNNELHOUSE_ALERT_REPEAT_HOURS)" in logged
    assert location.alert_state(second) == (None, None)  # nothing to retry either

    # another failure (compared by its message's first line: no step failed in these runs) is mailed
    differently, same_again = (_fail_a_run(instance, "crm_ingest", message=CONNECTION_LOST) for _ in range(2))
    location.failure_ticks()
    assert alerts_for(outbox, [differently, same_again]) == [1, 0]
    mail = mail_of(outbox, differently)
    assert mail["Subject"] == f"[funnelhouse] crm_ingest failed again (run {differently[:8]})"
    assert f"Failing differently from run {second[:8]} before it; failing for " in mail.get_content()
    assert "3 failed run(s)" in mail.get_content() and "could not connect" in mail.get_content()

    # windows of 3.6 ms: a run later, its failure falls in another window than the previous one's; the
    # relay is down, and the retry mails the same text, from the same history
    monkeypatch.setenv(REPEAT_HOURS_ENV, "0.000001")
    switch("down")
    reminded = _fail_a_run(instance, "crm_ingest", message=CONNECTION_LOST)
    location.failure_ticks()
    assert location.alert_state(reminded) == ("pending", 1)
    switch("up")
    location.retry_tick()
    mail = mail_of(outbox, reminded)
    assert mail["Subject"] == f"[funnelhouse] crm_ingest failed again (run {reminded[:8]})"
    assert f"Still failing as in run {same_again[:8]} before it; failing for " in mail.get_content()
    assert "5 failed run(s)" in mail.get_content()
    assert alerts_for(outbox, [first, second, differently, same_again, reminded]) == [1, 0, 1, 0, 1]


@dg.asset
def kpis() -> None:
    raise RuntimeError("a broken model")


BROKEN_TAG = "test/broken"  # the asset of `orders` and `sales` that fails in the run


@dg.asset
def orders(context) -> None:
    if context.run.tags.get(BROKEN_TAG) == "orders":
        raise RuntimeError("PostgreSQL is down")


@dg.asset
def sales(context) -> None:
    if context.run.tags.get(BROKEN_TAG) == "sales":
        raise RuntimeError("a broken model")


def test_a_job_failing_in_another_step_is_mailed(relay):
    """Real runs of the same assets: a failure is told from another by the steps that failed, not by
    the run's message."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    first, second, other_step = (
        dg.materialize(
            [orders, sales], instance=location.instance, tags={BROKEN_TAG: broken}, raise_on_error=False
        ).run_id
        for broken in ("orders", "orders", "sales")
    )
    location.failure_ticks()
    assert alerts_for(outbox, [first, second, other_step]) == [1, 0, 1]
    assert f"Failing differently from run {second[:8]}" in mail_of(outbox, other_step).get_content()


def test_a_jobs_streak_is_per_asset_selection(relay):
    """crm_ingest loads one table per run (a landing file each): a deposits load succeeding says
    nothing about the customers loads failing."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    instance = location.instance
    failed = [_fail_a_run(instance, "crm_ingest", assets=["customers"]) for _ in range(2)]
    whole_job = _fail_a_run(instance, "crm_ingest")  # no selection: the whole job, its own streak
    location.failure_ticks()
    assert alerts_for(outbox, [*failed, whole_job]) == [1, 0, 1]

    other_table = _succeed_a_run(instance, "crm_ingest", assets=["deposits"])
    checks.tick()
    assert alerts_for(outbox, [other_table]) == [0]
    recovered = _succeed_a_run(instance, "crm_ingest", assets=["customers"])
    checks.tick()
    assert (
        mail_of(outbox, recovered)["Subject"] == f"[funnelhouse] crm_ingest recovered (run {recovered[:8]})"
    )
    assert "2 failed run(s)" in mail_of(outbox, recovered).get_content()


def test_a_tables_loads_failing_file_after_file_are_one_streak(relay):
    """Bad rows fail a file's check, not its step: the step of crm_ingest fails for the infrastructure
    (the disk full, PostgreSQL down) whatever the file, so one outage through five landing files is
    mailed once, and once "recovered", not once per file (the files' checks keep their own streaks)."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    instance = location.instance

    def file_tags(batch: str) -> dict[str, str]:
        return {FILE_TAG: f"/landing/deposits__{batch}.csv"}

    failed = [
        _fail_a_run(instance, "crm_ingest", tags=file_tags(f"h{i}"), assets=["deposits"]) for i in range(5)
    ]
    location.failure_ticks()
    assert alerts_for(outbox, failed) == [1, 0, 0, 0, 0]
    assert "Landing file: /landing/deposits__h0.csv" in mail_of(outbox, failed[0]).get_content()

    recovered = _succeed_a_run(instance, "crm_ingest", tags=file_tags("h5"), assets=["deposits"])
    checks.tick()
    assert alerts_for(outbox, [recovered]) == [1]
    mail = mail_of(outbox, recovered)
    assert mail["Subject"] == f"[funnelhouse] crm_ingest recovered (run {recovered[:8]})"
    assert "5 failed run(s)" in mail.get_content()


def test_a_jobs_streak_is_per_kind_of_work(relay):
    """The search sync job syncs, or rebuilds the index (``WORK_TAG``): while rebuilds keep failing
    and the sensor asks for sync-only runs between them, a sync succeeding is no "recovered" and the
    next failed rebuild no "new" failure: one alert for the rebuild's streak, not one mail per run."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    instance = location.instance
    rebuild = {WORK_TAG: "rebuild"}
    first = _fail_a_run(instance, "search_sync", tags=rebuild)
    location.failure_ticks()
    synced = _succeed_a_run(instance, "search_sync")
    checks.tick()
    again = _fail_a_run(instance, "search_sync", tags=rebuild)
    location.failure_ticks()
    assert alerts_for(outbox, [first, synced, again]) == [1, 0, 0]


def _backup_tags(schedule_name: str) -> dict[str, str]:
    """The tags of the run the backup schedule asks for (its kind, ``WORK_TAG``, and its name)."""
    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def(schedule_name)
    with dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 1, tzinfo=UTC)) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    return dict(request.tags)


def test_full_and_incremental_backups_fail_and_recover_apart(relay):
    """One job takes both kinds of backup: an incremental backup succeeding between failing full ones
    is no "recovered" (full backups still fail), nor the next failed full backup a "new" failure."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    instance = location.instance
    full, incremental = (
        _backup_tags(name) for name in ("postgres_full_backup_daily", "postgres_incremental_backup_6h")
    )
    job = "postgres_backup_job"
    first = _fail_a_run(instance, job, tags=full)
    location.failure_ticks()
    good_incremental = _succeed_a_run(instance, job, tags=incremental)
    checks.tick()
    again = _fail_a_run(instance, job, tags=full)
    failed_incremental = _fail_a_run(instance, job, tags=incremental)
    location.failure_ticks()
    assert alerts_for(outbox, [first, good_incremental, again, failed_incremental]) == [1, 0, 0, 1]
    assert mail_of(outbox, failed_incremental)["Subject"].startswith(f"[funnelhouse] {job} failed (run ")

    recovered = _succeed_a_run(instance, job, tags=full)
    checks.tick()
    mail = mail_of(outbox, recovered)
    assert mail["Subject"] == f"[funnelhouse] {job} recovered (run {recovered[:8]})"
    assert "2 failed run(s)" in mail.get_content()
    assert (full.get(WORK_TAG), incremental.get(WORK_TAG)) == ("full", "incremental")


def test_an_alert_that_cannot_be_judged_is_mailed_as_new(relay, monkeypatch, capsys):
    """Dagster's run-failure sensor moves past a run even when the sensor raised: an error judging a
    failing streak (here a malformed setting) must not lose the alert."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    instance = location.instance
    monkeypatch.setenv(REPEAT_HOURS_ENV, "24h")
    failed = [_fail_a_run(instance, "crm_ingest") for _ in range(2)]
    checked = [dg.materialize([ledger, _no_gaps(False)], instance=instance).run_id for _ in range(2)]
    _logged(capsys)
    location.failure_ticks()
    assert checks.tick() == "2 of 2 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [*failed, *checked]) == [1, 1, 1, 1]
    assert mail_of(outbox, failed[1])["Subject"] == f"[funnelhouse] crm_ingest failed (run {failed[1][:8]})"
    assert "- ledger: no_gaps" in mail_of(outbox, checked[1]).get_content()
    logged = _logged(capsys)
    for run_id in (failed[1], checked[1]):
        assert f"run {run_id} " in logged
    assert "could not be judged (ConfigurationError: FUNNELHOUSE_ALERT_REPEAT_HOURS must be" in logged


def test_a_failure_read_before_its_run_record_is_updated_is_judged_by_its_event(relay):
    """Dagster stores a run's failure event before it sets the run's status and end time: the
    run-failure sensor may read the run in between."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    instance = location.instance
    first = _fail_a_run(instance, "crm_ingest")
    run = _start_a_run(instance, "crm_ingest", None)
    event = dg.DagsterEvent(dg.DagsterEventType.RUN_FAILURE.value, "crm_ingest", message=CONNECTION_LOST)
    instance.event_log_storage.store_event(  # the event alone, as in that moment
        dg.EventLogEntry(
            error_info=None,
            level=logging.ERROR,
            user_message=CONNECTION_LOST,
            run_id=run.run_id,
            timestamp=time.time(),
            job_name="crm_ingest",
            dagster_event=event,
        )
    )
    assert instance.get_run_record_by_id(run.run_id).end_time is None
    location.failure_ticks()
    assert alerts_for(outbox, [first, run.run_id]) == [1, 1]
    mail = mail_of(outbox, run.run_id)
    assert mail["Subject"] == f"[funnelhouse] crm_ingest failed again (run {run.run_id[:8]})"
    assert f"Failing differently from run {first[:8]} before it" in mail.get_content()


def test_a_job_succeeding_after_an_alerted_failure_is_mailed_as_recovered_once(relay, monkeypatch):
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    instance = location.instance
    failed = [_fail_a_run(instance, job) for job in ("crm_ingest", "crm_ingest", "postgres_backup_job")]
    location.failure_ticks()
    assert alerts_for(outbox, failed) == [1, 0, 1]
    monkeypatch.delenv("FUNNELHOUSE_ALERT_EMAIL")  # logged only: no alert raised for it
    unalerted = _fail_a_run(instance, "search_sync")
    location.failure_ticks()
    monkeypatch.setenv("FUNNELHOUSE_ALERT_EMAIL", ONCALL)

    recovered, still_good, not_alerted = (
        _succeed_a_run(instance, job) for job in ("crm_ingest", "crm_ingest", "search_sync")
    )
    assert checks.tick() == "1 of 3 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [recovered, still_good, not_alerted, unalerted]) == [1, 0, 0, 0]
    mail = mail_of(outbox, recovered)
    assert mail["Subject"] == f"[funnelhouse] crm_ingest recovered (run {recovered[:8]})"
    assert "Recovered: it failed for 0.0 h, since " in mail.get_content()
    assert "2 failed run(s)" in mail.get_content()
    assert len(messages_to(outbox, ONCALL)) == 3  # postgres_backup_job did not recover: not mailed

    checks.tick(cursor=checks.start)  # a tick replayed from before them (one that did not finish)
    assert alerts_for(outbox, [recovered]) == [1]


@dg.asset
def ledger() -> None:
    pass


def _no_gaps(passed: bool) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=ledger, name="no_gaps")
    def check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=passed)

    return check


def test_the_nightly_kpi_rebuild_failing_night_after_night_is_one_streak(relay, monkeypatch, capsys):
    """Each night its schedule asks for the range from the first KPI partition to that day: other
    dates each night, the same work. Failing nights are one streak, reminded per the repeat setting,
    and the night it succeeds is mailed as recovered, once. A backfill of the same dates by hand is
    its own streak, by its dates, as before."""
    switch, outbox = relay
    switch("up")
    monkeypatch.delenv(REPEAT_HOURS_ENV, raising=False)  # the default: a reminder a day
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    instance = location.instance
    nights = [nightly_kpi_tags(f"2026-11-{day}") for day in (27, 28, 29, 30)]
    assert nights[0][ASSET_PARTITION_RANGE_END_TAG] != nights[1][ASSET_PARTITION_RANGE_END_TAG]
    by_hand = {tag: value for tag, value in nights[1].items() if tag != SCHEDULE_NAME_TAG}
    first, second = (_fail_a_run(instance, KPI_JOB, tags=tags) for tags in nights[:2])
    backfills = [_fail_a_run(instance, KPI_JOB, tags=by_hand) for _ in range(2)]
    _logged(capsys)
    location.failure_ticks()
    assert alerts_for(outbox, [first, second, *backfills]) == [1, 0, 1, 0]
    assert f"run {second} ({KPI_JOB}) failed: Still failing as in run {first[:8]}" in _logged(capsys)

    monkeypatch.setenv(REPEAT_HOURS_ENV, "0.000001")  # windows of 3.6 ms: the next night is reminded
    reminded = _fail_a_run(instance, KPI_JOB, tags=nights[2])
    location.failure_ticks()
    assert alerts_for(outbox, [reminded]) == [1]
    assert f"Still failing as in run {second[:8]} before it" in mail_of(outbox, reminded).get_content()
    assert "3 failed run(s)" in mail_of(outbox, reminded).get_content()

    recovered, still_good = (_succeed_a_run(instance, KPI_JOB, tags=nights[3]) for _ in range(2))
    assert checks.tick() == "1 of 2 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [recovered, still_good, *backfills]) == [1, 0, 1, 0]
    mail = mail_of(outbox, recovered)
    assert mail["Subject"] == f"[funnelhouse] {KPI_JOB} recovered (run {recovered[:8]})"
    assert "3 failed run(s)" in mail.get_content()


def test_a_job_recovering_with_its_checks_resolved_is_mailed_once(relay):
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    failed = dg.materialize([ledger, _no_gaps(False), kpis], instance=location.instance, raise_on_error=False)
    location.failure_ticks()
    good = dg.materialize([ledger, _no_gaps(True)], instance=location.instance)
    checks.tick()
    assert alerts_for(outbox, [failed.run_id, good.run_id]) == [1, 1]
    mail = mail_of(outbox, good.run_id)
    assert mail["Subject"] == f"[funnelhouse] __ephemeral_asset_job__ recovered (run {good.run_id[:8]})"
    assert "Recovered: it failed for " in mail.get_content()
    assert "no longer failing with severity ERROR:\n- ledger: no_gaps (failed for " in mail.get_content()


def test_every_jobs_alert_subjects_fit_a_line():
    """Not folded by a mail client: 78 characters at most, for the longest job name of the location."""
    from orchestration.definitions import defs

    names = {job.name for job in defs.get_repository_def().get_all_jobs()}
    streak = JobChange(REMINDER, 0.0, 3600.0, 2, str(uuid.uuid4()))
    for name in names:
        for status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS):
            run = dg.DagsterRun(job_name=name, run_id=str(uuid.uuid4()), status=status)
            for checks, resolved in ((None, None), (["a: b"], None), (None, ["a: b"])):
                for job in (None, streak):
                    subject, _ = alert_text(run, "failed", checks, resolved, job)
                    assert len(subject) <= 78, subject


# --- `funnelhouse alerts`: what no sensor mails again is listed, resent or settled by an operator ---


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    """A real, persistent Dagster instance in DAGSTER_HOME, as the daemon's: the commands open it from
    there, the sensors tick over the same one."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("")  # Dagster's defaults, as `make ui` would have them
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def _funnelhouse(*arguments: str):
    from typer.testing import CliRunner

    from orchestration.cli import app

    return CliRunner().invoke(app, list(arguments), env={"COLUMNS": "200"})


def test_alerts_no_sensor_mails_again_are_listed_and_resent_or_recorded_by_hand(
    relay, dagster_home, monkeypatch
):
    switch, outbox = relay
    location = AlertSensors(dagster_home)
    given_up, settled = (_fail_a_run(dagster_home, job) for job in ("crm_ingest", "postgres_backup_job"))
    location.failure_ticks()  # the relay is down: both pending
    monkeypatch.setenv(RETRY_HOURS_ENV, "0")
    location.retry_tick()
    # tried once; queued behind it, never tried
    assert [location.alert_state(run_id) for run_id in (given_up, settled)] == [
        ("gave-up", 1),
        ("gave-up", 0),
    ]

    listing = _funnelhouse("alerts")
    assert listing.exit_code == 0, listing.output
    [row] = [line for line in listing.output.splitlines() if given_up in line]
    assert "crm_ingest" in row and "gave-up" in row and "UTC" in row
    assert settled in listing.output and ONCALL not in listing.output  # never where alerts go

    # by hand, once: a relay still down leaves it not-sent (no sensor retries it), and says so
    still_down = _funnelhouse("alerts", "resend", given_up)
    assert still_down.exit_code == 1 and "not mailed" in still_down.output
    assert location.alert_state(given_up) == ("not-sent", 2)
    assert alerts_for(outbox, [given_up]) == [0]

    switch("up")
    resent = _funnelhouse("alerts", "resend", given_up[:8])  # as the mail's subject shows it
    assert resent.exit_code == 0, resent.output
    assert alerts_for(outbox, [given_up, settled]) == [1, 0]
    [mail] = messages_to(outbox, ONCALL)
    assert mail["Subject"] == f"[funnelhouse] crm_ingest failed (run {given_up[:8]})"
    assert f"alert-{given_up}@" in mail["Message-ID"]  # what to look for in the relay's log
    assert location.alert_state(given_up) == ("sent", 3)

    refused = _funnelhouse("alerts", "resend", given_up)  # sent: not twice by accident
    assert refused.exit_code == 1 and "--again" in refused.output
    assert alerts_for(outbox, [given_up]) == [1]
    assert _funnelhouse("alerts", "resend", given_up, "--again").exit_code == 0
    assert alerts_for(outbox, [given_up]) == [2]

    # the relay's log shows it arrived: recorded as sent, nothing mailed
    recorded = _funnelhouse("alerts", "delivered", settled)
    assert recorded.exit_code == 0, recorded.output
    assert location.alert_state(settled) == ("sent", 0)
    assert alerts_for(outbox, [settled]) == [0]
    assert "no run-failure alert waiting" in _funnelhouse("alerts").output
    again = _funnelhouse("alerts", "delivered", settled)
    assert again.exit_code == 1 and "already recorded as sent" in again.output
    location.retry_tick()
    assert alerts_for(outbox, [given_up, settled]) == [2, 0]


def test_alert_commands_name_what_they_cannot_find(relay, dagster_home, monkeypatch, tmp_path):
    location = AlertSensors(dagster_home)
    never_failed = dagster_home.add_run(
        dg.DagsterRun(job_name="crm_ingest", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS)
    ).run_id
    location.failure_ticks()
    for command in ("resend", "delivered"):
        unknown = _funnelhouse("alerts", command, "no-such-run")
        assert unknown.exit_code == 2 and "no run 'no-such-run' in the Dagster instance" in unknown.output
        unalerted = _funnelhouse("alerts", command, never_failed)
        assert unalerted.exit_code == 2 and "has no alert recorded" in unalerted.output

    monkeypatch.delenv("FUNNELHOUSE_ALERT_EMAIL")
    nobody = _funnelhouse("alerts", "resend", never_failed)
    assert nobody.exit_code == 1 and "no FUNNELHOUSE_ALERT_EMAIL set" in nobody.output

    # without DAGSTER_HOME: the instance `make ui` keeps in the state home, or a clear error
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "state"))
    missing = _funnelhouse("alerts")
    assert missing.exit_code == 1 and "set DAGSTER_HOME" in missing.output
    (tmp_path / "state" / "dagster").mkdir()
    assert "no run-failure alert waiting" in _funnelhouse("alerts").output


def test_an_alert_whose_handover_was_cut_off_stays_sending_until_an_operator_decides(
    service_dirs, dagster_home, monkeypatch
):
    """The relay had the message when the connection dropped: a retry would mail it twice. It stays
    'sending', listed as possibly arrived, until someone records it (or resends it)."""
    from tests.reports.test_redelivery import _DropsAfterData

    outbox = service_dirs("alert-smtp-drops")
    monkeypatch.setenv("FUNNELHOUSE_ALERT_EMAIL", ONCALL)
    monkeypatch.setenv("FUNNELHOUSE_SMTP_STARTTLS", "0")
    with sink_in_this_process(outbox, _DropsAfterData) as settings:
        monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", f"smtp://{settings.host}:{settings.port}")
        location = AlertSensors(dagster_home)
        run_id = _fail_a_run(dagster_home, "warehouse_hourly_refresh")
        location.failure_ticks()
        location.retry_tick()
        assert location.alert_state(run_id) == ("sending", 1)
        assert alerts_for(outbox, [run_id]) == [1]  # it did arrive, once

        [row] = [line for line in _funnelhouse("alerts").output.splitlines() if run_id in line]
        assert "sending" in row and "may have arrived" in row
        assert _funnelhouse("alerts", "delivered", run_id).exit_code == 0
    assert location.alert_state(run_id) == ("sent", 1)
    assert alerts_for(outbox, [run_id]) == [1]


def test_an_alert_mailed_by_hand_meanwhile_is_not_mailed_again_by_the_retry_sensor(relay, capsys):
    """The retry sensor read the alert as pending; before it mails it an operator's `alerts resend`
    did (state and attempts moved): the sensor leaves it, so the on-call gets it once."""
    switch, outbox = relay
    location = AlertSensors()
    run_id = _fail_a_run(location.instance, "crm_ingest")
    location.failure_ticks()  # the relay is down: pending
    [read_by_the_sensor] = [a for a, _ in alert_records(location.instance, [PENDING])]
    switch("up")
    log = logging.getLogger("test")
    assert mail_again(location.instance, log, read_by_the_sensor, retried=False) == "sent"
    assert alerts_for(outbox, [run_id]) == [1]

    assert mail_again(location.instance, log, read_by_the_sensor) == "sent"  # the stale read
    assert alerts_for(outbox, [run_id]) == [1]
    assert location.alert_state(run_id) == ("sent", 2)
