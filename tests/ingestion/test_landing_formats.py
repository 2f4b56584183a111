"""The landing formats read as the README's contract says: RFC 4180 CSV (empty field = NULL, any
row length up to a limit, a stray quote in an unquoted field, no final line break) and JSONL (a
byte-order mark, keys outside the contract, a line past the limit)."""

from __future__ import annotations

import csv

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.contracts import CONTRACTS
from ingestion.load import chunk_writer
from ingestion.load.landing import landing_file
from ingestion.load.readers import csv_reader, jsonl_reader, read_chunks
from ingestion.load.readers.shared import LandingFileError
from tests.ingestion import landing_rows as rows

CUSTOMER_COLUMNS = CONTRACTS["customers"].landing_columns


def _csv_field(value: str | None) -> str:
    if value is None:
        return ""
    if any(special in value for special in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_line(customer: dict, **verbatim: str) -> str:
    """The customer as one CSV line; ``verbatim`` fields are written as given (the test's quotes)."""
    return ",".join(verbatim[c] if c in verbatim else _csv_field(customer[c]) for c in CUSTOMER_COLUMNS)


def _write_csv(folder, batch: str, lines: list[str], newline: str = "\n", last_newline: bool = True):
    path = folder / f"customers__{batch}.csv"
    text = newline.join([",".join(CUSTOMER_COLUMNS), *lines])
    path.write_bytes((text + (newline if last_newline else "")).encode())
    return path


def _read(path, chunk_bytes: int = 8 * 1024 * 1024) -> list:
    return [chunk.frame for chunk in read_chunks(landing_file(str(path)), chunk_bytes)]


def _quote_every_field(path) -> None:
    with open(path, newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(table)


@pytest.fixture
def parents(landing, run_ingest):
    rows.write(landing, "employees", "p", [rows.employee(1)])
    assert run_ingest(landing)["employees__p.csv"].status == "loaded"
    return landing


@pytest.mark.parametrize("quoting", ["minimal", "all"])
def test_csv_words_that_look_like_null_are_text(parents, run_ingest, sql, quoting):
    """Only an empty field is NULL (quoted or not): "NA" is Namibia, "nan" a name."""
    batch = [
        rows.customer(1, name="NA", country="NA", wechat_id="null", phone="N/A", city="NaN"),
        rows.customer(2, name="nan", country="#N/A", wechat_id="NULL", phone="", city=None),
    ]
    path = rows.write(parents, "customers", f"null_{quoting}", batch)
    if quoting == "all":
        _quote_every_field(path)  # "" included: a quoted empty field is an empty field
    result = run_ingest(path)[path.name]
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 2, 0)
    assert sql("SELECT name, country, wechat_id, phone, city FROM customers ORDER BY customer_code") == [
        ("NA", "NA", "null", "N/A", "NaN"),
        ("nan", "#N/A", "NULL", None, None),
    ]


MULTI_LINE = '"multi\nline ""quoted"""'


@pytest.mark.parametrize("later_multi_line", [True, False], ids=["multi-line-later", "one-line-rows"])
@pytest.mark.parametrize("chunk_bytes", [300, 2000, 8 * 1024 * 1024])
def test_a_stray_quote_in_an_unquoted_field_is_text(tmp_path, chunk_bytes, later_multi_line):
    """`a 5" screen` opens no quoted field: later multi-line values stay whole, and blocks stay
    about chunk_bytes long (a flipped quote count cut a later multi-line value, or carried the
    rest of the file as one row)."""
    lines = [_csv_line(rows.customer(1), blacklist_reason='a 5" screen')]
    lines += [
        _csv_line(rows.customer(n), blacklist_reason=MULTI_LINE if later_multi_line and n % 5 == 0 else "x")
        for n in range(2, 40)
    ]
    path = _write_csv(tmp_path, "stray", lines)
    frames = _read(path, chunk_bytes)
    reasons = [value for frame in frames for value in frame["blacklist_reason"]]
    fifth = 'multi\nline "quoted"' if later_multi_line else "x"
    assert reasons[:6] == ['a 5" screen', "x", "x", "x", fifth, "x"]
    assert len(reasons) == 39
    if chunk_bytes < path.stat().st_size // 4:
        assert len(frames) >= 4


def test_a_csv_row_longer_than_arrow_blocks_loads(tmp_path):
    """pyarrow reads 1 MiB blocks by default: a longer row failed the whole file."""
    long_text = "长" * (1024 * 1024)  # 3 MiB of UTF-8
    lines = [
        _csv_line(rows.customer(1, communication_style=long_text)),
        _csv_line(rows.customer(2, communication_style=f"line 1\n{long_text}")),
        _csv_line(rows.customer(3)),
    ]
    path = _write_csv(tmp_path, "long", lines)
    for chunk_bytes in (1024 * 1024, 8 * 1024 * 1024):
        styles = [value for frame in _read(path, chunk_bytes) for value in frame["communication_style"]]
        assert styles[0] == long_text and styles[1] == f"line 1\n{long_text}"
        assert len(styles) == 3


def test_a_csv_without_a_final_line_break_loads(tmp_path):
    """RFC 4180: the last record may have no line break (CRLF files here)."""
    lines = [_csv_line(rows.customer(1)), _csv_line(rows.customer(2, blacklist_reason="two\r\nlines"))]
    path = _write_csv(tmp_path, "nolb", lines, newline="\r\n", last_newline=False)
    frame = pd.concat(_read(path))
    assert frame.index.tolist() == [1, 2]
    assert frame["customer_code"].tolist() == ["CUST_0001", "CUST_0002"]
    assert frame["blacklist_reason"].tolist()[1] == "two\r\nlines"
    assert frame["assigned_employee_code"].tolist() == ["EMP_001", "EMP_001"]


@pytest.mark.parametrize(
    "row_three, message",
    [
        (
            {"communication_style": MULTI_LINE, "blacklist_reason": '"call back Monday'},
            "a quoted field opened in data row 3, line 7 is not closed within 4096 bytes",
        ),
        (
            {"blacklist_reason": "x" * 5000},
            "data row 3 (line 6) runs for more than 4096 bytes without a line",
        ),
    ],
    ids=["quote-never-closed", "no-line-break"],
)
def test_a_csv_row_past_the_limit_fails_the_file_naming_it(tmp_path, monkeypatch, row_three, message):
    """A row longer than MAX_ROW_BYTES (small here) is never held whole: the file fails with the
    row's data row and line (and the line its open quote is on), counted past multi-line values
    and blank lines, and without its content (this goes to logs). No later row holds a quote: one
    would close the open field."""
    monkeypatch.setattr(csv_reader, "MAX_ROW_BYTES", 4096)
    lines = [
        _csv_line(rows.customer(1)),
        _csv_line(rows.customer(2), blacklist_reason=MULTI_LINE),  # lines 3-4
        "",
        _csv_line(rows.customer(3), **row_three),  # line 6
        *(_csv_line(rows.customer(n, language=None)) for n in range(4, 60)),
    ]
    path = _write_csv(tmp_path, "open", lines)
    with pytest.raises(LandingFileError) as error:
        _read(path, 512)
    assert message in error.value.problem
    assert "call back" not in error.value.problem and "xxx" not in error.value.problem
    assert "Nothing was loaded" in error.value.problem and "drop the file again" in error.value.problem


@pytest.mark.parametrize(
    "cut, message",
    [
        (lambda text: text[: text.rindex("2025-01-02")], "last row (data row 2, no final line break)"),
        (
            lambda text: text[: text.rindex("two")],
            "ends inside the quoted field opened in data row 2, line 3",
        ),
    ],
    ids=["fields-missing", "inside-quotes"],
)
def test_a_csv_cut_off_in_transfer_is_still_truncated(tmp_path, cut, message):
    lines = [_csv_line(rows.customer(1)), _csv_line(rows.customer(2, blacklist_reason="two\nlines"))]
    path = _write_csv(tmp_path, "cut", lines)
    path.write_text(cut(path.read_text()))
    with pytest.raises(LandingFileError, match="truncated") as error:
        _read(path)
    assert message in error.value.problem


def test_jsonl_byte_order_mark_and_keys_outside_the_contract(parents, run_ingest, sql):
    """A BOM (Windows tools) is no reason to fail the file; a misspelled key is no reason to load
    the row without its value: the row is quarantined, its stray keys kept in raw_row."""
    path = parents / "customers__keys.jsonl"
    records = [
        rows.customer(1, language=["zh"]),
        {**rows.customer(2, language=["zh"]), "Country": "FR", "referer_code": "CUST_0001"},
        rows.customer(3, language=["zh"]),
    ]
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(orjson.dumps(r) + b"\n" for r in records))
    result = run_ingest(path)[path.name]
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 2, 1)
    assert result.reasons == {"unknown_keys": 1}
    [(row, reason, raw)] = sql("SELECT row_number, reason, raw_row FROM funnelhouse.ingest_rejects")
    assert row == 2 and "Country, referer_code" in reason
    assert orjson.loads(raw["_unknown_keys"]) == {"Country": "FR", "referer_code": "CUST_0001"}
    assert sql("SELECT customer_code FROM customers ORDER BY 1") == [("CUST_0001",), ("CUST_0003",)]


