"""The JSONL reader: a file of JSON objects, one a line, read in blocks of lines (bounded memory,
a too-long line quarantined unread); a line that is no object, or gives a key twice, is
quarantined, and keys outside the contract are handed over for validation."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from typing import NoReturn

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.contracts import CONTRACTS
from ingestion.load.landing import LandingFile
from ingestion.load.readers.json_text import WrittenNumber, exact_json, json_dumps, jsonl_value_text
from ingestion.load.readers.shared import (
    MAX_ROW_BYTES,
    Chunk,
    LandingFileError,
    MalformedRow,
    check_not_empty,
    first_line,
    size_in_words,
)

# A JSONL file is read in blocks of this size and cut into lines (see _jsonl_lines).
_JSONL_READ_BYTES = 1024 * 1024

# A JSONL row's keys outside the contract (a misspelled "Country"), as a JSON object: an extra
# column of the chunks that have any, so validation quarantines those rows with them instead of
# the row loading without their values. CSV and Parquet name their columns once, in the header
# or schema, where a column outside the contract fails the file (see require_columns).
UNKNOWN_KEYS = "_unknown_keys"
_UTF8_BOM = b"\xef\xbb\xbf"

_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    WrittenNumber: "number",
    bool: "boolean",
    type(None): "null",
}


class _MalformedLine(Exception):
    """A JSONL line without a JSON object: raised rather than returned, so that a good line costs
    no check at all (a ``try`` is free in Python 3.11 until something is raised)."""

    def __init__(self, row: MalformedRow):
        self.row = row


# A JSON number whose jsonb value a double would change (orjson reads numbers as doubles and writes
# them back in their shortest form, while jsonb keeps the digits written): one with an exponent
# (jsonb reads 1e2 as 100, the double writes 100.0), a fraction ending in 0 (1.10), 19 digits or
# more (beyond 64 bits), or a fraction and 16 digits or more (more than a double holds). And for a
# text column (system_settings.value), where the number is stored as text: one below 1e-4 written
# without an exponent (Python writes the double 0.00001 as 1e-05) and -0 (an integer 0). Any other
# number comes back with the digits it was written with. Looked for only where a number can start
# (after a key's '":', "," or "["; not in a time such as "10:00:00.100"): a string that looks like
# one only costs an exact decoding.
# RE2 (Arrow's), over a chunk's lines at once: Python's re takes 10 us on a 500-byte line, longer
# than orjson's parse of it.
_CHANGED_BY_A_DOUBLE = (
    r'(?:"[ \t\r\n]*:|[,\[])[ \t\r\n]*(?:-0(?:[^0-9.]|$)|-?(?:0\.0000|'
    r"[0-9]{19}|[0-9]+(?:\.[0-9]+)?[eE]|[0-9]+\.[0-9]*[0-9]0(?:[^0-9]|$)|"
    + "|".join([r"[0-9]{16,}\."] + [rf"[0-9]{{{n}}}\.[0-9]{{{16 - n}}}" for n in range(1, 16)])
    + "))"
)


def _changed_by_a_double(lines: list[bytes]) -> list[bool]:
    """Whether each line holds a number matching :data:`_CHANGED_BY_A_DOUBLE`."""
    found = pc.match_substring_regex(pa.array(lines, pa.binary()), _CHANGED_BY_A_DOUBLE)
    return found.to_numpy(zero_copy_only=False).tolist()


def _keys_given_twice(line: bytes, record: dict) -> list[str]:
    """The keys the line's object (``record``, as read) gives more than once, for a line holding
    another number of ``":`` than the object has keys (see :func:`_jsonl_record`).

    A decoder (orjson, Python's, PostgreSQL's jsonb) keeps a key's last value, so only a decoding
    keeping every pair tells; it runs only if one of the object's keys, quoted, is written twice
    in the line (a nested object or a ``\\":`` in a text also make more ``":``, a blank before a
    colon fewer). Keys of nested objects are not looked at: jsonb keeps their last value itself.
    A key written with \\u escapes (which no writer does to an ASCII name) is not seen twice.
    """
    if not any(line.count(orjson.dumps(key)) > 1 for key in record):
        return []
    try:
        pairs = json.loads(line, object_pairs_hook=list)  # the object's (key, value) pairs
    except (ValueError, RecursionError):  # no JSON to Python's decoder: orjson's reading stands
        return []
    return [key for key, count in Counter(key for key, _ in pairs).items() if count > 1]


def _exact_record(line: bytes, orjson_refused: bool):
    """The line decoded with its numbers as written (:class:`WrittenNumber`), None if that finds
    no JSON. Where orjson refused the line, only for a number (1e400, which jsonb keeps): a line
    this decoder takes but orjson refused for a lone surrogate (\\ud800, which neither UTF-8 nor
    PostgreSQL holds) is no JSON here either."""
    try:
        record = exact_json(line.decode(), WrittenNumber)
        if orjson_refused:
            json_dumps(record)  # refuses a lone surrogate
    except (ValueError, TypeError):  # a UnicodeDecodeError, JSONDecodeError or orjson's JSONEncodeError
        return None
    return record


def _jsonl_record(file: LandingFile, line: bytes, line_number: int, changed_by_a_double: bool) -> dict:
    """The line's JSON object; :class:`_MalformedLine` with the line if it holds none.

    orjson reads it, unless it holds a number a double would change (``changed_by_a_double``, see
    :data:`_CHANGED_BY_A_DOUBLE`) or one orjson refuses: then the numbers are kept as written, so
    that jsonb stores what it would from the line's text.

    An object giving a key twice (``{"name": "a", "name": "b"}``) is malformed too: a decoder keeps
    the last value, so the row would load without the first one (a business key among them) and
    nobody would know; a CSV naming a column twice is refused for the same reason. Every writer
    puts a key's closing quote right before its colon, so a line holding as many ``":`` as the
    object has keys gives none twice: only the other lines are looked at further (a count costs a
    few percent of a line's reading, :func:`_keys_given_twice` several times its parse).

    Not a file-level failure: one bad line is quarantined and the rest of the file loads. Two
    exceptions fail the file, as a CSV's would: a last line without a line break that is not
    JSON (the file was cut off in transfer) and a line that is not UTF-8 (its text cannot be kept).
    """
    if line_number == 1:
        line = line.removeprefix(_UTF8_BOM)  # Windows tools write one; CSV's header drops it too
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        record = _exact_record(line, orjson_refused=True)
        if record is None:
            _not_json(file, line, line_number, str(error))
    else:
        if changed_by_a_double:
            record = _exact_record(line, orjson_refused=False)
            if record is None:  # nested deeper than Python's decoder goes
                _not_json(file, line, line_number, "not JSON to an exact decoder")
    if not isinstance(record, dict):
        kind = _JSON_KINDS.get(type(record), type(record).__name__)
        raise _MalformedLine(
            MalformedRow(line_number, f"line is a JSON {kind}, not an object", line.decode().rstrip("\r\n"))
        )
    if line.count(b'":') != len(record) and (twice := _keys_given_twice(line, record)):
        raise _MalformedLine(
            MalformedRow(
                line_number,
                f"key(s) given more than once: {', '.join(twice)} (all but the last value would be lost)",
                line.decode().rstrip("\r\n"),
            )
        )
    return record


def _not_json(file: LandingFile, line: bytes, line_number: int, error: str) -> NoReturn:
    """Quarantine the line as no JSON (:class:`_MalformedLine`), or fail the file where its last
    line was cut off in transfer or a line is not UTF-8."""
    if not line.endswith(b"\n"):  # the last line, without a line break: cut off in transfer
        raise LandingFileError(file, f"truncated: the last line ({line_number}) is incomplete JSON")
    try:
        text = line.decode()
    except UnicodeDecodeError as not_utf8:
        raise LandingFileError(
            file, f"line {line_number} is not UTF-8 ({not_utf8.reason} at byte {not_utf8.start})"
        ) from not_utf8
    raise _MalformedLine(MalformedRow(line_number, f"line is not JSON: {error}", text.rstrip("\r\n")))


def _unknown_keys(record: dict, columns: frozenset[str]) -> str | None:
    """The record's keys outside the contract with their values, as JSON (None if none)."""
    if record.keys() <= columns:
        return None
    return json_dumps({key: value for key, value in record.items() if key not in columns})


def jsonl_chunks(file: LandingFile, columns: list[str], chunk_bytes: int) -> Iterator[Chunk]:
    contract = CONTRACTS[file.table]
    json_columns = {c.name for c in contract.columns if c.kind == "json"}
    int_columns = {c.name for c in contract.columns if c.kind == "int"}
    known = frozenset(columns)
    with file.open() as handle:
        check_not_empty(file, handle)
        first_line(file, handle)  # refuses a UTF-16 file
        for lines, line_numbers, malformed in _jsonl_blocks(handle, chunk_bytes):
            rows: dict[str, list] = {c: [] for c in (*columns, UNKNOWN_KEYS)}
            numbers: list[int] = []
            changed = _changed_by_a_double(lines)
            for line, line_number, exact in zip(lines, line_numbers, changed, strict=True):
                try:
                    record = _jsonl_record(file, line, line_number, exact)
                except _MalformedLine as bad:
                    malformed.append(bad.row)
                    continue
                try:
                    values = [
                        jsonl_value_text(record.get(column), column in json_columns, column in int_columns)
                        for column in columns
                    ]
                    unknown = _unknown_keys(record, known)
                except orjson.JSONEncodeError as error:  # read, but nested deeper than orjson writes
                    text = line.decode().rstrip("\r\n")
                    malformed.append(MalformedRow(line_number, f"line's JSON cannot be kept: {error}", text))
                    continue
                for column, value in zip(columns, values, strict=True):
                    rows[column].append(value)
                rows[UNKNOWN_KEYS].append(unknown)
                numbers.append(line_number)
            yield Chunk(_text_frame(rows, numbers), malformed)


def _jsonl_blocks(handle, chunk_bytes: int) -> Iterator[tuple[list[bytes], list[int], list[MalformedRow]]]:
    """The file's lines in blocks of about ``chunk_bytes``, with their line numbers, and the
    block's lines longer than :data:`MAX_ROW_BYTES`, as malformed rows (the first
    ``MAX_ROW_BYTES`` their text); a blank line is no row (row numbers stay line numbers)."""
    lines: list[bytes] = []
    numbers: list[int] = []
    too_long: list[MalformedRow] = []
    size = 0
    for line_number, line in enumerate(_jsonl_lines(handle), start=1):
        if len(line) > MAX_ROW_BYTES:
            text = line[:MAX_ROW_BYTES].decode(errors="replace").rstrip("\r\n")
            too_long.append(
                MalformedRow(line_number, f"line longer than {size_in_words(MAX_ROW_BYTES)}", text)
            )
        elif not line.strip():
            continue
        else:
            lines.append(line)
            numbers.append(line_number)
        size += len(line)
        if size >= chunk_bytes:
            yield lines, numbers, too_long
            lines, numbers, too_long, size = [], [], [], 0
    if lines or too_long:
        yield lines, numbers, too_long


def _jsonl_lines(handle) -> Iterator[bytes]:
    """Each line of the file, with its line break, without holding more than about
    :data:`MAX_ROW_BYTES` of one: a longer line comes cut to its first ``MAX_ROW_BYTES + 1``
    bytes (so its length still tells it), the rest of it skipped.

    Cut here, from blocks, rather than by ``readline(limit)``: fsspec's remote files (S3) take no
    limit there, and a line read whole may be gigabytes (a JSON array export saved as .jsonl).
    """
    carry = b""  # the start of a line whose end has not been read yet
    while data := handle.read(_JSONL_READ_BYTES):
        buffer = carry + data if carry else data
        end = buffer.rfind(b"\n") + 1
        yield from io.BytesIO(buffer[:end])
        carry = buffer[end:]
        if len(carry) > MAX_ROW_BYTES:
            yield carry[: MAX_ROW_BYTES + 1]
            carry = _after_line(handle)
    yield from io.BytesIO(carry)  # the lines after the last line break read


def _after_line(handle) -> bytes:
    """Reads past the end of the current line: what follows its line break in the last block
    read (nothing at the end of the file)."""
    while data := handle.read(_JSONL_READ_BYTES):
        end = data.find(b"\n") + 1
        if end:
            return data[end:]
    return b""


def _text_frame(rows: dict[str, list], numbers: list[int]) -> pd.DataFrame:
    """A JSONL chunk's columns; :data:`UNKNOWN_KEYS` only if some row has such keys."""
    if not any(rows[UNKNOWN_KEYS]):
        rows = {name: values for name, values in rows.items() if name != UNKNOWN_KEYS}
    return pd.DataFrame(
        {name: pd.array(values, dtype="str") for name, values in rows.items()}, index=pd.Index(numbers)
    )
