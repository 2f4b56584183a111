"""The warehouse schedules when an earlier run has not ended: a nightly full build that runs into the
next hourly ticks must not find a refresh and a KPI run queued behind it for every hour it took."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from orchestration.defs.warehouse import dbt_assets as dbt_assets_module
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT

pytestmark = pytest.mark.skipif(
    not dbt_assets_module.MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)

# 03:45 UTC: the KPI schedule's tick of 2026-11-01; the refresh's ticks are at :15 on any clock.
AT = dt.datetime(2026, 11, 1, 3, 45, tzinfo=dt.UTC)
TODAY = "2026-11-01"


def _under_way(
    instance, job_name: str, tags: dict[str, str] | None = None, assets: list[dg.AssetKey] | None = None
) -> dg.DagsterRun:
    """A run record as the daemon makes it (its status, tags and asset selection are all a schedule
    reads)."""
    return instance.add_run(
        dg.DagsterRun(
            job_name=job_name,
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags=tags or {},
            asset_selection=frozenset(assets) if assets else None,
        )
    )


@pytest.fixture(scope="module")
def repository():
    from orchestration.definitions import defs

    return defs.get_repository_def()


@pytest.fixture
def tick(repository):
    """Evaluates a schedule's tick at AT on an instance of this test's own."""
    with dg.instance_for_test() as instance:  # (a schedule's context holds a reference to one)

        def evaluate(schedule_name: str):
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=AT, repository_def=repository
            ) as context:
                return repository.get_schedule_def(schedule_name).evaluate_tick(context)

        evaluate.instance = instance
        yield evaluate


REFRESH, KPI = "warehouse_hourly_refresh_schedule", "warehouse_kpi_daily_schedule"


def test_the_hourly_refresh_waits_for_a_nightly_build_or_refresh_not_ended(tick):
    assert len(tick(REFRESH).run_requests) == 1  # nothing under way
    nightly = _under_way(tick.instance, "warehouse_nightly_full_build")
    skipped = tick(REFRESH)
    assert not skipped.run_requests and nightly.run_id[:8] in skipped.skip_message
    tick.instance.report_run_failed(nightly)  # ended (however): the next tick refreshes again
    assert len(tick(REFRESH).run_requests) == 1

    earlier = _under_way(tick.instance, "warehouse_hourly_refresh")
    assert not tick(REFRESH).run_requests
    tick.instance.report_run_canceled(earlier)
    assert len(tick(REFRESH).run_requests) == 1


def test_the_hourly_kpi_run_waits_only_for_a_run_that_builds_today(tick):
    (request,) = tick(KPI).run_requests
    assert request.partition_key == TODAY
    # a backfill of older days, a nightly full build: they do not build today's KPIs
    backfill = _under_way(
        tick.instance,
        "warehouse_kpi_daily",
        {ASSET_PARTITION_RANGE_START_TAG: "2026-09-01", ASSET_PARTITION_RANGE_END_TAG: "2026-09-30"},
    )
    _under_way(tick.instance, "warehouse_nightly_full_build")
    assert len(tick(KPI).run_requests) == 1

    last_hour = _under_way(tick.instance, "warehouse_kpi_daily", {PARTITION_NAME_TAG: TODAY})
    skipped = tick(KPI)
    assert not skipped.run_requests and last_hour.run_id[:8] in skipped.skip_message
    tick.instance.report_run_failed(last_hour)
    every_day = _under_way(
        tick.instance,
        "warehouse_kpi_daily",
        {ASSET_PARTITION_RANGE_START_TAG: "2024-01-01", ASSET_PARTITION_RANGE_END_TAG: TODAY},
    )
    assert not tick(KPI).run_requests  # the nightly rebuild of every partition holds today
    tick.instance.report_run_failed(every_day)
    tick.instance.report_run_failed(backfill)
    assert len(tick(KPI).run_requests) == 1


# A materialisation started by hand in the UI, or an asset backfill, runs in Dagster's implicit job.
ASSET_JOB = "__ASSET_JOB"


def test_the_ticks_wait_for_their_assets_materialised_in_another_job(tick):
    """A UI materialisation or a backfill of the same assets waits for the writer lock as the
    schedule's own run would, and builds what it would: no second run queued behind it."""
    kpi, model = dg.AssetKey(dbt_assets_module.KPI_MART), dg.AssetKey("dim_customers")
    yesterday = _under_way(tick.instance, ASSET_JOB, {PARTITION_NAME_TAG: "2026-10-31"}, [kpi])
    assert len(tick(KPI).run_requests) == 1  # another day's KPIs: today's still due
    by_hand = _under_way(tick.instance, ASSET_JOB, {PARTITION_NAME_TAG: TODAY}, [kpi])
    skipped = tick(KPI)
    assert not skipped.run_requests and by_hand.run_id[:8] in skipped.skip_message
    assert len(tick(REFRESH).run_requests) == 1  # the KPI mart is no asset of the refresh
    tick.instance.report_run_canceled(by_hand)
    backfill = _under_way(
        tick.instance,
        ASSET_JOB,
        {ASSET_PARTITION_RANGE_START_TAG: "2026-10-01", ASSET_PARTITION_RANGE_END_TAG: TODAY},
        [kpi],
    )
    skipped = tick(KPI)  # a backfill run of a range holding today
    assert not skipped.run_requests and backfill.run_id[:8] in skipped.skip_message
    tick.instance.report_run_failed(backfill)
    tick.instance.report_run_failed(yesterday)
    assert len(tick(KPI).run_requests) == 1

    one_model = _under_way(tick.instance, ASSET_JOB, assets=[model])
    skipped = tick(REFRESH)
    assert not skipped.run_requests and one_model.run_id[:8] in skipped.skip_message
    assert len(tick(KPI).run_requests) == 1  # no KPI partition in it
    tick.instance.report_run_canceled(one_model)
    assert len(tick(REFRESH).run_requests) == 1


