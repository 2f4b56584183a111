"""Failed asset checks alert as failed runs do (a check that keeps failing: when it starts, as a
reminder every FUNNELHOUSE_ALERT_REPEAT_HOURS, and when it stops), and the costly reconciliation
checks are the nightly build's alone. Real Dagster runs on a real instance (ephemeral), real aiosmtpd
relay: the sensors read the runs' event logs and keep each alert's state on its run's tags."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.storage.tags import PARTITION_NAME_TAG

from orchestration.defs.ingestion.sensors import FILE_TAG, UNREADABLE_TAG
from orchestration.defs.warehouse import dbt_assets as dbt_assets_module
from tests.reports.conftest import messages_to
from tests.warehouse.alerting import (
    ONCALL,
    REPEAT_HOURS_ENV,
    AlertSensors,
    CheckAlertSensor,
    alerts_for,
    nightly_kpi_tags,
)

RECONCILIATION = {"matches_v_customer_overview", "matches_v_employee_performance"}


@pytest.mark.skipif(
    not dbt_assets_module.MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)
def test_the_reconciliation_checks_run_nightly_not_hourly():
    """They read the seed's PostgreSQL views whole: not every hour. The dbt tests stay in both jobs."""
    from orchestration.definitions import defs

    def checks_of(job_name: str) -> set[str]:
        return {key.name for key in defs.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys}

    hourly, nightly = checks_of("warehouse_hourly_refresh"), checks_of("warehouse_nightly_full_build")
    assert nightly >= RECONCILIATION
    assert not RECONCILIATION & hourly
    assert hourly == nightly - RECONCILIATION  # every dbt test still an asset check of the hourly job


@dg.asset
def ledger() -> None:
    pass


def _check(name: str, passed: bool, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=ledger, name=name)
    def check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=passed, severity=severity)

    return check


@dg.asset(deps=[ledger])
def broken_report() -> None:
    raise RuntimeError("the report's query failed")


def _run(instance: dg.DagsterInstance, *definitions, tags: dict[str, str] | None = None) -> str:
    """A real run of ``ledger`` and ``definitions`` (checks, a failing asset) on the instance."""
    result = dg.materialize([ledger, *definitions], instance=instance, tags=tags, raise_on_error=False)
    return result.run_id


def test_a_failed_check_is_alerted_once_a_passing_one_never(relay):
    switch, outbox = relay
    location = AlertSensors()
    earlier = _run(location.instance, _check("no_gaps", passed=False))  # before the sensor started
    checks = CheckAlertSensor(location)

    passing = _run(
        location.instance,
        _check("no_gaps", passed=True),
        _check("few_late_rows", passed=False, severity=dg.AssetCheckSeverity.WARN),  # left to the UI
    )
    failing = _run(location.instance, _check("no_gaps", passed=False), _check("balanced", passed=True))

    # the relay is down: kept on the run, as a failed run's alert would be
    assert checks.tick() == "1 of 2 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [earlier, passing, failing]) == [0, 0, 0]
    assert location.alert_state(failing) == ("pending", 1)
    assert location.alert_state(passing) == (None, None)

    switch("up")
    location.retry_tick()  # the run-failure alerts' retry sensor mails it
    assert alerts_for(outbox, [earlier, passing, failing]) == [0, 0, 1]
    assert location.alert_state(failing) == ("sent", 2)
    [mail] = messages_to(outbox, ONCALL)
    assert mail["Subject"] == f"[funnelhouse] __ephemeral_asset_job__ checks failed (run {failing[:8]})"
    assert "- ledger: no_gaps" in mail.get_content() and "balanced" not in mail.get_content()

    # the cursor moved past both runs; a tick replayed from before them (one that did not finish)
    # finds the alert recorded on the run: never twice
    assert checks.tick() == "0 of 0 successful run(s) with failed asset checks"
    checks.tick(cursor=checks.start)
    location.retry_tick()
    assert alerts_for(outbox, [earlier, passing, failing]) == [0, 0, 1]


def test_a_failed_run_is_alerted_once_with_its_failed_checks(relay):
    """A dbt test failing in the nightly build fails the run too: one alert, listing the checks."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    failed = _run(location.instance, _check("no_gaps", passed=False), broken_report)

    assert location.failure_ticks() == [failed]
    assert checks.tick() == "0 of 0 successful run(s) with failed asset checks"
    [mail] = messages_to(outbox, ONCALL)
    assert mail["Subject"] == f"[funnelhouse] __ephemeral_asset_job__ failed (run {failed[:8]})"
    assert "broken_report" in mail.get_content() and "- ledger: no_gaps" in mail.get_content()


def _mail(outbox, run_id: str):
    """The run's one alert mail."""
    [mail] = [mail for mail in messages_to(outbox, ONCALL) if f"(run {run_id[:8]})" in mail["Subject"]]
    return mail


