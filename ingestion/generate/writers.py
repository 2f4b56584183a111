"""Streaming landing-file writers: CSV, JSONL and Parquet, batched into ``<table>__<batch>.<ext>``.

Rows arrive in small batches and go straight to disk (Parquet keeps one row group in memory), so
memory stays bounded however many rows a table gets. A file is written under a hidden temporary
name and renamed when complete, so a loader watching the directory never sees half a file.

Value conventions (the public landing format):
  CSV    UTF-8, header, RFC 4180 quoting, empty field = NULL, true/false, ``YYYY-MM-DD HH:MM:SS``
         (UTC, no zone), ``YYYY-MM-DD``, decimals as plain text with 2 decimals, json as compact text.
  JSONL  one object per line, null for NULL, json columns as native arrays/objects, timestamps and
         dates as the same strings as CSV, decimals as numbers.
  Parquet  timestamp[us], date32, decimal128(15, 2), int64, bool, json columns as JSON text.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.contracts import CONTRACTS, TableContract
from ingestion.generate.bad_rows import BadRowMaker
from ingestion.generate.config import GenerateConfig, to_datetime
from ingestion.generate.manifest import BadRow, FileEntry

LANDING_NAME = re.compile(r"^(?P<table>[a-z_]+)__(?P<batch>[A-Za-z0-9_-]+)\.(?P<ext>csv|jsonl|parquet)$")

# table -> (format, column whose month names the batch, or None for numbered parts)
LAYOUT: dict[str, tuple[str, str | None]] = {
    "conversations": ("parquet", "sent_at"),
    "conversation_events": ("jsonl", "created_at"),
    "customer_journey": ("jsonl", None),
    "employee_kpis": ("parquet", None),
    "deposits": ("csv", "deposited_at"),
    "withdrawals": ("csv", "requested_at"),
}
DEFAULT_LAYOUT = ("csv", None)

_ARROW_TYPES = {
    "text": pa.string(),
    "int": pa.int64(),
    "decimal": pa.decimal128(15, 2),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "json": pa.string(),
}


def layout(table: str) -> tuple[str, str | None]:
    return LAYOUT.get(table, DEFAULT_LAYOUT)


def arrow_schema(contract: TableContract) -> pa.Schema:
    fields = [pa.field(c.name, _ARROW_TYPES[c.kind]) for c in contract.columns]
    fields += [pa.field(r.landing_column, pa.string()) for r in contract.references]
    return pa.schema(fields)


_JSON = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":")
)  # built once: json.dumps rebuilds it per call


def json_text(value) -> str:
    return _JSON.encode(value)


def csv_cell(value) -> str:
    kind = type(value)
    if value is None:
        return ""
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is datetime:
        return value.isoformat(" ")
    if kind is date:
        return value.isoformat()
    if kind is Decimal:
        return format(value, "f")
    if kind in (list, dict):
        return json_text(value)
    return str(value)


def jsonl_value(value):
    kind = type(value)
    if kind is datetime:
        return value.isoformat(" ")
    if kind is date:
        return value.isoformat()
    if kind is Decimal:
        return float(value)
    return value


class _CsvFile:
    def __init__(self, path: Path, columns: list[str]):
        self.columns = columns
        self.handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self.writer = csv.writer(self.handle, lineterminator="\r\n")
        self.writer.writerow(columns)

    def write_rows(self, rows: list[dict]) -> None:
        cols = self.columns
        self.writer.writerows([[csv_cell(row[c]) for c in cols] for row in rows])

    def close(self) -> None:
        self.handle.close()


class _JsonlFile:
    def __init__(self, path: Path, columns: list[str]):
        self.columns = columns
        self.handle = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed in close()

    def write_rows(self, rows: list[dict]) -> None:
        cols = self.columns
        self.handle.write("".join(json_text({c: jsonl_value(row[c]) for c in cols}) + "\n" for row in rows))

    def close(self) -> None:
        self.handle.close()


class _ParquetFile:
    def __init__(self, path: Path, contract: TableContract, row_group_rows: int):
        self.schema = arrow_schema(contract)
        self.json_columns = [c.name for c in contract.columns if c.kind == "json"]
        self.row_group_rows = row_group_rows
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def to_table(self, rows: list[dict]) -> pa.Table:
        prepared = (
            [
                {**row, **{c: None if row[c] is None else json_text(row[c]) for c in self.json_columns}}
                for row in rows
            ]
            if self.json_columns
            else rows
        )
        return pa.Table.from_pylist(prepared, schema=self.schema)

    def write_rows(self, rows: list[dict]) -> None:
        self.write_table(self.to_table(rows))

    def write_table(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.buffered += table.num_rows
        if self.buffered >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if self.buffered:
            self.writer.write_table(pa.concat_tables(self.buffer), row_group_size=self.row_group_rows)
        self.buffer, self.buffered = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()


class LandingFile:
    """One output file: writes good rows, inserts bad twins, and records both for the manifest."""

    def __init__(
        self,
        out_dir: Path,
        contract: TableContract,
        batch: str,
        config: GenerateConfig,
        bad_maker: BadRowMaker,
    ):
        fmt, _ = layout(contract.table)
        self.contract = contract
        self.entry = FileEntry(
            file=f"{contract.table}__{batch}.{fmt}", table=contract.table, batch=batch, format=fmt, rows=0
        )
        self.path = out_dir / self.entry.file
        self.temp_path = out_dir / f".{self.entry.file}.partial"
        columns = contract.landing_columns
        if fmt == "csv":
            self.file = _CsvFile(self.temp_path, columns)
        elif fmt == "jsonl":
            self.file = _JsonlFile(self.temp_path, columns)
        else:
            self.file = _ParquetFile(self.temp_path, contract, config.row_group_rows)
        self.bad_maker = bad_maker
        self.good_rows = 0
        self.last_rows: list[dict] = []  # context for a bad row added at close

    def write_rows(self, rows: list[dict], context: list[dict] | None = None) -> None:
        """context: the rows written together with these (a customer's rows may span two parts)."""
        if not rows:
            return
        out: list[dict] = []
        positions = set(self.bad_maker.positions(len(rows)).tolist())
        for i, row in enumerate(rows):
            out.append(row)
            if i in positions:
                self._append_bad(out, row, context or rows)
        self.file.write_rows(out)
        self._count(len(rows), len(out))
        self.last_rows = context or rows

    def write_table(self, table: pa.Table) -> None:
        """Arrow batch (the vectorised conversations path): bad twins are built row by row."""
        n = table.num_rows
        if not n:
            return
        last_good = table.slice(n - 1, 1)
        positions = self.bad_maker.positions(n)
        bad_rows, after = [], []
        for pos in positions.tolist():
            made = self.bad_maker.make(table.slice(pos, 1).to_pylist()[0], [])
            if made:
                bad, defect = made
                bad_rows.append(bad)
                after.append(pos)
                self.entry.bad_rows.append(BadRow(0, defect.kind, defect.column))  # row fixed below
        if bad_rows:
            combined = pa.concat_tables([table, self.file.to_table(bad_rows)])
            keys = np.concatenate([np.arange(n) * 2, np.asarray(after) * 2 + 1])
            order = np.argsort(keys, kind="stable")
            table = combined.take(order)
            new_rows = np.nonzero(order >= n)[0]
            for entry, index in zip(self.entry.bad_rows[-len(bad_rows) :], new_rows.tolist(), strict=True):
                entry.row = self.entry.rows + index + 1
        self.file.write_table(table)
        self._count(n, table.num_rows)
        if not self.entry.bad_rows:
            self.last_rows = last_good.to_pylist()

    def _append_bad(self, out: list[dict], row: dict, context: list[dict]) -> None:
        made = self.bad_maker.make(row, context)
        if made:
            bad, defect = made
            out.append(bad)
            self.entry.bad_rows.append(BadRow(self.entry.rows + len(out), defect.kind, defect.column))

    def _count(self, good: int, written: int) -> None:
        self.good_rows += good
        self.entry.rows += written

    def close(self) -> FileEntry:
        # Every file of 20+ rows gets at least one bad row when bad rows are asked for.
        if self.bad_maker.fraction and not self.entry.bad_rows and self.good_rows >= 20 and self.last_rows:
            out: list[dict] = []
            for row in reversed(self.last_rows):
                self._append_bad(out, row, self.last_rows)
                if out:
                    break
            if out:
                self.file.write_rows(out)
                self.entry.rows += len(out)
        self.file.close()
        os.replace(self.temp_path, self.path)
        self.entry.sha256 = _sha256(self.path)
        return self.entry


class TableSink:
    """All files of one table: routes rows to their batch (month or numbered part)."""

    def __init__(
        self, out_dir: Path, table: str, config: GenerateConfig, key_domain: list[str] | None = None
    ):
        self.out_dir = out_dir
        self.contract = CONTRACTS[table]
        self.config = config
        self.format, self.month_column = layout(table)
        self.key_domain = key_domain
        self.files: dict[str, LandingFile] = {}
        self.closed: list[FileEntry] = []
        self.serials = itertools.count(1)
        self.part = 1

    def write(self, rows: list[dict], batch: str | None = None) -> None:
        if batch is not None:
            self._file(batch).write_rows(rows)
        elif self.month_column:
            for month, month_rows in _group_by(rows, lambda r: f"{r[self.month_column]:%Y_%m}").items():
                self._file(month).write_rows(month_rows)
        else:
            self._write_parts(rows)

    def write_table(self, table: pa.Table, batch: str) -> None:
        self._file(batch).write_table(table)

    def _write_parts(self, rows: list[dict]) -> None:
        context = rows
        while rows:
            current = self._file(f"part{self.part:04d}")
            room = self.config.rows_per_part - current.good_rows
            if room <= 0:
                self.closed.append(self.files.pop(f"part{self.part:04d}").close())
                self.part += 1
                continue
            current.write_rows(rows[:room], context)
            rows = rows[room:]

    def _file(self, batch: str) -> LandingFile:
        file = self.files.get(batch)
        if file is None:
            maker = BadRowMaker(
                self.contract,
                self.format == "parquet",
                self.config.bad_rows,
                self.config.numpy_rng("bad-rows", self.contract.table, batch),
                self.serials,
                self.config.start_date,
                self.key_domain,
            )
            file = self.files[batch] = LandingFile(self.out_dir, self.contract, batch, self.config, maker)
        return file

    def close(self) -> list[FileEntry]:
        if not self.files and not self.closed:
            # An empty table still gets its (header-only) file, so every table is present.
            last_month = f"{to_datetime(self.config.end_ts - 1):%Y_%m}"
            self._file(last_month if self.month_column else f"part{self.part:04d}")
        self.closed += [self.files[b].close() for b in sorted(self.files)]
        self.files = {}
        return self.closed


def _group_by(rows: list[dict], key: Callable[[dict], str]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
