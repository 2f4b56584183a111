"""The landing contract agrees with the seed design document and with the migrated database, column
by column: a contract stricter than the schema quarantines real data (a USDT deposit), one looser
than the database lets a row through that PostgreSQL then refuses, failing the whole file."""

from __future__ import annotations

import functools
import re

import pandas as pd
import psycopg
import pytest

from ingestion.contracts import CONTRACTS, Column
from ingestion.load.validate import ChunkValidator
from tests.schema import seed_document

_KINDS = {
    "VARCHAR": "text",
    "TEXT": "text",
    "INTEGER": "int",
    "DECIMAL": "decimal",
    "BOOLEAN": "bool",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "JSONB": "json",
}
# PostgreSQL's own columns, never in a landing file.
_NOT_LANDED = {"id", "updated_at"}
# Closed sets the seed gives no comment of their own: a journey moves between the customer stages;
# withdrawals use deposits' statuses (README, "The operational schema").
_BORROWED_SETS = {
    ("customer_journey", "from_stage"): ("customers", "current_stage"),
    ("customer_journey", "to_stage"): ("customers", "current_stage"),
    ("withdrawals", "status"): ("deposits", "status"),
}


@functools.cache
def _seed_columns() -> dict[str, dict[str, tuple[str, str, str]]]:
    """table -> column -> (type, constraints, comment) as the seed document writes them; a comment
    on a line of its own belongs to the column above it (``-- Awareness/Attention/...``)."""
    result: dict[str, dict[str, tuple[str, str, str]]] = {}
    for block in seed_document._SQL_BLOCK.findall(seed_document._text()):
        for table, body, *_ in seed_document._CREATE_TABLE.findall(block):
            columns = result.setdefault(table, {})
            last = None
            for line in body.splitlines():
                code, _, comment = line.partition("--")
                match = seed_document._COLUMN.match(code)
                if match and match.group(1) not in seed_document._NOT_COLUMNS:
                    last = match.group(1)
                    columns[last] = (match.group(2), code[match.end() :].strip(" ,"), comment.strip())
                elif not code.strip() and comment.strip() and last and not columns[last][2]:
                    columns[last] = (*columns[last][:2], comment.strip())
                else:
                    last = None
    return result


def test_every_seed_column_is_in_the_contract_with_its_type_length_and_nullability():
    assert set(_seed_columns()) == set(CONTRACTS)
    problems = []
    for table, columns in _seed_columns().items():
        contract = CONTRACTS[table]
        plain = {c.name: c for c in contract.columns}
        referenced = {db: r for r in contract.references for db in r.db_columns}
        for name, (seed_type, constraints, _) in columns.items():
            if name in _NOT_LANDED:
                continue
            not_null = "NOT NULL" in constraints
            if name in referenced:
                if referenced[name].required != not_null:
                    problems.append(
                        f"{table}.{name}: required={referenced[name].required}, seed {constraints}"
                    )
                continue
            if name not in plain:
                problems.append(f"{table}.{name}: not in the contract")
                continue
            column, base = plain[name], re.match(r"[A-Z]+", seed_type).group(0)
            if column.kind != _KINDS[base]:
                problems.append(f"{table}.{name}: {column.kind} for {seed_type}")
            length = re.fullmatch(r"VARCHAR\((\d+)\)", seed_type)
            if column.max_length != (int(length.group(1)) if length else None):
                problems.append(f"{table}.{name}: max_length {column.max_length} for {seed_type}")
            # NOT NULL with a DEFAULT: an empty value is "not given"; without one (or with
            # CURRENT_TIMESTAMP, the time of the load): required.
            default = re.search(r"DEFAULT '([^']*)'", constraints)
            expected = (False, default.group(1)) if not_null and default else (not_null, None)
            if (column.required, column.default) != expected:
                problems.append(
                    f"{table}.{name}: required, default = {column.required}, {column.default!r}; "
                    f"seed {constraints}"
                )
    assert not problems, problems


def test_closed_sets_are_the_seed_comments_and_fit_their_columns():
    problems = []
    for table, contract in CONTRACTS.items():
        for column in contract.columns:
            if not column.allowed:
                continue
            source = _BORROWED_SETS.get((table, column.name), (table, column.name))
            comment = _seed_columns()[source[0]][source[1]][2]
            if set(comment.split("/")) != set(column.allowed):
                problems.append(f"{table}.{column.name}: {column.allowed} vs seed comment {comment!r}")
            if any(len(value) > column.max_length for value in column.allowed):
                problems.append(f"{table}.{column.name}: a value longer than {column.max_length}")
    assert not problems, problems


def _accepted(table: str, column: str, values: list[str]) -> list[bool]:
    """Whether the contract's validation takes each value of ``column`` (the other columns empty)."""
    contract = CONTRACTS[table]
    frame = pd.DataFrame(
        {name: pd.array([None] * len(values), dtype="str") for name in contract.landing_columns},
        index=pd.RangeIndex(1, len(values) + 1),
    )
    frame[column] = pd.array(values, dtype="str")
    failures = ChunkValidator(table).validate(frame).failures
    return [
        not any(rule.partition(":")[2] == column for rule, _ in failures.get(row, [])) for row in frame.index
    ]


