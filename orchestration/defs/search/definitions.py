"""The search domain's Dagster definitions (here, not in the package's ``__init__``: see
``orchestration.definitions``)."""

import dagster as dg

from orchestration.defs.search.assets import conversations_search_index, search_rebuild_job, search_sync_job
from orchestration.defs.search.checks import counts_per_day_match
from orchestration.defs.search.resources import SearchResource
from orchestration.defs.search.schedules import nightly_search_rebuild
from orchestration.defs.search.sensors import search_changes_sensor

defs = dg.Definitions(
    assets=[conversations_search_index],
    asset_checks=[counts_per_day_match],
    jobs=[search_sync_job, search_rebuild_job],
    sensors=[search_changes_sensor],
    schedules=[nightly_search_rebuild],
    resources={"search_index": SearchResource()},
)
