"""The index holds, day by day, as many conversations as PostgreSQL."""

import datetime as dt

import dagster as dg

from ingestion.search import cursor_store, documents, quarantine, query
from orchestration.defs.search.assets import conversations_search_index
from orchestration.defs.search.resources import SearchResource


@dg.asset_check(
    asset=conversations_search_index,
    blocking=False,
    description="Documents per day of sent_at equal PostgreSQL's conversations per day.",
)
def counts_per_day_match(search_index: SearchResource) -> dg.AssetCheckResult:
    with documents.connect(search_index.pg_dsn()) as conn:
        expected = documents.counts_per_day(conn)
        saved = cursor_store.load(conn, search_index.alias)
        # Days with changes newer than the cursors may legitimately differ until the next sync: rows
        # changed since (their days in PostgreSQL, and in the index: a changed sent_at moves a row to
        # another day), and rows deleted since (their days in the index).
        cursors = saved.cursors.rewound_for(documents.exact_read_bound(conn))  # as the next sync reads
        pending, changed = documents.pending_changes(conn, cursors.changes)
        deleted = documents.pending_deletions(conn, cursors.deletions)
        # A TRUNCATE since names no row (no tombstones): until the next sync the index may hold more
        # conversations than PostgreSQL on any day (``sync._delete_absent``).
        truncated = documents.last_truncation(conn, cursors.deletions.at, dt.datetime.max)
    client = search_index.client()
    try:
        index = quarantine.index_of(client, search_index.alias)
        with documents.connect(search_index.pg_dsn()) as conn:
            refused = quarantine.listed(conn, index, 20) if index else []
        indexed = query.counts_per_day(client, search_index.alias)
        if changed or deleted:
            pending |= set(query.counts_per_day(client, search_index.alias, ids=changed + deleted))
    finally:
        client.close()
    mismatched = {
        day: {"postgres": expected.get(day, 0), "index": indexed.get(day, 0)}
        for day in sorted(set(expected) | set(indexed))
        if expected.get(day, 0) != indexed.get(day, 0)
    }
    if truncated:
        pending |= {day for day, counts in mismatched.items() if counts["index"] > counts["postgres"]}
    unexplained = {day: counts for day, counts in mismatched.items() if day not in pending}
    return dg.AssetCheckResult(
        passed=not unexplained,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "days_compared": len(set(expected) | set(indexed)),
            "mismatched_days": dg.MetadataValue.json(unexplained),
            "days_with_pending_changes": dg.MetadataValue.json(sorted(set(mismatched) & pending)),
            "postgres_total": sum(expected.values()),
            "index_total": sum(indexed.values()),
            # Refused by the engine for good: missing from the index, hence from its counts.
            "quarantined_documents": dg.MetadataValue.json(
                [
                    {"id": entry.doc_id, "status": entry.status, "reason": entry.reason[:300]}
                    for entry in refused
                ]
            ),
        },
    )
