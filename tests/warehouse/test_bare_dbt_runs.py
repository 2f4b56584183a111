"""A bare ``dbt run`` (an analyst's, not ``funnelhouse build``'s) of the incremental models compiles
where nothing was recorded for what a macro looks up: no refresh mark of the KPI mart, no committed
watermark of a source table (``FUNNELHOUSE_REPLICATED_THROUGH`` is only passed by builds). Those
lookups return no rows, and dbt-clickhouse gives a result of no rows no columns at all
(macros/query_values.sql). A source with no committed watermark has nothing committed to read
(macros/incremental_changes.sql fact_changed_ids)."""

from __future__ import annotations

import json
import time

from ingestion.replication.connections import clickhouse_client
from orchestration.defs.warehouse.build import dbt_env, marts_schema, run_dbt
from orchestration.defs.warehouse.refresh_state import REPLICATED_THROUGH_ENV, kpi_mark_key


def _delete(raw_database: str, relation: str, where: str, **parameters: str) -> None:
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


def test_a_fact_run_before_a_first_load_committed_reads_none_of_it_and_the_next_build_all(
    built_warehouse, clickhouse_env
):
    # deposits: nothing committed yet (no state row) and no watermark of fct_deposits for it, as when
    # the table was empty at the fact's first build and its first load is being replicated now.
    raw, client = clickhouse_env, clickhouse_client()
    fact_key = f"{marts_schema().removesuffix('marts')}core.fct_deposits"
    _delete(raw, "_replication_state", "table_name = 'deposits'")
    _delete(raw, "_model_watermarks", "model = {model:String} and table_name = 'deposits'", model=fact_key)
    stamp_ms = int(time.time() * 1000)
    (template,) = client.query(
        f"select min(id) from `{raw}`.deposits final where not _is_deleted"
    ).result_rows[0]

    def load_part(new_id: int) -> None:
        """One part of a load: every row of a load carries its one _replicated_at stamp."""
        client.command(
            f"insert into `{raw}`.deposits select * replace ({new_id} as id, concat(deposit_code, '-{new_id}')"
            f" as deposit_code, fromUnixTimestamp64Milli(toInt64({stamp_ms})) as _replicated_at)"
            f" from (select * from `{raw}`.deposits final where id = {template})"
        )

    def loaded() -> list[int]:
        query = (
            f"select deposit_id from `{fact_key.replace('.', '`.`')}` where deposit_id >= 900000 order by 1"
        )
        return [deposit_id for (deposit_id,) in client.query(query).result_rows]

    load_part(900001)
    _bare_dbt_run("fct_deposits")
    assert loaded() == []  # nothing of the load was committed
    load_part(900002)  # the load's last part: committed now
    committed = dict(
        client.query(
            f"select table_name, replicated_through_ms from `{raw}`._replication_state final"
            " where replicated_through_ms is not null"
        ).result_rows
    )
    build_environment = {**dbt_env(), REPLICATED_THROUGH_ENV: json.dumps({**committed, "deposits": stamp_ms})}
    output: list[str] = []
    assert run_dbt(["run", "--select", "fct_deposits"], log=output.append, env=build_environment) == 0, (
        "\n".join(output[-40:])
    )
    assert loaded() == [900001, 900002]
