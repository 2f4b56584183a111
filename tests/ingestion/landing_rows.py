"""Small hand-made landing files for the loader tests (the generator covers the realistic sample).

Rows are dicts of landing values; ``write`` renders them in any of the three formats following
the landing conventions (CSV: header, empty = NULL; JSONL: native JSON; Parquet: typed columns).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.contracts import CONTRACTS


def _landing_row(table: str, overrides: dict, **defaults) -> dict:
    """Every landing column of ``table`` (NULL unless given): defaults, then the test's overrides."""
    return {**dict.fromkeys(CONTRACTS[table].landing_columns), **defaults, **overrides}


def employee(n: int, **overrides) -> dict:
    return _landing_row(
        "employees",
        overrides,
        employee_code=f"EMP_{n:03d}",
        name=f"Emp {n}",
        email=f"e{n}@example.com",
        username=f"user{n}",
        password_hash="x",
        role="employee",
        department="MoFu",
        level="组员",
        status="active",
        created_at="2025-01-01 09:00:00",
    )


def customer(n: int, **overrides) -> dict:
    return _landing_row(
        "customers",
        overrides,
        customer_code=f"CUST_{n:04d}",
        name=f"客户{n}",
        gender="女",
        age="35",
        tier="B",
        current_stage="Trust",
        status="active",
        language='["zh","en"]',
        created_at="2025-01-02 10:00:00",
        assigned_employee_code="EMP_001",
    )


def conversation(n: int, **overrides) -> dict:
    day = 1 + n % 28
    return _landing_row(
        "conversations",
        overrides,
        source_message_id=f"MSG_{n:06d}",
        message_type="text",
        direction="inbound" if n % 2 else "outbound",
        content=f'你好 {n}, "quoted", comma',
        sentiment="neutral",
        keywords='["收益"]',
        quality_score="7",
        platform="wechat",
        sent_at=f"2025-03-{day:02d} 10:{n % 60:02d}:00",
        created_at="2025-03-01 00:00:00",
        customer_code="CUST_0001",
        employee_code="EMP_001",
    )


def conversation_event(n: int, message: str, **overrides) -> dict:
    return _landing_row(
        "conversation_events",
        overrides,
        source_key=f"EVT_{n}",
        event_type="意向信号",
        event_data='{"k": 1}',
        impact_score="3",
        created_at="2025-03-02 00:00:00",
        conversation_message_id=message,
        customer_code="CUST_0001",
        employee_code="EMP_001",
    )


def deposit(n: int, **overrides) -> dict:
    return _landing_row(
        "deposits",
        overrides,
        deposit_code=f"DEP_20250101_{n}",
        amount="10.00",
        currency="USD",
        deposit_type="首金",
        status="confirmed",
        deposited_at="2025-01-01 10:00:00",
        created_at="2025-01-01 10:00:00",
        customer_code="CUST_0001",
        employee_code="EMP_001",
    )


def withdrawal(n: int, **overrides) -> dict:
    return _landing_row(
        "withdrawals",
        overrides,
        withdrawal_code=f"WTH_20250102_{n}",
        amount="5.00",
        currency="USD",
        status="confirmed",
        requested_at="2025-01-02 10:00:00",
        created_at="2025-01-02 10:00:00",
        customer_code="CUST_0001",
        employee_code="EMP_001",
    )


def tag(n: int, **overrides) -> dict:
    return _landing_row("tags", overrides, name=f"标签{n}", category="行为", created_at="2025-01-01 09:00:00")


def employee_kpi(day: int, **overrides) -> dict:
    return _landing_row(
        "employee_kpis",
        overrides,
        date=f"2025-01-{day:02d}",
        created_at="2025-01-01 10:00:00",
        employee_code="EMP_001",
    )


def write(folder: Path, table: str, batch: str, rows: list[dict], fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table}__{batch}.{fmt}"
    columns = CONTRACTS[table].landing_columns
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    elif fmt == "jsonl":
        json_columns = {c.name for c in CONTRACTS[table].columns if c.kind == "json"}
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                record = {
                    c: (json.loads(row[c]) if c in json_columns and row.get(c) is not None else row.get(c))
                    for c in columns
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        pq.write_table(
            pa.table({c: pa.array([row.get(c) for row in rows], pa.string()) for c in columns}), path
        )
    return path
