"""Streaming readers: a landing file as row-numbered chunks of text values, in bounded memory.

Every format is turned into the same thing, a pandas frame per chunk whose index is the 1-based
row number in the file (the data row for CSV - the header is not counted - the line for JSONL,
the row for Parquet) and whose values are the landing text (null = missing). Text rather than
typed values because validation must see what was written ("12x" is a type error to report, not
a parse failure to crash on), and because text is what COPY consumes anyway.

An empty text is missing in every format. CSV has no other way to write a missing value (an
empty field, quoted or not, is NULL), so a JSONL or Parquet "" means the same: the same data gets
the same verdict (a required column quarantines the row, a defaulted one takes its DEFAULT, an
optional one is NULL, never '') whatever the format (:func:`jsonl_value_text`, :func:`_empty_as_null`).

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

The readers by format: :mod:`.csv_reader`, :mod:`.jsonl_reader` (with :mod:`.json_text`, the JSON
values as landing text) and :mod:`.parquet_reader`; what they share (the chunk, the file's errors,
the header's checks) is :mod:`.shared`. This module picks the reader of a file's format.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
from collections.abc import Iterator

import orjson
import pyarrow as pa

from ingestion.contracts import CONTRACTS
from ingestion.load.landing import LandingFile
from ingestion.load.readers.csv_reader import csv_chunks
from ingestion.load.readers.jsonl_reader import jsonl_chunks
from ingestion.load.readers.parquet_reader import parquet_chunks
from ingestion.load.readers.shared import Chunk, LandingFileError, without_row

# Chunks are cut by size, not row count: memory per chunk is then the same for a 200-byte
# conversation and a 2 KB one, while a chunk stays big enough (~35k thin rows) that the fixed cost
# of a great-expectations run per chunk stays small next to the rows' own cost.
CHUNK_BYTES = 8 * 1024 * 1024


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


def read_chunks(file: LandingFile, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Chunks (about ``chunk_bytes`` of file each) of the rows with the contract's landing columns
    (and :data:`UNKNOWN_KEYS` where JSONL rows carry others)."""
    if chunk_bytes < 1:  # a CSV read in blocks of 0 bytes would be a file of no rows
        raise ValueError(f"chunk_bytes must be at least 1, not {chunk_bytes}")
    columns = CONTRACTS[file.table].landing_columns
    reader = {"csv": csv_chunks, "jsonl": jsonl_chunks, "parquet": parquet_chunks}[file.format]
    try:
        for chunk in reader(file, columns, chunk_bytes):
            yield chunk
            pa.default_memory_pool().release_unused()  # give freed Arrow buffers back (bounded RSS)
    except LandingFileError:
        raise
    except (pa.ArrowInvalid, UnicodeDecodeError, orjson.JSONDecodeError, csv.Error) as error:
        raise LandingFileError(file, f"not a readable {file.format} file: {without_row(error)}") from error
    except OSError as error:
        # Arrow reports undecodable content (a Parquet page that does not decompress) as a plain
        # OSError without errno; the store's own failures (missing file, EIO, a network error
        # subclass) are not the file's content and still end the run, to be retried.
        if type(error) is not OSError or error.errno is not None:
            raise
        raise LandingFileError(file, f"not a readable {file.format} file: {error}") from error