def test_jsonl_without_a_final_line_break_loads_unless_cut_off(tmp_path):
    line = orjson.dumps({"customer_code": "CUST_0001", "name": "N"})
    complete = tmp_path / "customers__done.jsonl"
    complete.write_bytes(line + b"\n" + line)
    assert sum(len(frame) for frame in _read(complete)) == 2
    cut = tmp_path / "customers__cut.jsonl"
    cut.write_bytes(line + b"\n" + line[:-5])
    with pytest.raises(LandingFileError, match=r"truncated: the last line \(2\)"):
        _read(cut)


@pytest.mark.parametrize("chunk_bytes", [200, 8 * 1024 * 1024])
def test_csv_rows_with_the_wrong_number_of_fields_keep_their_row_numbers(tmp_path, chunk_bytes):
    """pyarrow's invalid_row_handler numbers a row within its block: the reader turns that into
    the file's data row, past multi-line values, blank lines and earlier bad rows."""
    lines = [
        _csv_line(rows.customer(1)),
        _csv_line(rows.customer(2)) + ",surplus",
        _csv_line(rows.customer(3), blacklist_reason=MULTI_LINE),
        "",
        "CUST_0004,too few",
        _csv_line(rows.customer(5)),
    ]
    frames, malformed = [], []
    for chunk in read_chunks(landing_file(str(_write_csv(tmp_path, "fields", lines))), chunk_bytes):
        frames.append(chunk.frame)
        malformed.extend(chunk.malformed)
    frame = pd.concat(frames)
    assert frame.index.tolist() == [1, 3, 5]
    assert frame["customer_code"].tolist() == ["CUST_0001", "CUST_0003", "CUST_0005"]
    assert [(m.row, m.reason) for m in malformed] == [
        (2, f"{len(CUSTOMER_COLUMNS) + 1} fields where the header has {len(CUSTOMER_COLUMNS)}"),
        (4, f"2 fields where the header has {len(CUSTOMER_COLUMNS)}"),
    ]
    assert malformed[0].text.endswith(",surplus") and malformed[1].text == "CUST_0004,too few"


