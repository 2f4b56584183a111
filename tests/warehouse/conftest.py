"""Warehouse test fixtures: an emptied raw database and dbt schemas per test (``clickhouse_env``),
dbt directories that carry the partial parse from test to test (``dbt_dirs``), the hand-made CRM
replicated with every model built (``built_warehouse``). The session's shared warehouse, for tests
that only read marts, is ``warehouse`` in tests/fixtures/warehouse.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from orchestration.defs.warehouse import refresh_state

# Imported before any test changes DBT_TARGET_PATH: the code location reads its manifest path once.
from orchestration.defs.warehouse.build import PARTIAL_PARSE, marts_schema, run_dbt
from tests.fixtures.warehouse import (
    clickhouse_environment,
    isolated_names,
    load_fixture,
)

# A day of an older month: neither the KPI mart's first month nor yesterday's or today's.
LATE_DAY_SQL = "date_trunc('day', now()) - interval '65 days' + interval '12 hours'"


def quality_conversations_on_the_late_day(client, core: str) -> tuple[int, int]:
    """Employee 3's quality conversations on the LATE_DAY_SQL day: (in the KPI mart, in fct_conversations)."""
    day = "today() - 65"
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


def drop_databases(client, raw_database: str, schema_prefix: str) -> None:
    databases = client.query(
        "select name from system.databases where name = {raw:String} or startsWith(name, {prefix:String})",
        parameters={"raw": raw_database, "prefix": schema_prefix},
    ).result_rows
    for (database,) in databases:
        client.command(f"drop database if exists `{database}`")


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


@pytest.fixture
def built_warehouse(pg_dsn, clickhouse_env, dbt_dirs) -> Path:
    """The hand-made CRM replicated and every model built; returns dbt's target directory."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn)
    # A first `funnelhouse build` would be a complete `dbt build` with every test (test_dbt_build
    # covers that); `dbt run` plus the refresh mark it would leave is enough here and much faster.
    started_at = utc_now()
    output: list[str] = []
    assert run_dbt(["run"], log=output.append) == 0, "\n".join(output[-40:])
    refresh_state.record_refresh(clickhouse_client(), clickhouse_env, marts_schema(), started_at)
    return dbt_dirs
