"""The settings the BI user (``bi_reader``) may change: README's ``readonly = 1`` with
``max_execution_time`` and ``limit`` CHANGEABLE_IN_READONLY, as clickhouse-connect (Superset's driver)
sees them: it decides from ``system.settings``' ``readonly`` column what it may send.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy
from clickhouse_connect.driver.exceptions import DatabaseError, ProgrammingError

from tests.clickhouse.conftest import TEST_DATABASE, Raw, basic_auth, connect

PRIVATE = "bi_settings_private"  # not granted to bi_reader on the test server
_SETTINGS = (
    "SELECT name, readonly FROM system.settings WHERE name IN ('max_execution_time', 'limit', 'max_threads')"
)


@pytest.fixture(scope="module")
def tables(clickhouse_server, database):
    """A table in the granted database and one in a database the reader has no grant on."""
    admin = connect(clickhouse_server)
    admin.command(
        f"CREATE OR REPLACE TABLE {database}.bi_numbers ENGINE = MergeTree ORDER BY n AS SELECT number AS n FROM numbers(3)"
    )
    admin.command(f"CREATE DATABASE IF NOT EXISTS {PRIVATE}")
    admin.command(f"CREATE OR REPLACE TABLE {PRIVATE}.secrets ENGINE = Memory AS SELECT 'hidden' AS s")
    yield f"{database}.bi_numbers", f"{PRIVATE}.secrets"
    admin.command(f"DROP TABLE IF EXISTS {database}.bi_numbers")
    admin.command(f"DROP DATABASE IF EXISTS {PRIVATE}")
    admin.close()


@pytest.fixture
def reader(clickhouse_server):
    client = connect(clickhouse_server, readonly=True, settings={"max_execution_time": 30})
    yield client
    client.close()


def _other_max_threads(client) -> int:
    """A max_threads other than the current one: setting the value a setting has is no change."""
    return int(client.command("SELECT getSetting('max_threads')")) + 1


def test_the_reader_sees_exactly_its_two_settings_as_changeable(clickhouse_server):
    for settings in ({}, {"max_execution_time": 30}):  # before and after the server applied it
        client = connect(clickhouse_server, readonly=True, settings=settings)
        try:
            reported = dict(client.query(_SETTINGS).result_rows)
            assert reported == {"max_execution_time": 0, "limit": 0, "max_threads": 1}, settings
            assert client.server_settings["max_execution_time"].readonly == 0
            assert client.server_settings["max_threads"].readonly == 1
        finally:
            client.close()


def test_a_client_with_max_execution_time_connects_and_applies_it(reader, tables):
    table, _ = tables
    assert reader.command("SELECT getSetting('max_execution_time')") == 30
    assert reader.query(f"SELECT count() FROM {table}").result_rows == [(3,)]
    assert reader.query(f"SELECT n FROM {table} ORDER BY n", settings={"limit": 2}).result_rows == [
        (0,),
        (1,),
    ]


def test_superset_uri_with_max_execution_time(clickhouse_server, tables):
    """README's SQLAlchemy URI for Superset, with the query timeout Superset users add to it."""
    table, _ = tables
    info = clickhouse_server
    url = sqlalchemy.URL.create(
        "clickhousedb",
        username=info["readonly_user"],
        password=info["readonly_password"],
        host=info["host"],
        port=int(info["port"]),
        database=TEST_DATABASE,
        query={"max_execution_time": "30"},
    )
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            applied = connection.execute(sqlalchemy.text("SELECT getSetting('max_execution_time')")).scalar()
            rows = connection.execute(sqlalchemy.text(f"SELECT count() FROM {table}")).scalar()
    finally:
        engine.dispose()
    assert (applied, rows) == (30, 3)


def test_another_setting_is_refused(clickhouse_server, reader):
    other = _other_max_threads(reader)
    with pytest.raises(
        ProgrammingError, match="Setting max_threads is readonly"
    ):  # by the client, as it is told
        reader.query("SELECT 1", settings={"max_threads": other})
    with pytest.raises(DatabaseError) as refused:  # by the server
        reader.query(f"SELECT 1 SETTINGS max_threads = {other}")
    assert "Code: 164." in str(
        refused.value
    ) and "Cannot modify 'max_threads' setting in readonly mode" in str(refused.value)


def test_the_server_refuses_another_setting_sent_anyway(clickhouse_server):
    """What a client that ignores ``system.settings`` gets (per request and in a session), also next to
    max_execution_time; the value the setting already has is no change (ClickHouse's rule)."""
    raw = Raw(clickhouse_server)
    reader = basic_auth(clickhouse_server["readonly_user"], clickhouse_server["readonly_password"])

    def send(sql: bytes, **params: str) -> tuple[int, str | None, bytes]:
        status, response, body = raw.request(params=params, body=sql, headers=reader, auth=False)
        return status, response.getheader("X-ClickHouse-Exception-Code"), body

    try:
        status, _, current = send(b"SELECT getSetting('max_threads')")
        assert status == 200
        other = str(int(current) + 1)
        session = {"session_id": f"bi-settings-{uuid.uuid4()}"}
        for params in ({}, {"max_execution_time": "30"}, session):
            status, code, body = send(b"SELECT getSetting('max_threads')", max_threads=other, **params)
            assert code == "164" and status >= 400, (params, body)
            assert b"Cannot modify 'max_threads' setting in readonly mode" in body
        assert send(b"SELECT getSetting('max_threads')", max_threads=current.decode().strip(), **session)[
            ::2
        ] == (
            200,
            current,
        )
        assert send(b"SELECT getSetting('max_execution_time')", **session)[::2] == (200, b"0\n")
        assert send(b"SET max_threads = " + other.encode(), **session)[1] == "164"
        assert send(b"SELECT getSetting('max_threads')", **session)[::2] == (200, current)
    finally:
        raw.close()


def test_grants_still_hold_for_a_client_with_max_execution_time(clickhouse_server, reader, tables):
    table, private = tables
    with pytest.raises(DatabaseError) as refused:
        reader.query(f"SELECT * FROM {private}")
    assert "Code: 497." in str(refused.value) and "hidden" not in str(refused.value)
    for statement in (
        f"INSERT INTO {table} VALUES (9)",
        f"DROP TABLE {table}",
        "CREATE DATABASE bi_settings_nope",
    ):
        with pytest.raises(DatabaseError) as refused:
            reader.command(statement)
        assert "Code: 164." in str(refused.value), statement
    admin = connect(clickhouse_server)
    try:
        assert admin.command(f"SELECT count() FROM {table}") == 3
        assert admin.command("EXISTS DATABASE bi_settings_nope") == 0
    finally:
        admin.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT s.readonly FROM system.settings AS s WHERE s.name = 'max_execution_time'", 0),
        ("SELECT readonly FROM `system`.`settings` s WHERE name = 'max_execution_time'", 0),
        (
            "WITH 'limit' AS wanted SELECT readonly FROM system.settings WHERE name = wanted SETTINGS limit = 5",
            0,
        ),
        (
            "SELECT settings.readonly FROM system.one JOIN system.settings ON settings.name = 'max_execution_time'",
            0,
        ),
        ("(SELECT readonly FROM system.settings WHERE name = 'max_threads')", 1),
        # a column named through the table keeps resolving (its readonly is chDB's own there)
        ("SELECT system.settings.value FROM system.settings WHERE name = 'max_threads'", None),
    ],
)
def test_every_way_of_reading_system_settings_reports_the_constraint(reader, query, expected):
    rows = reader.query(query).result_rows
    assert len(rows) == 1
    if expected is not None:
        assert rows[0][0] == expected
