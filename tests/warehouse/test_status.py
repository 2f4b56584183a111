"""`funnelhouse status` says how far the marts are built: what a scheduled report waits for."""

from __future__ import annotations

from datetime import datetime

from typer.testing import CliRunner

from ingestion.replication.connections import clickhouse_client
from orchestration.cli import app
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import marts_schema


def _marts_line(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))  # no embedded stack: only the marts line differs
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(line for line in result.output.splitlines() if line.startswith("marts:"))


def test_status_shows_both_refresh_marks_and_creates_nothing(clickhouse_env, tmp_path, monkeypatch):
    client = clickhouse_client()
    assert _marts_line(tmp_path, monkeypatch) == "marts: no build recorded yet (`funnelhouse build`)"
    databases = client.query(
        "select name from system.databases where name = {db:String}", parameters={"db": clickhouse_env}
    )
    assert databases.result_rows == []  # asking created no raw database

    refresh_state.record_refresh(
        client, clickhouse_env, marts_schema(), datetime(2026, 11, 27, 0, 15), kpi_mart=False
    )
    assert _marts_line(tmp_path, monkeypatch) == (
        "marts: refreshed through 2026-11-27 00:15 UTC; KPI mart: no build recorded yet"
    )
    refresh_state.record_kpi_refresh(client, clickhouse_env, marts_schema(), datetime(2026, 11, 26, 23, 15))
    assert _marts_line(tmp_path, monkeypatch) == (
        "marts: refreshed through 2026-11-27 00:15 UTC; KPI mart through 2026-11-26 23:15 UTC"
    )
