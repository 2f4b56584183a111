"""A JSON column's numbers reach jsonb as written, from every landing format: jsonb keeps a
number's digits (1.10 stays 1.10, 12345678901234567890123 stays exact, 1e400 is a number), which
a double read on the way (the JSONL reader's orjson) would change or refuse. What PostgreSQL
stores must be what ``'<text>'::jsonb`` gives, computed by PostgreSQL itself."""

from __future__ import annotations

import random
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.contracts import CONTRACTS
from ingestion.load.landing import landing_file
from ingestion.load.readers import read_chunks
from tests.ingestion import landing_rows as rows

# training_courses: a JSON column (content) and no references to load first.
COLUMNS = CONTRACTS["training_courses"].landing_columns

# Numbers a double changes: digits beyond a double's (or beyond 64 bits), trailing zeros jsonb
# keeps, exponents jsonb reads as a scale (1e2 is 100, 1.0e-7 is 0.00000010), a double's overflow.
CHANGED_BY_A_DOUBLE = [
    "1.10",
    "[0.50, 100.00, 0.000]",
    "12345678901234567890123",
    "[-9223372036854775809, 18446744073709551616, 9223372036854775807]",
    "0.1000000000000000055511151231257827",
    '{"pi": 3.14159265358979323846264338327950288, "nested": {"list": [1.10, "1.10"]}}',
    "[1e2, 1E+2, 0.1e1, 1.50e1, 1.0e-7, 5e-324, 1e-400]",
    "[1e400, -1e400]",
    "[-0, -0.0, 0.0, 10000000000000000.0]",
]


def _random_numbers(count: int) -> list[str]:
    """Numbers as exporters write them (shortest doubles, fixed decimals, money) and as people do
    (trailing zeros, exponents, long integers): most take the reader's fast path, some not."""
    rng = random.Random(20251130)
    numbers = []
    for _ in range(count):
        x = rng.uniform(-1, 1) * 10 ** rng.randint(-9, 22)
        numbers += [
            repr(x),
            f"{x:.{rng.randint(0, 9)}f}",
            str(round(x, 2)),
            f"{rng.randint(0, 10 ** rng.randint(1, 25))}",
            f"{rng.randint(1, 999)}.{rng.randint(0, 99)}e{rng.randint(-20, 20)}",
        ]
    return numbers


def _course(code: str, content: str | None) -> dict:
    return {
        **dict.fromkeys(COLUMNS),
        "course_code": code,
        "title": f"course {code}",
        "course_type": "7天上手",
        "content": content,
        "created_at": "2025-01-01 09:00:00",
    }


def _jsonl_line(course: dict) -> str:
    """The course as a JSONL line with its content embedded as written: a JSON encoder would
    hand it to a double first."""
    fields = [f'"{c}": "{course[c]}"' for c in ("course_code", "title", "course_type", "created_at")]
    return "{" + ", ".join([*fields, f'"content": {course["content"]}']) + "}\n"


def test_json_numbers_are_stored_as_jsonb_reads_them_from_every_format(landing, run_ingest, sql):
    in_jsonl = {f"JSONL_{n}": text for n, text in enumerate(CHANGED_BY_A_DOUBLE + _random_numbers(300))}
    # Bad input stays quarantined: NaN, a lone surrogate on a line orjson refuses for its number,
    # a key outside the contract holding a number orjson refuses.
    bad = [
        '{"course_code": "BAD_1", "content": [NaN]}\n',
        '{"course_code": "BAD_2", "content": ["\\ud800", 1e400]}\n',
        _jsonl_line(_course("BAD_3", "[1]")).replace("}\n", ', "Content": 1e400}\n'),
    ]
    lines = bad + [_jsonl_line(_course(code, text)) for code, text in in_jsonl.items()]
    jsonl = landing / "training_courses__numbers.jsonl"
    jsonl.write_text("".join(lines), encoding="utf-8")
    # 1e400 on a last line without a line break: not JSON cut off in transfer.
    last = landing / "training_courses__last.jsonl"
    last.write_text(_jsonl_line(_course("JSONL_last", "[1e400]")).rstrip("\n"), encoding="utf-8")

    # CSV and Parquet carry the JSON text as it is.
    contents = {**in_jsonl, "JSONL_last": "[1e400]"}
    files = [jsonl, last]
    for fmt in ("csv", "parquet"):
        courses = [_course(f"{fmt.upper()}_{n}", text) for n, text in enumerate(CHANGED_BY_A_DOUBLE)]
        files.append(rows.write(landing, "training_courses", f"numbers_{fmt}", courses, fmt))
        contents.update({course["course_code"]: course["content"] for course in courses})
    results = run_ingest(*files)

    codes, texts = zip(*contents.items(), strict=True)
    as_jsonb_reads_them = dict(
        sql(
            "SELECT code, text::jsonb::text FROM unnest(%s::text[], %s::text[]) AS t(code, text)",
            list(codes),
            list(texts),
        )
    )
    assert dict(sql("SELECT course_code, content::text FROM training_courses")) == as_jsonb_reads_them
    assert {name: (r.status, r.rows_loaded, dict(r.reasons)) for name, r in results.items()} == {
        "training_courses__numbers.jsonl": (
            "loaded",
            len(in_jsonl),
            {"malformed_row": 2, "unknown_keys": 1},
        ),
        "training_courses__last.jsonl": ("loaded", 1, {}),
        "training_courses__numbers_csv.csv": ("loaded", len(CHANGED_BY_A_DOUBLE), {}),
        "training_courses__numbers_parquet.parquet": ("loaded", len(CHANGED_BY_A_DOUBLE), {}),
    }


