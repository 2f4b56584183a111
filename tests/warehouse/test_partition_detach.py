"""A month of conversations detached, dropped or attached in PostgreSQL reaches ClickHouse and search.

Neither ``ALTER TABLE conversations DETACH PARTITION`` / ``ATTACH PARTITION`` nor ``DROP TABLE
<partition>`` fires a row or truncate trigger. Migration 0026's ``record_partition_changes()``,
called by replication and the search sync before they read markers, compares the partitions with
those it saw last and leaves the marker a TRUNCATE leaves (0023); the consumers then do what they do
after a TRUNCATE (test_replication_truncate.py, tests/search/test_sync_truncate.py), the search sync
also indexing conversations it lacks (an attached month's). DROP needs CASCADE here:
conversation_events' foreign key depends on every partition (a month is normally detached, then its
table dropped).
"""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingestion.replication import cursor
from ingestion.replication.replicate import Replicator, replicate_tables
from ingestion.replication.tables import BY_NAME
from ingestion.schema import migrate
from ingestion.search import sync
from tests.fixtures.warehouse import load_fixture
from tests.search.crm import insert_conversation, seed_people
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


def _poll(pg_dsn: str, log=lambda _message: None) -> int:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        return migrate.record_partition_changes(conn, log)


def _unlink_events(conn: psycopg.Connection, partition: str) -> None:
    """A DETACH is refused while conversation_events references the partition's rows."""
    conn.execute(
        "UPDATE conversation_events SET conversation_id = NULL, conversation_sent_at = NULL"
        f" WHERE (conversation_id, conversation_sent_at) IN (SELECT id, sent_at FROM {partition})"
    )


