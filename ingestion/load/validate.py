"""The landing contract as great-expectations expectations, evaluated chunk by chunk.

Each rule of :mod:`ingestion.contracts` (presence, NOT NULL, type, closed set, range, pattern,
length) becomes one GE expectation, plus the limits PostgreSQL itself would enforce and the
contract does not state (varchar length, DECIMAL precision, INTEGER range), read from the
catalog so a row can never make the load's transaction fail. A DECIMAL's scale is one of them: in
a money column (``Column.exact``) a value with more decimals than the column keeps is quarantined,
where PostgreSQL would round it without a word; any other decimal (a ratio, a score) is rounded as
PostgreSQL stores it, and its range and storage limit judge the value as stored. GE runs in an
ephemeral context on a pandas frame whose index is the file's row numbers, with
``result_format=COMPLETE``: each expectation's ``unexpected_index_list`` says exactly which rows
broke it.

Checks GE cannot express vectorised are done here and reported the same way: calendar validity
(``2025-02-30`` matches the date pattern), JSON as jsonb takes it (parsed once per distinct value)
NUL characters, which PostgreSQL's text cannot hold, and digits beyond a money column's scale
(read exactly where a value has an exponent). References (business keys existing in PostgreSQL or
in the same file) are checked by the loader with SQL joins, against the data itself rather than a
copy of it.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import great_expectations.expectations as gxe

from ingestion.contracts import CONTRACTS, Column
from ingestion.load.readers.json_text import exact_json
from ingestion.load.readers.jsonl_reader import UNKNOWN_KEYS

INT_PATTERN = r"^[+-]?[0-9]+$"
DECIMAL_PATTERN = r"^[+-]?(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)(?:[eE][+-]?[0-9]+)?$"
# PostgreSQL's boolean words (its unique prefixes such as 'tr' or 'of' aside: no exporter writes them),
# in any case of ASCII letters, as PostgreSQL takes them. Spelt out as [Tt][Rr]...: a (?i) match
# (RE2's and Python's alike) folds Unicode, taking 'yeſ' (long s) for 'yes', which PostgreSQL
# refuses, failing the whole file instead of the row.
_BOOL_WORDS = ("true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0")
BOOL_PATTERN = (
    "^(?:"
    + "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word) for word in _BOOL_WORDS)
    + ")$"
)
# Year 0001-9999, month 01-12, day 01-31, hour 00-23, minute and second 00-59, zone offset up to
# +-15:59 (PostgreSQL refuses year 0000 and bigger offsets). A pattern check cannot tell Feb 30
# from Mar 30, so _calendar_failures looks at days 29-31. No lookahead: RE2 runs these too.
# A timestamp with an offset is valid: the loader stores it converted to UTC (merge_sql.utc_timestamp).
# Up to 9 fraction digits: .NET writes 7, Java, pandas and Spark 9; PostgreSQL rounds them to the
# microseconds it stores, as it would any other value it keeps at a coarser precision.
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_DAY = rf"{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
DATE_PATTERN = rf"^{_DAY}$"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?"
_ZONE = r"(?:Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)?"
TIMESTAMP_PATTERN = rf"^{_DAY}[ T]{_TIME}{_ZONE}$"
_TYPE_PATTERNS = {
    "int": INT_PATTERN,
    "decimal": DECIMAL_PATTERN,
    "bool": BOOL_PATTERN,
    "date": DATE_PATTERN,
    "timestamp": TIMESTAMP_PATTERN,
}
_TYPE_WORDS = {
    "int": "an integer",
    "decimal": "a number",
    "bool": "true or false",
    "date": "a date YYYY-MM-DD",
    "timestamp": "a timestamp YYYY-MM-DD HH:MM:SS",
}
INT4_RANGE = (-(2**31), 2**31 - 1)
# PostgreSQL's numeric (DECIMAL columns, and every number inside a jsonb value) holds at most 16383
# digits after the point and values below 10**131072. Its input refuses anything beyond ("value
# overflows numeric format"), even a value that DECIMAL(12,2) would round to 0.00 (1e-16384), and
# the whole file with it.
NUMERIC_MAX_SCALE = 16383
NUMERIC_MAX_WHOLE_DIGITS = 131072


@functools.cache
def _great_expectations() -> ModuleType:
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
    _great_expectations()
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


@dataclass
class Verdict:
    """Failures of one chunk: row number -> [(rule id, reason)], in rule order."""

    failures: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, row: int, rule: str, reason: str) -> None:
        self.failures.setdefault(row, []).append((rule, reason))


def _shown(value) -> str:
    text = str(value)
    return repr(text[:60] + "..." if len(text) > 60 else text)


def _whole_value(pattern: str) -> str:
    """``pattern`` matched against the whole value, as PostgreSQL's ``~`` does: Python's ``$`` also
    matches before a final newline, so 'CUST_1\\n' would pass here, then break a CHECK (or a cast)
    and fail the whole file."""
    return rf"(?:{pattern})\Z"


def _numeric_name(column: str) -> str:
    return f"{column}::number"


def _as_float(texts: pd.Series, pattern: str) -> pd.Series:
    """The values written as numbers (``pattern``: the type's shape), as floats; others NaN, which
    the range checks skip (the type rule reports them).

    pandas gives NaN for an integer of more than 4300 digits (Python's limit on parsing one): that
    would pass every range. Such a value is infinite here, beyond any column's range, as it is.
    """
    shaped = texts.str.fullmatch(pattern, na=False)
    numbers = pd.to_numeric(texts.where(shaped), errors="coerce").astype("float64")
    unread = shaped & numbers.isna()
    if unread.any():
        numbers[unread] = np.where(texts[unread].str.startswith("-"), -math.inf, math.inf)
    return numbers


def _numeric(text: str) -> Decimal | None:
    """``text`` (a number) as PostgreSQL's numeric reads it, None where it refuses it (see
    NUMERIC_MAX_SCALE)."""
    try:
        number = Decimal(text)
    except InvalidOperation:  # an exponent beyond even Decimal's: 1e-99999999999999999999
        return None
    fits = number.as_tuple().exponent >= -NUMERIC_MAX_SCALE and (
        not number or number.adjusted() < NUMERIC_MAX_WHOLE_DIGITS
    )
    return number if fits else None


def _unreadable_as_infinite(texts: pd.Series, numbers: pd.Series) -> pd.Series:
    """``numbers`` with the values PostgreSQL's numeric cannot even read (1e-16384, a fraction of
    more than 16383 digits: see NUMERIC_MAX_SCALE) made infinite, which no storage range holds: as
    floats they are 0.0 and would pass, then fail the whole file. Only values with an exponent or
    such a fraction are looked at (a value too big for numeric is infinite as a float already)."""
    odd = texts.str.contains("[eE]", na=False) | (texts.str.len().fillna(0) > NUMERIC_MAX_SCALE)
    odd &= numbers.notna()
    if not odd.any():
        return numbers
    suspects = texts[odd]
    refused = suspects.index[[_numeric(text) is None for text in suspects]]
    numbers = numbers.copy()
    numbers.loc[refused] = math.inf
    return numbers


def _digits_beyond(text: str, scale: int) -> bool:
    """Whether the number ``text`` has a non-zero digit after ``scale`` decimals, read exactly
    (1.5e-3 has, 1.50e1 and 1000.500 have not). A value numeric cannot read is the storage rule's."""
    number = _numeric(text)
    if number is None:
        return False
    _, digits, exponent = number.as_tuple()
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if trailing_zeros == len(digits):  # zero, however many zeros it is written with
        return False
    return exponent + trailing_zeros < -scale


