"""The CSV reader: RFC 4180 files cut into blocks of whole rows (bounded memory), read by pyarrow
as text columns, with rows of another number of fields or misquoted ones quarantined."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from ingestion.load.landing import LandingFile
from ingestion.load.readers.shared import (
    MAX_ROW_BYTES,
    Chunk,
    LandingFileError,
    MalformedRow,
    check_not_empty,
    first_line,
    numbered,
    require_columns,
    size_in_words,
    without_row,
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


def _csv_header(file: LandingFile, handle) -> list[str]:
    """The header's column names: the file's first line (see :func:`first_line`)."""
    line = first_line(file, handle)
    if re.search(rb"\r(?!\n)", line):  # old Mac Excel; Python's csv asks "universal-newline mode?"
        raise LandingFileError(
            file, "lines end in CR only: save the file with LF or CRLF line endings and drop it again"
        )
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LandingFileError(
            file, f"header is not UTF-8 ({error.reason} at byte {error.start}): {_NOT_UTF8_HINT}"
        ) from error
    return next(csv.reader([text]), [])


class _UnendedRow(Exception):
    """Raised by :func:`_csv_blocks`: the row beginning ``text`` does not end - within ``limit``
    bytes, or (``limit`` None) before the file does. :func:`csv_chunks`, which counts rows and
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
        size = size_in_words(self.limit)
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
    first_row, first_line_number = first
    try:
        block.decode()
    except UnicodeDecodeError as not_utf8:
        offset = not_utf8.start
    else:
        where = f"data row {first_row} (line {first_line_number})"
        return f"unreadable CSV in the rows from {where} on: {without_row(error)}"
    line = first_line_number + block.count(b"\n", 0, offset)
    for number, (start, end) in enumerate(_csv_records(block)):
        if end < offset:
            continue
        fields = _field_of(block, start, offset)  # the field holding the offset
        column = header[fields] if fields < len(header) else f"(field {fields + 1}, past the header)"
        where = f"data row {first_row + number} (line {line})"
        return f"invalid UTF8 data in column {column}, {where}: {_NOT_UTF8_HINT}"
    return f"invalid UTF8 data on line {line}: {_NOT_UTF8_HINT}"


def csv_chunks(file: LandingFile, columns: list[str], chunk_bytes: int) -> Iterator[Chunk]:
    with file.open() as handle:
        check_not_empty(file, handle)
        header = [c.strip() for c in _csv_header(file, handle)]
        require_columns(file, header, columns)
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
                    numbered(frame, next_row)
                yield Chunk(frame, malformed)
                next_row += rows
                next_line += block.count(b"\n")
        except _UnendedRow as unended:
            raise LandingFileError(file, unended.problem(next_row, next_line)) from None
