"""The rules of :mod:`ingestion.load.validate`: each contract column (and what PostgreSQL's catalog
says of its target, :class:`DbColumn`) becomes :class:`Rule` objects, a GE expectation or a custom
check each, with the words of the reason a value failed it. Also great-expectations itself, imported
on first use."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import great_expectations.expectations as gxe

from ingestion.contracts import Column
from ingestion.load.readers.json_text import exact_json
from ingestion.load.readers.jsonl_reader import UNKNOWN_KEYS
from ingestion.load.validate_calendar_json import calendar_failures, json_failures
from ingestion.load.validate_numbers import beyond_scale, rounding_words
from ingestion.load.validate_patterns import INT4_RANGE, TYPE_PATTERNS, TYPE_WORDS


@functools.cache
def great_expectations_module() -> ModuleType:
    """great_expectations, imported and tuned on first use: the import takes seconds, and every
    ``funnelhouse`` command (``--help`` included) imports this module through the CLI."""
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # GE fingerprints every pandas batch by hashing all of its values (a batch marker nobody reads
    # here): a third of the validation time of a chunk. Frames at least this big are not hashed.
    pandas_execution_engine.HASH_THRESHOLD = 0
    return gx


def _expectations() -> ModuleType:
    great_expectations_module()
    import great_expectations.expectations as gxe

    return gxe


@dataclass(frozen=True)
class DbColumn:
    """What PostgreSQL's catalog says about a target column (None where it sets no limit)."""

    data_type: str
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    default: str | None = None  # the DEFAULT expression, as SQL


@dataclass(frozen=True)
class Rule:
    """One check of one landing column; ``explain(value)`` says in words why a value failed it."""

    id: str
    column: str
    explain: Callable[[object], str]
    expectation: gxe.Expectation | None = None
    custom: Callable[[pd.Series], pd.Series] | None = None  # -> True where the value fails


def _shown(value) -> str:
    text = str(value)
    return repr(text[:60] + "..." if len(text) > 60 else text)


def _whole_value(pattern: str) -> str:
    """``pattern`` matched against the whole value, as PostgreSQL's ``~`` does: Python's ``$`` also
    matches before a final newline, so 'CUST_1\\n' would pass here, then break a CHECK (or a cast)
    and fail the whole file."""
    return rf"(?:{pattern})\Z"


def numeric_name(column: str) -> str:
    return f"{column}::number"


def nul_rule(name: str) -> Rule:
    """PostgreSQL's text cannot hold a NUL character: COPY would fail the whole file."""
    return Rule(
        f"nul:{name}",
        name,
        lambda _v, n=name: f"{n} contains a NUL character",
        custom=lambda values: values.str.contains("\x00", regex=False, na=False),
    )


def unknown_keys_rule(table: str) -> Rule:
    """A JSONL row with keys outside the contract (the reader hands them over): quarantined, as
    loading it would silently drop their values (a misspelled "Country")."""
    return Rule(
        "unknown_keys",
        UNKNOWN_KEYS,
        # Read exactly: the keys' values may hold a number orjson refuses (1e400).
        lambda v: f"keys outside the {table} contract: {', '.join(exact_json(v, str))}",
        custom=lambda values: values.notna(),
    )


def required_rule(name: str) -> Rule:
    """A required value that is missing: empty (null, or "" in any format: see :mod:`readers`) or,
    in a text column, only whitespace (:meth:`ChunkValidator._frame_for_ge` hands GE those as
    null), which is no more a name or a business key than an empty one."""
    return Rule(
        f"not_null:{name}",
        name,
        lambda v, n=name: f"{n} is required but {'empty' if pd.isna(v) else 'only whitespace'}",
        _expectations().ExpectColumnValuesToNotBeNull(column=name),
    )


