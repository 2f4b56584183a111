"""A scheduled report run that finds a service it reads away (ClickHouse restarting at the report hour)
tries again later instead of failing for good: the schedule asks for each period on one tick only,
and the redelivery sensor only takes up deliveries the ledger has as failed, so a run that failed
before reaching the ledger would leave the managers without that period's report."""

from __future__ import annotations

from devstack.state import free_port
from tests.reports.conftest import daily_run_with_retries, outbox_messages


def test_marts_not_answering_are_tried_again_and_nobody_is_mailed(report_environment, smtp_sink, monkeypatch):
    # nothing listens there: the marts' server is away
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", f"http://127.0.0.1:{free_port(18123, '127.0.0.1')}")
    mailed_before = len(outbox_messages(smtp_sink["outbox"]))
    retries, said = daily_run_with_retries("2026-11-26", retries=2)
    assert retries == 2
    assert "OperationalError" in said
    assert len(outbox_messages(smtp_sink["outbox"])) == mailed_before
