"""Failed report deliveries are run again by the redelivery sensor, a bounded number of times, without
anyone who has the report getting it twice; a failure no retry cures is left to a manual run; a
delivery whose outcome is unknown is never sent again by itself, and later runs say it awaits someone's
decision. Real aiosmtpd servers, the real ledger in PostgreSQL, the report assets through Dagster (its
run records in a real, ephemeral instance)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from typer.testing import CliRunner

from devstack import smtp
from devstack.state import free_port
from ingestion.reports import delivery
from ingestion.reports import ledger as ledger_module
from ingestion.reports.ledger import Ledger
from ingestion.reports.periods import Period
from ingestion.reports.recipients import Recipient
from ingestion.schema.migrate import MIGRATIONS_DIR
from orchestration.cli import app
from orchestration.defs.reports.assets import daily_kpi_reports
from tests.reports.conftest import messages_to, sink_in_this_process
from tests.reports.test_delivery import FAST_RETRY, _run

DAY = "2026-11-23"  # a day no other test mails


class _TempfailsOnDemand(smtp.OutboxHandler):
    """The sink's handler, answering 451 at RCPT for whoever is in ``failing`` (a relay having trouble),
    and losing the connection once it has a message for someone in ``dropping``, before it answers."""

    failing: set[str] = set()
    dropping: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.failing:
            return "451 4.3.0 try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)
        if self.dropping & set(envelope.rcpt_tos):
            server.transport.close()
        return answer


@pytest.fixture
def troubled_relay(report_environment, service_dirs, monkeypatch):
    """The relay the reports go through (FUNNELHOUSE_SMTP_URL; without SMTPUTF8, as some relays are),
    and the report's recipients."""
    outbox = service_dirs("troubled-smtp")
    config = report_environment / "recipients.yaml"
    config.write_text(
        "replace: true\nrecipients:\n  - {email: admin@example.com, scope: all}\n"
        "  - {email: flaky@example.com, scope: VIP}\n  - {email: dead@example.com, scope: VIP}\n"
    )
    monkeypatch.setenv("FUNNELHOUSE_REPORT_RECIPIENTS", str(config))
    monkeypatch.setattr(delivery, "DEFAULT_RETRY", FAST_RETRY)  # seconds of back-off, not minutes
    monkeypatch.setattr(_TempfailsOnDemand, "failing", set())
    monkeypatch.setattr(_TempfailsOnDemand, "dropping", set())
    with sink_in_this_process(outbox, _TempfailsOnDemand, enable_SMTPUTF8=False) as settings:
        monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", f"smtp://{settings.host}:{settings.port}")
        monkeypatch.setenv("FUNNELHOUSE_SMTP_STARTTLS", "0")
        yield outbox


@pytest.fixture
def instance():
    """A real Dagster instance (in memory): the run records the sensor reads."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _evaluate_sensor(instance: dg.DagsterInstance) -> dg.SensorResult:
    from orchestration.definitions import defs

    sensor = defs.resolve_sensor_def("report_redelivery_sensor")
    with dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()) as context:
        return sensor.evaluate_tick(context)


def _requests(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """What the sensor asks for that the daemon would launch: not a run key it has launched before."""
    requests = _evaluate_sensor(instance).run_requests
    return [
        request
        for request in requests
        if not instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key}))
    ]


def _redeliver(request: dg.RunRequest, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The run the sensor asked for (its job's asset, partition, config and tags), as the daemon
    launches it (its run key as a tag)."""
    assert (request.job_name, request.partition_key) == ("daily_kpi_reports_job", DAY)
    return dg.materialize(
        [daily_kpi_reports],
        partition_key=request.partition_key,
        run_config=request.run_config,
        instance=instance,
        tags={**request.tags, "dagster/run_key": request.run_key},
        raise_on_error=False,
    )


def _scheduled_run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([daily_kpi_reports], partition_key=DAY, instance=instance, raise_on_error=False)


def _ledger(pg_dsn: str) -> dict[str, dict]:
    return {row["recipient"]: row for row in Ledger(pg_dsn).deliveries(Period.daily(date.fromisoformat(DAY)))}


