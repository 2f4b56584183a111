"""Jobs select by group and asset, never by hand-listed dbt models."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.warehouse.checks import reconciliation_checks
from orchestration.defs.warehouse.dbt_assets import KPI_MART
from orchestration.defs.warehouse.dbt_environment import MANIFEST
from orchestration.defs.warehouse.freshness_checks import replication_freshness_checks
from orchestration.defs.warehouse.replication_assets import REPLICATION_GROUP

# The groups of the dbt models (translator.py: one per folder). A model outside them would be left out
# of the hourly and nightly jobs, and the hourly op, not running every model of its own, would never
# record its refresh mark (tests/warehouse/test_definitions.py checks every model is in one).
WAREHOUSE_MODEL_GROUPS = ("staging", "intermediate", "marts_core", "marts_reporting")

# The replication freshness checks (freshness_checks.py) are their own job's: selecting the raw
# assets' group would select them too, and each refresh and build would judge (and alert) again what
# the hourly freshness run does, right after a replication that made every table fresh.
_freshness = dg.AssetSelection.checks(*replication_freshness_checks)
_unpartitioned_warehouse = (
    dg.AssetSelection.groups(REPLICATION_GROUP)
    | (dg.AssetSelection.groups(*WAREHOUSE_MODEL_GROUPS) - dg.AssetSelection.assets(KPI_MART))
) - _freshness

# Only the models downstream of changed raw tables run, without tests (dbt_plan.py); incremental
# models rebuild only the months replication touched. The reconciliation checks, reading the seed's
# PostgreSQL views whole, are the nightly build's (defined only with a manifest, as the marts they
# check: definitions.py); the dbt tests stay selected (the op runs none).
_nightly_only = dg.AssetSelection.checks(*reconciliation_checks if MANIFEST.exists() else [])
hourly_refresh_job = dg.define_asset_job(
    "warehouse_hourly_refresh",
    selection=_unpartitioned_warehouse - _nightly_only,
    description=(
        "Replicate the changes since the last run, then dbt run the models downstream of the raw "
        "tables changed since the last build, of changed model definitions and, once the UTC day rolled "
        "over, of the date-relative models (none of these: dbt is skipped). No tests, no reconciliation "
        "with PostgreSQL: nightly."
    ),
)

nightly_full_build_job = dg.define_asset_job(
    "warehouse_nightly_full_build",
    selection=_unpartitioned_warehouse,
    config={"ops": {"warehouse_dbt_models": {"config": {"full_refresh": True}}}},
    description=(
        "Replicate, then dbt build --full-refresh: every model recomputed from raw, every data test."
    ),
)

kpi_daily_job = dg.define_asset_job(
    "warehouse_kpi_daily",
    selection=dg.AssetSelection.assets(KPI_MART),
    description="Daily partitions of mart_kpi_employee_daily; backfill a date range from the UI.",
)

# Defined only with a manifest, as its checks (definitions.py).
replication_freshness_job = dg.define_asset_job(
    "warehouse_replication_freshness",
    selection=_freshness,
    description=(
        "Only the replication freshness checks: how far behind PostgreSQL each raw table is, against "
        "the crm source's warn_after / error_after. Replicates nothing, runs no dbt."
    ),
)
