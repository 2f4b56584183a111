"""Values PostgreSQL refuses are quarantined row by row, never fail the whole file; repeated keys,
counts and error texts on the edges of the loader."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal
from pathlib import Path

import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.contracts import CONTRACTS, Column, TableContract, decimal
from ingestion.load.failures import describe_reasons
from ingestion.load.merge_sql import MergePlan, catalog
from ingestion.load.validate import ChunkValidator, DbColumn
from ingestion.schema import migrate
from tests.fixtures.postgres import wait_for_count
from tests.ingestion import landing_rows as rows


@pytest.fixture
def parents(landing, run_ingest):
    """EMP_001 and CUST_0001, loaded: what the rows below refer to."""
    rows.write(landing, "employees", "p", [rows.employee(1)])
    rows.write(landing, "customers", "p", [rows.customer(1)])
    assert {r.status for r in run_ingest(landing).values()} == {"loaded"}
    return landing


def test_a_trailing_newline_fails_the_pattern_and_the_type(parents, run_ingest):
    """Python's $ matches before a final newline, PostgreSQL's ~ and casts do not."""
    batch = [
        rows.customer(2),
        rows.customer(3, customer_code="CUST_0003\n"),
        rows.customer(4, birth_date="2025-02-30\n"),
    ]
    result = run_ingest(rows.write(parents, "customers", "nl", batch))["customers__nl.csv"]
    assert (result.status, result.rows_loaded) == ("loaded", 1)
    assert result.reasons == {"pattern:customer_code": 1, "type:birth_date": 1}


def _scale_reason(column: str, value: str, precision: int = 12, scale: int = 2) -> str:
    return f"{column} {value!r} has more than {scale} decimals: {column} is DECIMAL({precision},{scale})"


def test_money_digits_beyond_the_column_scale_are_quarantined_never_rounded(parents, run_ingest, sql):
    """deposits.amount is DECIMAL(12,2): PostgreSQL would store 1.23456789 (a BTC amount) as 1.23
    and 1000.505 as 1000.51 without a word, and 0.004 as 0.00, which the range then called 'not > 0'
    (false: it is > 0). Money is stored exactly or not at all; zeros beyond the scale lose nothing."""
    deposits = [
        rows.deposit(1, amount="1.23456789", currency="BTC"),
        rows.deposit(2, amount="1000.505"),
        rows.deposit(3, amount="0.004"),
        rows.deposit(4, amount="1000.500"),
        rows.deposit(5, amount="2.5E-1"),  # 0.25
        rows.deposit(6, amount="1.5e-3"),
        rows.deposit(7, amount="1e-400"),  # 0.0 as a float: no false 'not > 0' either
        rows.deposit(8, amount="-0.01"),  # exact, and not > 0
    ]
    loaded = run_ingest(rows.write(parents, "deposits", "scale", deposits))["deposits__scale.csv"]
    assert (loaded.status, loaded.rows_loaded) == ("loaded", 2)
    assert loaded.reasons == {"scale:amount": 5, "range:amount": 1}
    assert describe_reasons(loaded.reasons) == (
        "5 x amount: more decimals than the money column keeps (never rounded), 1 x amount: out of range"
    )
    assert sql("SELECT row_number, reason FROM funnelhouse.ingest_rejects ORDER BY row_number") == [
        (1, _scale_reason("amount", "1.23456789")),
        (2, _scale_reason("amount", "1000.505")),
        (3, _scale_reason("amount", "0.004")),
        (6, _scale_reason("amount", "1.5e-3")),
        (7, _scale_reason("amount", "1e-400")),
        (8, "amount '-0.01' is not > 0"),
    ]
    assert sql("SELECT deposit_code, amount::text FROM deposits ORDER BY 1") == [
        ("DEP_20250101_4", "1000.50"),
        ("DEP_20250101_5", "0.25"),
    ]


def _rounded_reason(column: str, value: str, stored: str, verdict: str, scale: int = 2) -> str:
    return f"{column} {value!r} (stored as {stored}: rounded to {scale} decimals) {verdict}"


def test_ratios_and_scores_are_stored_rounded_and_judged_as_stored(parents, run_ingest, sql):
    """A CRM export's ratios and scores carry a double's digits (33.333333333333336): PostgreSQL
    and the CRM round them to the column's scale, losing nothing anyone relies on, so they load
    rounded. The range and the type's limit judge the value as stored, and say so: 999.995 is
    1000.00, which DECIMAL(5,2) cannot hold (quarantined, not a failed load); -0.005 is -0.01, not
    >= 0, while -0.004 is 0.00. Money beside them in the same row stays exact."""
    kpis = [
        rows.employee_kpi(
            1,
            tofu_retention_rate="33.333333333333336",
            overall_score="66.66666666666667",
            bofu_withdrawal_rate="999.994",
        ),
        rows.employee_kpi(2, bofu_withdrawal_rate="999.995"),
        rows.employee_kpi(3, bofu_withdrawal_rate="1000.00"),
        rows.employee_kpi(4, bofu_withdrawal_rate="-0.004"),
        rows.employee_kpi(5, bofu_withdrawal_rate="-0.005"),
        rows.employee_kpi(6, overall_score="100.004"),
        rows.employee_kpi(7, overall_score="100.005"),
        rows.employee_kpi(8, bofu_deposit_amount="10.005"),
    ]
    script = {
        "script_code": "S_19",
        "category": "开场",
        "content_cn": "你好",
        "success_rate": "33.333333333333336",
        "avg_rating": "4.666666666666667",
        "created_at": "2025-01-01 10:00:00",
    }
    results = run_ingest(
        rows.write(parents, "employee_kpis", "rates", kpis),
        rows.write(parents, "scripts", "rev19", [script]),
        rows.write(parents, "customers", "ltv", [rows.customer(2, ltv_prediction="1234.565")]),
    )
    assert {name: (r.status, r.rows_loaded, dict(r.reasons)) for name, r in results.items()} == {
        "employee_kpis__rates.csv": (
            "loaded",
            3,
            {
                "storage:bofu_withdrawal_rate": 2,
                "range:bofu_withdrawal_rate": 1,
                "range:overall_score": 1,
                "scale:bofu_deposit_amount": 1,
            },
        ),
        "scripts__rev19.csv": ("loaded", 1, {}),
        "customers__ltv.csv": ("loaded", 1, {}),
    }
    assert sql("SELECT row_number, reason FROM funnelhouse.ingest_rejects ORDER BY row_number") == [
        (2, _rounded_reason("bofu_withdrawal_rate", "999.995", "1000.00", "does not fit DECIMAL(5,2)")),
        (3, "bofu_withdrawal_rate '1000.00' does not fit DECIMAL(5,2)"),
        (5, _rounded_reason("bofu_withdrawal_rate", "-0.005", "-0.01", "is not >= 0")),
        (7, _rounded_reason("overall_score", "100.005", "100.01", "is not >= 0 and <= 100")),
        (8, _scale_reason("bofu_deposit_amount", "10.005")),
    ]
    assert sql(
        "SELECT date::text, tofu_retention_rate::text, overall_score::text, bofu_withdrawal_rate::text"
        " FROM employee_kpis ORDER BY date"
    ) == [
        ("2025-01-01", "33.33", "66.67", "999.99"),
        ("2025-01-04", None, None, "0.00"),
        ("2025-01-06", None, "100.00", None),
    ]
    assert sql("SELECT success_rate::text, avg_rating::text FROM scripts") == [("33.33", "4.67")]
    assert sql("SELECT ltv_prediction::text FROM customers WHERE customer_code = 'CUST_0002'") == [
        ("1234.57",)
    ]


def test_a_ratio_rounded_below_an_exclusive_minimum_is_quarantined_naming_the_rounding(monkeypatch):
    """No ratio of the seed must be > 0, but the rule holds for any: 0.004 is stored as 0.00, which
    is not > 0, and the reason says that is the value judged (0.004 itself is > 0)."""
    contract = TableContract("ratios", ("code",), (decimal("rate", minimum=0, exclusive_minimum=True),))
    monkeypatch.setitem(CONTRACTS, "ratios", contract)
    validator = ChunkValidator("ratios", {"rate": DbColumn("numeric", precision=5, scale=2)})
    values = pd.array(["0.004", "0.005", "0.01"], dtype="str")
    frame = pd.DataFrame({"rate": values}, index=pd.RangeIndex(1, len(values) + 1))
    assert validator.validate(frame).failures == {
        1: [("range:rate", _rounded_reason("rate", "0.004", "0.00", "is not > 0"))]
    }


def _decimal_columns(conn, table: str) -> tuple[list[Column], dict[str, DbColumn]]:
    db = catalog(conn, table)
    columns = [c for c in CONTRACTS[table].columns if c.kind == "decimal"]
    for column in columns:
        assert (db[column.name].precision, db[column.name].scale) != (None, None), f"{table}.{column.name}"
    return columns, db


def test_every_money_column_refuses_digits_beyond_its_scale_and_every_other_decimal_rounds(pg_dsn):
    """Each DECIMAL column of every table, with the precision and scale of the migrated database:
    money takes 1.01 and 1.010 and quarantines 1.001; a ratio, rating, score or prediction takes
    all three, and judges 99...9.995 as the 100...0.00 it would be stored as, which overflows."""
    money, rounded = set(), set()
    with psycopg.connect(pg_dsn) as conn:
        for table, contract in CONTRACTS.items():
            columns, db = _decimal_columns(conn, table)
            if not columns:
                continue
            validator = ChunkValidator(table, db)
            for column in columns:
                name, precision, scale = column.name, db[column.name].precision, db[column.name].scale
                largest = "9" * (precision - scale) + "." + "9" * scale
                values = ["1.01", "1.010", "1.001", largest + "5"]
                frame = pd.DataFrame(
                    {c: pd.array([None] * len(values), dtype="str") for c in contract.landing_columns},
                    index=pd.RangeIndex(1, len(values) + 1),
                ).assign(**{name: pd.array(values, dtype="str")})
                failures = validator.validate(frame).failures
                of_column = {
                    row: [f for f in found if f[0].endswith(f":{name}")] for row, found in failures.items()
                }
                assert of_column.get(1, []) == of_column.get(2, []) == [], f"{table}.{name}"
                if column.exact:
                    assert of_column[3] == [(f"scale:{name}", _scale_reason(name, "1.001", precision, scale))]
                    assert of_column[4][0] == (
                        f"scale:{name}",
                        _scale_reason(name, values[3], precision, scale),
                    )
                    money.add(f"{table}.{name}")
                else:
                    assert of_column.get(3, []) == [], f"{table}.{name}"
                    overflow = f"{10 ** (precision - scale)}.{'0' * scale}"
                    fit = f"does not fit DECIMAL({precision},{scale})"
                    assert of_column[4][-1] == (
                        f"storage:{name}",
                        _rounded_reason(name, values[3], overflow, fit, scale),
                    ), f"{table}.{name}"
                    rounded.add(f"{table}.{name}")
    assert money == {
        "employees.total_net_deposit",
        "funnel_bofu.total_deposits",
        "funnel_bofu.total_withdrawals",
        "funnel_bofu.net_deposit",
        "funnel_bofu.first_deposit_amount",
        "funnel_bofu.max_deposit_amount",
        "deposits.amount",
        "withdrawals.amount",
        "employee_kpis.bofu_deposit_amount",
        "employee_kpis.bofu_withdrawal_amount",
        "employee_kpis.bofu_net_deposit",
    }
    assert rounded == {
        "customers.ltv_prediction",
        "funnel_bofu.withdrawal_rate",
        "scripts.success_rate",
        "scripts.avg_rating",
        "employee_kpis.tofu_retention_rate",
        "employee_kpis.bofu_withdrawal_rate",
        "employee_kpis.overall_score",
        "training_progress.score",
    }


def _typed_parquet(folder: Path, batch: str, first: int, amounts: pa.Array) -> Path:
    """Deposits as a Parquet file whose amount column has the type an exporter wrote."""
    path = rows.write(
        folder, "deposits", batch, [rows.deposit(first + n) for n in range(len(amounts))], "parquet"
    )
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("amount"), "amount", amounts), path)
    return path


def test_json_and_parquet_numbers_are_judged_by_the_digits_they_are_written_with(parents, run_ingest, sql):
    """A double has no decimals of its own: its digits are the shortest form that reads back as it
    (what JSON encoders and Arrow write). 0.1 + 0.2 is 0.30000000000000004, quarantined (round it
    before writing); 12.34 and 1000.5 load as they read. A Parquet decimal's digits are its own:
    12.3400 loads, 12.3456 does not."""
    floats = [0.1 + 0.2, 12.34, 1000.5]
    jsonl = rows.write(
        parents, "deposits", "json", [rows.deposit(n, amount=x) for n, x in enumerate(floats)], "jsonl"
    )
    doubles = _typed_parquet(parents, "double", 10, pa.array([0.1 + 0.2, 12.34, 1000.505], pa.float64()))
    decimals = _typed_parquet(
        parents, "decimal", 20, pa.array([Decimal("12.3400"), Decimal("12.3456")], pa.decimal128(20, 4))
    )
    results = run_ingest(jsonl, doubles, decimals)
    assert {name: (r.rows_loaded, dict(r.reasons)) for name, r in results.items()} == {
        "deposits__json.jsonl": (2, {"scale:amount": 1}),
        "deposits__double.parquet": (1, {"scale:amount": 2}),
        "deposits__decimal.parquet": (1, {"scale:amount": 1}),
    }
    assert sql("SELECT reason FROM funnelhouse.ingest_rejects ORDER BY path, row_number") == [
        (_scale_reason("amount", "12.3456"),),
        (_scale_reason("amount", "0.30000000000000004"),),
        (_scale_reason("amount", "1000.505"),),
        (_scale_reason("amount", "0.30000000000000004"),),
    ]
    assert sql("SELECT deposit_code, amount::text FROM deposits ORDER BY 1") == [
        ("DEP_20250101_1", "12.34"),
        ("DEP_20250101_11", "12.34"),
        ("DEP_20250101_2", "1000.50"),
        ("DEP_20250101_20", "12.34"),
    ]


def test_values_postgresql_reads_load_and_those_it_cannot_read_are_quarantined(parents, run_ingest, sql):
    """Numbers, JSON, timestamps and booleans as PostgreSQL's input reads them: what it takes loads
    (7 or 9 fraction digits rounded to its microseconds, 1e400 in jsonb), what it refuses is
    quarantined instead of failing the file (numeric holds no more than 16383 digits after the
    point, even where DECIMAL(12,2) would round the value to 0.00)."""
    customers = [
        rows.customer(
            60,
            ltv_prediction="0e-16383",  # zero: no digit beyond the scale, loads as 0.00
            language="[1e400]",
            created_at="2025-01-02 10:00:00.1234567",
            assigned_at="2025-01-02 10:00:00.123456789+08:00",
        ),
        rows.customer(61, ltv_prediction="1e-16384"),
        rows.customer(62, ltv_prediction="0." + "0" * 16383 + "1"),
        rows.customer(63, language="[1.0e-16383]"),
        rows.customer(64, language='["\\ud800"]'),
        # More digits than pandas reads (4300): not a missing number that every range lets pass.
        rows.customer(65, age="1" * 5000),
        rows.customer(66, ltv_prediction="-" + "2" * 5000),
        # An exponent beyond even Python's Decimal: quarantined, not an exception ending the run.
        rows.customer(67, ltv_prediction="1e-99999999999999999999999"),
        rows.customer(68, language="[1e-99999999999999999999999]"),
    ]
    tags = [rows.tag(1, is_system="on"), rows.tag(2, is_system="OFF"), rows.tag(3, is_system="y")]
    tags += [rows.tag(4, is_system="n"), rows.tag(5, is_system="maybe")]
    results = run_ingest(
        rows.write(parents, "customers", "pg", customers), rows.write(parents, "tags", "pg", tags)
    )
    loaded = results["customers__pg.csv"]
    assert (loaded.status, loaded.rows_loaded) == ("loaded", 1)
    assert loaded.reasons == {"storage:ltv_prediction": 4, "json:language": 3, "range:age": 1}
    assert sql(
        "SELECT ltv_prediction::text, language::text, created_at::text, assigned_at::text FROM customers "
        "WHERE customer_code = 'CUST_0060'"
    ) == [("0.00", "[1" + "0" * 400 + "]", "2025-01-02 10:00:00.123457", "2025-01-02 02:00:00.123457")]
    assert (results["tags__pg.csv"].rows_loaded, results["tags__pg.csv"].reasons) == (
        4,
        {"type:is_system": 1},
    )
    assert sql("SELECT name, is_system FROM tags ORDER BY name") == [
        ("标签1", True),
        ("标签2", False),
        ("标签3", True),
        ("标签4", False),
    ]


def test_settlement_currencies_load(parents, run_ingest, sql):
    """currency is VARCHAR(10) in the seed: USDT and USDC are currencies a platform settles in.
    Lower case stays refused (one currency must not count as two in reports)."""
    results = run_ingest(
        rows.write(
            parents, "deposits", "cur", [rows.deposit(1, currency="USDT"), rows.deposit(2, currency="usdt")]
        ),
        rows.write(parents, "withdrawals", "cur", [rows.withdrawal(1, currency="USDC")]),
    )
    assert {name: (r.status, r.rows_loaded) for name, r in results.items()} == {
        "deposits__cur.csv": ("loaded", 1),
        "withdrawals__cur.csv": ("loaded", 1),
    }
    assert results["deposits__cur.csv"].reasons == {"pattern:currency": 1}
    assert sql("SELECT currency FROM deposits UNION ALL SELECT currency FROM withdrawals") == [
        ("USDT",),
        ("USDC",),
    ]


def test_nul_characters_are_quarantined(parents, run_ingest, sql):
    batch = [
        rows.customer(5),
        rows.customer(6, name="a\x00b"),
        rows.customer(7, language='["zh\\u0000"]'),
        rows.customer(8, assigned_employee_code="EMP_001\x00"),
    ]
    result = run_ingest(rows.write(parents, "customers", "nul", batch, "jsonl"))["customers__nul.jsonl"]
    assert (result.status, result.rows_loaded) == ("loaded", 1)
    assert result.reasons == {"nul:name": 1, "json:language": 1, "nul:assigned_employee_code": 1}
    raw = sql("SELECT raw_row ->> 'name' FROM funnelhouse.ingest_rejects WHERE row_number = 2")
    assert raw == [("a\ufffdb",)]


def test_dates_postgresql_refuses_are_rejected(parents, run_ingest, sql):
    batch = [
        rows.customer(9, birth_date="0001-01-01", created_at="2025-01-01 10:00:00+15:59"),
        rows.customer(10, birth_date="0000-01-01"),
        rows.customer(11, created_at="2025-01-01 10:00:00+16"),
        rows.customer(12, created_at="2025-01-01 10:00:00+05:60"),
    ]
    result = run_ingest(rows.write(parents, "customers", "d", batch))["customers__d.csv"]
    assert (result.status, result.rows_loaded) == ("loaded", 1)
    assert result.reasons == {"type:birth_date": 1, "type:created_at": 2}
    assert sql("SELECT birth_date::text FROM customers WHERE customer_code = 'CUST_0009'") == [
        ("0001-01-01",)
    ]


def test_errors_keep_row_contents_out_of_logs(parents, run_ingest, sql, monkeypatch):
    # A row with a surplus field is quarantined: its text is kept in raw_row, not in the reason
    # (shown in summaries) nor in the file's error.
    path = rows.write(parents, "customers", "cols", [rows.customer(13, email="alice@example.com")])
    path.write_text(path.read_text().rstrip("\n") + ",surplus\n")
    result = run_ingest(path)["customers__cols.csv"]
    assert result.status == "failed" and "all 1 rows rejected (1 x malformed row" in result.error
    assert "alice@example.com" not in result.error
    [(reason, raw)] = sql("SELECT reason, raw_row ->> '_raw_text' FROM funnelhouse.ingest_rejects")
    assert "alice@example.com" not in reason and "alice@example.com" in raw

    # PostgreSQL's DETAIL quotes the failing row: kept in the ledger (inside PostgreSQL) only.
    from ingestion.load.validate import ChunkValidator, Verdict

    monkeypatch.setattr(ChunkValidator, "validate", lambda self, frame: Verdict())
    path = rows.write(parents, "customers", "pg", [rows.customer(14, tier="Z", email="bob@example.com")])
    result = run_ingest(path)["customers__pg.csv"]
    assert result.status == "failed" and "SQLSTATE 23514" in result.error
    assert "bob@example.com" not in result.error
    [(error,)] = sql("SELECT error FROM funnelhouse.ingest_files WHERE path = %s", str(path))
    assert "bob@example.com" in error


def test_content_beyond_postgresql_limits_fails_its_file_and_the_run_goes_on(
    parents, run_ingest, sql, monkeypatch
):
    """PostgreSQL refuses some content as beyond its limits (class 54: a jsonb string over 256 MB,
    JSON nested deeper than its stack) with an OperationalError, which the loader let through:
    the run ended, the file had no ledger row and the files after it were not loaded. Such a
    refusal now fails the file like any other (its DETAIL kept out of the result's error)."""
    from ingestion.load.validate import ChunkValidator, Verdict

    monkeypatch.setattr(ChunkValidator, "validate", lambda self, frame: Verdict())  # on to PostgreSQL
    deep = "[" * 200_000 + "]" * 200_000
    path = rows.write(
        parents, "customers", "deep", [rows.customer(15, language=deep, email="carol@example.com")]
    )
    after = rows.write(parents, "customers", "later", [rows.customer(16)])
    results = run_ingest(path, after)
    failed = results[path.name]
    assert failed.status == "failed" and "SQLSTATE 54001" in failed.error, failed.error
    assert "carol@example.com" not in failed.error
    assert results[after.name].status == "loaded"
    assert sql("SELECT status, rows_in FROM funnelhouse.ingest_files WHERE path = %s", str(path)) == [
        ("failed", 0)
    ]
    assert sql("SELECT customer_code FROM customers ORDER BY 1") == [("CUST_0001",), ("CUST_0016",)]


def test_parquet_nanosecond_timestamps_load(parents, run_ingest, sql):
    """pandas and Spark write timestamp[ns]: 9 fraction digits as text."""
    batch = [rows.customer(15), rows.customer(16, created_at="2025-01-02 10:00:00.123456789")]
    path = rows.write(parents, "customers", "ns", batch, "parquet")
    table = pq.read_table(path)
    stamps = pd.to_datetime([r["created_at"] for r in batch], format="ISO8601")
    column = table.schema.get_field_index("created_at")
    pq.write_table(table.set_column(column, "created_at", pa.array(stamps, pa.timestamp("ns"))), path)
    assert pq.read_schema(path).field("created_at").type == pa.timestamp("ns")
    result = run_ingest(path)["customers__ns.parquet"]
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 2, 0)
    assert sql("SELECT created_at::text FROM customers WHERE customer_code = 'CUST_0016'") == [
        ("2025-01-02 10:00:00.123456",)
    ]


