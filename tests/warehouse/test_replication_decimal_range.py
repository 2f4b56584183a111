"""A ``numeric`` column declared without a precision (none of the seed's is; a later migration may
add one, and list it as replicated) holds numbers longer than the Decimal
ClickHouse reads it as: too many integer digits failed the whole pull, too many fraction digits were
cut off without a word. Such a row is quarantined with its reason instead, like an infinite date.
A ``numeric`` declared with more digits than any Decimal of ClickHouse's holds is replicated as text."""

from __future__ import annotations

import logging
from decimal import Decimal

import psycopg

from ingestion.replication import declared_source, replicate, schema
from ingestion.replication.connections import (
    clickhouse_client,
    ensure_named_collection,
    replication_client,
    source,
)
from ingestion.replication.tables import BY_NAME, RAW_TABLES
from tests.fixtures.warehouse import load_fixture
from tests.warehouse.test_replication_unreadable import _live, _quarantine, _replicate


def test_a_number_longer_than_clickhouses_decimal_is_quarantined_neither_failing_the_pull_nor_cut(
    pg_dsn, clickhouse_env, replicating
):
    load_fixture(pg_dsn)
    replicating("deposits", "fee")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("alter table deposits add column fee numeric")  # no precision: any number
        ids = [row_id for (row_id,) in conn.execute("select id from deposits order by id")]
        assert len(ids) == 4
        # ClickHouse 26 reads it as Decimal(38, 19): 19 integer digits and 19 fraction digits at most.
        fees = ["-1e30", "0.12345678901234567891", "1.50000000000000000000", "9999999999999999999.5"]
        for row_id, fee in zip(ids, fees, strict=True):
            conn.execute("update deposits set fee = %s::numeric where id = %s", (fee, row_id))

    first = _replicate(pg_dsn, "deposits")  # a new column: a reload from scratch
    assert (first.rows_copied, first.quarantined, first.live_rows) == (2, 2, 2)
    [(too_long_id, column, too_long, _), (too_fine_id, _, too_fine, _)] = _quarantine(
        clickhouse_env, "deposits"
    )
    assert (too_long_id, too_fine_id, column) == (ids[0], ids[1], "fee")
    assert "column fee holds a number of 31 integer and 0 fraction digits" in too_long
    assert "20 fraction digits" in too_fine
    assert all("Decimal(38, 19)" in reason for reason in (too_long, too_fine))
    # The reasons count digits and hold none of the numbers (the row's data stays in PostgreSQL).
    assert not any("1000000" in reason or "12345" in reason for reason in (too_long, too_fine))
    # Trailing zeros are no digits lost; the longest number the Decimal holds arrives whole.
    assert _live(clickhouse_env, "deposits", "fee") == {
        ids[2]: Decimal("1.5"),
        ids[3]: Decimal("9999999999999999999.5"),
    }

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update deposits set fee = 7.25 where id = %s", (ids[0],))
    fixed = _replicate(pg_dsn, "deposits")
    assert (fixed.rows_copied, fixed.quarantined, fixed.live_rows) == (1, 1, 3)
    assert _live(clickhouse_env, "deposits", "fee")[ids[0]] == Decimal("7.25")
    assert [(entry[0], entry[3]) for entry in _quarantine(clickhouse_env, "deposits")] == [
        (ids[0], True),
        (ids[1], False),
    ]


def test_a_numeric_with_more_digits_than_any_clickhouse_decimal_is_replicated_as_text(
    pg_dsn, clickhouse_env, caplog, replicating
):
    """ClickHouse has no type for a numeric of more than 76 digits, and could not even describe its
    table: one such column stopped the whole table. It arrives as text, exactly as PostgreSQL prints
    it (a NaN included: text holds it), and every other column as ClickHouse reads it."""
    load_fixture(pg_dsn)
    _replicate(pg_dsn, "deposits")
    types_before = _types(clickhouse_env, "deposits")
    replicating("deposits", "exact_amount", "exact_parts")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "alter table deposits add column exact_amount numeric(100, 2), add column exact_parts numeric(90)[]"
        )
        ids = [row_id for (row_id,) in conn.execute("select id from deposits order by id")]
        for row_id, amount, parts in zip(
            ids, ["1e90", "NaN", "-12.5", None], ["{1e80,NaN}", "{}", None, "{7}"], strict=True
        ):
            conn.execute(
                "update deposits set exact_amount = %s::numeric, exact_parts = %s where id = %s",
                (amount, parts, row_id),
            )

    with caplog.at_level(logging.WARNING, logger=replicate.__name__):
        reloaded = _replicate(pg_dsn, "deposits")  # new columns: a reload from scratch
    assert (reloaded.rows_copied, reloaded.quarantined, reloaded.live_rows) == (4, 0, 4)
    assert any(
        "column exact_amount is numeric(100,2)" in message and "replicated as text" in message
        for message in caplog.messages
    )
    types = _types(clickhouse_env, "deposits")
    assert (types["exact_amount"], types["exact_parts"]) == ("Nullable(String)", "Array(Nullable(String))")
    assert {column: types[column] for column in types_before} == types_before  # the others as before
    assert _live(clickhouse_env, "deposits", "exact_amount") == {
        ids[0]: "1" + "0" * 90 + ".00",
        ids[1]: "NaN",
        ids[2]: "-12.50",
        ids[3]: None,
    }
    assert _live(clickhouse_env, "deposits", "exact_parts")[ids[0]] == ["1" + "0" * 80, "NaN"]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update deposits set exact_amount = 0.01 where id = %s", (ids[3],))
    updated = _replicate(pg_dsn, "deposits")  # incremental, through the same declared reading
    assert (updated.rows_copied, updated.live_rows) == (1, 4)
    assert _live(clickhouse_env, "deposits", "exact_amount")[ids[3]] == "0.01"
    # The table that read it is gone once its table is replicated.
    assert not [name for name in _types_of_tables(clickhouse_env) if name.startswith(declared_source.PREFIX)]


