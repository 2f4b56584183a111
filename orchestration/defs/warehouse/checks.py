"""Asset checks reconciling the seed-view marts with the seed's PostgreSQL views (see reconciliation.py;
the keys left out as changed since the build: changed_since_build.py)."""

import dagster as dg

from ingestion.replication.connections import clickhouse_client
from orchestration import environment
from orchestration.defs.warehouse.build import marts_schema
from orchestration.defs.warehouse.reconciliation import reconcile_customers, reconcile_employees
from orchestration.defs.warehouse.translator import model_asset_key


def _result(report) -> dg.AssetCheckResult:
    summary = report.summary()
    return dg.AssetCheckResult(
        passed=report.passed,
        metadata={
            key: dg.MetadataValue.json(value) if isinstance(value, list | dict) else value
            for key, value in summary.items()
        },
        description=(
            "Metric by metric against the seed view. Keys the view repeats (several funnel rows) are "
            "compared by the documented one-row rule: "
            + summary["rule"]
            + ". Changed since the build: "
            + summary["changed_since_build_rule"]
            + " (the marts hold PostgreSQL as of that cursor, the view is read live)."
        ),
    )


@dg.asset_check(
    asset=model_asset_key("mart_customer_overview"), name="matches_v_customer_overview", blocking=False
)
def customer_overview_matches_seed_view() -> dg.AssetCheckResult:
    return _result(reconcile_customers(environment.pg_dsn(), clickhouse_client(), marts_schema()))


@dg.asset_check(
    asset=model_asset_key("mart_employee_performance"), name="matches_v_employee_performance", blocking=False
)
def employee_performance_matches_seed_view() -> dg.AssetCheckResult:
    return _result(reconcile_employees(environment.pg_dsn(), clickhouse_client(), marts_schema()))


reconciliation_checks = [customer_overview_matches_seed_view, employee_performance_matches_seed_view]