# Quotes inside a quoted field not doubled: MySQL's INTO OUTFILE escapes them with a backslash,
# hand-rolled exporters not at all. pyarrow kept the text after the closing quote, changing it.
MISQUOTED = ['"客户说\\"好的\\"然后"', '"他说"好的"然后走了"', '"5" screen"']
MISQUOTED_REASON = 'a quote inside a quoted field must be doubled ("")'


@pytest.mark.parametrize("chunk_bytes", [120, 700, 8 * 1024 * 1024])
def test_a_quote_not_doubled_in_a_quoted_field_quarantines_exactly_its_row(tmp_path, chunk_bytes):
    """Each misquoted row is quarantined as written, with its data row number (past blank lines,
    multi-line values and rows with the wrong number of fields); the rows around it, doubled quotes
    and a stray quote in an unquoted field included, load as written, in blocks of any size."""
    lines = [
        _csv_line(rows.customer(1), blacklist_reason='"said ""yes"", then left"'),
        _csv_line(rows.customer(2), blacklist_reason=MISQUOTED[0]),
        _csv_line(rows.customer(3), blacklist_reason=MULTI_LINE),
        "",
        _csv_line(rows.customer(4), blacklist_reason=MISQUOTED[1]),
        _csv_line(rows.customer(5)) + ",surplus",
        _csv_line(rows.customer(6), blacklist_reason='a 5" screen'),
        _csv_line(rows.customer(7), name=MISQUOTED[2]),
        _csv_line(rows.customer(8), blacklist_reason="x"),
    ]
    path = _write_csv(tmp_path, "misquoted", lines)
    frames, malformed = [], []
    for chunk in read_chunks(landing_file(str(path)), chunk_bytes):
        frames.append(chunk.frame)
        malformed.extend(chunk.malformed)
    frame = pd.concat(frames)
    assert frame.index.tolist() == [1, 3, 6, 8]
    assert frame["blacklist_reason"].tolist() == [
        'said "yes", then left',
        'multi\nline "quoted"',
        'a 5" screen',
        "x",
    ]
    assert frame["name"].tolist() == ["客户1", "客户3", "客户6", "客户8"]
    assert [(m.row, m.reason, m.text) for m in malformed] == [
        (2, MISQUOTED_REASON, lines[1]),
        (4, MISQUOTED_REASON, lines[4]),
        (5, f"{len(CUSTOMER_COLUMNS) + 1} fields where the header has {len(CUSTOMER_COLUMNS)}", lines[5]),
        (7, MISQUOTED_REASON, lines[7]),
    ]


