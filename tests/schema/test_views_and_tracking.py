"""Behaviour of the schema on a small hand-made fixture: the seed's views, partition upkeep,
change tracking (updated_at, tombstones) and migrations being idempotent."""

from __future__ import annotations

import concurrent.futures
import os
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from dateutil.relativedelta import relativedelta

from ingestion.schema import migrate
from tests.fixtures.postgres import wait_for_count

FIXTURE = """
INSERT INTO employees (employee_code, name, email, username, password_hash, role, department, level)
VALUES ('EMP_001', '王经理', 'wang@example.com', 'wang', 'x', 'manager', 'BoFu', '主管'),
       ('EMP_002', 'Li Na', 'li@example.com', 'lina', 'x', 'employee', 'MoFu', '组员'),
       ('EMP_003', 'Idle', 'idle@example.com', 'idle', 'x', 'employee', 'ToFu', '新人');
INSERT INTO customers (customer_code, name, tier, current_stage, status, assigned_employee_id, intention_score)
VALUES ('CUST_A', '张三', 'S', 'Growth', 'active', 1, 50),
       ('CUST_B', 'Bob', 'B', 'Action', 'inactive', 1, 30),
       ('CUST_C', '李四', 'C', 'Trust', 'active', 2, 10);
INSERT INTO funnel_tofu (source_key, customer_id, employee_id, contact_date, source_channel, stayed_in_group)
VALUES ('T_A', 1, 1, '2026-01-01', 'TikTok', true), ('T_C', 3, 2, '2026-01-05', 'Facebook', false);
INSERT INTO funnel_mofu (source_key, customer_id, employee_id, total_conversations, high_quality_conversations,
                         account_opened)
VALUES ('M_A', 1, 1, 40, 12, true), ('M_B', 2, 1, 10, 2, true), ('M_C', 3, 2, 3, 0, false);
INSERT INTO funnel_bofu (source_key, customer_id, employee_id, total_deposits, total_withdrawals, net_deposit,
                         withdrawal_rate, first_deposit_at, is_vip)
VALUES ('B_A', 1, 1, 10000, 2000, 8000, 20, '2026-02-01', true),
       ('B_B', 2, 1, 500, 0, 500, 0, '2026-03-01', false);
"""


@pytest.fixture
def conn(pg_dsn):
    with psycopg.connect(pg_dsn) as connection:
        connection.execute(FIXTURE)
        yield connection


def test_customer_overview_view(conn):
    rows = conn.execute(
        """SELECT customer_code, source_channel, stayed_in_group, total_conversations, account_opened,
                  net_deposit, is_vip, employee_code, employee_name
           FROM v_customer_overview ORDER BY customer_code"""
    ).fetchall()
    assert rows == [
        ("CUST_A", "TikTok", True, 40, True, Decimal("8000.00"), True, "EMP_001", "王经理"),
        ("CUST_B", None, None, 10, True, Decimal("500.00"), False, "EMP_001", "王经理"),
        ("CUST_C", "Facebook", False, 3, False, None, None, "EMP_002", "Li Na"),
    ]


def test_employee_performance_view(conn):
    rows = conn.execute(
        """SELECT employee_code, total_customers, active_customers, total_net_deposit,
                  avg_withdrawal_rate, accounts_opened, first_deposits
           FROM v_employee_performance ORDER BY employee_code"""
    ).fetchall()
    assert rows == [
        ("EMP_001", 2, 1, Decimal("8500.00"), Decimal("10"), 2, 2),
        ("EMP_002", 1, 1, None, None, 0, 0),
        ("EMP_003", 0, 0, None, None, 0, 0),
    ]


def _insert_conversation(conn, message_id, sent_at):
    return conn.execute(
        """INSERT INTO conversations (source_message_id, customer_id, employee_id, message_type, direction,
                                      content, sent_at)
           VALUES (%s, 1, 1, 'text', 'inbound', '你好', %s) RETURNING id""",
        (message_id, sent_at),
    ).fetchone()[0]


