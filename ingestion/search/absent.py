"""Which documents of the index name a conversation PostgreSQL no longer has.

After a TRUNCATE or a partition of conversations detached or dropped (``sync._delete_absent``) no
tombstone names what went, so every id the index holds is looked up in PostgreSQL. The ids are read
from the engine a page of ``IDS_PER_PAGE`` at a time (``SearchClient.document_ids``: only the sort
values), ascending, and each page is looked up as the range from its first id to its last. On the
96,076-conversation demo (2 cores, busy), the pass that finds nothing to delete took 2.2 to 3.8 s
when 1,000 ids were read at a time with each hit's metadata and looked up with ``= ANY``; now 0.5 to
1.5 s, most of it reading the ids from the engine (0.3 to 0.7 s, two thirds of that the client
parsing the JSON of 96,076 hits).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import psycopg
from psycopg.rows import tuple_row

from ingestion.search import documents
from ingestion.search.client import SearchClient

# Ids read from the engine, and looked up in PostgreSQL, at once: the engines' default
# ``index.max_result_window``, the most one search returns. Reading the demo's 96,076 ids took 1.9 s
# by 1,000 with each hit's ``_id`` and ``_index``, 0.3-0.4 s by 10,000 with only the sort values.
IDS_PER_PAGE = 10_000


def _present_in_range(conn: psycopg.Connection, ascending: Sequence[int]) -> set[int]:
    """Which of these conversations exist, ``ascending`` sorted: the ids PostgreSQL has from the first
    to the last, those not asked for dropped as they come. One index range per partition instead of
    a lookup of each id, which the planner estimates for each of them in every partition (10,000 ids:
    10-15 ms against 30-60 ms with ``= ANY``). Through a server-side cursor, a page at a time: a range
    holding many ids the index lacks (a month attached, not yet indexed) takes no more memory; the
    ranges of successive pages do not overlap, so all of them read each id at most once."""
    wanted = set(ascending)
    with conn.cursor(name="search_absent_ids", row_factory=tuple_row) as cursor:
        cursor.itersize = IDS_PER_PAGE
        cursor.execute(
            "SELECT id FROM conversations WHERE id BETWEEN %s AND %s", (ascending[0], ascending[-1])
        )
        return {row_id for (row_id,) in cursor if row_id in wanted}


def gone(
    conn: psycopg.Connection, client: SearchClient, index: str, quarantined: Sequence[int]
) -> Iterator[list[int]]:
    """The ids of ``index``'s documents, then those of ``quarantined`` (refused, never in the index),
    whose conversation PostgreSQL does not have now, in groups of at most ``IDS_PER_PAGE``. Each
    group is committed before it is yielded: no transaction stays open while the caller or the engine
    works. Only what the engine's last refresh made visible is read; the caller may delete what it
    was given before it asks for the next group (``document_ids`` is not disturbed)."""
    held = ((ids, _present_in_range) for ids in client.document_ids(index, IDS_PER_PAGE))
    refused = (
        (quarantined[start : start + IDS_PER_PAGE], documents.present_conversations)
        for start in range(0, len(quarantined), IDS_PER_PAGE)
    )
    for ids, present_of in itertools.chain(held, refused):
        present = present_of(conn, ids)
        conn.commit()
        if absent := [row_id for row_id in ids if row_id not in present]:
            yield absent
