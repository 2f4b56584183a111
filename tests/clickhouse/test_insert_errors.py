"""An insert with data in the request body that the engine refuses must answer ClickHouse's error.

chDB's streaming inserter reported success (``written_rows`` counted) when the engine refused the
written block: a CHECK constraint, ``max_partitions_per_insert_block``, PostgreSQL refusing the rows of
``INSERT INTO FUNCTION postgresql(...)``. A client told "written" when nothing was is silent data loss.
Each kind is checked through clickhouse-connect (which must raise) and over raw HTTP (an error status
with ``X-ClickHouse-Exception-Code``), and nothing may have been written; the failures found in the
data itself (a value that does not parse, a NULL for a non-Nullable column, a dropped table) too.
"""

from __future__ import annotations

import datetime
import itertools
import json
from dataclasses import dataclass, field

import clickhouse_connect
import psycopg
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from psycopg import sql as pg_sql

from tests.clickhouse.conftest import Raw, as_replication, connect
from tests.fixtures.clickhouse import server_process

_names = itertools.count()


@dataclass(frozen=True)
class FailingInsert:
    """One way an insert fails, as clickhouse-connect sends it and as a raw HTTP body (``{table}``)."""

    columns: str  # the table's columns and constraints
    engine: str  # its ENGINE clause
    rows: list  # what clickhouse-connect inserts
    column_types: list[str]  # clickhouse-connect's types of ``rows`` (no DESCRIBE: the table may be gone)
    http_body: str
    client_code: int
    http_code: int
    settings: dict[str, str] = field(default_factory=dict)  # for both transports
    drop_first: bool = False  # the table is dropped before the insert


FAILING_INSERTS = {
    "check_constraint": FailingInsert(
        columns="a Int32, CONSTRAINT positive CHECK a > 0",
        engine="MergeTree ORDER BY a",
        rows=[[1], [0]],
        column_types=["Int32"],
        http_body="INSERT INTO {table} FORMAT CSV\n1\n0\n",
        client_code=469,
        http_code=469,
    ),
    # a dbt seed's shape: a SETTINGS clause in the INSERT, CSV data
    "too_many_partitions": FailingInsert(
        columns="a Int32, day Date",
        engine="MergeTree PARTITION BY day ORDER BY a",
        rows=[[1, datetime.date(2024, 1, 1)], [2, datetime.date(2024, 1, 2)], [3, datetime.date(2024, 1, 3)]],
        column_types=["Int32", "Date"],
        http_body="INSERT INTO {table} (a, day) SETTINGS max_insert_threads = 1 FORMAT CSV\n"
        "1,2024-01-01\n2,2024-01-02\n3,2024-01-03\n",
        client_code=252,
        http_code=252,
        settings={"max_partitions_per_insert_block": "2"},
    ),
    "unparsable_value": FailingInsert(
        columns="a Int32",
        engine="MergeTree ORDER BY a",
        rows=[["1"], ["not a number"]],
        column_types=["String"],
        http_body="INSERT INTO {table} VALUES (1), ('not a number')",
        client_code=6,
        http_code=6,
    ),
    "null_into_non_nullable": FailingInsert(
        columns="a Int32, note String",
        engine="MergeTree ORDER BY a",
        rows=[[1, "x"], [2, None]],
        column_types=["Int32", "Nullable(String)"],
        http_body="INSERT INTO {table} VALUES (1, 'x'), (2, NULL)",
        client_code=349,  # Native: converting the Nullable column
        http_code=53,  # Values: the NULL literal
        settings={"input_format_null_as_default": "0"},
    ),
    "dropped_table": FailingInsert(
        columns="a Int32",
        engine="MergeTree ORDER BY a",
        rows=[[1]],
        column_types=["Int32"],
        http_body="INSERT INTO {table} VALUES (1)",
        client_code=60,
        http_code=60,
        drop_first=True,
    ),
}


def _summary(response) -> dict:
    return json.loads(response.getheader("X-ClickHouse-Summary"))


def _new_table(client, database: str, case: FailingInsert) -> str:
    table = f"{database}.insert_errors_{next(_names)}"
    client.command(f"CREATE TABLE {table} ({case.columns}) ENGINE = {case.engine}")
    if case.drop_first:
        client.command(f"DROP TABLE {table}")
    return table


def _row_count(client, table: str) -> int:
    return client.command(f"SELECT count() FROM {table}")


@pytest.mark.parametrize("name", FAILING_INSERTS)
def test_clickhouse_connect_insert_raises_and_writes_nothing(client, database, name):
    case = FAILING_INSERTS[name]
    table = _new_table(client, database, case)
    column_names = [column.split()[0] for column in case.columns.split(", ") if "CONSTRAINT" not in column]
    with pytest.raises(DatabaseError) as raised:
        client.insert(
            table,
            case.rows,
            column_names=column_names,
            column_type_names=case.column_types,
            settings=case.settings,
        )
    assert raised.value.code == case.client_code, raised.value
    if not case.drop_first:
        assert _row_count(client, table) == 0  # (the session is usable after the failure)


@pytest.mark.parametrize("name", FAILING_INSERTS)
def test_http_body_insert_answers_the_error_and_writes_nothing(raw, client, database, name):
    case = FAILING_INSERTS[name]
    table = _new_table(client, database, case)
    status, response, body = raw.request(params=case.settings, body=case.http_body.format(table=table))
    assert status >= 400, body
    assert response.getheader("X-ClickHouse-Exception-Code") == str(case.http_code), body
    assert body.startswith(f"Code: {case.http_code}. DB::Exception: ".encode()), body
    assert body.count(b"(version ") == 1 and b"INFILE" not in body and b"devstack" not in body, body
    assert _summary(response)["written_rows"] == "0"
    if not case.drop_first:
        assert _row_count(client, table) == 0