def test_row_outside_partitions_is_kept_then_moved_into_its_new_partition(conn):
    conversation_id = _insert_conversation(conn, "MSG_far", "2031-03-15 10:00:00")
    conn.execute(
        """INSERT INTO conversation_events (source_key, conversation_id, conversation_sent_at, customer_id,
                                            employee_id, event_type)
           VALUES ('E1', %s, '2031-03-15 10:00:00', 1, 1, '反问')""",
        (conversation_id,),
    )
    where = "SELECT tableoid::regclass::text FROM conversations WHERE source_message_id = 'MSG_far'"
    assert conn.execute(where).fetchone()[0] == "conversations_default"
    created = conn.execute("SELECT ensure_conversation_partitions('2031-02-01', '2031-04-01')").fetchone()[0]
    assert created == 3
    assert conn.execute(where).fetchone()[0] == "conversations_2031_03"
    assert conn.execute("SELECT count(*) FROM sync_deletions").fetchone()[0] == 0, "a move is no deletion"
    assert (
        conn.execute("SELECT ensure_conversation_partitions('2031-02-01', '2031-04-01')").fetchone()[0] == 0
    )
    conn.commit()
    assert conn.execute(
        "SELECT conversation_id, conversation_sent_at::text FROM conversation_events"
    ).fetchall() == [(conversation_id, "2031-03-15 10:00:00")]


def test_a_conversation_moved_to_another_month_by_an_update_is_no_deletion(conn):
    """PostgreSQL moves the row between partitions as a DELETE and an INSERT: the deletion trigger
    fires, and must not leave a tombstone for a row that is still there."""
    conversation_id = _insert_conversation(conn, "MSG_moved", "2025-11-20 08:00:00")
    where = "SELECT tableoid::regclass::text FROM conversations WHERE id = %s"
    assert conn.execute(where, (conversation_id,)).fetchone()[0] == "conversations_2025_11"
    conn.execute("UPDATE conversations SET sent_at = '2025-12-02 08:00:00' WHERE id = %s", (conversation_id,))
    assert conn.execute(where, (conversation_id,)).fetchone()[0] == "conversations_2025_12"
    assert conn.execute("SELECT count(*) FROM sync_deletions").fetchone()[0] == 0
    conn.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,))
    assert conn.execute("SELECT table_name, row_id FROM sync_deletions").fetchall() == [
        ("conversations", conversation_id)
    ]


@pytest.mark.parametrize(
    "corrected", ["2025-11-20 09:30:00", "2025-12-02 08:00:00"], ids=["same month", "another month"]
)
def test_a_conversation_with_events_can_have_its_sent_at_corrected(conn, corrected):
    """The events' reference (conversation_id, conversation_sent_at) follows the conversation's new
    sent_at (the seed's link is on id alone): neither is refused, nor tombstoned as deleted."""
    conversation_id = _insert_conversation(conn, "MSG_corrected", "2025-11-20 08:00:00")
    conn.execute(
        """INSERT INTO conversation_events (source_key, conversation_id, conversation_sent_at, customer_id,
                                            employee_id, event_type)
           VALUES ('E_corrected', %s, '2025-11-20 08:00:00', 1, 1, '反问')""",
        (conversation_id,),
    )
    conn.execute("UPDATE conversations SET sent_at = %s WHERE id = %s", (corrected, conversation_id))
    assert conn.execute(
        "SELECT conversation_id, conversation_sent_at::text FROM conversation_events"
    ).fetchall() == [(conversation_id, corrected)]
    assert conn.execute(
        "SELECT tableoid::regclass::text FROM conversations WHERE id = %s", (conversation_id,)
    ).fetchone() == (f"conversations_{corrected[:7].replace('-', '_')}",)
    conn.commit()
    assert _tombstones(conn) == []


