"""The BI user (``bi_reader``): reads its granted databases (the test server grants ``ch_tests``) plus
``system`` and ``information_schema``, writes nothing, reaches nothing outside the store.

Also Superset's path: SQLAlchemy through clickhouse-connect's ``clickhousedb://`` dialect.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.clickhouse.conftest import Raw, basic_auth, connect
from tests.fixtures.clickhouse import BI_DATABASES

PRIVATE = "ch_private"  # not granted to bi_reader on the test server


@pytest.fixture(scope="module")
def bi_table(clickhouse_server, database):
    client = connect(clickhouse_server, database=database)
    client.command(
        "CREATE OR REPLACE TABLE kpis (day Date, revenue Decimal(12, 2)) ENGINE = MergeTree ORDER BY day"
    )
    client.command("INSERT INTO kpis VALUES ('2024-01-01', 10.50), ('2024-01-02', 20.25)")
    client.close()
    return f"{database}.kpis"


@pytest.fixture(scope="module")
def private_table(clickhouse_server, bi_table):
    """A table outside the grants, and a view in the granted database that reads it."""
    database = bi_table.split(".")[0]
    client = connect(clickhouse_server)
    client.command(f"CREATE DATABASE IF NOT EXISTS {PRIVATE}")
    client.command(
        f"CREATE OR REPLACE TABLE {PRIVATE}.customers (day Date, name String) ENGINE = MergeTree ORDER BY day"
    )
    client.command(f"INSERT INTO {PRIVATE}.customers VALUES ('2024-01-01', 'Alice')")
    client.command(f"CREATE OR REPLACE VIEW {database}.leak AS SELECT * FROM {PRIVATE}.customers")
    client.command(f"CREATE OR REPLACE VIEW {database}.kpis_view AS SELECT * FROM {bi_table}")
    # tables whose engine reads another table: as a view, they read with the reader's rights
    client.command(
        f"CREATE OR REPLACE TABLE {database}.merged AS {bi_table} ENGINE = Merge('{database}', '^kpis$')"
    )
    client.command(
        f"CREATE OR REPLACE TABLE {database}.leak_merged ENGINE = Merge('{PRIVATE}', '^customers$')"
    )
    client.command(f"CREATE OR REPLACE TABLE {database}.leak_alias ENGINE = Alias('{PRIVATE}', 'customers')")
    # an administrator's explicit choice: a view run with its definer's rights, as on a real server
    client.command(
        f"CREATE OR REPLACE VIEW {database}.customer_count SQL SECURITY DEFINER "
        f"AS SELECT count() AS n FROM {PRIVATE}.customers"
    )
    yield f"{PRIVATE}.customers"
    client.command(f"DROP VIEW IF EXISTS {database}.leak")
    client.command(f"DROP VIEW IF EXISTS {database}.kpis_view")
    client.command(f"DROP VIEW IF EXISTS {database}.customer_count")
    for table in ("merged", "leak_merged", "leak_alias"):
        client.command(f"DROP TABLE IF EXISTS {database}.{table}")
    client.command(f"DROP DATABASE IF EXISTS {PRIVATE}")
    client.close()


@pytest.fixture
def reader(clickhouse_server):
    client = connect(clickhouse_server, readonly=True)
    yield client
    client.close()


def test_reader_reads(reader, bi_table):
    assert reader.query(f"SELECT sum(revenue) FROM {bi_table}").result_rows[0][0] == pytest.approx(30.75)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count() FROM {db}.kpis_view",  # a view reading the granted database
        "SELECT n FROM {db}.customer_count",  # SQL SECURITY DEFINER: the definer's rights
        "WITH k AS (SELECT * FROM {table}) SELECT count() FROM k JOIN {table} USING day",
        "SELECT count() FROM merge('{db}', '^kpis$')",
        "SELECT count() FROM {db}.merged",
        "SELECT count() FROM system.tables WHERE database = '{db}'",
        "SELECT count() FROM information_schema.tables WHERE table_schema = '{db}'",
        "SELECT count() FROM INFORMATION_SCHEMA.COLUMNS WHERE table_schema = '{db}'",
        "SELECT 1",
        "SELECT count() FROM numbers(3)",
    ],
)
def test_reader_reads_its_databases_and_the_schema_tables(reader, bi_table, private_table, query):
    assert reader.query(query.format(db=bi_table.split(".")[0], table=bi_table)).result_rows[0][0] >= 1


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM {private}",
        "SELECT * FROM {table} JOIN {private} USING day",
        "SELECT * FROM (SELECT name FROM {private})",
        "WITH c AS (SELECT * FROM {private}) SELECT * FROM c",
        "SELECT * FROM {table} WHERE day IN (SELECT day FROM {private})",
        "SELECT revenue, (SELECT max(name) FROM {private}) FROM {table}",
        "SELECT * FROM {db}.leak",  # views run with the invoker's rights
        "SELECT * FROM {db}.leak_merged",  # ... and tables reading others
        "SELECT * FROM {db}.leak_alias",
        "SELECT * FROM merge('{private_db}', '.*')",
        # the analyzer fails on it after reading the table: its error must not be what answers
        "SELECT CAST((SELECT name FROM {private} LIMIT 1) AS UInt8)",
        "EXPLAIN QUERY TREE SELECT (SELECT name FROM {private} LIMIT 1)",
        # ... also when it fails on a view's rows
        "SELECT CAST((SELECT any(name) FROM {db}.leak) AS UInt8)",
        # DESCRIBE evaluates what it describes: a table function's argument, a subquery
        "DESCRIBE format(JSONEachRow, (SELECT concat('{{\"', any(name), '\":1}}') FROM {private}))",
        "DESC (SELECT CAST((SELECT name FROM {private} LIMIT 1) AS UInt8))",
        # SHOW ... WHERE / LIMIT run their expressions in the SELECT over system.* they become
        "SHOW COLUMNS FROM kpis FROM {db} WHERE throwIf(1, (SELECT any(name) FROM {private}))",
        "SHOW TABLES FROM {db} WHERE name IN (SELECT name FROM {private})",
        "SHOW TABLES FROM {db} LIMIT (SELECT count() FROM {private})",
        # EXPLAIN of ClickHouse's FROM-first SELECT: EXPLAIN ANALYZE runs it, its error tells the rows
        "EXPLAIN ANALYZE FROM {private} SELECT toUInt8(toString(groupArray(tuple(*))))",
        "EXPLAIN SYNTAX run_query_tree_passes = 1 FROM {private} SELECT *",
    ],
)
def test_reader_is_refused_other_databases(reader, bi_table, private_table, query):
    database = bi_table.split(".")[0]
    with pytest.raises(DatabaseError) as refused:
        reader.query(query.format(private=private_table, table=bi_table, db=database, private_db=PRIVATE))
    message = str(refused.value)
    assert "Code: 497." in message and "Alice" not in message
    assert (
        f"bi_reader: Not enough privileges. To execute this query, it's necessary to have the grant SELECT ON {PRIVATE}."
        in message
    )


def test_reader_describes_and_shows_its_databases(reader, bi_table):
    database = bi_table.split(".")[0]
    assert reader.query(f"DESCRIBE (SELECT day FROM {bi_table})").result_rows[0][:2] == ("day", "Date")
    shown = reader.query(f"SHOW TABLES FROM {database} WHERE name = 'kpis' LIMIT 1").result_rows
    assert shown == [("kpis",)]


@pytest.mark.parametrize(
    ("query", "current_database"),
    [
        ("SELECT (SELECT throwIf(count() > 0, '{marker}') FROM {private})", None),
        ("SELECT (SELECT throwIf(count() > 0, '{marker}') FROM customers)", PRIVATE),
        ("SELECT (SELECT throwIf(count() > 0, '{marker}') FROM {db}.leak)", None),
        ("SELECT (SELECT throwIf((toDate('2024-01-01'), 'Alice') IN {private}, '{marker}'))", None),
    ],
)
def test_reader_is_refused_before_anything_of_other_databases_is_evaluated(
    clickhouse_server, bi_table, private_table, query, current_database
):
    """The analyzer evaluates scalar subqueries while it resolves: what it reads would tell the reader
    the data through the time it takes or the engine's error statistics (``system.errors``, readable
    by anyone), so what a query names outside the grants is refused before."""
    marker = f"evaluated-{uuid.uuid4().hex}"
    sql = query.format(marker=marker, private=private_table, db=bi_table.split(".")[0])
    reader = connect(clickhouse_server, readonly=True, database=current_database or "")
    try:
        with pytest.raises(DatabaseError) as refused:
            reader.query(sql)
        assert "Code: 497." in str(refused.value)
        errors = f"SELECT count() FROM system.errors WHERE last_error_message LIKE '%{marker}%'"
        assert reader.command(errors) == 0
    finally:
        reader.close()


@pytest.mark.parametrize("query", ["SELECT * FROM view(SELECT 1)", "SELECT * FROM loop({table}) LIMIT 1"])
def test_table_functions_it_cannot_resolve_are_refused(reader, bi_table, query):
    with pytest.raises(DatabaseError) as refused:
        reader.query(query.format(table=bi_table))
    assert "Code: 497." in str(refused.value)


def test_unqualified_names_resolve_in_the_current_database_also_in_a_session(
    clickhouse_server, private_table
):
    """``database=`` or a session's ``USE`` make an unqualified name another database's: the check sees
    the same current database and query parameters as the query, in a session too."""
    raw = Raw(clickhouse_server)
    reader = basic_auth(clickhouse_server["readonly_user"], clickhouse_server["readonly_password"])

    def code(sql: str, **params: str) -> str | None:
        _, response, _ = raw.request(params=params, body=sql.encode(), headers=reader, auth=False)
        return response.getheader("X-ClickHouse-Exception-Code")

    try:
        assert code("SELECT * FROM customers", database=PRIVATE) == "497"
        assert code("SELECT * FROM {t:Identifier}", param_t=private_table) == "497"
        session = {"session_id": "grants-session"}
        assert code(f"USE {PRIVATE}", **session) is None
        assert code("SELECT * FROM customers", **session) == "497"
        assert code("SELECT count() FROM system.one", **session) is None
    finally:
        raw.close()


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


# --- metadata: a real server lists only what the user has a grant in --------------------------------

_DATABASES_LISTED = [
    "SHOW DATABASES",
    "SELECT name FROM system.databases",
    "SELECT database FROM system.tables",
    "SELECT database FROM system.columns",
    "SELECT database FROM system.parts",  # (with the partition values)
    "SELECT table_schema FROM information_schema.tables",
    "SELECT table_schema FROM INFORMATION_SCHEMA.COLUMNS",
    "SELECT word FROM system.completions WHERE context = 'database'",
    "SELECT belongs FROM system.completions WHERE context = 'table'",
]


# (the private table's name is no table's in the granted database)
_PRIVATE_COLUMN_COMPLETIONS = (
    "SELECT word FROM system.completions WHERE context = 'column' AND belongs = 'customers'"
)


@pytest.mark.parametrize("query", _DATABASES_LISTED)
def test_reader_sees_the_metadata_of_its_databases_only(
    clickhouse_server, reader, bi_table, private_table, query
):
    database = bi_table.split(".")[0]
    admin = connect(clickhouse_server)
    try:
        assert PRIVATE in {row[0] for row in admin.query(query).result_rows}
    finally:
        admin.close()
    listed = {row[0] for row in reader.query(query).result_rows}
    assert database in listed and PRIVATE not in listed
    visible = {*BI_DATABASES, "system", "information_schema", "INFORMATION_SCHEMA"}
    assert listed <= visible


def test_reader_lists_and_shows_its_own_objects_only(clickhouse_server, reader, bi_table, private_table):
    database = bi_table.split(".")[0]
    admin = connect(clickhouse_server)
    try:
        assert admin.query(f"SHOW TABLES FROM {PRIVATE}").result_rows == [("customers",)]
        assert admin.query(_PRIVATE_COLUMN_COMPLETIONS).result_rows
    finally:
        admin.close()
    assert reader.query(f"SHOW TABLES FROM {PRIVATE}").result_rows == []
    assert reader.query(f"SHOW COLUMNS FROM customers FROM {PRIVATE}").result_rows == []
    assert reader.query(_PRIVATE_COLUMN_COMPLETIONS).result_rows == []
    assert ("kpis",) in reader.query(f"SHOW TABLES FROM {database}").result_rows
    assert reader.command(f"SHOW CREATE TABLE {bi_table}").startswith(f"CREATE TABLE {bi_table}")
    assert reader.command(f"EXISTS TABLE {bi_table} SETTINGS limit = 1") == 1
    assert reader.command(f"EXISTS {database}.nothing_here") == 0
    assert reader.command(f"EXISTS DATABASE {database}") == 1
    assert reader.command("EXISTS TABLE system.one") == 1


@pytest.mark.parametrize(
    "lift",
    [
        {"params": {"additional_table_filters": "{}"}},
        {"suffix": " SETTINGS additional_table_filters = {}"},
        {"suffix": " SETTINGS additional_table_filters = {'system.databases': '1'}"},
    ],
)
def test_reader_cannot_lift_the_metadata_filter(clickhouse_server, private_table, lift):
    raw = Raw(clickhouse_server)
    reader = basic_auth(clickhouse_server["readonly_user"], clickhouse_server["readonly_password"])

    def databases(suffix: str = "", **params: str) -> tuple[str | None, bytes]:
        sql = f"SELECT name FROM system.databases{suffix}"
        _, response, body = raw.request(params=params, body=sql.encode(), headers=reader, auth=False)
        return response.getheader("X-ClickHouse-Exception-Code"), body

    try:
        assert databases()[0] is None and PRIVATE.encode() not in databases()[1]
        code, body = databases(lift.get("suffix", ""), **lift.get("params", {}))
        assert code == "164" and b"Cannot modify 'additional_table_filters' setting in readonly mode" in body
        assert PRIVATE.encode() not in databases()[1]
    finally:
        raw.close()


def test_a_readers_session_keeps_the_metadata_filter_when_reopened(clickhouse_server, private_table):
    """A request with another max_execution_time re-opens the session's connection (readonly=1 forbids
    changing it): the new one is filtered too."""
    raw = Raw(clickhouse_server)
    reader = basic_auth(clickhouse_server["readonly_user"], clickhouse_server["readonly_password"])
    session = {"session_id": f"metadata-{uuid.uuid4()}"}
    try:
        for settings in ({"max_execution_time": "30"}, {"max_execution_time": "60"}, {}):
            status, _, body = raw.request(
                params={**session, **settings}, body=b"SHOW DATABASES", headers=reader, auth=False
            )
            assert status == 200 and b"system" in body and PRIVATE.encode() not in body, settings
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("query", "params", "grant"),
    [
        # what a real server checks (InterpreterShowCreateQuery, InterpreterExistsQuery)
        ("SHOW CREATE TABLE {private}", {}, "SHOW COLUMNS ON {private}"),
        ("SHOW CREATE {private} FORMAT JSON", {}, "SHOW COLUMNS ON {private}"),
        (
            "SHOW CREATE TABLE {{d:Identifier}}.customers",
            {"param_d": "{private_db}"},
            "SHOW COLUMNS ON {private}",
        ),
        ("SHOW CREATE TABLE customers", {"database": PRIVATE}, "SHOW COLUMNS ON {private}"),
        ("SHOW CREATE DATABASE {private_db}", {}, "SHOW DATABASES ON {private_db}.*"),
        ("EXISTS TABLE {private} SETTINGS limit = 1", {}, "SHOW TABLES ON {private}"),
        ("EXISTS {private_db}.nothing_here", {}, "SHOW TABLES ON {private_db}.nothing_here"),
        ("EXISTS DATABASE {private_db}", {}, "SHOW DATABASES ON {private_db}.*"),
        # merge() reads system tables past the filter that hides other databases' rows
        ("SELECT database FROM merge('system', '^tables$')", {}, "SELECT ON system.*"),
        ("SELECT hasColumnInTable('{private_db}', 'customers', 'name')", {}, "SHOW COLUMNS ON {private}"),
        ("SELECT naiveBayesClassifier('{private}', 'text')", {}, "dictGet ON {private}"),
        # a table that does not exist is refused alike: the refusal tells nothing of what exists
        ("SELECT 1 WHERE 1 IN {private_db}.nothing_here", {}, "SELECT ON {private_db}.nothing_here"),
    ],
)
def test_reader_is_refused_other_databases_objects(clickhouse_server, private_table, query, params, grant):
    raw = Raw(clickhouse_server)
    reader = basic_auth(clickhouse_server["readonly_user"], clickhouse_server["readonly_password"])
    names = {"private": private_table, "private_db": PRIVATE}
    params = {name: value.format(**names) for name, value in params.items()}
    try:
        _, response, body = raw.request(
            params=params, body=query.format(**names).encode(), headers=reader, auth=False
        )
    finally:
        raw.close()
    assert response.getheader("X-ClickHouse-Exception-Code") == "497", body
    expected = (
        f"bi_reader: Not enough privileges. To execute this query, it's necessary to have the grant {grant}"
    )
    assert expected.format(**names).encode() in body and b"CREATE" not in body


def test_reader_gets_no_names_of_other_databases_objects(clickhouse_server, reader, bi_table, private_table):
    """Nor through the engine's "Maybe you meant ch_private.customers?", the errors it keeps, its start-up
    jobs or the completions of a table named like a visible one."""
    database = bi_table.split(".")[0]
    admin = connect(clickhouse_server)
    admin.command(f"CREATE OR REPLACE TABLE {PRIVATE}.kpis (secret_margin Float64) ENGINE = Memory")
    try:
        with pytest.raises(DatabaseError) as unknown:
            reader.query(f"SELECT * FROM {database}.customer")
        assert "Code: 60." in str(unknown.value) and PRIVATE not in str(unknown.value)
        for query in [
            "SELECT last_error_message FROM system.errors",
            "SELECT job FROM system.asynchronous_loader",
            "SELECT word FROM system.completions WHERE context = 'column' AND belongs = 'kpis'",
        ]:
            shown = str(reader.query(query).result_rows)
            assert PRIVATE not in shown and "secret_margin" not in shown, query
        # every user's running query texts (its own one included: chDB runs them all as one user)
        assert reader.query("SELECT count() FROM system.processes").result_rows == [(0,)]
        assert admin.query("SELECT count() FROM system.processes").result_rows != [(0,)]
    finally:
        admin.command(f"DROP TABLE IF EXISTS {PRIVATE}.kpis")
        admin.close()


@pytest.fixture(scope="module")
def dependent_objects(clickhouse_server, bi_table, private_table):
    """A materialized view outside the grants reading the granted table (system.tables lists it among the
    table's dependencies), and a view in the granted database reading those dependencies."""
    database = bi_table.split(".")[0]
    admin = connect(clickhouse_server)
    admin.command(f"CREATE MATERIALIZED VIEW {PRIVATE}.kpis_copy ENGINE = Memory AS SELECT * FROM {bi_table}")
    admin.command(
        f"CREATE OR REPLACE VIEW {database}.table_dependencies AS "
        "SELECT name, dependencies_database FROM system.tables"
    )
    shown = admin.query(f"SELECT dependencies_database FROM system.tables WHERE database = '{database}'")
    assert PRIVATE in str(shown.result_rows)
    yield
    admin.command(f"DROP VIEW IF EXISTS {database}.table_dependencies")
    admin.command(f"DROP VIEW IF EXISTS {PRIVATE}.kpis_copy")
    admin.close()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT name, dependencies_database FROM system.tables WHERE database = '{db}'",
        "SELECT * FROM system.tables WHERE database = '{db}'",
        "SELECT t.* FROM system.tables AS t WHERE database = '{db}'",
        "SELECT name FROM system.tables WHERE has(dependencies_database, '{private_db}')",
        # the analyzer evaluates a scalar subquery before anything runs: its error would quote the row
        "SELECT (SELECT CAST(toString(tuple(*)) AS UInt8) FROM system.tables WHERE database = '{db}' AND name = 'kpis')",
        "SHOW TABLES FROM {db} WHERE has(dependencies_database, '{private_db}')",
        "SELECT * FROM {db}.table_dependencies",
    ],
)
def test_reader_is_refused_the_columns_naming_other_databases_objects(
    reader, bi_table, dependent_objects, query
):
    with pytest.raises(DatabaseError) as refused:
        reader.query(query.format(db=bi_table.split(".")[0], private_db=PRIVATE))
    message = str(refused.value)
    assert "Code: 497." in message and PRIVATE not in message
    assert (
        "bi_reader: Not enough privileges. To execute this query, it's necessary to have the grant "
        "SELECT(dependencies_database, dependencies_table, loading_dependencies_database, " in message
    )