def test_a_block_of_only_misquoted_rows_and_a_misquoted_last_row_without_a_line_break(tmp_path):
    lines = [_csv_line(rows.customer(n), name=MISQUOTED[n % 3]) for n in range(1, 4)]
    path = _write_csv(tmp_path, "all_misquoted", lines, last_newline=False)
    chunks = list(read_chunks(landing_file(str(path)), 50))
    assert sum(len(chunk.frame) for chunk in chunks) == 0
    assert [m.row for chunk in chunks for m in chunk.malformed] == [1, 2, 3]


@pytest.mark.parametrize("chunk_bytes", [200, 8 * 1024 * 1024])
def test_a_csv_cut_off_in_a_misquoted_last_row_is_still_truncated(tmp_path, chunk_bytes):
    """A MySQL export (many rows misquoted) cut off in transfer: its last row is cut out as
    misquoted before pyarrow counts its fields, yet the file fails as truncated, as a well-quoted
    one cut at the same place does, rather than partly loading."""
    problems = []
    for name in (MISQUOTED[2], '"5 screen"'):
        lines = [_csv_line(rows.customer(1)), _csv_line(rows.customer(2), name=name)]
        path = _write_csv(tmp_path, "cut", lines)
        path.write_text(path.read_text()[: path.read_text().rindex("2025-01-02")])
        with pytest.raises(LandingFileError) as error:
            _read(path, chunk_bytes)
        problems.append(error.value.problem)
    assert problems[0] == problems[1]
    assert problems[0].startswith("truncated: the last row (data row 2, no final line break) is incomplete")