def rules_for_column(column: Column, db: DbColumn | None) -> list[Rule]:
    gxe = _expectations()
    name = column.name
    rules: list[Rule] = []
    if column.required:
        rules.append(required_rule(name))
    if column.kind in TYPE_PATTERNS:
        words = TYPE_WORDS[column.kind]
        rules.append(
            Rule(
                f"type:{name}",
                name,
                lambda v, n=name, w=words: f"{n} {_shown(v)} is not {w}",
                gxe.ExpectColumnValuesToMatchRegex(
                    column=name, regex=_whole_value(TYPE_PATTERNS[column.kind])
                ),
            )
        )
    if column.kind in ("date", "timestamp"):
        rules.append(
            Rule(
                f"calendar:{name}",
                name,
                lambda v, n=name: f"{n} {_shown(v)} is no real calendar date/time",
                custom=calendar_failures(column.kind),
            )
        )
    if column.kind == "json":
        rules.append(
            Rule(
                f"json:{name}",
                name,
                lambda v, n=name: f"{n} {_shown(v)} is not valid JSON",
                custom=json_failures,
            )
        )
    if column.kind == "text":
        rules.append(nul_rule(name))
    if column.allowed:
        allowed = list(column.allowed)
        rules.append(
            Rule(
                f"in_set:{name}",
                name,
                lambda v, n=name, a=allowed: f"{n} {_shown(v)} is not one of {', '.join(a)}",
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=allowed),
            )
        )
    rules.extend(_scale_rules(column, db))
    rules.extend(_range_rules(column, db))
    if column.pattern:
        rules.append(
            Rule(
                f"pattern:{name}",
                name,
                lambda v, n=name, p=column.pattern: f"{n} {_shown(v)} does not match {p}",
                gxe.ExpectColumnValuesToMatchRegex(column=name, regex=_whole_value(column.pattern)),
            )
        )
    max_length = column.max_length or (db.max_length if db else None)
    if max_length and column.kind == "text" and not column.allowed:  # a closed set bounds the length
        rules.append(
            Rule(
                f"length:{name}",
                name,
                lambda v, n=name, m=max_length: f"{n} is {len(str(v))} characters, more than {m}",
                gxe.ExpectColumnValueLengthsToBeBetween(column=name, max_value=max_length),
            )
        )
    return rules


def _kept_scale(column: Column, db: DbColumn | None) -> int | None:
    """The decimals a DECIMAL(p,s) column keeps (s); None for numeric without a typmod, which keeps
    every digit, and for other types."""
    if column.kind != "decimal" or db is None or db.precision is None:
        return None
    return db.scale


def rounding_scale(column: Column, db: DbColumn | None) -> int | None:
    """The scale a column's values are rounded to as stored: a decimal's that is no money."""
    return None if column.exact else _kept_scale(column, db)


def _scale_rules(column: Column, db: DbColumn | None) -> list[Rule]:
    """A money column (``Column.exact``) of DECIMAL(p,s) keeps s decimals: a value with more is
    quarantined, never rounded (money is stored exactly or not at all). The range rules see only
    the values it takes (:meth:`ChunkValidator._frame_for_ge`), which a float holds closely enough
    to compare."""
    scale = _kept_scale(column, db)
    if not column.exact or scale is None:
        return []
    name, precision = column.name, db.precision
    kept = f"more than {scale} decimal{'' if scale == 1 else 's'}"
    return [
        Rule(
            f"scale:{name}",
            name,
            lambda v, n=name: f"{n} {_shown(v)} has {kept}: {n} is DECIMAL({precision},{scale})",
            custom=functools.partial(beyond_scale, scale=scale),
        )
    ]


def _range_rules(column: Column, db: DbColumn | None) -> list[Rule]:
    """The contract's range, then the storage limit of the PostgreSQL type (rows never abort a load),
    both judging the value as stored (see :func:`as_stored`) and saying so when it was rounded."""
    if column.kind not in ("int", "decimal"):
        return []
    gxe = _expectations()
    name, numeric = column.name, numeric_name(column.name)
    scale = rounding_scale(column, db)
    rules = []
    if column.minimum is not None or column.maximum is not None:
        low = (
            ""
            if column.minimum is None
            else f"{'>' if column.exclusive_minimum else '>='} {column.minimum:g}"
        )
        high = "" if column.maximum is None else f"<= {column.maximum:g}"
        bounds = " and ".join(b for b in (low, high) if b)
        rules.append(
            Rule(
                f"range:{name}",
                name,
                lambda v, n=name, b=bounds: f"{n} {_shown(v)}{rounding_words(v, scale)} is not {b}",
                gxe.ExpectColumnValuesToBeBetween(
                    column=numeric,
                    min_value=column.minimum,
                    max_value=column.maximum,
                    strict_min=column.exclusive_minimum,
                ),
            )
        )
    if column.kind == "int":
        limit = INT4_RANGE if db is None or db.data_type == "integer" else (-(2**63), 2**63 - 1)
        rules.append(
            Rule(
                f"storage:{name}",
                name,
                lambda v, n=name: f"{n} {_shown(v)} overflows {n}'s type",
                gxe.ExpectColumnValuesToBeBetween(column=numeric, min_value=limit[0], max_value=limit[1]),
            )
        )
    elif db and db.precision:
        bound = 10.0 ** (db.precision - (db.scale or 0))
        rules.append(
            Rule(
                f"storage:{name}",
                name,
                lambda v, n=name, p=db.precision, s=db.scale: (
                    f"{n} {_shown(v)}{rounding_words(v, scale)} does not fit DECIMAL({p},{s})"
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column=numeric, min_value=-bound, max_value=bound, strict_min=True, strict_max=True
                ),
            )
        )
    return rules
