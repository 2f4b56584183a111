"""``funnelhouse build``: a ``--select`` that matches no model is an error, not an empty success; a
build on a new build date rebuilds the date-relative models."""

from __future__ import annotations

import datetime as dt

from typer.testing import CliRunner

from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client
from orchestration.cli import app
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import marts_schema
from orchestration.defs.warehouse.dbt_plan import BUILD_DATE_ENV


def test_a_selection_matching_nothing_fails_the_build(pg_dsn, clickhouse_env, dbt_dirs):
    result = CliRunner().invoke(
        app, ["build", "--select", "no_such_model", "--skip-replication", "--no-freshness"]
    )
    assert result.exit_code != 0, result.output
    assert "The selection criterion 'no_such_model' does not match any enabled nodes" in result.output
    assert "Nothing to do" not in result.output  # dbt stopped there, it did not go on "successfully"


def test_a_build_after_the_build_date_moved_rebuilds_the_date_relative_models(built_warehouse, monkeypatch):
    """Nothing changed since the last build, but the build date moved: the date-relative models
    (dbt_plan.py) are built as of the new date, the others are left alone; on the same date nothing runs."""
    client = clickhouse_client()
    mark = refresh_state.last_refresh(client, schema.raw_database(), marts_schema())
    overview = f"`{marts_schema()}`.mart_customer_overview"

    def days_since_last_contact() -> int:
        [(days,)] = client.query(f"select max(days_since_last_contact) from {overview}").result_rows
        return days

    def build(as_of: dt.date) -> str:
        monkeypatch.setenv(BUILD_DATE_ENV, as_of.isoformat())
        result = CliRunner().invoke(app, ["build", "--skip-replication", "--no-freshness"])
        assert result.exit_code == 0, result.output
        return result.output

    before = days_since_last_contact()
    assert before is not None  # the fixture has contacted customers
    assert "dbt: nothing to run" in build(mark.date())  # the date of the last build

    next_day = mark.date() + dt.timedelta(days=1)
    output = build(next_day)
    assert f"build date moved from {mark.date()} to {next_day}: date-relative models" in output
    assert days_since_last_contact() == before + 1
    assert "mart_customer_overview" in output and "int_customers__conversation_summary" in output
    assert "mart_material_engagement" not in output  # reads no build date
