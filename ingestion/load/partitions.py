"""The partitions a file's rows need (conversations, by month), each created in a short transaction
of its own before the file's transaction: creating one locks the whole partitioned table."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import psycopg

from ingestion.load import ledger
from ingestion.load.landing import LandingFile
from ingestion.load.messages import announce
from ingestion.load.readers import read_chunks
from ingestion.schema.locks import lock_table

# A partitioned table's unique keys must include its partition column, so the merge's conflict
# target is the natural key plus this column (conversations: UNIQUE (source_message_id, sent_at)).
PARTITION_COLUMNS = {"conversations": "sent_at"}
# Per partitioned table: the function saying whether a month needs its partition made, and the one
# making it (migration 0028: by the partitions' ranges, whatever their names).
_PARTITION_ENSURERS = {"conversations": ("conversation_month_missing", "ensure_conversation_partitions")}
# Partitions are created for the months of this range only. A stray date (an exporter's epoch
# zero 1970-01-01, 1900, 9999) would otherwise get a partition of its own; its row is held by the
# default partition, where nothing is lost.
PARTITION_RANGE = (pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))


def _months_present(file: LandingFile, column: str, chunk_bytes: int) -> set[str]:
    """First days ('YYYY-MM-01') of the UTC months of ``column`` in the file, within PARTITION_RANGE.

    Only the months that occur: one stray date must not stand for every month up to it. Values
    that are no timestamp are skipped (validation rejects their rows).
    """
    low, high = PARTITION_RANGE
    months: set[str] = set()
    for chunk in read_chunks(file, chunk_bytes):
        stamps = pd.to_datetime(chunk.frame[column], utc=True, format="ISO8601", errors="coerce")
        months.update(stamps[(stamps >= low) & (stamps < high)].dt.strftime("%Y-%m-01").unique())
    return months


def create_partitions(
    conn: psycopg.Connection,
    file: LandingFile,
    checksum: str,
    chunk_bytes: int,
    on_step: Callable[[str], None] | None = None,
) -> None:
    """The partitions the file's rows need, each created in a short transaction of its own, before
    the file's transaction.

    Creating a partition locks the whole partitioned table (ACCESS EXCLUSIVE) until its transaction
    ends: inside the file's transaction, every reader of the table (replication, search sync,
    reports) would wait for the whole load. A partition created for a load that then fails stays,
    empty and harmless. A month the file brings that has no partition (outside PARTITION_RANGE) is
    held by the default partition.

    The table's load lock is taken first: while another file of the table loads, this one waits
    for it there, not in the table's lock queue, where every new reader would queue behind it.
    """
    if file.table not in _PARTITION_ENSURERS:
        return
    missing, ensurer = _PARTITION_ENSURERS[file.table]
    with conn.transaction():
        if ledger.duplicate_of(conn, file, checksum):
            return  # loaded before: this copy loads nothing
    announce(file, f"scanning {file.name} for months", on_step)
    for month in sorted(_months_present(file, PARTITION_COLUMNS[file.table], chunk_bytes)):
        with conn.transaction():
            lock_table(conn, file.table)
            # A month a partition covers needs nothing (the ensurer would do nothing), so no wait
            # for a load of events: only a new partition locks conversation_events too (its foreign
            # key). The database decides, by the partitions' ranges: a month covered in part by a
            # partition made by hand is not asked for, its other rows are held by the default one.
            if conn.execute(f"SELECT {missing}(%s::date)", (month,)).fetchone()[0]:
                lock_table(conn, "conversation_events")
                conn.execute(f"SELECT {ensurer}(%s::date, %s::date)", (month, month))