def test_good_inserts_still_write_and_count_their_rows(raw, client, database):
    table = f"{database}.insert_errors_good"
    client.command(f"CREATE OR REPLACE TABLE {table} (a Int32, day Date) ENGINE = MergeTree ORDER BY a")
    written = client.insert(
        table, [[1, datetime.date(2024, 1, 1)], [2, datetime.date(2024, 1, 2)]], column_names=["a", "day"]
    )
    assert written.written_rows == 2
    status, response, body = raw.request(
        body=f"INSERT INTO {table} SETTINGS max_insert_threads = 1 FORMAT CSV\n3,2024-01-03\n4,2024-01-04\n"
    )
    assert status == 200 and response.getheader("X-ClickHouse-Exception-Code") is None, body
    assert _summary(response)["written_rows"] == "2"
    assert client.query(f"SELECT a FROM {table} ORDER BY a").result_rows == [(1,), (2,), (3,), (4,)]


def test_settings_clause_found_in_a_table_called_settings(raw, client, database):
    """The server places its data source before the INSERT's SETTINGS clause: a table named ``settings``
    is not that clause."""
    table = f"{database}.settings"
    client.command(f"CREATE OR REPLACE TABLE {table} (a Int32) ENGINE = MergeTree ORDER BY a")
    for head in (f"INSERT INTO {table}", f"INSERT INTO {table} SETTINGS max_insert_threads = 1"):
        status, _, body = raw.request(body=f"{head} VALUES (1)")
        assert status == 200, body
    assert _row_count(client, table) == 2
    client.command(f"DROP TABLE {table}")


def test_insert_into_a_store_whose_path_looks_like_a_pattern(tmp_path):
    """The server inserts from a spooled file, whose path FROM INFILE would read as a glob pattern: a
    store path with ``{``, ``*`` in it must not make inserts match no file and write nothing."""
    with server_process(["-m", "devstack.clickhouse"], tmp_path / "store{a,b}*", 18650) as port:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
        try:
            client.command("CREATE TABLE default.numbers (a Int32) ENGINE = MergeTree ORDER BY a")
            assert client.insert("default.numbers", [[1], [2]], column_names=["a"]).written_rows == 2
            assert client.command("SELECT count() FROM default.numbers") == 2
        finally:
            client.close()


# --- PostgreSQL refusing the rows of INSERT INTO FUNCTION postgresql(...) -------------------------

PG_TABLE = "insert_errors_tags"  # in schema public, where postgresql() looks (the superuser's
# search_path starts with its own schema, funnelhouse)


@pytest.fixture
def pg_tags(pg_dsn):
    """A PostgreSQL table holding one row, and the credentials of its owner and of a read-only role."""
    reader = f"insert_errors_reader_{next(_names)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{PG_TABLE} (id integer PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO public.{PG_TABLE} VALUES (1, 'first')")
        conn.execute(pg_sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'reader'").format(pg_sql.Identifier(reader)))
        conn.execute(
            pg_sql.SQL("GRANT SELECT ON public.{} TO {}").format(*map(pg_sql.Identifier, (PG_TABLE, reader)))
        )
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    address = f"{info['host']}:{info['port']}"
    yield {
        "owner": (address, info["dbname"], info["user"], info["password"]),
        "reader": (address, info["dbname"], reader, "reader"),
        "dsn": pg_dsn,
    }
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(pg_sql.SQL("DROP OWNED BY {}").format(pg_sql.Identifier(reader)))
        conn.execute(pg_sql.SQL("DROP ROLE {}").format(pg_sql.Identifier(reader)))


def _postgresql_function(credentials: tuple[str, str, str, str]) -> str:
    address, dbname, user, password = credentials
    return f"postgresql('{address}', '{dbname}', '{PG_TABLE}', '{user}', '{password}')"


def _pg_names(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [name for (name,) in conn.execute(f"SELECT name FROM public.{PG_TABLE} ORDER BY id")]


# PostgreSQL's errors reach ClickHouse as libpqxx exceptions: code 1001 (STD_EXCEPTION), as on a real server
@pytest.mark.parametrize(
    ("who", "rows", "refusal"),
    [
        ("owner", [[2, "second"], [1, "duplicate key"]], "duplicate key value violates unique constraint"),
        ("reader", [[2, "second"]], "permission denied for table"),
    ],
    ids=["duplicate_key", "permission_denied"],
)
def test_postgresql_refusal_is_an_error(clickhouse_server, pg_tags, who, rows, refusal):
    function = _postgresql_function(pg_tags[who])
    values = ", ".join(f"({key}, '{name}')" for key, name in rows)
    # As replication's user: the only one the server lets reach PostgreSQL at all.
    replication = as_replication(clickhouse_server)
    raw = Raw(replication)
    try:
        status, response, body = raw.request(body=f"INSERT INTO FUNCTION {function} VALUES {values}")
    finally:
        raw.close()
    assert status == 500 and response.getheader("X-ClickHouse-Exception-Code") == "1001", body
    assert refusal in body.decode()
    assert _summary(response)["written_rows"] == "0"

    client = connect(replication)
    try:
        with pytest.raises(DatabaseError, match=refusal) as raised:
            client.command(f"INSERT INTO FUNCTION {function} VALUES {values}")
        assert raised.value.code == 1001
        with pytest.raises(DatabaseError, match=refusal) as raised:
            client.insert(  # (a dotted name is sent as it is: the address has dots)
                f"FUNCTION {function}",
                rows,
                column_names=["id", "name"],
                column_type_names=["Int32", "String"],
            )
        assert raised.value.code == 1001
    finally:
        client.close()
    assert _pg_names(pg_tags["dsn"]) == ["first"]
