"""A month of conversations detached or dropped in PostgreSQL reaches ClickHouse and the search index.

Neither ``ALTER TABLE conversations DETACH PARTITION`` nor ``DROP TABLE <partition>`` fires a row or
truncate trigger; migration 0026's event triggers leave the marker a TRUNCATE leaves (0023), and
replication and the search sync then do what they do after a TRUNCATE (test_replication_truncate.py,
tests/search/test_sync_truncate.py). DROP needs CASCADE here: conversation_events' foreign key
depends on every partition (a month is normally detached, then its table dropped).
"""

from __future__ import annotations

import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from ingestion.search import sync
from orchestration.defs.warehouse.build import build, marts_schema
from tests.fixtures.warehouse import load_fixture
from tests.search.helpers import NO_LAG, indexed_sources
from tests.search.test_sync_truncate import _indexed_in_two_months
from tests.warehouse.test_replication_truncate import _ids_in_postgresql, _live_ids_in_raw

# How a month leaves conversations: {partition} is its table.
TAKE_OUT = {
    "detach": "ALTER TABLE conversations DETACH PARTITION {partition}",
    "drop": "DROP TABLE {partition} CASCADE",
}


def _markers(conn: psycopg.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT table_name FROM sync_truncations ORDER BY id")]


def _take_out(pg_dsn: str, how: str, partition: str) -> None:
    """The month's table out of conversations, as a DBA would: its events unlinked first (a DETACH
    is refused while conversation_events references its rows)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE conversation_events SET conversation_id = NULL, conversation_sent_at = NULL"
            f" WHERE (conversation_id, conversation_sent_at) IN (SELECT id, sent_at FROM {partition})"
        )
        conn.execute(TAKE_OUT[how].format(partition=partition))


def _oldest_month(pg_dsn: str) -> tuple[str, set[int]]:
    """The partition holding the oldest conversation, and the ids the other partitions keep."""
    with psycopg.connect(pg_dsn) as conn:
        (partition,) = conn.execute(
            "SELECT tableoid::regclass::text FROM conversations ORDER BY sent_at LIMIT 1"
        ).fetchone()
        kept = {
            i
            for (i,) in conn.execute(
                f"SELECT id FROM conversations WHERE tableoid <> '{partition}'::regclass"
            )
        }
    assert partition.startswith("conversations_2") and kept  # a month, and the others keep rows
    return partition, kept


@pytest.mark.parametrize("how", sorted(TAKE_OUT))
def test_a_month_taken_out_leaves_raw_and_the_marts(how, built_warehouse, pg_dsn, clickhouse_env):
    core = marts_schema().removesuffix("marts") + "core"

    def in_the_fact() -> set[int]:
        query = f"select conversation_id from `{core}`.fct_conversations"
        return {row_id for (row_id,) in clickhouse_client().query(query).result_rows}

    partition, kept = _oldest_month(pg_dsn)
    assert in_the_fact() > kept  # the month is in the marts before
    _take_out(pg_dsn, how, partition)

    output: list[str] = []
    # (fct_conversations alone: the conversation marts' fact, and this test's only concern)
    summary = build(freshness=False, select=["fct_conversations"], log=output.append)
    assert summary.ok, "\n".join(output[-40:])
    assert (
        _live_ids_in_raw(clickhouse_env, "conversations")
        == _ids_in_postgresql(pg_dsn, "conversations")
        == kept
    )
    [conversations] = [result for result in summary.replication if result.table == "conversations"]
    assert conversations.tombstones > 0, conversations
    assert in_the_fact() == kept

    # Once: the marker is behind the cursor now, so the next run reloads nothing.
    [again] = replicate_tables(pg_dsn, ["conversations"])
    assert not again.changed and not again.window_start.startswith("1970-"), again


def test_a_detached_month_is_an_archive_and_a_rollback_leaves_no_marker(pg_dsn):
    """The detached table loses the truncation trigger it carried as a partition: its TRUNCATE or DROP
    later says nothing of conversations. A DETACH rolled back takes its marker with it."""
    load_fixture(pg_dsn)
    partition, _ = _oldest_month(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(TAKE_OUT["detach"].format(partition=partition))
        assert _markers(conn) == ["conversations"]
        conn.rollback()
        assert _markers(conn) == []

    _take_out(pg_dsn, "detach", partition)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert _markers(conn) == ["conversations"]
        triggers = (
            f"SELECT tgname FROM pg_trigger WHERE tgrelid = '{partition}'::regclass AND NOT tgisinternal"
        )
        assert conn.execute(triggers).fetchall() == []
        conn.execute(f"TRUNCATE {partition}")
        conn.execute(f"DROP TABLE {partition}")
        assert _markers(conn) == ["conversations"]


def test_partitions_made_by_hand_are_followed_and_other_ddl_leaves_no_marker(pg_dsn):
    """A partition a DBA creates or attaches (not ensure_conversation_partitions) gets 0023's trigger
    at once, so its DETACH or DROP is seen too; DDL on other tables marks nothing."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.conversations_2031_01 PARTITION OF conversations"
            " FOR VALUES FROM ('2031-01-01') TO ('2031-02-01')"
        )
        conn.execute("CREATE TABLE public.conversations_2031_02 (LIKE conversations INCLUDING ALL)")
        conn.execute(
            "ALTER TABLE conversations ATTACH PARTITION public.conversations_2031_02"
            " FOR VALUES FROM ('2031-02-01') TO ('2031-03-01')"
        )
        conn.execute("ALTER TABLE deposits ADD COLUMN scratch INTEGER")
        conn.execute("ALTER TABLE deposits DROP COLUMN scratch")
        conn.execute("CREATE TEMP TABLE conversations (id BIGINT)")
        conn.execute("DROP TABLE pg_temp.conversations")
        conn.execute("CREATE TABLE public.unrelated (id BIGINT)")
        conn.execute("DROP TABLE public.unrelated")
        assert _markers(conn) == []

        conn.execute("ALTER TABLE conversations DETACH PARTITION public.conversations_2031_01")
        conn.execute("DROP TABLE public.conversations_2031_02 CASCADE")
        assert _markers(conn) == ["conversations", "conversations"]


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)  # one engine is enough
def test_a_detached_and_a_dropped_month_leave_the_index(pg_dsn, search_client, search_alias):
    _, november_partition, november, december = _indexed_in_two_months(pg_dsn, search_client, search_alias)
    _take_out(pg_dsn, "detach", november_partition)
    assert sync.pending(pg_dsn, search_alias, lag=NO_LAG)
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert report.deleted == len(november), report
    assert set(indexed_sources(search_client, search_alias)) == set(december)

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (december_partition,) = conn.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM conversations WHERE id = ANY(%s)", (december,)
        ).fetchone()
        conn.execute(TAKE_OUT["drop"].format(partition=december_partition))
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert report.deleted == len(december), report
    assert indexed_sources(search_client, search_alias) == {}
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)