def test_failed_deliveries_are_run_again_until_sent_or_out_of_runs(
    troubled_relay, pg_dsn, instance, monkeypatch
):
    """The relay refuses two managers for a while: the sensor runs the day again for them alone, until
    one has it and the other has had its runs (three here, a run less than MAX_RUNS: a test's seconds);
    the one who had it from the start is left alone."""
    monkeypatch.setattr(ledger_module, "MAX_RUNS", 3)
    _TempfailsOnDemand.failing.update({"flaky@example.com", "dead@example.com"})
    scheduled = _scheduled_run(instance)
    assert not scheduled.success
    failure = next(event for event in scheduled.all_events if event.is_step_failure)
    assert "report_redelivery_sensor" in failure.step_failure_data.user_failure_data.description

    assert not _requests(instance)  # not due yet: 30 minutes by default
    monkeypatch.setenv("FUNNELHOUSE_REPORT_REDELIVERY_MINUTES", "0")
    # While a run of the day is under way (someone materialises it by hand), nothing is asked for:
    # that run sends what is due itself.
    by_hand = instance.add_run(
        dg.DagsterRun(
            job_name="__ASSET_JOB",
            asset_selection={daily_kpi_reports.key},
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": DAY},
        )
    )
    assert not _requests(instance)
    instance.report_run_canceled(by_hand)
    [first] = _requests(instance)
    assert [r.run_key for r in _requests(instance)] == [first.run_key]  # asked for once
    assert not _redeliver(first, instance).success  # the relay still refuses both

    _TempfailsOnDemand.failing.discard("flaky@example.com")
    [second] = _requests(instance)
    assert second.run_key != first.run_key
    # Nor while an earlier re-delivery run of the day (another ledger state's key) is starting.
    earlier = instance.add_run(
        dg.DagsterRun(
            job_name=second.job_name,
            status=dg.DagsterRunStatus.STARTING,
            tags={**first.tags, "dagster/partition": DAY, "dagster/run_key": "redeliver-earlier"},
        )
    )
    assert not _requests(instance)
    instance.report_run_canceled(earlier)
    assert [r.run_key for r in _requests(instance)] == [second.run_key]
    assert not _redeliver(second, instance).success  # flaky has it now; dead fails again
    assert not _requests(instance)  # dead has had its runs

    rows = _ledger(pg_dsn)
    assert {email: (row["status"], row["runs"]) for email, row in rows.items()} == {
        "admin@example.com": ("sent", 1),  # never claimed again
        "flaky@example.com": ("sent", 3),
        "dead@example.com": ("failed", 3),
    }
    assert rows["dead@example.com"]["attempts"] == 3 * FAST_RETRY.attempts
    for address, copies in (("admin@example.com", 1), ("flaky@example.com", 1), ("dead@example.com", 0)):
        assert len(messages_to(troubled_relay, address)) == copies


