"""Large conversations files made fast (vectorised with Arrow), for the memory and kill tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ingestion.contracts import CONTRACTS

PIECE = 50_000


def _piece(first: int, count: int, content: str) -> pa.Table:
    numbers = pa.array(range(first, first + count), pa.int64())
    ids = pc.binary_join_element_wise("MSG_BIG_", pc.cast(numbers, pa.string()), "")
    minute = pc.cast(pc.divide(numbers, 60), pa.int64())
    day = pc.add(pc.cast(pc.divide(minute, 1440), pa.int64()), 1)
    # Spread over days 1-28 of March 2025, a minute apart within each day.
    day_text = pc.utf8_lpad(pc.cast(pc.add(pc.bit_wise_and(day, 15), 1), pa.string()), 2, "0")
    hour = pc.utf8_lpad(pc.cast(pc.bit_wise_and(pc.divide(minute, 60), 15), pa.string()), 2, "0")
    minutes = pc.utf8_lpad(pc.cast(pc.bit_wise_and(minute, 31), pa.string()), 2, "0")
    seconds = pc.utf8_lpad(pc.cast(pc.bit_wise_and(numbers, 31), pa.string()), 2, "0")
    sent_at = pc.binary_join_element_wise("2025-03-", day_text, " ", hour, ":", minutes, ":", seconds, "")
    constant = {
        "message_type": "text",
        "direction": "inbound",
        "content": content,
        "sentiment": "neutral",
        "keywords": '["收益","风险"]',
        "quality_score": "7",
        "platform": "wechat",
        "created_at": "2025-03-01 00:00:00",
        "customer_code": "CUST_0001",
        "employee_code": "EMP_001",
    }
    columns = {}
    for name in CONTRACTS["conversations"].landing_columns:
        if name == "source_message_id":
            columns[name] = ids
        elif name == "sent_at":
            columns[name] = sent_at
        else:
            columns[name] = pa.array([constant.get(name)] * count, pa.string())
    return pa.table(columns)


def write_conversations_csv(path: Path, rows: int, content_bytes: int = 100) -> Path:
    """``rows`` valid conversations of one customer/employee (CUST_0001, EMP_001), as landing CSV."""
    content = (
        ("你好，这是一条很长的消息。" * (content_bytes // 36 + 1))
        .encode()[:content_bytes]
        .decode(errors="ignore")
    )
    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    with open(path, "wb") as handle:
        handle.write((",".join(CONTRACTS["conversations"].landing_columns) + "\n").encode())
        for first in range(0, rows, PIECE):
            pa_csv.write_csv(_piece(first, min(PIECE, rows - first), content), handle, options)
    return path
