"""An empty value gets the same verdict in every landing format. CSV cannot write "" apart from a
missing value (an empty field is NULL), and a JSONL or Parquet "" used to load as '': a required
name of '' was accepted, an optional one stored as '' instead of NULL, a defaulted ``tier`` of ""
rejected as outside its set instead of taking its DEFAULT, an empty required business key
rejected as an unknown reference instead of as missing."""

from __future__ import annotations

from ingestion.contracts import CONTRACTS
from tests.ingestion import landing_rows as rows

FORMATS = ("csv", "jsonl", "parquet")


def _customers(first: int) -> list[dict]:
    """Rows ``first`` to ``first + 3``: three missing a required value, one leaving optional and
    defaulted columns empty."""
    return [
        rows.customer(first, name="", assigned_employee_code=None),
        rows.customer(first + 1, name=" \t\u3000", assigned_employee_code=None),
        rows.customer(first + 2, customer_code="", assigned_employee_code=None),
        rows.customer(first + 3, city="", age="", tier="", assigned_employee_code=None),
    ]


def _customer_tags() -> list[dict]:
    empty = dict.fromkeys(CONTRACTS["customer_tags"].landing_columns)
    tagged = {**empty, "tagged_at": "2025-01-01 09:00:00"}
    return [
        {**tagged, "customer_code": "", "tag_name": "标签1"},
        {**tagged, "customer_code": "CUST_0001", "tag_name": "  "},
    ]


def test_an_empty_value_gets_the_same_verdict_in_every_format(landing, run_ingest, sql):
    """Each case in each format, loaded together: customers 100-103 from CSV, 200-203 from JSONL,
    300-303 from Parquet."""
    for n, fmt in enumerate(FORMATS, start=1):
        rows.write(landing, "customers", fmt, _customers(100 * n), fmt)
        rows.write(landing, "customer_tags", fmt, _customer_tags(), fmt)
    run_ingest(landing)

    rejects = {fmt: set() for fmt in FORMATS}
    for path, *reject in sql(
        "SELECT path, table_name, row_number, rule, reason FROM funnelhouse.ingest_rejects"
    ):
        rejects[path.rsplit(".", 1)[-1]].add(tuple(reject))
    assert rejects == dict.fromkeys(
        FORMATS,
        {
            ("customers", 1, "not_null:name", "name is required but empty"),
            ("customers", 2, "not_null:name", "name is required but only whitespace"),
            ("customers", 3, "not_null:customer_code", "customer_code is required but empty"),
            ("customer_tags", 1, "not_null:customer_code", "customer_code is required but empty"),
            ("customer_tags", 2, "not_null:tag_name", "tag_name is required but only whitespace"),
        },
    )
    # An empty optional value is NULL (never ''), an empty defaulted one takes the DEFAULT.
    assert sql("SELECT customer_code, city, age, tier FROM customers ORDER BY customer_code") == [
        (f"CUST_{100 * n + 3:04d}", None, None, "C") for n in range(1, 4)
    ]
