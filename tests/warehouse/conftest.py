"""One warehouse built once per session on the hand-made CRM (fixture_crm.sql): its own PostgreSQL
database, raw database and dbt schemas on the session's local ClickHouse server, so it never meets
another test's data. Building it (replication + dbt build) is the expensive part; every test in
this directory that only reads marts shares it."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from orchestration.defs.warehouse import refresh_state

# Imported before any test changes DBT_TARGET_PATH: the code location reads its manifest path once.
from orchestration.defs.warehouse.build import marts_schema, run_dbt
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


def clickhouse_environment(server: dict) -> dict[str, str]:
    return {
        "FUNNELHOUSE_CLICKHOUSE_URL": f"http://{server['host']}:{server['port']}",
        "FUNNELHOUSE_CLICKHOUSE_USER": server["user"],
        "FUNNELHOUSE_CLICKHOUSE_PASSWORD": server["password"],
        "DBT_TARGET": "ci",
    }


@pytest.fixture
def clickhouse_env(clickhouse_server, monkeypatch):  # noqa: F811
    for name, value in clickhouse_environment(clickhouse_server).items():
        monkeypatch.setenv(name, value)
    raw_database, _ = isolated_names()
    monkeypatch.setenv("FUNNELHOUSE_RAW_DATABASE", raw_database)
    return raw_database


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
def built_warehouse(pg_dsn, clickhouse_env, monkeypatch, tmp_path) -> Path:
    """The hand-made CRM replicated and every model built; returns dbt's target directory."""
    load_fixture(pg_dsn)
    _, prefix = isolated_names()
    for name, value in {
        "FUNNELHOUSE_SCHEMA_PREFIX": prefix,
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }.items():
        monkeypatch.setenv(name, value)
    replicate_tables(pg_dsn)
    # A first `funnelhouse build` would be a complete `dbt build` with every test (test_dbt_build
    # covers that); `dbt run` plus the refresh mark it would leave is enough here and much faster.
    started_at = utc_now()
    output: list[str] = []
    assert run_dbt(["run"], log=output.append) == 0, "\n".join(output[-40:])
    refresh_state.record_refresh(clickhouse_client(), clickhouse_env, marts_schema(), started_at)
    return tmp_path / "target"