def test_decimals_inside_a_typed_parquet_json_column_keep_their_digits(landing):
    """A JSON column written as a typed list: its decimals become JSON numbers of their digits
    (orjson alone cannot write a Decimal)."""
    course = _course("PARQUET_nested", None)
    path = landing / "training_courses__nested.parquet"
    decimals = [Decimal("1.10"), Decimal("12345678901234567890.12"), None]
    pq.write_table(
        pa.table(
            {
                **{c: pa.array([course[c]], pa.string()) for c in COLUMNS if c != "content"},
                "content": pa.array([decimals], pa.list_(pa.decimal128(25, 2))),
            }
        ),
        path,
    )
    (chunk,) = read_chunks(landing_file(str(path)))
    assert chunk.frame["content"].tolist() == ["[1.10,12345678901234567890.12,null]"]


def test_a_line_nested_deeper_than_it_can_be_written_back_is_quarantined(landing):
    """orjson reads 300 levels of nesting but writes at most 255: such a line is a malformed row with
    its reason, and the lines around it load (it used to end the whole run with a TypeError)."""
    path = landing / "training_courses__deep.jsonl"
    contents = {"JSONL_before": "[1]", "JSONL_deep": "[" * 300 + "]" * 300, "JSONL_after": "[2]"}
    path.write_text("".join(_jsonl_line(_course(code, content)) for code, content in contents.items()))
    (chunk,) = read_chunks(landing_file(str(path)))
    assert chunk.frame["course_code"].tolist() == ["JSONL_before", "JSONL_after"]
    [bad] = chunk.malformed
    assert (
        bad.row == 2
        and "cannot be kept" in bad.reason
        and bad.text.startswith('{"course_code": "JSONL_deep"')
    )


def test_a_nan_inside_a_typed_parquet_json_column_is_quarantined_not_made_null(landing, run_ingest, sql):
    """JSON has no NaN or infinity (nor has jsonb): a typed Parquet list holding one is refused with
    its row, where it used to be written as null, changing the value unnoticed."""
    path = landing / "training_courses__nan.parquet"
    contents = {
        "PARQUET_finite": [1.5, None],
        "PARQUET_nan": [1.5, float("nan")],
        "PARQUET_inf": [float("inf")],
    }
    courses = [_course(code, None) for code in contents]
    pq.write_table(
        pa.table(
            {
                **{
                    c: pa.array([course[c] for course in courses], pa.string())
                    for c in COLUMNS
                    if c != "content"
                },
                "content": pa.array(list(contents.values()), pa.list_(pa.float64())),
            }
        ),
        path,
    )
    result = run_ingest(path)[path.name]
    assert (result.rows_loaded, result.rows_rejected) == (1, 2)
    assert sql("SELECT course_code, content::text FROM training_courses") == [
        ("PARQUET_finite", "[1.5, null]")
    ]


def _customers_frame() -> pd.DataFrame:
    """Customers as pandas holds an integer column with a missing value: floats (35.0, NaN)."""
    customers = [rows.customer(n, language=None) for n in (1, 2, 3)]
    frame = pd.DataFrame(customers, columns=CONTRACTS["customers"].landing_columns)
    frame["age"] = [35, None, 35.5]  # float64: 35.0, NaN, 35.5
    frame["ltv_prediction"] = [1.0, 2.5, None]  # a decimal column: the digits written are its value
    return frame


def test_a_whole_float_of_an_integer_column_loads_from_jsonl_as_from_parquet(landing, run_ingest, sql):
    """pandas' ``to_json`` writes an integer column holding a NaN as floats (35.0): JSONL refused
    "age '35.0' is not an integer" where the Parquet of the same frame loaded 35. A whole float of
    an integer column is that integer (35.00 too, which takes the exact path); a fraction stays
    an error, and a decimal column keeps what was written."""
    rows.write(landing, "employees", "p", [rows.employee(1)])
    assert run_ingest(landing)["employees__p.csv"].status == "loaded"
    frame = _customers_frame()
    jsonl = landing / "customers__pandas.jsonl"
    frame.to_json(jsonl, orient="records", lines=True, force_ascii=False)
    assert '"age":35.0' in jsonl.read_text()
    exact = landing / "customers__exact.jsonl"  # 35.00: a number a double would change
    exact.write_text(jsonl.read_text().replace('"age":35.0', '"age":35.00').replace("CUST_000", "CUST_010"))
    parquet = landing / "customers__pandas.parquet"
    frame.to_parquet(parquet, index=False)

    (chunk,) = read_chunks(landing_file(str(jsonl)))
    assert chunk.frame["age"].tolist()[::2] == ["35", "35.5"] and pd.isna(chunk.frame["age"].iloc[1])
    assert chunk.frame["ltv_prediction"].tolist()[:2] == ["1.0", "2.5"]
    (chunk,) = read_chunks(landing_file(str(exact)))
    assert chunk.frame["age"].iloc[0] == "35"

    results = run_ingest(jsonl, exact, parquet)
    assert {name: (r.rows_loaded, dict(r.reasons)) for name, r in results.items()} == {
        "customers__pandas.jsonl": (2, {"type:age": 1}),
        "customers__exact.jsonl": (2, {"type:age": 1}),
        "customers__pandas.parquet": (2, {"type:age": 1}),
    }
    assert sql("SELECT customer_code, age FROM customers ORDER BY 1") == [
        ("CUST_0001", 35),
        ("CUST_0002", None),
        ("CUST_0101", 35),
        ("CUST_0102", None),
    ]