class _DropsAfterData(smtp.OutboxHandler):
    """The sink's handler, keeping the message and then losing the connection before it answers."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)
        server.transport.close()
        return answer


def test_a_connection_lost_after_data_is_an_unknown_outcome_never_sent_again_by_itself(
    reader, employees_dsn, service_dirs, daily
):
    """The server had the message when the connection dropped: a retry would have mailed it twice. A
    later run says so (not "skipped", which reads as "has it"), with what to look for and how to
    resend it, and does not count it as a failure of its own."""
    outbox = service_dirs("dropping-smtp")
    recipient = Recipient("maybe@example.com", "Maybe", "BoFu")
    with sink_in_this_process(outbox, _DropsAfterData) as settings:
        first = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False)
        [outcome] = first.outcomes
        assert (outcome.status, outcome.attempts) == ("unknown", 1)
        assert "may have been delivered" in outcome.error
        assert first.failed == [outcome]  # the run that lost it says so
        again = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False)
    assert len(messages_to(outbox, recipient.email)) == 1
    ledger = Ledger(employees_dsn)
    [row] = ledger.deliveries(daily)
    assert (row["status"], row["message_id"]) == ("unknown", outcome.message_id)  # what to look for
    assert row["data_started_at"] is not None
    assert ledger.failed(daily) == set() and ledger.redeliveries_due(0, {(recipient.email, "BoFu")}) == []

    [later] = again.outcomes
    assert (later.status, later.message_id) == ("awaiting_decision", outcome.message_id)
    assert again.failed == [] and again.awaiting_decision == [later] and not again.reports
    assert f"Message-ID {outcome.message_id}" in later.error
    resend = f"funnelhouse report --date {daily.start} --send --resend --to {recipient.email} --scope BoFu"
    assert resend in later.error
    assert f"funnelhouse.report_deliveries id={row['id']}" in later.error


def test_an_unknown_delivery_found_in_the_relays_log_is_recorded_as_sent(
    reader, employees_dsn, service_dirs, daily, monkeypatch
):
    """`funnelhouse report-delivered`: the operator found the message in the relay's log. The ledger
    then says sent (from when it was handed over), later runs count it as had, and nothing is mailed."""
    outbox = service_dirs("dropping-smtp-settled")
    recipient = Recipient("found@example.com", "Found", "BoFu")
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", employees_dsn)
    settle = ["report-delivered", "--date", str(daily.start), "--to", recipient.email]
    with sink_in_this_process(outbox, _DropsAfterData) as settings:
        [lost] = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False).outcomes
        assert lost.status == "unknown"
        settled = CliRunner().invoke(app, settle)
        assert settled.exit_code == 0, settled.output
        [later] = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False).outcomes
    [row] = Ledger(employees_dsn).deliveries(daily)
    assert (row["status"], row["message_id"]) == ("sent", lost.message_id)
    assert row["sent_at"] == row["data_started_at"]
    assert later.status == "skipped"  # had it: neither mailed again nor awaiting a decision
    assert len(messages_to(outbox, recipient.email)) == 1
    again = CliRunner().invoke(app, settle)  # nothing is left to decide
    assert again.exit_code == 1 and "awaits a decision" in again.output


def test_a_claim_left_while_handing_the_message_over_awaits_a_decision_once_stale(employees_dsn, daily):
    """A run that died after it began handing the message over left its claim 'sending': as unknown as
    a lost connection once it is stale; before that, another run is on it."""
    ledger = Ledger(employees_dsn)
    assert ledger.claim("crashed@example.com", daily, "all", "en")
    ledger.data_started(daily, "crashed@example.com", "all")
    assert ledger.undecided(daily) == {}  # its run may still be at it
    with psycopg.connect(employees_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE funnelhouse.report_deliveries SET updated_at = updated_at - interval '20 minutes'"
        )
    [undecided] = ledger.undecided(daily).values()
    assert (undecided.recipient, undecided.message_id, undecided.language) == (
        "crashed@example.com",
        None,
        "en",
    )


def test_a_claim_left_before_the_handover_is_not_already_sent_and_is_redelivered_once_stale(
    reader, employees_dsn, service_dirs, daily
):
    """A run claimed the delivery and died before DATA (killed, cancelled, the ledger unreachable for
    ``data_started``): nothing went out. A run meanwhile says another run holds it, and counts it as
    not delivered (not "already sent"); once the claim is stale the redelivery sensor's ledger queries
    take it up and their run sends it. A claim whose run had begun the handover stays undecided."""
    outbox = service_dirs("claimed-smtp")
    recipient = Recipient("claimed@example.com", "Claimed", "BoFu")
    configured = {(recipient.email, recipient.scope), ("handing@example.com", "all")}
    ledger = Ledger(employees_dsn)
    assert ledger.claim(recipient.email, daily, recipient.scope, recipient.language)
    assert ledger.claim("handing@example.com", daily, "all", "zh")
    ledger.data_started(daily, "handing@example.com", "all")
    with sink_in_this_process(outbox) as settings:
        during = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False)
        [outcome] = during.outcomes
        assert (outcome.status, during.failed) == ("in_progress", [outcome])
        assert "another run holds the claim" in outcome.error
        assert ledger.failed(daily) == set() and ledger.redeliveries_due(0, configured) == []  # may be at it
        with psycopg.connect(employees_dsn, autocommit=True) as conn:  # it died 20 minutes ago
            conn.execute(
                "UPDATE funnelhouse.report_deliveries SET updated_at = updated_at - interval '20 minutes'"
            )
        assert ledger.failed(daily) == {(recipient.email, recipient.scope)}  # not handing@: may have arrived
        assert [(due.period_kind, due.period_start) for due in ledger.redeliveries_due(0, configured)] == [
            (daily.kind, daily.start)
        ]
        redelivered = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False)
    assert [o.status for o in redelivered.outcomes] == ["sent"]
    assert len(messages_to(outbox, recipient.email)) == 1
    assert ledger.failed(daily) == set()


def test_a_retried_run_lists_an_unknown_delivery_as_awaiting_a_decision_and_succeeds(
    troubled_relay, pg_dsn, instance
):
    """The scheduled run lost the connection after handing one report over; the run of the same day
    after it (a retry, a backfill) sends it to nobody and succeeds, saying what someone has to decide."""
    _TempfailsOnDemand.dropping.add("flaky@example.com")
    scheduled = _scheduled_run(instance)
    assert not scheduled.success  # the run that lost it fails, saying so
    _TempfailsOnDemand.dropping.clear()

    again = _scheduled_run(instance)
    assert again.success
    metadata = again.asset_materializations_for_node("daily_kpi_reports")[0].metadata
    assert (metadata["awaiting_decision"].value, metadata["failed"].value) == (1, 0)
    assert metadata["skipped_already_sent"].value == 2
    flaky = next(row for row in metadata["recipients"].value if row["email"] == "flaky@example.com")
    assert flaky["status"] == "awaiting_decision"
    assert "--send --resend --to flaky@example.com" in flaky["error"]
    warned = [e.message for e in instance.all_logs(again.run_id) if "flaky@example.com" in (e.message or "")]
    assert any("outcome unknown" in message for message in warned)
    assert len(messages_to(troubled_relay, "flaky@example.com")) == 1
    assert _ledger(pg_dsn)["flaky@example.com"]["status"] == "unknown"


def test_a_stale_claim_is_taken_over_only_if_its_run_had_not_begun_handing_the_message_over(
    employees_dsn, daily
):
    ledger = Ledger(employees_dsn)
    for address in ("before@example.com", "during@example.com"):
        assert ledger.claim(address, daily, "all", "zh")
    ledger.data_started(daily, "during@example.com", "all")
    with psycopg.connect(employees_dsn, autocommit=True) as conn:  # both runs died 20 minutes ago
        conn.execute(
            "UPDATE funnelhouse.report_deliveries SET updated_at = updated_at - interval '20 minutes'"
        )
    assert ledger.claim("before@example.com", daily, "all", "zh") is True
    assert ledger.claim("during@example.com", daily, "all", "zh") is False  # it may have arrived
    assert ledger.claim("during@example.com", daily, "all", "zh", resend=True) is True


def test_a_failure_no_retry_cures_is_left_to_a_manual_run(troubled_relay, pg_dsn, instance, monkeypatch):
    """A non-ASCII local part through a relay without SMTPUTF8 fails the same way every time: the
    sensor's runs leave it alone (and the 4xx beside it is retried), a manual run of the day tries it."""
    Path(os.environ["FUNNELHOUSE_REPORT_RECIPIENTS"]).write_text(
        "replace: true\nrecipients:\n  - {email: admin@example.com, scope: all}\n"
        "  - {email: josé@example.com, scope: VIP}\n  - {email: flaky@example.com, scope: VIP}\n"
    )
    monkeypatch.setenv("FUNNELHOUSE_REPORT_REDELIVERY_MINUTES", "0")
    _TempfailsOnDemand.failing.add("flaky@example.com")
    scheduled = _scheduled_run(instance)
    assert not scheduled.success
    failure = next(event for event in scheduled.all_events if event.is_step_failure)
    assert "josé@example.com (failed, permanent:" in failure.step_failure_data.user_failure_data.description
    rows = _ledger(pg_dsn)
    assert (rows["josé@example.com"]["status"], rows["josé@example.com"]["permanent"]) == ("failed", True)
    assert (rows["flaky@example.com"]["status"], rows["flaky@example.com"]["permanent"]) == ("failed", False)

    _TempfailsOnDemand.failing.clear()
    [request] = _requests(instance)  # for flaky alone
    assert _redeliver(request, instance).success
    rows = _ledger(pg_dsn)
    assert (rows["flaky@example.com"]["status"], rows["josé@example.com"]["runs"]) == ("sent", 1)
    assert not _requests(instance)  # josé has had one run of four, and no more are asked for

    manual = _scheduled_run(instance)  # someone materialises the day again (after fixing the relay)
    assert not manual.success  # the relay still lacks SMTPUTF8
    rows = _ledger(pg_dsn)
    assert (rows["josé@example.com"]["runs"], rows["josé@example.com"]["permanent"]) == (2, True)
    assert len(messages_to(troubled_relay, "flaky@example.com")) == 1


