"""A bare ``dbt run`` (an analyst's, not ``funnelhouse build``'s) of the incremental models compiles
where nothing was recorded for what a macro looks up: no refresh mark of the KPI mart, no committed
watermark of a source table (``FUNNELHOUSE_REPLICATED_THROUGH`` is only passed by builds). Those
lookups return no rows, and dbt-clickhouse gives a result of no rows no columns at all
(macros/query_values.sql)."""

from __future__ import annotations

import pytest

from ingestion.replication.connections import clickhouse_client
from orchestration.defs.warehouse.build import dbt_env, marts_schema, run_dbt
from orchestration.defs.warehouse.refresh_state import REPLICATED_THROUGH_ENV, kpi_mark_key


def _delete(raw_database: str, relation: str, where: str, **parameters) -> None:
    client = clickhouse_client()
    client.command(
        f"alter table `{raw_database}`.`{relation}` delete where {where}",
        parameters=parameters,
        settings={"mutations_sync": 2},
    )
    assert not client.query(
        f"select 1 from `{raw_database}`.`{relation}` final where {where}", parameters=parameters
    ).result_rows


def _bare_dbt_run(model: str) -> None:
    environment = {name: value for name, value in dbt_env().items() if name != REPLICATED_THROUGH_ENV}
    output: list[str] = []
    assert run_dbt(["run", "--select", model], log=output.append, env=environment) == 0, "\n".join(
        output[-40:]
    )


def test_the_kpi_mart_runs_without_a_refresh_mark_of_its_own(built_warehouse, clickhouse_env):
    _delete(
        clickhouse_env, "_model_refreshes", "marts_schema = {key:String}", key=kpi_mark_key(marts_schema())
    )
    _bare_dbt_run("mart_kpi_employee_daily")


@pytest.mark.parametrize("model, table", [("fct_deposits", "deposits")])
def test_a_fact_runs_without_a_committed_watermark_of_its_source(
    model, table, built_warehouse, clickhouse_env
):
    _delete(clickhouse_env, "_replication_state", "table_name = {table:String}", table=table)
    _bare_dbt_run(model)
