"""One Dagster asset per raw table, downstream of the ingestion asset that loads the same seed table.

Keys ``raw_asset_key(table)`` (``raw/<table>``) are also what the dbt translator maps ``source('crm', table)`` to, so the
lineage runs landing file -> ``crm/<table>`` -> ``raw/<table>`` -> staging -> marts in one graph.
"""

import dagster as dg

from ingestion.replication import cursor
from ingestion.replication.replicate import Replicator
from ingestion.replication.tables import RAW_TABLES, RawTable
from orchestration import environment
from orchestration.defs.ingestion.assets import asset_key as crm_asset_key
from orchestration.defs.warehouse import writers

REPLICATION_GROUP = "replication"
# Every op that writes the warehouse (these assets and both dbt asset definitions) is in this pool.
# With its limit at 1 (`dagster instance concurrency set warehouse 1`, or `concurrency: pools:
# default_limit: 1` in dagster.yaml) no two of them run at once, in one run or across runs: a
# replication never overlaps another of the same table (whose later stamp could pass the first
# one's uncommitted rows) nor a dbt run. Each of them also holds the warehouse's writer lock
# (writers.py), which keeps them apart from a `funnelhouse build` started outside Dagster; and dbt
# reads only up to each table's committed watermark (ingestion/replication/replicate.py).
WAREHOUSE_POOL = "warehouse"
RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL)


def raw_asset_key(table: str) -> dg.AssetKey:
    """The key of the asset of ClickHouse's ``raw.<table>``: its replication asset, dbt's
    ``source('crm', table)`` (translator.py) and its freshness check's asset (freshness_checks.py)."""
    return dg.AssetKey(["raw", table])


def _replication_asset(table: RawTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_asset_key(table.name),
        deps=[crm_asset_key(table.name)],
        group_name=REPLICATION_GROUP,
        kinds={"clickhouse", "postgres"},
        retry_policy=RETRY,
        pool=WAREHOUSE_POOL,
        description=f"ClickHouse raw.{table.name}: {table.mode} replication of PostgreSQL {table.name}.",
    )
    def replicate(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        # Every table of the run up to one instant (the run's first step fixes it): a child table
        # replicated after its parent never references a parent row created between the two steps.
        dsn = environment.pg_dsn()
        with (
            writers.for_dagster_step(context),
            Replicator(
                dsn,
                log=context.log.info,
                bound=cursor.run_bound(dsn, context.run.run_id, log=context.log.info),
            ) as replicator,
        ):
            result = replicator.replicate(table)
        return dg.MaterializeResult(metadata=result.as_dict())

    return replicate


replication_assets = [_replication_asset(table) for table in RAW_TABLES]
