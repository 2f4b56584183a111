"""An incremental `funnelhouse build` runs only the models downstream of the raw tables that changed
(no tests, no views), catches up on changes an earlier failed or separate run left unbuilt, skips dbt
when nothing changed (moving the refresh mark all the same), and leaves the marts with the new rows in
them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from orchestration.defs.warehouse import build as warehouse_build
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import build, marts_schema, run_dbt, source_freshness
from orchestration.defs.warehouse.dbt_environment import dbt_env
from tests.fixtures.clock import POSTGRES_NOW, TEST_DAY, days_ago
from tests.warehouse.conftest import LATE_DAY_SQL, quality_conversations_on_the_late_day

# Models reading raw conversations, views excluded (stg_crm__conversations reads raw at query time).
DOWNSTREAM_OF_CONVERSATIONS = {
    "fct_conversations",
    "int_customers__conversation_summary",
    "int_dates__spine",
    "mart_customer_overview",
    "mart_employee_performance",
    "mart_manager_performance",
    "mart_kpi_employee_daily",
    "mart_script_performance",
}


def _mart_value(column: str, mart: str, where: str):
    relation = f"`{marts_schema()}`.`{mart}`"
    return clickhouse_client().query(f"select {column} from {relation} where {where}").result_rows[0][0]


def _models_run(target: Path) -> set[str]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {result["unique_id"].removeprefix("model.funnelhouse.") for result in results}


def _record_dbt_starts(monkeypatch) -> list[str]:
    """The dbt commands a build starts, in order, with how: "foreground run" or "background source"."""
    started: list[str] = []
    in_foreground, in_background = warehouse_build.run_dbt, warehouse_build.dbt_in_background

    def foreground(arguments, *args, **kwargs):
        started.append(f"foreground {arguments[0]}")
        return in_foreground(arguments, *args, **kwargs)

    def background(arguments, *args, **kwargs):
        started.append(f"background {arguments[0]}")
        return in_background(arguments, *args, **kwargs)

    monkeypatch.setattr(warehouse_build, "run_dbt", foreground)
    monkeypatch.setattr(warehouse_build, "dbt_in_background", background)
    return started


def test_incremental_build_runs_only_what_the_changed_table_feeds(
    built_warehouse, pg_dsn, clickhouse_env, monkeypatch
):
    target = built_warehouse
    before = _mart_value("conversations_last_7_days", "mart_customer_overview", "customer_id = 4")
    script_uses = _mart_value("conversation_uses", "mart_script_performance", "script_id = 2")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " sentiment, script_used_id, quality_score, platform, sent_at)"
            f" values ('MSG7', 4, 3, 'text', 'outbound', 'positive', 2, 9, 'wechat', {POSTGRES_NOW} - interval '1 hour')"
        )
    # Replication alone (the Dagster raw assets, or a build whose dbt step failed): still pending.
    assert [result.table for result in replicate_tables(pg_dsn) if result.changed] == ["conversations"]
    client = clickhouse_client()
    assert refresh_state.tables_changed_since_refresh(client, clickhouse_env, marts_schema()) == [
        "conversations"
    ]

    dbt_started, output = _record_dbt_starts(monkeypatch), []
    summary = build(skip_replication=True, log=output.append)
    assert summary.ok and summary.dbt_plan.arguments[0] == "run"  # the pending change, without tests
    # Source freshness runs beside the models (started first), its artifacts apart from the build's
    # run_results.json, its output shown whole after the build's.
    assert dbt_started == ["background source", "foreground run"]
    assert _models_run(target) == DOWNSTREAM_OF_CONVERSATIONS
    assert summary.freshness.counts()["pass"] == 18, summary.freshness.summary()
    freshness_lines = [index for index, line in enumerate(output) if "freshness of crm." in line]
    run_lines = [index for index, line in enumerate(output) if " of 8 START sql " in line]
    assert len(freshness_lines) == 36 and len(run_lines) == 8  # 18 sources started and done; 8 models
    assert freshness_lines == list(range(freshness_lines[0], freshness_lines[0] + 36))
    assert freshness_lines[0] > run_lines[-1]
    assert _mart_value("conversations_last_7_days", "mart_customer_overview", "customer_id = 4") == before + 1
    assert _mart_value("conversation_uses", "mart_script_performance", "script_id = 2") == script_uses + 1
    assert refresh_state.tables_changed_since_refresh(client, clickhouse_env, marts_schema()) == []
    marked = refresh_state.last_refresh(client, clickhouse_env, marts_schema())

    unchanged = build(skip_replication=True, log=lambda _line: None)
    assert unchanged.ok and unchanged.dbt_plan.skip and unchanged.dbt_seconds == 0
    # Up to date without running anything: the refresh mark moves on all the same (the reports wait
    # for a mark after their period ended, and a quiet hour must not hold them back).
    moved = refresh_state.last_refresh(client, clickhouse_env, marts_schema())
    assert moved > marked
    # a build runs every model, the KPI mart included: both marks move together
    assert refresh_state.last_kpi_refresh(client, clickhouse_env, marts_schema()) == moved
    assert len(unchanged.freshness.sources) == 18  # freshness is reported even when dbt is skipped
    # Freshness is replication lag: tables nobody changed for days (employees, tags) are fresh ...
    assert unchanged.freshness.counts()["pass"] == 18, unchanged.freshness.summary()

    # ... and one whose replication last completed 80 hours ago is stale (error after 12 h).
    stalled_at = utc_now() - dt.timedelta(hours=80)
    _record_replication_state(
        client, clickhouse_env, "tags", rows_cursor=stalled_at, deletions_cursor=stalled_at
    )
    report = source_freshness(log=lambda _line: None)
    statuses = {source.table: (source.status, source.age_hours) for source in report.sources}
    assert statuses["tags"][0] == "error" and 79.9 <= statuses["tags"][1] <= 80.5, statuses["tags"]
    assert report.counts()["pass"] == 17


def _replication_state(client, raw_database: str, table: str = "conversations") -> dict:
    query = client.query(
        f"select * from `{raw_database}`._replication_state final where table_name = {{table:String}}",
        parameters={"table": table},
    )
    return dict(zip(query.column_names, query.result_rows[0], strict=True))


def _record_replication_state(client, raw_database: str, table: str = "conversations", **changes) -> None:
    """A newer state row for ``table``, as replication writes one at the end of a run."""
    state = {**_replication_state(client, raw_database, table), "recorded_at": utc_now(), **changes}
    client.insert(f"{raw_database}._replication_state", [list(state.values())], column_names=list(state))


def _record_conversation_state(client, raw_database: str, replicated_through_ms: int) -> None:
    """What replication writes once a load of conversations is wholly visible (or, with the previous
    watermark, what the state still says while a load is committing)."""
    _record_replication_state(
        client, raw_database, changed_at=utc_now(), replicated_through_ms=replicated_through_ms
    )


def test_rows_committed_while_dbt_reads_are_not_lost(built_warehouse, pg_dsn, clickhouse_env):
    """A load of conversations commits part by part under one _replicated_at. A build that runs
    between the parts reads up to the committed watermark only, so the second part (stamped no
    later than the first) is still taken by the next build."""
    client, raw = clickhouse_client(), clickhouse_env
    committed_before = _replication_state(client, raw)["replicated_through_ms"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(message_a,), (message_b,)] = conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " sentiment, script_used_id, quality_score, platform, sent_at) values"
            f" ('MSG_A', 4, 3, 'text', 'outbound', 'positive', 2, 9, 'wechat', {POSTGRES_NOW} - interval '1 hour'),"
            f" ('MSG_B', 2, 2, 'text', 'inbound', 'neutral', 1, 8, 'wechat', {POSTGRES_NOW} - interval '1 hour')"
            " returning id"
        ).fetchall()
    replicate_tables(pg_dsn, ["conversations"])
    committed = _replication_state(client, raw)["replicated_through_ms"]
    # Roll back to "part one visible, load still committing": MSG_B's row not yet in raw, state not written.
    client.command(f"create table `{raw}`.part_two as `{raw}`.conversations")
    client.command(f"insert into `{raw}`.part_two select * from `{raw}`.conversations where id = {message_b}")
    client.command(f"delete from `{raw}`.conversations where id = {message_b}")
    _record_conversation_state(client, raw, committed_before)
    assert build(skip_replication=True, freshness=False, log=lambda _line: None).ok

    client.command(f"insert into `{raw}`.conversations select * from `{raw}`.part_two")  # part two commits
    _record_conversation_state(client, raw, committed)
    assert build(skip_replication=True, freshness=False, log=lambda _line: None).ok
    facts = client.query(
        f"select conversation_id, count() from `{marts_schema().removesuffix('marts')}core`.fct_conversations"
        f" where conversation_id in ({message_a}, {message_b}) group by all order by all"
    ).result_rows
    assert facts == [(message_a, 1), (message_b, 1)]
    core = f"`{marts_schema().removesuffix('marts')}core`"
    # and the customer-grain summary was recomputed for MSG_B's customer
    assert client.query(
        f"select conversation_count = (select count() from {core}.fct_conversations where customer_id = 2)"
        f" from {core}.int_customers__conversation_summary where customer_id = 2"
    ).result_rows == [(1,)]


def test_changes_the_kpi_mart_has_not_taken_up_reach_it_with_the_next_build(
    built_warehouse, pg_dsn, clickhouse_env
):
    """Dagster's hourly job builds the facts and moves the models' mark, leaving the KPI mart to its own
    job. A `funnelhouse build` run before that job must still carry those changes into the KPI mart
    (here a late conversation of an older month, which only the mart's changed months bring in), not
    find "nothing changed" since the models' mark and declare the KPI mart current."""
    client, core = clickhouse_client(), marts_schema().removesuffix("marts") + "core"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " sentiment, quality_score, platform, sent_at)"
            f" values ('MSG_LATE_KPI', 4, 3, 'text', 'outbound', 'positive', 9, 'wechat', {LATE_DAY_SQL})"
        )
    # What the hourly job does: replicate, build the models but the KPI mart, move their mark only.
    replicate_tables(pg_dsn)
    started_at = utc_now()
    env = {**dbt_env(), **refresh_state.watermark_environment(client, clickhouse_env)}
    selection = ["--select", "source:crm.conversations+", "--exclude", "mart_kpi_employee_daily"]
    assert run_dbt(["run", *selection], log=lambda _line: None, env=env) == 0
    refresh_state.record_refresh(client, clickhouse_env, marts_schema(), started_at, kpi_mart=False)
    in_mart, in_facts = quality_conversations_on_the_late_day(client, core)
    assert in_mart == in_facts - 1
    assert refresh_state.reports_refresh(client, clickhouse_env, marts_schema())[1] == refresh_state.KPI_MART

    summary = build(skip_replication=True, freshness=False, log=lambda _line: None)
    assert summary.ok and not summary.dbt_plan.skip, summary.dbt_plan
    assert quality_conversations_on_the_late_day(client, core) == (in_facts, in_facts)
    mark = refresh_state.last_refresh(client, clickhouse_env, marts_schema())
    assert refresh_state.last_kpi_refresh(client, clickhouse_env, marts_schema()) == mark


