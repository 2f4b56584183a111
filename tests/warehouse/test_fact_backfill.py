"""``funnelhouse backfill``: an incremental run of a fact that replaces whole months with their live rows
from staging (dbt_project/macros/fact_backfill.sql), leaving the other months (but for the older
versions of rows moved into those months) and the fact's watermark as they were, so the next ordinary
run still takes every change replicated before it."""

from __future__ import annotations

import logging
import os
import re

import psycopg
from typer.testing import CliRunner

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.cli import app
from orchestration.commands.backfill import FACT_MONTH_COLUMNS
from orchestration.defs.warehouse.build import marts_schema
from orchestration.defs.warehouse.dbt_environment import export_dbt_env

BOGUS_ID = 999_999_999


def _months(client, fact: str, day: str = "sent_date") -> dict[int, tuple[int, int]]:
    """{YYYYMM: (rows, checksum of every column of them)} of the fact (by default fct_conversations)."""
    rows = client.query(
        f"select toYYYYMM({day}) as month, count(), groupBitXor(cityHash64(*)) from {fact} group by month"
    ).result_rows
    return {month: (count, checksum) for month, count, checksum in rows}


def _ids(
    client, relation: str, month: int, key: str = "conversation_id", stamp: str = "sent_at"
) -> list[int]:
    return [
        id_
        for (id_,) in client.query(
            f"select {key} from {relation} where toYYYYMM(toDate({stamp})) = {month} order by 1"
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


def test_a_row_a_pending_change_moved_into_a_backfilled_month_is_in_the_fact_once(
    built_warehouse, pg_dsn, clickhouse_env
):
    """A change newer than the fact's watermark swapped the times of a row of the backfilled month and
    of a row of another month: the backfill appends the one moved in and deletes its old version
    outside; the one moved out is in neither month until the next ordinary run, which still takes
    both (the watermark stays)."""
    client = clickhouse_client()
    core = marts_schema().removesuffix("marts") + "core"
    staging = core.removesuffix("core") + "staging"
    facts = {  # fact: (PostgreSQL table, id, Date column, the timestamp it is the day of)
        "fct_deposits": ("deposits", "deposit_id", "deposit_date", "deposited_at"),
        "fct_conversations": ("conversations", "conversation_id", "sent_date", "sent_at"),
    }
    # The fixture has a deposit and a conversation 2 days old (its newest deposit), a deposit 80 days old
    # and a conversation 40: both facts have rows in the newest deposit's month and in an earlier one.
    [(month,)] = client.query(f"select toYYYYMM(max(deposit_date)) from `{core}`.fct_deposits").result_rows
    moved = {}  # fact: (the id moved into the month, the id moved out of it)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for fact, (table, key, day, stamp) in facts.items():
            [moved[fact]] = client.query(
                f"select minIf({key}, toYYYYMM({day}) != {month}), minIf({key}, toYYYYMM({day}) = {month})"
                f" from `{core}`.{fact}"
            ).result_rows
            assert 0 not in moved[fact]
            conn.execute(
                f"update {table} set {stamp} = other.{stamp} from {table} as other"
                f" where ({table}.id, other.id) in ((%(a)s, %(b)s), (%(b)s, %(a)s))",
                {"a": moved[fact][0], "b": moved[fact][1]},
            )
    replicate_tables(pg_dsn)

    label = f"{month // 100}-{month % 100:02d}"
    selected = [option for fact in facts for option in ("--select", fact)]
    result = CliRunner().invoke(app, ["backfill", "--from", label, *selected])
    assert result.exit_code == 0, result.output

    watermarks = client.query(
        f"select model, table_name, watermark_ms from `{clickhouse_env}`._model_watermarks final"
    ).result_rows
    for fact, (table, key, _, stamp) in facts.items():
        moved_in, moved_out = moved[fact]
        ids = [id_ for (id_,) in client.query(f"select {key} from `{core}`.{fact}").result_rows]
        assert len(ids) == len(set(ids)), fact  # each id once
        in_month = _ids(client, f"`{core}`.{fact}", month, key, stamp)
        assert in_month == _ids(client, f"`{staging}`.stg_crm__{table}", month, key, stamp), fact
        assert moved_in in in_month and moved_out not in ids, fact
        # Both are the next ordinary run's: versions replicated after the fact's watermark, still there.
        [watermark_ms] = [ms for model, name, ms in watermarks if (model, name) == (f"{core}.{fact}", table)]
        pending = client.query(
            f"select distinct id from `{clickhouse_env}`.{table}"
            f" where toUnixTimestamp64Milli(_replicated_at) > {watermark_ms} order by id"
        ).result_rows
        assert pending == [(id_,) for id_ in sorted(moved[fact])], fact


def test_months_without_rows_are_said_to_have_none_and_left_as_they_were(built_warehouse, clickhouse_env):
    """As `make demo` run on the 1st backfills a month with no data yet: the command says there was
    nothing to rebuild rather than drawing an empty table, and changes no fact or watermark."""
    client = clickhouse_client()
    core = marts_schema().removesuffix("marts") + "core"
    facts = {fact: (f"`{core}`.{fact}", day) for fact, day in FACT_MONTH_COLUMNS.items()}
    built = {fact: _months(client, relation, day) for fact, (relation, day) in facts.items()}
    assert all(built.values()) and all(month > 202002 for months in built.values() for month in months)
    watermarks = f"select * from `{clickhouse_env}`._model_watermarks final order by all"
    watermarks_before = client.query(watermarks).result_rows

    result = CliRunner().invoke(app, ["backfill", "--from", "2020-01", "--to", "2020-02"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (
        f"no rows of {', '.join(facts)} in 2020-01..2020-02, before or after the backfill: nothing to rebuild"
        in said
    ), result.output
    assert "rows before" not in said  # no empty table
    assert {fact: _months(client, relation, day) for fact, (relation, day) in facts.items()} == built
    assert client.query(watermarks).result_rows == watermarks_before


def _backfill_warnings(caplog) -> list[str]:
    return [
        record.getMessage() for record in caplog.records if "FUNNELHOUSE_BACKFILL_" in record.getMessage()
    ]


def test_a_month_not_given_as_yyyy_mm_is_an_error():
    """Refused before any connection or lock (macros/fact_backfill.sql refuses a hand-run dbt's too)."""
    result = CliRunner().invoke(app, ["backfill", "--from", "2025-13"])
    assert result.exit_code == 2
    assert "a month as YYYY-MM (e.g. 2025-01), not '2025-13'" in result.output
    reversed_range = CliRunner().invoke(app, ["backfill", "--from", "2025-03", "--to", "2025-01"])
    assert reversed_range.exit_code == 2 and "2025-01 is before --from 2025-03" in reversed_range.output
    not_a_fact = CliRunner().invoke(app, ["backfill", "--from", "2025-03", "--select", "dim_customers"])
    assert not_a_fact.exit_code == 2 and "dim_customers: not an incremental fact" in not_a_fact.output


def test_backfill_months_exported_outside_the_command_are_ignored_with_a_warning(
    built_warehouse, clickhouse_env, monkeypatch, caplog
):
    """FUNNELHOUSE_BACKFILL_* exported in a shell (or a deployment) would turn every dbt run funnelhouse
    starts into a backfill of those months: they are dropped from its environment, with a warning, and
    only `funnelhouse backfill` gives dbt its months (which win over the exported ones)."""
    client = clickhouse_client()
    fact = f"`{marts_schema().removesuffix('marts')}core`.fct_conversations"
    built = _months(client, fact)
    month = max(built, key=lambda candidate: (built[candidate][0], candidate))
    assert built[month][0] >= 2
    label = f"{month // 100}-{month % 100:02d}"
    # The month loses all its rows but one: an ordinary run (nothing changed since the watermark)
    # leaves it so; a backfill of it would put them back.
    client.command(
        f"delete from {fact} where toYYYYMM(sent_date) = {month} and conversation_id !="
        f" (select min(conversation_id) from {fact} where toYYYYMM(sent_date) = {month})"
    )
    corrupted = _months(client, fact)
    assert corrupted[month][0] == 1
    monkeypatch.setenv("FUNNELHOUSE_BACKFILL_FROM_MONTH", label)
    monkeypatch.setenv("FUNNELHOUSE_BACKFILL_TO_MONTH", label)

    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(app, ["dbt", "run", "--select", "fct_conversations"])
    assert result.exit_code == 0, result.output
    assert _months(client, fact) == corrupted  # an ordinary run, not a backfill of the month
    [warning] = _backfill_warnings(caplog)
    assert f"FUNNELHOUSE_BACKFILL_FROM_MONTH={label}, FUNNELHOUSE_BACKFILL_TO_MONTH={label}" in warning
    assert "funnelhouse backfill" in warning

    # Dagster's dbt steps: dagster-dbt's dbt inherits this process's environment, which export_dbt_env
    # changes for good (a copy of it stands in here).
    caplog.clear()
    with monkeypatch.context() as patched:
        patched.setattr(os, "environ", dict(os.environ))
        export_dbt_env()
        assert not [name for name in os.environ if name.startswith("FUNNELHOUSE_BACKFILL_")]
    assert not _backfill_warnings(caplog)  # warned once per process, not once per dbt command

    monkeypatch.setenv("FUNNELHOUSE_BACKFILL_FROM_MONTH", "2020-01")  # another month exported meanwhile
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(app, ["backfill", "--from", label, "--select", "fct_conversations"])
    assert result.exit_code == 0, result.output
    assert not _backfill_warnings(caplog)  # the backfill's own months are no inherited ones
    assert _months(client, fact) == built  # the backfill's month rebuilt, no other
