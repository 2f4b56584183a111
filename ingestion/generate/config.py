"""What to generate, the clock it runs on, and where its randomness comes from.

The generator never reads the wall clock and never relies on ``hash()`` or set order: every
timestamp derives from ``end_date`` and ``days``, and every random stream from ``seed`` plus a
stable label, so the same arguments always give byte-identical files.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

DEFAULT_END_DATE = date(2026, 11, 27)
DEFAULT_DAYS = 120
CUSTOMERS_PER_EMPLOYEE = 50
MIN_EMPLOYEES = 10
DAY = 86_400
EPOCH = datetime(1970, 1, 1)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class GenerateConfig:
    customers: int
    seed: int
    days: int = DEFAULT_DAYS
    end_date: date = DEFAULT_END_DATE
    bad_rows: float = 0.0
    # Customers simulated together: bounds memory and gives numpy enough rows to be fast.
    block_size: int = 1000
    # Parquet row group size, also the in-memory buffer of each Parquet file.
    row_group_rows: int = 50_000
    # Tables batched in parts (not by month) start a new file after this many rows.
    rows_per_part: int = 200_000

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.days < 7:
            raise ValueError("days must be at least 7")
        if not 0.0 <= self.bad_rows < 0.5:
            raise ValueError("bad_rows must be a fraction in [0, 0.5)")

    @property
    def end_ts(self) -> int:
        """Exclusive end of the simulated window, epoch seconds (UTC midnight of end_date)."""
        return int(
            datetime(self.end_date.year, self.end_date.month, self.end_date.day, tzinfo=UTC).timestamp()
        )

    @property
    def start_ts(self) -> int:
        return self.end_ts - self.days * DAY

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days)

    @property
    def employee_count(self) -> int:
        return max(MIN_EMPLOYEES, round(self.customers / CUSTOMERS_PER_EMPLOYEE))

    def day_index(self, ts: int) -> int:
        return (ts - self.start_ts) // DAY

    def numpy_rng(self, *labels: object) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._entropy(labels)))

    def python_rng(self, *labels: object) -> random.Random:
        state = np.random.SeedSequence(self._entropy(labels)).generate_state(2, np.uint64)
        return random.Random(int(state[0]) << 64 | int(state[1]))

    def _entropy(self, labels: tuple[object, ...]) -> list[int]:
        return [self.seed & 0xFFFFFFFF, self.seed >> 32] + [
            zlib.crc32(str(label).encode()) for label in labels
        ]


def to_datetime(ts: int | float) -> datetime:
    """Naive UTC datetime (the landing format has no zone), whole seconds."""
    return EPOCH + timedelta(seconds=int(ts))


def to_date(ts: int | float) -> date:
    return to_datetime(ts).date()


def money(cents: int) -> Decimal:
    """Exact two-decimal amount from integer cents (amounts are summed as ints, never floats)."""
    return Decimal(int(cents)).scaleb(-2)


def percent(part: int, whole: int) -> Decimal | None:
    """100 * part / whole rounded half-up to 2 decimals, None when whole is 0."""
    if whole == 0:
        return None
    return (Decimal(100 * part) / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP)