def test_a_check_that_keeps_failing_is_mailed_when_it_starts_as_a_reminder_and_when_it_stops(
    relay, monkeypatch, capsys
):
    """The hourly freshness check of a replication that stays stale: not one mail an hour."""
    switch, outbox = relay
    switch("up")
    monkeypatch.delenv(REPEAT_HOURS_ENV, raising=False)  # the default: a reminder a day
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    first, second = (_run(location.instance, _check("no_gaps", passed=False)) for _ in range(2))

    assert checks.tick() == "1 of 2 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [first, second]) == [1, 0]
    assert "- ledger: no_gaps (new; failing for 0.0 h, since " in _mail(outbox, first).get_content()
    assert f"run {second}: ledger: no_gaps (still failing; failing for" in capsys.readouterr().err
    assert location.alert_state(second) == (None, None)  # nothing to retry either

    # windows of 3.6 ms: a run later, its evaluation falls in another window than the previous one's
    monkeypatch.setenv(REPEAT_HOURS_ENV, "0.000001")
    reminded = _run(location.instance, _check("no_gaps", passed=False))
    checks.tick()
    assert alerts_for(outbox, [first, second, reminded]) == [1, 0, 1]
    assert "- ledger: no_gaps (reminder; failing for " in _mail(outbox, reminded).get_content()

    passing, still_passing = (_run(location.instance, _check("no_gaps", passed=True)) for _ in range(2))
    assert checks.tick() == "1 of 2 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [passing, still_passing]) == [1, 0]
    mail = _mail(outbox, passing)
    assert mail["Subject"] == f"[funnelhouse] __ephemeral_asset_job__ checks resolved (run {passing[:8]})"
    assert "no longer failing with severity ERROR:\n- ledger: no_gaps (failed for " in mail.get_content()


def test_a_check_starting_to_fail_beside_one_still_failing_is_mailed_alone(relay):
    """Also when the alert waited for the relay: mailed again later, it says what it said first."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    first = _run(location.instance, _check("no_gaps", passed=False))
    checks.tick()
    switch("down")
    both = _run(location.instance, _check("no_gaps", passed=False), _check("balanced", passed=False))

    assert checks.tick() == "1 of 1 successful run(s) with failed asset checks"
    assert location.alert_state(both) == ("pending", 1)
    switch("up")
    location.retry_tick()
    assert alerts_for(outbox, [first, both]) == [1, 1]
    content = _mail(outbox, both).get_content()
    assert "- ledger: balanced (new; failing for " in content and "no_gaps" not in content


def test_a_check_starting_to_fail_while_its_job_keeps_failing_is_mailed(relay, monkeypatch):
    """The job's failing streak is no reason to keep quiet about a check: mailed with the job's
    "failed again" (also when mailed again later, from the log), and resolved when it passes."""
    switch, outbox = relay
    switch("up")
    monkeypatch.delenv(REPEAT_HOURS_ENV, raising=False)  # the default: a reminder a day
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    first = _run(location.instance, _check("no_gaps", passed=True), broken_report)
    location.failure_ticks()
    switch("down")
    second = _run(location.instance, _check("no_gaps", passed=False), broken_report)
    location.failure_ticks()
    assert location.alert_state(second) == ("pending", 1)
    switch("up")
    location.retry_tick()
    assert alerts_for(outbox, [first, second]) == [1, 1]
    mail = _mail(outbox, second)
    assert mail["Subject"] == f"[funnelhouse] __ephemeral_asset_job__ failed again (run {second[:8]})"
    assert f"Still failing as in run {first[:8]} before it" in mail.get_content()
    assert "- ledger: no_gaps (new; failing for " in mail.get_content()

    recovered = _run(location.instance, _check("no_gaps", passed=False))  # the check within its window
    passing = _run(location.instance, _check("no_gaps", passed=True))
    assert checks.tick() == "2 of 2 successful run(s) with failed asset checks"
    assert "no_gaps" not in _mail(outbox, recovered).get_content()
    mail = _mail(outbox, passing)
    assert mail["Subject"] == f"[funnelhouse] __ephemeral_asset_job__ checks resolved (run {passing[:8]})"
    assert "- ledger: no_gaps (failed for " in mail.get_content()


def test_a_checks_streak_is_per_partition(relay):
    """A KPI check failing in a backfill of March is not resolved by today's partition passing it."""
    switch, outbox = relay
    switch("up")
    location = AlertSensors()
    checks = CheckAlertSensor(location)

    def run_of(day: str, passed: bool) -> str:
        return _run(location.instance, _check("no_gaps", passed=passed), tags={PARTITION_NAME_TAG: day})

    march, today, march_again = (
        run_of("2026-03-01", False),
        run_of("2026-11-30", True),
        run_of("2026-03-01", True),
    )
    assert checks.tick() == "2 of 3 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [march, today, march_again]) == [1, 0, 1]
    assert "checks resolved" in _mail(outbox, march_again)["Subject"]


