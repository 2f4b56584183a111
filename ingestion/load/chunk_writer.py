"""A validated chunk as PostgreSQL takes it, and the thread that hands it over.

:class:`PreparedChunk` is what the reading thread makes of a chunk: its rejects (each with its row
as ``raw_row`` JSON: :func:`raw_row`, or for a row the reader could not split into columns its text,
:func:`raw_text`) and its good rows as COPY input (:func:`stage_bytes`). :class:`ChunkWriter` sends
them to the database while the next chunk is read and validated.

Kept apart from :mod:`ingestion.load.loader`, which decides what a file's transaction does, so that
the bytes and the thread it does it with are read on their own: what a row looks like once
quarantined, and how reading and writing overlap with memory bounded by one chunk.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

# The key of a malformed row's raw_row: the row's text as written (it has no columns to name).
RAW_TEXT = "_raw_text"
# Of a malformed row's text, raw_row keeps the first MAX_RAW_TEXT_CHARS characters and, when that
# cuts it, its full length (characters) under RAW_TEXT_LENGTH. Quarantine is there to say why a row was refused and to find
# it (the row number, the start of its text), not to hold it: the landing file has it whole. A
# malformed row can be anything up to the readers' MAX_ROW_BYTES (a 64 MiB JSONL line, a JSON
# array export saved as .jsonl), and a jsonb string over 256 MB would make PostgreSQL refuse the
# whole file.
MAX_RAW_TEXT_CHARS = 64 * 1024
RAW_TEXT_LENGTH = "_raw_text_length"


def stage_bytes(frame: pd.DataFrame, columns: list[str]) -> memoryview:
    """Good rows as CSV for COPY: nulls unquoted-empty, every string quoted (so '' stays '').

    Written into an Arrow buffer and handed over without a copy: a chunk exists once in memory.
    """
    table = pa.table(
        {
            "_row": pa.array(frame.index.to_numpy(dtype=np.int64)),
            **{c: pa.array(frame[c], type=pa.string(), from_pandas=True) for c in columns},
        }
    )
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return memoryview(sink.getvalue())


def raw_row(frame: pd.DataFrame, row: int) -> str:
    """The row as JSON for ``raw_row``; a NUL (rejected for that very reason) becomes U+FFFD, as
    jsonb cannot hold it and would fail the file instead of quarantining the row."""
    values = frame.loc[row]
    return orjson.dumps(
        {k: (None if pd.isna(v) else str(v).replace("\x00", "\ufffd")) for k, v in values.items()}
    ).decode()


def raw_text(text: str) -> str:
    """A row the reader could not split into columns, as ``raw_row``: its text, cut to
    :data:`MAX_RAW_TEXT_CHARS` (NUL made U+FFFD, as in :func:`raw_row`)."""
    raw: dict[str, str | int] = {RAW_TEXT: text[:MAX_RAW_TEXT_CHARS].replace("\x00", "\ufffd")}
    if len(text) > MAX_RAW_TEXT_CHARS:
        raw[RAW_TEXT_LENGTH] = len(text)
    return orjson.dumps(raw).decode()


@dataclass
class PreparedChunk:
    """One validated chunk, ready for the database."""

    rejects: list[tuple]  # rows of ingest_rejects
    staged: memoryview | None  # the good rows as COPY input
    repeats: bool  # a key occurs more than once among the good rows
    fill_defaults: bool  # a good row leaves a kept_when_empty column empty (see MergePlan.sourced)


class ChunkWriter(threading.Thread):
    """Sends validated chunks to PostgreSQL (``write``) while the next chunk is read and validated.

    The two sides run at the same time (Arrow, pandas and psycopg's socket I/O release the GIL,
    and PostgreSQL is another process), so a file takes about as long as the slower of them
    rather than their sum. The queue holds one chunk: memory stays bounded.
    """

    def __init__(self, file_name: str, write: Callable[[PreparedChunk], None]):
        super().__init__(name=f"ingest-writer-{file_name}", daemon=True)
        self.write = write
        self.queue: queue.Queue[PreparedChunk | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write(chunk)
                except BaseException as error:  # handed to the reading thread, which re-raises it
                    self.error = error

    def put(self, chunk: PreparedChunk) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def close(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error
