"""Malformed rows for the ingestion tests: what kind of defect, in which column, with which value.

Policy (what keeps the good data consistent): a bad row is *inserted* next to the good row it was
copied from, never substituted for it. It gets a fresh natural key (e.g. ``CUST_BAD7``) so no good
row references it and no aggregate counts it; then exactly one defect is applied. The clean data
set is therefore identical with and without ``--bad-rows``, and no "cascade" rows exist: every
row a loader should reject is listed in the manifest with its kind.

Parquet columns are typed, so Parquet files only get defects a typed file can hold (out of range,
unknown enum, broken reference, missing value); CSV and JSONL also get wrong types and bad dates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from ingestion.contracts import Column, Reference, TableContract

WRONG_TYPE, OUT_OF_RANGE, UNKNOWN_ENUM = "wrong_type", "out_of_range", "unknown_enum"
BROKEN_REFERENCE, BAD_DATE, MISSING_REQUIRED = "broken_reference", "bad_date", "missing_required"
KINDS = (WRONG_TYPE, OUT_OF_RANGE, UNKNOWN_ENUM, BROKEN_REFERENCE, BAD_DATE, MISSING_REQUIRED)
TYPED_FORMAT_KINDS = (OUT_OF_RANGE, UNKNOWN_ENUM, BROKEN_REFERENCE, MISSING_REQUIRED)

_WRONG_TYPE_VALUES = {
    "int": ("abc", "twelve", "七"),
    "decimal": ("abc", "1O0.00", "n/a"),
    "bool": ("maybe", "perhaps", "真的"),
}
_BAD_DATES = {
    "date": ("2026-02-30", "yesterday", "2026-13-01", "0000-00-00"),
    "timestamp": ("2026-02-30 10:00:00", "yesterday", "2026-11-05 25:61:00", "not a date"),
}
_UNKNOWN_ENUMS = {
    "tier": "Z",
    "current_stage": "Onboarding",
    "from_stage": "Onboarding",
    "to_stage": "Onboarding",
    "platform": "line",
    "status": "archived",
    "gender": "M",
    "direction": "sideways",
    "message_type": "sticker",
    "sentiment": "ecstatic",
    "department": "Sales",
    "role": "intern",
    "level": "实习生",
    "deposit_type": "赠金",
    "reason": "税务",
    "risk_level": "极高",
    "screening_result": "待定",
    "event_type": "闲聊",
    "course_type": "180天",
    "value_type": "xml",
    "type": "audio",
    "investment_experience": "专家",
    "risk_preference": "保本",
}
_MISSING_PARENT = {
    "customers": "CUST_MISSING_{n}",
    "employees": "EMP_MISSING_{n}",
    "tags": "未知标签_{n}",
    "scripts": "SCR_MISSING_{n}",
    "training_courses": "CRS_MISSING_{n}",
    "conversations": "MSG_missing_{n}",
}
# Columns besides the natural key that must stay unique (UNIQUE in the schema).
_UNIQUE_EXTRAS = {"employees": ("email", "username")}


@dataclass(frozen=True)
class Defect:
    kind: str
    column: str


def candidate_defects(contract: TableContract, typed_format: bool) -> dict[str, list[Column | Reference]]:
    """Defect kind -> columns it can hit, from the contract's kinds, ranges, sets and references."""
    found: dict[str, list] = {kind: [] for kind in KINDS}
    for col in contract.columns:
        if col.kind in _WRONG_TYPE_VALUES:
            found[WRONG_TYPE].append(col)
        if col.kind in _BAD_DATES:
            found[BAD_DATE].append(col)
        if col.minimum is not None or col.maximum is not None:
            found[OUT_OF_RANGE].append(col)
        if col.allowed:
            found[UNKNOWN_ENUM].append(col)
        if col.required:
            found[MISSING_REQUIRED].append(col)
    for ref in contract.references:
        found[BROKEN_REFERENCE].append(ref)
        if ref.required:
            found[MISSING_REQUIRED].append(ref)
    allowed = TYPED_FORMAT_KINDS if typed_format else KINDS
    return {kind: cols for kind, cols in found.items() if cols and kind in allowed}