def test_the_declared_table_reads_only_what_the_pull_reads(pg_dsn, clickhouse_env, caplog):
    """Whoever may read raw may select from a declared table while it exists, live from PostgreSQL:
    it declares only the columns the pull reads, never one that stays in PostgreSQL unread (a
    customer's name, birth date) nor one not classified yet, and the raw rows are the same. A declared
    table a run that stopped left behind is replaced (one declared with every column, as replication
    once did) or dropped (of a table ClickHouse can describe again)."""
    load_fixture(pg_dsn)
    _replicate(pg_dsn, "customers")
    rows_before = _rows(clickhouse_env, "customers")
    client = replication_client()
    collection = ensure_named_collection(client, pg_dsn, clickhouse_env)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("alter table customers add column exact_score numeric(100, 2)")  # not classified
    # Left behind by runs that stopped: one declared with every column, as replication once did it,
    # and one of employees, which ClickHouse describes (no run would replace it).
    _declare_leftover(
        client,
        clickhouse_env,
        "customers",
        declared_source.tables_without_description(pg_dsn)["customers"].columns,
        collection,
    )
    _declare_leftover(
        client, clickhouse_env, "employees", [("id", "Int64"), ("phone", "Nullable(String)")], collection
    )

    declared_while_pulling: list[str] = []

    def log(message: str) -> None:  # the warning of an unclassified column comes while the table exists
        if "not classified" in message:
            declared_while_pulling.extend(_types(clickhouse_env, declared_source.name("customers")))

    with caplog.at_level(logging.WARNING, logger=replicate.__name__):
        [result] = replicate.replicate_tables(pg_dsn, ["customers"], full_refresh=True, log=log)
    customers = BY_NAME["customers"]
    unread = {"name", "avatar_url", "birth_date", "communication_style", "personality_traits"}
    assert unread <= set(customers.dropped)
    # Read by the derived columns (has_phone, age_band, the masked ones): no PostgreSQL engine table
    # can declare an expression instead.
    read_by_derived = {"age", "blacklist_reason", "occupation", "decision_style"}
    read_by_derived |= {"wechat_id", "whatsapp", "telegram", "email", "phone"}
    read_by_derived |= {"city", "industry", "persona_type", "trading_platform", "interests", "risk_flags"}
    assert set(declared_while_pulling) == {*customers.replicated, *read_by_derived}
    assert not set(declared_while_pulling) & {*unread, "exact_score"}
    assert any("customers.exact_score: a PostgreSQL column not classified" in m for m in caplog.messages)
    assert (result.rows_copied, result.quarantined) == (len(rows_before), 0)
    assert _rows(clickhouse_env, "customers") == rows_before
    assert not [name for name in _types_of_tables(clickhouse_env) if name.startswith(declared_source.PREFIX)]


def test_the_declared_reading_of_a_table_is_clickhouses_own(pg_dsn, clickhouse_env):
    """A table ClickHouse cannot describe is read through columns declared by ClickHouse's rules
    (``declared_source.clickhouse_type``): they must stay what ClickHouse's own description gives, for
    every seed table and a column of each kind a migration may add."""
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "alter table tags add column a boolean, add column b smallint, add column c real,"
            " add column d double precision not null default 0, add column e varchar(3),"
            " add column f timestamp(3), add column g timestamptz, add column h date, add column i uuid,"
            " add column j numeric, add column k numeric(10, 2), add column l numeric(76, 3),"
            " add column m jsonb, add column n text[], add column o numeric[] not null default '{}',"
            " add column p integer[][], add column q time, add column r interval, add column s serial"
        )
    client = replication_client()
    collection = ensure_named_collection(client, pg_dsn, clickhouse_env)
    declared = declared_source.columns(pg_dsn)
    for table in RAW_TABLES:
        ours = [(name, clickhouse_type) for name, _, clickhouse_type, _ in declared[table.name]]
        assert ours == schema.source_types(client, source(table.name, collection)), table.name


def _types(raw_database: str, table: str) -> dict[str, str]:
    return dict(
        clickhouse_client()
        .query(
            "select name, type from system.columns where database = {db:String} and table = {table:String}",
            parameters={"db": raw_database, "table": table},
        )
        .result_rows
    )


def _declare_leftover(
    client, database: str, table: str, columns: list[tuple[str, str]], collection: str
) -> None:
    """A declared table of ``columns`` reading ``table``, as a run that stopped leaves it."""
    column_ddl = ", ".join(f"`{column}` {column_type}" for column, column_type in columns)
    client.command(
        f"create table `{database}`.`{declared_source.name(table)}` ({column_ddl})"
        f" engine = PostgreSQL({collection}, table = '{table}')"
    )


def _rows(raw_database: str, table: str) -> list[tuple]:
    """Each live row of ``table`` but its load time, by id."""
    return (
        clickhouse_client()
        .query(f"select * except (_replicated_at) from `{raw_database}`.`{table}` final order by id")
        .result_rows
    )


def _types_of_tables(raw_database: str) -> list[str]:
    return [
        name
        for (name,) in clickhouse_client()
        .query("select name from system.tables where database = {db:String}", parameters={"db": raw_database})
        .result_rows
    ]