def test_a_blank_after_a_closing_quote_has_its_own_reason(tmp_path):
    """`"CUST_0001" ,...` doubles no quote wrongly: the reason names the blank, not the quotes."""
    lines = [
        _csv_line(rows.customer(1), customer_code='"CUST_0001" '),
        _csv_line(rows.customer(2), customer_code='"CUST_0002"\t', name=MISQUOTED[2]),
        _csv_line(rows.customer(3), customer_code='"CUST_0003" x'),
    ]
    path = _write_csv(tmp_path, "blank", lines)
    malformed = [m for chunk in read_chunks(landing_file(str(path)), 1024) for m in chunk.malformed]
    blank_reason = "text after a quoted field's closing quote (a space before the comma?)"
    assert [(m.row, m.reason) for m in malformed] == [
        (1, blank_reason),
        (2, MISQUOTED_REASON),
        (3, MISQUOTED_REASON),
    ]


def test_clean_blocks_are_not_read_again_for_misquoted_rows(tmp_path, monkeypatch):
    """The misquote check is the block cutting's own scan: a file of quoted fields (every
    customer's language is ["zh","en"]) never reaches the per-row check."""

    def fail(*_):
        raise AssertionError("a clean block was read again")

    monkeypatch.setattr(csv_reader, "_without_misquoted_rows", fail)
    path = _write_csv(tmp_path, "clean", [_csv_line(rows.customer(n)) for n in range(1, 200)])
    assert sum(len(frame) for frame in _read(path, 1000)) == 199


def test_misquoted_rows_are_rejected_with_their_text_and_the_rest_loads(parents, run_ingest, sql):
    lines = [
        _csv_line(rows.customer(1)),
        _csv_line(rows.customer(2), blacklist_reason=MISQUOTED[0]),
        _csv_line(rows.customer(3), name=MISQUOTED[1]),
        _csv_line(rows.customer(4)),
    ]
    path = _write_csv(parents, "misquoted", lines)
    result = run_ingest(path)[path.name]
    assert (
        result.status,
        result.rows_in,
        result.rows_loaded,
        result.rows_rejected,
        dict(result.reasons),
    ) == (
        "loaded",
        4,
        2,
        2,
        {"malformed_row": 2},
    )
    assert sql(
        "SELECT row_number, rule, reason, raw_row FROM funnelhouse.ingest_rejects ORDER BY row_number"
    ) == [
        (2, "malformed_row", MISQUOTED_REASON, {"_raw_text": lines[1]}),
        (3, "malformed_row", MISQUOTED_REASON, {"_raw_text": lines[2]}),
    ]
    assert sql("SELECT customer_code FROM customers ORDER BY 1") == [("CUST_0001",), ("CUST_0004",)]


def _header_line(names) -> bytes:
    return ",".join(names).encode()


