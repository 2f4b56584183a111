"""``funnelhouse backfill``: an incremental run of a fact that replaces whole months with their live rows
from staging (dbt_project/macros/fact_backfill.sql), leaving the other months and the fact's watermark
as they were, so the next ordinary run still takes every change replicated before it."""

from __future__ import annotations

import re

import psycopg
from typer.testing import CliRunner

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.cli import app
from orchestration.defs.warehouse.build import marts_schema

BOGUS_ID = 999_999_999


def _months(client, fact: str) -> dict[int, tuple[int, int]]:
    """{YYYYMM: (rows, checksum of every column of them)} of fct_conversations."""
    rows = client.query(
        f"select toYYYYMM(sent_date) as month, count(), groupBitXor(cityHash64(*)) from {fact} group by month"
    ).result_rows
    return {month: (count, checksum) for month, count, checksum in rows}


def _ids(client, relation: str, month: int) -> list[int]:
    return [
        id_
        for (id_,) in client.query(
            f"select conversation_id from {relation} where toYYYYMM(toDate(sent_at)) = {month} order by 1"
        ).result_rows
    ]


def test_a_backfill_replaces_its_months_and_keeps_the_watermark(built_warehouse, pg_dsn, clickhouse_env):
    client = clickhouse_client()
    core = marts_schema().removesuffix("marts") + "core"
    fact, staging = (
        f"`{core}`.fct_conversations",
        f"`{core.removesuffix('core')}staging`.stg_crm__conversations",
    )
    watermarks = (
        f"select table_name, watermark_ms, recorded_at from `{clickhouse_env}`._model_watermarks final"
        f" where model = '{core}.fct_conversations' order by all"
    )  # (recorded_at: a watermark recorded again, even unchanged, shows too)
    # A conversation replicated since the fact's watermark, in a month of its own (the fixture's are at
    # most 40 days old): a backfill of another month leaves it, with the watermark, to the next ordinary run.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " sentiment, quality_score, platform, sent_at)"
            " values ('MSG-LATE', 4, 3, 'text', 'outbound', 'positive', 9, 'wechat', now() - interval '100 days')"
        )
    replicate_tables(pg_dsn)
    [(pending_id, pending_month)] = client.query(
        f"select conversation_id, toYYYYMM(sent_at) from {staging} where sent_at < now() - interval 90 day"
    ).result_rows

    built = _months(client, fact)  # as the complete build made them
    month = max(built, key=lambda candidate: (built[candidate][0], candidate))
    assert built[month][0] >= 2 and len(built) >= 2 and pending_month not in built
    watermark_before = client.query(watermarks).result_rows
    assert watermark_before  # the build recorded one

    # The month corrupted: all its rows but one deleted, and one no full refresh would give added.
    client.command(
        f"delete from {fact} where toYYYYMM(sent_date) = {month} and conversation_id !="
        f" (select min(conversation_id) from {fact} where toYYYYMM(sent_date) = {month})"
    )
    client.command(
        f"insert into {fact} select * replace ({BOGUS_ID} as conversation_id) from {fact}"
        f" where toYYYYMM(sent_date) = {month}"
    )
    assert _months(client, fact)[month][0] == 2

    label = f"{month // 100}-{month % 100:02d}"
    result = CliRunner().invoke(app, ["backfill", "--from", label, "--select", "fct_conversations"])
    assert result.exit_code == 0, result.output
    # what it rebuilt: the month's rows before (the kept one and the bogus one) and after
    assert re.search(rf"fct_conversations │ {label} │ 2 +│ {built[month][0]} +│", result.output), (
        result.output
    )

    # The month is what the complete build made of it, i.e. staging's live rows of that month ...
    after = _months(client, fact)
    assert after[month] == built[month]
    assert _ids(client, fact, month) == _ids(client, staging, month)
    # ... every other month is untouched (the pending conversation not taken), and so is the watermark.
    assert after == built
    assert client.query(watermarks).result_rows == watermark_before


def test_a_month_not_given_as_yyyy_mm_is_an_error():
    """Refused before any connection or lock (macros/fact_backfill.sql refuses a hand-run dbt's too)."""
    result = CliRunner().invoke(app, ["backfill", "--from", "2025-13"])
    assert result.exit_code == 2
    assert "a month as YYYY-MM (e.g. 2025-01), not '2025-13'" in result.output
    reversed_range = CliRunner().invoke(app, ["backfill", "--from", "2025-03", "--to", "2025-01"])
    assert reversed_range.exit_code == 2 and "2025-01 is before --from 2025-03" in reversed_range.output
    not_a_fact = CliRunner().invoke(app, ["backfill", "--from", "2025-03", "--select", "dim_customers"])
    assert not_a_fact.exit_code == 2 and "dim_customers: not an incremental fact" in not_a_fact.output
