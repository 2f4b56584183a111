"""clickhouse-connect, the client Dagster, dbt and our loaders use, against the local server."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, StreamFailureError

from tests.clickhouse.conftest import connect


def test_connects_and_reports_the_engine_version(client):
    assert client.server_version.startswith("26.9")
    assert client.command("SELECT 40 + 2") == 42


def test_dataframe_round_trip_with_nullable_array_and_datetime_over_lz4(clickhouse_server, database):
    client = connect(clickhouse_server, database=database, compress="lz4")
    client.command(
        "CREATE OR REPLACE TABLE frames (id Int64, name Nullable(String), tags Array(String), "
        "seen DateTime, score Nullable(Float64)) ENGINE = MergeTree ORDER BY id"
    )
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["a", None, "tab\there 'quoted'"],
            "tags": [["x", "y"], [], ["z"]],
            "seen": pd.to_datetime(["2024-01-01 10:00:00", "2024-02-29 23:59:59", "1999-12-31 00:00:01"]),
            "score": [1.5, None, -2.0],
        }
    )
    summary = client.insert_df("frames", frame)
    assert summary.written_rows == 3
    back = client.query_df("SELECT * FROM frames ORDER BY id")
    assert back["id"].tolist() == [1, 2, 3]
    assert (
        back["name"].tolist()[0] == "a"
        and pd.isna(back["name"][1])
        and back["name"][2] == "tab\there 'quoted'"
    )
    assert [list(tags) for tags in back["tags"]] == [["x", "y"], [], ["z"]]
    assert [ts.to_pydatetime().replace(tzinfo=None) for ts in back["seen"]] == [
        dt.datetime(2024, 1, 1, 10),
        dt.datetime(2024, 2, 29, 23, 59, 59),
        dt.datetime(1999, 12, 31, 0, 0, 1),
    ]
    assert pd.isna(back["score"][1]) and back["score"][2] == -2.0
    client.close()


def test_arrow_both_ways(client):
    client.command("CREATE OR REPLACE TABLE arrows (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
    table = pa.table({"k": pa.array(range(1000), pa.uint32()), "v": [f"v{i}" for i in range(1000)]})
    client.insert_arrow("arrows", table)
    back = client.query_arrow("SELECT k, v FROM arrows ORDER BY k")
    assert back.num_rows == 1000
    assert back.column("k").to_pylist() == list(range(1000)) and back.column("v")[999].as_py() == "v999"


def test_a_100k_row_stream_arrives_in_blocks(client):
    with client.query_row_block_stream("SELECT number, toString(number) FROM numbers(100000)") as stream:
        blocks = list(stream)
    rows = [row for block in blocks for row in block]
    assert len(rows) == 100_000 and rows[-1] == (99_999, "99999")


def test_raw_json_each_row_limit_0_probe_and_command_scalar(client):
    assert client.raw_query("SELECT 1 AS a, 'x' AS b", fmt="JSONEachRow") == b'{"a":1,"b":"x"}\n'
    probe = client.query("SELECT number AS n, toString(number) AS s FROM numbers(10) LIMIT 0")
    assert probe.column_names == ("n", "s") and probe.result_rows == []
    assert client.command("SELECT count() FROM numbers(1234)") == 1234


def test_bind_parameters_with_tabs_quotes_and_a_5000_character_value(client):
    tricky = "tab\there, 'single' \"double\" back\\slash\nnewline"
    assert client.query("SELECT {v:String}", parameters={"v": tricky}).result_rows == [(tricky,)]
    long_value = "é" + "x" * 4999  # over clickhouse-connect's 4 KB limit: sent as multipart/form-data
    result = client.query("SELECT {v:String} AS v, length({v:String})", parameters={"v": long_value})
    assert result.result_rows == [(long_value, len(long_value.encode()))]


def test_errors_before_and_during_a_stream_leave_the_next_query_clean(client):
    with pytest.raises(DatabaseError) as unknown:
        client.query("SELECT * FROM no_such_table")
    assert "code: 60" in str(unknown.value)
    with (
        pytest.raises(StreamFailureError),
        client.query_row_block_stream(
            "SELECT throwIf(number = 50000) FROM numbers(100000) SETTINGS max_block_size = 1000"
        ) as stream,
    ):
        for _ in stream:
            pass
    with pytest.raises(DatabaseError):
        client.query("SELECT throwIf(number = 90000) FROM numbers(100000) SETTINGS max_block_size = 1000")
    assert client.query("SELECT 'clean' AS c").result_rows == [("clean",)]


def test_a_2m_row_native_insert_arrives_whole(client):
    client.command("CREATE OR REPLACE TABLE bulk (n UInt64, f Float64) ENGINE = MergeTree ORDER BY n")
    count = 2_000_000
    frame = pd.DataFrame(
        {"n": np.arange(count, dtype=np.uint64), "f": np.arange(count, dtype=np.float64) / 2}
    )
    summary = client.insert_df("bulk", frame)
    assert summary.written_rows == count
    assert client.query("SELECT count(), sum(n), max(f) FROM bulk").result_rows == [
        (count, count * (count - 1) // 2, (count - 1) / 2)
    ]