def _beyond_scale(values: pd.Series, scale: int) -> pd.Series:
    """Where the number in ``values`` has non-zero digits beyond the column's ``scale``, which
    PostgreSQL rounds away (1.23456789 stored as 1.23, 0.004 as 0.00). Trailing zeros (1000.500)
    lose nothing and are not.

    The digits are those of the landing text: as written in CSV and JSONL, a Parquet decimal's
    digits, a Parquet float's shortest form (Arrow's cast, as Python's repr: 0.1 + 0.2 is
    0.30000000000000004, quarantined; 12.34 is 12.34, taken). Only the values a pattern finds
    suspect (a non-zero digit after ``scale`` decimals, or an exponent) are read exactly, each
    distinct text once.
    """
    # A negative scale (PostgreSQL 15's DECIMAL(5,-2) rounds to hundreds): every number is suspect.
    suspect_pattern = rf"[.][0-9]{{{scale}}}[0-9]*[1-9]|[eE]" if scale >= 0 else "[0-9]"
    shaped = values.str.fullmatch(DECIMAL_PATTERN, na=False)
    suspect = shaped & values.str.contains(suspect_pattern, na=False)
    if not suspect.any():
        return suspect
    beyond_texts = [text for text in values[suspect].unique() if _digits_beyond(text, scale)]
    return values.isin(beyond_texts) & shaped


