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
