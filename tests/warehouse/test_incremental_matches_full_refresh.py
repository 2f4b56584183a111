"""An incremental build and a full refresh of the same data leave identical facts and marts.

The incremental models write only what changed (facts: delete + append of the ids replicated since
their watermark; the KPI mart: the months a changed row was or is in; customer-grain models are
tables rebuilt whole), so this compares every row of them after inserts, updates and deletions in
PostgreSQL, including changes to months outside the KPI lookback and rows moved to another customer,
with what `dbt run --full-refresh` computes from raw."""

from __future__ import annotations

import datetime as dt
import json

import psycopg

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.defs.warehouse.build import MARTS, build, marts_schema, run_dbt
from orchestration.defs.warehouse.dbt_environment import kpi_window_environment
from tests.fixtures.clock import CLICKHOUSE_TODAY, POSTGRES_NOW, POSTGRES_TODAY, days_ago

FACTS = ("fct_conversations", "fct_deposits", "fct_withdrawals")
CUSTOMER_GRAIN = (
    "fct_stage_transitions",
    "dim_customers",
    "int_customers__latest_funnel",
    "int_customers__money_summary",
    "int_customers__conversation_summary",
)

CHANGES = (
    # new conversations: today, and in a month older than the KPI lookback (partition made here)
    f"select ensure_conversation_partitions(({POSTGRES_TODAY} - 100)::date, greatest({POSTGRES_TODAY}, current_date))",
    "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction, sentiment,"
    " script_used_id, quality_score, platform, sent_at) values"
    f" ('MSG7', 4, 3, 'text', 'outbound', 'positive', 2, 9, 'wechat', {POSTGRES_NOW} - interval '1 hour'),"
    f" ('MSG8', 2, 2, 'text', 'inbound', 'neutral', 1, 8, 'wechat', {POSTGRES_NOW} - interval '95 days')",
    "update conversations set quality_score = 10, employee_id = 3 where source_message_id = 'MSG3'",
    "delete from conversations where source_message_id = 'MSG5'",
    # deposits: an old one changes amount, one is deleted, a new one arrives
    "update deposits set amount = 4000 where deposit_code = 'DEP_20250101_3'",
    "delete from deposits where deposit_code = 'DEP_20250101_2'",
    "insert into deposits (deposit_code, customer_id, employee_id, amount, deposit_type, status, deposited_at)"
    f" values ('DEP_20250101_9', 2, 2, 700, '首金', 'confirmed', {POSTGRES_NOW} - interval '2 hours')",
    "update customers set tier = 'S' where id = 2",
    "update funnel_tofu set stayed_in_group = not stayed_in_group where customer_id = 3",
    # customer grain: a deposit moves to another customer (both change), a withdrawal disappears (its
    # customer has none left), a tag and a journey step arrive
    "update deposits set customer_id = 2 where deposit_code = 'DEP_20250101_1'",
    "delete from withdrawals where withdrawal_code = 'WTH_20250101_1'",
    "insert into customer_tags (customer_id, tag_id, tagged_by) values (2, 1, 2)",
    "insert into customer_journey (source_key, customer_id, from_stage, to_stage, duration_days, trigger_event,"
    f" created_at) values ('J99', 2, 'Attention', 'Trust', 1, 'manual', {POSTGRES_NOW} - interval '30 minutes')",
)


def _contents(relation: str) -> list[tuple]:
    # replicated_at is when a row was loaded, not data: a full refresh reloads raw and changes it.
    columns = "* except (replicated_at)" if relation in FACTS else "*"
    schema = marts_schema() if relation.startswith("mart_") else marts_schema().removesuffix("marts") + "core"
    return (
        clickhouse_client().query(f"select {columns} from `{schema}`.`{relation}` order by all").result_rows
    )