def _rounded(number: Decimal, scale: int) -> Decimal:
    """``number`` as a DECIMAL(p, ``scale``) column stores it: rounded half away from zero, as
    PostgreSQL rounds (999.995 is 1000.00, -0.005 is -0.01, 0.004 is 0.00). Decimal arithmetic:
    float rounding gets 1.005 wrong. The context holds every digit of the result, however big."""
    digits = max(number.adjusted(), 0) + max(scale, 0) + 2
    return number.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP, Context(prec=digits))


def _as_stored(texts: pd.Series, numbers: pd.Series, scale: int) -> pd.Series:
    """``numbers`` (floats of ``texts``) rounded as PostgreSQL stores them at ``scale`` before the
    range and storage checks see them: 0.004 is 0.00 (failing a range > 0), 999.995 is 1000.00
    (overflowing DECIMAL(5,2)). Only the values with digits beyond the scale are rounded, each
    distinct text once; a value numeric cannot read has none (it stays as
    :func:`_unreadable_as_infinite` made it)."""
    finer = _beyond_scale(texts, scale)
    if not finer.any():
        return numbers
    stored = {text: float(_rounded(_numeric(text), scale)) for text in texts[finer].unique()}
    rounded = numbers.copy()
    rounded[finer] = texts[finer].map(stored)
    return rounded


def _rounding_words(value, scale: int | None) -> str:
    """' (stored as 0.00: rounded to 2 decimals)' where ``value`` is rounded as stored in a
    column of ``scale`` (None: a column that rounds nothing), so that a range or storage reason
    names the value it judged, not one the row never had."""
    if scale is None or not _digits_beyond(str(value), scale):
        return ""
    decimals = f"{scale} decimal{'' if scale == 1 else 's'}"
    return f" (stored as {_rounded(_numeric(value), scale)}: rounded to {decimals})"


def _calendar_failures(kind: str) -> Callable[[pd.Series], pd.Series]:
    """Rows whose date/timestamp has the right shape but is no real day (Feb 30, Apr 31, Feb 29 of 2025).

    The type pattern already bounds month, day, hour, minute and second, so only days 29-31 can
    still be wrong: those few are parsed (Arrow's strptime rolls Feb 30 over to Mar 2, hence the
    round trip through strftime).
    """

    def failing(values: pd.Series) -> pd.Series:
        text = pa.array(values, type=pa.string())
        day = pc.utf8_slice_codeunits(text, 0, 10)
        suspect = pc.fill_null(
            pc.and_(
                pc.match_substring_regex(text, _TYPE_PATTERNS[kind]),
                pc.match_substring_regex(day, r"-(29|30|31)$"),
            ),
            False,
        )
        bad = pd.Series(False, index=values.index)
        if pc.any(suspect).as_py():
            days = pc.filter(day, suspect)
            parsed = pc.strptime(days, format="%Y-%m-%d", unit="s", error_is_null=True)
            wrong = pc.invert(pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), days), False))
            positions = pc.indices_nonzero(suspect).to_numpy()
            bad.iloc[positions[wrong.to_numpy(zero_copy_only=False)]] = True
        return bad

    return failing


