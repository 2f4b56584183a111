"""The Parquet reader: a file's row groups read in batches, each column as landing text (nested
values as JSON, timestamps as PostgreSQL keeps them, "" as missing)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion.load.landing import LandingFile
from ingestion.load.readers.json_text import number_text
from ingestion.load.readers.shared import Chunk, LandingFileError, numbered, require_columns


def _parquet_text(name: str, column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_timestamp(column.type) and (column.type.unit == "ns" or column.type.tz):
        # pandas and Spark write nanoseconds; PostgreSQL keeps microseconds, so the text carries
        # those (truncated, as Arrow casts) rather than 9 fraction digits for PostgreSQL to round.
        # A zoned column holds UTC instants: dropping the zone leaves them as UTC text.
        unit = "us" if column.type.unit == "ns" else column.type.unit
        column = column.cast(pa.timestamp(unit), safe=False)
    try:
        return column.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as error:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            # Bytes are text only as UTF-8 (which the cast checks): the file fails naming the
            # column, as a CSV that is not UTF-8 does.
            raise pa.ArrowInvalid(f"column {name} holds bytes that are not UTF-8 text ({error})") from error
    # Nested values: kept as JSON text, a map as the object it stands for (not a list of [key,
    # value] pairs). One holding what JSON cannot write (bytes that are no text), or a map naming
    # a key twice, fails the file with the column's name rather than ending the run.
    try:
        values = column.to_pylist(maps_as_pydicts="strict")
        return pa.array([None if v is None else _nested_json(v) for v in values], pa.string())
    except (TypeError, KeyError) as error:
        raise pa.ArrowInvalid(
            f"column {name} holds values that are neither text nor JSON ({error})"
        ) from error


def _empty_as_null(column: pa.Array) -> pa.Array:
    """A Parquet text column with "" as null: missing, as CSV's empty field. Copied only when it
    holds one (a conversations file's content column is most of the chunk's memory)."""
    empty = pc.equal(column, "")
    if not pc.any(empty).as_py():
        return column
    return pc.if_else(empty, pa.scalar(None, column.type), column)


def _nested_json(value) -> str:
    """A nested Parquet value as JSON text. A float NaN or infinity, which JSON (and jsonb) has no
    word for, is written as Python's json writes it (NaN, Infinity): no JSON, so validation
    quarantines the row, where orjson would write null and change the value unnoticed."""
    if _holds_non_finite(value):
        return json.dumps(value, ensure_ascii=False, default=str)
    # A map's keys need not be text (map<int64, _>): JSON's object keys are, so 7 becomes "7".
    return orjson.dumps(value, default=number_text, option=orjson.OPT_NON_STR_KEYS).decode()


def _holds_non_finite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_holds_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_non_finite(item) for item in value)
    return False


def _parquet_data_columns(schema: pa.Schema) -> list[str]:
    """The Parquet file's columns, without the pandas index ``DataFrame.to_parquet`` writes as a
    column (``__index_level_0__``): row labels of the writer's frame, not landing data."""
    index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
    return [name for name in schema.names if name not in index]


def parquet_chunks(file: LandingFile, columns: list[str], chunk_bytes: int) -> Iterator[Chunk]:
    with file.open() as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError) as error:
            raise LandingFileError(file, f"not a readable Parquet file: {error}") from error
        require_columns(file, _parquet_data_columns(parquet.schema_arrow), columns)
        meta = parquet.metadata
        row_bytes = max(
            1,
            sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            // max(1, meta.num_rows),
        )
        next_row = 1
        for batch in parquet.iter_batches(batch_size=max(1000, chunk_bytes // row_bytes), columns=columns):
            table = pa.table(
                {name: _empty_as_null(_parquet_text(name, batch.column(name))) for name in columns}
            )
            yield Chunk(numbered(table.to_pandas(), next_row))
            next_row += batch.num_rows
