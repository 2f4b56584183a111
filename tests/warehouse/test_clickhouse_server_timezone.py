"""A ClickHouse server configured in Asia/Shanghai (common in China): funnelhouse's sessions run in UTC
all the same. Without that, zone-less timestamps pulled from PostgreSQL, string literals and the state
table's stamps would be read and written 8 hours off, and Python would get Shanghai-aware datetimes
where it compares naive UTC ones.

The stored timestamps are declared in UTC too: a column without a zone reads in the creating
session's zone only until the server restarts, and in the server's zone after (ClickHouse issue
93613), which moved KPI days, months and refresh marks by 8 hours."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import psycopg
import pytest

from ingestion.replication import cursor
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from tests.fixtures.clickhouse import ServerProcess
from tests.fixtures.warehouse import load_fixture
from tests.warehouse.conftest import REUSED_RAW_DATABASE, REUSED_SCHEMA_PREFIX

SERVER_ZONE = "Asia/Shanghai"
# 2026-01-01 00:00:00 read as UTC; read in the server's zone it would be 8 hours (28800 s) earlier.
NEW_YEAR_UTC = 1767225600


@pytest.fixture(scope="module")
def shanghai_server(service_dirs):
    """A second local server whose own zone (``timezone()`` without settings) is Asia/Shanghai."""
    store = service_dirs("clickhouse-shanghai") / "store"
    with ServerProcess(["-m", "devstack.clickhouse"], store, 18223, env={"TZ": SERVER_ZONE}) as server:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/?query=select%20timezone()", timeout=10
        ) as answer:
            # what a session gets unless it says otherwise
            assert answer.read().decode().strip() == SERVER_ZONE
        yield server


@pytest.fixture
def on_shanghai_server(shanghai_server, monkeypatch):
    """funnelhouse (replication, dbt) pointed at the Shanghai server; returns the raw database's name.
    The raw database and schema prefix are the other warehouse tests' names, so dbt's partial parse
    carries over."""
    for name, value in {
        "FUNNELHOUSE_CLICKHOUSE_URL": f"http://127.0.0.1:{shanghai_server.port}",
        "FUNNELHOUSE_CLICKHOUSE_USER": "default",
        "FUNNELHOUSE_CLICKHOUSE_PASSWORD": "",
        # The passwordless single-user server lets its one user reach PostgreSQL, as replication's.
        "FUNNELHOUSE_CLICKHOUSE_REPLICATION_USER": "default",
        "FUNNELHOUSE_CLICKHOUSE_REPLICATION_PASSWORD": "",
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
        return conn.execute("select id, sent_at, updated_at from conversations order by id").fetchall()


def test_replication_keeps_postgresql_times_and_cursors_on_a_shanghai_server(pg_dsn, on_shanghai_server):
    raw = on_shanghai_server
    load_fixture(pg_dsn)
    client = clickhouse_client()
    assert client.command("select timezone()") == "UTC"

    [first] = replicate_tables(pg_dsn, ["conversations"])
    assert first.rows_copied == 6
    replicated = client.query(
        f"select id, sent_at, updated_at from `{raw}`.conversations final order by id"
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


# Late on the last day of a month in UTC: already the next day and month in Shanghai.
LATE_ON_A_MONTHS_LAST_DAY = dt.datetime(2026, 1, 31, 23, 30, 0, 250000)


def _stamps_as_read(raw: str) -> dict[str, list[tuple]]:
    """What the server makes of the stored timestamps of replication and the build: as text, as
    days and months (KPI days, partitions), and as Python reads them (a new client each time: the
    server may have restarted since)."""
    client = clickhouse_client()
    marts = marts_schema()
    return {
        "raw": client.query(
            "select id, toString(sent_at), toDate(sent_at), toYYYYMM(sent_at), sent_at,"
            " toString(updated_at), toString(_replicated_at)"
            f" from `{raw}`.conversations final order by id"
        ).result_rows,
        "replication state": client.query(
            "select table_name, toString(rows_cursor), toString(deletions_cursor), toString(recorded_at),"
            f" toString(changed_at), rows_cursor from `{raw}`._replication_state final order by table_name"
        ).result_rows,
        # last_refresh_mark (dbt_project/macros/incremental_changes.sql) reads the mark as text
        "refresh marks": client.query(
            "select marts_schema, toString(refreshed_through), toString(recorded_at)"
            f" from `{raw}`._model_refreshes final order by marts_schema"
        ).result_rows,
        "read by Python": [
            (
                refresh_state.last_refresh(client, raw, marts),
                refresh_state.tables_changed_since_refresh(client, raw, marts),
            )
        ],
    }


# The raw table replicated here, and the state tables of replication and the build.
STAMPED_TABLES = ["conversations", "_replication_state", "_model_refreshes"]


def _timestamp_types(database: str, tables: list[str]) -> dict[tuple[str, str], str]:
    """(table, column) -> type of each timestamp column of ``tables``."""
    return dict(
        ((table, column), column_type)
        for table, column, column_type in clickhouse_client()
        .query(
            "select table, name, type from system.columns where database = {database:String}"
            " and table in {tables:Array(String)} and type like '%DateTime%' order by table, name",
            parameters={"database": database, "tables": tables},
        )
        .result_rows
    )


def test_stored_timestamps_read_the_same_after_the_shanghai_server_restarts(
    pg_dsn, on_shanghai_server, shanghai_server
):
    raw = on_shanghai_server
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(late_id,)] = conn.execute(
            "update conversations set sent_at = %s where source_message_id = 'MSG1' returning id",
            [LATE_ON_A_MONTHS_LAST_DAY],
        ).fetchall()
    replicate_tables(pg_dsn, ["conversations"])
    started_at = utc_now()
    refresh_state.record_refresh(clickhouse_client(), raw, marts_schema(), started_at)

    before = _stamps_as_read(raw)
    [late] = [row for row in before["raw"] if row[0] == late_id]
    assert late[:5] == (
        late_id,
        "2026-01-31 23:30:00.250000",
        dt.date(2026, 1, 31),
        202601,
        LATE_ON_A_MONTHS_LAST_DAY,
    )
    assert [(key, through) for key, through, _ in before["refresh marks"]] == [
        (key, started_at.isoformat(sep=" ", timespec="microseconds"))
        for key in sorted([marts_schema(), refresh_state.kpi_mark_key(marts_schema())])
    ]
    assert before["read by Python"] == [(started_at, [])]

    shanghai_server.restart()

    assert _stamps_as_read(raw) == before
    types = _timestamp_types(raw, STAMPED_TABLES)
    assert types[("conversations", "sent_at")] == "DateTime64(6, 'UTC')"
    assert types[("conversations", "_replicated_at")] == "DateTime64(3, 'UTC')"
    assert types[("_model_refreshes", "refreshed_through")] == "DateTime64(6, 'UTC')"
    assert all("'UTC'" in column_type for column_type in types.values()), types


def _declare_without_zones(database: str, tables: list[str]) -> None:
    """Make ``tables`` look as replication and dbt left them before timestamps were declared in UTC."""
    client = clickhouse_client()
    for (table, column), column_type in _timestamp_types(database, tables).items():
        zone_less = column_type.replace(", 'UTC')", ")")
        client.command(f"alter table `{database}`.`{table}` modify column `{column}` {zone_less}")
    assert not any("'UTC'" in column_type for column_type in _timestamp_types(database, tables).values())


def _build_conversation_facts() -> list[tuple]:
    """Build fct_conversations (incrementally once it exists) and return its rows' stamps."""
    output: list[str] = []
    exit_code = run_dbt(["run", "--select", "stg_crm__conversations", "fct_conversations"], log=output.append)
    assert exit_code == 0, "\n".join(output[-30:])
    return (
        clickhouse_client()
        .query(
            "select conversation_id, toString(sent_at), sent_date"
            f" from `{_core_schema()}`.fct_conversations order by conversation_id"
        )
        .result_rows
    )


