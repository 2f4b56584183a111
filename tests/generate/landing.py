"""Reading landing files back and judging rows against the contract, independently of the generator.

The generator's own code is not reused here on purpose: these checks are a second reading of the
public landing format (CSV/JSONL/Parquet conventions + ingestion.contracts).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow.parquet as pq

from ingestion.contracts import CONTRACTS, Column, TableContract, load_order
from ingestion.generate.manifest import Manifest

LANDING_NAME = re.compile(r"^(?P<table>[a-z_]+)__(?P<batch>[A-Za-z0-9_-]+)\.(?P<ext>csv|jsonl|parquet)$")
_INT = re.compile(r"^-?[0-9]+$")
_DECIMAL = re.compile(r"^-?[0-9]+\.[0-9]{2}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")


def columns_of(path: Path) -> list[list[str]]:
    """Column names as the file declares them (per line for JSONL)."""
    fmt = path.suffix[1:]
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return [next(csv.reader(handle))]
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as handle:
            return [list(json.loads(line)) for line in handle]
    return [pq.read_schema(path).names]


def read_rows(path: Path) -> list[dict]:
    fmt = path.suffix[1:]
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(handle)]
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]
    return pq.read_table(path).to_pylist()


def parse(column: Column, value, fmt: str):
    """The typed value, or ValueError if it does not have the column's kind in this format."""
    kind = column.kind
    if value is None:
        return None
    if fmt == "parquet" and kind != "json":
        expected = {
            "text": str,
            "int": int,
            "decimal": Decimal,
            "bool": bool,
            "date": date,
            "timestamp": datetime,
        }
        if not isinstance(value, expected[kind]):
            raise ValueError(f"{value!r} is not {kind}")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not text")
        return value
    if kind == "int":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _INT.match(value))
        ):
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if kind == "decimal":
        if isinstance(value, bool) or not (
            isinstance(value, int | float) or (fmt == "csv" and _DECIMAL.match(value))
        ):
            raise ValueError(f"{value!r} is not a decimal")
        try:
            return Decimal(str(value)).quantize(Decimal("0.01"))
        except InvalidOperation as error:
            raise ValueError(str(error)) from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if fmt == "csv" and value in ("true", "false"):
            return value == "true"
        raise ValueError(f"{value!r} is not a boolean")
    if kind == "json":
        return json.loads(value) if isinstance(value, str) and fmt != "jsonl" else value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a {kind} string")
    if kind == "date":
        if not _DATE.match(value):
            raise ValueError(f"{value!r} is not YYYY-MM-DD")
        return date.fromisoformat(value)
    if not _TIMESTAMP.match(value):
        raise ValueError(f"{value!r} is not YYYY-MM-DD HH:MM:SS")
    return datetime.fromisoformat(value)


def row_problems(contract: TableContract, row: dict, fmt: str) -> tuple[dict, list[str]]:
    """(typed row, problems) for the checks a single row allows: types, required, sets, ranges, patterns."""
    typed, problems = {}, []
    for column in contract.columns:
        try:
            value = parse(column, row[column.name], fmt)
        except (ValueError, json.JSONDecodeError) as error:
            problems.append(f"wrong_type/bad_date {column.name}: {error}")
            continue
        typed[column.name] = value
        if value is None:
            if column.required:
                problems.append(f"missing_required {column.name}")
            continue
        if column.allowed and value not in column.allowed:
            problems.append(f"unknown_enum {column.name}={value!r}")
        if column.pattern and not re.match(column.pattern, value):
            problems.append(f"pattern {column.name}={value!r}")
        if column.max_length and len(value) > column.max_length:
            problems.append(f"max_length {column.name}")
        low, high = column.minimum, column.maximum
        if low is not None and (value < low or (column.exclusive_minimum and value == low)):
            problems.append(f"out_of_range {column.name}={value}")
        if high is not None and value > high:
            problems.append(f"out_of_range {column.name}={value}")
    for ref in contract.references:
        value = row[ref.landing_column]
        typed[ref.landing_column] = value
        if value is None and ref.required:
            problems.append(f"missing_required {ref.landing_column}")
    return typed, problems


@dataclass
class Located:
    file: str
    row_number: int  # 1-based data row
    typed: dict
    problems: list[str]


@dataclass
class Dataset:
    """A generated directory read back: rows by table, with the manifest's bad rows set apart."""

    out_dir: Path
    manifest: Manifest
    good: dict[str, list[Located]] = field(default_factory=dict)
    bad: dict[str, list[Located]] = field(default_factory=dict)

    def rows(self, table: str) -> list[dict]:
        return [r.typed for r in self.good[table]]


def load(out_dir: Path) -> Dataset:
    manifest = Manifest.read(out_dir)
    data = Dataset(out_dir, manifest, {t: [] for t in CONTRACTS}, {t: [] for t in CONTRACTS})
    for entry in manifest.files:
        bad_numbers = {b.row for b in entry.bad_rows}
        contract = CONTRACTS[entry.table]
        for number, raw in enumerate(read_rows(out_dir / entry.file), start=1):
            typed, problems = row_problems(contract, raw, entry.format)
            target = data.bad if number in bad_numbers else data.good
            target[entry.table].append(Located(entry.file, number, typed, problems))
    return data


def reference_problems(data: Dataset, located: Located, table: str, parent_keys: dict[str, set]) -> list[str]:
    """References of one row that do not resolve to a good parent row."""
    problems = []
    for ref in CONTRACTS[table].references:
        value = located.typed.get(ref.landing_column)
        if value is not None and value not in parent_keys[ref.table]:
            problems.append(f"broken_reference {ref.landing_column}={value!r}")
    return problems


def parent_keys(data: Dataset) -> dict[str, set]:
    """Single-column natural keys of every table's good rows (what references point at)."""
    keys = {}
    for table in load_order():
        contract = CONTRACTS[table]
        if len(contract.natural_key) == 1:
            keys[table] = {r.typed.get(contract.natural_key[0]) for r in data.good[table]}
    keys["conversations"] = {r.typed["source_message_id"] for r in data.good["conversations"]}
    return keys