def test_a_check_failing_in_the_nightly_kpi_rebuild_night_after_night_is_one_streak(relay, monkeypatch):
    """Its schedule's range ends the day it runs: still the same partitions, night after night, so
    the check is mailed when it starts failing and resolved the night it passes, not new each night."""
    switch, outbox = relay
    switch("up")
    monkeypatch.delenv(REPEAT_HOURS_ENV, raising=False)  # the default: a reminder a day
    location = AlertSensors()
    checks = CheckAlertSensor(location)

    def night(day: str, passed: bool) -> str:
        tags = nightly_kpi_tags(day)
        return _run(location.instance, _check("no_gaps", passed=passed), tags=tags)

    failing = [night(day, passed=False) for day in ("2026-11-28", "2026-11-29")]
    passing = night("2026-11-30", passed=True)
    assert checks.tick() == "2 of 3 successful run(s) with failed asset checks"
    assert alerts_for(outbox, [*failing, passing]) == [1, 0, 1]
    mail = _mail(outbox, passing)
    assert "checks resolved" in mail["Subject"] and "- ledger: no_gaps (failed for " in mail.get_content()


def test_each_landing_file_has_its_own_streak_resolved_only_by_its_own_load(
    relay, pg_dsn, tmp_path, monkeypatch
):
    """The ``landing_contract`` check judges the file of its run: a second bad customers file is a
    new failure, not "still failing"; a good file after them resolves neither; the mail names the
    file. A file reported unreadable (its own run, ``unreadable_report``) is resolved when it loads.
    The landing sensor's real requests, run as ``crm_ingest`` against the real PostgreSQL."""
    from ingestion.load.landing import LandingFile, discover
    from ingestion.load.pipeline import ingest
    from orchestration.definitions import defs
    from tests.ingestion import landing_rows as rows
    from tests.ingestion.test_dagster import run_requests, tick

    switch, outbox = relay
    switch("up")
    monkeypatch.delenv(REPEAT_HOURS_ENV, raising=False)  # the default: a reminder a day
    landing = tmp_path / "landing"
    monkeypatch.setenv("FUNNELHOUSE_LANDING", str(landing))
    ingest(pg_dsn, discover([str(rows.write(landing, "employees", "b1", [rows.employee(1)]))]))
    location = AlertSensors()
    checks = CheckAlertSensor(location)
    crm_ingest = defs.resolve_job_def("crm_ingest")

    def load_next() -> tuple[str, str]:
        """The run of the one file the landing sensor asks for now, and that file."""
        (request,) = run_requests(tick(landing, location.instance))
        run = crm_ingest.execute_in_process(
            run_config=request.run_config,
            instance=location.instance,
            tags=request.tags,
            asset_selection=request.asset_selection,
        )
        checks.tick()
        return run.run_id, request.tags[FILE_TAG]

    unknown_employee = {"assigned_employee_code": "EMP_999"}  # every row rejected: the file fails
    rows.write(landing, "customers", "part0002", [rows.customer(2, **unknown_employee)])
    rows.write(landing, "customers", "part0003", [rows.customer(3, **unknown_employee)])
    rows.write(landing, "customers", "part0004", [rows.customer(4)])
    (first, first_file), (second, second_file), (good, _) = (load_next() for _ in range(3))
    assert alerts_for(outbox, [first, second, good]) == [1, 1, 0]
    for run_id, file in ((first, first_file), (second, second_file)):
        mail = _mail(outbox, run_id)
        assert mail["Subject"] == f"[funnelhouse] crm_ingest checks failed (run {run_id[:8]})"
        assert f"Landing file: {file}" in mail.get_content()
        assert "- crm/customers: landing_contract (new; failing for " in mail.get_content()

    opened = LandingFile.open

    def refusing(self, mode="rb"):  # a mode another user set: the tests run as root
        if self.name == "customers__part0005.csv":
            raise PermissionError(13, "Permission denied", self.url)
        return opened(self, mode)

    rows.write(landing, "customers", "part0005", [rows.customer(5)])
    monkeypatch.setattr(LandingFile, "open", refusing)
    reported, reported_file = load_next()
    monkeypatch.setattr(LandingFile, "open", opened)
    loaded, loaded_file = load_next()
    assert reported_file == loaded_file and reported_file.endswith("customers__part0005.csv")
    assert location.instance.get_run_by_id(reported).tags[UNREADABLE_TAG] == "true"
    assert alerts_for(outbox, [reported, loaded]) == [1, 1]
    assert f"Landing file: {reported_file}" in _mail(outbox, reported).get_content()
    mail = _mail(outbox, loaded)
    assert mail["Subject"] == f"[funnelhouse] crm_ingest checks resolved (run {loaded[:8]})"
    assert f"Landing file: {loaded_file}" in mail.get_content()
    assert "- crm/customers: landing_contract (failed for " in mail.get_content()
    assert len(messages_to(outbox, ONCALL)) == 4  # the bad files stay failed: nothing resolved them
