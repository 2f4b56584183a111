"""Days outside a ClickHouse ``Date`` (1970-01-01 .. 2149-06-06), which replication keeps as the CRM has
them (test_replication_date_range.py): the models take the day and the month of a row through
dbt_project/macros/days.sql, as Date32, never toDate() (which wraps 2160-01-01 around to 1980-07-27) or
toStartOfMonth() (which caps a day before 1970 at 1970-01-01). On the hand-made CRM plus a confirmed
deposit, a confirmed withdrawal, a message and a journey row stamped in 2160 (after the build date: in
no period, all time included, per dbt_project/macros/as_of_date.sql) and two customers first contacted
in 1969-12 and 1899-03: the build succeeds, the facts keep the real days, the marts count nothing of 2160
and the KPI date spine runs from the data's real first day to the build date."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import psycopg

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT
from tests.fixtures.clock import TEST_DAY
from tests.fixtures.warehouse import load_fixture

FAR_FUTURE = dt.datetime(2160, 1, 1, 9)
BEFORE_1970 = dt.datetime(1965, 3, 1, 9)
# fixture_crm.sql: the earliest activity from 1970 on is customer 3's first contact, 100 days ago
FIRST_ACTIVITY_DAYS_AGO = 100
# New customers (fixture ids end at 4) first contacted before 1970, in a channel of their own.
OLD_CONTACTS = {5: dt.date(1969, 12, 15), 6: dt.date(1899, 3, 10)}
OLD_CHANNEL = "Radio"
# A call returning a Date (or capping at 1970) on anything but a quoted constant: what days.sql replaces.
DATE_CALL = re.compile(r"\b(toDate|toStartOf[A-Za-z]*|toMonday|toLastDayOf[A-Za-z]*)\((?!['\)]|toDate\(')")
# The spine's start, a Date on purpose (its and the KPI mart's day type): bounded to 1970-01-01 .. the
# build date before the conversion (int_dates__spine.sql).
BOUNDED_DATE_CALLS = {"int_dates__spine.sql": 1}


def _add_rows_outside_the_date_range(dsn: str) -> None:
    """Li Na (customer 2, Alice's) deposits, withdraws, is messaged and moves on in 2160; Chen Jie
    (customer 4) moves on in 2160 too. Customers 5 and 6 are first contacted before 1970."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into deposits (deposit_code, customer_id, employee_id, amount, currency, deposit_type, status,"
            " deposited_at) values ('DEP_21600101_1', 2, 2, 700, 'USD', '首金', 'confirmed', %s)",
            (FAR_FUTURE,),
        )
        conn.execute(
            "insert into withdrawals (withdrawal_code, customer_id, employee_id, amount, currency, reason,"
            " risk_level, status, requested_at)"
            " values ('WTH_21600101_1', 2, 2, 50, 'USD', '盈利提现', '低', 'confirmed', %s)",
            (FAR_FUTURE,),
        )
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            ' sentiment, "is_反问", quality_score, platform, sent_at)'
            " values ('MSG2160', 2, 2, 'text', 'outbound', 'positive', true, 9, 'wechat', %s)",
            (FAR_FUTURE,),
        )
        conn.execute(
            "insert into customer_journey (source_key, customer_id, from_stage, to_stage, duration_days,"
            " trigger_event, created_at) values ('J2160', 4, 'Awareness', 'Attention', 1, 'manual', %s)",
            (FAR_FUTURE,),
        )
        for customer_id, contact_date in OLD_CONTACTS.items():
            conn.execute(
                "insert into customers (id, customer_code, name, current_stage, source_channel)"
                " values (%s, %s, 'N', 'Awareness', %s)",
                (customer_id, f"CUST_{customer_id:03}", OLD_CHANNEL),
            )
            conn.execute(
                "insert into funnel_tofu (source_key, customer_id, employee_id, contact_date, source_channel,"
                " stayed_in_group, joined_group) values (%s, %s, 3, %s, %s, true, true)",
                (f"T{customer_id}", customer_id, contact_date, OLD_CHANNEL),
            )
        # Before 1970 too: a confirmed deposit of customer 5 (employee 3's), in USD, whose rate
        # (fx_rates_to_usd) must hold on that day.
        conn.execute(
            "insert into deposits (deposit_code, customer_id, employee_id, amount, currency, deposit_type, status,"
            " deposited_at) values ('DEP_19650301_1', 5, 3, 700, 'USD', '首金', 'confirmed', %s)",
            (BEFORE_1970,),
        )


