"""Shared helpers for the local ClickHouse server tests: real server (launcher), real clients.

The ``clickhouse_server`` fixture itself comes from ``tests.fixtures.clickhouse`` (a root plugin).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import subprocess
from collections.abc import Iterator
from urllib.parse import urlencode

import clickhouse_connect
import pytest

TEST_DATABASE = "ch_tests"


def connect(info: dict, readonly: bool = False, **settings):
    """A clickhouse-connect client as an application (or, with ``readonly``, a BI tool) would make it."""
    user, password = (
        (info["readonly_user"], info["readonly_password"]) if readonly else (info["user"], info["password"])
    )
    return clickhouse_connect.get_client(
        host=info["host"], port=int(info["port"]), username=user, password=password, **settings
    )


def as_replication(info: dict) -> dict:
    """``info`` with replication's user, the only one the server lets reach PostgreSQL."""
    return {**info, "user": info["replication_user"], "password": info["replication_password"]}


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Raw:
    """Plain HTTP/1.1 requests on one keep-alive connection, to check the wire protocol itself."""

    def __init__(self, info: dict):
        self.info = info
        self.connection = http.client.HTTPConnection(info["host"], int(info["port"]), timeout=60)

    def request(self, method="POST", params=None, body=None, headers=None, path="/", auth=True):
        all_headers = {
            **(basic_auth(self.info["user"], self.info["password"]) if auth else {}),
            **(headers or {}),
        }
        url = path + ("?" + urlencode(params) if params else "")
        self.connection.request(method, url, body=body, headers=all_headers)
        response = self.connection.getresponse()
        return response.status, response, response.read()

    def close(self):
        self.connection.close()


@pytest.fixture
def raw(clickhouse_server, database):
    connection = Raw(clickhouse_server)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def database(clickhouse_server):
    """A test database: dbt-like schemas must not be ``default`` (engine Overlay in chDB, not Atomic)."""
    client = connect(clickhouse_server)
    client.command(f"CREATE DATABASE IF NOT EXISTS {TEST_DATABASE}")
    client.close()
    return TEST_DATABASE


@pytest.fixture
def client(clickhouse_server, database):
    client = connect(clickhouse_server, database=database)
    yield client
    client.close()


# The column types the marts use, in one table, with values at the edges (NULL, a negative decimal,
# UInt64's maximum, a zone with an offset, non-ASCII text, an empty array): what BI clients must read.
BI_MART_COLUMNS = """code String, note Nullable(String), amount Decimal(12, 2),
    updated_at DateTime64(3, 'Asia/Shanghai'), day Date, deposits UInt64, ratio Float64,
    active Bool, tags Array(String), channel LowCardinality(String)"""
BI_MART_ROWS = """('C001', NULL, 1234.50, '2024-03-01 08:30:00.125', '2024-03-01', 18446744073709551615, 0.25,
     true, ['vip', '期货'], 'wechat'),
    ('C002', '说明', -0.01, '2024-03-02 23:59:59.999', '2024-03-02', 7, 1.5, false, [], 'phone')"""


@contextlib.contextmanager
def bi_mart(info: dict, database: str, table: str) -> Iterator[str]:
    """A marts-like database holding one such table (written by the application user), dropped after."""
    client = connect(info)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        client.command(
            f"CREATE OR REPLACE TABLE {database}.{table} ({BI_MART_COLUMNS}) ENGINE = MergeTree ORDER BY code"
        )
        client.command(f"INSERT INTO {database}.{table} VALUES {BI_MART_ROWS}")
        yield f"{database}.{table}"
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()


def probe_steps(command: list[str], timeout: float) -> dict[str, dict]:
    """Each step's JSON line, by step name, from one run of a BI client's probe (JdbcProbe.java, go_probe)
    as ``bi_reader``; lines that are not JSON objects (a driver's own logging) are left out."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    steps = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {step["step"]: step for step in steps}


def step_ok(probe: dict[str, dict], name: str) -> dict:
    """A probe's step that must have succeeded (its error, and the error's cause, in the failure)."""
    step = probe[name]
    assert "error" not in step, f"{name}: {step['error']} (cause: {step.get('cause')})"
    return step