# A JSON number orjson's doubles cannot judge: one with an exponent (1e400 is infinite as a double,
# 1e-16384 is 0.0) or more digits than numeric keeps after the point.
_JSON_NUMBER_BEYOND_DOUBLE = re.compile(rf"[0-9][eE][+-]?[0-9]|[0-9]{{{NUMERIC_MAX_SCALE + 1}}}")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _jsonb_refuses(value) -> bool:
    """Whether decoded JSON holds a string jsonb cannot: with a NUL character, or a lone surrogate
    (which only the exact decoder lets through)."""
    if isinstance(value, str):
        return "\x00" in value or _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_jsonb_refuses(k) or _jsonb_refuses(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_jsonb_refuses(v) for v in value)
    return False


def _json_number(text: str) -> Decimal:
    number = _numeric(text)
    if number is None:
        raise ValueError(f"{text[:20]} overflows numeric")
    return number


def _exact_json(text: str):
    """``text`` decoded with its numbers as exact decimals, as jsonb reads them (the JSONL reader's
    exact decoder). Raises ValueError if jsonb refuses it."""
    return exact_json(text, _json_number)


def _json_failures(values: pd.Series) -> pd.Series:
    """Rows whose text jsonb refuses (which would fail the whole file): not JSON, a NUL character,
    a number beyond numeric's range. Each distinct text is parsed once (JSON columns repeat a lot),
    by orjson; only a text with a number a double cannot judge (or that orjson refuses, as it does
    1e400, which jsonb keeps) is decoded again exactly."""
    bad = []
    for text in values.dropna().unique():
        try:
            value = orjson.loads(text)
            exact = _JSON_NUMBER_BEYOND_DOUBLE.search(text) is not None
        except orjson.JSONDecodeError:
            exact = True
        if exact:
            try:
                value = _exact_json(text)
            except ValueError:
                bad.append(text)
                continue
        # Valid JSON text cannot hold a raw NUL, so a decoded one was written as \u0000.
        if (exact or "\\u0000" in text) and _jsonb_refuses(value):
            bad.append(text)
    return values.isin(bad) if bad else pd.Series(False, index=values.index)


def _nul_rule(name: str) -> Rule:
    """PostgreSQL's text cannot hold a NUL character: COPY would fail the whole file."""
    return Rule(
        f"nul:{name}",
        name,
        lambda _v, n=name: f"{n} contains a NUL character",
        custom=lambda values: values.str.contains("\x00", regex=False, na=False),
    )


def _unknown_keys_rule(table: str) -> Rule:
    """A JSONL row with keys outside the contract (the reader hands them over): quarantined, as
    loading it would silently drop their values (a misspelled "Country")."""
    return Rule(
        "unknown_keys",
        UNKNOWN_KEYS,
        # Read exactly: the keys' values may hold a number orjson refuses (1e400).
        lambda v: f"keys outside the {table} contract: {', '.join(exact_json(v, str))}",
        custom=lambda values: values.notna(),
    )


def _required_rule(name: str) -> Rule:
    """A required value that is missing: empty (null, or "" in any format: see :mod:`readers`) or,
    in a text column, only whitespace (:meth:`ChunkValidator._frame_for_ge` hands GE those as
    null), which is no more a name or a business key than an empty one."""
    return Rule(
        f"not_null:{name}",
        name,
        lambda v, n=name: f"{n} is required but {'empty' if pd.isna(v) else 'only whitespace'}",
        _expectations().ExpectColumnValuesToNotBeNull(column=name),
    )


def _rules_for_column(column: Column, db: DbColumn | None) -> list[Rule]:
    gxe = _expectations()
    name = column.name
    rules: list[Rule] = []
    if column.required:
        rules.append(_required_rule(name))
    if column.kind in _TYPE_PATTERNS:
        words = _TYPE_WORDS[column.kind]
        rules.append(
            Rule(
                f"type:{name}",
                name,
                lambda v, n=name, w=words: f"{n} {_shown(v)} is not {w}",
                gxe.ExpectColumnValuesToMatchRegex(
                    column=name, regex=_whole_value(_TYPE_PATTERNS[column.kind])
                ),
            )
        )
    if column.kind in ("date", "timestamp"):
        rules.append(
            Rule(
                f"calendar:{name}",
                name,
                lambda v, n=name: f"{n} {_shown(v)} is no real calendar date/time",
                custom=_calendar_failures(column.kind),
            )
        )
    if column.kind == "json":
        rules.append(
            Rule(
                f"json:{name}",
                name,
                lambda v, n=name: f"{n} {_shown(v)} is not valid JSON",
                custom=_json_failures,
            )
        )
    if column.kind == "text":
        rules.append(_nul_rule(name))
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


