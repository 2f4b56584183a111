"""One warehouse built once per session on the hand-made CRM (fixture_crm.sql): its own PostgreSQL
database, raw database and dbt schemas on the session's local ClickHouse server, so it never meets
another test's data. Building it (replication + dbt build) is the expensive part; every test in
this directory that only reads marts shares it."""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from orchestration.defs.warehouse import refresh_state

# Imported before any test changes DBT_TARGET_PATH: the code location reads its manifest path once.
from orchestration.defs.warehouse.build import PARTIAL_PARSE, marts_schema, run_dbt
from tests.fixtures.postgres import new_database

FIXTURE_SQL = Path(__file__).with_name("fixture_crm.sql")
# A day of an older month: neither the KPI mart's first month nor yesterday's or today's.
LATE_DAY_SQL = "date_trunc('day', now()) - interval '65 days' + interval '12 hours'"
_isolation_counter = itertools.count()


@dataclass
class Warehouse:
    pg_dsn: str
    raw_database: str
    schema_prefix: str
    dbt_exit_code: int
    dbt_output: str

    def schema(self, name: str) -> str:
        return f"{self.schema_prefix}{name}"

    def client(self):
        return clickhouse_client()


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


def isolated_names() -> tuple[str, str]:
    """A raw database and a dbt schema prefix nobody else on the server uses."""
    suffix = f"{os.getpid()}_{next(_isolation_counter)}"
    return f"raw_t{suffix}", f"t{suffix}_"


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


def clickhouse_environment(server: dict) -> dict[str, str]:
    return {
        "FUNNELHOUSE_CLICKHOUSE_URL": f"http://{server['host']}:{server['port']}",
        "FUNNELHOUSE_CLICKHOUSE_USER": server["user"],
        "FUNNELHOUSE_CLICKHOUSE_PASSWORD": server["password"],
        "DBT_TARGET": "ci",
    }


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


def load_fixture(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(FIXTURE_SQL.read_text())


@pytest.fixture(scope="session")
def warehouse(pg_server, clickhouse_server, tmp_path_factory):  # noqa: F811
    dsn = new_database(pg_server, name=f"warehouse_{os.getpid()}")
    load_fixture(dsn)
    raw_database, prefix = isolated_names()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            **clickhouse_environment(clickhouse_server),
            "FUNNELHOUSE_PG_DSN": dsn,
            "FUNNELHOUSE_RAW_DATABASE": raw_database,
            "FUNNELHOUSE_SCHEMA_PREFIX": prefix,
            # Keep the developer's dbt_project/target (manifest, logs) untouched.
            "DBT_TARGET_PATH": str(tmp_path_factory.mktemp("dbt-target")),
            "DBT_LOG_PATH": str(tmp_path_factory.mktemp("dbt-logs")),
        }.items():
            patch.setenv(name, value)
        replicate_tables(dsn)
        output: list[str] = []
        exit_code = run_dbt(["build"], log=output.append)
        yield Warehouse(dsn, raw_database, prefix, exit_code, "\n".join(output))


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
