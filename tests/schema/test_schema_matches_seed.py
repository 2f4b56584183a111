"""The migrated database holds everything the seed document defines: tables, columns, types,
indexes, views, partitioning. Read from the document itself, so a drift either way fails here."""

from __future__ import annotations

import re

import psycopg
import pytest

from tests.schema import seed_document

_TYPE_NAMES = {
    "BIGSERIAL": "bigint",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "TEXT": "text",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp without time zone",
    "JSONB": "jsonb",
    "VARCHAR": "character varying",
    "DECIMAL": "numeric",
}


def _columns(conn, table):
    rows = conn.execute(
        """SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale
           FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s""",
        (table,),
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_seed_document_is_parsed():
    tables = seed_document.tables()
    assert len(tables) == 18, sorted(tables)
    assert "total_反问_count" in tables["funnel_mofu"].columns
    assert seed_document.partitioned_tables() == {"conversations": "sent_at"}
    assert len(seed_document.section4_indexes()) == 5
    assert set(seed_document.views()) == {"v_customer_overview", "v_employee_performance"}


def test_every_seed_table_and_column_exists_with_a_compatible_type(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        for table in seed_document.tables().values():
            actual = _columns(conn, table.name)
            assert actual, f"table {table.name} missing"
            for column, seed_type in table.columns.items():
                assert column in actual, f"{table.name}.{column} missing"
                data_type, max_length, precision, scale = actual[column]
                base = re.match(r"[A-Z]+", seed_type).group(0)
                assert data_type == _TYPE_NAMES[base], f"{table.name}.{column}: {data_type} vs {seed_type}"
                size = re.search(r"\((\d+)(?:,(\d+))?\)", seed_type)
                if base == "VARCHAR":
                    assert max_length == int(size.group(1)), f"{table.name}.{column} length"
                if base == "DECIMAL":
                    assert (precision, scale) == (int(size.group(1)), int(size.group(2)))


def _index_columns(conn, table):
    """index name -> list of key columns (with DESC where the index is descending)."""
    rows = conn.execute(
        """SELECT i.relname, pg_get_indexdef(i.oid)
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
           WHERE t.relname = %s""",
        (table,),
    ).fetchall()
    result = {}
    for name, definition in rows:
        columns = re.search(r"\((.*)\)$", definition).group(1)
        result[name] = [c.strip().strip('"') for c in columns.split(",")]
    return result


def test_every_seed_index_exists(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        for table in seed_document.tables().values():
            present = list(_index_columns(conn, table.name).values())
            for index, columns in table.inline_indexes.items():
                assert columns in present, f"{table.name}: index {index} on {columns} missing"
        for index, (table, columns) in seed_document.section4_indexes().items():
            indexes = _index_columns(conn, table)
            assert index in indexes, f"section 4 index {index} missing"
            assert indexes[index] == columns, f"{index}: {indexes[index]} vs {columns}"


def test_views_have_the_seed_columns_in_order(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        for view, columns in seed_document.views().items():
            actual = [
                row[0]
                for row in conn.execute(
                    """SELECT column_name FROM information_schema.columns
                       WHERE table_name = %s ORDER BY ordinal_position""",
                    (view,),
                )
            ]
            assert actual == columns


@pytest.mark.parametrize("table", ["conversations"])
def test_partitioned_by_month_with_default_partition(pg_dsn, table):
    with psycopg.connect(pg_dsn) as conn:
        key = conn.execute("SELECT pg_get_partkeydef(%s::regclass)", (table,)).fetchone()[0]
        assert key == "RANGE (sent_at)"
        partitions = [
            row[0]
            for row in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", (table,)
            )
        ]
        assert "conversations_default" in partitions
        assert {"conversations_2025_11", "conversations_2025_12"} <= set(partitions)
