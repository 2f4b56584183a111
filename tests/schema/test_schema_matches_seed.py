"""The migrated database holds everything the seed document defines: tables, columns, types,
NOT NULL, defaults, primary, unique and foreign keys (with their ON DELETE), indexes, views,
partitioning. Read from the document itself, so a drift either way fails here; the schema's
deliberate departures from the seed are named below, each documented in README."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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


# Departures from the seed, each documented in README ("The operational schema"). conversations is
# partitioned by sent_at (seed section 5), and PostgreSQL wants the partition key in the table's
# unique keys and in every foreign key into it. (That foreign key also has ON UPDATE CASCADE,
# migration 0022: a corrected sent_at is followed, as the seed's key on id alone would allow.)
_PRIMARY_KEY_DEVIATIONS = {("conversations", ("id",)): ("conversations", ("id", "sent_at"))}
_FOREIGN_KEY_DEVIATIONS = {
    ("conversation_events", ("conversation_id",), "conversations", ("id",), "NO ACTION"): (
        "conversation_events",
        ("conversation_id", "conversation_sent_at"),
        "conversations",
        ("id", "sent_at"),
        "NO ACTION",
    )
}
# Business keys the seed lacks (README, "Schema additions"): unique keys of added columns.
_ADDED_UNIQUE_KEYS = {
    ("customer_journey", ("source_key",)),
    ("funnel_tofu", ("source_key",)),
    ("funnel_mofu", ("source_key",)),
    ("funnel_bofu", ("source_key",)),
    ("conversation_events", ("source_key",)),
    ("training_courses", ("course_code",)),
    ("conversations", ("source_message_id", "sent_at")),
}


@dataclass
class SeedRules:
    """What a seed table's CREATE TABLE says beyond types: per column NOT NULL and DEFAULT (SQL
    text), and the table's primary, unique and foreign keys."""

    not_null: set[str] = field(default_factory=set)
    defaults: dict[str, str] = field(default_factory=dict)
    serial: set[str] = field(default_factory=set)
    primary_key: tuple[str, ...] = ()
    unique: set[tuple[str, ...]] = field(default_factory=set)
    # (columns, referenced table, referenced columns, ON DELETE)
    foreign_keys: set[tuple[tuple[str, ...], str, tuple[str, ...], str]] = field(default_factory=set)


_TABLE_UNIQUE = re.compile(r"UNIQUE\s*\(([^)]*)\)")
_DEFAULT = re.compile(r"\bDEFAULT ('[^']*'|\S+)")
_REFERENCES = re.compile(
    r"\bREFERENCES (\w+)\((\w+)\)(?: ON DELETE (CASCADE|SET NULL|SET DEFAULT|RESTRICT))?"
)


def seed_rules() -> dict[str, SeedRules]:
    """Table -> its :class:`SeedRules`, from the seed's CREATE TABLE statements (seed_document's
    reading of them; section 5's PARTITION BY sketch lists no columns and is left out)."""
    result = {}
    for block in seed_document._SQL_BLOCK.findall(seed_document._text()):
        for name, body, partition, _key in seed_document._CREATE_TABLE.findall(block):
            if partition:
                continue
            rules = result[name] = SeedRules()
            for raw in body.splitlines():
                line = raw.split("--")[0].strip().rstrip(",")
                table_unique = _TABLE_UNIQUE.fullmatch(line)
                if table_unique:
                    rules.unique.add(tuple(c.strip() for c in table_unique.group(1).split(",")))
                    continue
                definition = seed_document._COLUMN.match(line)
                if not definition or definition.group(1) in seed_document._NOT_COLUMNS:
                    continue  # blank, or an INDEX clause
                column, type_text = definition.groups()
                rest = line[definition.end() :]
                if type_text == "BIGSERIAL":
                    rules.serial.add(column)
                if "NOT NULL" in rest or "PRIMARY KEY" in rest:
                    rules.not_null.add(column)
                if "PRIMARY KEY" in rest:
                    rules.primary_key = (column,)
                if re.search(r"\bUNIQUE\b", rest):
                    rules.unique.add((column,))
                default = _DEFAULT.search(rest)
                if default:
                    rules.defaults[column] = default.group(1)
                reference = _REFERENCES.search(rest)
                if reference:
                    target, target_column, on_delete = reference.groups()
                    rules.foreign_keys.add(((column,), target, (target_column,), on_delete or "NO ACTION"))
    return result


