"""Mart values on the hand-made CRM equal numbers computed by hand from fixture_crm.sql."""

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from tests.fixtures.clock import CLICKHOUSE_TODAY, POSTGRES_MIDNIGHT, TEST_DAY, days_ago


def _row(warehouse, mart: str, where: str) -> dict:
    result = warehouse.client().query(f"select * from `{warehouse.schema('marts')}`.`{mart}` where {where}")
    assert len(result.result_rows) == 1, (mart, where, result.result_rows)
    return dict(zip(result.column_names, result.result_rows[0], strict=True))


def test_customer_overview_by_hand(warehouse):
    zhang = _row(warehouse, "mart_customer_overview", "customer_code = 'CUST_001'")
    assert zhang["days_in_current_stage"] == 25  # entered Subscribe 25 days ago
    assert zhang["days_to_first_deposit"] == 35  # contacted 60 days ago, first deposit 25 days ago
    assert (zhang["deposit_count"], zhang["withdrawal_count"]) == (2, 1)
    assert zhang["confirmed_deposit_amount"] == Decimal("1500.00")
    assert (zhang["conversations_last_7_days"], zhang["conversations_last_30_days"]) == (3, 4)
    assert (zhang["quality_conversations_last_7_days"], zhang["quality_conversations_last_30_days"]) == (2, 2)
    assert zhang["positive_conversation_share"] == pytest.approx(0.5)
    assert zhang["tag_names"] == ["VIP", "高意向"]
    assert zhang["days_since_last_contact"] == 1
    assert zhang["employee_name"] == "Alice Advisor"

    li = _row(warehouse, "mart_customer_overview", "customer_code = 'CUST_002'")
    assert li["deposit_count"] == 0  # her only deposit failed
    assert li["negative_conversation_count"] == 1 and li["conversations_last_30_days"] == 0
    assert li["first_deposit_date"] is None

    wang = _row(warehouse, "mart_customer_overview", "customer_code = 'CUST_003'")
    assert wang["has_multiple_funnel_rows"]
    assert wang["has_stayed_in_group"] is True  # the later of the two funnel_tofu rows
    assert wang["days_in_current_stage"] == 60


def test_money_in_a_settlement_currency_is_converted_to_usd(warehouse):
    """Zhang's first deposit and his withdrawal are in USDT (fixture_crm.sql): the facts keep amount and
    currency and add amount_usd at the project's seed fx_rates_to_usd (USDT at 1 USD), loaded into
    core with its pinned types (never into marts, which BI users read); the marts above sum amount_usd
    (Zhang's 1500 deposited, Alice's 1300 net)."""
    client, core = warehouse.client(), warehouse.schema("core")
    converted = {
        fact: client.query(
            f"select {code}, currency, amount, amount_usd from `{core}`.`{fact}` where currency != 'USD'"
        ).result_rows
        for fact, code in (("fct_deposits", "deposit_code"), ("fct_withdrawals", "withdrawal_code"))
    }
    assert converted == {
        "fct_deposits": [("DEP_20250101_1", "USDT", Decimal("1000.00"), Decimal("1000.00"))],
        "fct_withdrawals": [("WTH_20250101_1", "USDT", Decimal("200.00"), Decimal("200.00"))],
    }
    [(usd_rows_differing,)] = client.query(
        f"select countIf(amount_usd is null or amount_usd != amount) from `{core}`.fct_deposits where currency = 'USD'"
    ).result_rows
    assert usd_rows_differing == 0
    rates = client.query(
        f"select currency, toString(valid_from), usd_per_unit, toTypeName(usd_per_unit)"
        f" from `{core}`.fx_rates_to_usd where currency in ('USD', 'USDT') order by currency"
    ).result_rows
    assert rates == [
        ("USD", "0001-01-01", Decimal(1), "Decimal(38, 10)"),  # Date32: every movement has a rate
        ("USDT", "2014-10-06", Decimal(1), "Decimal(38, 10)"),
    ]


def test_employee_performance_by_hand(warehouse):
    alice = _row(warehouse, "mart_employee_performance", "employee_code = 'EMP_A1'")
    assert (alice["total_customers"], alice["active_customers"]) == (2, 2)
    assert alice["total_net_deposit"] == Decimal("1300.00")
    assert alice["net_deposit_all_time"] == Decimal("1300.00")  # 1000 + 500 - 200, confirmed only
    assert alice["deposit_count_all_time"] == 2 and alice["first_deposits_all_time"] == 1
    assert alice["withdrawal_rate_all_time"] == pytest.approx(200 / 1500)
    assert alice["quality_conversations_all_time"] == 2  # quality 8 and 9; 6, 5, 3 are not
    assert alice["counter_questions_all_time"] == 2
    assert alice["avg_days_contact_to_account"] == pytest.approx(30)
    assert alice["avg_days_account_to_first_deposit"] == pytest.approx(5)
    assert alice["account_opening_rate"] == pytest.approx(0.5)

    mona = _row(warehouse, "mart_employee_performance", "employee_code = 'EMP_M1'")
    assert mona["withdrawal_rate_all_time"] is None  # no deposits: no rate
    bob = _row(warehouse, "mart_employee_performance", "employee_code = 'EMP_B1'")
    assert bob["deposit_count_all_time"] == 1 and bob["withdrawal_count_all_time"] == 0
    assert bob["withdrawal_rate_all_time"] == 0  # deposits, no withdrawal: 0, not the cap of 1


