"""Streaming readers: a landing file as row-numbered chunks of text values, in bounded memory.

Every format is turned into the same thing, a pandas frame per chunk whose index is the 1-based
row number in the file (the data row for CSV - the header is not counted - the line for JSONL,
the row for Parquet) and whose values are the landing text (null = missing). Text rather than
typed values because validation must see what was written ("12x" is a type error to report, not
a parse failure to crash on), and because text is what COPY consumes anyway.

An empty text is missing in every format. CSV has no other way to write a missing value (an
empty field, quoted or not, is NULL), so a JSONL or Parquet "" means the same: the same data gets
the same verdict (a required column quarantines the row, a defaulted one takes its DEFAULT, an
optional one is NULL, never '') whatever the format (:func:`_json_text`, :func:`_empty_as_null`).

Whole-file problems raise :class:`LandingFileError` naming the file: bad encoding, a file that
stops mid-row (truncated), a CSV row longer than :data:`MAX_ROW_BYTES` (most often a field whose
opening quote is never closed, making the rest of the file one field), a header lacking the
contract's columns (not a CSV of that table) or naming columns outside it, an unreadable Parquet
footer; where the cause is a common one (a GBK or UTF-16 export, an upper-case header, lines
ending in CR), the message says what to do. Row-level problems are quarantined, not fatal: a row the reader
cannot split into the header's columns (a CSV row with another number of fields or with a quote
inside a quoted field that is not doubled or other text after its closing quote, a JSONL line
that is no JSON object, gives a key twice or is longer than :data:`MAX_ROW_BYTES`) comes out as a
:class:`MalformedRow` of its chunk, with its row number and raw text; a JSONL row's keys outside
the contract are handed over in :data:`UNKNOWN_KEYS` for validation to quarantine.

A JSONL number reaches PostgreSQL as written: jsonb keeps a number's digits (1.10 stays 1.10,
12345678901234567890123 stays exact), which a double would change, so a line holding such a
number is decoded again with its numbers kept as text (see :func:`_jsonl_record`).
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NoReturn

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ingestion.contracts import CONTRACTS
from ingestion.load.landing import LandingFile

# Chunks are cut by size, not row count: memory per chunk is then the same for a 200-byte
# conversation and a 2 KB one, while a chunk stays big enough (~35k thin rows) that the fixed cost
# of a great-expectations run per chunk stays small next to the rows' own cost.
CHUNK_BYTES = 8 * 1024 * 1024

# The longest row a reader holds. A CSV row (or JSONL line) is read whole, so without a limit one
# quoted field whose closing quote never comes (`"Big deal,` in a notes column) makes the rest of
# the file one row, held in memory and scanned again with every block: a multi-GB file then runs
# out of memory, the run dies and the file is never recorded (a JSON array export saved as .jsonl
# is one such line). No landing row comes near 64 MiB (a conversation is a few KB): a longer CSV
# row fails the file naming its row and line (where it ends is in doubt); a longer JSONL line, whose
# end is not, is quarantined as malformed without being held whole and the rest of the file loads.
# Tests make it small.
MAX_ROW_BYTES = 64 * 1024 * 1024
# A JSONL file is read in blocks of this size and cut into lines (see _jsonl_lines).
_JSONL_READ_BYTES = 1024 * 1024

# A JSONL row's keys outside the contract (a misspelled "Country"), as a JSON object: an extra
# column of the chunks that have any, so validation quarantines those rows with them instead of
# the row loading without their values. CSV and Parquet name their columns once, in the header
# or schema, where a column outside the contract fails the file (see _require_columns).
UNKNOWN_KEYS = "_unknown_keys"
_UTF8_BOM = b"\xef\xbb\xbf"

# The rule of a row the reader could not split into columns (see MalformedRow).
MALFORMED_ROW = "malformed_row"

# What a file holding UTF-16 looks like: its byte-order mark, or (without one) a NUL byte in its
# first two: a header and a JSONL line start with an ASCII character, which UTF-16 writes with a
# NUL byte (a UTF-8 text never holds one there).
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF16_PROBLEM = (
    'the file is UTF-16 (Excel\'s "Unicode Text" and PowerShell write it), not UTF-8: save it as UTF-8 '
    '(Excel: "CSV UTF-8") and drop it again. Nothing was loaded'
)

# What a CSV that is not UTF-8 most likely is, and what to do.
_NOT_UTF8_HINT = (
    'the file is not UTF-8 (most likely GBK/GB18030, as Excel saves "CSV"): save it as "CSV UTF-8" '
    "and drop it again"
)

# RFC 4180 as pyarrow parses it: only a quote opening a field starts a quoted field (a quote
# anywhere else is text, as in `a 5" screen`); inside one, "" is a quote and a lone quote ends it
# (pyarrow keeps what follows, up to the delimiter, as text). CR, LF and CRLF end a row.
_CSV_QUOTED = rb'"(?:[^"]++|"")*+"'
_CSV_FIELD = rb'(?>%s|(?!"))[^,\r\n]*+' % _CSV_QUOTED
_CSV_ROW = rb"%s(?:[,\r]%s)*+" % (_CSV_FIELD, _CSV_FIELD)
_CSV_WHOLE_ROWS = re.compile(rb"(?:%s\n)*+" % _CSV_ROW)
_CSV_LAST_ROW = re.compile(_CSV_ROW + rb"\Z")
_CSV_ROW_START = re.compile(_CSV_ROW)
# The same, as RFC 4180 writes it: a quoted field's closing quote is followed by the delimiter or
# the row's end, never by more text. pyarrow keeps such text (`"5" screen"` becomes `5 screen"`, a
# MySQL export's `"say \"hi\""` loses a backslash's quote), changing the value without a word: the
# blocks are cut with this grammar instead (no second scan of a clean block), and a block where it
# stops short of the lenient one holds a misquoted row (see _csv_blocks, _without_misquoted_rows).
_CSV_STRICT_FIELD = rb'(?>%s|(?!")[^,\r\n]*+)' % _CSV_QUOTED
_CSV_STRICT_ROW = rb"%s(?:[,\r]%s)*+" % (_CSV_STRICT_FIELD, _CSV_STRICT_FIELD)
_CSV_STRICT_WHOLE_ROWS = re.compile(rb"(?:%s\n)*+" % _CSV_STRICT_ROW)
_CSV_STRICT_LAST_ROW = re.compile(_CSV_STRICT_ROW + rb"\Z")
# One record as pyarrow splits them (CR, LF or CRLF ends it), strict or not; only read in blocks
# holding a misquoted row, or to locate a parse error.
_CSV_RECORD = re.compile(rb"%s(?:,%s)*+" % (_CSV_FIELD, _CSV_FIELD))
_CSV_STRICT_RECORD = re.compile(rb"%s(?:,%s)*+" % (_CSV_STRICT_FIELD, _CSV_STRICT_FIELD))
_CSV_RECORD_END = re.compile(rb"\r\n?|\n")
_CSV_FIELD_START = re.compile(_CSV_FIELD)
_MISQUOTED = 'a quote inside a quoted field must be doubled ("")'
# A misquoted record whose only text after a closing quote is blanks (`"ok1" ,a`, as hand-edited or
# aligned exports write): told apart, as no quote in it needs doubling.
_CSV_BLANKS_AFTER_QUOTE_FIELD = rb'(?>%s[ \t]*+|(?!")[^,\r\n]*+)' % _CSV_QUOTED
_CSV_BLANKS_AFTER_QUOTE_RECORD = re.compile(
    rb"%s(?:,%s)*+" % (_CSV_BLANKS_AFTER_QUOTE_FIELD, _CSV_BLANKS_AFTER_QUOTE_FIELD)
)
_BLANKS_AFTER_QUOTE = "text after a quoted field's closing quote (a space before the comma?)"


def _return_big_buffers_to_the_os() -> None:
    """Serve every allocation above 256 KiB with its own mmap (glibc only; elsewhere a no-op).

    glibc raises its mmap threshold after the first big free, so the following chunk-sized
    buffers (a CSV block, a column, the COPY text) come from the heap and the freed space is
    kept: RSS then creeps up by several chunks over a 1 GB file. A fixed threshold returns each
    chunk's memory when it is dropped, which is what keeps a load's memory flat.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


