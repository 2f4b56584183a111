"""The report assets, schedules and command, wired to the test services through the environment variables
production uses (ClickHouse URL, PostgreSQL DSN, the stack's SMTP sink)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from typer.testing import CliRunner

from ingestion.reports import data
from ingestion.reports.periods import Period
from orchestration.cli import app
from orchestration.defs.reports import runner
from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT
from orchestration.defs.warehouse.model_definitions import current_definitions
from tests.reports import sample_marts
from tests.reports.conftest import (
    MARTS_DATABASE,
    RAW_DATABASE,
    daily_run_with_retries,
    messages_to,
    outbox_messages,
)


def test_schedules_run_daily_and_on_mondays_at_nine():
    from orchestration.definitions import defs

    daily = defs.resolve_schedule_def("daily_kpi_reports_schedule")
    weekly = defs.resolve_schedule_def("weekly_kpi_reports_schedule")
    assert daily.cron_schedule == "0 9 * * *" and weekly.cron_schedule == "0 9 * * 1"
    assert daily.execution_timezone == weekly.execution_timezone == "Asia/Shanghai"
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("mart_kpi_employee_daily") in graph.get(dg.AssetKey("daily_kpi_reports")).parent_keys


def _tick(defs, schedule, at: datetime):
    # an instance of its own: a report tick reads the runs its schedule asked for before
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=at, repository_def=defs.get_repository_def()
        ) as context,
    ):
        return schedule.evaluate_tick(context)


def _requested_partition(defs, schedule, at: datetime) -> str:
    return _tick(defs, schedule, at).run_requests[0].partition_key


def test_a_schedule_reports_the_newest_kpi_day_and_week_that_had_ended():
    """09:00 in Shanghai is 01:00 UTC: the KPI (UTC) day before has ended. At 07:00 (23:00 UTC) it
    has not, and the report is of the day before it, never of a day still running."""
    from orchestration.definitions import defs

    shanghai = ZoneInfo("Asia/Shanghai")
    daily = defs.resolve_schedule_def("daily_kpi_reports_schedule")
    weekly = defs.resolve_schedule_def("weekly_kpi_reports_schedule")
    assert _requested_partition(defs, daily, datetime(2026, 11, 27, 9, tzinfo=shanghai)) == "2026-11-26"
    assert _requested_partition(defs, daily, datetime(2026, 11, 27, 7, tzinfo=shanghai)) == "2026-11-25"
    # Monday 2026-11-23 09:00: the week of Monday 2026-11-16 to Sunday 2026-11-22
    assert _requested_partition(defs, weekly, datetime(2026, 11, 23, 9, tzinfo=shanghai)) == "2026-11-16"
    # at 07:00 that week still runs (Sunday 23:00 UTC): the week before
    assert _requested_partition(defs, weekly, datetime(2026, 11, 23, 7, tzinfo=shanghai)) == "2026-11-09"
    # Dagster maps a report partition to the KPI partitions it reads: a week to its seven days
    graph = defs.resolve_asset_graph()
    kpi_days = graph.get_parent_partition_keys_for_child(
        "2026-11-16", dg.AssetKey("mart_kpi_employee_daily"), dg.AssetKey("weekly_kpi_reports")
    ).partitions_subset.get_partition_keys()
    assert sorted(kpi_days) == [f"2026-11-{day}" for day in range(16, 23)]


def test_the_first_ticks_skip_a_period_before_the_first_partition():
    """The first day's tick would report the day before FUNNELHOUSE_REPORT_START, the first Monday's
    the week before the first weekly partition: neither exists, so both ticks skip and say why."""
    from orchestration.definitions import defs

    shanghai = ZoneInfo("Asia/Shanghai")
    for name, asset in (("daily", daily_kpi_reports), ("weekly", weekly_kpi_reports)):
        schedule = defs.resolve_schedule_def(f"{name}_kpi_reports_schedule")
        first = asset.partitions_def.get_first_partition_key()
        first_tick = datetime.fromisoformat(first).replace(hour=9, tzinfo=shanghai)
        skipped = _tick(defs, schedule, first_tick)
        assert not skipped.run_requests, (name, skipped.run_requests)
        assert first in skipped.skip_message and "first" in skipped.skip_message
        next_tick = first_tick + timedelta(days=1 if name == "daily" else 7)
        assert _requested_partition(defs, schedule, next_tick) == first


def test_daily_partition_mails_everyone_and_reports_metadata(report_environment, smtp_sink, recipients):
    result = dg.materialize([daily_kpi_reports], partition_key="2026-11-26")
    assert result.success
    [materialization] = result.asset_materializations_for_node("daily_kpi_reports")
    metadata = materialization.metadata
    assert metadata["sent"].value == len(recipients) and metadata["failed"].value == 0
    assert {row["email"] for row in metadata["recipients"].value} == {r.email for r in recipients}
    assert metadata["preview"].value.endswith("report.html")
    table = metadata["reports"].value.splitlines()  # a Markdown table: header, rule, a row per report
    assert table[0].startswith("| report |") and table[1].startswith("|---") and len(table) > 2
    for recipient in recipients:
        assert messages_to(smtp_sink["outbox"], recipient.email, f"daily-2026-11-26-{recipient.scope}-zh")
    again = dg.materialize(
        [daily_kpi_reports], partition_key="2026-11-26"
    )  # a retried run mails nobody twice
    assert again.asset_materializations_for_node("daily_kpi_reports")[0].metadata[
        "skipped_already_sent"
    ].value == len(recipients)


def test_a_bounce_fails_the_partition_after_the_others_were_mailed(
    report_environment, smtp_sink, monkeypatch
):
    config = report_environment / "recipients.yaml"
    config.write_text(
        "replace: true\nrecipients:\n  - {email: gone@bounce.invalid, scope: VIP}\n"
        "  - {email: admin@example.com, scope: all}\n"
    )
    monkeypatch.setenv("FUNNELHOUSE_REPORT_RECIPIENTS", str(config))
    result = dg.materialize([weekly_kpi_reports], partition_key="2026-11-16", raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "gone@bounce.invalid" in failure.step_failure_data.user_failure_data.description
    assert messages_to(smtp_sink["outbox"], "admin@example.com", "weekly-2026-11-16-all-zh")


def test_command_writes_files_and_sends_to_one_address(report_environment, smtp_sink):
    runner = CliRunner()
    written = runner.invoke(
        app,
        [
            "report",
            "--date",
            "2026-11-25",
            "--to",
            "admin@example.com",
            "--out",
            str(report_environment / "out"),
        ],
    )
    assert written.exit_code == 0, written.output
    folder = report_environment / "out" / "daily-2026-11-25" / "daily-2026-11-25-all-zh"
    assert {"report.html", "report.pdf", "leaderboard.csv"} <= {p.name for p in folder.iterdir()}

    sent = runner.invoke(
        app,
        [
            "report",
            "--date",
            "2026-11-25",
            "--weekly",
            "--send",
            "--to",
            "someone@example.com",
            "--scope",
            "BoFu",
            "--language",
            "en",
        ],
    )
    assert sent.exit_code == 0, sent.output
    assert messages_to(smtp_sink["outbox"], "someone@example.com", "weekly-2026-11-23-BoFu-en")


def test_an_address_nobody_configured_gets_nothing_without_a_scope(report_environment, smtp_sink):
    """A mistyped address must not receive every department's numbers by default."""
    refused = CliRunner().invoke(
        app,
        [
            "report",
            "--date",
            "2026-11-25",
            "--send",
            "--to",
            "admin@exmaple.com",
            "--out",
            str(report_environment / "out"),
        ],
    )
    assert refused.exit_code != 0
    said = " ".join(refused.output.replace("│", " ").split())  # however the terminal wrapped it
    assert "--scope" in said and "admin@exmaple.com is not a report recipient" in said
    assert not messages_to(smtp_sink["outbox"], "admin@exmaple.com")
    assert not (report_environment / "out").exists()


