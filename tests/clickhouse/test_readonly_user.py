"""The BI user (``bi_reader``): reads everything, writes nothing, reaches nothing outside the store.

Also Superset's path: SQLAlchemy through clickhouse-connect's ``clickhousedb://`` dialect.
"""

from __future__ import annotations

import pytest
import sqlalchemy
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.clickhouse.conftest import connect


@pytest.fixture(scope="module")
def bi_table(clickhouse_server, database):
    client = connect(clickhouse_server, database=database)
    client.command(
        "CREATE OR REPLACE TABLE kpis (day Date, revenue Decimal(12, 2)) ENGINE = MergeTree ORDER BY day"
    )
    client.command("INSERT INTO kpis VALUES ('2024-01-01', 10.50), ('2024-01-02', 20.25)")
    client.close()
    return f"{database}.kpis"


@pytest.fixture
def reader(clickhouse_server):
    client = connect(clickhouse_server, readonly=True)
    yield client
    client.close()


def test_reader_reads(reader, bi_table):
    assert reader.query(f"SELECT sum(revenue) FROM {bi_table}").result_rows[0][0] == pytest.approx(30.75)


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("CREATE TABLE {db}.nope (a Int8) ENGINE = Memory", 164),
        ("INSERT INTO {table} VALUES ('2024-01-03', 1)", 164),
        ("INSERT INTO {table} SELECT * FROM {table}", 164),
        ("DROP TABLE {table}", 164),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 497),
        ("SELECT file('/etc/passwd')", 497),
        ("SELECT `file`('/etc/passwd')", 497),  # a function name may be quoted
        ("SELECT \"FILE\"('/etc/passwd')", 497),
        ("SELECT `\\x66ile`('/etc/passwd')", 497),  # ... and spelled with escapes
        ("SELECT * FROM `url`('http://127.0.0.1:9/', 'CSV', 'a String')", 497),
        ("SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')", 497),
        ("SELECT * FROM remote('127.0.0.1', system.one)", 497),
        ("SELECT 1 INTO OUTFILE '/tmp/bi_reader_outfile.txt'", 497),
        ("KILL QUERY WHERE 1", 164),
        ("SELECT 1; SELECT 2", 62),
        ("SET readonly = 0", 164),
    ],
)
def test_reader_is_refused(reader, bi_table, statement, code):
    database = bi_table.split(".")[0]
    with pytest.raises(DatabaseError) as refused:
        reader.command(statement.format(table=bi_table, db=database))
    assert f"Code: {code}." in str(refused.value)


def test_reader_writes_were_really_refused(clickhouse_server, bi_table):
    client = connect(clickhouse_server)
    assert client.command(f"SELECT count() FROM {bi_table}") == 2
    client.close()


def test_superset_path_through_sqlalchemy(clickhouse_server, bi_table):
    database, table = bi_table.split(".")
    info = clickhouse_server
    engine = sqlalchemy.create_engine(
        f"clickhousedb://{info['readonly_user']}:{info['readonly_password']}@{info['host']}:{info['port']}/{database}"
    )
    inspector = sqlalchemy.inspect(engine)
    assert database in inspector.get_schema_names()
    assert table in inspector.get_table_names(schema=database)
    assert [column["name"] for column in inspector.get_columns(table, schema=database)] == ["day", "revenue"]
    with engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(f"SELECT day, revenue FROM {bi_table} ORDER BY day")
        ).fetchall()
    assert [str(row[0]) for row in rows] == ["2024-01-01", "2024-01-02"]
    engine.dispose()