def _core_schema() -> str:
    return marts_schema().removesuffix("marts") + "core"


def test_tables_with_zone_less_timestamps_are_declared_in_utc_by_the_next_run(
    pg_dsn, on_shanghai_server, dbt_dirs
):
    """What an upgrade finds: raw tables, state tables and incremental facts built with zone-less
    timestamps. The next replication reloads the raw tables once (a snapshot table counts as changed,
    so its models are rebuilt) and re-declares the state tables; the next build re-declares the facts
    (a fresh build would give them UTC columns)."""
    raw = on_shanghai_server
    load_fixture(pg_dsn)
    [first, _] = replicate_tables(pg_dsn, ["conversations", "tags"])
    facts = _build_conversation_facts()
    started_at = utc_now()
    refresh_state.record_refresh(clickhouse_client(), raw, marts_schema(), started_at)
    before = _stamps_as_read(raw)
    _declare_without_zones(raw, [*STAMPED_TABLES, "tags"])
    _declare_without_zones(_core_schema(), ["fct_conversations"])

    logged: list[str] = []
    [reloaded, snapshot] = replicate_tables(pg_dsn, ["conversations", "tags"], log=logged.append)
    # copied whole again, though nothing changed in PostgreSQL
    assert (reloaded.rows_copied, reloaded.window_start) == (first.rows_copied, cursor.EPOCH.isoformat())
    assert any("reloading it from scratch" in line for line in logged), logged
    assert snapshot.changed
    # what the next build asks first (and the reloads are changes to carry downstream)
    assert refresh_state.tables_changed_since_refresh(clickhouse_client(), raw, marts_schema()) == [
        "conversations",
        "tags",
    ]
    types = _timestamp_types(raw, [*STAMPED_TABLES, "tags"])
    assert all("'UTC'" in column_type for column_type in types.values()), types
    after = _stamps_as_read(raw)
    assert [row[:5] for row in after["raw"]] == [row[:5] for row in before["raw"]]
    assert after["refresh marks"] == before["refresh marks"]

    [again, snapshot_again] = replicate_tables(pg_dsn, ["conversations", "tags"])
    assert (again.rows_copied, again.changed, snapshot_again.changed) == (0, False, False)  # once

    assert _build_conversation_facts() == facts
    fact_types = _timestamp_types(_core_schema(), ["fct_conversations"])
    assert fact_types[("fct_conversations", "sent_at")] == "DateTime64(6, 'UTC')"
    assert all("'UTC'" in column_type for column_type in fact_types.values()), fact_types