def test_the_large_references_are_indexed_for_deletes(conn):
    """Deleting a conversation (or a customer) looks up the rows still referencing it: without an
    index on the referencing columns, one scan of the referencing table per deleted row."""
    unindexed = conn.execute(
        """SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
           FROM pg_constraint c
           WHERE c.contype = 'f' AND c.conparentid = 0
             AND (c.conrelid, c.confrelid) IN (('conversation_events'::regclass, 'conversations'::regclass),
                                               ('customers'::regclass, 'customers'::regclass))
             AND NOT EXISTS (
                 SELECT 1 FROM pg_index i
                 WHERE i.indrelid = c.conrelid
                   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)"""
    ).fetchall()
    assert unindexed == []


def test_event_must_reference_an_existing_conversation(conn):
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            """INSERT INTO conversation_events (source_key, conversation_id, conversation_sent_at, customer_id,
                                                employee_id, event_type)
               VALUES ('E2', 999, '2026-01-01', 1, 1, '反问')"""
        )


def test_updated_at_moves_only_on_real_changes_and_deletes_leave_tombstones(conn):
    conn.commit()
    before = conn.execute("SELECT updated_at FROM customers WHERE customer_code = 'CUST_A'").fetchone()[0]
    conn.execute("UPDATE customers SET tier = 'S' WHERE customer_code = 'CUST_A'")  # unchanged
    conn.commit()
    same = conn.execute("SELECT updated_at FROM customers WHERE customer_code = 'CUST_A'").fetchone()[0]
    assert same == before
    conn.execute("UPDATE customers SET tier = 'A' WHERE customer_code = 'CUST_A'")
    conn.commit()
    moved = conn.execute("SELECT updated_at FROM customers WHERE customer_code = 'CUST_A'").fetchone()[0]
    assert moved > before
    conversation_id = _insert_conversation(conn, "MSG_del", "2025-11-20 08:00:00")
    conn.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,))
    assert conn.execute("SELECT table_name, row_id FROM sync_deletions").fetchall() == [
        ("conversations", conversation_id)
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE customers SET tier = 'Z' WHERE id = 1",
        "UPDATE customers SET current_stage = 'Onboarding' WHERE id = 1",
        "UPDATE customers SET intention_score = 61 WHERE id = 1",
        "UPDATE funnel_mofu SET engagement_score = 101 WHERE id = 1",
        "UPDATE employees SET level = '大师' WHERE id = 1",
        "UPDATE funnel_bofu SET withdrawal_rate = -0.01 WHERE id = 1",
    ],
)
def test_closed_sets_and_ranges_are_enforced(conn, statement):
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(statement)


def test_a_customer_who_withdrew_more_than_deposited_has_a_rate_over_100(conn):
    """Profit withdrawals (盈利提现) take out more than was deposited: the seed's withdrawal_rate is
    a DECIMAL(5,2) percent, up to 999.99, beside a net_deposit that may be negative."""
    conn.execute(
        """INSERT INTO funnel_bofu (source_key, customer_id, employee_id, total_deposits, total_withdrawals,
                                    net_deposit, withdrawal_rate)
           VALUES ('B_C', 3, 2, 1000, 1500, -500, 150.00), ('B_C_max', 3, 2, 1, 10, -9, 999.99)"""
    )
    assert conn.execute(
        "SELECT withdrawal_rate::text FROM funnel_bofu WHERE customer_id = 3 ORDER BY source_key"
    ).fetchall() == [("150.00",), ("999.99",)]


def _tombstones(conn) -> list[tuple[str, int]]:
    return conn.execute("SELECT table_name, row_id FROM public.sync_deletions ORDER BY id").fetchall()


