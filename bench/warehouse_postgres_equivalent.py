"""The PostgreSQL side of the warehouse benchmark's full-build comparison (warehouse.py, step 2)."""

from __future__ import annotations

import psycopg
from warehouse_timing import seconds

# The same measures in PostgreSQL, materialised like the marts are (CREATE TEMP TABLE AS), so the
# planner cannot drop unused joins: the seed's two views, and employee x day KPIs from the base tables.
POSTGRES_EQUIVALENT = {
    "v_customer_overview": "create temp table bench_customer_overview as select * from v_customer_overview",
    "v_employee_performance": "create temp table bench_employee_performance as select * from v_employee_performance",
    "daily_kpis": """
        create temp table bench_kpi_daily as
        with days as (
            select generate_series((select min(sent_at)::date from conversations), current_date, '1 day')::date as d
        ),
        conv as (select employee_id, sent_at::date as d, count(*) filter (where quality_score >= 7) as quality,
                        count(*) filter (where "is_反问") as counter_questions from conversations group by 1, 2),
        tofu as (select employee_id, contact_date as d, count(*) as contacts,
                        count(*) filter (where stayed_in_group) as retained from funnel_tofu group by 1, 2),
        accounts as (select employee_id, opened_at::date as d, count(*) as opened from funnel_mofu
                     where account_opened group by 1, 2),
        dep as (select employee_id, deposited_at::date as d, count(*) as deposits, sum(amount) as amount
                from deposits where status = 'confirmed' group by 1, 2),
        wd as (select employee_id, requested_at::date as d, sum(amount) as amount from withdrawals
               where status = 'confirmed' group by 1, 2)
        select days.d, e.id as employee_id, coalesce(tofu.contacts, 0) as contacts, coalesce(tofu.retained, 0) as retained,
               coalesce(conv.quality, 0) as quality, coalesce(conv.counter_questions, 0) as counter_questions,
               coalesce(accounts.opened, 0) as opened, coalesce(dep.deposits, 0) as deposits,
               coalesce(dep.amount, 0) as deposit_amount, coalesce(wd.amount, 0) as withdrawal_amount,
               coalesce(dep.amount, 0) - coalesce(wd.amount, 0) as net_deposit
        from days cross join employees e
        left join conv on conv.employee_id = e.id and conv.d = days.d
        left join tofu on tofu.employee_id = e.id and tofu.d = days.d
        left join accounts on accounts.employee_id = e.id and accounts.d = days.d
        left join dep on dep.employee_id = e.id and dep.d = days.d
        left join wd on wd.employee_id = e.id and wd.d = days.d""",
}


def postgres_equivalent_seconds(dsn: str) -> dict[str, float]:
    """Seconds of each of ``POSTGRES_EQUIVALENT``, in one session."""
    postgres_seconds = {}
    with psycopg.connect(dsn) as conn:
        conn.execute("set max_parallel_workers_per_gather = 2")
        for name, query in POSTGRES_EQUIVALENT.items():
            postgres_seconds[name] = round(seconds(lambda q=query: conn.execute(q)), 2)
    return postgres_seconds
