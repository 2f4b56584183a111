"""The warehouse domain's Dagster definitions (here, not in the package's ``__init__``: see
``orchestration.definitions``)."""

import dagster as dg

from orchestration.defs.warehouse.checks import reconciliation_checks
from orchestration.defs.warehouse.dbt_assets import build_dbt_assets
from orchestration.defs.warehouse.freshness_checks import replication_freshness_checks
from orchestration.defs.warehouse.jobs import (
    hourly_refresh_job,
    kpi_daily_job,
    nightly_full_build_job,
    replication_freshness_job,
)
from orchestration.defs.warehouse.replication_assets import replication_assets
from orchestration.defs.warehouse.resources import dbt_resource
from orchestration.defs.warehouse.schedules import (
    hourly_refresh_schedule,
    kpi_daily_schedule,
    kpi_nightly_schedule,
    nightly_full_build_schedule,
    replication_freshness_schedule,
)

_dbt_assets = build_dbt_assets()
# Without a manifest there are no dbt ops to configure (nightly --full-refresh) or partitions to run.
_dbt_jobs = [nightly_full_build_job, kpi_daily_job] if _dbt_assets else []
_dbt_schedules = (
    [nightly_full_build_schedule, kpi_daily_schedule(), kpi_nightly_schedule()] if _dbt_assets else []
)
# The freshness checks' bounds are the manifest's too (freshness_checks.py): none without one.
_freshness_jobs = [replication_freshness_job] if replication_freshness_checks else []
_freshness_schedules = [replication_freshness_schedule] if replication_freshness_checks else []

defs = dg.Definitions(
    assets=[*replication_assets, *_dbt_assets],
    asset_checks=[*(reconciliation_checks if _dbt_assets else []), *replication_freshness_checks],
    jobs=[hourly_refresh_job, *_dbt_jobs, *_freshness_jobs],
    schedules=[hourly_refresh_schedule, *_dbt_schedules, *_freshness_schedules],
    resources={"dbt": dbt_resource()},
)
