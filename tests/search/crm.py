"""A few CRM rows for search tests, written through plain SQL like the loaders do."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import re

import psycopg

_ids = itertools.count(1)

SAMPLES = [
    # (content, platform, sentiment) - realistic mixed-language chats, some with contact details
    ("您好，我想了解一下美股投资，最近行情怎么样？", "wechat", "neutral"),
    ("I would like to open an account and deposit 5000 USD next week", "whatsapp", "positive"),
    ("这个月收益不错，我打算追加入金", "wechat", "positive"),
    ("Can I withdraw my funds tomorrow? The market looks risky", "telegram", "negative"),
    ("加我微信: lily_invest88 或者打我电话 13800138000 详细聊", "wechat", "neutral"),
    (
        "My email is john.doe+crm@gmail.com, call (415) 555-0123 or WhatsApp +1 415 555 0199",
        "whatsapp",
        "neutral",
    ),
    ("Telegram @trader_joe_99 is faster, tg: @moonboy_fx", "telegram", "neutral"),
    ("美元汇率波动太大，我有点担心", "wechat", "negative"),
]
CUSTOMER_PHONE = "+86 137 0000 1111"
CONTACT_DETAILS = [
    "lily_invest88",
    "13800138000",
    "john.doe",
    "gmail.com",
    "415) 555-0123",
    "555-0123",
    "555 0199",
    "trader_joe_99",
    "moonboy_fx",
    # the customer's number as the WhatsApp messages' ids (``whatsapp_message_id``) hold it
    "wamid.HBgNODYxMzcwMDAwMTExMRUC",
]


def whatsapp_message_id(phone: str, key: int) -> str:
    """A WhatsApp Cloud API message id as the platform writes it: ``wamid.`` and base64 of a record
    that starts with the sender's number (the digits of ``phone``), then a message key."""
    number, message_key = re.sub(r"\D", "", phone).encode(), f"{key:020X}".encode()
    record = b"\x1c\x18%c%s\x15\x02\x00\x12\x18%c%s\x00" % (
        len(number),
        number,
        len(message_key),
        message_key,
    )
    return "wamid." + base64.b64encode(record).decode()


def seed_people(conn: psycopg.Connection) -> dict[str, int]:
    """Two employees and two customers (with contact details that must never reach the index)."""
    ids = {}
    for code, dept in (("EMP_001", "ToFu"), ("EMP_002", "VIP")):
        ids[code] = conn.execute(
            "INSERT INTO employees (employee_code, name, email, phone, username, password_hash, role, department) "
            "VALUES (%s, %s, %s, '13911112222', %s, 'x', 'employee', %s) RETURNING id",
            (code, f"员工{code}", f"{code.lower()}@corp.example", code.lower(), dept),
        ).fetchone()[0]
    for code, tier in (("CUST_001", "A"), ("CUST_002", "S")):
        ids[code] = conn.execute(
            "INSERT INTO customers (customer_code, name, phone, email, wechat_id, tier, current_stage) "
            "VALUES (%s, '张伟', %s, 'zhangwei@example.com', 'zw_wechat', %s, 'Trust') RETURNING id",
            (code, CUSTOMER_PHONE, tier),
        ).fetchone()[0]
    conn.commit()
    return ids


def insert_conversation(
    conn: psycopg.Connection,
    people: dict[str, int],
    content: str,
    *,
    customer: str = "CUST_001",
    employee: str = "EMP_001",
    platform: str = "wechat",
    sentiment: str = "neutral",
    sent_at: dt.datetime | None = None,
    commit: bool = True,
    source_message_id: str | None = None,
) -> int:
    row_id = conn.execute(
        "INSERT INTO conversations (source_message_id, customer_id, employee_id, message_type, direction, content,"
        " sentiment, keywords, platform, sent_at) VALUES (%s, %s, %s, 'text', 'inbound', %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            source_message_id or f"msg-{next(_ids)}-{dt.datetime.now().timestamp()}",
            people[customer],
            people[employee],
            content,
            sentiment,
            '["投资"]',
            platform,
            sent_at or dt.datetime(2025, 11, 3, 10, 0),
        ),
    ).fetchone()[0]
    if commit:
        conn.commit()
    return row_id


def seed_samples(conn: psycopg.Connection, people: dict[str, int]) -> list[int]:
    return [
        insert_conversation(
            conn,
            people,
            content,
            platform=platform,
            sentiment=sentiment,
            customer="CUST_001" if i % 2 == 0 else "CUST_002",
            employee="EMP_001" if i < 4 else "EMP_002",
            sent_at=dt.datetime(2025, 11, 1 + i, 9, 30),
            # WhatsApp's message ids hold the sender's number: they must stay in PostgreSQL
            source_message_id=whatsapp_message_id(CUSTOMER_PHONE, next(_ids))
            if platform == "whatsapp"
            else None,
        )
        for i, (content, platform, sentiment) in enumerate(SAMPLES)
    ]