def test_a_redelivery_run_that_fails_before_the_ledger_is_asked_for_again_within_the_bound(
    troubled_relay, pg_dsn, instance, monkeypatch
):
    """ClickHouse is down when the sensor's run reads the marts: the ledger never hears of it, yet the
    sensor asks for the day again (after the back-off), and counts that run against the bound."""
    monkeypatch.setattr(ledger_module, "MAX_RUNS", 3)
    clickhouse_up = os.environ["FUNNELHOUSE_CLICKHOUSE_URL"]
    clickhouse_down = f"http://127.0.0.1:{free_port(18123)}"  # nothing listens there
    _TempfailsOnDemand.failing.add("dead@example.com")
    assert not _scheduled_run(instance).success
    monkeypatch.setenv("FUNNELHOUSE_REPORT_REDELIVERY_MINUTES", "0")

    [first] = _requests(instance)
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", clickhouse_down)
    assert not _redeliver(first, instance).success
    assert _ledger(pg_dsn)["dead@example.com"]["runs"] == 1  # it never got that far

    # The ledger says due (30 minutes after the scheduled run, an hour ago); the failed run was the
    # delivery's second, so the next one waits 60 minutes after it.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE funnelhouse.report_deliveries SET updated_at = updated_at - interval '1 hour'")
    monkeypatch.setenv("FUNNELHOUSE_REPORT_REDELIVERY_MINUTES", "30")
    assert not _requests(instance)
    monkeypatch.setenv("FUNNELHOUSE_REPORT_REDELIVERY_MINUTES", "0")
    [second] = _requests(instance)
    assert second.run_key != first.run_key
    assert [r.run_key for r in _requests(instance)] == [second.run_key]  # until it runs: launched once
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", clickhouse_up)
    assert not _redeliver(second, instance).success  # the relay still refuses dead
    assert _ledger(pg_dsn)["dead@example.com"]["runs"] == 2

    [third] = _requests(instance)
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", clickhouse_down)
    assert not _redeliver(third, instance).success
    assert not _requests(instance)  # two runs reached the ledger, one did not: three in all
    assert len(messages_to(troubled_relay, "dead@example.com")) == 0


