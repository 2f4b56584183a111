"""Jobs select by group, kind (every dbt asset) and asset, never by hand-listed dbt models."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.warehouse.checks import reconciliation_checks
from orchestration.defs.warehouse.dbt_assets import KPI_MART, MODELS_OP
from orchestration.defs.warehouse.dbt_environment import MANIFEST
from orchestration.defs.warehouse.freshness_checks import replication_freshness_checks
from orchestration.defs.warehouse.replication_assets import REPLICATION_GROUP

# How long a run may last before run monitoring (devstack/dagster.yaml) fails it: a run whose worker died
# (`dagster dev` restarted, a reboot) stays STARTED and holds the `warehouse` pool until then. Far above
# real runs: a full build, replication and `dbt build --full-refresh`, takes 20 s for 5.65 M rows and
# 49 s for twice that (docs/warehouse.md), and an hourly refresh or a KPI run does less.
HOUR = 60 * 60
# At most two hourly refreshes lost to a dead run.
REFRESH_MAX_RUNTIME = {dg.MAX_RUNTIME_SECONDS_TAG: str(2 * HOUR)}
# Started at 02:30 on the team's clock, a dead one frees the pool by 06:30, before the report hour
# (09:00 by default) and early enough for the refreshes the reports wait for.
FULL_BUILD_MAX_RUNTIME = {dg.MAX_RUNTIME_SECONDS_TAG: str(4 * HOUR)}
# Also the nightly rebuild of every KPI partition in one run (a full refresh of one mart).
KPI_MAX_RUNTIME = {dg.MAX_RUNTIME_SECONDS_TAG: str(2 * HOUR)}
# Read-only checks of a few seconds, every hour.
FRESHNESS_MAX_RUNTIME = {dg.MAX_RUNTIME_SECONDS_TAG: str(HOUR)}

# The dbt assets by the kind dagster-dbt gives every one of them (each model and seed of the manifest),
# not by their groups (translator.py: one per folder): a model in a folder of its own (the root of
# models/marts is group "marts") is in the jobs as soon as it is in the project. Selected by groups,
# such a model was built by no job, and the hourly op, running some of its models only, recorded no
# refresh mark (dbt_assets.py): the reports waited for one. So every model is built by Dagster.
DBT_KIND = "dbt"
_dbt_models = dg.AssetSelection.kind(DBT_KIND) - dg.AssetSelection.assets(KPI_MART)

# The replication freshness checks (freshness_checks.py) are their own job's: selecting the raw
# assets' group would select them too, and each refresh and build would judge (and alert) again what
# the hourly freshness run does, right after a replication that made every table fresh.
_freshness = dg.AssetSelection.checks(*replication_freshness_checks)
_unpartitioned_warehouse = (dg.AssetSelection.groups(REPLICATION_GROUP) | _dbt_models) - _freshness

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
    tags=REFRESH_MAX_RUNTIME,
)

nightly_full_build_job = dg.define_asset_job(
    "warehouse_nightly_full_build",
    selection=_unpartitioned_warehouse,
    config={"ops": {MODELS_OP: {"config": {"full_refresh": True}}}},
    description=(
        "Replicate, then dbt build --full-refresh: every model recomputed from raw, every data test."
    ),
    tags=FULL_BUILD_MAX_RUNTIME,
)

kpi_daily_job = dg.define_asset_job(
    "warehouse_kpi_daily",
    selection=dg.AssetSelection.assets(KPI_MART),
    description="Daily partitions of mart_kpi_employee_daily; backfill a date range from the UI.",
    tags=KPI_MAX_RUNTIME,
)

# Defined only with a manifest, as its checks (definitions.py).
replication_freshness_job = dg.define_asset_job(
    "warehouse_replication_freshness",
    selection=_freshness,
    description=(
        "Only the replication freshness checks: how far behind PostgreSQL each raw table is, against "
        "the crm source's warn_after / error_after. Replicates nothing, runs no dbt."
    ),
    tags=FRESHNESS_MAX_RUNTIME,
)