@pytest.mark.parametrize("table", ["deposits", "withdrawals"])
def test_currency_takes_the_codes_varchar_10_holds_in_upper_case(table):
    """The seed's currency is VARCHAR(10), not ISO 4217's three letters: USDT, USDC and other
    settlement currencies of trading platforms are real deposits."""
    taken = ["USD", "EUR", "USDT", "USDC", "BTC", "1INCH", "ABCDEFGHIJ"]
    refused = ["usdt", "Usd", "US", "US$", "USD ", "ABCDEFGHIJK", "USDC.E"]
    assert _accepted(table, "currency", taken + refused) == [True] * len(taken) + [False] * len(refused)


def test_a_withdrawal_rate_over_100_is_taken_a_negative_one_refused():
    """Profit withdrawals (盈利提现) take out more than was deposited: 1500 out of 1000 is 150.00
    percent, which the seed's DECIMAL(5,2) holds. The type's own limit, 999.99, is the only maximum: the
    loader checks it against the database's column (tests/ingestion/test_loader_edge_values.py)."""
    taken = ["0", "100", "100.01", "150.00", "999.99"]
    refused = ["-0.01", "-150"]
    expected = [True] * len(taken) + [False] * len(refused)
    assert _accepted("funnel_bofu", "withdrawal_rate", taken + refused) == expected


# A single-column CHECK as pg_get_constraintdef prints it.
_IN_SET = re.compile(r"\(\(?(\"?[\w\u4e00-\u9fff]+\"?)\)?::text = ANY \(\(ARRAY\[(.*)\]\)::text\[\]\)\)")
_MATCHES = re.compile(r"\(\((\"?[\w\u4e00-\u9fff]+\"?)\)::text ~ '(.*)'::text\)")
_BOUND = re.compile(r"\((\"?[\w\u4e00-\u9fff]+\"?) (>=|>|<=) \(?(-?[0-9.]+)\)?(?:::numeric)?\)")


def _rules_of_check(definition: str) -> dict[str, object]:
    """The contract rules a CHECK constraint states: allowed / pattern / minimum, maximum."""
    if match := _IN_SET.search(definition):
        return {"allowed": tuple(re.findall(r"'([^']*)'::character varying", match.group(2)))}
    if match := _MATCHES.search(definition):
        return {"pattern": match.group(2)}
    rules: dict[str, object] = {}
    for _column, operator, bound in _BOUND.findall(definition):
        if operator == "<=":
            rules["maximum"] = float(bound)
        else:
            rules["minimum"], rules["exclusive_minimum"] = float(bound), operator == ">"
    assert rules, f"a CHECK this test cannot read: {definition}"
    return rules


def _rules_of_column(column: Column) -> dict[str, object]:
    """The contract's rules of a column, as :func:`_rules_of_check` reads a CHECK."""
    rules: dict[str, object] = {}
    if column.allowed:
        rules["allowed"] = column.allowed
    if column.pattern:
        rules["pattern"] = column.pattern
    if column.minimum is not None:
        rules["minimum"], rules["exclusive_minimum"] = float(column.minimum), column.exclusive_minimum
    if column.maximum is not None:
        rules["maximum"] = float(column.maximum)
    return rules


def _same_meaning(rules: dict[str, object] | None, column: Column | None) -> dict[str, object] | None:
    """An integer's ``> 0`` is its ``>= 1`` (training_courses.duration_days)."""
    if rules and column and column.kind == "int" and rules.get("exclusive_minimum"):
        return {**rules, "minimum": rules["minimum"] + 1, "exclusive_minimum": False}
    return rules


def test_contract_rules_are_the_database_checks(pg_dsn):
    """Every closed set, range and pattern of the contract is a CHECK of the migrated database and
    every single-column CHECK is a contract rule: the validator then quarantines exactly the rows
    PostgreSQL would refuse."""
    with psycopg.connect(pg_dsn) as conn:
        checks = conn.execute(
            """SELECT c.conrelid::regclass::text, a.attname::text, pg_get_constraintdef(c.oid)
               FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
               WHERE c.contype = 'c' AND cardinality(c.conkey) = 1 AND c.conrelid::regclass::text = ANY (%s)""",
            (list(CONTRACTS),),
        ).fetchall()
    in_database = {(table, column): _rules_of_check(definition) for table, column, definition in checks}
    in_contract = {
        (table, column.name): rules
        for table, contract in CONTRACTS.items()
        for column in contract.columns
        if (rules := _rules_of_column(column))
    }
    columns = {(table, c.name): c for table, contract in CONTRACTS.items() for c in contract.columns}
    differing = {
        key: (in_contract.get(key), in_database.get(key))
        for key in in_contract.keys() | in_database.keys()
        if _same_meaning(in_contract.get(key), columns.get(key))
        != _same_meaning(in_database.get(key), columns.get(key))
    }
    assert not differing, differing