def test_the_permanent_failures_migration_can_run_again_and_marks_earlier_rows(pg_dsn):
    """Its rows from before: a bounce and a failure for want of SMTPUTF8 are permanent, a 4xx is not."""
    [migration] = MIGRATIONS_DIR.glob("0015_*.sql")
    rows = {
        "bounce@example.com": ("bounced", "550 no such user"),
        "josé@example.com": ("failed", "SmtpUtf8NotOffered: x: the SMTP server does not offer SMTPUTF8 (RFC"),
        "busy@example.com": ("failed", "451 try again later"),
    }
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for recipient, (status, error) in rows.items():
            conn.execute(
                """INSERT INTO funnelhouse.report_deliveries (recipient, period_kind, period_start, scope,
                       language, status, error) VALUES (%s, 'daily', %s, 'all', 'zh', %s, %s)""",
                (recipient, DAY, status, error),
            )
        conn.execute(migration.read_text())  # applied once by the fixture already: again, twice
        conn.execute(migration.read_text())
        permanent = dict(conn.execute("SELECT recipient, permanent FROM funnelhouse.report_deliveries"))
    assert permanent == {"bounce@example.com": True, "josé@example.com": True, "busy@example.com": False}


def _report_by_hand(*arguments: str):
    """`funnelhouse report --date DAY --send ...`, as someone types it."""
    return CliRunner().invoke(app, ["report", "--date", DAY, "--send", *arguments])


def test_a_failed_delivery_no_run_of_the_partition_sends_asks_for_no_run(
    troubled_relay, pg_dsn, instance, monkeypatch
):
    """A failed `--to` of an address no recipient has: the partition's runs send to the configured
    recipients, so a run asked for it would send nothing and show the day materialised. None is asked
    for; a redelivery run that finds nobody due says so, not that everyone had the report."""
    monkeypatch.setenv("FUNNELHOUSE_REPORT_REDELIVERY_MINUTES", "0")
    _TempfailsOnDemand.failing.add("outsider@example.com")
    by_hand = _report_by_hand("--to", "outsider@example.com", "--scope", "BoFu")
    assert by_hand.exit_code == 1, by_hand.output
    assert _ledger(pg_dsn)["outsider@example.com"]["status"] == "failed"
    assert not _requests(instance)

    nobody_due = _redeliver(
        dg.RunRequest(
            run_key="redeliver-by-hand",
            job_name="daily_kpi_reports_job",
            partition_key=DAY,
            run_config={"ops": {"daily_kpi_reports": {"config": {"redeliver": True, "refresh_retries": 0}}}},
        ),
        instance,
    )
    assert nobody_due.success
    metadata = nobody_due.asset_materializations_for_node("daily_kpi_reports")[0].metadata
    assert metadata["reports"].value == "nothing due for re-delivery"
    assert not messages_to(troubled_relay, "outsider@example.com")