def test_change_tracking_works_whatever_the_callers_search_path(conn):
    """A hardened role or session may leave public out of its search_path: the triggers still stamp
    updated_at and leave tombstones in public.sync_deletions."""
    conversation_id = _insert_conversation(conn, "MSG_hardened", "2025-11-20 08:00:00")
    conn.commit()
    stamp = "SELECT updated_at FROM public.customers WHERE id = 1"
    before = conn.execute(stamp).fetchone()[0]
    conn.execute("SET search_path = ''")
    conn.execute("UPDATE public.customers SET tier = 'A' WHERE id = 1")
    assert conn.execute(stamp).fetchone()[0] > before
    (bofu_id,) = conn.execute(
        "DELETE FROM public.funnel_bofu WHERE source_key = 'B_B' RETURNING id"
    ).fetchone()
    conn.execute("DELETE FROM public.conversations WHERE id = %s", (conversation_id,))
    assert _tombstones(conn) == [("funnel_bofu", bofu_id), ("conversations", conversation_id)]


def test_every_trigger_function_pins_its_search_path(conn):
    """A trigger function runs with its caller's search_path unless it sets its own: an unqualified
    name in it fails (or finds another schema's table) for a caller without public first."""
    unpinned = conn.execute(
        """SELECT p.proname::text FROM pg_proc p
           WHERE p.pronamespace = 'public'::regnamespace AND p.prorettype = 'trigger'::regtype
             AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS setting
                             WHERE setting LIKE 'search_path=%')
           ORDER BY 1"""
    ).fetchall()
    assert unpinned == []


def test_every_function_searches_temporary_tables_last(conn):
    """A search_path that does not list pg_temp searches it first: a caller's temporary table named
    like a seed table would stand in for it inside the function."""
    settings = conn.execute(
        """SELECT p.proname::text, (SELECT setting FROM unnest(p.proconfig) AS setting
                                    WHERE setting LIKE 'search_path=%')
           FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1"""
    ).fetchall()
    assert "ensure_conversation_partitions" in dict(settings)
    assert [name for name, setting in settings if not (setting or "").endswith(", pg_temp")] == []


def test_the_partition_function_ignores_the_callers_temporary_tables(conn):
    """A temporary table named conversations in the caller's session: the partition is still made
    a partition of public.conversations, in public."""
    conn.execute("CREATE TEMP TABLE conversations (id BIGINT, sent_at TIMESTAMP)")
    created = conn.execute("SELECT ensure_conversation_partitions('2033-02-01', '2033-02-01')").fetchone()
    assert created == (1,)
    parent = "SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = %s::regclass"
    # (qualified: in this session "conversations" is the temporary table)
    assert conn.execute(parent, ("public.conversations_2033_02",)).fetchone() == ("public.conversations",)


def test_second_migration_run_changes_nothing(pg_dsn):
    assert migrate.apply(pg_dsn, log=lambda *_: None) == []


def test_partitions_job_creates_the_coming_months(pg_dsn, monkeypatch):
    from orchestration.defs.operations.jobs import PARTITION_MONTHS_AHEAD, conversation_partitions_job

    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", pg_dsn)
    assert conversation_partitions_job.execute_in_process().success
    with psycopg.connect(pg_dsn) as conn:
        names = {
            row[0]
            for row in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'conversations_2%'")
        }
        months = conn.execute(
            "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => m), "
            "'YYYY_MM') FROM generate_series(0, %s) AS m",
            (PARTITION_MONTHS_AHEAD,),
        ).fetchall()
    assert {f"conversations_{month}" for (month,) in months} <= names


def test_partitions_job_skips_a_month_a_partition_of_another_name_covers(conn, pg_dsn, monkeypatch):
    """A month attached by hand under another name (pg_partman's conversations_p2031_05 style) is
    covered: the job made conversations_YYYY_MM anyway, refused ("would overlap"), and failed for its
    whole window."""
    from orchestration.defs.operations.jobs import conversation_partitions_job

    name = _last_partition_ahead_dropped(conn)
    month = date(int(name[-7:-3]), int(name[-2:]), 1)
    _attach(conn, f"conversations_p{name[-7:]}", month, month + relativedelta(months=1))
    conn.commit()
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", pg_dsn)
    assert conversation_partitions_job.execute_in_process().success
    assert conn.execute("SELECT to_regclass(%s)", (f"public.{name}",)).fetchone() == (None,)