def test_the_nightly_kpi_run_rebuilds_the_whole_mart(tick):
    """Every partition, and the days before the first one (a CRM older than FUNNELHOUSE_KPI_FIRST_DAY):
    a build of the partitions' range alone would leave those as they were."""
    (request,) = tick("warehouse_kpi_nightly_rebuild_schedule").run_requests
    assert request.run_config == {"ops": {dbt_assets_module.KPI_OP: {"config": {"full_refresh": True}}}}
    assert (
        request.tags[ASSET_PARTITION_RANGE_START_TAG]
        == dbt_assets_module.KPI_PARTITIONS.get_first_partition_key()
    )


def test_the_first_kpi_partition_is_configurable_and_a_bad_day_named(monkeypatch):
    from orchestration import environment

    assert environment.kpi_first_day() == "2024-01-01"
    monkeypatch.setenv(environment.KPI_FIRST_DAY_VARIABLE, "2019-06-01")
    assert environment.kpi_first_day() == "2019-06-01"
    monkeypatch.setenv(environment.KPI_FIRST_DAY_VARIABLE, "June 2019")
    with pytest.raises(ValueError, match="FUNNELHOUSE_KPI_FIRST_DAY must be a day as YYYY-MM-DD"):
        environment.kpi_first_day()


# Each team clock prints the tick times of the hourly refresh and of the KPI run (both imported with
# FUNNELHOUSE_TIMEZONE set, as a deployment would): a zone half an hour or 45 minutes off UTC included.
_TICKS_ON_TEAM_CLOCKS = """
import datetime as dt, importlib, json, os
from dagster._utils.schedules import cron_string_iterator
import orchestration.defs.warehouse.schedules as schedules

def ticks(schedule, count=48):
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()
    times = cron_string_iterator(start, schedule.cron_schedule, schedule.execution_timezone)
    return [next(times).timestamp() for _ in range(count)]

found = {}
for zone in ("Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"):
    os.environ["FUNNELHOUSE_TIMEZONE"] = zone
    importlib.reload(schedules)
    found[zone] = {"refresh": ticks(schedules.hourly_refresh_schedule), "kpi": ticks(schedules.kpi_daily_schedule())}
print(json.dumps(found))
"""


def test_the_hourly_kpi_run_follows_the_refresh_by_half_an_hour_on_any_team_clock():
    """The KPI run reads the models the refresh built half an hour before; on the team's clock the
    refresh's :15 was the KPI run's :45 UTC in Asia/Kolkata (both at once) and :00 UTC in Kathmandu."""
    printed = subprocess.run(
        [sys.executable, "-c", _TICKS_ON_TEAM_CLOCKS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for zone, ticks in json.loads(printed).items():
        kpi = set(ticks["kpi"])
        late = [refresh for refresh in ticks["refresh"][:24] if refresh + 30 * 60 not in kpi]
        assert not late, f"{zone}: refresh ticks with no KPI run 30 minutes later: {late[:3]}"
