"""A ClickHouse server configured in Asia/Shanghai (common in China): funnelhouse's sessions run in UTC
all the same. Without that, zone-less timestamps pulled from PostgreSQL, string literals and the state
table's stamps would be read and written 8 hours off, and Python would get Shanghai-aware datetimes
where it compares naive UTC ones."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from tests.fixtures.clickhouse import server_process
from tests.fixtures.warehouse import load_fixture
from tests.warehouse.conftest import REUSED_RAW_DATABASE, REUSED_SCHEMA_PREFIX

SERVER_ZONE = "Asia/Shanghai"
# 2026-01-01 00:00:00 read as UTC; read in the server's zone it would be 8 hours (28800 s) earlier.
NEW_YEAR_UTC = 1767225600


@pytest.fixture(scope="module")
def shanghai_server(service_dirs):
    """A second local server whose own zone (``timezone()`` without settings) is Asia/Shanghai."""
    store = service_dirs("clickhouse-shanghai") / "store"
    with server_process(["-m", "devstack.clickhouse"], store, 18223, env={"TZ": SERVER_ZONE}) as port:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/?query=select%20timezone()", timeout=10
        ) as answer:
            # what a session gets unless it says otherwise
            assert answer.read().decode().strip() == SERVER_ZONE
        yield port


@pytest.fixture
def on_shanghai_server(shanghai_server, monkeypatch):
    """funnelhouse (replication, dbt) pointed at the Shanghai server; returns the raw database's name.
    The raw database and schema prefix are the other warehouse tests' names, so dbt's partial parse
    carries over."""
    for name, value in {
        "FUNNELHOUSE_CLICKHOUSE_URL": f"http://127.0.0.1:{shanghai_server}",
        "FUNNELHOUSE_CLICKHOUSE_USER": "default",
        "FUNNELHOUSE_CLICKHOUSE_PASSWORD": "",
        "DBT_TARGET": "ci",
        "FUNNELHOUSE_RAW_DATABASE": REUSED_RAW_DATABASE,
        "FUNNELHOUSE_SCHEMA_PREFIX": REUSED_SCHEMA_PREFIX,
    }.items():
        monkeypatch.setenv(name, value)
    for explicit in ("HOST", "PORT", "SECURE"):
        monkeypatch.delenv(f"FUNNELHOUSE_CLICKHOUSE_{explicit}", raising=False)
    clickhouse_client().command(f"drop database if exists `{REUSED_RAW_DATABASE}`")
    return REUSED_RAW_DATABASE


def _conversation_stamps_in_postgresql(pg_dsn: str) -> list[tuple]:
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute(
            "select source_message_id, sent_at, updated_at from conversations order by source_message_id"
        ).fetchall()


def test_replication_keeps_postgresql_times_and_cursors_on_a_shanghai_server(pg_dsn, on_shanghai_server):
    raw = on_shanghai_server
    load_fixture(pg_dsn)
    client = clickhouse_client()
    assert client.command("select timezone()") == "UTC"

    [first] = replicate_tables(pg_dsn, ["conversations"])
    assert first.rows_copied == 6
    replicated = client.query(
        f"select source_message_id, sent_at, updated_at from `{raw}`.conversations final order by source_message_id"
    ).result_rows
    assert replicated == _conversation_stamps_in_postgresql(pg_dsn)

    [(rows_cursor, deletions_cursor, recorded_at)] = client.query(
        f"select rows_cursor, deletions_cursor, recorded_at from `{raw}`._replication_state final "
        "where table_name = 'conversations'"
    ).result_rows
    bound = dt.datetime.fromisoformat(first.window_end)
    assert rows_cursor == deletions_cursor == bound  # written and read back unchanged
    assert dt.timedelta(0) <= utc_now() - recorded_at < dt.timedelta(minutes=1), recorded_at

    [second] = replicate_tables(pg_dsn, ["conversations"])
    assert (second.rows_copied, second.tombstones, second.changed) == (0, 0, False)
    assert second.window_start == first.window_end  # the cursor it resumed from is the one recorded

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update conversations set sentiment = 'neutral' where source_message_id = 'MSG1'")
    [third] = replicate_tables(pg_dsn, ["conversations"])
    assert third.rows_copied == 1  # a cursor read back hours ahead would have skipped it for good

    # The build's refresh marks: written naive UTC, read back the same, compared with changed_at.
    mark = utc_now()
    refresh_state.record_refresh(client, raw, marts_schema(), mark)
    assert refresh_state.last_refresh(client, raw, marts_schema()) == mark
    assert refresh_state.tables_changed_since_refresh(client, raw, marts_schema()) == []


def test_dbt_sessions_run_in_utc_on_a_shanghai_server(on_shanghai_server, dbt_dirs):
    query = "select timezone() as session_zone, toUnixTimestamp(toDateTime64('2026-01-01 00:00:00', 6)) as new_year"
    output: list[str] = []
    exit_code = run_dbt(
        ["--no-use-colors", "--log-format", "json", "show", "--inline", query, "--output", "json"],
        log=output.append,
    )
    assert exit_code == 0, "\n".join(output[-30:])
    shown = [json.loads(line)["data"] for line in output if line.startswith("{")]
    [preview] = [json.loads(data["preview"]) for data in shown if "preview" in data]
    assert preview == [{"session_zone": "UTC", "new_year": NEW_YEAR_UTC}]