def test_a_confirmed_deposit_without_a_usd_rate_stops_the_hourly_build_naming_its_currency(
    built_warehouse, pg_dsn, clickhouse_env
):
    """Hourly builds run no tests: the fact's post-hook keeps a deposit in BTC (no rate in the seed
    fx_rates_to_usd) from being left out of every money sum. The build fails naming the currency, the
    marts keep their last build and the refresh mark stays; corrected in the CRM, the next build takes
    the deposit up."""
    client = clickhouse_client()
    mark = refresh_state.last_refresh(client, clickhouse_env, marts_schema())
    deposited = _mart_value("confirmed_deposit_amount", "mart_customer_overview", "customer_id = 1")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into deposits (deposit_code, customer_id, employee_id, amount, currency, deposit_type,"
            " status, deposited_at)"
            f" values ('DEP_20250102_9', 1, 2, 0.5, 'BTC', '复入金', 'confirmed', {POSTGRES_NOW} - interval '1 hour')"
        )
    output: list[str] = []
    assert not build(freshness=False, log=output.append).ok
    assert (
        "confirmed deposits in a currency without a rate in the seed fx_rates_to_usd on their day: BTC"
        in "\n".join(output)
    )
    assert refresh_state.last_refresh(client, clickhouse_env, marts_schema()) == mark
    assert _mart_value("confirmed_deposit_amount", "mart_customer_overview", "customer_id = 1") == deposited

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "update deposits set amount = 45000, currency = 'USDT' where deposit_code = 'DEP_20250102_9'"
        )
    output.clear()
    assert build(freshness=False, log=output.append).ok, "\n".join(output[-40:])
    assert (
        _mart_value("confirmed_deposit_amount", "mart_customer_overview", "customer_id = 1")
        == deposited + 45000
    )