def test_days_outside_the_date_range_keep_their_day_and_2160_is_in_no_period(
    pg_dsn, clickhouse_env, dbt_dirs
):
    load_fixture(pg_dsn)
    _add_rows_outside_the_date_range(pg_dsn)
    replicate_tables(pg_dsn)
    output: list[str] = []
    # the models and their data tests (the unit tests do not read the warehouse)
    assert run_dbt(["build", "--exclude", "test_type:unit"], log=output.append) == 0, "\n".join(output[-40:])

    client = clickhouse_client()
    marts, core = marts_schema(), marts_schema().removesuffix("marts") + "core"
    today = TEST_DAY

    def one(sql: str) -> tuple:
        [row] = client.query(sql).result_rows
        return row

    # The facts keep the day as the CRM stamped it.
    far_day = FAR_FUTURE.date()
    assert one(f"select deposit_date from `{core}`.fct_deposits where deposit_code = 'DEP_21600101_1'") == (
        far_day,
    )
    assert one(
        f"select requested_date from `{core}`.fct_withdrawals where withdrawal_code = 'WTH_21600101_1'"
    ) == (far_day,)
    assert one(
        f"select max(sent_date), countIf(sent_date < '1971-01-01') from `{core}`.fct_conversations"
    ) == (far_day, 0)
    # ... and one before 1970 is in dollars: the seed's USD rate holds from its first day.
    assert one(
        f"select deposit_date, amount_usd from `{core}`.fct_deposits where deposit_code = 'DEP_19650301_1'"
    ) == (BEFORE_1970.date(), Decimal("700.00"))
    # a stage entered in 2160 has not been entered yet: Chen Jie has no transition
    assert one(f"select count() from `{core}`.fct_stage_transitions where customer_id = 4") == (0,)

    # Li Na's 2160 deposit is no first deposit; Alice's all-time figures are the fixture's alone.
    assert one(
        f"select first_deposit_date, days_to_first_deposit from `{marts}`.mart_customer_overview"
        " where customer_code = 'CUST_002'"
    ) == (None, None)
    assert one(
        "select deposit_count_all_time, deposit_amount_all_time, withdrawal_count_all_time,"
        " first_deposits_all_time, quality_conversations_all_time, counter_questions_all_time"
        f" from `{marts}`.mart_employee_performance where employee_id = 2"
    ) == (2, Decimal("1500.00"), 1, 1, 2, 2)

    # The KPI date spine runs from the real first day to the build date, with the fixture's totals.
    assert one(
        "select min(kpi_date), max(kpi_date), sum(bofu_deposits_count), sum(bofu_withdrawal_amount),"
        f" sum(mofu_counter_question_count) from `{marts}`.mart_kpi_employee_daily"
    ) == (today - dt.timedelta(days=FIRST_ACTIVITY_DAYS_AGO), today, 3, Decimal("200.00"), 2)

    # Each first contact before 1970 is in the cohort of its own month.
    cohorts = client.query(
        f"select cohort_month, cohort_customers from `{marts}`.mart_funnel_cohorts"
        " where source_channel = {channel:String} order by cohort_month",
        parameters={"channel": OLD_CHANNEL},
    ).result_rows
    assert cohorts == [(dt.date(1899, 3, 1), 1), (dt.date(1969, 12, 1), 1)]


def test_no_model_takes_a_day_or_a_month_as_a_date():
    """A model taking a row's day with toDate() or its month with toStartOfMonth() would bring the wrap
    and the cap back; it takes them through day_of() / month_of() (dbt_project/macros/days.sql)."""
    calls = {
        path.name: len(DATE_CALL.findall(path.read_text()))
        for path in (REPO_ROOT / "dbt_project" / "models").rglob("*.sql")
    }
    assert {name: count for name, count in calls.items() if count} == BOUNDED_DATE_CALLS