def test_seed_document_is_parsed():
    tables = seed_document.tables()
    assert len(tables) == 18, sorted(tables)
    assert "total_反问_count" in tables["funnel_mofu"].columns
    assert seed_document.partitioned_tables() == {"conversations": "sent_at"}
    assert len(seed_document.section4_indexes()) == 5
    assert set(seed_document.views()) == {"v_customer_overview", "v_employee_performance"}
    rules = seed_rules()
    assert set(rules) == set(tables)
    assert rules["customers"].defaults["tier"] == "'C'" and "tier" in rules["customers"].not_null
    assert rules["customers"].defaults["created_at"] == "CURRENT_TIMESTAMP"
    assert rules["customers"].primary_key == ("id",)
    assert (("customer_id",), "customers", ("id",), "CASCADE") in rules["customer_tags"].foreign_keys
    assert (("customer_id", "tag_id") in rules["customer_tags"].unique) and (
        ("name",) in rules["tags"].unique
    )
    assert sum(len(r.foreign_keys) for r in rules.values()) == 28
    assert "conversation_id" not in rules["conversation_events"].not_null


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


def _indexes(conn, table):
    """index name -> (method, key columns with DESC where descending, unique, what follows the keys:
    INCLUDE, NULLS NOT DISTINCT, WHERE)."""
    rows = conn.execute(
        """SELECT i.relname, pg_get_indexdef(i.oid), x.indisunique
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = to_regclass(%s)""",
        (f"public.{table}",),
    ).fetchall()
    result = {}
    for name, definition, unique in rows:
        method, keys, rest = re.search(r" USING (\w+) \((.*?)\)(.*)$", definition).groups()
        result[name] = (method, [k.strip().replace('"', "") for k in keys.split(",")], unique, rest.strip())
    return result


def _seed_indexes() -> dict[str, tuple[str, list[str]]]:
    """index name as the migrations name it -> (table, key columns): the inline INDEX clauses of
    section 2 get their table as prefix (idx_customer_code of customers: idx_customers_customer_code;
    PostgreSQL index names share one namespace per schema), section 4's keep theirs."""
    inline = {
        f"idx_{table.name}_{index.removeprefix('idx_')}": (table.name, columns)
        for table in seed_document.tables().values()
        for index, columns in table.inline_indexes.items()
    }
    return {**inline, **seed_document.section4_indexes()}


def test_every_seed_index_exists(pg_dsn):
    """Each by its name, as the seed defines it: a plain (non-unique) btree index on its key columns
    in order, DESC where the seed says so, with no WHERE clause. Not just any index on the same
    columns: idx_customers_customer_code duplicates the UNIQUE key's index and must exist all the
    same, and a hash index cannot serve a range or an ORDER BY."""
    with psycopg.connect(pg_dsn) as conn:
        for index, (table, columns) in _seed_indexes().items():
            actual = _indexes(conn, table).get(index)
            assert actual is not None, f"{table}: index {index} on {columns} missing"
            assert actual == ("btree", columns, False, ""), f"{table}: index {index}: {actual} vs {columns}"


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


_SEED_PARTITION = re.compile(
    r"CREATE TABLE (\w+) PARTITION OF (\w+)\s+FOR VALUES FROM \('([\d-]+)'\) TO \('([\d-]+)'\)"
)


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
        # The ranges too, as section 5.1 writes them (``CREATE TABLE conversations_2025_11 PARTITION OF
        # conversations FOR VALUES FROM ('2025-11-01') TO ('2025-12-01');``), not just the names.
        seed = {
            name: (low, high)
            for name, parent, low, high in _SEED_PARTITION.findall(
                seed_document.SEED.read_text(encoding="utf-8")
            )
            if parent == table
        }
        assert set(seed) == {"conversations_2025_11", "conversations_2025_12"}
        conn.execute("SET datestyle = 'ISO, YMD'")
        bound = "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = to_regclass(%s)"
        for name, (low, high) in seed.items():
            expected = f"FOR VALUES FROM ('{low} 00:00:00') TO ('{high} 00:00:00')"
            assert conn.execute(bound, (f"public.{name}",)).fetchone() == (expected,), name
        assert conn.execute(bound, (f"public.{table}_default",)).fetchone() == ("DEFAULT",)


