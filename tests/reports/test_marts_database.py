"""The reports read the marts the builds write."""

from __future__ import annotations

from orchestration.defs.reports.runner import marts_database
from orchestration.defs.warehouse.build import marts_schema


def test_the_reports_read_the_marts_of_the_builds_schema_prefix_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("FUNNELHOUSE_MARTS_DATABASE", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_SCHEMA_PREFIX", raising=False)
    assert marts_database() == marts_schema() == "marts"
    monkeypatch.setenv("FUNNELHOUSE_SCHEMA_PREFIX", "staging_")
    assert marts_database() == marts_schema() == "staging_marts"
    monkeypatch.setenv("FUNNELHOUSE_MARTS_DATABASE", "analytics")
    assert marts_database() == "analytics"