def test_a_contact_date_before_1970_keeps_the_date_spine_and_its_funnel_entry(built_warehouse, pg_dsn):
    """Raw keeps a funnel_tofu contact_date such as 1926 (Date32). The date spine starts at the first
    activity a Date holds (toDate() of 1926 would wrap around to 2105, after the build date: an empty
    spine, and an empty or stale KPI mart), and mart_funnel_daily keeps the customer's Awareness entry
    on that day."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update funnel_tofu set contact_date = '1926-11-05' where source_key = 'T1'")
    summary = build(freshness=False, with_tests=True, log=lambda _line: None)  # the spine's tests too
    assert summary.ok
    client, core = clickhouse_client(), marts_schema().removesuffix("marts") + "core"
    [(first_day, last_day, days)] = client.query(
        f"select min(date_day), max(date_day), count() from `{core}`.int_dates__spine"
    ).result_rows
    assert first_day >= dt.date(1970, 1, 1) and last_day == TEST_DAY
    assert days == (last_day - first_day).days + 1 >= 100  # the fixture's other activity, 100 days ago on
    kpi_days = _mart_value("uniqExact(kpi_date)", "mart_kpi_employee_daily", "1")
    assert kpi_days == days
    assert _mart_value("sum(stage_entries)", "mart_funnel_daily", "entry_date = '1926-11-05'") == 1


def _kpi_parts() -> dict[str, list[str]]:
    """The KPI mart's active parts by month partition: a rebuilt month's parts are new ones."""
    rows = (
        clickhouse_client()
        .query(
            "select partition, groupArray(name) from system.parts where active and database = {schema:String}"
            " and table = 'mart_kpi_employee_daily' group by partition",
            parameters={"schema": marts_schema()},
        )
        .result_rows
    )
    return {partition: sorted(names) for partition, names in rows}


def test_a_login_rebuilds_no_old_kpi_month_and_a_renamed_employee_every_month(built_warehouse, pg_dsn):
    """employees.last_login_at moves on every login, and the KPI mart shows no such column: a build
    after a login rebuilds the lookback's months only. A renamed employee is in every month."""
    lookback_start = days_ago(35)
    before = _kpi_parts()
    old_months = {month for month in before if int(month) < lookback_start.year * 100 + lookback_start.month}
    assert len(old_months) >= 2
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update employees set last_login_at = now() where id = 2")
    assert build(freshness=False, log=lambda _line: None).ok
    after_login = _kpi_parts()
    # the first month is always rebuilt (the spine may have grown backwards into it)
    kept = sorted(old_months - {min(before)})
    assert kept and {month: after_login[month] for month in kept} == {month: before[month] for month in kept}

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update employees set name = 'Renamed' where id = 2")
    assert build(freshness=False, log=lambda _line: None).ok
    after_rename = _kpi_parts()
    assert all(after_rename[month] != after_login[month] for month in old_months)
    assert _mart_value("uniqExact(kpi_date)", "mart_kpi_employee_daily", "employee_name = 'Renamed'") == (
        _mart_value("uniqExact(kpi_date)", "mart_kpi_employee_daily", "1")
    )
