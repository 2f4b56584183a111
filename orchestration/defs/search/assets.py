"""The search index as an asset: materialising it brings ``conversations`` up to date with PostgreSQL."""

import dagster as dg

from ingestion.search import cursor_store, documents, indexer, quarantine, rebuild
from ingestion.search.rebuild import RebuildReport
from orchestration import environment
from orchestration.defs.ingestion.assets import asset_key as crm_asset_key
from orchestration.defs.search.resources import SearchResource

# A failed step (engine restarting, a bulk refused under load) is tried again in the same run; not a
# rebuild that failed its verification (``dg.Failure(allow_retries=False)``): it would fail again.
RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL)

# The PostgreSQL tables a document is read from (``documents.INDEXED_TABLES``: the conversation and the
# customer and employee rows it quotes; the sync follows their TRUNCATEs too). Their ``crm/<table>``
# assets are the index's parents, so the lineage shows what feeds it and what a failed ingestion leaves stale.
INDEXED_TABLES = documents.INDEXED_TABLES


def missing_search_engine() -> str | None:
    """Why no run of the search asset can succeed here, or None: what ``environment.search_settings``
    (the resource's settings) refuses with, e.g. no engine configured and none running (a stack started
    with ``funnelhouse up --search none``), one recorded whose process is gone, production without
    ``FUNNELHOUSE_SEARCH_URL``, a flavour that is no engine. The sensor and the nightly schedule skip
    with this message instead of launching runs that fail every time. (Whether a configured engine
    answers is the sensor's own question.)"""
    try:
        environment.search_settings()
    except (environment.ServiceNotRunning, environment.ConfigurationError) as error:
        return f"no search engine: {error}"
    return None


class SearchIndexConfig(dg.Config):
    full_rebuild: bool = False  # True: new versioned index + alias swap, even if the mapping is current
    # True: apply the pending changes to the live index, no rebuild even if it awaits one (the sensor's
    # run while it backs off after failed rebuilds: deletions must not wait hours). Unused with a full_rebuild.
    sync_only: bool = False


def run_config(**fields) -> dict:
    """The run config of a search job setting these ``SearchIndexConfig`` fields."""
    return {"ops": {"search__conversations_index": {"config": fields}}}


def _index_metadata(search: SearchResource, client) -> dict:
    with documents.connect(search.pg_dsn()) as conn:
        saved = cursor_store.load(conn, search.alias)
        now = documents.database_now(conn)
        cursors = saved.cursors.rewound_for(documents.exact_read_bound(conn))  # as the next sync reads
        oldest_pending = documents.oldest_pending_change(conn, cursors.changes)
        live = quarantine.index_of(client, search.alias)
        quarantined = quarantine.count(conn, live) if live else 0
    changes = saved.cursors.changes
    # How long the oldest change not in the index has waited: 0 when the index is up to date, however
    # long ago the last change was (-1: never synchronised).
    lag = (
        None if not saved.last_sync_at else (now - oldest_pending).total_seconds() if oldest_pending else 0.0
    )
    return {
        "documents": dg.MetadataValue.int(client.count(search.alias)),
        "index": dg.MetadataValue.text(saved.physical_index or "-"),
        "last_cursor": dg.MetadataValue.text(f"{changes.at.isoformat()} / id {changes.id}"),
        "lag_seconds": dg.MetadataValue.float(round(lag, 1) if lag is not None else -1.0),
        "last_rebuild_at": dg.MetadataValue.text(str(saved.last_rebuild_at or "-")),
        # Refused by the engine for good, listed with the reason by `funnelhouse search-quarantine`.
        "quarantined_documents": dg.MetadataValue.int(quarantined),
    }


@dg.asset(
    key=["search", "conversations_index"],
    deps=[crm_asset_key(table) for table in INDEXED_TABLES],
    group_name="search",
    kinds={"elasticsearch"},
    retry_policy=RETRY,
    description="Conversations searchable by words (Chinese/English), customer, employee, platform, "
    "sentiment and time; rebuilt from PostgreSQL at any time. Contact details are redacted.",
)
def conversations_search_index(
    context: dg.AssetExecutionContext, config: SearchIndexConfig, search_index: SearchResource
) -> dg.MaterializeResult:
    client = search_index.client()
    try:
        dsn = search_index.pg_dsn()
        try:
            if config.full_rebuild:
                report = rebuild.full_rebuild(
                    dsn, client, search_index.alias, lag=search_index.lag, replicas=search_index.replicas
                )
            else:
                report = indexer.synchronise(
                    dsn,
                    client,
                    search_index.alias,
                    lag=search_index.lag,
                    batch_size=search_index.batch_size,
                    replicas=search_index.replicas,
                    rebuild=not config.sync_only,
                )
        except rebuild.RebuildVerificationFailed as exc:
            # The same rows fail the same check again: a retry would only load every row twice more.
            # (The sensor backs off before it asks for another rebuild.)
            raise dg.Failure(
                description=f"the rebuild failed its check and was dropped, the alias did not move: {exc}",
                allow_retries=False,
            ) from exc
        if isinstance(report, RebuildReport):
            context.log.info(
                f"full rebuild into {report.index}: {report.loaded} documents, "
                f"{report.docs_per_second} docs/s, previous kept: {report.previous}"
            )
            run = {"mode": "full rebuild", "loaded": report.loaded, "docs_per_second": report.docs_per_second}
        elif report.skipped:
            context.log.info(f"sync skipped: {report.skipped}")
            run = {"mode": "skipped"}
        else:
            if report.needs_rebuild:  # a sync_only run: the live index stays as it is until a rebuild
                context.log.info(f"synced without the full rebuild it awaits ({report.needs_rebuild})")
            run = {
                "mode": "incremental",
                "indexed": report.indexed,
                "deleted": report.deleted,
                "reindexed_for_customer_or_employee": report.related_reindexed,
            }
        if report.quarantined:
            context.log.warning(quarantine.notice(report.quarantined))
        return dg.MaterializeResult(metadata={**_index_metadata(search_index, client), **run})
    finally:
        client.close()


# Run monitoring (devstack/dagster.yaml) fails a run still going after this: one whose worker died
# (`dagster dev` restarted, a reboot) would otherwise stay STARTED, and the sensor waits for a rebuild
# in flight. A sync rebuilds too when the mapping changed; a rebuild loads ~19,000-31,000 docs/s
# (bench/results/search.md), 5 M conversations in under 5 minutes, and is tried at most 3 times (RETRY).
MAX_RUNTIME = {dg.MAX_RUNTIME_SECONDS_TAG: str(3 * 60 * 60)}

search_sync_job = dg.define_asset_job(
    "search_sync",
    selection=[conversations_search_index],
    description="Incremental sync of the search index.",
    tags=MAX_RUNTIME,
)
search_rebuild_job = dg.define_asset_job(
    "search_full_rebuild",
    selection=[conversations_search_index],
    config=run_config(full_rebuild=True),
    description="Full rebuild into a new versioned index, then an atomic alias swap.",
    tags=MAX_RUNTIME,
)