def test_a_new_customer_given_its_referrer_is_one_changed_row(parents, run_ingest):
    batch = [rows.customer(21, referrer_code="CUST_0022"), rows.customer(22)]
    result = run_ingest(rows.write(parents, "customers", "ref", batch))["customers__ref.csv"]
    assert (result.rows_loaded, result.rows_changed) == (2, 2)


@pytest.mark.parametrize(
    "table, good, rejected_repeat, key",
    [
        # Merged chunk by chunk.
        ("deposits", rows.deposit(5), rows.deposit(5, customer_code="CUST_9999"), "deposit_code"),
        # Staged whole (customers refer to customers).
        ("customers", rows.customer(30), rows.customer(30, referrer_code="CUST_NOPE"), "customer_code"),
    ],
    ids=["per-chunk", "whole-file"],
)
def test_a_row_is_kept_when_its_later_repeat_is_rejected(
    parents, run_ingest, sql, table, good, rejected_repeat, key
):
    result = run_ingest(rows.write(parents, table, "rep", [good, rejected_repeat]))[f"{table}__rep.csv"]
    assert (result.rows_loaded, result.rows_rejected, result.rows_superseded) == (1, 1, 0)
    assert sql(f"SELECT count(*) FROM {table} WHERE {key} = %s", good[key]) == [(1,)]