def _attach(conn, name: str, low: object, high: object) -> None:
    """A partition made by hand (DDL takes no parameters: the bounds are the test's own)."""
    conn.execute(
        f"CREATE TABLE public.{name} PARTITION OF conversations FOR VALUES FROM ('{low}') TO ('{high}')"
    )


def _partitions(conn) -> set[str]:
    rows = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'conversations'::regclass"
    )
    return {name for (name,) in rows}


def test_a_month_covered_by_partitions_of_other_names_is_skipped(conn):
    """By range, not name: April and June are made, May (one partition) and July (two) are not."""
    _attach(conn, "conversations_p2031_05", "2031-05-01", "2031-06-01")
    _attach(conn, "conversations_p2031_07_a", "2031-07-01", "2031-07-16")
    _attach(conn, "conversations_p2031_07_b", "2031-07-16", "2031-08-01")
    assert conn.execute("SELECT ensure_conversation_partitions('2031-04-01', '2031-07-01')").fetchone() == (
        2,
    )
    assert {"conversations_2031_04", "conversations_2031_06"} <= _partitions(conn)
    assert not {"conversations_2031_05", "conversations_2031_07"} & _partitions(conn)
    assert conn.execute("SELECT conversation_month_missing('2031-05-20')").fetchone() == (False,)


def test_a_month_covered_in_part_is_refused_naming_the_partition(conn):
    """No monthly partition can be made for it: the error says which partition is in the way; its
    rows outside that partition stay in the default one."""
    _attach(conn, "conversations_p2031_05_a", "2031-05-01", "2031-05-16")
    _insert_conversation(conn, "MSG_late_may", "2031-05-20 08:00:00")
    conn.commit()
    with pytest.raises(psycopg.errors.InvalidObjectDefinition) as refused:
        conn.execute("SELECT ensure_conversation_partitions('2031-04-01', '2031-06-01')")
    message = refused.value.diag.message_primary
    assert "2031-05" in message and "conversations_p2031_05_a" in message and "only part" in message
    conn.rollback()
    assert conn.execute("SELECT conversation_month_missing('2031-05-01')").fetchone() == (False,)
    where = "SELECT tableoid::regclass::text FROM conversations WHERE source_message_id = 'MSG_late_may'"
    assert conn.execute(where).fetchone() == ("conversations_default",)
    assert "conversations_2031_04" not in _partitions(conn), "the call fails whole"


def _last_partition_ahead_dropped(conn) -> str:
    """Drop the partition of the last month the partitions job creates, so that its run must
    create one (lock conversations); its name. Committed."""
    from orchestration.defs.operations.jobs import PARTITION_MONTHS_AHEAD

    (name,) = conn.execute(
        "SELECT 'conversations_' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') "
        "+ make_interval(months => %s), 'YYYY_MM')",
        (PARTITION_MONTHS_AHEAD,),
    ).fetchone()
    if conn.execute("SELECT to_regclass(%s)", (f"public.{name}",)).fetchone()[0]:
        conn.execute(f"ALTER TABLE conversations DETACH PARTITION {name}")
        conn.execute(f"DROP TABLE {name}")
    conn.commit()
    return name


_LOCKS_WAITED_FOR = """SELECT locktype FROM pg_locks
                       WHERE NOT granted AND database = (SELECT oid FROM pg_database
                                                         WHERE datname = current_database())"""


def _run_job_while_loading(load, pg_dsn):
    """Run the partitions job while ``load`` (a connection) holds a load's transaction open; once
    the job waits for a lock, a reader arrives, and then the load commits. ``(run, locks the job
    waited for, the reader's count of conversations or "blocked behind the job")``."""
    from orchestration.defs.operations.jobs import conversation_partitions_job

    def reader_arriving_after_the_job() -> tuple[list, object]:
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as reader:
                wait_for_count(reader, f"SELECT count(*) FROM ({_LOCKS_WAITED_FOR}) w", "the job waiting")
                waited_for = reader.execute(_LOCKS_WAITED_FOR).fetchall()
                reader.execute("SET statement_timeout = '2s'")  # less than the job's table-lock timeout
                try:
                    return waited_for, reader.execute("SELECT count(*) FROM conversations").fetchone()[0]
                except psycopg.errors.QueryCanceled:
                    return waited_for, "blocked behind the job"
        finally:
            load.commit()  # the load ends

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reader = pool.submit(reader_arriving_after_the_job)
        ran = conversation_partitions_job.execute_in_process()
        waited_for, read = reader.result(timeout=60)
    return ran, waited_for, read


