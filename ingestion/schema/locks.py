"""The per-table lock every writer of a seed table in bulk takes: the loader around a file's
transaction and around each partition it creates, the monthly partitions job around its partitions.

An advisory lock (transaction-scoped) and not the table's own lock: a session waiting for it
waits alone. A session waiting for a table lock, instead, makes every later session that wants a
conflicting lock queue behind it. Creating a partition needs ACCESS EXCLUSIVE on the partitioned
table, which conflicts with every reader: waiting for it behind a long load would stop
replication, search sync and reports for the whole load. Whoever holds this lock first can take
the table's lock at once (or after the readers already there), never behind a load.
"""

from __future__ import annotations

import psycopg

# The key is hashtext(namespace + table), so loaders and the job of any version agree on it.
_NAMESPACE = "funnelhouse.ingest:"


def lock_table(conn: psycopg.Connection, table: str) -> None:
    """Wait for, then hold until the transaction ends, ``table``'s bulk-writer lock.

    Call it inside a transaction: outside one, the lock is released as soon as it is taken."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_NAMESPACE + table,))
