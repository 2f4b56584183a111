"""Warehouse benchmark: full build vs PostgreSQL, incremental vs full, dashboard query latency.

One run, in a throwaway stack (its own embedded PostgreSQL and local ClickHouse server):

1. synthetic CRM data written straight into PostgreSQL with SQL (``generate_series``): at 100,000
   customers / 5 million conversations the landing-file generator + loader would take longer than
   everything measured here, and the warehouse only sees PostgreSQL anyway;
2. full ``funnelhouse build`` (replication + ``dbt build --full-refresh``, tests included) vs the seed's
   two views plus a daily-KPI equivalent computed in PostgreSQL on the same data;
3. 1% new rows stamped over the whole year, then an incremental build (replication + ``dbt run`` of
   the models downstream of the changed raw tables, no tests), as a share of the full build (goal
   <= 10%); the same again with 1% new rows all within the last day, as the hourly refresh meets
   them (the incremental facts and KPI months then touch only the recent months); then a build with
   no new rows (replication only, dbt skipped) and ``dbt source freshness``, which ``funnelhouse build`` runs
   beside the models as a report and is timed on its own; and a build with that report beside the
   models against the same with the report after them (how it ran before), each after 1% new rows;
   and the last incremental dbt command once more as a process against warm in this process (dbt
   imported and the project parsed beforehand: what a long-lived dbt worker would pay);
4. a KPI partition run with its dates in dbt's environment (as Dagster passes them) against the same
   run given them as ``--vars`` (which re-parses the project), and the nightly full refresh over the
   existing warehouse (replication builds each table beside the live one, with tombstones);
5. ten typical dashboard queries on the marts as the read-only BI user, 20 runs each: p50/p95 (goal p95 < 100 ms).

Figures go to bench/results/warehouse.json and .md (``--name`` picks another name, e.g. for a run at
another scale). Usage:
    python bench/warehouse.py [--customers 100000] [--conversations 5000000] [--name warehouse] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import clickhouse_connect
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import postgres  # noqa: E402
from devstack.clickhouse import launcher  # noqa: E402
from ingestion.schema import migrate  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEPARTMENTS = ("ToFu", "MoFu", "BoFu", "VIP", "培训")
STAGES = "array['Awareness','Attention','Trust','Engage','Action','Subscribe','Growth','Loyal','Advocate']"

SEED_SQL = """
select ensure_conversation_partitions((current_date - 400)::date, current_date);
insert into employees (employee_code, name, email, phone, username, password_hash, role, department, level, created_at)
select 'EMP_' || i, 'Employee ' || i, 'e' || i || '@corp.example', '+1-555-' || i, 'user' || i, 'hash',
       case when i <= 5 then 'manager' else 'employee' end,
       (array['ToFu','MoFu','BoFu','VIP','培训'])[1 + i % 5], case when i <= 5 then '主管' else '组员' end,
       now() - interval '2 years'
from generate_series(1, 200) i;
insert into customers (customer_code, name, age, wechat_id, email, phone, country, tier, intention_score,
                       engagement_score, current_stage, source_channel, assigned_employee_id, status, created_at, last_contact_at)
select 'CUST_' || i, 'Customer ' || i, 20 + i % 50, 'wx_' || i, 'c' || i || '@mail.example', '+86-' || i,
       'CN', (array['S','A','B','C'])[1 + i % 4], i % 61, i % 101, ({stages})[1 + i % 9],
       (array['TikTok','Facebook','推荐','小红书'])[1 + i % 4], 6 + i % 195,
       case when i % 10 = 0 then 'inactive' else 'active' end,
       now() - make_interval(days => {offset} + i % {spread_days}), now() - make_interval(days => i % 30)
from generate_series({first}, {last}) i;
insert into funnel_tofu (source_key, customer_id, employee_id, contact_date, source_channel, stayed_in_group, joined_group)
select 'T' || c.id, c.id, c.assigned_employee_id, c.created_at::date, c.source_channel, c.id % 3 <> 0, true
from customers c where c.id between {first} and {last};
insert into customer_journey (source_key, customer_id, from_stage, to_stage, duration_days, created_at)
select 'J' || c.id || '_' || s, c.id, ({stages})[s], ({stages})[s + 1], 3,
       least(c.created_at + make_interval(days => 3 * s), now())