def test_manager_rollup_by_hand(warehouse):
    mofu = _row(warehouse, "mart_manager_performance", "department = 'MoFu'")
    assert (mofu["manager_name"], mofu["direct_report_count"], mofu["employee_count"]) == (
        "Mona Manager",
        1,
        2,
    )
    bofu = _row(warehouse, "mart_manager_performance", "department = 'BoFu'")
    assert bofu["manager_employee_id"] is None and bofu["direct_report_count"] == 1


def test_training_completion_is_over_the_assigned_courses_by_hand(warehouse):
    """A training_progress row is a course's assignment (fixture_crm.sql: a catalogue of 2 courses, the
    onboarding one required). Bob was assigned only the onboarding course and completed it: 100 %, not
    1 of the catalogue's 2. Mona was assigned nothing: no rate (NULL), not 0 %."""
    columns = (
        "course_count",
        "courses_assigned",
        "courses_completed",
        "courses_in_progress",
        "required_courses_assigned",
        "completion_rate",
        "required_completion_rate",
    )

    def training(code: str) -> tuple:
        row = _row(warehouse, "mart_training_completion", f"employee_code = '{code}'")
        return tuple(row[column] for column in columns)

    assert training("EMP_B1") == (2, 1, 1, 0, 1, 1.0, 1.0)
    assert training("EMP_A1") == (2, 2, 1, 1, 1, 0.5, 1.0)  # onboarding done, growth in progress
    assert training("EMP_M1") == (2, 0, 0, 0, 0, None, None)


def test_kpi_daily_by_hand(warehouse):
    day = _row(warehouse, "mart_kpi_employee_daily", f"employee_id = 2 and kpi_date = {CLICKHOUSE_TODAY} - 3")
    # 500 deposited, 1 quality conversation (quality 9): 20*0 + 0 + 20*0.1 + 0 + 0 + 25*0.05 = 3.25
    assert day["bofu_net_deposit"] == Decimal("500.00")
    assert day["overall_score"] == pytest.approx(3.25)
    assert day["has_reported_kpis"] and day["is_matching_reported"]
    assert day["reported_overall_score"] == Decimal("55.00")