_return_big_buffers_to_the_os()


def _without_row(error: Exception) -> str:
    """Arrow's parse error without the row it quotes ("Expected 12 columns, got 13: <the row>"):
    a row holds contact details, and this message goes to logs and Dagster."""
    return re.sub(r"(Expected \d+ columns, got \d+):.*", r"\1", str(error), flags=re.DOTALL)


class LandingFileError(Exception):
    """The file as a whole cannot be read as a landing file of its table."""

    def __init__(self, file: LandingFile, problem: str):
        super().__init__(f"{file.url}: {problem}")
        self.file = file
        self.problem = problem


@dataclass(frozen=True)
class MalformedRow:
    """A row that cannot be read as the header's columns, kept whole for the rejects table."""

    row: int  # 1-based row number, numbered like the chunk's frame
    reason: str
    text: str  # the row as written (a CSV record, a JSONL line without its line break)


@dataclass
class Chunk:
    frame: pd.DataFrame  # landing columns as text, index = 1-based row numbers
    malformed: list[MalformedRow] = field(default_factory=list)  # rows of the chunk not in frame

    def __len__(self) -> int:
        """Rows of the file in this chunk, malformed ones included (rows in = loaded + rejected)."""
        return len(self.frame) + len(self.malformed)


def read_chunks(file: LandingFile, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Chunks (about ``chunk_bytes`` of file each) of the rows with the contract's landing columns
    (and :data:`UNKNOWN_KEYS` where JSONL rows carry others)."""
    if chunk_bytes < 1:  # a CSV read in blocks of 0 bytes would be a file of no rows
        raise ValueError(f"chunk_bytes must be at least 1, not {chunk_bytes}")
    columns = CONTRACTS[file.table].landing_columns
    reader = {"csv": _csv_chunks, "jsonl": _jsonl_chunks, "parquet": _parquet_chunks}[file.format]
    try:
        for chunk in reader(file, columns, chunk_bytes):
            yield chunk
            pa.default_memory_pool().release_unused()  # give freed Arrow buffers back (bounded RSS)
    except LandingFileError:
        raise
    except (pa.ArrowInvalid, UnicodeDecodeError, orjson.JSONDecodeError, csv.Error) as error:
        raise LandingFileError(file, f"not a readable {file.format} file: {_without_row(error)}") from error
    except OSError as error:
        # Arrow reports undecodable content (a Parquet page that does not decompress) as a plain
        # OSError without errno; the store's own failures (missing file, EIO, a network error
        # subclass) are not the file's content and still end the run, to be retried.
        if type(error) is not OSError or error.errno is not None:
            raise
        raise LandingFileError(file, f"not a readable {file.format} file: {error}") from error


# A name that can be a column's: what an error message may quote of a header.
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]{0,62}")


def _header_as_shown(present: list[str], columns: list[str]) -> str:
    """The header's names for an error message (which goes to logs and Dagster), as far as they can
    be column names. A file without a header has a data row there (a customer's name, phone number,
    WeChat id): if the line names none of the contract's columns it is not quoted at all, and a name
    of a real header that cannot be a column's is not either."""
    if not present:
        return "nothing"
    if not set(present) & set(columns):
        return (
            f"{len(present)} field(s), none a column of the {len(columns)} the contract names "
            f"({', '.join(columns[:3])}, ...): a file without a header line, or a header in other words "
            "(translated names?): the header must name the contract's columns as written there (the "
            "line is not quoted: it may be data)"
        )
    shown = [name if _COLUMN_NAME.fullmatch(name) else "(a name not shown)" for name in present[:8]]
    return ", ".join(shown) + (" ..." if len(present) > 8 else "")


def _require_columns(file: LandingFile, present: list[str], columns: list[str]) -> None:
    """The file's columns must be exactly the contract's, in any order.

    A missing column: not a file of this table. A column outside the contract (a misspelled
    "Country", a database ``id``) or one named twice: loading the others would silently drop its
    values, so the file is refused as a whole (nothing loaded, the file kept) with the names, as a
    JSONL row with such keys is quarantined. A whole-file error rather than every row quarantined:
    the fix is one edit of the header and a re-drop.
    """
    known = set(columns)
    miscased = [
        name
        for name in dict.fromkeys(present)
        if name not in known and name.lower() in known and name.lower() not in present
    ]
    if miscased:
        # Names are matched exactly (as PostgreSQL's unquoted ones are lower-case): say so, rather
        # than "missing column(s)" of a header that names them all. A name next to its lower-case
        # one ("Country" and "country") is a column outside the contract, told below.
        shown = ", ".join(f"{name} (write {name.lower()})" for name in miscased[:3])
        more = f" and {len(miscased) - 3} more" if len(miscased) > 3 else ""
        raise LandingFileError(
            file, f"column names must be lower-case, as in the contract: {shown}{more}. Nothing was loaded"
        )
    missing = [c for c in columns if c not in present]
    if missing:
        raise LandingFileError(
            file,
            f"not a {file.format} file of {file.table}: missing column(s) {', '.join(missing)} "
            f"(found: {_header_as_shown(present, columns)})",
        )
    named = _without_trailing_empty_names(present)
    unknown = [c or "(unnamed)" for c in dict.fromkeys(named) if c not in known]
    repeated = [c for c, n in Counter(named).items() if n > 1 and c]
    if unknown or repeated or len(named) < len(present):
        problems = []
        if len(named) < len(present):
            problems.append(
                f"{len(present) - len(named)} empty column name(s) at the end of the header "
                "(trailing commas?)"
            )
        if unknown:
            problems.append(f"column(s) outside the {file.table} contract: {', '.join(unknown)}")
        if repeated:
            problems.append(f"column(s) named more than once: {', '.join(repeated)}")
        raise LandingFileError(
            file,
            f"{'; '.join(problems)}. Nothing was loaded, as their values would be lost: "
            f"rename or remove them and drop the file again",
        )


def _without_trailing_empty_names(present: list[str]) -> list[str]:
    """The header's names without the empty ones it ends with: Excel writes a comma for every
    column it once held, making ``a,b,c,,,``."""
    named = list(present)
    while named and not named[-1]:
        named.pop()
    return named


def _check_not_empty(file: LandingFile, handle) -> None:
    """A file without a byte is no export (even one of no rows has a CSV header).

    A missing final line break is fine (RFC 4180 allows it); a row cut off in transfer shows
    in that last row itself (see :func:`_csv_blocks`, :func:`_jsonl_record`).
    """
    handle.seek(0, io.SEEK_END)
    if handle.tell() == 0:
        raise LandingFileError(file, "empty file (not even a header)")
    handle.seek(0)


def _numbered(frame: pd.DataFrame, first_row: int) -> pd.DataFrame:
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    return frame


# The most of a CSV file read for its header: the header is its first line, within this.
_HEADER_READ_BYTES = 1024 * 1024


def _first_line(file: LandingFile, handle) -> bytes:
    """The file's first line (up to :data:`_HEADER_READ_BYTES`), refused if the file is UTF-16.

    Cut from a bounded ``read`` rather than ``readline(limit)``: fsspec's remote files (S3, GCS,
    HTTP: ``AbstractBufferedFile``) take no limit there, and a file without a line break must not
    be read whole. Leaves the handle at the start of the file.

    UTF-16 is told first: its CRLF (``\\r\\0\\n\\0``) looks like a line ending in CR only, its
    header like names the contract does not have, its JSONL lines like text that is not UTF-8.
    """
    start = handle.read(_HEADER_READ_BYTES)
    end = start.find(b"\n")
    first_line = start if end < 0 else start[: end + 1]
    handle.seek(0)
    if first_line.startswith(_UTF16_BOMS) or b"\0" in first_line[:2]:
        raise LandingFileError(file, _UTF16_PROBLEM)
    return first_line


def _csv_header(file: LandingFile, handle) -> list[str]:
    """The header's column names: the file's first line (see :func:`_first_line`)."""
    first_line = _first_line(file, handle)
    if re.search(rb"\r(?!\n)", first_line):  # old Mac Excel; Python's csv asks "universal-newline mode?"
        raise LandingFileError(
            file, "lines end in CR only: save the file with LF or CRLF line endings and drop it again"
        )
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LandingFileError(
            file, f"header is not UTF-8 ({error.reason} at byte {error.start}): {_NOT_UTF8_HINT}"
        ) from error
    return next(csv.reader([text]), [])


class _UnendedRow(Exception):
    """Raised by :func:`_csv_blocks`: the row beginning ``text`` does not end - within ``limit``
    bytes, or (``limit`` None) before the file does. :func:`_csv_chunks`, which counts rows and
    lines, makes it a :class:`LandingFileError` naming them (:meth:`problem`)."""

    def __init__(self, text: bytes, limit: int | None):
        self.text, self.limit = text, limit

    def problem(self, row: int, line: int) -> str:
        """What is wrong with data row ``row``, which starts on line ``line``, and what to do: no
        row content (this goes to logs), only where to look."""
        quote = _unclosed_quote(self.text)
        opened = ""
        if quote is not None:
            quote_line = line + self.text.count(b"\n", 0, quote)
            opened = f", line {quote_line}"
        if self.limit is None:
            return (
                f"truncated: the file ends inside the quoted field opened in data row {row}{opened} "
                "(or that field's opening quote is never closed)"
            )
        size = _in_words(self.limit)
        if quote is None:
            return (
                f"data row {row} (line {line}) runs for more than {size} without a line break (LF), "
                "longer than any landing row. Nothing was loaded: end the rows with LF or CRLF (not "
                "a lone CR) and drop the file again"
            )
        return (
            f"a quoted field opened in data row {row}{opened} is not closed within {size}: its opening "
            'quote is most likely never closed (a stray quote, as in "Big deal,), which makes the '
            "rest of the file one field. Nothing was loaded: close the quote (a quote that is part "
            'of the text is written "" inside a quoted field) and drop the file again'
        )


def _in_words(size: int) -> str:
    """A size as people read it: "64 MiB" (bytes below a MiB, as tests use)."""
    return f"{size / 2**20:g} MiB" if size >= 2**20 else f"{size} bytes"


def _unclosed_quote(row: bytes) -> int | None:
    """Offset in ``row`` (a row's text from its start, without its end) of the quote opening the
    field that is never closed, None if no field of it is quoted and open."""
    fields = _CSV_ROW_START.match(row)
    if fields is None:  # the row's first field
        return 0 if row.startswith(b'"') else None
    end = fields.end()  # the fields up to a separator followed by a quote that never closes
    return end + 1 if row[end : end + 2] in (b',"', b'\r"') else None


def _csv_blocks(handle, size: int) -> Iterator[tuple[bytes, bool]]:
    """The data rows as pieces of about ``size`` bytes, each ending at a row boundary, and whether
    the piece holds a misquoted row (a quoted field with text after its closing quote).

    pyarrow's own streaming reader reads ahead and keeps far more than one block alive (hundreds
    of MB on a 1 GB file); cutting the blocks here bounds the memory to a block or two. A row
    longer than a block is kept whole, up to :data:`MAX_ROW_BYTES` (or four blocks, if more);
    a longer one raises :class:`_UnendedRow`. What follows the file's last line break is its last
    row, complete (RFC 4180 allows it without a line break) unless it ends inside a quoted field.

    The rows are cut by the strict grammar: where it stops short of the lenient one (pyarrow's), a
    misquoted row starts, and the lenient one goes on from there to the block's real end.
    """
    limit = max(MAX_ROW_BYTES, 4 * size)
    carry = b""
    while data := handle.read(size):
        buffer = carry + data if carry else data
        strict_end = _CSV_STRICT_WHOLE_ROWS.match(buffer).end()
        end = _CSV_WHOLE_ROWS.match(buffer, strict_end).end()  # past an incomplete last row: none
        if end:
            yield buffer[:end], end > strict_end
        carry = buffer[end:]  # the start of one row (all rows before it are complete)
        if len(carry) > limit:
            raise _UnendedRow(carry, limit)
    if carry and not _CSV_LAST_ROW.match(carry):
        raise _UnendedRow(carry, None)
    if carry:
        yield carry, not _CSV_STRICT_LAST_ROW.match(carry)


def _csv_records(block: bytes) -> Iterator[tuple[int, int]]:
    """Start and end (without its line break) of each record of the block, as pyarrow splits
    them: by CR, LF or CRLF outside quotes, blank lines skipped (they are no rows)."""
    position = 0
    while position < len(block):
        end = _CSV_RECORD.match(block, position).end()
        if end > position:
            yield position, end
        line_break = _CSV_RECORD_END.match(block, end)
        if line_break is None:  # the end of the block (a record always ends at a break or there)
            return
        position = line_break.end()


def _without_misquoted_rows(
    block: bytes, first_row: int
) -> tuple[bytes, list[MalformedRow], list[int], int | None]:
    """The block without its misquoted rows, those rows (quarantined with their text), the data
    row number of each row left, in order (to number pyarrow's rows of the rest), and the number
    of fields of the block's last row if it is misquoted and has no line break (None otherwise).
    That row is the file's last: cut out here, it never reaches pyarrow, whose field counts the
    caller checks for a file cut off in transfer, so its count (as pyarrow splits it) is handed
    over for the same check."""
    kept_pieces: list[bytes] = []
    misquoted: list[MalformedRow] = []
    kept_rows: list[int] = []
    unbroken_fields = None
    kept_from = 0  # the start of the block's part not yet cut into pieces
    for row, (start, end) in enumerate(_csv_records(block), start=first_row):
        if _CSV_STRICT_RECORD.fullmatch(block, start, end):
            kept_rows.append(row)
            continue
        reason = (
            _BLANKS_AFTER_QUOTE if _CSV_BLANKS_AFTER_QUOTE_RECORD.fullmatch(block, start, end) else _MISQUOTED
        )
        misquoted.append(MalformedRow(row, reason, block[start:end].decode(errors="replace")))
        kept_pieces.append(block[kept_from:start])
        line_break = _CSV_RECORD_END.match(block, end)
        if line_break is None:  # the block's end: the file's last row, without a line break
            unbroken_fields = _field_of(block, start, end) + 1
        kept_from = line_break.end() if line_break else end
    kept_pieces.append(block[kept_from:])
    return b"".join(kept_pieces), misquoted, kept_rows, unbroken_fields


def _field_of(block: bytes, start: int, offset: int) -> int:
    """The 0-based field, of the record starting at ``start``, that holds (or ends at) ``offset``:
    the separators before it, as pyarrow splits the record."""
    field = 0
    position = start
    while (position := _CSV_FIELD_START.match(block, position).end()) < offset:
        field += 1
        position += 1  # past the comma
    return field


def _fail_if_cut_off(file: LandingFile, row: int, fields: int, header_fields: int) -> None:
    """The file's last row, without a final line break, with fewer fields than the header: the file
    was cut off in transfer, and loading its other rows would hide that (a re-drop is the fix)."""
    if fields < header_fields:
        raise LandingFileError(
            file,
            f"truncated: the last row (data row {row}, no final line break) is incomplete: {fields} "
            f"fields where the header has {header_fields}",
        )


def _read_csv_block(
    file: LandingFile,
    block: bytes,
    misquoted: bool,
    first: tuple[int, int],
    header: list[str],
    columns: list[str],
) -> tuple[pa.Table, list[MalformedRow]]:
    """One block as text columns, and its rows that cannot be read as the header's columns: with
    another number of fields than the header, or (in a ``misquoted`` block) a quoted field with
    text after its closing quote. ``first``: the data row and the file's line the block starts at.

    Only an empty field is NULL: pyarrow's default also takes NA, N/A, null, NaN, #N/A... for
    NULL, erasing real values (Namibia's country code "NA").

    pyarrow hands each row with the wrong number of fields to ``invalid_row_handler`` (valid rows
    never reach Python) with its record number in the block, counted like the frame's rows (blank
    lines are no records), so its data row number is ``first_row + number - 1``. The block's
    last row without a final line break, with fields missing, is the file cut off in transfer:
    that fails the file (truncated). A misquoted row is cut out of the block before pyarrow reads
    it, as pyarrow would read it without a word (see :data:`_CSV_STRICT_FIELD`); if that row is
    the file's last one, without a line break, its fields are counted for the same check.
    """
    first_row = first[0]
    # rows: the data row of each row left in ``readable`` (None: all of the block's, consecutive);
    # unbroken_fields: the fields of a misquoted last row without a line break (None: no such row)
    readable, malformed, rows, unbroken_fields = (
        _without_misquoted_rows(block, first_row) if misquoted else (block, [], None, None)
    )
    if unbroken_fields is not None:
        _fail_if_cut_off(file, malformed[-1].row, unbroken_fields, len(header))
    invalid = []  # pyarrow's InvalidRow of each: number, expected_columns, actual_columns, text

    def quarantine(row) -> str:
        invalid.append(row)
        return "skip"

    if rows is not None and not rows:  # every row misquoted: pyarrow takes no input for no CSV
        return pa.table({name: pa.array([], pa.string()) for name in columns}), malformed
    try:
        table = pa_csv.read_csv(
            io.BytesIO(readable),
            # The block is made of whole rows: read it as one, however long a row.
            read_options=pa_csv.ReadOptions(
                column_names=header, use_threads=False, block_size=len(readable) + 1
            ),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=quarantine),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                include_columns=columns,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as error:  # a row the handler could not take (not UTF-8)
        raise LandingFileError(file, _unreadable_rows(block, first, header, error)) from error

    def data_row(number: int) -> int:  # of pyarrow's record ``number`` (1-based) of ``readable``
        return first_row + number - 1 if rows is None else rows[number - 1]

    last = invalid[-1] if invalid else None
    if (
        last is not None
        and not readable.endswith(b"\n")  # the file's last row, without a line break
        and last.number == table.num_rows + len(invalid)
    ):
        _fail_if_cut_off(file, data_row(last.number), last.actual_columns, last.expected_columns)
    malformed += [
        MalformedRow(
            data_row(row.number),
            f"{row.actual_columns} fields where the header has {row.expected_columns}",
            row.text,
        )
        for row in invalid
    ]
    return table, sorted(malformed, key=lambda row: row.row)


def _unreadable_rows(block: bytes, first: tuple[int, int], header: list[str], error: pa.ArrowInvalid) -> str:
    """pyarrow's parse error as people can act on it. Bytes that are not UTF-8: where the first of
    them is, by column name, data row and line (pyarrow numbers columns from 0 and rows within the
    block), and what the file most likely is. ``first``: the block's first data row and line."""
    first_row, first_line = first
    try:
        block.decode()
    except UnicodeDecodeError as not_utf8:
        offset = not_utf8.start
    else:
        where = f"data row {first_row} (line {first_line})"
        return f"unreadable CSV in the rows from {where} on: {_without_row(error)}"
    line = first_line + block.count(b"\n", 0, offset)
    for number, (start, end) in enumerate(_csv_records(block)):
        if end < offset:
            continue
        fields = _field_of(block, start, offset)  # the field holding the offset
        column = header[fields] if fields < len(header) else f"(field {fields + 1}, past the header)"
        where = f"data row {first_row + number} (line {line})"
        return f"invalid UTF8 data in column {column}, {where}: {_NOT_UTF8_HINT}"
    return f"invalid UTF8 data on line {line}: {_NOT_UTF8_HINT}"


def _csv_chunks(file: LandingFile, columns: list[str], chunk_bytes: int) -> Iterator[Chunk]:
    with file.open() as handle:
        _check_not_empty(file, handle)
        header = [c.strip() for c in _csv_header(file, handle)]
        _require_columns(file, header, columns)
        handle.readline()  # past the header
        next_row, next_line = 1, 2  # the data row and the file's line the next block starts at
        try:
            for block, misquoted in _csv_blocks(handle, chunk_bytes):
                first = (next_row, next_line)
                table, malformed = _read_csv_block(file, block, misquoted, first, header, columns)
                rows = table.num_rows + len(malformed)
                frame = table.to_pandas()
                if malformed:
                    numbers = np.arange(next_row, next_row + rows)
                    frame.index = pd.Index(np.delete(numbers, [m.row - next_row for m in malformed]))
                else:
                    _numbered(frame, next_row)
                yield Chunk(frame, malformed)
                next_row += rows
                next_line += block.count(b"\n")
        except _UnendedRow as unended:
            raise LandingFileError(file, unended.problem(next_row, next_line)) from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def exact_json(text: str, number: Callable[[str], object]):
    """``text`` decoded by JSON's grammar only, as jsonb reads it (NaN and Infinity refused), each
    number handed to ``number`` as written rather than made a double. Raises ValueError (a
    ``json.JSONDecodeError`` for bad syntax) where it is no JSON."""
    try:
        return json.loads(text, parse_float=number, parse_int=number, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


class _WrittenNumber:
    """A JSONL number as written, for the lines whose numbers a double would change."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _number_text(value) -> orjson.Fragment:
    """orjson's ``default``: a number it cannot write itself, as JSON text of its exact digits (a
    JSONL number as written, a Parquet decimal inside a nested value)."""
    if isinstance(value, _WrittenNumber):
        return orjson.Fragment(value.text)
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value) -> str:
    return orjson.dumps(value, default=_number_text).decode()


# A JSONL number of an integer column written as a whole float: pandas' ``to_json`` writes an
# integer column holding a NaN as floats (35.0), which its Parquet keeps as 35.
_WHOLE_FRACTION = re.compile(r"(-?[0-9]+)\.0+")


def _json_text(value, is_json: bool, is_int: bool = False) -> str | None:
    """A JSONL value as landing text; in an integer column (``is_int``) a whole number written as
    a float (35.0) is the integer (35), as the same frame's Parquet gives it; not in a decimal or
    text column, where the digits written are the value."""
    if value is None:
        return None
    if is_json:
        return _dumps(value)
    if is_int:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, _WrittenNumber) and (whole := _WHOLE_FRACTION.fullmatch(value.text)):
            return whole[1]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None  # "" is missing, as CSV's empty field (a JSON column's "" is JSON text)
    if isinstance(value, dict | list):
        return _dumps(value)
    return value.text if isinstance(value, _WrittenNumber) else str(value)


_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    _WrittenNumber: "number",
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
    """The line decoded with its numbers as written (:class:`_WrittenNumber`), None if that finds
    no JSON. Where orjson refused the line, only for a number (1e400, which jsonb keeps): a line
    this decoder takes but orjson refused for a lone surrogate (\\ud800, which neither UTF-8 nor
    PostgreSQL holds) is no JSON here either."""
    try:
        record = exact_json(line.decode(), _WrittenNumber)
        if orjson_refused:
            _dumps(record)  # refuses a lone surrogate
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
    return _dumps({key: value for key, value in record.items() if key not in columns})


def _jsonl_chunks(file: LandingFile, columns: list[str], chunk_bytes: int) -> Iterator[Chunk]:
    contract = CONTRACTS[file.table]
    json_columns = {c.name for c in contract.columns if c.kind == "json"}
    int_columns = {c.name for c in contract.columns if c.kind == "int"}
    known = frozenset(columns)
    with file.open() as handle:
        _check_not_empty(file, handle)
        _first_line(file, handle)  # refuses a UTF-16 file
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
                        _json_text(record.get(column), column in json_columns, column in int_columns)
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
            too_long.append(MalformedRow(line_number, f"line longer than {_in_words(MAX_ROW_BYTES)}", text))
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
    return orjson.dumps(value, default=_number_text, option=orjson.OPT_NON_STR_KEYS).decode()


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


def _parquet_chunks(file: LandingFile, columns: list[str], chunk_bytes: int) -> Iterator[Chunk]:
    with file.open() as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError) as error:
            raise LandingFileError(file, f"not a readable Parquet file: {error}") from error
        _require_columns(file, _parquet_data_columns(parquet.schema_arrow), columns)
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
            yield Chunk(_numbered(table.to_pandas(), next_row))
            next_row += batch.num_rows
