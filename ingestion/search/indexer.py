"""The entry points callers use: bring the index up to date, whatever state it is in."""

from __future__ import annotations

import datetime as dt

from ingestion.search import mapping
from ingestion.search.client import SearchClient
from ingestion.search.rebuild import RebuildReport, full_rebuild
from ingestion.search.sync import DEFAULT_BATCH, DEFAULT_LAG, SyncReport, run_incremental


def synchronise(
    dsn: str,
    client: SearchClient,
    alias: str = mapping.DEFAULT_ALIAS,
    *,
    lag: dt.timedelta = DEFAULT_LAG,
    batch_size: int = DEFAULT_BATCH,
    replicas: int = 0,
) -> SyncReport | RebuildReport:
    """Incremental sync; a full rebuild instead when there is no index yet or its mapping is outdated."""
    report = run_incremental(dsn, client, alias, lag=lag, batch_size=batch_size)
    if report.needs_rebuild:
        return full_rebuild(dsn, client, alias, lag=lag, replicas=replicas)
    return report