@pytest.fixture
def shanghai_sessions(pg_dsn, sql):
    """Sessions of the test database run on Asia/Shanghai time: a timestamp without an offset must
    not be read on the session's clock."""
    [(database,)] = sql("SELECT current_database()")
    sql(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Shanghai'")


def test_timestamps_with_an_offset_are_stored_in_utc(parents, shanghai_sessions, run_ingest, sql):
    batch = [
        rows.customer(
            50,
            assigned_at="2025-11-30 23:30:00+08:00",
            last_contact_at="2025-11-30T23:30:00Z",
            created_at="2025-01-01 10:00:00.5-0530",
        ),
        rows.customer(51, assigned_at="2025-11-30 23:30:00", last_contact_at="2025-11-30T23:30:00"),
    ]
    result = run_ingest(rows.write(parents, "customers", "tz", batch))["customers__tz.csv"]
    assert (result.status, result.rows_loaded) == ("loaded", 2)
    stored = sql(
        "SELECT customer_code, assigned_at::text, last_contact_at::text, created_at::text FROM customers "
        "WHERE customer_code IN ('CUST_0050', 'CUST_0051') ORDER BY 1"
    )
    assert stored == [
        ("CUST_0050", "2025-11-30 15:30:00", "2025-11-30 23:30:00", "2025-01-01 15:30:00.5"),
        ("CUST_0051", "2025-11-30 23:30:00", "2025-11-30 23:30:00", "2025-01-02 10:00:00"),
    ]


def test_parquet_zoned_timestamps_are_stored_in_utc(parents, shanghai_sessions, run_ingest, sql):
    path = rows.write(parents, "customers", "zoned", [rows.customer(52)], "parquet")
    table = pq.read_table(path)
    ten_utc = pa.array([pd.Timestamp("2025-11-05 10:00:00", tz="UTC")], pa.timestamp("us", "UTC"))
    zoned = ten_utc.cast(pa.timestamp("us", "Asia/Shanghai"))
    pq.write_table(table.set_column(table.schema.get_field_index("assigned_at"), "assigned_at", zoned), path)
    result = run_ingest(path)["customers__zoned.parquet"]
    assert (result.status, result.rows_loaded) == ("loaded", 1)
    assert sql("SELECT assigned_at::text FROM customers WHERE customer_code = 'CUST_0052'") == [
        ("2025-11-05 10:00:00",)
    ]


def _conversation_partitions(sql) -> set[str]:
    return {
        name
        for (name,) in sql(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'conversations'::regclass"
        )
    }


def test_partitions_are_made_for_the_months_present_only(parents, run_ingest, sql):
    """Not for every month between the earliest and the latest row: one stray date would make
    hundreds (a 1900 one exhausted the lock table and aborted the run)."""
    before = _conversation_partitions(sql)
    messages = [
        rows.conversation(1, sent_at="2031-03-05 10:00:00"),
        rows.conversation(2, sent_at="2031-06-01 02:00:00+08:00"),  # May in UTC
        rows.conversation(3, sent_at="1970-01-01 00:00:00"),  # epoch zero of an exporter
        rows.conversation(4, sent_at="1900-01-01 00:00:00"),
        rows.conversation(5, sent_at="9999-12-31 23:59:59"),
    ]
    result = run_ingest(rows.write(parents, "conversations", "far", messages))["conversations__far.csv"]
    assert (result.status, result.rows_loaded) == ("loaded", 5)
    assert _conversation_partitions(sql) - before == {"conversations_2031_03", "conversations_2031_05"}
    placed = sql(
        "SELECT source_message_id, tableoid::regclass::text, sent_at::text FROM conversations ORDER BY 1"
    )
    assert placed == [
        ("MSG_000001", "conversations_2031_03", "2031-03-05 10:00:00"),
        ("MSG_000002", "conversations_2031_05", "2031-05-31 18:00:00"),
        ("MSG_000003", "conversations_default", "1970-01-01 00:00:00"),
        ("MSG_000004", "conversations_default", "1900-01-01 00:00:00"),
        ("MSG_000005", "conversations_default", "9999-12-31 23:59:59"),
    ]


def test_a_load_that_creates_a_partition_does_not_lock_out_readers(parents, run_ingest, pg_dsn, monkeypatch):
    """Creating a partition locks the whole table until commit: done inside the file's transaction,
    it would block replication, search and reports for the whole load."""
    import psycopg

    from ingestion.load import ledger

    finish = ledger.finish
    reads = []

    def finish_after_a_read(conn, *args, **kwargs):  # the file's transaction, all rows merged
        with psycopg.connect(pg_dsn, autocommit=True) as reader:
            reader.execute("SET lock_timeout = '300ms'")
            reads.append(reader.execute("SELECT count(*) FROM conversations").fetchone()[0])
        finish(conn, *args, **kwargs)

    monkeypatch.setattr(ledger, "finish", finish_after_a_read)
    path = rows.write(
        parents, "conversations", "new_month", [rows.conversation(1, sent_at="2032-02-02 10:00:00")]
    )
    result = run_ingest(path)["conversations__new_month.csv"]
    assert (result.status, result.rows_loaded, reads) == ("loaded", 1, [0])


def test_a_load_that_creates_a_partition_waits_for_a_load_of_events_holding_no_lock_on_conversations(
    parents, run_ingest, pg_dsn
):
    """A new partition of conversations also locks conversation_events (its foreign key into
    conversations), which waits for a load writing events. The loader waits for that load's lock
    first: taking conversations' ACCESS EXCLUSIVE and then waiting for conversation_events, it kept
    every reader of conversations waiting for the whole events load."""
    from ingestion.schema.locks import lock_table

    first = run_ingest(rows.write(parents, "conversations", "c1", [rows.conversation(1)]))
    assert [r.status for r in first.values()] == ["loaded"]
    waiting = (
        "SELECT locktype FROM pg_locks WHERE NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    new_month = rows.write(
        parents, "conversations", "c2", [rows.conversation(2, sent_at="2032-03-03 10:00:00")]
    )
    with psycopg.connect(pg_dsn) as events_load, concurrent.futures.ThreadPoolExecutor(1) as pool:
        # A load of conversation_events in progress: its lock, an event written, transaction open.
        lock_table(events_load, "conversation_events")
        events_load.execute(
            """INSERT INTO conversation_events (source_key, conversation_id, conversation_sent_at,
                                                customer_id, employee_id, event_type)
               SELECT 'EVT_loading', v.id, v.sent_at, v.customer_id, v.employee_id, '意向信号'
               FROM conversations v WHERE v.source_message_id = 'MSG_000001'"""
        )
        loading = pool.submit(run_ingest, new_month)
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as reader:
                wait_for_count(reader, f"SELECT count(*) FROM ({waiting}) w", "the loader waiting", 30)
                waited_for = reader.execute(waiting).fetchall()
                reader.execute("SET statement_timeout = '2s'")
                try:
                    read = reader.execute("SELECT count(*) FROM conversations").fetchone()[0]
                except psycopg.errors.QueryCanceled:
                    read = "blocked behind the loader"
        finally:
            events_load.commit()  # the events load ends
        result = loading.result(timeout=120)[new_month.name]
    assert (waited_for, read) == ([("advisory",)], 1)
    assert (result.status, result.rows_loaded) == ("loaded", 1)


def test_a_load_into_existing_partitions_does_not_wait_for_a_load_of_events(parents, run_ingest, pg_dsn):
    """Only a new partition locks conversation_events: a conversations file whose months all have
    their partition loads while a load of events runs (it waited for the whole events load)."""
    from ingestion.schema.locks import lock_table

    first = run_ingest(rows.write(parents, "conversations", "c1", [rows.conversation(1)]))
    assert [r.status for r in first.values()] == ["loaded"]
    same_month = rows.write(parents, "conversations", "c2", [rows.conversation(2)])
    with psycopg.connect(pg_dsn) as events_load, concurrent.futures.ThreadPoolExecutor(1) as pool:
        lock_table(events_load, "conversation_events")  # a load of events in progress
        try:
            result = pool.submit(run_ingest, same_month).result(timeout=60)[same_month.name]
        finally:
            events_load.commit()
    assert (result.status, result.rows_loaded) == ("loaded", 1)


@pytest.mark.parametrize("chunk_bytes", [100, 8 * 1024 * 1024], ids=["row-per-chunk", "one-chunk"])
def test_a_message_repeated_with_another_sent_at_keeps_its_first_wherever_chunks_end(
    parents, run_ingest, sql, chunk_bytes
):
    """The first sent_at of a message stands, as for one loaded before; the same sent_at again
    updates the row. (In one chunk the last row used to win; in two, the first.)"""
    messages = [
        rows.conversation(1, sent_at="2025-03-05 10:00:00", content="first"),
        rows.conversation(2),
        rows.conversation(1, sent_at="2025-03-06 10:00:00", content="moved"),
        rows.conversation(1, sent_at="2025-03-05 18:00:00+08:00", content="same instant, edited"),
    ]
    result = run_ingest(rows.write(parents, "conversations", "rep", messages), chunk_bytes=chunk_bytes)
    assert (result["conversations__rep.csv"].rows_loaded, result["conversations__rep.csv"].reasons) == (
        3,
        {"moved:sent_at": 1},
    )
    assert sql("SELECT row_number, rule FROM funnelhouse.ingest_rejects") == [(3, "moved:sent_at")]
    assert sql("SELECT sent_at::text, content FROM conversations WHERE source_message_id = 'MSG_000001'") == [
        ("2025-03-05 10:00:00", "same instant, edited")
    ]


# -- an empty value of a column with a DEFAULT ----------------------------------------------------
# funnel_bofu's columns with a DEFAULT (0, FALSE) that may be empty, and those without one.
_BOFU_DEFAULTED = (
    "total_deposits",
    "total_withdrawals",
    "net_deposit",
    "deposit_count",
    "withdrawal_count",
    "withdrawal_rate",
    "is_vip",
)
_BOFU_NO_DEFAULT = ("first_deposit_amount", "first_deposit_at", "days_to_first_deposit", "max_deposit_amount")
_TOFU_DEFAULTED = ("joined_group", "stayed_in_group")


def _funnel_row(table: str, key: str, **values) -> dict:
    """A funnel row of CUST_0001 and EMP_001 (``parents``): its required values, the others empty."""
    required = {"created_at": "2025-01-05 10:00:00", "customer_code": "CUST_0001", "employee_code": "EMP_001"}
    if table == "funnel_tofu":
        required |= {"contact_date": "2025-01-05", "source_channel": "抖音"}
    return {**dict.fromkeys(CONTRACTS[table].landing_columns), **required, "source_key": key, **values}


def _write(folder: Path, table: str, batch: str, batch_rows: list[dict], fmt: str) -> Path:
    """``rows.write``, and "jsonl-missing": JSONL leaving the key of every empty value out."""
    if fmt != "jsonl-missing":
        return rows.write(folder, table, batch, batch_rows, fmt)
    path = folder / f"{table}__{batch}.jsonl"
    path.write_text(
        "".join(
            orjson.dumps({k: v for k, v in r.items() if v is not None}).decode() + "\n" for r in batch_rows
        )
    )
    return path


def _inserted_without(sql, table: str, key: str, columns: tuple[str, ...]) -> tuple:
    """``columns`` of a row INSERTed with its required values only: what the DEFAULTs give."""
    sql(
        f"INSERT INTO {table} (source_key, customer_id, employee_id, created_at"
        f"{', contact_date, source_channel' if table == 'funnel_tofu' else ''}) "
        "SELECT %s, c.id, e.id, '2025-01-05 10:00:00'"
        f"{', %s::date, %s' if table == 'funnel_tofu' else ''} "
        "FROM customers c, employees e WHERE c.customer_code = 'CUST_0001' AND e.employee_code = 'EMP_001'",
        key,
        *(("2025-01-05", "抖音") if table == "funnel_tofu" else ()),
    )
    [row] = sql(f"SELECT {', '.join(columns)} FROM {table} WHERE source_key = %s", key)
    return row


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "jsonl-missing", "parquet"])
def test_an_empty_value_is_stored_as_the_column_default_or_null_without_one(parents, run_ingest, sql, fmt):
    """A funnel_bofu row with its optional cells empty got NULL total_deposits, deposit_count,
    is_vip ... where an INSERT without them gives 0 and FALSE (a BI filter ``is_vip = 0`` missed
    the customer). Now an empty value (an empty CSV field, a JSON null or missing key, a Parquet
    null) is stored as the column's DEFAULT, as the INSERT would; a column without one stays NULL."""
    results = run_ingest(
        _write(parents, "funnel_bofu", "empty", [_funnel_row("funnel_bofu", "BOFU_1")], fmt),
        _write(parents, "funnel_tofu", "empty", [_funnel_row("funnel_tofu", "TOFU_1")], fmt),
    )
    assert {(r.status, r.rows_loaded, r.rows_rejected) for r in results.values()} == {("loaded", 1, 0)}

    loaded = sql(f"SELECT {', '.join(_BOFU_DEFAULTED)} FROM funnel_bofu WHERE source_key = 'BOFU_1'")
    assert loaded == [(Decimal("0.00"),) * 3 + (0, 0, Decimal("0.00"), False)]
    assert loaded == [_inserted_without(sql, "funnel_bofu", "BOFU_INSERTED", _BOFU_DEFAULTED)]
    assert sql(
        f"SELECT {', '.join(_BOFU_NO_DEFAULT)}, vip_since FROM funnel_bofu WHERE source_key = 'BOFU_1'"
    ) == [(None,) * 5]
    assert sql(
        f"SELECT {', '.join(_TOFU_DEFAULTED)}, joined_at FROM funnel_tofu WHERE source_key = 'TOFU_1'"
    ) == [(False, False, None)]
    assert sql(f"SELECT {', '.join(_TOFU_DEFAULTED)} FROM funnel_tofu WHERE source_key = 'TOFU_1'") == [
        _inserted_without(sql, "funnel_tofu", "TOFU_INSERTED", _TOFU_DEFAULTED)
    ]