from customers c cross join generate_series(1, 2) s where c.id between {first} and {last};
insert into funnel_mofu (source_key, customer_id, employee_id, total_conversations, high_quality_conversations,
                         account_opened, opened_at)
select 'M' || c.id, c.id, c.assigned_employee_id, 50, 10, c.id % 3 = 0, case when c.id % 3 = 0 then least(c.created_at + interval '10 days', now()) end
from customers c where c.id between {first} and {last} and c.id % 100 < 35;
insert into funnel_bofu (source_key, customer_id, employee_id, total_deposits, total_withdrawals, net_deposit,
                         deposit_count, first_deposit_amount, first_deposit_at, withdrawal_rate, is_vip)
select 'B' || c.id, c.id, c.assigned_employee_id, 3000, 300, 2700, 3, 1000, least(c.created_at + interval '20 days', now()), 10, c.id % 7 = 0
from customers c where c.id between {first} and {last} and c.id % 100 < 10;
insert into deposits (deposit_code, customer_id, employee_id, amount, deposit_type, status, deposited_at)
select 'DEP_20250101_' || c.id || 'x' || n, c.id, c.assigned_employee_id, 1000, case when n = 1 then '首金' else '复入金' end,
       'confirmed', least(c.created_at + make_interval(days => 20 + 5 * n), now())
from customers c cross join generate_series(1, 3) n where c.id between {first} and {last} and c.id % 100 < 10;
insert into withdrawals (withdrawal_code, customer_id, employee_id, amount, reason, status, requested_at)
select 'WTH_20250101_' || c.id, c.id, c.assigned_employee_id, 300, '盈利提现', 'confirmed', least(c.created_at + interval '40 days', now())
from customers c where c.id between {first} and {last} and c.id % 100 < 2;
insert into conversations (source_message_id, customer_id, employee_id, message_type, direction, content, sentiment,
                           "is_反问", quality_score, platform, sent_at)
select 'MSG' || i, 1 + i % {customers}, 6 + (1 + i % {customers}) % 195, 'text',
       case when i % 2 = 0 then 'inbound' else 'outbound' end, 'message ' || i,
       (array['positive','neutral','negative'])[1 + i % 3], i % 11 = 0, 1 + i % 10, 'wechat',
       now() - make_interval(days => {offset} + i % {spread_days}, secs => i % 86400)