@pytest.mark.parametrize(
    "content, message",
    [
        (
            lambda line: (
                _header_line(CUSTOMER_COLUMNS)
                + b"\n"
                + line(1)
                + b"\n"
                + line(2).replace("客户2".encode(), "客户2".encode("gbk"))
                + b"\n"
            ),
            "invalid UTF8 data in column name, data row 2 (line 3): the file is not UTF-8 (most likely "
            'GBK/GB18030, as Excel saves "CSV"): save it as "CSV UTF-8"',
        ),
        (
            lambda line: (
                ",".join(["客户编号", *CUSTOMER_COLUMNS[1:]]).encode("gb18030") + b"\n" + line(1) + b"\n"
            ),
            "header is not UTF-8 (invalid start byte at byte 0): the file is not UTF-8 (most likely "
            "GBK/GB18030",
        ),
        (
            lambda line: _header_line(c.upper() for c in CUSTOMER_COLUMNS) + b"\n" + line(1) + b"\n",
            "column names must be lower-case, as in the contract: CUSTOMER_CODE (write customer_code), NAME "
            f"(write name), AVATAR_URL (write avatar_url) and {len(CUSTOMER_COLUMNS) - 3} more",
        ),
        (
            lambda line: (
                _header_line(f"列{n}" for n in range(len(CUSTOMER_COLUMNS))) + b"\n" + line(1) + b"\n"
            ),
            "a file without a header line, or a header in other words (translated names?)",
        ),
        (
            lambda line: _header_line([*CUSTOMER_COLUMNS, "", ""]) + b"\n" + line(1) + b",,\n",
            "2 empty column name(s) at the end of the header (trailing commas?)",
        ),
        (
            lambda line: _header_line(CUSTOMER_COLUMNS) + b"\r" + line(1) + b"\r" + line(2) + b"\r",
            "lines end in CR only: save the file with LF or CRLF line endings",
        ),
    ],
    ids=["gbk-data", "gbk-header", "upper-case-header", "translated-header", "trailing-commas", "cr-only"],
)
def test_excel_exports_fail_with_what_to_do(tmp_path, content, message):
    """What Excel writes (GBK "CSV", its own header, trailing commas, old Mac line ends) fails
    the file saying what is wrong in words, not pyarrow's or Python's parser's."""
    path = tmp_path / "customers__excel.csv"
    path.write_bytes(content(lambda n: _csv_line(rows.customer(n, language=None)).encode()))
    with pytest.raises(LandingFileError) as error:
        _read(path)
    assert message in error.value.problem


@pytest.mark.parametrize(
    "fmt, encoding, line_end",
    [
        ("csv", "utf-16", "\r\n"),  # Excel's "Unicode Text": a byte-order mark, CRLF
        ("csv", "utf-16-le", "\n"),  # no byte-order mark
        ("csv", "utf-16-be", "\r\n"),
        ("jsonl", "utf-16", "\n"),  # PowerShell's Out-File
        ("jsonl", "utf-16-le", "\r\n"),
    ],
    ids=["csv-bom-crlf", "csv-no-bom", "csv-big-endian", "jsonl-bom", "jsonl-no-bom"],
)
def test_a_utf16_file_fails_saying_it_is_utf16(landing, run_ingest, sql, fmt, encoding, line_end):
    """A UTF-16 file was told "lines end in CR only" (its CRLF is \\r\\0\\n\\0), "missing column(s)
    ... translated names?" or "not UTF-8", or its JSONL lines were each quarantined as no JSON: it
    fails saying what it is and what to do, nothing loaded."""
    path = rows.write(landing, "tags", f"utf16_{fmt}", [rows.tag(1), rows.tag(2)], fmt)
    text = path.read_text(encoding="utf-8").replace("\n", line_end)
    path.write_bytes(text.encode(encoding))
    result = run_ingest(path)[path.name]
    assert result.status == "failed"
    assert "the file is UTF-16" in result.error and "save it as UTF-8" in result.error
    assert sql("SELECT count(*) FROM tags") == [(0,)]
    assert sql("SELECT count(*) FROM funnelhouse.ingest_rejects") == [(0,)]


