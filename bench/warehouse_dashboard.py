"""Dashboard query latency on the marts (warehouse.py, step 5): ten typical queries as a BI tool reads,
as the read-only user, whose every query the server checks against its grants."""

from __future__ import annotations

import clickhouse_connect
from warehouse_timing import seconds

RUNS_PER_QUERY = 20

DASHBOARD_QUERIES = {
    "customer by code": "select * from marts.mart_customer_overview where customer_code = 'CUST_4242'",
    "customers of an employee": "select customer_code, current_stage, net_deposit from marts.mart_customer_overview "
    "where assigned_employee_id = 42 order by net_deposit desc limit 50",
    "stage distribution": "select current_stage, count() from marts.mart_customer_overview group by current_stage",
    "top employees this month": "select employee_name, net_deposit_this_month from marts.mart_employee_performance "
    "order by net_deposit_this_month desc limit 10",
    "department rollup": "select * from marts.mart_manager_performance order by net_deposit_all_time desc",
    "kpi last 30 days": "select kpi_date, sum(bofu_net_deposit), avg(overall_score) from marts.mart_kpi_employee_daily "
    "where kpi_date > today() - 30 group by kpi_date order by kpi_date",
    "employee kpi trend": "select kpi_date, overall_score from marts.mart_kpi_employee_daily where employee_id = 42 "
    "and kpi_date > today() - 90 order by kpi_date",
    "funnel by channel": "select source_channel, stage, sum(stage_entries), avg(conversion_rate) "
    "from marts.mart_funnel_daily where entry_date > today() - 90 group by source_channel, stage",
    "cohorts": "select * from marts.mart_funnel_cohorts order by cohort_month desc limit 24",
    "inactive big accounts": "select customer_code, confirmed_deposit_amount, days_since_last_contact "
    "from marts.mart_customer_overview where days_since_last_contact > 14 order by confirmed_deposit_amount desc limit 20",
}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def dashboard_latencies(clickhouse: dict) -> dict:
    """p50 and p95 in ms over every run of every query (each warmed up once, then run
    ``RUNS_PER_QUERY`` times), and each query's p95, on the ``clickhouse`` server the launcher started."""
    client = clickhouse_connect.get_client(
        host=clickhouse["host"],
        port=clickhouse["port"],
        username=clickhouse["readonly_user"],
        password=clickhouse["readonly_password"],
    )
    latencies: dict[str, list[float]] = {}
    for name, query in DASHBOARD_QUERIES.items():
        client.query(query)  # warm-up
        latencies[name] = [1000 * seconds(lambda q=query: client.query(q)) for _ in range(RUNS_PER_QUERY)]
    every = [value for values in latencies.values() for value in values]
    return {
        "p50": round(_percentile(every, 0.5), 1),
        "p95": round(_percentile(every, 0.95), 1),
        "per_query_p95": {name: round(_percentile(values, 0.95), 1) for name, values in latencies.items()},
    }
