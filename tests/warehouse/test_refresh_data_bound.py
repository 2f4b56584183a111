"""The reports count a period complete only when the marts hold every change made before its end: the
earlier of the refresh mark (when dbt started) and the replication bound of the raw data dbt read
(taken when replication started, before dbt), not the mark alone (refresh_state.py)."""

from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import utc_now
from ingestion.reports.periods import Period
from orchestration.cli import app
from orchestration.defs.reports import runner
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import build, marts_schema

DAY = dt.date(2026, 11, 26)
DAY_END = dt.datetime(2026, 11, 27)
NEW_CONVERSATION = (
    "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
    " sentiment, quality_score, platform, sent_at)"
    " values (%s, 4, 3, 'text', 'outbound', 'positive', 9, 'wechat', now() - interval '1 hour') returning id"
)


@pytest.fixture
def reports_read_these_marts(clickhouse_env, monkeypatch):
    """The reports read the marts the builds of ``clickhouse_env`` write (not a database of their own)."""
    monkeypatch.delenv("FUNNELHOUSE_MARTS_DATABASE", raising=False)
    return clickhouse_client()


def _in_facts(client, conversation_id: int) -> bool:
    core = marts_schema().removesuffix("marts") + "core"
    return bool(
        client.query(
            f"select count() from `{core}`.fct_conversations where conversation_id = {conversation_id}"
        ).result_rows[0][0]
    )


def test_a_build_replicated_before_a_period_end_does_not_complete_it_though_dbt_started_after(
    built_as_of_the_real_day, pg_dsn, clickhouse_env, reports_read_these_marts, monkeypatch
):
    """A write transaction open in PostgreSQL holds replication's bound at its start: the build finds
    nothing new before it, moves its mark to after the period's end, and the period's last change (that
    transaction's) is not in the marts. A later build that copies it (and runs dbt) completes the period.
    PostgreSQL stamps rows in Asia/Shanghai: the bound is compared with the period's end in UTC."""
    client = reports_read_these_marts
    database = conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"alter database \"{database}\" set timezone to 'Asia/Shanghai'")
    with psycopg.connect(pg_dsn) as writer:  # the period's last change, still being written
        [(last_change,)] = writer.execute(NEW_CONVERSATION, ("MSG_LAST_CHANGE",)).fetchall()
        [(written_from,)] = writer.execute(
            "select (xact_start at time zone 'UTC')::timestamp from pg_stat_activity"
            " where pid = pg_backend_pid()"
        ).fetchall()
        time.sleep(0.05)
        period_end = utc_now()  # the period ends while the transaction is open
        monkeypatch.setattr(runner, "period_end", lambda period: period_end)
        time.sleep(0.05)

        # A quiet hour as far as replication can see: no dbt, the mark moves to when the build looked.
        early = build(freshness=False, log=lambda _line: None)
        assert early.ok and early.dbt_plan.skip, early.dbt_plan
        # The mark is after the period's end: the old reading of it said complete.
        assert refresh_state.last_refresh(client, clickhouse_env, marts_schema()) > period_end
        with pytest.raises(runner.Incomplete, match="from the changes replicated before"):
            runner.check_complete(client, Period.daily(period_end.date()))
        # What replication had copied: up to the transaction's start, in UTC (not 8 hours ahead; a
        # PostgreSQL user without pg_read_all_stats would have had its bound 5 minutes before now).
        refresh, of_what = refresh_state.reports_refresh(client, clickhouse_env, marts_schema())
        assert of_what == "the marts"
        assert written_from - dt.timedelta(minutes=6) < refresh.data_through <= written_from
        writer.commit()

    later = build(freshness=False, log=lambda _line: None)
    assert later.ok and not later.dbt_plan.skip and _in_facts(client, last_change)
    assert runner.check_complete(client, Period.daily(period_end.date())) > period_end
    # What the next build runs is still counted from the mark: nothing changed since this one.
    assert (
        refresh_state.tables_changed_since_refresh(client, clickhouse_env, marts_schema(), kpi_mart=True)
        == []
    )