def test_partitions_job_waits_for_a_running_load_without_blocking_readers(conn, pg_dsn):
    """While a load of conversations holds its transaction open, the job waits for the loader's
    lock, where nobody queues behind it; waiting for the table's lock instead, it would stop every
    later reader (replication, search sync, reports) for the whole load."""
    from ingestion.schema.locks import lock_table

    partition = _last_partition_ahead_dropped(conn)
    # A load in progress: the loader's lock, rows written, transaction open.
    lock_table(conn, "conversations")
    _insert_conversation(conn, "MSG_loading", "2025-11-20 08:00:00")
    ran, waited_for, read = _run_job_while_loading(conn, pg_dsn)
    # The job waited for the loader's lock; the reader ran at once (and saw no uncommitted row).
    assert (waited_for, read) == ([("advisory",)], 0)
    assert ran.success
    assert conn.execute("SELECT to_regclass(%s)::text", (f"public.{partition}",)).fetchone() == (partition,)


def test_partitions_job_waits_for_a_running_load_of_events_without_blocking_readers(conn, pg_dsn):
    """A new partition of conversations also locks conversation_events (SHARE ROW EXCLUSIVE, for its
    foreign key into conversations), which waits for a load writing events. The job waits for that
    load's lock too, holding no lock on conversations meanwhile: it took ACCESS EXCLUSIVE on
    conversations first, so readers queued behind it, then timed out on conversation_events."""
    from ingestion.schema.locks import lock_table

    conversation_id = _insert_conversation(conn, "MSG_talked", "2025-11-20 08:00:00")
    partition = _last_partition_ahead_dropped(conn)  # commits the conversation
    # A load of conversation_events in progress: its loader's lock, an event written, transaction open.
    lock_table(conn, "conversation_events")
    conn.execute(
        """INSERT INTO conversation_events (source_key, conversation_id, conversation_sent_at, customer_id,
                                            employee_id, event_type)
           VALUES ('E_loading', %s, '2025-11-20 08:00:00', 1, 1, '反问')""",
        (conversation_id,),
    )
    ran, waited_for, read = _run_job_while_loading(conn, pg_dsn)
    assert (waited_for, read) == ([("advisory",)], 1)
    assert ran.success
    assert conn.execute("SELECT to_regclass(%s)::text", (f"public.{partition}",)).fetchone() == (partition,)