from generate_series({first_message}, {last_message}) i;
"""

REFERENCE_SQL = """
insert into tags (name, category) select 'tag' || i, '行为' from generate_series(1, 20) i;
insert into customer_tags (customer_id, tag_id) select c.id, 1 + c.id % 20 from customers c;
insert into scripts (script_code, category, content_cn) select 'SCR_' || i, '场景话术', '...' from generate_series(1, 50) i;
insert into materials (material_code, type, category, views, likes) select 'MAT_' || i, 'video', '专业投资', 100 * i, i
from generate_series(1, 100) i;
insert into training_courses (course_code, title, course_type) select 'C' || i, 'Course ' || i, '7天上手' from generate_series(1, 10) i;
insert into training_progress (employee_id, course_id, status, progress_percentage)
select e.id, c.id, 'completed', 100 from employees e cross join training_courses c where (e.id + c.id) % 2 = 0;
insert into employee_kpis (employee_id, date, tofu_contacts, overall_score)
select e.id, current_date - d, 3, 50 from employees e cross join generate_series(1, 365) d;
insert into system_settings (key, value) select 'k' || i, 'v' || i from generate_series(1, 10) i;
"""

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


def _seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _load(
    dsn: str,
    first: int,
    last: int,
    first_message: int,
    last_message: int,
    customers: int,
    offset: int,
    spread_days: int = 365,
) -> None:
    """Customers ``first..last`` and conversations ``first_message..last_message`` (with any of the
    first ``customers``), stamped over the ``spread_days`` days before now."""
    sql = SEED_SQL.format(
        spread_days=spread_days,
        stages=STAGES,
        first=first,
        last=last,
        first_message=first_message,
        last_message=last_message,
        customers=customers,
        offset=offset,
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set synchronous_commit = off")
        for statement in filter(str.strip, sql.split(";\n")):
            if first > 1 and statement.strip().startswith("insert into employees"):
                continue
            conn.execute(statement)


def _full_build(build, log: list[str]) -> dict:
    """``funnelhouse build --full-refresh`` (without the freshness report), timed."""
    summary = build(full_refresh=True, freshness=False, log=log.append)
    assert summary.ok, "\n".join(log[-40:])
    return {
        "replication_seconds": round(summary.replication_seconds, 1),
        "dbt_build_seconds": round(summary.dbt_seconds, 1),
        "total_seconds": round(summary.replication_seconds + summary.dbt_seconds, 1),
        "rows_replicated": summary.rows_copied,
        "replication_table_seconds": {
            result.table: round(result.seconds, 2) for result in summary.replication
        },
    }


def _dbt_ok(arguments: list[str]) -> None:
    from orchestration.defs.warehouse.build import run_dbt

    output: list[str] = []
    assert run_dbt(arguments, log=output.append) == 0, "\n".join(output[-40:])


def _dbt_as_process_and_warm(arguments: list[str]) -> tuple[float, float]:
    """Seconds of one dbt command run as a process (as every build runs it: Python start-up, dbt's
    imports, partial parse, artifacts) and in this process with dbt imported and the project parsed
    beforehand (the second of two invocations): what a long-lived dbt worker would pay. Same command,
    same warehouse, one after the other."""
    from dbt.cli.main import dbtRunner

    from orchestration.defs.warehouse.dbt_environment import REPO_ROOT, dbt_env

    as_process = _seconds(lambda: _dbt_ok(arguments))
    saved_environment, saved_directory = dict(os.environ), os.getcwd()
    os.environ.update(dbt_env())
    os.chdir(REPO_ROOT)
    try:
        manifest = dbtRunner().invoke(["parse", "--quiet"]).result

        def invoke() -> None:
            assert dbtRunner(manifest=manifest).invoke([*arguments, "--quiet"]).success

        invoke()
        warm = _seconds(invoke)
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        os.chdir(saved_directory)
    return round(as_process, 1), round(warm, 1)


def _incremental_figures(summary) -> dict:
    total = summary.replication_seconds + summary.dbt_seconds
    elapsed, models = _run_results() if not summary.dbt_plan.skip else (0, {})
    return {
        "replication_seconds": round(summary.replication_seconds, 1),
        "dbt_seconds": round(summary.dbt_seconds, 1),
        "total_seconds": round(total, 1),
        "rows_replicated": summary.rows_copied,
        "changed_tables": summary.changed_tables,
        "dbt_command": " ".join(summary.dbt_plan.arguments) or "(skipped)",
        "models_run": len(models) if not summary.dbt_plan.skip else 0,
        # Where the time goes: dbt's own elapsed time (the rest of dbt_seconds is process start-up,
        # parsing and connecting), each model's time, and each replicated table's time.
        "dbt_elapsed_seconds": elapsed if not summary.dbt_plan.skip else 0,
        "model_seconds": models if not summary.dbt_plan.skip else {},
        "replication_table_seconds": {
            result.table: round(result.seconds, 2) for result in summary.replication
        },
    }


def _run_results() -> tuple[float, dict[str, float]]:
    """(elapsed, seconds per node, slowest first) of the last dbt command's run_results.json."""
    from orchestration.defs.warehouse.dbt_environment import dbt_env

    run_results = json.loads((Path(dbt_env()["DBT_TARGET_PATH"]) / "run_results.json").read_text())
    nodes = sorted(run_results["results"], key=lambda result: -result["execution_time"])
    seconds = {node["unique_id"].split(".")[-1]: round(node["execution_time"], 2) for node in nodes}
    return round(run_results["elapsed_time"], 1), seconds


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=5_000_000)
    parser.add_argument("--keep", action="store_true", help="Keep the throwaway stack (and print its home).")
    parser.add_argument("--name", default="warehouse", help="Results file name under bench/results/.")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="funnelhouse-bench-warehouse-"))
    os.environ.update(FUNNELHOUSE_HOME=str(home), FUNNELHOUSE_ENV="local")
    for name in (
        "FUNNELHOUSE_PG_DSN",
        "FUNNELHOUSE_PG_REPLICATION_DSN",
        "FUNNELHOUSE_CLICKHOUSE_URL",
        "FUNNELHOUSE_SCHEMA_PREFIX",
        "FUNNELHOUSE_RAW_DATABASE",
    ):
        os.environ.pop(name, None)
    results: dict = {
        "customers": args.customers,
        "conversations": args.conversations,
        "cpu_count": os.cpu_count(),
    }
    try:
        postgres.start(home)
        clickhouse = launcher.start(home)
        from orchestration import environment
        from orchestration.defs.warehouse.build import build, run_dbt, source_freshness
        from orchestration.defs.warehouse.dbt_environment import kpi_window_environment

        dsn = environment.pg_dsn()
        migrate.apply(dsn, log=lambda *_: None)
        print("loading PostgreSQL ...", flush=True)
        results["load_seconds"] = round(
            _seconds(lambda: _load(dsn, 1, args.customers, 1, args.conversations, args.customers, 0)), 1
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in filter(str.strip, REFERENCE_SQL.split(";\n")):
                conn.execute(statement)
            conn.execute("vacuum analyze")
            results["postgres_rows"] = {
                table: conn.execute(f"select count(*) from {table}").fetchone()[0]
                for table in (
                    "customers",
                    "conversations",
                    "conversation_events",
                    "customer_journey",
                    "funnel_tofu",
                    "funnel_mofu",
                    "funnel_bofu",
                    "deposits",
                    "withdrawals",
                    "employee_kpis",
                    "employees",
                )
            }

        log: list[str] = []
        print("full build ...", flush=True)
        results["full_build"] = _full_build(build, log)

        print("PostgreSQL equivalent ...", flush=True)
        postgres_seconds = {}
        with psycopg.connect(dsn) as conn:
            conn.execute("set max_parallel_workers_per_gather = 2")
            for name, query in POSTGRES_EQUIVALENT.items():
                postgres_seconds[name] = round(_seconds(lambda q=query: conn.execute(q)), 2)
        results["postgres_equivalent_seconds"] = postgres_seconds
        postgres_total = sum(postgres_seconds.values())
        results["full_build_vs_postgres_ratio"] = round(
            results["full_build"]["total_seconds"] / postgres_total, 2
        )

        extra_customers = max(1, args.customers // 100)
        extra_messages = max(1, args.conversations // 100)
        grown = {"customers": args.customers, "messages": args.conversations}

        def add_one_percent(spread_days: int) -> None:
            customers, messages = grown["customers"], grown["messages"]
            _load(
                dsn,
                customers + 1,
                customers + extra_customers,
                messages + 1,
                messages + extra_messages,
                customers + extra_customers,
                0,
                spread_days,
            )
            grown.update(customers=customers + extra_customers, messages=messages + extra_messages)

        # Twice 1% new rows: stamped over the whole year (every month of the incremental models
        # rebuilt: the goal's measure), then all within the last day, as an hourly refresh meets them.
        for key, spread_days in (("incremental_build", 365), ("incremental_build_recent", 1)):
            print(f"1% new rows over {spread_days} day(s), incremental build ...", flush=True)
            add_one_percent(spread_days)
            log.clear()
            incremental = build(freshness=False, log=log.append)
            assert incremental.ok, "\n".join(log[-40:])
            results[key] = _incremental_figures(incremental)
            incremental_arguments = list(incremental.dbt_plan.arguments)
        # `funnelhouse build` as people run it, with its freshness report: the report after the models
        # (how it ran before) against beside them (how it runs now), each after 1% new recent rows.
        for key, beside in (("build_with_freshness_after", False), ("build_with_freshness_beside", True)):
            print(f"1% new rows over 1 day, build with {key.rsplit('_', 1)[-1]} freshness ...", flush=True)
            add_one_percent(1)
            log.clear()
            started = time.perf_counter()
            summary = build(freshness=beside, log=log.append)
            report = summary.freshness if beside else source_freshness(log=log.append)
            results[key] = round(time.perf_counter() - started, 1)
            assert summary.ok and report.sources, "\n".join(log[-40:])
        results["incremental_vs_full_share"] = round(
            results["incremental_build"]["total_seconds"] / results["full_build"]["total_seconds"], 3
        )
        results["incremental_recent_vs_full_share"] = round(
            results["incremental_build_recent"]["total_seconds"] / results["full_build"]["total_seconds"], 3
        )
        print("no new rows, incremental build and source freshness ...", flush=True)
        unchanged = build(log=log.append)
        assert unchanged.ok and unchanged.dbt_plan.skip, "\n".join(log[-40:])
        results["unchanged_build"] = _incremental_figures(unchanged)
        results["source_freshness_seconds"] = round(unchanged.freshness_seconds, 1)
        # The least a dbt process costs here: a `dbt run` that selects nothing (start-up, partial
        # parse, manifest; no model, no connection). With the unchanged build's replication, the floor
        # of any incremental build that runs dbt as a process, as a share of the full build.
        print("dbt run selecting nothing ...", flush=True)
        floor_log: list[str] = []
        started = time.perf_counter()
        assert run_dbt(["run", "--select", "tag:selects_nothing"], log=floor_log.append) == 0, "\n".join(
            floor_log
        )
        results["dbt_invocation_floor_seconds"] = round(time.perf_counter() - started, 1)
        results["incremental_floor_vs_full_share"] = round(
            (unchanged.replication_seconds + results["dbt_invocation_floor_seconds"])
            / results["full_build"]["total_seconds"],
            3,
        )

        # The last incremental dbt command once more with no new rows (the table models rebuild whole,
        # the incremental facts find nothing): as a process, and warm in this process.
        print("the incremental dbt command again: as a process vs warm in-process ...", flush=True)
        results["incremental_dbt_as_process_seconds"], results["incremental_dbt_warm_seconds"] = (
            _dbt_as_process_and_warm(incremental_arguments)
        )

        # A KPI partition run (Dagster's hourly one: yesterday and today) as Dagster passes its dates,
        # through dbt's environment, against the same run given them as --vars, which makes dbt
        # re-parse the project (how partition runs passed them before).
        print("KPI partition run: dates in the environment vs as --vars ...", flush=True)
        today = datetime.date.today()
        dates = {"kpi_start_date": str(today - datetime.timedelta(days=1)), "kpi_end_date": str(today)}
        kpi_run = ["run", "--select", "mart_kpi_employee_daily"]
        with kpi_window_environment(dates):
            results["kpi_partition_run_seconds"] = round(_seconds(lambda: _dbt_ok(kpi_run)), 1)
        results["kpi_partition_run_with_vars_seconds"] = round(
            _seconds(lambda: _dbt_ok([*kpi_run, "--vars", json.dumps(dates)])), 1
        )
        _dbt_ok(["parse"])  # back to the project's own parse, as the next build finds it

        # The nightly full refresh over the warehouse built so far: unlike the first full build,
        # replication builds each table beside the live one, finds the rows PostgreSQL deleted since
        # (tombstones) and swaps it in.
        print("nightly full refresh over the existing warehouse ...", flush=True)
        log.clear()
        results["nightly_full_build"] = _full_build(build, log)

        # As a BI tool reads: the read-only user, whose every query the server checks against its grants.
        print("dashboard queries (as the read-only BI user) ...", flush=True)
        client = clickhouse_connect.get_client(
            host=clickhouse["host"],
            port=clickhouse["port"],
            username=clickhouse["readonly_user"],
            password=clickhouse["readonly_password"],
        )
        latencies: dict[str, list[float]] = {}
        for name, query in DASHBOARD_QUERIES.items():
            client.query(query)  # warm-up
            latencies[name] = [1000 * _seconds(lambda q=query: client.query(q)) for _ in range(20)]
        every = [value for values in latencies.values() for value in values]
        results["dashboard_ms"] = {
            "p50": round(_percentile(every, 0.5), 1),
            "p95": round(_percentile(every, 0.95), 1),
            "per_query_p95": {
                name: round(_percentile(values, 0.95), 1) for name, values in latencies.items()
            },
        }
    finally:
        launcher.stop(home)
        postgres.stop(home)
        if args.keep:
            print(f"stack kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / f"{args.name}.md").write_text(_markdown(results))
    print(json.dumps(results, indent=2, ensure_ascii=False))


def _markdown(results: dict) -> str:
    full, incremental, dash = results["full_build"], results["incremental_build"], results["dashboard_ms"]
    unchanged, recent = results["unchanged_build"], results["incremental_build_recent"]
    nightly = results["nightly_full_build"]
    lines = [
        "# Warehouse benchmark",
        "",
        f"Synthetic CRM in PostgreSQL: {results['customers']:,} customers, {results['conversations']:,} conversations "
        f"({results['cpu_count']} CPUs, embedded PostgreSQL 18 and the chDB-backed local ClickHouse server).",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| full build (replication + dbt build --full-refresh, tests included) | {full['total_seconds']} s "
        f"(replication {full['replication_seconds']} s, dbt {full['dbt_build_seconds']} s) | |",
        f"| PostgreSQL: seed views + daily KPI equivalent | {sum(results['postgres_equivalent_seconds'].values()):.1f} s "
        f"{results['postgres_equivalent_seconds']} | |",
        f"| full build / PostgreSQL | {results['full_build_vs_postgres_ratio']} | |",
        f"| incremental build after 1% new rows: replication + `dbt run` of {incremental['models_run']} models "
        f"downstream of {len(incremental['changed_tables'])} changed tables, no tests | {incremental['total_seconds']} s "
        f"(replication {incremental['replication_seconds']} s, dbt {incremental['dbt_seconds']} s) | |",
        f"| incremental / full | {100 * results['incremental_vs_full_share']:.1f} % | <= 10 % |",
        f"| the same after 1% new rows all stamped within the last day (as an hourly refresh meets them) | "
        f"{recent['total_seconds']} s (replication {recent['replication_seconds']} s, dbt {recent['dbt_seconds']} s; "
        f"{100 * results['incremental_recent_vs_full_share']:.1f} % of full) | |",
        f"| build with no new rows (replication only, dbt skipped) | {unchanged['total_seconds']} s | |",
        f"| `dbt source freshness` (reported by each `funnelhouse build`, timed apart) | "
        f"{results['source_freshness_seconds']} s | |",
        f"| `funnelhouse build` with its freshness report, after 1% new recent rows: the report beside the models / "
        f"after them (as before) | {results['build_with_freshness_beside']} s / {results['build_with_freshness_after']} s | |",
        f"| floor of an incremental build with dbt as a process: the no-change build's replication + a `dbt run` "
        f"selecting nothing ({results['dbt_invocation_floor_seconds']} s) | "
        f"{100 * results['incremental_floor_vs_full_share']:.1f} % of full | |",
        f"| the incremental `dbt run` again with no new rows: as a process / warm in a process that has imported dbt "
        f"and parsed the project (a long-lived dbt worker; not how builds run) | "
        f"{results['incremental_dbt_as_process_seconds']} s / {results['incremental_dbt_warm_seconds']} s | |",
        f"| nightly full refresh over the existing warehouse (replication builds each table beside the live one, "
        f"with tombstones for deleted rows) | {nightly['total_seconds']} s (replication {nightly['replication_seconds']} s, "
        f"dbt {nightly['dbt_build_seconds']} s) | |",
        f"| KPI partition run (`dbt run` of the KPI mart for yesterday and today): dates in dbt's environment, as "
        f"Dagster passes them / the same as `--vars` (dbt re-parses the project) | "
        f"{results['kpi_partition_run_seconds']} s / {results['kpi_partition_run_with_vars_seconds']} s | |",
        f"| dashboard queries as `bi_reader` p50 / p95 (10 queries x 20 runs) | {dash['p50']} ms / {dash['p95']} ms | p95 < 100 ms |",
        "",
        f"Incremental dbt command: `dbt {incremental['dbt_command']}`.",
        "",
        f"Where the incremental build's time goes: dbt ran its models for {incremental['dbt_elapsed_seconds']} s "
        f"of its {incremental['dbt_seconds']} s (the rest is dbt's start-up, parsing and artifacts); slowest models (s): "
        + ", ".join(f"{name} {seconds}" for name, seconds in list(incremental["model_seconds"].items())[:6])
        + "; slowest replicated tables (s): "
        + ", ".join(
            f"{name} {seconds}"
            for name, seconds in sorted(
                incremental["replication_table_seconds"].items(), key=lambda item: -item[1]
            )[:4]
        )
        + ".",
        "",
        f"With the new rows all within the last day, dbt ran its models for {recent['dbt_elapsed_seconds']} s of "
        f"its {recent['dbt_seconds']} s; slowest models (s): "
        + ", ".join(f"{name} {seconds}" for name, seconds in list(recent["model_seconds"].items())[:6])
        + ".",
        "",
        "Per-query p95 (ms): "
        + ", ".join(f"{name} {value}" for name, value in dash["per_query_p95"].items()),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
