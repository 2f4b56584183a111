"""Audit of values on their way into PostgreSQL: what Python's checks let through must be what
PostgreSQL takes, and a file the readers cannot decode fails alone, recorded, never ending the run."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ingestion.load.landing import landing_file
from ingestion.load.readers import read_chunks
from orchestration.cli import app
from tests.ingestion import landing_rows as rows


def test_boolean_words_are_matched_in_ascii_only(landing, run_ingest, sql):
    """Python's case-insensitive match folds 'ſ' (long s) to 's' and took 'yeſ' and 'falſe' for
    booleans; PostgreSQL refuses them, which failed the whole file instead of the two rows."""
    batch = [rows.tag(1, is_system="YES"), rows.tag(2, is_system="yeſ"), rows.tag(3, is_system="falſe")]
    result = run_ingest(rows.write(landing, "tags", "fold", batch))["tags__fold.csv"]
    assert (result.status, result.rows_loaded, result.reasons) == ("loaded", 1, {"type:is_system": 2})
    assert sql("SELECT name, is_system FROM tags") == [("标签1", True)]


def _parquet_with_column(path, column: str, values: pa.Array) -> None:
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, values), path)


def test_an_undecodable_parquet_file_fails_alone_and_the_run_goes_on(landing, run_ingest, sql):
    """A binary column holding bytes that are no UTF-8, and a data page that does not decompress:
    each file is recorded as failed with the reason, and the run's other files load (both used to
    end the whole run with an exception, the file not in the ledger)."""
    binary = rows.write(landing, "tags", "binary", [rows.tag(1)], "parquet")
    _parquet_with_column(binary, "description", pa.array([b"\xff\xfe"], pa.binary()))
    corrupt = rows.write(
        landing,
        "tags",
        "corrupt",
        [rows.tag(n, description=f"{'x' * 50}{n}") for n in range(2, 2000)],
        "parquet",
    )
    data = bytearray(corrupt.read_bytes())
    for position in range(200, len(data) // 2, 7):
        data[position] ^= 0x5A
    corrupt.write_bytes(bytes(data))
    good = rows.write(landing, "tags", "good", [rows.tag(9000)])

    results = run_ingest(binary, corrupt, good)
    assert {name: r.status for name, r in results.items()} == {
        "tags__binary.parquet": "failed",
        "tags__corrupt.parquet": "failed",
        "tags__good.csv": "loaded",
    }
    assert "description" in results["tags__binary.parquet"].error
    assert "UTF-8" in results["tags__binary.parquet"].error
    assert sql("SELECT name FROM tags") == [("标签9000",)]
    assert sql("SELECT path ~ 'parquet$', status FROM funnelhouse.ingest_files ORDER BY id") == [
        (True, "failed"),
        (True, "failed"),
        (False, "loaded"),
    ]


def test_a_jsonl_number_in_a_text_column_is_stored_as_written(landing, run_ingest, sql):
    """system_settings.value is text: a number written natively is kept with its digits. Read as a
    double, 0.00001 came back as '1e-05' and -0 as '0'."""
    written = ["0.00001", "-0.000012", "-0", "0.0001", "1.10", "12345678901234567890"]
    path = landing / "system_settings__numbers.jsonl"
    path.write_text("".join(f'{{"key": "k{n}", "value": {value}}}\n' for n, value in enumerate(written)))
    result = run_ingest(path)[path.name]
    assert (result.status, result.rows_loaded) == ("loaded", len(written))
    assert sql("SELECT value FROM system_settings ORDER BY key") == [(value,) for value in written]


def test_a_chunk_size_below_one_byte_is_refused_not_a_file_of_no_rows(landing):
    """CSV blocks of 0 bytes read nothing: the file was recorded as loaded with no rows (and its
    content then as a duplicate on every later run)."""
    path = rows.write(landing, "tags", "zero", [rows.tag(1)])
    result = CliRunner().invoke(app, ["ingest", "--chunk-bytes", "0", str(path)])
    assert result.exit_code == 2, result.output
    assert "--chunk-bytes" in result.output
    with pytest.raises(ValueError, match="chunk_bytes"):
        list(read_chunks(landing_file(str(path)), 0))


def test_a_key_outside_the_contract_holding_a_nul_is_quarantined(landing, run_ingest, sql):
    """The reason names the unknown keys: a NUL in one (written \\u0000) went into the reason's
    text, which PostgreSQL cannot hold, and failed the whole file instead of the row."""
    path = landing / "tags__nulkey.jsonl"
    good = '{"name": "t1", "category": "c", "created_at": "2025-01-01 09:00:00"}\n'
    bad = '{"name": "t2", "category": "c", "created_at": "2025-01-01 09:00:00", "x\\u0000y": 1}\n'
    path.write_text(good + bad)
    result = run_ingest(path)[path.name]
    assert (result.status, result.rows_loaded, result.reasons) == ("loaded", 1, {"unknown_keys": 1})
    [(reason,)] = sql("SELECT reason FROM funnelhouse.ingest_rejects")
    assert "x\ufffdy" in reason


def test_a_header_naming_a_column_with_a_nul_fails_the_file_recorded(landing, run_ingest, sql):
    """The file's error names the columns outside the contract: a NUL in one made recording the
    failure itself fail, ending the run with the file not in the ledger."""
    path = rows.write(landing, "tags", "nulcolumn", [rows.tag(1)])
    header, data = path.read_text().split("\n", 1)
    path.write_text(f"{header},extra\x00column\n{data.rstrip()},x\n")
    result = run_ingest(path)[path.name]
    assert result.status == "failed" and "extra\ufffdcolumn" in result.error
    [(error,)] = sql("SELECT error FROM funnelhouse.ingest_files WHERE status = 'failed'")
    assert "extra\ufffdcolumn" in error


def test_a_parquet_map_in_a_json_column_is_stored_as_an_object(landing, run_ingest, sql):
    """Spark writes a map<string, _> for a JSON object: it was stored as an array of [key, value]
    pairs. Non-text keys become JSON's text keys; keys repeated in one map fail the file (which
    value did the exporter mean?)."""
    course = rows._landing_row(
        "training_courses",
        {},
        course_code="C1",
        title="course",
        course_type="7天上手",
        created_at="2025-01-01 09:00:00",
    )
    maps = {
        "strings": pa.array([[("a", 1), ("b", 2)]], pa.map_(pa.string(), pa.int64())),
        "numbers": pa.array([[(7, "x")]], pa.map_(pa.int64(), pa.string())),
        "repeated": pa.array([[("a", 1), ("a", 2)]], pa.map_(pa.string(), pa.int64())),
    }
    paths = {}
    for order, (name, values) in enumerate(maps.items()):  # batches newest last, as each replaces content
        paths[name] = rows.write(landing, "training_courses", f"{order}_{name}", [course], "parquet")
        _parquet_with_column(paths[name], "content", values)
    first = run_ingest(paths["strings"])[paths["strings"].name]
    assert (first.status, first.rows_loaded) == ("loaded", 1)
    assert sql("SELECT content FROM training_courses") == [({"a": 1, "b": 2},)]
    second = run_ingest(paths["numbers"])[paths["numbers"].name]
    assert (second.status, second.rows_loaded) == ("loaded", 1)
    assert sql("SELECT content FROM training_courses") == [({"7": "x"},)]
    repeated = run_ingest(paths["repeated"])[paths["repeated"].name]
    assert repeated.status == "failed" and "content" in repeated.error