def test_the_daily_job_runs_through_the_whole_code_location(report_environment, smtp_sink, recipients):
    """As the schedule launches it: Dagster maps the report's partition to the KPI mart's partitions
    (it failed every run while the two were on different timezones)."""
    from orchestration.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    # the KPI partition the report reads has been built, as it has in production
    instance.report_runless_asset_event(
        dg.AssetMaterialization("mart_kpi_employee_daily", partition="2026-11-24")
    )
    job = defs.resolve_job_def("daily_kpi_reports_job")
    result = job.execute_in_process(partition_key="2026-11-24", instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("daily_kpi_reports")
    assert materialization.metadata["sent"].value == len(recipients)


def test_marts_refreshed_before_the_day_ended_mail_nothing_and_retry(report_environment, smtp_sink, marts):
    """A refresh mark from before the period's end: the run waits for the next refresh (its retries),
    and when none comes, fails saying why, with nobody mailed a day without its last hours."""
    refresh_state.record_refresh(
        marts[0], RAW_DATABASE, MARTS_DATABASE, datetime(2026, 11, 26, 23, 15)
    )  # 23:15 UTC on the day reported
    mailed_before = len(outbox_messages(smtp_sink["outbox"]))
    retries, said = daily_run_with_retries("2026-11-26", retries=1)
    assert retries == 1
    assert "last refreshed at 2026-11-26 23:15 UTC" in said and "daily-2026-11-26" in said
    assert len(outbox_messages(smtp_sink["outbox"])) == mailed_before
    # the day before had ended by then: its report goes out
    assert dg.materialize([daily_kpi_reports], partition_key="2026-11-25").success


def test_a_report_sent_before_its_day_ended_does_not_stand_in_for_the_complete_one(
    report_environment, smtp_sink, marts, recipients
):
    """`funnelhouse report --send` on a day the marts have not been refreshed after (as `make demo` does
    for the current week): sent with a warning and recorded as preliminary. Sending it again changes
    nothing; the scheduled run, once the marts are refreshed, still mails everyone the complete report,
    that recipient included, once."""
    day, slug = "2026-11-26", "daily-2026-11-26-"
    outbox, early = smtp_sink["outbox"], recipients[0].email

    def mailed(preliminary: bool | None = None) -> int:
        """Reports of the day in the sink (only the preliminary ones / only the others)."""
        return sum(
            1
            for m in outbox_messages(outbox)
            if m["X-Funnelhouse-Report"].startswith(slug)
            and (preliminary is None or ("初步" in m["Subject"]) == preliminary)
        )

    def send_by_hand():
        return CliRunner().invoke(app, ["report", "--date", day, "--send", "--to", early])

    refresh_state.record_refresh(marts[0], RAW_DATABASE, MARTS_DATABASE, datetime(2026, 11, 26, 23, 15))
    before = mailed()
    preliminary = send_by_hand()
    assert preliminary.exit_code == 0, preliminary.output
    assert "warning: the marts were last refreshed at 2026-11-26 23:15 UTC" in " ".join(
        preliminary.output.split()
    )
    assert mailed() == before + 1 and mailed(preliminary=True) == 1  # and it says so
    again = send_by_hand()
    assert "already sent 1" in again.output and mailed() == before + 1

    refresh_state.record_refresh(marts[0], RAW_DATABASE, MARTS_DATABASE, datetime(2026, 11, 27, 0, 15))
    complete = dg.materialize([daily_kpi_reports], partition_key=day)
    assert complete.success
    metadata = complete.asset_materializations_for_node("daily_kpi_reports")[0].metadata
    assert metadata["sent"].value == len(recipients)
    assert mailed() == before + 1 + len(recipients) and mailed(preliminary=True) == 1
    # Complete now: neither the schedule nor the command mails anyone a third time.
    assert dg.materialize([daily_kpi_reports], partition_key=day).success
    late = send_by_hand()
    assert late.exit_code == 0 and mailed() == before + 1 + len(recipients)


def test_a_day_without_any_activity_fails_instead_of_mailing_zeros(report_environment, smtp_sink):
    day = (sample_marts.END_DATE - timedelta(days=60)).isoformat()  # the sample's 45 days start later
    mailed_before = len(outbox_messages(smtp_sink["outbox"]))
    result = dg.materialize([daily_kpi_reports], partition_key=day, raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "no activity in the marts" in failure.step_failure_data.user_failure_data.description
    assert len(outbox_messages(smtp_sink["outbox"])) == mailed_before


def test_marts_built_before_a_deploy_retry_instead_of_failing_for_good(report_environment, smtp_sink, marts):
    """Marts built by the version before a deploy lack a column this one reads (here the customer mart's
    as_of_date): the report run waits for the refresh that rebuilds them (its retries), as for marts not
    yet refreshed, rather than failing for good and leaving the day unreported; the command says why."""
    client, table = marts[0], f"`{MARTS_DATABASE}`.`mart_customer_overview`"
    mailed_before = len(outbox_messages(smtp_sink["outbox"]))
    client.command(f"ALTER TABLE {table} RENAME COLUMN as_of_date TO as_of_date_before_the_deploy")
    try:
        retries, said = daily_run_with_retries("2026-11-25", retries=1)
        assert retries == 1
        assert "lack what this version reads" in said and "as_of_date" in said
        by_hand = CliRunner().invoke(app, ["report", "--date", "2026-11-25"])
        assert by_hand.exit_code == 1 and "lack what this version reads" in by_hand.output
        assert len(outbox_messages(smtp_sink["outbox"])) == mailed_before
    finally:
        client.command(f"ALTER TABLE {table} RENAME COLUMN as_of_date_before_the_deploy TO as_of_date")


def test_a_column_marts_of_this_version_lack_is_the_querys_error_not_a_retry(
    report_environment, marts, monkeypatch
):
    """Marts built from this version's definitions lack nothing it defines: a query naming a column they
    lack (a typo in the report code) fails with ClickHouse's error at once, not retried for an hour as
    marts waiting for a deploy's refresh."""
    client = marts[0]
    refresh_state.record_definitions(client, RAW_DATABASE, MARTS_DATABASE, current_definitions(REPO_ROOT))
    monkeypatch.setitem(data.KPI_DAILY, "department", "departmnet")
    try:
        by_hand = CliRunner().invoke(app, ["report", "--date", "2026-11-25"])
        assert isinstance(by_hand.exception, DatabaseError) and "departmnet" in str(by_hand.exception)
        assert "lack what this version reads" not in by_hand.output
    finally:
        client.command(f"TRUNCATE TABLE `{RAW_DATABASE}`.`{refresh_state.DEFINITIONS_TABLE}`")


def test_marts_rebuilt_right_after_a_query_of_them_failed_still_retry(report_environment, marts, monkeypatch):
    """The refresh that applies a deploy may finish (and record this version's definitions) between a
    report's query of the old marts failing and the run deciding what the failure means. The marts the
    run read were built from other definitions: it retries, and the retry reads the rebuilt marts,
    rather than failing for good with ClickHouse's error and leaving the day unreported."""
    client, table = marts[0], f"`{MARTS_DATABASE}`.`mart_customer_overview`"
    current = current_definitions(REPO_ROOT)
    old = {**current, "mart_customer_overview": "the definition before the deploy"}
    query = data.MartReader._query

    def refresh_finishing_after_a_failure(reader, sql, parameters=None):
        try:
            return query(reader, sql, parameters)
        except data.MartsBehindCode:
            monkeypatch.setattr(data.MartReader, "_query", query)  # it finishes once
            client.command(f"ALTER TABLE {table} RENAME COLUMN as_of_date_before_the_deploy TO as_of_date")
            refresh_state.record_definitions(client, RAW_DATABASE, MARTS_DATABASE, current)
            raise

    def report():
        return runner.run(
            Period.daily(date(2026, 11, 25)),
            send=False,
            to="race@example.com",
            scope="all",
            out_dir=report_environment / "race",
            progress=lambda _: None,
        )

    client.command(f"ALTER TABLE {table} RENAME COLUMN as_of_date TO as_of_date_before_the_deploy")
    refresh_state.record_definitions(client, RAW_DATABASE, MARTS_DATABASE, old)
    monkeypatch.setattr(data.MartReader, "_query", refresh_finishing_after_a_failure)
    try:
        with pytest.raises(runner.Incomplete, match="lack what this version reads"):
            report()
        assert data.MartReader._query is query  # the refresh did finish in between
        assert report().reports  # rendered from the rebuilt marts
    finally:
        if "as_of_date_before_the_deploy" in {c[0] for c in client.query(f"DESCRIBE {table}").result_rows}:
            client.command(f"ALTER TABLE {table} RENAME COLUMN as_of_date_before_the_deploy TO as_of_date")
        client.command(f"TRUNCATE TABLE `{RAW_DATABASE}`.`{refresh_state.DEFINITIONS_TABLE}`")