def test_reader_reads_the_other_columns_of_system_tables(reader, bi_table, dependent_objects):
    database, table = bi_table.split(".")
    rows = reader.query(
        f"SELECT name, engine, create_table_query FROM system.tables WHERE database = '{database}' AND name = '{table}'"
    ).result_rows
    assert rows[0][:2] == (table, "MergeTree")
    assert reader.command(f"SELECT count(*) FROM system.tables WHERE database = '{database}'") >= 1
    # a `*` of a SELECT over a subquery, as the engine wraps a query run with the `limit` setting
    listed = f"SELECT * FROM (SELECT name FROM system.tables WHERE database = '{database}')"
    assert (table,) in reader.query(listed).result_rows
    assert (table,) in reader.query(listed.replace("*", "name"), settings={"limit": "100"}).result_rows
    described = [row[0] for row in reader.query("DESCRIBE TABLE system.tables").result_rows]
    assert "dependencies_table" in described


def test_engine_access_errors_name_the_connected_user(reader):
    """The engine checks access as its one user, `default`; the reader is told its own name."""
    with pytest.raises(DatabaseError) as refused:
        reader.query("SHOW USERS")
    message = str(refused.value)
    assert "Code: 497. DB::Exception: bi_reader: Not enough privileges" in message
    assert "default" not in message
