"""How the reconciliation compares a value of the seed's PostgreSQL views with the marts' (and
changed_since_build.py an employee's columns in PostgreSQL with the raw copy's)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

# ClickHouse computes the mart's averages (avg_withdrawal_rate_percent) in floating point, PostgreSQL
# the view's in exact numeric: the two may differ in the last binary digit. Rounding both to a fixed
# number of decimals does not absorb that: an average of 40 rates with two decimals ends in 5 at the
# fifth decimal half the time, and one ulp then rounds the other way (a false mismatch); it also hides
# real differences below the rounding (one customer's rate off by 0.01 among 200 or more). So a float
# is compared within this tolerance (relative, and absolute near zero), far below any real difference,
# and exact numbers (decimals, integers) exactly.
FLOAT_TOLERANCE = 1e-12


def normalise(value):
    """``value`` as compared: a timestamp as its wall clock (both engines hold PostgreSQL's, the mart's
    declared UTC); anything else as is (numbers: ``same``)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return value


def _is_number(value) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def same(view_value, mart_value) -> bool:
    """Whether a view's value equals the mart's: floats within ``FLOAT_TOLERANCE``, other
    values exactly (``Decimal("5000.00") == 5000``)."""
    if _is_number(view_value) and _is_number(mart_value):
        if isinstance(view_value, float) or isinstance(mart_value, float):
            return math.isclose(
                float(view_value),
                float(mart_value),
                rel_tol=FLOAT_TOLERANCE,
                abs_tol=FLOAT_TOLERANCE,
            )
        return view_value == mart_value
    return normalise(view_value) == normalise(mart_value)


def same_row(view_row: dict, mart_row: dict) -> bool:
    return all(same(value, mart_row.get(column)) for column, value in view_row.items())
