"""Which conversations behind the changes cursor the index lacks.

After a partition is attached (``sync._index_missing``) nearly every conversation is in the index
already. So the ids are read first (from PostgreSQL, a group at a time), the engine is asked how
many of a group it holds (an ``ids`` count: no document fetched), and only in a group it holds fewer
of is each id looked up (``versions``); only the conversations it lacks are read in full and made
documents (``documents.documents_of``). It used to build every conversation's document and ask the
engine for each one's version: on the 96,076-conversation demo (2 cores, busy), a pass with nothing
missing took 2.1 to 3.2 s, now 0.12 to 0.25 s; with a month of 25,830 missing 3.3 to 4.5 s, now 1.8
to 2.7 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from psycopg.rows import tuple_row

from ingestion.search.client import SearchClient
from ingestion.search.documents import Cursor

# Ids the engine is asked to count at once: a request costs some milliseconds whatever it asks, and
# counting the demo's 96,076 ids took 0.5 s by 1,000, 0.2 s by 10,000.
COUNTED_IDS = 10_000


def ids_behind(conn: psycopg.Connection, changes: Cursor, group: int) -> Iterator[list[int]]:
    """The ids of the conversations whose change ``changes`` has passed, ``group`` at a time. One
    statement, through a cursor WITH HOLD: PostgreSQL keeps its result past the commit, and the
    caller may commit between groups (a keyset statement per 1,000 ids took 0.4 to 0.7 s in all on the
    demo's 12 partitions, the one statement and its fetches ~0.15 s)."""
    with conn.cursor(name="search_missing_ids", withhold=True, row_factory=tuple_row) as cursor:
        cursor.execute("SELECT id FROM conversations WHERE (updated_at, id) <= (%s, %s)", changes.as_tuple())
        conn.commit()
        while rows := cursor.fetchmany(group):
            yield list(dict.fromkeys(row_id for (row_id,) in rows))  # (an id in two partitions)


def lacking(client: SearchClient, index: str, ids: list[int], batch_size: int) -> Iterator[list[int]]:
    """Those of ``ids`` that ``index`` holds no document of, by at most ``batch_size``. The engine
    counts those it holds first (only what a refresh made visible: refresh it before, so that none it
    has deleted since is counted); if it holds fewer than all, each ``batch_size`` of them is looked
    up (``versions``: a real-time get, which sees a document indexed since the refresh too)."""
    if not ids or client.count(index, {"ids": {"values": [str(row_id) for row_id in ids]}}) == len(ids):
        return
    for start in range(0, len(ids), batch_size):
        some = ids[start : start + batch_size]
        held = client.versions(index, [str(row_id) for row_id in some])
        if lacked := [row_id for row_id in some if str(row_id) not in held]:
            yield lacked