def test_incremental_build_equals_full_refresh(built_warehouse, pg_dsn, clickhouse_env):
    # The facts know a message by its id: its platform message id stays in PostgreSQL.
    message_id = "select id from conversations where source_message_id = %s"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(deleted_message,)] = conn.execute(message_id, ["MSG5"])
        for statement in CHANGES:
            conn.execute(statement)
        [(new_message,)] = conn.execute(message_id, ["MSG8"])
    # With --test (`dbt build` of the same selection) the data tests of what it rebuilt check it too.
    incremental = build(freshness=False, with_tests=True, log=lambda _line: None)
    assert incremental.ok and incremental.dbt_plan.arguments[0] == "build"
    results = json.loads((built_warehouse / "run_results.json").read_text())["results"]
    tests = [result for result in results if result["unique_id"].startswith("test.")]
    # Every test passes but the reconciliation with the CRM's reported KPI rows: the fixture's row of
    # employee 2 three days ago reports the 500 deposited that day, and CHANGES deleted that deposit.
    warned = [result["unique_id"] for result in tests if result["status"] == "warn"]
    assert len(tests) > 50 and all(result["status"] in ("pass", "warn") for result in tests)
    assert len(warned) == 1 and ".reported_employee_kpis_match_the_computed_kpis" in warned[0], warned
    assert any(".relationships_" in result["unique_id"] for result in tests)
    # every watermarked model now stands at the committed watermark of each table it reads
    client = clickhouse_client()
    committed = dict(
        client.query(
            f"select table_name, replicated_through_ms from `{clickhouse_env}`._replication_state final"
        ).result_rows
    )
    stored = client.query(
        f"select model, table_name, watermark_ms from `{clickhouse_env}`._model_watermarks final"
        " where model like {prefix:String}",
        parameters={"prefix": marts_schema().removesuffix("marts") + "%"},
    ).result_rows
    assert {model.split(".")[1] for model, _, _ in stored} >= set(FACTS)
    assert all(watermark == committed[table] for _, table, watermark in stored)
    after_incremental = {relation: _contents(relation) for relation in (*FACTS, *CUSTOMER_GRAIN, *MARTS)}

    output: list[str] = []
    assert run_dbt(["run", "--full-refresh"], log=output.append) == 0, "\n".join(output[-40:])
    for relation, rows in after_incremental.items():
        assert rows == _contents(relation), relation

    # A Dagster partition backfill (a date range in dbt's environment) rewrites its months with the
    # same rows.
    dates = {"kpi_start_date": str(days_ago(100)), "kpi_end_date": str(days_ago(90))}
    with kpi_window_environment(dates):
        assert run_dbt(["run", "--select", "mart_kpi_employee_daily"], log=output.append) == 0
    assert _contents("mart_kpi_employee_daily") == after_incremental["mart_kpi_employee_daily"]
    assert _contents("mart_kpi_employee_daily") == after_incremental["mart_kpi_employee_daily"]
    # A backfill of old months after the spine grew (its newest month is missing here) builds that
    # month too, and on a fresh warehouse (no mart yet) a partition run builds every month: either
    # way the run's date-spine test passes and the mart equals the full build.
    kpi_mart = f"`{marts_schema()}`.mart_kpi_employee_daily"
    client.command(
        f"alter table {kpi_mart} delete where kpi_date >= toStartOfMonth({CLICKHOUSE_TODAY})",
        settings={"mutations_sync": 2},
    )
    for prepare in (lambda: None, lambda: client.command(f"drop table {kpi_mart}")):
        prepare()
        with kpi_window_environment(dates):
            built = run_dbt(["build", "--select", "mart_kpi_employee_daily"], log=output.append)
        assert built == 0, "\n".join(output[-40:])
        assert _contents("mart_kpi_employee_daily") == after_incremental["mart_kpi_employee_daily"]
    # and the changes did reach them (column 0 is the conversation id, column 1 the deposit's business
    # key, 4 its amount)
    messages = {row[0] for row in after_incremental["fct_conversations"]}
    assert new_message in messages and deleted_message not in messages
    deposits = {row[1]: row[4] for row in after_incremental["fct_deposits"]}
    assert "DEP_20250101_2" not in deposits and deposits["DEP_20250101_3"] == 4000
    money = {row[0]: row[1:] for row in after_incremental["int_customers__money_summary"]}
    assert money[2][0] == 2 and 1 not in money  # deposit count of customer 2; customer 1 has nothing left


def _old_month_day() -> dt.date:
    """The 15th of the month after the one 100 days ago: neither the KPI mart's first month (the
    fixture's first activity is 100 days ago) nor one the lookback (35 days) rebuilds anyway, as 65
    days always span two month starts."""
    first_activity = days_ago(100)
    return (first_activity.replace(day=1) + dt.timedelta(days=32)).replace(day=15)


def test_a_deposit_moved_to_another_month_leaves_its_old_month_after_raw_merged(
    built_warehouse, pg_dsn, clickhouse_env
):
    """A confirmed deposit moved to another month, whose older raw version ReplacingMergeTree merged
    away before the next build: the incremental KPI mart counts it in its new month only, as a full
    refresh does (not in both)."""
    moved = "update deposits set deposited_at = {} where deposit_code = 'DEP_20250101_3'"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(moved.format(f"'{_old_month_day()} 12:00+00'"))
    assert build(freshness=False, log=lambda _line: None).ok
    kpi_mart = f"`{marts_schema()}`.mart_kpi_employee_daily"
    client = clickhouse_client()
    counted_on = f"select kpi_date from {kpi_mart} where employee_id = 3 and bofu_deposits_count > 0"
    assert client.query(counted_on).result_rows == [(_old_month_day(),)]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(moved.format(f"{POSTGRES_NOW} - interval '1 day'"))
    replicate_tables(pg_dsn)
    client.command(f"optimize table `{clickhouse_env}`.deposits final")  # the old version is gone
    assert build(skip_replication=True, freshness=False, log=lambda _line: None).ok
    incremental = _contents("mart_kpi_employee_daily")
    assert [day for (day,) in client.query(counted_on).result_rows] == [days_ago(1)]
    output: list[str] = []
    assert run_dbt(["run", "--full-refresh"], log=output.append) == 0, "\n".join(output[-40:])
    assert incremental == _contents("mart_kpi_employee_daily")