def test_an_address_mailed_another_scopes_report_by_hand_gets_its_own_from_the_schedule(
    troubled_relay, pg_dsn, instance
):
    """The ledger knows a delivery by address and scope: everyone's report sent by hand to an address
    is not the ToFu report the recipients file later gives it, which the scheduled run sends."""
    address = "outsider@example.com"
    assert _report_by_hand("--to", address, "--scope", "all").exit_code == 0
    Path(os.environ["FUNNELHOUSE_REPORT_RECIPIENTS"]).write_text(
        f"replace: true\nrecipients:\n  - {{email: {address}, scope: ToFu}}\n"
    )
    scheduled = _scheduled_run(instance)
    assert scheduled.success
    metadata = scheduled.asset_materializations_for_node("daily_kpi_reports")[0].metadata
    assert (metadata["sent"].value, metadata["skipped_already_sent"].value) == (1, 0)
    slugs = sorted(m["X-Funnelhouse-Report"] for m in messages_to(troubled_relay, address))
    assert slugs == [f"daily-{DAY}-ToFu-zh", f"daily-{DAY}-all-zh"]
    rows = Ledger(pg_dsn).deliveries(Period.daily(date.fromisoformat(DAY)))
    assert sorted((row["scope"], row["status"]) for row in rows) == [("ToFu", "sent"), ("all", "sent")]


def test_the_ledger_by_scope_migration_keeps_the_rows_and_can_run_again(pg_dsn):
    """0027: a delivery is one of a scope's report; rows from before keep their scope."""
    [migration] = MIGRATIONS_DIR.glob("0027_*.sql")
    insert = """INSERT INTO funnelhouse.report_deliveries (recipient, period_kind, period_start, scope,
                    language, status) VALUES ('x@example.com', 'daily', %s, %s, 'zh', 'failed')"""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(insert, (DAY, "VIP"))
        conn.execute(migration.read_text())  # applied once by the fixture already: again, twice
        conn.execute(migration.read_text())
        conn.execute(insert, (DAY, "ToFu"))  # another scope's report: a delivery of its own
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, (DAY, "VIP"))
        scopes = conn.execute("SELECT scope FROM funnelhouse.report_deliveries ORDER BY scope").fetchall()
    assert scopes == [("ToFu",), ("VIP",)]


def test_unknown_deliveries_of_two_scopes_to_one_address_are_settled_one_by_one(
    reader, employees_dsn, service_dirs, daily, monkeypatch
):
    """Two scopes' reports to one address, both lost while handed over: two deliveries, and
    `funnelhouse report-delivered` asks which one the relay's log shows (--scope)."""
    outbox = service_dirs("dropping-smtp-two-scopes")
    address = "twice@example.com"
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", employees_dsn)
    settle = ["report-delivered", "--date", str(daily.start), "--to", address]
    both = [Recipient(address, "Twice", "BoFu"), Recipient(address, "Twice", "ToFu")]
    with sink_in_this_process(outbox, _DropsAfterData) as settings:
        lost = _run(reader, both, daily, settings, employees_dsn, with_pdf=False).outcomes
    assert [o.status for o in lost] == ["unknown", "unknown"]
    which = CliRunner().invoke(app, settle)
    assert which.exit_code == 2 and "BoFu, ToFu" in which.output and "--scope" in which.output, which.output
    settled = CliRunner().invoke(app, [*settle, "--scope", "ToFu"])
    assert settled.exit_code == 0, settled.output
    rows = {row["scope"]: row["status"] for row in Ledger(employees_dsn).deliveries(daily)}
    assert rows == {"BoFu": "unknown", "ToFu": "sent"}