@pytest.mark.parametrize("holder", ["a load", "a load of events", "a long query"])
def test_partitions_job_that_cannot_get_its_locks_fails_saying_why(conn, pg_dsn, monkeypatch, holder):
    """After its attempts the job gives up, rolled back, and says what it waited for; the next run
    catches up (partitions are created ahead)."""
    from ingestion.schema.locks import lock_table
    from orchestration.defs.operations import jobs

    partition = _last_partition_ahead_dropped(conn)
    monkeypatch.setattr(jobs, "PARTITION_LOAD_LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(jobs, "PARTITION_TABLE_LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(jobs, "PARTITION_ATTEMPTS", 2)
    monkeypatch.setattr(jobs, "PARTITION_RETRY_PAUSE_SECONDS", 0.1)
    if holder == "a load":
        lock_table(conn, "conversations")
    elif holder == "a load of events":
        lock_table(conn, "conversation_events")
    else:
        conn.execute("SELECT count(*) FROM conversations")  # ACCESS SHARE until the transaction ends
    ran = jobs.conversation_partitions_job.execute_in_process(raise_on_error=False)
    conn.rollback()
    assert not ran.success
    failure = ran.failure_data_for_node("create_conversation_partitions_ahead").user_failure_data.description
    waited_for = {
        "a load": "a load of conversations",
        "a load of events": "a load of conversation_events",
        "a long query": "the table locks a new partition takes: ACCESS EXCLUSIVE on conversations",
    }[holder]
    assert f"gave up waiting for {waited_for}" in failure and "the next run catches up" in failure
    assert conn.execute("SELECT to_regclass(%s)", (f"public.{partition}",)).fetchone() == (None,)


def _partition_schema(conn, name: str) -> str | None:
    row = conn.execute(
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = %s", (name,)
    ).fetchone()
    return row and row[0]


def test_partitions_are_created_in_public_whatever_the_search_path(pg_dsn):
    """The embedded role is called funnelhouse like the tooling schema, and the default search_path
    starts with "$user": unqualified names would put seed data there."""
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "funnelhouse"
        conn.execute('SET search_path = "$user", public')
        conn.execute("SELECT ensure_conversation_partitions('2033-01-01', '2033-01-01')")
        assert _partition_schema(conn, "conversations_2033_01") == "public"


def test_migration_moves_partitions_out_of_the_tooling_schema(conn, pg_dsn):
    """Databases migrated before 0012 may hold partitions in schema funnelhouse: they move to public."""
    conn.execute(
        "CREATE TABLE funnelhouse.conversations_2034_01 PARTITION OF public.conversations "
        "FOR VALUES FROM ('2034-01-01') TO ('2034-02-01')"
    )
    _insert_conversation(conn, "MSG_misplaced", "2034-01-10 08:00:00")
    conn.execute("DELETE FROM funnelhouse.schema_migrations WHERE version LIKE '0012%'")
    conn.commit()
    assert [version[:4] for version in migrate.apply(pg_dsn, log=lambda *_: None)] == ["0012"]
    assert _partition_schema(conn, "conversations_2034_01") == "public"
    assert conn.execute(
        "SELECT tableoid::regclass::text FROM conversations WHERE source_message_id = 'MSG_misplaced'"
    ).fetchone() == ("conversations_2034_01",)


@pytest.fixture
def empty_database(pg_server):
    """A new database nothing was migrated into; its DSN."""
    from devstack import postgres

    admin = postgres.dsn_for(pg_server["port"], pg_server["password"], "postgres")
    name = f"unmigrated_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres.dsn_for(pg_server["port"], pg_server["password"], name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_migration_waiting_for_another_has_touched_nothing(empty_database):
    """Migrations of two processes at once on a new database: the waiting one must not have raced
    the other into creating the tooling schema and the migrations table (a UniqueViolation)."""
    waiting = concurrent.futures.ThreadPoolExecutor(1)
    with psycopg.connect(empty_database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (migrate._ADVISORY_LOCK_KEY,))
        applying = waiting.submit(migrate.apply, empty_database, lambda *_: None)
        _wait_until_waiting_for_the_lock(holder, applying)
        created = holder.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'funnelhouse'").fetchone()
        holder.execute("SELECT pg_advisory_unlock(%s)", (migrate._ADVISORY_LOCK_KEY,))
        applied = applying.result(timeout=120)
    assert created == (0,)
    assert applied == [m.version for m in migrate.available()]


def _wait_until_waiting_for_the_lock(conn, applying: concurrent.futures.Future) -> None:
    def migration_running() -> None:
        assert not applying.done(), applying.exception()

    wait_for_count(
        conn,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        "the migration waiting for the lock",
        still_running=migration_running,
    )


def test_concurrent_first_migrations_all_succeed(empty_database):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(migrate.apply, empty_database, lambda *_: None) for _ in range(4)]
        applied = sorted((run.result(timeout=120) for run in runs), key=len)
    assert applied[:3] == [[], [], []] and len(applied[3]) == len(migrate.available())