class BadRowMaker:
    """Chooses where bad rows go in a file and builds them; one per file, deterministic by its rng."""

    def __init__(
        self,
        contract: TableContract,
        typed_format: bool,
        fraction: float,
        rng: np.random.Generator,
        serials: itertools.count,
        window_start: date,
        key_domain: list[str] | None = None,
    ):
        self.contract = contract
        self.fraction = fraction
        # Inserted rows: p per good row makes about `fraction` of the file's rows bad.
        self.per_good_row = fraction / (1.0 - fraction) if fraction else 0.0
        self.rng = rng
        self.serials = serials
        self.window_start = window_start
        self.key_domain = key_domain or []
        self.candidates = candidate_defects(contract, typed_format)
        self.kinds = sorted(self.candidates, key=KINDS.index)
        self.key_refs = [r for r in contract.references if r.landing_column in contract.natural_key]

    def positions(self, good_rows: int) -> np.ndarray:
        """Sorted indices of the good rows (in a batch of good_rows) that get a bad twin after them."""
        if not self.per_good_row or not good_rows or not self.kinds:
            return np.empty(0, dtype=np.int64)
        count = min(good_rows, int(self.rng.binomial(good_rows, min(1.0, self.per_good_row))))
        return np.sort(self.rng.choice(good_rows, size=count, replace=False))

    def make(self, row: dict, context: list[dict]) -> tuple[dict, Defect] | None:
        """A copy of row with a fresh natural key and one defect, or None if no fresh key exists."""
        serial = next(self.serials)
        bad = self._rekey(dict(row), serial, context)
        if bad is None:
            return None
        kind = self.kinds[int(self.rng.integers(len(self.kinds)))]
        columns = self.candidates[kind]
        target = columns[int(self.rng.integers(len(columns)))]
        name = target.landing_column if isinstance(target, Reference) else target.name
        bad[name] = self._value(kind, target, serial)
        return bad, Defect(kind, name)

    def _rekey(self, row: dict, serial: int, context: list[dict]) -> dict | None:
        contract = self.contract
        plain_keys = [k for k in contract.natural_key if k not in {r.landing_column for r in self.key_refs}]
        for key in plain_keys:
            if contract.column(key).kind == "date":
                # Before the simulated window: no good row of the table has such a date.
                row[key] = self.window_start - timedelta(days=serial + 1)
            else:
                row[key] = fresh_text(row[key], serial)
        for extra in _UNIQUE_EXTRAS.get(contract.table, ()):
            row[extra] = fresh_text(row[extra], serial)
        if plain_keys:
            return row
        # The key is made of references only (customer_tags, training_progress): keep the first
        # parent and pick a second one this parent has no good row with.
        owner, partner = self.key_refs[0].landing_column, self.key_refs[-1].landing_column
        taken = {r[partner] for r in context if r[owner] == row[owner]}
        free = [v for v in self.key_domain if v not in taken]
        if not free:
            return None
        row[partner] = free[serial % len(free)]
        return row

    def _value(self, kind: str, target: Column | Reference, serial: int):
        rng = self.rng
        if kind == MISSING_REQUIRED:
            return None
        if kind == BROKEN_REFERENCE:
            return _MISSING_PARENT[target.table].format(n=serial)
        if kind == WRONG_TYPE:
            return _pick(rng, _WRONG_TYPE_VALUES[target.kind])
        if kind == BAD_DATE:
            return _pick(rng, _BAD_DATES[target.kind])
        if kind == UNKNOWN_ENUM:
            return _UNKNOWN_ENUMS.get(target.name, "unknown")
        return _out_of_range(target, rng)


def _pick(rng: np.random.Generator, values: tuple):
    return values[int(rng.integers(len(values)))]


def _out_of_range(col: Column, rng: np.random.Generator):
    above = col.maximum is not None and (col.minimum is None or rng.random() < 0.5)
    if above:
        value = col.maximum + int(rng.integers(1, 16))
    elif col.exclusive_minimum:
        value = col.minimum
    else:
        value = col.minimum - int(rng.integers(1, 101))
    return int(value) if col.kind == "int" else Decimal(int(value)).quantize(Decimal("0.01"))


def fresh_text(value: str | None, serial: int) -> str:
    """A unique variant of a key that still fits its pattern: CUST_0000042 -> CUST_BAD7."""
    value = value or "X"
    if "@" in value:
        return f"bad{serial}.{value}"
    if "_" in value:
        return f"{value.rsplit('_', 1)[0]}_BAD{serial}"
    return f"{value}_BAD{serial}"
