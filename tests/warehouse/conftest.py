"""Warehouse test fixtures: an emptied raw database and dbt schemas per test (``clickhouse_env``),
dbt directories that carry the partial parse from test to test (``dbt_dirs``), the hand-made CRM
replicated with every model built (``built_warehouse``: built once per session, a copy of it for
every later test, tests/fixtures/kept_warehouse.py). The session's shared warehouse, for tests
that only read marts, is ``warehouse`` in tests/fixtures/warehouse.py."""

from __future__ import annotations

import dataclasses
import shutil
import socket
from pathlib import Path

import pytest

from ingestion.replication import replicate
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from ingestion.replication.tables import BY_NAME
from orchestration.defs.warehouse import refresh_state

# Imported before any test changes DBT_TARGET_PATH: the code location reads its manifest path once.
from orchestration.defs.warehouse.build import PARTIAL_PARSE, build, marts_schema, run_dbt
from orchestration.defs.warehouse.build_date import BUILD_DATE_ENV, build_date, refresh_mark
from tests.fixtures.clock import CLICKHOUSE_TODAY, POSTGRES_MIDNIGHT
from tests.fixtures.kept_warehouse import KeptWarehouse
from tests.fixtures.warehouse import (
    clickhouse_environment,
    drop_databases,
    isolated_names,
    load_fixture,
)
from tests.reports.conftest import sink_in_this_process
from tests.warehouse.alerting import ONCALL, RETRY_HOURS_ENV

# A day of an older month: neither the KPI mart's first month nor yesterday's or today's.
LATE_DAY_SQL = f"{POSTGRES_MIDNIGHT} - interval '65 days' + interval '12 hours'"


def quality_conversations_on_the_late_day(client, core: str) -> tuple[int, int]:
    """Employee 3's quality conversations on the LATE_DAY_SQL day: (in the KPI mart, in fct_conversations)."""
    day = f"{CLICKHOUSE_TODAY} - 65"
    [(in_mart,)] = client.query(
        f"select mofu_quality_conversations from `{marts_schema()}`.mart_kpi_employee_daily"
        f" where employee_id = 3 and kpi_date = {day}"
    ).result_rows
    [(in_facts,)] = client.query(
        f"select countIf(is_quality_conversation) from `{core}`.fct_conversations"
        f" where employee_id = 3 and sent_date = {day}"
    ).result_rows
    return in_mart, in_facts


# The raw database and dbt schema prefix of every function-scoped test of this process, emptied
# before each. The same names each time let dbt's partial parse carry over from one test to the next:
# a new prefix (read by generate_schema_name) or raw database (read by the sources) forces a full
# re-parse of the project, ~6 s per test. Tests run one at a time, so no two meet.
REUSED_RAW_DATABASE, REUSED_SCHEMA_PREFIX = isolated_names()


@pytest.fixture
def clickhouse_env(clickhouse_server, monkeypatch):  # noqa: F811
    """An empty raw database and empty dbt schemas (REUSED_*); returns the raw database's name."""
    for name, value in {
        **clickhouse_environment(clickhouse_server),
        "FUNNELHOUSE_RAW_DATABASE": REUSED_RAW_DATABASE,
        "FUNNELHOUSE_SCHEMA_PREFIX": REUSED_SCHEMA_PREFIX,
    }.items():
        monkeypatch.setenv(name, value)
    drop_databases(clickhouse_client(), REUSED_RAW_DATABASE, REUSED_SCHEMA_PREFIX)
    return REUSED_RAW_DATABASE


@pytest.fixture
def replicating(monkeypatch):
    """``replicating(table, *columns)``: for this test, replication also copies ``columns`` of ``table``,
    columns the test added to PostgreSQL (replication copies only the columns tables.py lists)."""

    def replicate_also(name: str, *columns: str) -> None:
        wider = dataclasses.replace(BY_NAME[name], replicated=(*BY_NAME[name].replicated, *columns))
        monkeypatch.setitem(BY_NAME, name, wider)
        monkeypatch.setattr(
            replicate,
            "RAW_TABLES",
            tuple(wider if table.name == name else table for table in replicate.RAW_TABLES),
        )

    return replicate_also


@pytest.fixture(scope="session")
def dbt_parse_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt-parse-cache")