@pytest.mark.parametrize("chunk_bytes", [100, 8 * 1024 * 1024], ids=["row-per-chunk", "one-chunk"])
def test_an_empty_value_re_sent_for_an_existing_row_takes_the_default(parents, run_ingest, sql, chunk_bytes):
    """Loads are full-row upserts: the file's row is the row's state, so an existing row re-sent
    with a value left empty takes the DEFAULT too (and NULL without one); re-sending it again
    changes nothing. customers (merged as a whole file) too; its NOT NULL ``tier`` keeps the stored
    value when empty ("not given", tested in test_loader)."""
    given = {
        "total_deposits": "100.00",
        "deposit_count": "3",
        "is_vip": "true",
        "first_deposit_amount": "50.00",
    }
    first = run_ingest(
        rows.write(parents, "funnel_bofu", "r1", [_funnel_row("funnel_bofu", "BOFU_1", **given)]),
        rows.write(
            parents, "customers", "r1", [rows.customer(1, intention_score="30", engagement_score="40")]
        ),
        chunk_bytes=chunk_bytes,
    )
    assert {(r.status, r.rows_rejected, r.rows_changed) for r in first.values()} == {("loaded", 0, 1)}
    bofu = "SELECT total_deposits, deposit_count, is_vip, first_deposit_amount FROM funnel_bofu"
    scores = "SELECT intention_score, engagement_score, tier FROM customers WHERE customer_code = 'CUST_0001'"
    assert sql(bofu) == [(Decimal("100.00"), 3, True, Decimal("50.00"))]
    assert sql(scores) == [(30, 40, "B")]

    # Batches sort after the parents' "p" (an older batch would be quarantined where it changes a
    # row). r3 repeats r2 in the other format (new content, not a duplicate file): identical to the
    # stored rows, it changes nothing.
    for batch, fmt, changed in (("r2", "jsonl", 1), ("r3", "csv", 0)):
        again = run_ingest(
            rows.write(parents, "funnel_bofu", batch, [_funnel_row("funnel_bofu", "BOFU_1")], fmt),
            rows.write(
                parents,
                "customers",
                batch,
                [rows.customer(1, intention_score=None, engagement_score="", tier=None)],
                "csv" if fmt == "jsonl" else "jsonl",
            ),
            chunk_bytes=chunk_bytes,
        )
        assert {(r.status, r.rows_rejected, r.rows_changed) for r in again.values()} == {
            ("loaded", 0, changed)
        }
        assert sql(bofu) == [(Decimal("0.00"), 0, False, None)]
        assert sql(scores) == [(0, 0, "B")]