def test_kpi_accounts_opened_sum_to_the_employee_marts_first_openings(
    built_warehouse, pg_dsn, clickhouse_env
):
    """A customer's account counts once, on its first opening, for the employee of that row, in the KPI
    mart as in mart_employee_performance, also after an incremental build. Two re-contact rows arrive:
    Zhang (opened with Alice 30 days ago) opens again with Bob 2 days ago, which is no new account; Wang
    (opened with Bob 85 days ago) turns out to have opened with Alice at the end of the month before the
    first CRM activity (100 days ago), which moves her account to Alice and out of a month beyond the
    KPI lookback that no changed row is in, and grows the spine backwards (the mart's first month gains
    days). The incremental run must leave the rows a full refresh builds."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into funnel_mofu (source_key, customer_id, employee_id, account_opened, opened_at, created_at)"
            f" values ('M1_again', 1, 3, true, {POSTGRES_MIDNIGHT} - interval '2 days' + interval '12 hours', now()),"
            " ('M3_earlier', 3, 2, true,"
            f"  date_trunc('month', {POSTGRES_MIDNIGHT} - interval '100 days') - interval '12 hours', now())"
        )
    replicate_tables(pg_dsn)
    output: list[str] = []
    assert run_dbt(["run", "--select", "source:crm.funnel_mofu+"], log=output.append) == 0, "\n".join(
        output[-40:]
    )

    client, marts = clickhouse_client(), marts_schema()
    in_employee_mart = dict(
        client.query(
            f"select employee_id, (accounts_opened_all_time, accounts_opened_this_month)"
            f" from `{marts}`.mart_employee_performance"
        ).result_rows
    )
    in_kpi_mart = dict(
        client.query(
            f"select employee_id, (sum(mofu_accounts_opened),"
            f" sumIf(mofu_accounts_opened, toStartOfMonth(kpi_date) = toStartOfMonth({CLICKHOUSE_TODAY})))"
            f" from `{marts}`.mart_kpi_employee_daily group by employee_id"
        ).result_rows
    )
    assert in_kpi_mart == in_employee_mart
    assert {employee: all_time for employee, (all_time, _) in in_kpi_mart.items()} == {1: 0, 2: 2, 3: 0}

    kpi_rows = f"select * from `{marts}`.mart_kpi_employee_daily order by all"
    incremental = client.query(kpi_rows).result_rows
    assert run_dbt(["run", "--full-refresh", "--select", "mart_kpi_employee_daily"], log=output.append) == 0
    assert client.query(kpi_rows).result_rows == incremental


def test_funnel_cohorts_by_hand(warehouse):
    cohort = _row(warehouse, "mart_funnel_cohorts", "source_channel = '推荐'")
    # Wang Fang: contacted 100 days ago, account after 15 days, first deposit after 20 days.
    assert cohort["account_opened_within_7_days_share"] == 0
    assert cohort["account_opened_within_30_days_share"] == 1
    assert cohort["first_deposit_within_30_days_share"] == 1


def test_funnel_awareness_entries_by_hand(warehouse):
    """Each customer enters Awareness once, on first contact: the CRM has no journey row for it."""
    rows = (
        warehouse.client()
        .query(
            f"select dateDiff('day', entry_date, {CLICKHOUSE_TODAY}), source_channel, department, stage_entries,"
            " converted_entries, exited_entries, median_days_to_next_stage"
            f" from `{warehouse.schema('marts')}`.mart_funnel_daily where stage = 'Awareness' order by entry_date"
        )
        .result_rows
    )
    assert rows == [
        (100, "推荐", "BoFu", 1, 1, 1, 10.0),  # Wang Fang: contacted 100 days ago, Trust 90 days ago
        (60, "TikTok", "MoFu", 1, 1, 1, 5.0),  # Zhang Wei: Attention 55 days ago
        (20, "Facebook", "MoFu", 1, 1, 1, 5.0),  # Li Na: Attention 15 days ago
        # Chen Jie: no contact (first contact = created 5 days ago), no journey row: neither converted nor exited
        (5, "TikTok", "unassigned", 1, 0, 0, None),
    ]


@pytest.mark.parametrize("period", ["this_month", "this_quarter"])
def test_employee_period_averages_and_stage_conversion_by_hand(warehouse, period):
    """Alice's customer 1: contacted 60 days ago, Trust 50, account and Action 30, first deposit and
    Subscribe 25 days ago; whether each falls in the current month or quarter depends on today."""
    today = TEST_DAY

    def within(days_ago: int) -> bool:
        day = today - dt.timedelta(days=days_ago)
        if period == "this_month":
            return (day.year, day.month) == (today.year, today.month)
        return (day.year, (day.month - 1) // 3) == (today.year, (today.month - 1) // 3)

    alice = _row(warehouse, "mart_employee_performance", "employee_code = 'EMP_A1'")
    entered = {stage: int(within(days)) for stage, days in (("trust", 50), ("action", 30), ("subscribe", 25))}
    assert {stage: alice[f"customers_entered_{stage}_{period}"] for stage in entered} == entered
    assert alice[f"trust_to_action_rate_{period}"] == (
        min(entered["action"] / entered["trust"], 1) if entered["trust"] else None
    )
    assert alice[f"action_to_subscribe_rate_{period}"] == (
        min(entered["subscribe"] / entered["action"], 1) if entered["action"] else None
    )
    assert alice[f"avg_days_contact_to_account_{period}"] == (30 if within(30) else None)
    assert alice[f"avg_days_account_to_first_deposit_{period}"] == (5 if within(25) else None)
    assert alice[f"avg_days_contact_to_first_deposit_{period}"] == (35 if within(25) else None)


def test_a_corrected_hire_date_marks_the_kpi_days_before_it_in_every_month(
    built_warehouse, pg_dsn, clickhouse_env
):
    """Bob's hire date (2024, before the date spine) is corrected to a day of an old month, one before the
    KPI lookback that no changed input row is in: his rows stay on every spine day (the spine's grain),
    those before the hire not employed. The incremental run rebuilds that month (its employees' hire
    dates are not dim_employees' any more) and leaves the rows a full refresh builds."""
    client, marts = clickhouse_client(), marts_schema()
    kpis = f"`{marts}`.mart_kpi_employee_daily"
    lookback_start = days_ago(35)
    days = sorted(day for (day,) in client.query(f"select distinct kpi_date from {kpis}").result_rows)
    months = sorted({day.replace(day=1) for day in days})
    old_months = [
        month for month in months[1:] if month < lookback_start.replace(day=1)
    ]  # the first is always rebuilt
    assert old_months, months
    hired = old_months[0] + dt.timedelta(days=10)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update employees set hired_at = %s, updated_at = now() where id = 3", (hired,))
    replicate_tables(pg_dsn)
    output: list[str] = []
    assert run_dbt(["run", "--select", "source:crm.employees+"], log=output.append) == 0, "\n".join(
        output[-40:]
    )

    bob = dict(
        client.query(
            f"select is_employed, (min(kpi_date), max(kpi_date), count()) from {kpis} where employee_id = 3"
            " group by is_employed"
        ).result_rows
    )
    assert bob[0][:2] == (days[0], hired - dt.timedelta(days=1)) and bob[1][:2] == (hired, days[-1])
    assert bob[0][2] + bob[1][2] == len(days)  # a row on every spine day
    kpi_rows = f"select * from {kpis} order by all"
    incremental = client.query(kpi_rows).result_rows
    assert run_dbt(["run", "--full-refresh", "--select", "mart_kpi_employee_daily"], log=output.append) == 0
    assert client.query(kpi_rows).result_rows == incremental