@pytest.fixture
def dbt_dirs(tmp_path, monkeypatch, dbt_parse_cache) -> Path:
    """The test's own dbt target and log directories (the developer's dbt_project/target is left
    alone), the target seeded with the partial parse the previous test left; returns the target."""
    target = tmp_path / "target"
    target.mkdir()
    monkeypatch.setenv("DBT_TARGET_PATH", str(target))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    if (dbt_parse_cache / PARTIAL_PARSE).exists():
        shutil.copy(dbt_parse_cache / PARTIAL_PARSE, target / PARTIAL_PARSE)
    yield target
    # dbt itself decides whether it is still valid (files, vars, profile, env vars all checked).
    if (target / PARTIAL_PARSE).exists():
        shutil.copy(target / PARTIAL_PARSE, dbt_parse_cache / PARTIAL_PARSE)


@pytest.fixture(scope="session")
def kept_warehouse(pg_server, clickhouse_server, tmp_path_factory):
    """The session's first ``built_warehouse``, kept for the tests that ask for one later."""
    kept = KeptWarehouse(pg_server, tmp_path_factory.mktemp("kept-warehouse"))
    yield kept
    kept.drop()


@pytest.fixture
def pg_template(pg_template, request) -> str:
    """A test asking for ``built_warehouse`` once one was kept: its ``pg_dsn`` is a copy of the kept
    warehouse's PostgreSQL database, and ``built_warehouse`` puts back the rest."""
    if "built_warehouse" not in request.fixturenames:
        return pg_template
    kept = request.getfixturevalue("kept_warehouse")
    return kept.pg_template if kept.taken else pg_template


@pytest.fixture
def built_warehouse(pg_dsn, pg_template, clickhouse_env, dbt_dirs, kept_warehouse) -> Path:
    """The hand-made CRM replicated and every model built; returns dbt's target directory. Built
    for the session's first test that asks, kept, and copied for every later one: in its own
    ``pg_dsn``, under the raw database and dbt schemas of ``clickhouse_env``, in its ``dbt_dirs``."""
    if pg_template == kept_warehouse.pg_template:
        kept_warehouse.restore(clickhouse_env, REUSED_SCHEMA_PREFIX, dbt_dirs)
        return dbt_dirs
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn)
    # A first `funnelhouse build` would be a complete `dbt build` with every test (test_dbt_build
    # covers that); `dbt run` plus the refresh mark it would leave is enough here and much faster.
    started_at = utc_now()
    output: list[str] = []
    assert (
        run_dbt(["build", "--resource-type", "seed", "--resource-type", "model"], log=output.append) == 0
    ), "\n".join(output[-40:])
    mark = refresh_mark(started_at, build_date())  # as the build would record it
    refresh_state.record_refresh(clickhouse_client(), clickhouse_env, marts_schema(), mark)
    if not kept_warehouse.taken:
        kept_warehouse.take(pg_dsn, clickhouse_env, REUSED_SCHEMA_PREFIX, dbt_dirs)
    return dbt_dirs


@pytest.fixture
def built_as_of_the_real_day(built_warehouse, monkeypatch) -> Path:
    """``built_warehouse`` with its builds as of the real UTC day, not the suite's (tests/fixtures/clock.py),
    for a test of real periods (ending now): a first build brings the warehouse to that day, which has
    nothing to run unless the suite crossed midnight since the CRM was dated."""
    monkeypatch.setenv(BUILD_DATE_ENV, utc_now().date().isoformat())
    output: list[str] = []
    assert build(freshness=False, log=output.append).ok, "\n".join(output[-40:])
    return built_warehouse


@pytest.fixture
def relay(service_dirs, monkeypatch):
    """(switch, outbox): the alert relay (FUNNELHOUSE_SMTP_URL), down until ``switch("up")``. Down is an
    address where a socket is bound but not listening: every connection is refused (OSError)."""
    outbox = service_dirs("alert-smtp")
    with sink_in_this_process(outbox) as settings, socket.socket() as nobody_listens:
        nobody_listens.bind((settings.host, 0))
        addresses = {
            "up": f"smtp://{settings.host}:{settings.port}",
            "down": f"smtp://{settings.host}:{nobody_listens.getsockname()[1]}",
        }
        monkeypatch.setenv("FUNNELHOUSE_ALERT_EMAIL", ONCALL)
        monkeypatch.setenv("FUNNELHOUSE_SMTP_STARTTLS", "0")
        monkeypatch.delenv(RETRY_HOURS_ENV, raising=False)

        def switch(state: str) -> None:
            monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", addresses[state])

        switch("down")
        yield switch, outbox
