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
from orchestration.defs.warehouse.build_date import BUILD_DATE_ENV


def test_a_selection_matching_nothing_fails_the_build(pg_dsn, clickhouse_env, dbt_dirs):
    result = CliRunner().invoke(
        app, ["build", "--select", "no_such_model", "--skip-replication", "--no-freshness"]
    )
    assert result.exit_code != 0, result.output
    assert "The selection criterion 'no_such_model' does not match any enabled nodes" in result.output
    assert "Nothing to do" not in result.output  # dbt stopped there, it did not go on "successfully"


def test_a_build_after_the_build_date_moved_rebuilds_the_date_relative_models(built_warehouse, monkeypatch):
    """Nothing changed since the last build, but the build date moved: the date-relative models
    (build_date.py) are built as of the new date, the others are left alone; on the same date nothing runs."""
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


def test_a_selected_build_after_the_build_date_moved_rebuilds_what_it_reads_as_of_that_date(
    built_warehouse, monkeypatch
):
    """``build --select mart_customer_overview`` days after the models' last build: the date-relative
    models the mart reads (its 7/30-day windows) are rebuilt as of the new date with it, so that its
    windows end on its ``as_of_date``; models it does not read are left alone. (Four days on: the
    fixture's messages are 1, 2, 3, 20 and 40 days old, and the one of 3 days ago leaves the 7-day
    window only then; on the next day alone its windows would count the same.)"""
    client = clickhouse_client()
    mark = refresh_state.last_refresh(client, schema.raw_database(), marts_schema())
    later = mark.date() + dt.timedelta(days=4)
    monkeypatch.setenv(BUILD_DATE_ENV, later.isoformat())
    result = CliRunner().invoke(
        app, ["build", "--select", "mart_customer_overview", "--skip-replication", "--no-freshness"]
    )
    assert result.exit_code == 0, result.output
    assert f"build date moved from {mark.date()} to {later}: also the models they read" in result.output
    assert "int_customers__conversation_summary" in result.output
    assert "mart_material_engagement" not in result.output

    marts, core = f"`{marts_schema()}`", f"`{marts_schema().removesuffix('marts')}core`"
    [(as_of_date,)] = client.query(
        f"select distinct as_of_date from {marts}.mart_customer_overview"
    ).result_rows
    assert as_of_date == later
    # Every customer's last 7 days, as the mart gives them and as the conversations give them.
    windows = client.query(
        f"""
        select overview.customer_id, overview.conversations_last_7_days, count(conversations.customer_id)
        from {marts}.mart_customer_overview as overview
        left join {core}.fct_conversations as conversations
            on conversations.customer_id = overview.customer_id
            and conversations.sent_date between overview.as_of_date - 6 and overview.as_of_date
        group by overview.customer_id, overview.conversations_last_7_days
        """,
        settings={"join_use_nulls": 1},
    ).result_rows
    assert any(expected for _, _, expected in windows)  # the fixture has conversations in the window
    assert [row for row in windows if row[1] != row[2]] == []
