"""Numbers as PostgreSQL reads and stores them, for the range, storage and scale rules of
:mod:`ingestion.load.validate`: landing text as floats, values numeric refuses made infinite, digits
beyond a DECIMAL's scale read exactly, values rounded as stored and the words saying so."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

import numpy as np
import pandas as pd

from ingestion.load.validate_patterns import DECIMAL_PATTERN, NUMERIC_MAX_SCALE, NUMERIC_MAX_WHOLE_DIGITS


def as_float(texts: pd.Series, pattern: str) -> pd.Series:
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


def as_numeric(text: str) -> Decimal | None:
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


def unreadable_as_infinite(texts: pd.Series, numbers: pd.Series) -> pd.Series:
    """``numbers`` with the values PostgreSQL's numeric cannot even read (1e-16384, a fraction of
    more than 16383 digits: see NUMERIC_MAX_SCALE) made infinite, which no storage range holds: as
    floats they are 0.0 and would pass, then fail the whole file. Only values with an exponent or
    such a fraction are looked at (a value too big for numeric is infinite as a float already)."""
    odd = texts.str.contains("[eE]", na=False) | (texts.str.len().fillna(0) > NUMERIC_MAX_SCALE)
    odd &= numbers.notna()
    if not odd.any():
        return numbers
    suspects = texts[odd]
    refused = suspects.index[[as_numeric(text) is None for text in suspects]]
    numbers = numbers.copy()
    numbers.loc[refused] = math.inf
    return numbers


def _digits_beyond(text: str, scale: int) -> bool:
    """Whether the number ``text`` has a non-zero digit after ``scale`` decimals, read exactly
    (1.5e-3 has, 1.50e1 and 1000.500 have not). A value numeric cannot read is the storage rule's."""
    number = as_numeric(text)
    if number is None:
        return False
    _, digits, exponent = number.as_tuple()
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if trailing_zeros == len(digits):  # zero, however many zeros it is written with
        return False
    return exponent + trailing_zeros < -scale


def beyond_scale(values: pd.Series, scale: int) -> pd.Series:
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


def as_stored(texts: pd.Series, numbers: pd.Series, scale: int) -> pd.Series:
    """``numbers`` (floats of ``texts``) rounded as PostgreSQL stores them at ``scale`` before the
    range and storage checks see them: 0.004 is 0.00 (failing a range > 0), 999.995 is 1000.00
    (overflowing DECIMAL(5,2)). Only the values with digits beyond the scale are rounded, each
    distinct text once; a value numeric cannot read has none (it stays as
    :func:`unreadable_as_infinite` made it)."""
    finer = beyond_scale(texts, scale)
    if not finer.any():
        return numbers
    stored = {text: float(_rounded(as_numeric(text), scale)) for text in texts[finer].unique()}
    rounded = numbers.copy()
    rounded[finer] = texts[finer].map(stored)
    return rounded


def rounding_words(value, scale: int | None) -> str:
    """' (stored as 0.00: rounded to 2 decimals)' where ``value`` is rounded as stored in a
    column of ``scale`` (None: a column that rounds nothing), so that a range or storage reason
    names the value it judged, not one the row never had."""
    if scale is None or not _digits_beyond(str(value), scale):
        return ""
    decimals = f"{scale} decimal{'' if scale == 1 else 's'}"
    return f" (stored as {_rounded(as_numeric(value), scale)}: rounded to {decimals})"
