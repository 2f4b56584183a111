"""JSON values as landing text, numbers kept as written: shared by the JSONL reader, the Parquet
reader (nested values) and the validation and search code that decode JSON as jsonb does."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal

import orjson


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def exact_json(text: str, number: Callable[[str], object]):
    """``text`` decoded by JSON's grammar only, as jsonb reads it (NaN and Infinity refused), each
    number handed to ``number`` as written rather than made a double. Raises ValueError (a
    ``json.JSONDecodeError`` for bad syntax) where it is no JSON."""
    try:
        return json.loads(text, parse_float=number, parse_int=number, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


class WrittenNumber:
    """A JSONL number as written, for the lines whose numbers a double would change."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def number_text(value) -> orjson.Fragment:
    """orjson's ``default``: a number it cannot write itself, as JSON text of its exact digits (a
    JSONL number as written, a Parquet decimal inside a nested value)."""
    if isinstance(value, WrittenNumber):
        return orjson.Fragment(value.text)
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value) -> str:
    return orjson.dumps(value, default=number_text).decode()


# A JSONL number of an integer column written as a whole float: pandas' ``to_json`` writes an
# integer column holding a NaN as floats (35.0), which its Parquet keeps as 35.
_WHOLE_FRACTION = re.compile(r"(-?[0-9]+)\.0+")


def jsonl_value_text(value, is_json: bool, is_int: bool = False) -> str | None:
    """A JSONL value as landing text; in an integer column (``is_int``) a whole number written as
    a float (35.0) is the integer (35), as the same frame's Parquet gives it; not in a decimal or
    text column, where the digits written are the value."""
    if value is None:
        return None
    if is_json:
        return json_dumps(value)
    if is_int:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, WrittenNumber) and (whole := _WHOLE_FRACTION.fullmatch(value.text)):
            return whole[1]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None  # "" is missing, as CSV's empty field (a JSON column's "" is JSON text)
    if isinstance(value, dict | list):
        return json_dumps(value)
    return value.text if isinstance(value, WrittenNumber) else str(value)