def test_an_empty_value_is_quarantined_as_given_not_as_its_default(parents, run_ingest, sql):
    """The DEFAULT is the merge's: validation judges the empty value as written (never invalid), and
    a row quarantined for another value keeps its empty values empty in raw_row."""
    path = rows.write(
        parents,
        "funnel_bofu",
        "bad",
        [_funnel_row("funnel_bofu", "BOFU_1"), _funnel_row("funnel_bofu", "BOFU_2", deposit_count="-1")],
    )
    result = run_ingest(path)[path.name]
    assert (result.rows_loaded, result.reasons) == (1, {"range:deposit_count": 1})
    [(raw,)] = sql("SELECT raw_row FROM funnelhouse.ingest_rejects")
    assert raw["deposit_count"] == "-1"
    assert {c: raw[c] for c in _BOFU_DEFAULTED if c != "deposit_count"} == dict.fromkeys(
        set(_BOFU_DEFAULTED) - {"deposit_count"}
    )


def _apply_migration(dsn: str, prefix: str) -> None:
    """Run migration ``prefix`` (its SQL, again: the test database is migrated already) as
    migrate.apply runs it: search_path public, one transaction."""
    [migration] = [m for m in migrate.available() if m.version.startswith(prefix)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET search_path TO public")
        with conn.transaction():
            conn.execute(migration.sql)


def test_nulls_stored_before_empty_values_took_the_default_become_the_default(
    parents, run_ingest, sql, pg_dsn
):
    """The loader before 4b7b825 stored an empty is_vip, deposit_count ... as NULL. Those rows kept
    it: ``is_vip = false`` missed them, and a late (older batch) file re-sending the row unchanged
    was quarantined as a change (stored NULL, given the DEFAULT). Migration 0025 sets them to the
    DEFAULT, exactly in the columns where the loader now stores one; then the late file loads."""
    with psycopg.connect(pg_dsn) as conn:
        plan = MergePlan(CONTRACTS["funnel_bofu"], catalog(conn, "funnel_bofu"), [])
    assert set(plan.defaults) == set(_BOFU_DEFAULTED)  # the loader's rule, which the migration follows
    newer = run_ingest(rows.write(parents, "funnel_bofu", "b2", [_funnel_row("funnel_bofu", "BOFU_2")]))
    assert [(r.status, r.rows_loaded) for r in newer.values()] == [("loaded", 1)]
    # BOFU_1 as the old code stored it from a row leaving every optional value empty.
    sql(
        f"INSERT INTO funnel_bofu (source_key, customer_id, employee_id, created_at, {', '.join(_BOFU_DEFAULTED)}) "
        f"SELECT 'BOFU_1', c.id, e.id, '2025-01-05 10:00:00'{', NULL' * len(_BOFU_DEFAULTED)} "
        "FROM customers c, employees e WHERE c.customer_code = 'CUST_0001' AND e.employee_code = 'EMP_001'"
    )
    assert sql("SELECT source_key FROM funnel_bofu WHERE NOT is_vip") == [("BOFU_2",)]

    _apply_migration(pg_dsn, "0025_")
    defaulted = f"SELECT {', '.join(_BOFU_DEFAULTED)} FROM funnel_bofu WHERE source_key = %s"
    assert (
        sql(defaulted, "BOFU_1")
        == sql(defaulted, "BOFU_2")
        == [(Decimal("0.00"),) * 3 + (0, 0, Decimal("0.00"), False)]
    )
    no_default = (
        f"SELECT {', '.join(_BOFU_NO_DEFAULT)}, vip_since FROM funnel_bofu WHERE source_key = 'BOFU_1'"
    )
    assert sql(no_default) == [(None,) * 5]
    # Idempotent: a second run rewrites no row (xmin unchanged), so it is a read-only scan.
    versions = sql("SELECT source_key, xmin::text, updated_at FROM funnel_bofu ORDER BY 1")
    _apply_migration(pg_dsn, "0025_")
    assert sql("SELECT source_key, xmin::text, updated_at FROM funnel_bofu ORDER BY 1") == versions

    late = run_ingest(rows.write(parents, "funnel_bofu", "b1", [_funnel_row("funnel_bofu", "BOFU_1")]))
    assert [(r.status, r.rows_loaded, r.rows_rejected, r.rows_changed) for r in late.values()] == [
        ("loaded", 1, 0, 0)
    ]