def _marts_line(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))  # no embedded stack: only the marts line differs
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(line for line in result.output.splitlines() if line.startswith("marts:"))


def test_the_day_report_waits_for_the_data_bound_of_the_models_and_of_the_kpi_mart(
    reports_read_these_marts, clickhouse_env, tmp_path, monkeypatch
):
    """Replicated up to 23:59:50, dbt started at 00:00:05: the day is not complete, neither for the
    reports nor on ``funnelhouse status``; nor while the KPI mart is built from such models."""
    client, raw, marts = reports_read_these_marts, clickhouse_env, marts_schema()
    day = Period.daily(DAY)
    started, replicated = DAY_END + dt.timedelta(seconds=5), DAY_END - dt.timedelta(seconds=10)
    refresh_state.record_refresh(client, raw, marts, started, data_through=replicated)
    with pytest.raises(runner.Incomplete) as incomplete:
        runner.check_complete(client, day)
    assert str(incomplete.value).startswith(
        "the marts were last refreshed at 2026-11-27 00:00 UTC from the changes replicated before"
        " 2026-11-26 23:59:50 UTC, before daily-2026-11-26 ended"
    )
    assert _marts_line(tmp_path, monkeypatch) == (
        "marts: refreshed through 2026-11-26 23:59 UTC; KPI mart through 2026-11-26 23:59 UTC"
    )

    # The next hourly refresh (models only) copied the last ten seconds; the KPI mart still lags.
    next_hour = DAY_END + dt.timedelta(hours=1)
    refresh_state.record_refresh(client, raw, marts, next_hour, kpi_mart=False, data_through=next_hour)
    with pytest.raises(runner.Incomplete, match="^mart_kpi_employee_daily was last refreshed at"):
        runner.check_complete(client, day)
    # Its KPI run was built from those models: it holds what they hold.
    built_from = refresh_state.models_refresh(client, raw, marts)
    refresh_state.record_kpi_refresh(
        client, raw, marts, built_from.mark, data_through=built_from.data_through
    )
    assert runner.check_complete(client, day) == next_hour
    assert _marts_line(tmp_path, monkeypatch) == (
        "marts: refreshed through 2026-11-27 01:00 UTC; KPI mart through 2026-11-27 01:00 UTC"
    )


def test_marks_recorded_by_an_older_version_stand_for_what_the_marts_hold(
    reports_read_these_marts, clickhouse_env, tmp_path, monkeypatch
):
    """A refresh table of a version before the data bound: status reads it without changing it, the
    reports take its mark, and the next build's record adds the bound."""
    client, raw, marts = reports_read_these_marts, clickhouse_env, marts_schema()
    client.command(f"create database if not exists `{raw}`")
    client.command(
        f"""create table `{raw}`._model_refreshes (
            marts_schema String,
            refreshed_through DateTime64(6, 'UTC'),
            recorded_at DateTime64(6, 'UTC') default now64(6)
        ) engine = ReplacingMergeTree(recorded_at) order by marts_schema"""
    )
    client.insert(
        f"{raw}._model_refreshes",
        [[key, DAY_END + dt.timedelta(minutes=15)] for key in (marts, refresh_state.kpi_mark_key(marts))],
        column_names=["marts_schema", "refreshed_through"],
    )
    assert _marts_line(tmp_path, monkeypatch) == (
        "marts: refreshed through 2026-11-27 00:15 UTC; KPI mart through 2026-11-27 00:15 UTC"
    )
    columns = f"select name from system.columns where database = '{raw}' and table = '_model_refreshes'"
    assert len(client.query(columns).result_rows) == 3  # status only read

    assert runner.check_complete(client, Period.daily(DAY)) == DAY_END + dt.timedelta(minutes=15)
    refresh_state.record_refresh(
        client, raw, marts, DAY_END + dt.timedelta(hours=1), data_through=DAY_END - dt.timedelta(seconds=1)
    )
    assert refresh_state.models_refresh(client, raw, marts).data_through == DAY_END - dt.timedelta(seconds=1)
    with pytest.raises(runner.Incomplete):
        runner.check_complete(client, Period.daily(DAY))
