"""The value checks of :mod:`ingestion.load.validate` that GE cannot express vectorised, besides
numbers: calendar validity of a well-shaped date/timestamp (``2025-02-30``) and JSON as jsonb takes
it (parsed once per distinct value). Each returns True where a value fails."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.load.readers.json_text import exact_json
from ingestion.load.validate_numbers import as_numeric
from ingestion.load.validate_patterns import NUMERIC_MAX_SCALE, TYPE_PATTERNS


def calendar_failures(kind: str) -> Callable[[pd.Series], pd.Series]:
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
                pc.match_substring_regex(text, TYPE_PATTERNS[kind]),
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
    number = as_numeric(text)
    if number is None:
        raise ValueError(f"{text[:20]} overflows numeric")
    return number


def _exact_json(text: str):
    """``text`` decoded with its numbers as exact decimals, as jsonb reads them (the JSONL reader's
    exact decoder). Raises ValueError if jsonb refuses it."""
    return exact_json(text, _json_number)


def json_failures(values: pd.Series) -> pd.Series:
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
