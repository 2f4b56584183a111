"""The nightly warehouse builds run on the team's clock, FUNNELHOUSE_TIMEZONE; the hourly ones on UTC
(their ticks interlock with the UTC days of the KPI partitions: schedules.py)."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from dagster._utils.schedules import cron_string_iterator

from orchestration.defs.warehouse import schedules

NIGHTLY_BUILD, NIGHTLY_KPI = "warehouse_nightly_full_build_schedule", "warehouse_kpi_nightly_rebuild_schedule"


@pytest.fixture
def schedules_on(monkeypatch):
    """The warehouse schedules as a deployment with FUNNELHOUSE_TIMEZONE set to a zone builds them
    (the nightly build's zone is read when the module is imported: reloaded, not the whole location)."""

    def build(zone: str | None) -> dict:
        if zone is None:
            monkeypatch.delenv("FUNNELHOUSE_TIMEZONE", raising=False)
        else:
            monkeypatch.setenv("FUNNELHOUSE_TIMEZONE", zone)
        module = importlib.reload(schedules)
        built = [
            module.hourly_refresh_schedule,
            module.nightly_full_build_schedule,
            module.kpi_daily_schedule(),
            module.kpi_nightly_schedule(),
        ]
        return {schedule.name: schedule for schedule in built}

    yield build
    monkeypatch.undo()
    importlib.reload(schedules)  # as the rest of the process imported it


def _first_tick(schedule, after: dt.datetime) -> dt.datetime:
    ticks = cron_string_iterator(after.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    return next(ticks).astimezone(dt.UTC)


def test_the_nightly_builds_run_on_the_configured_zone_the_hourly_ones_on_utc(schedules_on):
    # Newfoundland: 3 h 30 behind UTC in November (its summer time over), far from the default zone
    found = schedules_on("America/St_Johns")
    zones = {name: schedule.execution_timezone for name, schedule in found.items()}
    assert zones == {
        NIGHTLY_BUILD: "America/St_Johns",
        NIGHTLY_KPI: "America/St_Johns",
        "warehouse_hourly_refresh_schedule": "UTC",
        "warehouse_kpi_daily_schedule": "UTC",
    }
    # ... and Dagster ticks on it: 02:30 and 03:30 in St. John's
    midnight = dt.datetime(2026, 11, 10, tzinfo=dt.UTC)
    assert _first_tick(found[NIGHTLY_BUILD], midnight) == dt.datetime(2026, 11, 10, 6, 0, tzinfo=dt.UTC)
    assert _first_tick(found[NIGHTLY_KPI], midnight) == dt.datetime(2026, 11, 10, 7, 0, tzinfo=dt.UTC)

    unset = schedules_on(None)  # the sales team's zone by default
    assert {unset[NIGHTLY_BUILD].execution_timezone, unset[NIGHTLY_KPI].execution_timezone} == {
        "Asia/Shanghai"
    }
