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
   imported and the project parsed beforehand: what a long-lived dbt worker would pay); then, with the
   stack's warm dbt server running (every dbt command forked from a process that imported dbt once),
   1% new rows over the year and an incremental build, and the floor again;
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
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Each step's code is in a module beside this one (bench/ is on sys.path when this runs as a script):
# the data in warehouse_data.py, PostgreSQL's side in warehouse_postgres_equivalent.py, the builds in
# warehouse_builds.py, the dashboard queries in warehouse_dashboard.py, the files in warehouse_results.py.
from warehouse_builds import (
    dbt_as_process_and_warm,
    full_build_figures,
    time_builds_with_warm_dbt,
    time_incremental_builds,
    time_kpi_partition_runs,
    time_unchanged_build_and_dbt_floor,
)
from warehouse_dashboard import dashboard_latencies
from warehouse_data import SyntheticCrm, add_reference_rows
from warehouse_postgres_equivalent import postgres_equivalent_seconds
from warehouse_results import write_results
from warehouse_timing import seconds

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import postgres  # noqa: E402
from devstack.clickhouse import launcher  # noqa: E402
from ingestion.schema import migrate  # noqa: E402


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

        dsn = environment.pg_dsn()
        migrate.apply(dsn, log=lambda *_: None)
        print("loading PostgreSQL ...", flush=True)
        crm = SyntheticCrm(dsn, args.customers, args.conversations)
        results["load_seconds"] = round(seconds(crm.load_initial), 1)
        results["postgres_rows"] = add_reference_rows(dsn)

        log: list[str] = []
        print("full build ...", flush=True)
        results["full_build"] = full_build_figures(log)

        print("PostgreSQL equivalent ...", flush=True)
        postgres_seconds = postgres_equivalent_seconds(dsn)
        results["postgres_equivalent_seconds"] = postgres_seconds
        postgres_total = sum(postgres_seconds.values())
        results["full_build_vs_postgres_ratio"] = round(
            results["full_build"]["total_seconds"] / postgres_total, 2
        )

        incremental_arguments = time_incremental_builds(results, crm, log)
        time_unchanged_build_and_dbt_floor(results, log)

        # The last incremental dbt command once more with no new rows (the table models rebuild whole,
        # the incremental facts find nothing): as a process, and warm in this process.
        print("the incremental dbt command again: as a process vs warm in-process ...", flush=True)
        results["incremental_dbt_as_process_seconds"], results["incremental_dbt_warm_seconds"] = (
            dbt_as_process_and_warm(incremental_arguments)
        )

        time_builds_with_warm_dbt(results, crm, log, home)
        time_kpi_partition_runs(results)

        # The nightly full refresh over the warehouse built so far: unlike the first full build,
        # replication builds each table beside the live one, finds the rows PostgreSQL deleted since
        # (tombstones) and swaps it in.
        print("nightly full refresh over the existing warehouse ...", flush=True)
        log.clear()
        results["nightly_full_build"] = full_build_figures(log)

        print("dashboard queries (as the read-only BI user) ...", flush=True)
        results["dashboard_ms"] = dashboard_latencies(clickhouse)
    finally:
        launcher.stop(home)
        postgres.stop(home)
        if args.keep:
            print(f"stack kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    write_results(results, args.name)


if __name__ == "__main__":
    main()
