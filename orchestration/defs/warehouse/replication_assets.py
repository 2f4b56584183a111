"""One Dagster asset per raw table, downstream of the ingestion asset that loads the same seed table.

Keys ``["raw", table]`` are also what the dbt translator maps ``source('crm', table)`` to, so the
lineage runs landing file -> ``crm/<table>`` -> ``raw/<table>`` -> staging -> marts in one graph.
"""

import dagster as dg

from ingestion.replication.replicate import Replicator
from ingestion.replication.tables import RAW_TABLES, RawTable
from orchestration import environment

REPLICATION_GROUP = "replication"
RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL)


def _replication_asset(table: RawTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", table.name],
        deps=[dg.AssetKey(["crm", table.name])],
        group_name=REPLICATION_GROUP,
        kinds={"clickhouse", "postgres"},
        retry_policy=RETRY,
        description=f"ClickHouse raw.{table.name}: {table.mode} replication of PostgreSQL {table.name}.",
    )
    def replicate(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        result = Replicator(environment.pg_dsn(), log=context.log.info).replicate(table)
        return dg.MaterializeResult(metadata=result.as_dict())

    return replicate


replication_assets = [_replication_asset(table) for table in RAW_TABLES]