def _live_not_null(conn, table) -> set[str]:
    rows = conn.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = 'public' AND table_name = %s AND is_nullable = 'NO'""",
        (table,),
    )
    return {row[0] for row in rows}


def test_not_null_columns_are_the_seeds(pg_dsn):
    """Every seed column is NOT NULL exactly when the seed says so (or it is the primary key):
    a nullable one lets rows in the seed refuses, an extra NOT NULL refuses rows the seed allows."""
    with psycopg.connect(pg_dsn) as conn:
        for table, rules in seed_rules().items():
            columns = set(seed_document.tables()[table].columns)
            assert _live_not_null(conn, table) & columns == rules.not_null, table


def _live_defaults(conn, table) -> dict[str, str]:
    rows = conn.execute(
        """SELECT column_name, column_default FROM information_schema.columns
           WHERE table_schema = 'public' AND table_name = %s AND column_default IS NOT NULL""",
        (table,),
    )
    return dict(rows.fetchall())


def test_defaults_are_the_seeds(pg_dsn):
    """Each seed column has the seed's DEFAULT and no other. Compared by value, as PostgreSQL
    evaluates both (it stores 'C' as 'C'::character varying): one transaction, so
    CURRENT_TIMESTAMP is the same instant on both sides. BIGSERIAL: a sequence of its own."""
    with psycopg.connect(pg_dsn) as conn:
        for table, rules in seed_rules().items():
            live = _live_defaults(conn, table)
            for column in seed_document.tables()[table].columns:
                where = f"{table}.{column}"
                if column in rules.serial:
                    serial = "SELECT pg_get_serial_sequence(%s, %s)"
                    sequence = conn.execute(serial, (f"public.{table}", column)).fetchone()[0]
                    assert sequence and live.get(column, "").startswith("nextval("), (
                        f"{where}: {live.get(column)}"
                    )
                    continue
                if column not in rules.defaults or column not in live:
                    assert (rules.defaults.get(column), live.get(column)) == (None, None), where
                    continue
                # Both cast to the column's type, as an INSERT would (CURRENT_TIMESTAMP is timestamptz).
                column_type = _column_type(conn, table, column)
                seed, actual = conn.execute(
                    f"SELECT ({rules.defaults[column]})::{column_type}, ({live[column]})::{column_type}"
                ).fetchone()
                assert seed == actual, f"{where}: DEFAULT {live[column]}, the seed's {rules.defaults[column]}"


def _column_type(conn, table, column) -> str:
    return conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
        (f"public.{table}", column),
    ).fetchone()[0]


_KEY_COLUMNS = """array(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY AS k(attnum, n)
                        JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum ORDER BY k.n)"""


def _live_keys(conn, table) -> tuple[tuple[str, ...], set[tuple[str, ...]]]:
    """(primary key, the other unique keys) of a table: UNIQUE constraints and unique indexes
    without a WHERE clause (a partial one does not make its columns unique)."""
    rows = conn.execute(
        f"""SELECT i.indisprimary, {_KEY_COLUMNS.format(keys="i.indkey::int2[]", rel="i.indrelid")}
            FROM pg_index i WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL""",
        (f"public.{table}",),
    ).fetchall()
    primary = [tuple(columns) for is_primary, columns in rows if is_primary]
    return (primary[0] if primary else ()), {tuple(columns) for is_primary, columns in rows if not is_primary}


def test_primary_and_unique_keys_are_the_seeds(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        for table, rules in seed_rules().items():
            seed_primary = _PRIMARY_KEY_DEVIATIONS.get((table, rules.primary_key), (table, rules.primary_key))
            added = {key for t, key in _ADDED_UNIQUE_KEYS if t == table}
            primary, unique = _live_keys(conn, table)
            assert (table, primary) == seed_primary
            assert unique == rules.unique | added, table


_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def _live_foreign_keys(conn, table) -> set[tuple]:
    """(table, columns, referenced table, referenced columns, ON DELETE) of each foreign key of the
    table (the constraint itself, not the copies PostgreSQL keeps per partition referenced)."""
    rows = conn.execute(
        f"""SELECT {_KEY_COLUMNS.format(keys="c.conkey", rel="c.conrelid")}, c.confrelid::regclass::text,
                   {_KEY_COLUMNS.format(keys="c.confkey", rel="c.confrelid")}, c.confdeltype
            FROM pg_constraint c
            WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND c.conparentid = 0""",
        (f"public.{table}",),
    ).fetchall()
    return {
        (table, tuple(cols), target, tuple(target_cols), _ON_DELETE[rule])
        for cols, target, target_cols, rule in rows
    }


def test_foreign_keys_and_their_on_delete_are_the_seeds(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("SET search_path = public")  # regclass::text without a schema
        for table, rules in seed_rules().items():
            seed = {(table, *key) for key in rules.foreign_keys}
            expected = {_FOREIGN_KEY_DEVIATIONS.get(key, key) for key in seed}
            assert _live_foreign_keys(conn, table) == expected, table
