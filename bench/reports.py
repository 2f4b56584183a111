"""Benchmark: render and mail the daily KPI reports of 50 managers (+1 admin) on a 100,000-customer dataset.

Goal (issue 7): under 60 s on 2 cores. Measures wall time per phase (gather from the marts, render with
charts and PDF, MIME + SMTP + ledger) and the peak memory (RSS) of the reporting process.

By default it builds marts of the reports' shape at that scale on a throwaway local stack (ClickHouse,
PostgreSQL, SMTP sink): 100,000 customers, 2,000 employees (the generator's 50 customers each) over
60 days, 10 managers in each of the 5 departments. ``--use-stack`` instead reports on the marts of
the running stack (``funnelhouse up`` + ingest + dbt build), with its employees table.

    .venv/bin/python bench/reports.py [--customers 100000] [--use-stack] [--date YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results"
BENCH_DATABASE = "bench_report_marts"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _throwaway_stack(home: Path, customers: int):
    from devstack import postgres, smtp
    from devstack.clickhouse import launcher

    os.environ["FUNNELHOUSE_HOME"] = str(home)

    def stop():
        smtp.stop(home)
        postgres.stop(home)
        launcher.stop(home)

    try:  # a failure while the stack is being filled stops it: no servers left on a deleted home
        return _fill_stack(home, customers, stop)
    except BaseException:
        stop()
        raise


def _fill_stack(home: Path, customers: int, stop):
    from devstack import postgres, smtp
    from devstack.clickhouse import launcher
    from ingestion.reports.data import MartReader, connect
    from ingestion.schema import migrate
    from orchestration.environment import ClickHouseSettings
    from tests.reports import sample_marts

    clickhouse = launcher.start(home)
    pg = postgres.start(home)
    smtp.start(home)
    migrate.apply(pg["dsn"], log=lambda *_: None)
    settings = ClickHouseSettings(
        clickhouse["host"], int(clickhouse["port"]), clickhouse["user"], clickhouse["password"]
    )
    client = connect(settings, database="default")
    employees = customers // 50
    people = sample_marts.employees(
        per_department=employees // len(sample_marts.DEPARTMENTS), managers_per_department=10
    )
    started = time.perf_counter()
    sample_marts.build(client, BENCH_DATABASE, customers=customers, days=60, people=people)
    build_seconds = time.perf_counter() - started
    sample_marts.insert_employees(pg["dsn"], people)
    os.environ["FUNNELHOUSE_PG_DSN"] = pg["dsn"]
    rows = client.query(f"SELECT count() FROM {BENCH_DATABASE}.mart_kpi_employee_daily").first_row[0]

    return (
        MartReader(client, BENCH_DATABASE),
        pg["dsn"],
        stop,
        {
            "dataset": "synthetic marts (tests/reports/sample_marts.py)",
            "customers": customers,
            "employees": len(people),
            "kpi_rows": rows,
            "marts_build_seconds": round(build_seconds, 1),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--use-stack", action="store_true")
    parser.add_argument("--date", default=None)
    arguments = parser.parse_args()

    from ingestion.reports import content, delivery, pipeline, render
    from ingestion.reports.ledger import Ledger
    from ingestion.reports.periods import Period
    from ingestion.reports.recipients import resolve
    from orchestration import environment

    with tempfile.TemporaryDirectory(prefix="bench-reports-") as scratch:
        home = Path(scratch)
        if arguments.use_stack:
            from ingestion.reports.data import MartReader, connect
            from orchestration.defs.reports.runner import marts_database

            reader = MartReader(
                connect(environment.clickhouse_settings(), marts_database()), marts_database()
            )
            dsn, stop, dataset = environment.pg_dsn(), (lambda: None), {"dataset": "running stack marts"}
        else:
            os.chmod(home, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
            reader, dsn, stop, dataset = _throwaway_stack(home, arguments.customers)
        try:
            day = date.fromisoformat(arguments.date) if arguments.date else reader.latest_kpi_day()
            period = Period.daily(day)
            recipients = resolve(dsn)
            managers = sum(1 for r in recipients if r.role == "manager")

            started = time.perf_counter()
            scopes = sorted({r.scope for r in recipients})
            for scope in scopes:
                content.gather(reader, scope, period, dsn)
            gather_seconds = time.perf_counter() - started
            sample = content.gather(reader, "all", period, dsn)
            started = time.perf_counter()
            render.render(sample, "zh")
            one_render_seconds = time.perf_counter() - started

            started = time.perf_counter()
            summary = pipeline.produce_reports(
                period,
                recipients,
                reader,
                sender="bench@funnelhouse.test",
                pg_dsn=dsn,
                smtp_settings=environment.smtp_settings(),
                ledger=Ledger(dsn),
                out_dir=home / "reports",
                resend=True,
                retry_policy=delivery.RetryPolicy(attempts=2, first_delay=0.1),
                progress=lambda _: None,
            )
            total_seconds = time.perf_counter() - started
        finally:
            stop()

    results = {
        **dataset,
        "period": period.key,
        "recipients": len(recipients),
        "managers": managers,
        "distinct_reports_rendered": len(summary.reports),
        "messages_sent": summary.count("sent"),
        "failed": len(summary.failed),
        "total_seconds": round(total_seconds, 2),
        "goal_seconds": 60,
        "gather_all_scopes_seconds": round(gather_seconds, 2),
        "one_render_with_pdf_seconds": round(one_render_seconds, 2),
        "mean_message_bytes": int(
            sum(o.size_bytes or 0 for o in summary.outcomes) / max(len(summary.outcomes), 1)
        ),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reports.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Daily KPI reports: render and send",
        "",
        f"{results['managers']} managers + admins = {results['recipients']} recipients, "
        f"{results['distinct_reports_rendered']} distinct reports (one per scope and language), "
        f"{dataset.get('customers', '?')} customers.",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in results.items()]
    (RESULTS / "reports.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
