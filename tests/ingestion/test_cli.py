"""``funnelhouse ingest``: summary, and the exit status (1 only when a file failed)."""

from __future__ import annotations

from typer.testing import CliRunner

from orchestration.cli import app
from tests.ingestion import landing_rows as rows


def test_ingest_command_reports_rejects_and_fails_only_on_failed_files(landing, pg_dsn, sql):
    rows.write(landing, "employees", "b1", [rows.employee(1), rows.employee(2, role="intern")])
    result = CliRunner().invoke(app, ["ingest", str(landing)])
    assert result.exit_code == 0, result.output
    assert "employees__b1.csv" in result.output and "1 rejected" in result.output
    assert "role: not in the allowed set" in result.output

    (landing / "customers__b1.csv").write_bytes(b"\xff\xfe not a csv\n")
    result = CliRunner().invoke(app, ["ingest", str(landing / "customers__b1.csv")])
    assert result.exit_code == 1
    assert "customers__b1.csv" in result.output and "failed" in result.output
    assert sql("SELECT status FROM funnelhouse.ingest_files WHERE table_name = 'customers'") == [("failed",)]
