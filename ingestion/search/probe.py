"""The sensor's cheap question: has anything the index shows changed since the saved cursors?

One index range lookup per followed table, no document built. Customers and employees count only
when an attribute documents copy differs from what the index holds, so logins and score updates
do not launch runs. It looks up to the same bound as the sync (``documents.read_bound``): a change
that an open transaction holds back is not pending yet. A TRUNCATE's marker in the deletions' window
is a pending change too (``documents.last_truncation``).
"""

from __future__ import annotations

import datetime as dt

import psycopg

from ingestion.search.documents import Cursors, exact_read_bound, last_truncation
from ingestion.search.related import RELATED_TABLES, stale_exists_sql


def has_changes(
    conn: psycopg.Connection, cursors: Cursors, lag: dt.timedelta, physical_index: str | None
) -> bool:
    exact_bound = exact_read_bound(conn, lag)
    bound, cursors = exact_bound.local, cursors.rewound_for(exact_bound)  # as the sync will read
    conditions = [
        "EXISTS (SELECT 1 FROM conversations WHERE (updated_at, id) > (%s, %s) AND updated_at < %s)",
        "EXISTS (SELECT 1 FROM sync_deletions WHERE table_name = 'conversations'"
        " AND (deleted_at, id) > (%s, %s) AND deleted_at < %s)",
    ]
    params: list = [*cursors.changes.as_tuple(), bound, *cursors.deletions.as_tuple(), bound]
    for related in RELATED_TABLES:
        conditions.append(stale_exists_sql(related))
        params += [physical_index, *cursors.of(related.table).as_tuple(), bound]
    row = conn.execute(f"SELECT {' OR '.join(conditions)} AS pending", params).fetchone()
    # A TRUNCATE leaves no tombstone, only a marker, which the sync follows (``sync.apply_changes``).
    return bool(row["pending"]) or last_truncation(conn, cursors.deletions.at, bound) is not None
