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
    rebuild: bool = True,
) -> SyncReport | RebuildReport:
    """Incremental sync; then a full rebuild when there is no index yet or its mapping is outdated.

    ``rebuild=False`` stops after the sync (``report.needs_rebuild`` says why a rebuild is due): how
    the live index still gets deletions while rebuilds keep failing and the sensor backs off."""
    report = run_incremental(dsn, client, alias, lag=lag, batch_size=batch_size)
    if report.needs_rebuild and rebuild:
        return full_rebuild(dsn, client, alias, lag=lag, replicas=replicas)
    return report