def _take_out(pg_dsn: str, how: str, partition: str) -> None:
    """The month's table out of conversations, as a DBA would: its events unlinked first."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        _unlink_events(conn, partition)
        conn.execute(TAKE_OUT[how].format(partition=partition))


def _attach(pg_dsn: str, partition: str, month: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE conversations ATTACH PARTITION {partition}"
            f" FOR VALUES FROM ('{month}-01') TO (('{month}-01'::date + interval '1 month')::date)"
        )


def _oldest_month(pg_dsn: str) -> tuple[str, str, set[int]]:
    """The partition holding the oldest conversation, its month (YYYY-MM), and the ids the other
    partitions keep."""
    with psycopg.connect(pg_dsn) as conn:
        partition, month = conn.execute(
            "SELECT tableoid::regclass::text, to_char(sent_at, 'YYYY-MM') FROM conversations"
            " ORDER BY sent_at LIMIT 1"
        ).fetchone()
        kept = {
            i
            for (i,) in conn.execute(
                f"SELECT id FROM conversations WHERE tableoid <> '{partition}'::regclass"
            )
        }
    assert partition.startswith("conversations_2") and kept  # a month, and the others keep rows
    return partition, month, kept


def _replicated_conversations(pg_dsn: str):
    [result] = replicate_tables(pg_dsn, ["conversations"])
    return result


def _raw_matches_postgresql(pg_dsn: str, raw_database: str) -> set[int]:
    in_postgresql = _ids_in_postgresql(pg_dsn, "conversations")
    assert _live_ids_in_raw(raw_database, "conversations") == in_postgresql
    return in_postgresql


@pytest.mark.parametrize("how", ["detach", "drop", "detach, then attach again"])
def test_a_month_taken_out_or_put_back_reaches_raw_once(how, pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    _replicated_conversations(pg_dsn)
    everything = _raw_matches_postgresql(pg_dsn, clickhouse_env)
    partition, month, kept = _oldest_month(pg_dsn)

    _take_out(pg_dsn, how.split(",")[0], partition)
    result = _replicated_conversations(pg_dsn)
    assert result.tombstones == len(everything - kept), result
    assert _raw_matches_postgresql(pg_dsn, clickhouse_env) == kept
    if how.endswith("again"):
        # Its rows' updated_at is behind the cursor: only a reload brings them back.
        _attach(pg_dsn, partition, month)
        result = _replicated_conversations(pg_dsn)
        assert result.window_start.startswith("1970-"), result
        assert _raw_matches_postgresql(pg_dsn, clickhouse_env) == everything

    # Once: the marker is behind the cursor now, so the next run reloads nothing.
    again = _replicated_conversations(pg_dsn)
    assert not again.changed and not again.window_start.startswith("1970-"), again
    assert _raw_matches_postgresql(pg_dsn, clickhouse_env)


def test_a_month_detached_before_a_dagster_run_reaches_raw_in_that_run(pg_dsn, clickhouse_env):
    # A Dagster run's first step fixes the run's bound (cursor.run_bound) before any Replicator
    # polls: the detach must be marked before that bound, not left for the next run.
    load_fixture(pg_dsn)
    _replicated_conversations(pg_dsn)
    everything = _raw_matches_postgresql(pg_dsn, clickhouse_env)
    partition, _month, kept = _oldest_month(pg_dsn)

    _take_out(pg_dsn, "detach", partition)
    said: list[str] = []
    bound = cursor.run_bound(pg_dsn, "run-after-a-detach", log=said.append)
    assert any(partition in line and "left" in line for line in said), said  # in the run's own log
    with Replicator(pg_dsn, bound=cursor.run_bound(pg_dsn, "run-after-a-detach")) as replicator:
        assert replicator.bound == bound
        result = replicator.replicate(BY_NAME["conversations"])
    assert result.tombstones == len(everything - kept), result
    assert _raw_matches_postgresql(pg_dsn, clickhouse_env) == kept


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)  # one engine is enough
def test_a_detached_reattached_and_dropped_month_reach_the_index(pg_dsn, search_client, search_alias):
    def index_matches_postgresql() -> None:
        assert set(indexed_sources(search_client, search_alias)) == _ids_in_postgresql(
            pg_dsn, "conversations"
        )

    _, november_partition, november, december = _indexed_in_two_months(pg_dsn, search_client, search_alias)
    _take_out(pg_dsn, "detach", november_partition)
    assert sync.pending(pg_dsn, search_alias, lag=NO_LAG)
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert report.deleted == len(november), report
    index_matches_postgresql()

    # Back within the engine's memory of the deletes (index.gc_deletes): sent with the marker's version.
    _attach(pg_dsn, november_partition, "2025-11")
    assert sync.pending(pg_dsn, search_alias, lag=NO_LAG)
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert report.indexed == len(november) and report.deleted == 0, report
    assert set(indexed_sources(search_client, search_alias)) == set(november) | set(december)
    index_matches_postgresql()

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (december_partition,) = conn.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM conversations WHERE id = ANY(%s)", (december,)
        ).fetchone()
    _take_out(pg_dsn, "drop", december_partition)
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert report.deleted == len(december) and report.indexed == 0, report
    assert set(indexed_sources(search_client, search_alias)) == set(november)
    index_matches_postgresql()
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)


def test_new_empty_months_leave_no_marker_and_partitions_made_by_hand_are_followed(pg_dsn):
    """A month made ahead (ensure_conversation_partitions, or a DBA's CREATE TABLE ... PARTITION OF)
    holds nothing downstream lacks: no marker, so no whole reload each month. A partition made by hand
    gets 0023's truncation trigger from the poll; one that leaves is marked, and loses it."""
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert _poll(pg_dsn) == 0 and _markers(conn) == []  # (the fixture's months are known)
        conn.execute("SELECT ensure_conversation_partitions(DATE '2031-01-01', DATE '2031-03-01')")
        conn.execute(
            "CREATE TABLE public.conversations_2031_04 PARTITION OF conversations"
            " FOR VALUES FROM ('2031-04-01') TO ('2031-05-01')"
        )
        assert _poll(pg_dsn) == 0 and _poll(pg_dsn) == 0
        assert _markers(conn) == []
        trigger = (
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.conversations_2031_04'::regclass"
            " AND tgname = 'conversations_record_truncation'"
        )
        assert conn.execute(trigger).fetchone() == (1,)

        conn.execute("ALTER TABLE conversations DETACH PARTITION public.conversations_2031_04")
        said: list[str] = []
        assert _poll(pg_dsn, said.append) == 1 and _markers(conn) == ["conversations"]
        assert said == [
            "partitions: NOTICE: conversations: {conversations_2031_04} left, {} joined holding rows;"
            " it is reloaded downstream (ClickHouse, the search index)"
        ]
        assert conn.execute(trigger).fetchone() == (0,)  # an archive: its TRUNCATE marks nothing
        conn.execute("TRUNCATE public.conversations_2031_04")
        conn.execute("DROP TABLE public.conversations_2031_04")
        # An empty table attached is no change downstream either.
        conn.execute("CREATE TABLE public.conversations_2031_05 (LIKE conversations INCLUDING ALL)")
        _attach(pg_dsn, "public.conversations_2031_05", "2031-05")
        assert _poll(pg_dsn) == 0 and _markers(conn) == ["conversations"]


def test_a_month_detached_edited_and_attached_again_between_two_polls_reaches_raw(pg_dsn, clickhouse_env):
    """The table comes back with its oid, but not with the rows deleted while it was out (a detached
    table's DELETE leaves no tombstone): the poll tells the new attachment from the old one."""
    load_fixture(pg_dsn)
    _replicated_conversations(pg_dsn)
    _raw_matches_postgresql(pg_dsn, clickhouse_env)
    partition, month, _ = _oldest_month(pg_dsn)
    assert _poll(pg_dsn) == 0

    _take_out(pg_dsn, "detach", partition)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (deleted,) = conn.execute(
            f"WITH gone AS (DELETE FROM {partition} WHERE id = (SELECT min(id) FROM {partition})"
            " RETURNING id) SELECT count(*) FROM gone"
        ).fetchone()
    assert deleted == 1
    _attach(pg_dsn, partition, month)
    said: list[str] = []
    assert _poll(pg_dsn, said.append) == 1, said
    assert said and f"conversations: {{{partition}}} left," in said[0]

    result = _replicated_conversations(pg_dsn)
    assert result.window_start.startswith("1970-") and result.tombstones == 1, result
    _raw_matches_postgresql(pg_dsn, clickhouse_env)
    assert _poll(pg_dsn) == 0  # the new attachment is recorded


@pytest.mark.parametrize(
    "wrapped",
    [
        ["SAVEPOINT before_months", "SELECT {call}", "RELEASE SAVEPOINT before_months"],
        ["DO $$ BEGIN PERFORM {call}; EXCEPTION WHEN others THEN RAISE; END $$"],
    ],
    ids=["savepoint", "exception block"],
)
def test_a_month_made_in_a_subtransaction_costs_no_reload(wrapped, pg_dsn):
    """ensure_conversation_partitions records the months it made however it is called: a month made
    in a subtransaction (catalog rows stamped with the subtransaction's xid) and filled at once is
    no change downstream."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        conn.commit()
        assert _poll(pg_dsn) == 0
        call = "ensure_conversation_partitions(DATE '2031-01-01', DATE '2031-01-01')"
        for statement in wrapped:
            conn.execute(statement.replace("{call}", call))
        insert_conversation(conn, people, "一月的消息", sent_at=dt.datetime(2031, 1, 5, 9))  # (commits)
        assert conn.execute(
            "SELECT tableoid::regclass::text FROM conversations WHERE sent_at = '2031-01-05 09:00'"
        ).fetchone() == ("conversations_2031_01",)
    assert _poll(pg_dsn) == 0
    with psycopg.connect(pg_dsn) as conn:
        assert _markers(conn) == []


def test_a_trigger_update_that_timed_out_is_retried_at_the_next_poll(pg_dsn):
    """A partition made by hand while a reader holds it: the poll cannot give it 0023's trigger
    (lock_timeout) and says so; a later poll, the set unchanged, gives it, so its TRUNCATE is seen."""
    load_fixture(pg_dsn)
    assert _poll(pg_dsn) == 0
    with psycopg.connect(pg_dsn, autocommit=True) as conn, psycopg.connect(pg_dsn) as reader:
        conn.execute(
            "CREATE TABLE public.conversations_2031_04 PARTITION OF conversations"
            " FOR VALUES FROM ('2031-04-01') TO ('2031-05-01')"
        )
        reader.execute("LOCK TABLE public.conversations_2031_04 IN ROW EXCLUSIVE MODE")  # (a writer's lock)
        said: list[str] = []
        assert _poll(pg_dsn, said.append) == 0
        assert len(said) == 1 and "could not be updated (canceling statement due to lock timeout)" in said[0]
        reader.rollback()

        assert _poll(pg_dsn) == 0
        assert conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.conversations_2031_04'::regclass"
            " AND tgname = 'conversations_record_truncation'"
        ).fetchone() == (1,)
        conn.execute("TRUNCATE public.conversations_2031_04 CASCADE")  # (conversation_events' key)
        assert "conversations" in _markers(conn)


def test_a_change_rolled_back_or_polled_twice_at_once_is_marked_once(pg_dsn):
    load_fixture(pg_dsn)
    partition, _, _ = _oldest_month(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        _unlink_events(conn, partition)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(TAKE_OUT["detach"].format(partition=partition))
        assert conn.execute("SELECT record_partition_changes()").fetchone() == (1,)
        conn.rollback()  # the DETACH, its marker and the set stored with it
        assert _markers(conn) == []

    # Two polls at once (replication and the search sync): the second waits for the first's set.
    with psycopg.connect(pg_dsn) as first:
        first.execute(TAKE_OUT["detach"].format(partition=partition))
        first.commit()
        assert first.execute("SELECT record_partition_changes()").fetchone() == (1,)
        second: list[int] = []
        waiting = threading.Thread(target=lambda: second.append(_poll(pg_dsn)))
        waiting.start()
        waiting.join(timeout=2)
        assert waiting.is_alive()  # held by the first's lock
        first.commit()
    waiting.join(timeout=30)
    assert second == [0]
    with psycopg.connect(pg_dsn) as conn:
        assert _markers(conn) == ["conversations"]


def test_no_event_trigger_a_role_without_rights_on_public_keeps_its_ddl(pg_dsn):
    """The CRM's database is shared: a role that may not even look into public creates, alters and
    drops its temp tables as before (an event trigger would run inside its DDL)."""
    role = make_conninfo(pg_dsn, user="partition_outsider", password="outsider")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")  # (this test's own database)
        # (roles are the cluster's, not the test database's: dropped whatever happens)
        admin.execute("DROP ROLE IF EXISTS partition_outsider")
        admin.execute("CREATE ROLE partition_outsider LOGIN PASSWORD 'outsider'")
        try:
            with psycopg.connect(role, autocommit=True) as outsider:
                assert outsider.execute("SELECT has_schema_privilege('public', 'USAGE')").fetchone() == (
                    False,
                )
                outsider.execute("CREATE TEMP TABLE scratch (id BIGINT)")
                outsider.execute("ALTER TABLE scratch ADD COLUMN note TEXT")
                outsider.execute("DROP TABLE scratch")
        finally:
            admin.execute("DROP ROLE partition_outsider")
        assert admin.execute("SELECT count(*) FROM pg_event_trigger").fetchone() == (0,)


def test_the_migration_marks_tables_detached_before_it_once(pg_dsn):
    """A partition detached before 0026 kept 0023's trigger: 0026 marks its seed table once and
    takes the trigger away; the first poll after it finds nothing more."""
    load_fixture(pg_dsn)
    partition, _, _ = _oldest_month(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # The database as before 0026, a month detached then.
        _unlink_events(conn, partition)
        conn.execute(
            "DROP TABLE sync_partition_sets; DROP FUNCTION record_partition_changes();"
            " DROP FUNCTION follow_partition_truncations(); DROP FUNCTION current_seed_partitions();"
            " DROP FUNCTION detached_seed_partitions(); DROP FUNCTION record_truncation_marker(TEXT) CASCADE;"
            " DROP FUNCTION partition_triggers_behind()"
        )
        conn.execute(TAKE_OUT["detach"].format(partition=partition))
        [migration] = [m for m in migrate.available() if m.version.startswith("0026_")]
        conn.execute("SET search_path TO public")  # (as migrate.apply runs it)
        conn.execute(migration.sql)
        assert _markers(conn) == ["conversations"]
        assert conn.execute(
            f"SELECT count(*) FROM pg_trigger WHERE tgrelid = '{partition}'::regclass AND NOT tgisinternal"
        ).fetchone() == (0,)
    assert _poll(pg_dsn) == 0


def test_a_migrations_warning_is_shown(pg_dsn, tmp_path, monkeypatch):
    """A step a migration leaves to a DBA, said in a WARNING, reaches the output (psycopg drops
    notices without a handler)."""
    (tmp_path / "9999_warns.sql").write_text("DO $$ BEGIN RAISE WARNING 'left to a DBA'; END $$;")
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    said: list[str] = []
    assert migrate.apply(pg_dsn, log=said.append) == ["9999_warns"]
    assert said == ["9999_warns.sql: WARNING: left to a DBA", "applied 9999_warns.sql"]
