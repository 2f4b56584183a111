"""Report ticks the daemon missed: Dagster evaluates only the last of a schedule's ticks missed while
its daemon was down (none of these schedules has a partition set to catch up by), so a daemon down
across two report hours would leave the earlier period unreported, with no failed run to say so."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.storage.tags import PARTITION_NAME_TAG, SCHEDULE_NAME_TAG

from orchestration.defs.reports.schedules import CATCH_UP_PERIODS

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def repository():
    from orchestration.definitions import defs

    return defs.get_repository_def()


def _asked(repository, instance, schedule_name: str, at: datetime) -> list[str]:
    """The partitions a tick at ``at`` asks for, each under its own run key."""
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, repository_def=repository
    ) as context:
        requests = repository.get_schedule_def(schedule_name).evaluate_tick(context).run_requests
    assert all(request.run_key == request.partition_key for request in requests)
    return [request.partition_key for request in requests]


def _asked_before(instance, schedule_name: str, partition: str) -> None:
    """A run the schedule launched for ``partition`` (its tags are all the next tick reads)."""
    instance.add_run(
        dg.DagsterRun(
            job_name="any",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.SUCCESS,
            tags={SCHEDULE_NAME_TAG: schedule_name, PARTITION_NAME_TAG: partition},
        )
    )


def test_a_tick_after_the_daemon_was_down_asks_for_the_periods_it_missed(repository):
    daily, weekly = "daily_kpi_reports_schedule", "weekly_kpi_reports_schedule"
    friday_nine = datetime(2026, 11, 27, 9, tzinfo=SHANGHAI)
    with dg.instance_for_test() as instance:
        # never asked for anything (a first deployment): the newest ended day only, no old reports
        assert _asked(repository, instance, daily, friday_nine) == ["2026-11-26"]
        # the last tick that ran asked for Monday's report; Tuesday's and Wednesday's were missed
        _asked_before(instance, daily, "2026-11-23")
        _asked_before(instance, daily, "2026-11-20")  # an older period's run re-executed by hand since
        assert _asked(repository, instance, daily, friday_nine) == ["2026-11-24", "2026-11-25", "2026-11-26"]
        _asked_before(instance, daily, "2026-11-26")  # the same tick evaluated again: nothing more
        assert _asked(repository, instance, daily, friday_nine) == ["2026-11-26"]

        _asked_before(instance, weekly, "2026-11-02")  # down over a Monday: that week's report too
        monday_nine = datetime(2026, 11, 23, 9, tzinfo=SHANGHAI)
        assert _asked(repository, instance, weekly, monday_nine) == ["2026-11-09", "2026-11-16"]

    with dg.instance_for_test() as instance:  # down for weeks: the newest periods, within a bound
        _asked_before(instance, daily, "2026-10-01")
        asked = _asked(repository, instance, daily, friday_nine)
        assert len(asked) == CATCH_UP_PERIODS and asked[-1] == "2026-11-26"
