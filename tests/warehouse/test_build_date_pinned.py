"""One build date per build: every dbt process a build starts, and the plan deciding what it builds
(build_date.BuildDateMove), take the day from one reading of the clock when the build starts, so that a
build crossing midnight UTC builds and tests every model as of one day. A lone dbt command gets the
day it starts; a day the caller gives (FUNNELHOUSE_AS_OF_DATE, var as_of_date) wins. The refresh mark
a build records is of the day it built as of, pinned or given, so that the next build rebuilds the
date-relative models as of its own. No dbt and no servers (the clock is set, and dbt is a stand-in
that reports the environment it was handed), but for a rebuild as of another day on a real warehouse."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from unittest import mock

import dagster as dg
import pytest
from dagster_dbt import DbtCliResource
from typer.testing import CliRunner

from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client
from orchestration.cli import app
from orchestration.defs.warehouse import build, build_date, dbt_assets, dbt_plan, refresh_state, writers
from orchestration.defs.warehouse.build import marts_schema
from orchestration.defs.warehouse.build_date import BUILD_DATE_ENV
from orchestration.defs.warehouse.dbt_environment import MANIFEST, REPO_ROOT
from orchestration.defs.warehouse.model_definitions import DefinitionChanges

DAY = dt.date(2026, 3, 31)  # the clock's first reading; every later one is the next day
GIVEN = "2026-02-28"
MARK = dt.datetime(2026, 3, 30, 23)  # the last build's: the build date moved since


@pytest.fixture
def clock(monkeypatch):
    """The UTC day as the build date reads it: DAY on the first reading, the next day after it;
    ``clock()`` starts it again (for a second build)."""

    def restart():
        readings = iter([DAY])
        monkeypatch.setattr(build_date, "utc_today", lambda: next(readings, DAY + dt.timedelta(days=1)))

    restart()
    monkeypatch.delenv(BUILD_DATE_ENV, raising=False)
    return restart


@pytest.fixture
def no_warehouse(clock, tmp_path, monkeypatch):
    """The build's and the Dagster steps' reads and records of the warehouse, without a warehouse: the
    models were last built the day before DAY, and nothing changed since."""
    for name, value in {
        "FUNNELHOUSE_HOME": str(tmp_path / "home"),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "FUNNELHOUSE_CLICKHOUSE_HOST": "localhost",  # dbt_env() asks no embedded server
    }.items():
        monkeypatch.setenv(name, value)
    held = mock.Mock()
    monkeypatch.setattr(writers, "for_command", lambda *args, **kwargs: contextlib.nullcontext(held))
    monkeypatch.setattr(writers, "for_dagster_step", lambda context: contextlib.nullcontext(held))
    for module in (build, dbt_assets):
        monkeypatch.setattr(module, "clickhouse_client", lambda: None)
    for name, value in {
        "definition_changes": DefinitionChanges(),
        "tables_changed_since_refresh": [],
        "last_refresh": MARK,
        "models_refresh": refresh_state.Refresh(MARK),
        "raw_bounds": refresh_state.RawBounds({}, None),
        "record_build": None,
        "record_definitions": None,
        "record_kpi_refresh": None,
    }.items():
        monkeypatch.setattr(refresh_state, name, lambda *args, value=value, **kwargs: value)


def _dated_manifest() -> dict:
    spine = {
        "name": "spine",
        "resource_type": "model",
        "depends_on": {"macros": ["macro.funnelhouse.as_of_date"]},
    }
    return {
        "metadata": {"project_name": "funnelhouse"},
        "macros": {},
        "nodes": {"model.funnelhouse.spine": spine},
    }


def _build(monkeypatch, dbt_vars: str | None = None) -> tuple[list[str], dict[str, str | None]]:
    """``funnelhouse build`` (no replication, no freshness): its log, and the build date in the
    environment of each dbt command it ran, by command."""
    dates: dict[str, str | None] = {}

    def parsed_manifest(dbt_vars, log):  # the `dbt parse` the plan asks for when the date moved
        dates["parse"] = os.environ.get(BUILD_DATE_ENV)
        return _dated_manifest()

    def run_dbt(arguments, log=print, env=None):
        dates[arguments[0]] = (env or os.environ).get(BUILD_DATE_ENV)
        return 0

    monkeypatch.setattr(build, "parsed_manifest", parsed_manifest)
    monkeypatch.setattr(build, "run_dbt", run_dbt)
    log: list[str] = []
    assert build.build(skip_replication=True, freshness=False, dbt_vars=dbt_vars, log=log.append).ok
    return log, dates


def test_a_build_plans_and_runs_dbt_as_of_one_reading_of_the_clock(no_warehouse, monkeypatch):
    log, dates = _build(monkeypatch)
    assert f"build date moved from 2026-03-30 to {DAY}" in "\n".join(log)
    assert dates == {"parse": DAY.isoformat(), "run": DAY.isoformat()}  # not the next day's
    assert BUILD_DATE_ENV not in os.environ  # for this build only


def test_a_build_date_the_caller_gives_wins(no_warehouse, monkeypatch):
    monkeypatch.setenv(BUILD_DATE_ENV, GIVEN)
    log, dates = _build(monkeypatch)
    assert dates == {} and "dbt: nothing to run" in "\n".join(log)  # the mark is after the given day
    monkeypatch.delenv(BUILD_DATE_ENV)
    # var as_of_date: the plan reads it, and dbt gets it (it wins over the environment in the macro).
    monkeypatch.setattr(refresh_state, "last_refresh", lambda *args: dt.datetime(2026, 2, 27))
    log, dates = _build(monkeypatch, dbt_vars=f"{{as_of_date: {GIVEN}}}")
    assert f"build date moved from 2026-02-27 to {GIVEN}" in "\n".join(log)
    assert dates == {"parse": None, "run": None}


def test_a_build_crossing_midnight_before_dbt_starts_marks_the_day_it_built_as_of(no_warehouse, monkeypatch):
    """The build pins DAY, and its dbt starts after midnight UTC (the plan and the daily `dbt parse`
    took the day's last seconds): the refresh mark is of DAY, the day its date-relative models were
    built as of, so the next build, on the next day, rebuilds them. (A mark of the clock, of the next
    day, left them a day behind until the nightly build.)"""
    next_day = DAY + dt.timedelta(days=1)
    after_midnight = dt.datetime.combine(next_day, dt.time(0, 0, 2))
    monkeypatch.setattr(build, "utc_now", lambda: after_midnight)  # planned and started after it
    marks: list[dt.datetime] = []
    monkeypatch.setattr(refresh_state, "record_build", lambda *args, **kwargs: marks.append(args[3]))

    log, dates = _build(monkeypatch)
    assert dates["run"] == DAY.isoformat()
    assert marks[-1].date() == DAY and marks[-1] < after_midnight

    monkeypatch.setattr(refresh_state, "last_refresh", lambda *args: marks[-1])
    log, dates = _build(monkeypatch)  # the clock reads the next day from now on
    assert f"build date moved from {DAY} to {next_day}" in "\n".join(log)
    assert dates["run"] == next_day.isoformat()
    assert marks[-1] == after_midnight  # within its build date: the mark is when dbt started

    # A day the caller gave before the models' (nothing rebuilt: the build date only rolls forward):
    # the mark stays of the day the models hold.
    monkeypatch.setenv(BUILD_DATE_ENV, GIVEN)
    log, dates = _build(monkeypatch)
    assert "dbt: nothing to run" in "\n".join(log) and marks[-1] == after_midnight


def test_a_rebuild_as_of_a_day_the_caller_gives_marks_that_day(no_warehouse, clock, monkeypatch):
    """A run as of a given day marks the end of that day (the mark of the clock told the next builds
    that the models held the clock's day); as of a day after the clock's, the end of the day before
    the clock's (no mark may be ahead of the changes it says are built): either way, the next build
    by the clock moves the build date, and rebuilds the date-relative models."""
    now = dt.datetime.combine(DAY, dt.time(9, 30))
    monkeypatch.setattr(build, "utc_now", lambda: now)
    marks: list[dt.datetime] = []
    monkeypatch.setattr(refresh_state, "record_build", lambda *args, **kwargs: marks.append(args[3]))
    for given, mark in {
        GIVEN: dt.datetime(2026, 2, 28, 23, 59, 59, 999999),
        "2026-04-03": dt.datetime(2026, 3, 30, 23, 59, 59, 999999),
    }.items():
        monkeypatch.setattr(refresh_state, "last_refresh", lambda *args: dt.datetime(2026, 2, 27))
        monkeypatch.setenv(BUILD_DATE_ENV, given)
        log, dates = _build(monkeypatch)
        assert f"build date moved from 2026-02-27 to {given}" in "\n".join(log)
        assert dates["run"] == given and marks[-1] == mark

        monkeypatch.delenv(BUILD_DATE_ENV)
        clock()  # a build of its own, by the clock
        monkeypatch.setattr(refresh_state, "last_refresh", lambda *args: marks[-1])
        log, dates = _build(monkeypatch)
        assert f"build date moved from {mark.date()} to {DAY}" in "\n".join(log)
        assert dates["run"] == DAY.isoformat() and marks[-1] == now


def _dbt_environment(arguments: list[str], env: dict[str, str]) -> str:
    """The build date a lone CLI dbt command (``funnelhouse dbt ...``) is handed: the "dbt" here is a
    Python printing it."""
    script = f"import os; print(os.environ.get({BUILD_DATE_ENV!r}))"
    output: list[str] = []
    with mock.patch.object(build, "dbt_executable", lambda: sys.executable):
        assert build.run_dbt(["-c", script, *arguments], log=output.append, env=env) == 0
    return output[-1]


def test_a_lone_dbt_command_is_as_of_the_day_it_starts(no_warehouse):
    """(A `funnelhouse dbt test` on a later day tests as of that day: the date spine a day short fails.)"""
    assert _dbt_environment([], dict(os.environ)) == DAY.isoformat()
    assert _dbt_environment([], {**os.environ, BUILD_DATE_ENV: GIVEN}) == GIVEN
    for given in (["--vars", f"{{as_of_date: {GIVEN}}}"], [f"--vars={{as_of_date: {GIVEN}}}"]):
        assert _dbt_environment(given, dict(os.environ)) == "None"  # dbt reads the var
    assert _dbt_environment(["--vars", "{kpi_lookback_days: 3}"], dict(os.environ)) != "None"


class _FakeInvocation:
    def stream(self):
        return iter(())


@pytest.mark.skipif(not MANIFEST.exists(), reason="no dbt manifest (run `make manifest`)")
def test_dagsters_dbt_steps_plan_and_run_dbt_as_of_one_reading_of_the_clock(no_warehouse, clock, monkeypatch):
    seen: list[tuple[str, str | None]] = []  # (what, the build date then)

    class Dbt(DbtCliResource):
        def cli(self, args, **kwargs):
            seen.append(("dbt " + args[0], os.environ.get(BUILD_DATE_ENV)))
            return _FakeInvocation()

    planned = dbt_plan.incremental_plan

    def incremental_plan(*args, **kwargs):
        plan = planned(*args, **kwargs)
        seen.append((plan.reason, None))
        return plan

    monkeypatch.setattr(dbt_assets, "incremental_plan", incremental_plan)
    models, kpi = dbt_assets.build_dbt_assets()
    dbt = Dbt(project_dir=str(REPO_ROOT))
    config = dbt_assets.DbtBuildConfig()
    with mock.patch.dict(os.environ):  # (the steps export dbt's environment into this process)
        list(models(context=dg.build_asset_context(resources={"dbt": dbt}), config=config))
        clock()  # the KPI step: a build of its own
        context = dg.build_asset_context(resources={"dbt": dbt}, partition_key="2026-03-30")
        list(kpi(context=context, config=config))
    assert seen[0][0].startswith(f"build date moved from 2026-03-30 to {DAY}")
    # The next day by the clock's later readings, had the steps not pinned the first.
    assert seen[1:] == [("dbt run", DAY.isoformat()), ("dbt build", DAY.isoformat())]


def test_the_build_after_a_rebuild_as_of_a_past_day_rebuilds_the_marts_as_of_today(
    built_warehouse, monkeypatch
):
    """docs/warehouse.md's rebuild as of another day, then a plain build: the KPI mart ends on the day
    asked, then on today. (Recorded as of the clock, the mark told the plain build that the marts held
    today: "nothing to run", and the mart ended on the past day until the nightly build.) The marts'
    mark, which `funnelhouse status` shows and the reports wait for, is at most the end of that day."""
    client, raw, marts = clickhouse_client(), schema.raw_database(), marts_schema()
    today = build_date.utc_today()
    past = today - dt.timedelta(days=11)

    def build_as_of(*arguments: str) -> str:
        result = CliRunner().invoke(app, ["build", *arguments, "--skip-replication", "--no-freshness"])
        assert result.exit_code == 0, result.output
        return result.output

    def last_kpi_day() -> dt.date:
        return client.query(f"select max(kpi_date) from `{marts}`.mart_kpi_employee_daily").result_rows[0][0]

    monkeypatch.setenv(BUILD_DATE_ENV, past.isoformat())
    build_as_of("--full-refresh")
    assert last_kpi_day() == past
    models, kpi = refresh_state.recorded_refreshes(client, raw, marts)
    assert models.complete_through.date() == past and kpi.complete_through.date() == past

    monkeypatch.delenv(BUILD_DATE_ENV)
    output = build_as_of()
    assert f"build date moved from {past} to {today}: date-relative models" in output
    assert last_kpi_day() == today
    assert refresh_state.last_refresh(client, raw, marts).date() == today
    assert "dbt: nothing to run" in build_as_of()  # as of today now


@pytest.mark.skipif(not MANIFEST.exists(), reason="no dbt manifest (run `make manifest`)")
def test_dagsters_models_step_marks_the_day_the_caller_gives(no_warehouse, monkeypatch):
    monkeypatch.setenv(BUILD_DATE_ENV, GIVEN)
    monkeypatch.setattr(dbt_assets, "utc_now", lambda: dt.datetime.combine(DAY, dt.time(9, 30)))
    monkeypatch.setattr(refresh_state, "last_refresh", lambda *args: dt.datetime(2026, 2, 27))
    marks: list[dt.datetime] = []
    monkeypatch.setattr(refresh_state, "record_build", lambda *args, **kwargs: marks.append(args[3]))

    class Dbt(DbtCliResource):
        def cli(self, args, **kwargs):
            return _FakeInvocation()

    models, _kpi = dbt_assets.build_dbt_assets()
    context = dg.build_asset_context(resources={"dbt": Dbt(project_dir=str(REPO_ROOT))})
    with mock.patch.dict(os.environ):
        list(models(context=context, config=dbt_assets.DbtBuildConfig()))
    assert marks == [dt.datetime(2026, 2, 28, 23, 59, 59, 999999)]