def test_malformed_rows_are_quarantined_and_the_rest_of_the_file_loads(parents, run_ingest, sql):
    """A CSV row with the wrong number of fields, a JSONL line that is no JSON object: quarantined
    with their row numbers and their text as written; the other rows load."""
    csv_path = _write_csv(
        parents,
        "fields",
        [_csv_line(rows.customer(1)), _csv_line(rows.customer(2)) + ",surplus", _csv_line(rows.customer(3))],
    )
    jsonl_path = parents / "customers__lines.jsonl"
    jsonl_path.write_bytes(
        orjson.dumps(rows.customer(4, language=["zh"]))
        + b'\n{"customer_code": "CUST_0005", \n'  # not JSON
        + b'["CUST_0006"]\n'  # JSON, no object
        + orjson.dumps(rows.customer(7, language=["zh"]))
        + b"\n"
    )
    results = run_ingest(csv_path, jsonl_path)
    counts = {
        name: (r.status, r.rows_in, r.rows_loaded, r.rows_rejected, dict(r.reasons))
        for name, r in results.items()
    }
    assert counts == {
        "customers__fields.csv": ("loaded", 3, 2, 1, {"malformed_row": 1}),
        "customers__lines.jsonl": ("loaded", 4, 2, 2, {"malformed_row": 2}),
    }
    rejects = sql(
        "SELECT row_number, rule, reason, raw_row FROM funnelhouse.ingest_rejects ORDER BY path, row_number"
    )
    assert [(row, rule) for row, rule, _, _ in rejects] == [
        (2, "malformed_row"),
        (2, "malformed_row"),
        (3, "malformed_row"),
    ]
    assert rejects[0][2] == f"{len(CUSTOMER_COLUMNS) + 1} fields where the header has {len(CUSTOMER_COLUMNS)}"
    assert rejects[0][3] == {"_raw_text": _csv_line(rows.customer(2)) + ",surplus"}
    assert rejects[1][2].startswith("line is not JSON")
    assert rejects[1][3] == {"_raw_text": '{"customer_code": "CUST_0005", '}
    assert (rejects[2][2], rejects[2][3]) == (
        "line is a JSON array, not an object",
        {"_raw_text": '["CUST_0006"]'},
    )
    assert sql("SELECT customer_code FROM customers ORDER BY 1") == [
        ("CUST_0001",),
        ("CUST_0003",),
        ("CUST_0004",),
        ("CUST_0007",),
    ]


def test_a_jsonl_line_past_the_limit_is_quarantined_unread_with_a_capped_raw_text(
    parents, run_ingest, sql, monkeypatch
):
    """A JSON array export saved as .jsonl is one line of hundreds of MB: it was read whole and its
    whole text went into raw_row, which PostgreSQL refuses past 256 MB (the run ended there). A
    line longer than MAX_ROW_BYTES is quarantined without being held whole, and raw_row keeps the
    first MAX_RAW_TEXT_CHARS of a malformed row's text and its length (both limits small here);
    the rest of the file and the next file of the run load."""
    monkeypatch.setattr(jsonl_reader, "MAX_ROW_BYTES", 4096)
    monkeypatch.setattr(chunk_writer, "MAX_RAW_TEXT_CHARS", 100)
    array = b"[" + b",".join([b'"' + b"x" * 998 + b'"'] * 3000) + b"]\n"  # 3 MB, past a read block
    not_json = b'{"customer_code": "CUST_0003", ' + b"y" * 500
    path = parents / "customers__array.jsonl"
    path.write_bytes(
        orjson.dumps(rows.customer(1, language=["zh"]))
        + b"\n"
        + array
        + not_json
        + b"\n"
        + orjson.dumps(rows.customer(4, language=["zh"]))
        + b"\n"
    )
    after = rows.write(parents, "customers", "later", [rows.customer(5)], "jsonl")

    results = run_ingest(path, after)
    loaded = results[path.name]
    assert (loaded.status, loaded.rows_in, loaded.rows_loaded, loaded.reasons) == (
        "loaded",
        4,
        2,
        {"malformed_row": 2},
    )
    assert results[after.name].status == "loaded"
    rejects = sql("SELECT row_number, reason, raw_row FROM funnelhouse.ingest_rejects ORDER BY row_number")
    assert [(row, reason) for row, reason, _ in rejects][0] == (2, "line longer than 4096 bytes")
    assert rejects[0][2] == {"_raw_text": array[:100].decode(), "_raw_text_length": 4096}
    assert rejects[1][1].startswith("line is not JSON")
    assert rejects[1][2] == {"_raw_text": not_json[:100].decode(), "_raw_text_length": len(not_json)}
    assert sql("SELECT customer_code FROM customers ORDER BY 1") == [
        ("CUST_0001",),
        ("CUST_0004",),
        ("CUST_0005",),
    ]


