"""What a document holds, read from PostgreSQL without a search engine."""

import datetime as dt

import orjson
import psycopg

from ingestion.search import documents
from tests.search.crm import insert_conversation, seed_people


def _sources(conn: psycopg.Connection) -> dict[int, dict]:
    with conn.transaction():
        rows = [row for batch in documents.stream_all(conn, batch_rows=2) for row in batch]
    return {row.id: (row, orjson.loads(row.source)) for row in rows}


def test_a_document_quotes_its_customer_and_employee_and_takes_the_newest_version(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        first = insert_conversation(conn, people, "hello", customer="CUST_001", employee="EMP_001")
        second = insert_conversation(
            conn, people, "加我微信: lily_88", customer="CUST_002", employee="EMP_002"
        )
        conn.execute("UPDATE customers SET tier = 'B' WHERE id = %s", (people["CUST_002"],))
        conn.commit()
        customer_updated = conn.execute(
            "SELECT updated_at FROM customers WHERE id = %s", (people["CUST_002"],)
        ).fetchone()[0]
    with documents.connect(pg_dsn) as conn:
        docs = _sources(conn)
    row, source = docs[second]
    assert source["customer_code"] == "CUST_002" and source["customer_tier"] == "B"
    assert source["employee_code"] == "EMP_002" and source["employee_department"] == "VIP"
    assert source["content"] == "加我微信: [handle]" and source["keywords"] == ["投资"]
    assert source["sent_at"] == "2025-11-03T10:00:00Z"
    assert row.version == documents.version_of(customer_updated)  # the customer changed last
    assert docs[first][1]["customer_tier"] == "A"
    # nothing of the people's contact details or names
    flat = orjson.dumps([source for _, source in docs.values()]).decode()
    for secret in ("张伟", "zhangwei", "zw_wechat", "13911112222", "员工", "corp.example"):
        assert secret not in flat


def test_a_long_stream_forgets_people_and_still_quotes_them_right(pg_dsn, monkeypatch):
    monkeypatch.setattr(documents, "_REMEMBERED_PER_PARTY", 1)
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        expected = {}
        for i in range(8):
            customer = ("CUST_001", "CUST_002")[i % 2]
            employee = ("EMP_001", "EMP_002")[i // 4]
            row_id = insert_conversation(
                conn,
                people,
                f"note {i}",
                customer=customer,
                employee=employee,
                sent_at=dt.datetime(2025, 11, 1, 9, i),
            )
            expected[row_id] = (customer, employee)
    with documents.connect(pg_dsn) as conn:
        docs = _sources(conn)
    assert {row_id: (s["customer_code"], s["employee_code"]) for row_id, (_, s) in docs.items()} == expected


def test_tags_holding_a_number_beyond_a_double_still_make_a_document(pg_dsn):
    """jsonb keeps any number's digits (a landing file may carry 1e400, stored as 401 digits); orjson
    refuses one beyond a double, which stopped every document stream that met it."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        row_id = insert_conversation(conn, people, "hello", commit=False)
        conn.execute(
            "UPDATE conversations SET keywords = '[\"美股\", 1e400]'::jsonb, intention_signals = '{\"buy\": 1e400}'"
            " WHERE id = %s",
            (row_id,),
        )
        conn.commit()
    with documents.connect(pg_dsn) as conn:
        _, source = _sources(conn)[row_id]
    # (the number is a tag of its digits, redacted as any tag: a run of digits that long reads as a phone)
    assert source["keywords"] == ["美股", "[phone]"] and source["intention_signals"] == ["buy"]
