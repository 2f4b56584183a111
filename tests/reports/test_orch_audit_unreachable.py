"""A scheduled report run that finds a service it reads away (ClickHouse restarting at the report hour)
tries again later instead of failing for good: the schedule asks for each period on one tick only,
and the redelivery sensor only takes up deliveries the ledger has as failed, so a run that failed
before reaching the ledger would leave the managers without that period's report."""

from __future__ import annotations

import dagster as dg

from devstack.state import free_port
from orchestration.defs.reports.assets import daily_kpi_reports
from tests.reports.conftest import outbox_messages


def test_marts_not_answering_are_tried_again_and_nobody_is_mailed(report_environment, smtp_sink, monkeypatch):
    # nothing listens there: the marts' server is away
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", f"http://127.0.0.1:{free_port(18123, '127.0.0.1')}")
    mailed_before = len(outbox_messages(smtp_sink["outbox"]))
    result = dg.materialize(
        [daily_kpi_reports],
        partition_key="2026-11-26",
        run_config={
            "ops": {"daily_kpi_reports": {"config": {"refresh_retries": 2, "refresh_retry_seconds": 0}}}
        },
        raise_on_error=False,
    )
    assert not result.success
    retries = [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "OperationalError" in str(failure.step_failure_data.error)
    assert len(outbox_messages(smtp_sink["outbox"])) == mailed_before
