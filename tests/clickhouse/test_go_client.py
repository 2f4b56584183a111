"""Grafana's path: the official Go client (github.com/ClickHouse/clickhouse-go/v2, over HTTP) as the
read-only ``bi_reader``, the way the plugin ``grafana-clickhouse-datasource`` configures it.

``go_probe/`` beside this file is a small Go program (its modules pinned by go.mod and go.sum) that
does what the plugin does on connect, in the schema browser, for a time series and for a table panel,
and prints each step as a JSON line. It is built once into the artifact cache shared with the search
engines (``devstack.search.artifacts``), under a hash of its sources, so later runs only launch it.
The first build fetches the modules through the Go module proxy (a few seconds here, up to a minute
or two on a cold module and build cache). Without a Go toolchain the tests skip.

The plugin asks for gzip over HTTP (an ``Accept-Encoding``; the answer may come plain). The client's
other choices, none, LZ4 and ZSTD (the last two: ClickHouse's compressed blocks, ``compress=1``), are
run too: other Go programs connect with them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from devstack.search import artifacts
from tests.clickhouse.conftest import bi_mart, connect, probe_steps, step_ok

CLIENT_VERSION = "v2.51.0"  # pinned in go_probe/go.mod
PROBE_SOURCES = Path(__file__).with_name("go_probe")
BI_DATABASE = "grafana_marts"
BI_TABLE = "customer_kpis"
COMPRESSIONS = ["gzip", "none", "lz4", "zstd"]  # gzip first: the plugin's own setting over HTTP


def _go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if go is None:
        pytest.skip("no Go toolchain (`go`) to build the clickhouse-go probe: install Go 1.26+")
    return go


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PROBE_SOURCES.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _probe_binary() -> Path:
    """The probe, built once per version of its sources; a failed module download fails the test."""
    name = f"clickhouse-go-probe-{_sources_digest()}"
    binary = artifacts.cache_dir() / name / "go_probe"
    with artifacts.locked(name):
        if binary.exists():
            return binary
        go = _go()
        binary.parent.mkdir(exist_ok=True)
        partial = binary.with_suffix(".partial")
        build = subprocess.run(
            [go, "build", "-mod=readonly", "-buildvcs=false", "-o", str(partial), "."],
            cwd=PROBE_SOURCES,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if build.returncode != 0:
            pytest.fail(f"building the clickhouse-go {CLIENT_VERSION} probe failed:\n{build.stderr[-4000:]}")
        partial.rename(binary)
    return binary


@pytest.fixture(scope="module")
def grafana_mart(clickhouse_server):
    with bi_mart(clickhouse_server, BI_DATABASE, BI_TABLE) as table:
        yield table


@pytest.fixture(scope="module", params=COMPRESSIONS)
def probe(request, clickhouse_server, grafana_mart) -> dict[str, dict]:
    """Each step's JSON line, by step name, from one run of the probe as ``bi_reader``."""
    binary = _probe_binary()
    info = clickhouse_server
    return probe_steps(
        [
            str(binary),
            f"{info['host']}:{info['port']}",
            info["readonly_user"],
            info["readonly_password"],
            BI_DATABASE,
            BI_TABLE,
            request.param,
        ],
        timeout=120,
    )


def test_the_client_connects_and_reads_the_servers_version_and_zone(probe, clickhouse_server):
    connected = step_ok(probe, "connect")
    reader = connect(clickhouse_server, readonly=True)
    version, revision, zone = reader.query("SELECT version(), revision(), timezone()").result_rows[0]
    reader.close()
    # (the client keeps major.minor.patch of the version)
    assert version.startswith(connected["version"] + ".")
    assert (connected["revision"], connected["timezone"]) == (revision, zone)
    step_ok(probe, "ping")
    assert step_ok(probe, "version")["rows"] == [{"version": version}]


