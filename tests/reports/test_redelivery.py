"""Failed report deliveries are run again by the redelivery sensor, a bounded number of times, without
anyone who has the report getting it twice; a delivery whose outcome is unknown is never sent again
by itself. Real aiosmtpd servers, the real ledger in PostgreSQL, the report assets through Dagster."""

from __future__ import annotations

from datetime import date

import dagster as dg
import psycopg
import pytest

from devstack import smtp
from ingestion.reports import delivery
from ingestion.reports import ledger as ledger_module
from ingestion.reports.ledger import Ledger
from ingestion.reports.periods import Period
from ingestion.reports.recipients import Recipient
from orchestration.defs.reports.assets import daily_kpi_reports
from tests.reports.conftest import messages_to, sink_in_this_process
from tests.reports.test_delivery import FAST_RETRY, _run

DAY = "2026-11-23"  # a day no other test mails


class _TempfailsOnDemand(smtp.OutboxHandler):
    """The sink's handler, answering 451 at RCPT for whoever is in ``failing`` (a relay having trouble)."""

    failing: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.failing:
            return "451 4.3.0 try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def troubled_relay(report_environment, service_dirs, monkeypatch):
    """The relay the reports go through (FUNNELHOUSE_SMTP_URL), and the report's recipients."""
    outbox = service_dirs("troubled-smtp")
    config = report_environment / "recipients.yaml"
    config.write_text(
        "replace: true\nrecipients:\n  - {email: admin@example.com, scope: all}\n"
        "  - {email: flaky@example.com, scope: VIP}\n  - {email: dead@example.com, scope: VIP}\n"
    )
    monkeypatch.setenv("FUNNELHOUSE_REPORT_RECIPIENTS", str(config))
    monkeypatch.setattr(delivery, "DEFAULT_RETRY", FAST_RETRY)  # seconds of back-off, not minutes
    monkeypatch.setattr(_TempfailsOnDemand, "failing", set())
    with sink_in_this_process(outbox, _TempfailsOnDemand) as settings:
        monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", f"smtp://{settings.host}:{settings.port}")
        monkeypatch.setenv("FUNNELHOUSE_SMTP_STARTTLS", "0")
        yield outbox


def _evaluate_sensor() -> dg.SensorResult:
    from orchestration.definitions import defs

    sensor = defs.resolve_sensor_def("report_redelivery_sensor")
    with dg.build_sensor_context(repository_def=defs.get_repository_def()) as context:
        return sensor.evaluate_tick(context)


def _redeliver(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The run the sensor asked for (its job's asset, partition and config)."""
    assert (request.job_name, request.partition_key) == ("daily_kpi_reports_job", DAY)
    return dg.materialize(
        [daily_kpi_reports],
        partition_key=request.partition_key,
        run_config=request.run_config,
        raise_on_error=False,
    )


def test_failed_deliveries_are_run_again_until_sent_or_out_of_runs(troubled_relay, pg_dsn, monkeypatch):
    """The relay refuses two managers for a while: the sensor runs the day again for them alone, until
    one has it and the other has had its runs (three here, a run less than MAX_RUNS: a test's seconds);
    the one who had it from the start is left alone."""
    monkeypatch.setattr(ledger_module, "MAX_RUNS", 3)
    _TempfailsOnDemand.failing.update({"flaky@example.com", "dead@example.com"})
    scheduled = dg.materialize([daily_kpi_reports], partition_key=DAY, raise_on_error=False)
    assert not scheduled.success
    failure = next(event for event in scheduled.all_events if event.is_step_failure)
    assert "report_redelivery_sensor" in failure.step_failure_data.user_failure_data.description

    assert not _evaluate_sensor().run_requests  # not due yet: 30 minutes by default
    monkeypatch.setenv("FUNNELHOUSE_REPORT_REDELIVERY_MINUTES", "0")
    [first] = _evaluate_sensor().run_requests
    assert [r.run_key for r in _evaluate_sensor().run_requests] == [first.run_key]  # asked for once
    assert not _redeliver(first).success  # the relay still refuses both

    _TempfailsOnDemand.failing.discard("flaky@example.com")
    [second] = _evaluate_sensor().run_requests
    assert second.run_key != first.run_key
    assert not _redeliver(second).success  # flaky has it now; dead fails again
    assert not _evaluate_sensor().run_requests  # dead has had its runs

    rows = {row["recipient"]: row for row in Ledger(pg_dsn).deliveries(Period.daily(date.fromisoformat(DAY)))}
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
    """The server had the message when the connection dropped: a retry would have mailed it twice."""
    outbox = service_dirs("dropping-smtp")
    recipient = Recipient("maybe@example.com", "Maybe", "BoFu")
    with sink_in_this_process(outbox, _DropsAfterData) as settings:
        [outcome] = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False).outcomes
        assert (outcome.status, outcome.attempts) == ("unknown", 1)
        assert "may have been delivered" in outcome.error
        [again] = _run(reader, [recipient], daily, settings, employees_dsn, with_pdf=False).outcomes
        assert again.status == "skipped"
    assert len(messages_to(outbox, recipient.email)) == 1
    ledger = Ledger(employees_dsn)
    [row] = ledger.deliveries(daily)
    assert (row["status"], row["message_id"]) == ("unknown", outcome.message_id)  # what to look for
    assert row["data_started_at"] is not None
    assert ledger.failed(daily) == set() and ledger.redeliveries_due(0) == []


def test_a_stale_claim_is_taken_over_only_if_its_run_had_not_begun_handing_the_message_over(
    employees_dsn, daily
):
    ledger = Ledger(employees_dsn)
    for address in ("before@example.com", "during@example.com"):
        assert ledger.claim(address, daily, "all", "zh")
    ledger.data_started(daily, "during@example.com")
    with psycopg.connect(employees_dsn, autocommit=True) as conn:  # both runs died 20 minutes ago
        conn.execute(
            "UPDATE funnelhouse.report_deliveries SET updated_at = updated_at - interval '20 minutes'"
        )
    assert ledger.claim("before@example.com", daily, "all", "zh") is True
    assert ledger.claim("during@example.com", daily, "all", "zh") is False  # it may have arrived
    assert ledger.claim("during@example.com", daily, "all", "zh", resend=True) is True
