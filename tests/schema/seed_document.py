"""Reads the seed design document itself, so the schema tests check against it and not a copy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "database-design.zh.md"

_SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
_CREATE_TABLE = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\)( PARTITION BY RANGE \((\w+)\))?;", re.S)
_INLINE_INDEX = re.compile(r"^\s*INDEX (\w+) \(([^)]*)\)", re.M)
_CREATE_INDEX = re.compile(r"CREATE INDEX (\w+) ON (\w+)\(([^)]*)\);")
_CREATE_VIEW = re.compile(r"CREATE VIEW (\w+) AS\s+SELECT(.*?)\bFROM\b", re.S)
_COLUMN = re.compile(r"^\s*([\w\u4e00-\u9fff]+) ([A-Z]+(?:\(\d+(?:,\d+)?\))?)", re.M)
_NOT_COLUMNS = {"INDEX", "UNIQUE", "PRIMARY", "FOREIGN", "CHECK"}


@dataclass
class SeedTable:
    name: str
    columns: dict[str, str] = field(default_factory=dict)  # name -> seed type text
    inline_indexes: dict[str, list[str]] = field(default_factory=dict)


def _text() -> str:
    return SEED.read_text(encoding="utf-8")


def tables() -> dict[str, SeedTable]:
    result: dict[str, SeedTable] = {}
    for block in _SQL_BLOCK.findall(_text()):
        for name, body, _partition, _key in _CREATE_TABLE.findall(block):
            table = result.setdefault(name, SeedTable(name))
            for column, type_text in _COLUMN.findall(body):
                if column not in _NOT_COLUMNS:
                    table.columns[column] = type_text
            for index, columns in _INLINE_INDEX.findall(body):
                table.inline_indexes[index] = [c.strip() for c in columns.split(",")]
    return result


def partitioned_tables() -> dict[str, str]:
    return {
        name: key
        for block in _SQL_BLOCK.findall(_text())
        for name, _body, partition, key in _CREATE_TABLE.findall(block)
        if partition
    }


def section4_indexes() -> dict[str, tuple[str, list[str]]]:
    return {
        name: (table, [c.strip() for c in columns.split(",")])
        for name, table, columns in _CREATE_INDEX.findall(_text())
    }


def views() -> dict[str, list[str]]:
    """View name -> output column names, in the seed's order."""
    result = {}
    for name, select_list in _CREATE_VIEW.findall(_text()):
        columns = []
        for line in select_list.splitlines():
            line = line.split("--")[0].strip().rstrip(",")
            if not line:
                continue
            alias = re.search(r"\bAS (\w+)$", line)
            columns.append(alias.group(1) if alias else line.split(".")[-1])
        result[name] = columns
    return result