def test_the_schema_browser_lists_the_database_its_table_and_typed_columns(probe):
    assert step_ok(probe, "databases")["rows"] == [{"name": BI_DATABASE}]
    assert step_ok(probe, "tables")["rows"] == [{"database": BI_DATABASE, "name": BI_TABLE}]
    columns = step_ok(probe, "columns")["rows"]
    assert [(row["name"], row["type"]) for row in columns] == [
        ("code", "String"),
        ("note", "Nullable(String)"),
        ("amount", "Decimal(12, 2)"),
        ("updated_at", "DateTime64(3, 'Asia/Shanghai')"),
        ("day", "Date"),
        ("deposits", "UInt64"),
        ("ratio", "Float64"),
        ("active", "Bool"),
        ("tags", "Array(String)"),
        ("channel", "LowCardinality(String)"),
    ]
    assert {row["table"] for row in columns} == {BI_TABLE}
    described = step_ok(probe, "describe")["rows"]
    assert [(row["name"], row["type"]) for row in described] == [
        (row["name"], row["type"]) for row in columns
    ]


def test_a_time_series_groups_by_hour_inside_the_dashboards_range(probe):
    series = step_ok(probe, "time_series")
    assert series["columns"] == ["time", "c"]
    # toStartOfHour of a DateTime64 in Asia/Shanghai: the hours are that zone's, the instants exact
    # (chDB's Native names DateTime without its zone, so the client shows them in the server's zone)
    instants = [row["time"].split(" ")[0] for row in series["rows"]]
    assert [_utc(instant) for instant in instants] == ["2024-03-01T00:00:00", "2024-03-02T15:00:00"]
    assert [row["c"] for row in series["rows"]] == [1, 1]
    assert step_ok(probe, "time_filter_bound")["rows"] == [{"code": "C002"}]


def _utc(instant: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(instant).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_table_panel_reads_every_type(probe):
    first, second = step_ok(probe, "table")["rows"]
    assert {name: (cell["database_type"], cell["go_type"]) for name, cell in first.items()} == {
        "code": ("String", "string"),
        "note": ("Nullable(String)", "*string"),
        "amount": ("Decimal(12, 2)", "decimal.Decimal"),
        "updated_at": ("DateTime64(3, 'Asia/Shanghai')", "time.Time"),
        "day": ("Date", "time.Time"),
        "deposits": ("UInt64", "uint64"),
        "ratio": ("Float64", "float64"),
        "active": ("Bool", "bool"),
        "tags": ("Array(String)", "[]string"),
        "channel": ("LowCardinality(String)", "string"),
    }
    assert {name: cell["value"] for name, cell in first.items()} == {
        "code": "C001",
        "note": None,
        "amount": "1234.5",
        "updated_at": "2024-03-01T08:30:00.125+08:00 Asia/Shanghai",
        "day": first["day"]["value"],  # (below: midnight, in the server's zone)
        "deposits": 18446744073709551615,
        "ratio": 0.25,
        "active": True,
        "tags": ["vip", "期货"],
        "channel": "wechat",
    }
    assert first["day"]["value"].startswith("2024-03-01T00:00:00.000")
    assert (second["note"]["value"], Decimal(second["amount"]["value"]), second["tags"]["value"]) == (
        "说明",
        Decimal("-0.01"),
        [],
    )
    assert second["updated_at"]["value"] == "2024-03-02T23:59:59.999+08:00 Asia/Shanghai"
    assert (second["active"]["value"], second["channel"]["value"]) == (False, "phone")


def test_a_large_answer_arrives_whole(probe):
    # 300,000 rows: several Native blocks (and, with LZ4/ZSTD, several compressed blocks)
    many = step_ok(probe, "many_rows")
    assert (many["count"], many["sum"], many["text_length"]) == (
        300_000,
        sum(range(300_000)),
        sum(len(str(n)) for n in range(300_000)),
    )


def test_an_empty_answer_has_no_rows(probe):
    assert step_ok(probe, "empty")["rows"] == []


def test_a_write_is_refused_with_clickhouses_error_and_changes_nothing(
    probe, clickhouse_server, grafana_mart
):
    refused = probe["write"]
    assert refused.get("code") == 164, refused
    assert "Cannot execute query in readonly mode" in refused["error"]
    client = connect(clickhouse_server)
    assert client.command(f"SELECT count() FROM {grafana_mart}") == 2
    client.close()