def test_a_jsonl_line_giving_a_key_twice_is_quarantined(landing, run_ingest, sql):
    """A decoder keeps a key's last value: a line giving "name" twice loaded as its second tag (the
    first lost without a word), one giving "description" twice stored the second text. Such a line
    is quarantined naming the key (as a CSV naming a column twice is refused); a line only looking
    like one (blanks before its colons, a value that is a key's name) loads."""
    tail = '"category": "c", "created_at": "2025-01-01 09:00:00"}'
    lines = [
        '{"name": "jd_a", "description": "first", "description": "second", ' + tail,
        '{"name": "jd_b", "name": "jd_c", ' + tail,
        '{"name" : "jd_d", "description" : "name", "category" : "c", "created_at" : "2025-01-01 09:00:00"}',
        '{"name" : "jd_e", "name" : "jd_f", ' + tail,
        '{"name": "jd_g", "description": "say \\"name\\": hi", ' + tail,
    ]
    path = landing / "tags__twice.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = run_ingest(path)[path.name]
    assert (result.status, result.rows_in, result.rows_loaded, result.rows_rejected) == ("loaded", 5, 2, 3)
    assert result.reasons == {"malformed_row": 3}
    rejects = sql(
        "SELECT row_number, rule, reason, raw_row FROM funnelhouse.ingest_rejects ORDER BY row_number"
    )
    assert [(row, rule, reason) for row, rule, reason, _ in rejects] == [
        (n, "malformed_row", f"key(s) given more than once: {key} (all but the last value would be lost)")
        for n, key in ((1, "description"), (2, "name"), (4, "name"))
    ]
    assert [raw for _, _, _, raw in rejects] == [{"_raw_text": lines[n]} for n in (0, 1, 3)]
    assert sql("SELECT name, description FROM tags ORDER BY name") == [
        ("jd_d", "name"),
        ("jd_g", 'say "name": hi'),
    ]


def test_columns_outside_the_contract_refuse_the_file(parents, run_ingest, sql):
    """A CSV or Parquet column the contract does not have would lose its values: the file is
    refused with the names (as a JSONL row with such keys is quarantined), nothing loaded."""
    csv_path = rows.write(parents, "customers", "extra", [rows.customer(1), rows.customer(2)])
    header, *data = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([header + ",Country,name", *(line + ",FR,x" for line in data)]) + "\n")
    parquet_path = rows.write(parents, "customers", "extra", [rows.customer(3)], "parquet")
    table = pq.read_table(parquet_path)
    pq.write_table(table.append_column("id", pa.array(["7"])), parquet_path)

    results = run_ingest(csv_path, parquet_path)
    csv_result, parquet_result = results["customers__extra.csv"], results["customers__extra.parquet"]
    assert csv_result.status == parquet_result.status == "failed"
    assert "column(s) outside the customers contract: Country;" in csv_result.error
    assert "column(s) named more than once: name" in csv_result.error
    assert "column(s) outside the customers contract: id." in parquet_result.error
    assert "Nothing was loaded" in parquet_result.error
    assert sql("SELECT count(*) FROM customers") == [(0,)]
    assert sql(
        "SELECT status, count(*) FROM funnelhouse.ingest_files WHERE table_name = 'customers' GROUP BY 1"
    ) == [("failed", 2)]


def test_the_pandas_index_of_a_parquet_file_is_no_column(tmp_path):
    frame = pd.DataFrame([rows.customer(1), rows.customer(2)], index=[7, 3]).astype("string")
    path = tmp_path / "customers__pandas.parquet"
    frame.to_parquet(path)  # a non-range index: written as column __index_level_0__
    assert "__index_level_0__" in pq.read_schema(path).names
    assert [f["customer_code"].tolist() for f in _read(path)] == [["CUST_0001", "CUST_0002"]]
