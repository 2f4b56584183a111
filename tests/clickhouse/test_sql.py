"""The statement lexer decides where INSERT data starts and refuses multi-statements: check its edges."""

from __future__ import annotations

import pytest

from devstack.clickhouse import sql
from devstack.clickhouse.errors import ClickHouseError


def test_insert_data_starts_after_format_name_and_one_newline():
    text = 'INSERT INTO t (`a`, `b`) FORMAT CSV\n1,"x\n\nDROP TABLE t"\n'
    insert = sql.find_data_insert(text, complete=True)
    assert insert.format == "CSV"
    assert insert.head.strip() == "INSERT INTO t (`a`, `b`)"
    assert text[insert.data_offset :] == '1,"x\n\nDROP TABLE t"\n'


def test_values_insert_and_insert_select_are_told_apart():
    values = sql.find_data_insert("insert into t values (1, 'a;b')", complete=True)
    assert values.format == "Values" and values.head.strip() == "insert into t"
    assert sql.find_data_insert("INSERT INTO t SELECT * FROM values('a Int8', 1)", complete=True) is None
    assert sql.find_data_insert("INSERT INTO t (a) SELECT 1 FORMAT CSV", complete=True) is None


def test_format_inside_literals_or_comments_is_not_syntax():
    text = "INSERT INTO t /* FORMAT CSV */ SETTINGS x = 'FORMAT JSON' FORMAT TSV\n1\n"
    insert = sql.find_data_insert(text, complete=True)
    assert insert.format == "TSV"
    assert text[insert.data_offset :] == "1\n"


def test_incomplete_head_asks_for_more_input():
    with pytest.raises(sql.NeedMoreInput):
        sql.find_data_insert("INSERT INTO t FORMAT Nat", complete=False)
    with pytest.raises(sql.NeedMoreInput):
        sql.find_data_insert("INSERT INTO t SETTINGS x = 'unterminated", complete=False)


def test_multi_statements_are_refused_but_a_trailing_semicolon_is_not():
    with pytest.raises(ClickHouseError) as refused:
        sql.classify("SELECT 1; DROP TABLE t")
    assert refused.value.code == 62
    assert sql.classify("SELECT ';' AS a; -- trailing comment\n").sql == "SELECT ';' AS a"


def test_output_format_and_external_functions():
    statement = sql.classify("SELECT x FROM (SELECT 1 AS x FORMAT CSV) FORMAT JSONEachRow")
    assert statement.format == "JSONEachRow"
    assert sql.classify("SELECT 1 SETTINGS max_threads = 1 FORMAT `Native`").format == "Native"
    assert sql.classify("SELECT count() FORMAT CSV SETTINGS max_threads = 1").format == "CSV"
    for column_named_format in [
        "SELECT format FROM t",
        "SELECT x FROM t ORDER BY format DESC",
        "SELECT 1 AS format",
    ]:
        assert sql.classify(column_named_format).format is None
    assert sql.classify("SELECT * FROM FILE('/etc/passwd', 'LineAsString')").external_function() == "FILE"
    assert sql.classify("SELECT 'file(' AS a, s3 FROM t").external_function() is None
    assert sql.classify("SELECT 1 INTO OUTFILE 'x'").writes_outfile()
    assert sql.classify("SET a = 1, `b` = 'x,y'").set_names() == ["a", "b"]


def test_projections_indexes_and_local_sources_are_no_external_calls():
    """A projection or index named like a function is no call of it; a dictionary's CLICKHOUSE source
    without HOST/PORT/USER/PASSWORD reads this server's tables, unless it names the system database."""
    reaches_out = sql.EXTERNAL_SOURCES
    for not_a_call in [
        "ALTER TABLE t ADD PROJECTION file (SELECT * ORDER BY file)",
        "ALTER TABLE t ADD PROJECTION IF NOT EXISTS url (SELECT url ORDER BY url)",
        "CREATE TABLE t (id UInt64, file String, PROJECTION file (SELECT * ORDER BY file)) ENGINE = Memory",
        "ALTER TABLE t ADD INDEX url (url) TYPE bloom_filter",
        "ALTER TABLE t ADD INDEX IF NOT EXISTS url (url) TYPE bloom_filter",
        "CREATE TABLE t (url String, INDEX url (url) TYPE bloom_filter) ENGINE = MergeTree ORDER BY url",
        "INSERT INTO t SELECT * FROM input('id UInt64') FORMAT CSV",
        "CREATE DICTIONARY d (id UInt64) PRIMARY KEY id SOURCE(CLICKHOUSE(TABLE 'pages' DB 'marts'))"
        " LAYOUT(FLAT()) LIFETIME(0)",
        "CREATE DICTIONARY d (id UInt64) PRIMARY KEY id SOURCE(CLICKHOUSE(DB 'marts'"
        ' QUERY "select id from marts.pages")) LAYOUT(FLAT()) LIFETIME(0)',
    ]:
        assert sql.classify(not_a_call).called(reaches_out) is None, not_a_call
    for source in [
        "HOST 'db.example' TABLE 'pages'",
        "user 'default' password 'x' db 'marts' table 'pages'",
        "TABLE 'named_collections' DB 'system'",
        "TABLE 'tables' DB 'system'",
        "QUERY 'select * from system.tables'",
        "QUERY 'select * from url(''http://x'', TSV, ''a String'')'",
        "QUERY 'select * from merge(REGEXP(''^sys''), ''^named'')'",
    ]:
        statement = (
            f"CREATE DICTIONARY d (id UInt64) PRIMARY KEY id SOURCE(CLICKHOUSE({source})) LAYOUT(FLAT())"
        )
        assert sql.classify(statement).called(reaches_out) == "CLICKHOUSE", source
    # file() after a projection's or index's name is still a call
    assert sql.classify("SELECT * FROM file('x') AS t").called(reaches_out) == "file"


def test_table_functions_over_the_current_database():
    """currentDatabase() and merge()'s one argument read the request's current database: refused
    only over system or where it is not known."""
    for text in [
        "SELECT * FROM merge(currentDatabase(), '^mart_')",
        "SELECT * FROM merge('^mart_')",
        "CREATE TABLE m (id UInt64) ENGINE = Merge(currentDatabase(), '^mart_')",
        "SELECT * FROM mergeTreeIndex(currentDatabase(), 'events')",
    ]:
        statement = sql.classify(text)
        assert statement.reads_system_by_function("marts") is None, text
        assert statement.reads_system_by_function("system"), text
        assert statement.reads_system_by_function(None), text
    assert sql.classify("SELECT * FROM merge(currentDatabase() || 'x', 't')").reads_system_by_function(
        "marts"
    )


def test_secrets_are_masked_in_logged_query_text():
    from devstack.clickhouse.sql import loggable

    statements = [
        "CREATE NAMED COLLECTION pg AS host = '127.0.0.1', port = 5432, user = 'u', password = 's3cr3t'",
        "ALTER NAMED COLLECTION pg SET password='s3cr3t'",
        "SELECT * FROM postgresql('127.0.0.1:5432', 'db', 'customers', 'u', 's3cr3t')",
        "CREATE USER bi IDENTIFIED WITH sha256_password BY 's3cr3t'",
    ]
    for statement in statements:
        masked = loggable(statement)
        assert "s3cr3t" not in masked, masked
        assert "[HIDDEN]" in masked
    assert loggable("SELECT 'password'") == "SELECT 'password'"
