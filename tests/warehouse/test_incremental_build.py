"""An incremental `funnelhouse build` runs only the models downstream of the raw tables that changed
(no tests, no views), catches up on changes an earlier failed or separate run left unbuilt, skips dbt
when nothing changed, and leaves the marts with the new rows in them."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import build, marts_schema

# Models reading raw conversations, views excluded (stg_crm__conversations reads raw at query time).
DOWNSTREAM_OF_CONVERSATIONS = {
    "fct_conversations",
    "int_customers__conversation_summary",
    "int_dates__spine",
    "mart_customer_overview",
    "mart_employee_performance",
    "mart_manager_performance",
    "mart_kpi_employee_daily",
    "mart_script_performance",
}


def _mart_value(column: str, mart: str, where: str):
    relation = f"`{marts_schema()}`.`{mart}`"
    return clickhouse_client().query(f"select {column} from {relation} where {where}").result_rows[0][0]


def _models_run(target: Path) -> set[str]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {result["unique_id"].removeprefix("model.funnelhouse.") for result in results}


def test_incremental_build_runs_only_what_the_changed_table_feeds(built_warehouse, pg_dsn, clickhouse_env):
    before = _mart_value("conversations_last_7_days", "mart_customer_overview", "customer_id = 4")
    script_uses = _mart_value("conversation_uses", "mart_script_performance", "script_id = 2")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " sentiment, script_used_id, quality_score, platform, sent_at)"
            " values ('MSG7', 4, 3, 'text', 'outbound', 'positive', 2, 9, 'wechat', now() - interval '1 hour')"
        )
    # Replication alone (the Dagster raw assets, or a build whose dbt step failed): still pending.
    assert [result.table for result in replicate_tables(pg_dsn) if result.changed] == ["conversations"]
    client = clickhouse_client()
    assert refresh_state.tables_changed_since_refresh(client, clickhouse_env, marts_schema()) == [
        "conversations"
    ]

    summary = build(skip_replication=True, freshness=False, log=lambda _line: None)
    assert summary.ok and summary.dbt_plan.arguments[0] == "run"  # the pending change, without tests
    assert _models_run(built_warehouse) == DOWNSTREAM_OF_CONVERSATIONS
    assert _mart_value("conversations_last_7_days", "mart_customer_overview", "customer_id = 4") == before + 1
    assert _mart_value("conversation_uses", "mart_script_performance", "script_id = 2") == script_uses + 1
    assert refresh_state.tables_changed_since_refresh(client, clickhouse_env, marts_schema()) == []

    unchanged = build(skip_replication=True, log=lambda _line: None)
    assert unchanged.ok and unchanged.dbt_plan.skip and unchanged.dbt_seconds == 0
    assert len(unchanged.freshness.sources) == 18  # freshness is reported even when dbt is skipped
    assert unchanged.freshness.counts()["pass"] >= 17  # conversation_events may be old: reported only