def _rounding_scale(column: Column, db: DbColumn | None) -> int | None:
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
            custom=functools.partial(_beyond_scale, scale=scale),
        )
    ]


def _range_rules(column: Column, db: DbColumn | None) -> list[Rule]:
    """The contract's range, then the storage limit of the PostgreSQL type (rows never abort a load),
    both judging the value as stored (see :func:`_as_stored`) and saying so when it was rounded."""
    if column.kind not in ("int", "decimal"):
        return []
    gxe = _expectations()
    name, numeric = column.name, _numeric_name(column.name)
    scale = _rounding_scale(column, db)
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
                lambda v, n=name, b=bounds: f"{n} {_shown(v)}{_rounding_words(v, scale)} is not {b}",
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
                    f"{n} {_shown(v)}{_rounding_words(v, scale)} does not fit DECIMAL({p},{s})"
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column=numeric, min_value=-bound, max_value=bound, strict_min=True, strict_max=True
                ),
            )
        )
    return rules


class ChunkValidator:
    """The rules of one table, compiled once into a GE suite, applied to each chunk of a file.

    Also keeps the per-expectation totals of the whole file (``summary()``), which the ledger
    stores and Dagster shows as the asset check's metadata.
    """

    def __init__(self, table: str, db_columns: dict[str, DbColumn] | None = None):
        self.contract = CONTRACTS[table]
        db_columns = db_columns or {}
        self.rules: list[Rule] = []
        for column in self.contract.columns:
            self.rules.extend(_rules_for_column(column, db_columns.get(column.name)))
        for reference in self.contract.references:
            name = reference.landing_column
            self.rules.append(_nul_rule(name))
            if reference.required:
                self.rules.append(_required_rule(name))
        self.rules.append(_unknown_keys_rule(table))
        self._numeric = [c.name for c in self.contract.columns if c.kind in ("int", "decimal")]
        # Required text (a business key of a reference is text too): only whitespace is empty.
        self._blank_is_empty = [c.name for c in self.contract.columns if c.required and c.kind == "text"] + [
            r.landing_column for r in self.contract.references if r.required
        ]
        self._beyond_scale = {r.column: r.custom for r in self.rules if r.id.startswith("scale:")}
        self._rounding_scales = {
            c.name: scale
            for c in self.contract.columns
            if (scale := _rounding_scale(c, db_columns.get(c.name))) is not None
        }
        self._by_expectation = [r for r in self.rules if r.expectation is not None]
        self._custom = [r for r in self.rules if r.custom is not None]
        self._ge_columns = list(dict.fromkeys(r.column for r in self._by_expectation))
        self._unexpected: Counter[str] = Counter()
        self.rows_checked = 0
        self._suite, self._batch_definition = self._compile()

    def _compile(self):
        gx = _great_expectations()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = context.data_sources.add_pandas(f"landing_{self.contract.table}")
        batch_definition = source.add_dataframe_asset("chunk").add_batch_definition_whole_dataframe("chunk")
        # Column presence is the reader's check (a file without the contract's columns fails as a
        # whole, with the missing names); the suite holds the per-row rules.
        suite = gx.ExpectationSuite(name=f"landing_contract_{self.contract.table}")
        for rule in self._by_expectation:
            suite.add_expectation(rule.expectation)
        return context.suites.add(suite), batch_definition

    def _frame_for_ge(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Only the columns GE checks, plus a numeric twin of each number column for range checks.

        Narrow on purpose: GE filters its input frame once per expectation, so a wide frame (a
        conversation's content) would be copied a dozen times per chunk for nothing.

        A required text value of only whitespace is null here, so that it fails the required rule
        alone (not also the pattern or the closed set), as an empty one does.
        """
        typed = {}
        for name in self._numeric:
            if self.contract.column(name).kind == "int":
                typed[_numeric_name(name)] = _as_float(frame[name], INT_PATTERN)
            else:
                numbers = _unreadable_as_infinite(frame[name], _as_float(frame[name], DECIMAL_PATTERN))
                if name in self._beyond_scale:
                    # Never stored (the scale rule quarantines them): out of the ranges' sight, so
                    # that they read only exact values (1e-400 is no float > 0: 'not > 0' is false).
                    numbers = numbers.mask(self._beyond_scale[name](frame[name]))
                elif name in self._rounding_scales:
                    numbers = _as_stored(frame[name], numbers, self._rounding_scales[name])
                typed[_numeric_name(name)] = numbers
        checked = frame[self._ge_columns]
        blanks = {}
        for name in self._blank_is_empty:
            blank = checked[name].str.isspace().fillna(False).astype(bool)
            if blank.any():
                blanks[name] = checked[name].mask(blank)
        if blanks:
            checked = checked.assign(**blanks)
        return pd.concat([checked, pd.DataFrame(typed, index=frame.index)], axis=1) if typed else checked

    def validate(self, frame: pd.DataFrame) -> Verdict:
        verdict = Verdict()
        self.rows_checked += len(frame)
        if frame.empty:
            return verdict
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": self._frame_for_ge(frame)})
        result = batch.validate(
            self._suite, result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False}
        )
        outcome = {r.expectation_config.id: r for r in result.results}
        for rule, expectation in zip(self._by_expectation, self._suite.expectations, strict=True):
            checked = outcome[expectation.id]
            if checked.exception_info and checked.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"expectation {rule.id} could not run: {checked.exception_info.get('exception_message')}"
                )
            rows = checked.result.get("unexpected_index_list") or []
            self._record(verdict, rule, frame, rows)
        for rule in self._custom:
            if rule.column not in frame:  # UNKNOWN_KEYS, only in chunks with such keys
                continue
            failing = rule.custom(frame[rule.column])
            self._record(verdict, rule, frame, frame.index[failing.to_numpy(dtype=bool)])
        return verdict

    def _record(self, verdict: Verdict, rule: Rule, frame: pd.DataFrame, rows) -> None:
        self._unexpected[rule.id] += len(rows)
        if len(rows):
            values = frame[rule.column].loc[list(rows)]
            for row, value in zip(values.index.tolist(), values.tolist(), strict=True):
                verdict.add(row, rule.id, rule.explain(value))

    def summary(self) -> dict:
        """Per rule: the GE expectation behind it and how many rows of the file broke it."""
        return {
            "rows_checked": self.rows_checked,
            "expectations": [
                {
                    "rule": r.id,
                    "expectation": r.expectation.expectation_type if r.expectation else "funnelhouse",
                    "unexpected": self._unexpected[r.id],
                    "success": self._unexpected[r.id] == 0,
                }
                for r in self.rules
            ],
        }


def rule_words(rule_id: str) -> str:
    """'in_set:direction' -> 'direction: not in the allowed set' (for summaries)."""
    whole_row = {
        "malformed_row": "malformed row (not the header's fields, or no JSON object)",
        "unknown_keys": "keys outside the contract",
        "older_batch": "older batch: would change a row stored after a newer batch loaded",
    }
    if rule_id in whole_row:
        return whole_row[rule_id]
    kind, _, column = rule_id.partition(":")
    words = {
        "not_null": "required but empty (or only whitespace)",
        "type": "wrong type",
        "calendar": "no real date/time",
        "json": "not JSON",
        "nul": "contains a NUL character",
        "in_set": "not in the allowed set",
        "scale": "more decimals than the money column keeps (never rounded)",
        "range": "out of range",
        "storage": "does not fit the column type",
        "pattern": "does not match the code pattern",
        "length": "too long",
        "reference": "unknown reference",
        "unique": "clashes with a unique value",
        "moved": "key exists with another partition value",
    }
    return f"{column}: {words.get(kind, kind)}" if column else kind
