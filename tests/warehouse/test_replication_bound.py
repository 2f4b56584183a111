"""The replication bound never passes a row that commits after it (ingestion/replication/cursor.py):
the triggers stamp ``updated_at`` only once the writing transaction has an xid, so a bound that does
not see the writer was read before the stamp; and the bound reads the clock before it looks at the
other sessions, so a writer it does not see stamps after its ``now``."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingestion.replication import cursor
from ingestion.replication.cursor import FALLBACK_LAG, exact_bound, exact_bound_of

# Fires after tags_set_updated_at (BEFORE triggers of a table fire in name order) and before the heap
# write, which would assign the xid anyway.
_XID_CHECK = """
create function test_xid_assigned_at_stamp() returns trigger language plpgsql as $$
begin
    if pg_current_xact_id_if_assigned() is null then
        raise exception 'updated_at stamped by a transaction without an xid';
    end if;
    return new;
end;
$$;
create trigger tags_zz_xid_check before insert or update on tags
    for each row execute function test_xid_assigned_at_stamp();
"""

# An explicit id: a nextval() that has to WAL-log (one call in 32) assigns the xid itself.
_INSERT_TAG = "insert into tags (id, name, category) values (%s, %s, 'test') returning id, updated_at"

_WRITTEN_BEFORE_THE_CHECK = 1000


@pytest.fixture
def tags_checked_for_xid(pg_dsn):
    """Every tag written from now on is checked; one (``_WRITTEN_BEFORE_THE_CHECK``) exists already."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(_INSERT_TAG, (_WRITTEN_BEFORE_THE_CHECK, "written before the check"))
        conn.execute(_XID_CHECK)
        [(first, last)] = conn.execute(
            "select min(tgname), max(tgname) from pg_trigger"
            " where tgrelid = 'tags'::regclass and tgname in ('tags_set_updated_at', 'tags_zz_xid_check')"
        ).fetchall()
        assert (first, last) == ("tags_set_updated_at", "tags_zz_xid_check")  # the check fires second
    return pg_dsn


def test_an_insert_that_starts_its_transaction_is_stamped_once_it_has_an_xid(tags_checked_for_xid):
    with psycopg.connect(tags_checked_for_xid) as conn:  # the insert is the transaction's first write
        conn.execute(_INSERT_TAG, (1001, "first write"))


def test_an_update_that_starts_its_transaction_is_stamped_once_it_has_an_xid(tags_checked_for_xid):
    """PostgreSQL locks the old row, which assigns the xid, before an UPDATE's BEFORE triggers; the
    trigger asks for it anyway and does not rely on that."""
    with psycopg.connect(tags_checked_for_xid) as conn:
        updated = conn.execute("update tags set color = 'red' where id = %s", (_WRITTEN_BEFORE_THE_CHECK,))
        assert updated.rowcount == 1


def test_a_writer_the_bound_does_not_see_stamps_after_the_bound(pg_dsn):
    """The clock the bound is read at is never later than its view of the other sessions. Here the
    reader's view of pg_stat_activity is taken before a writer starts (PostgreSQL keeps one per
    transaction); a bound read through that stale view would be now, past the writer's stamp, and the
    row, committed later, would lie behind the next window's start for good."""
    with psycopg.connect(pg_dsn) as reader, psycopg.connect(pg_dsn) as writer:
        reader.execute("select count(*) from pg_stat_activity").fetchone()
        [(_, stamped)] = writer.execute(_INSERT_TAG, (1002, "written during the read")).fetchall()

        bound = exact_bound_of(reader)
        writer.commit()

    assert bound.local <= stamped, (bound, stamped)


def _utc_clock(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute("select clock_timestamp() at time zone 'UTC'").fetchone()[0]


def test_a_reader_that_cannot_see_other_sessions_holds_back_by_the_fallback_lag(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        # (roles are the cluster's, not the test database's: dropped whatever happens)
        admin.execute("drop role if exists bound_reader")
        admin.execute("create role bound_reader login password 'bound-reader'")
        try:
            before = _utc_clock(admin)
            bound = exact_bound(make_conninfo(pg_dsn, user="bound_reader", password="bound-reader"))
            after = _utc_clock(admin)
        finally:
            admin.execute("drop role bound_reader")

    assert before - FALLBACK_LAG <= bound.utc <= after - FALLBACK_LAG, (before, bound, after)


def test_a_transaction_open_in_another_database_does_not_hold_back_the_bound(pg_dsn):
    """Only this database's transactions can stamp its rows: one writing in another database of the
    same server (here ``postgres``) is no reason to stop short of now."""
    with psycopg.connect(make_conninfo(pg_dsn, dbname="postgres")) as elsewhere:
        elsewhere.execute("select pg_current_xact_id()")  # an open transaction with an xid
        before = _utc_clock(elsewhere)
        bound = exact_bound(pg_dsn)

    assert bound.utc >= before, (before, bound)


def test_a_reader_that_cannot_see_other_sessions_still_waits_for_its_own_open_writes(
    pg_dsn, monkeypatch, caplog
):
    """Without pg_read_all_stats the role sees its own sessions: a load of its own still open holds
    the bound back even past the fallback lag (here none, so the lag alone would give now), and the
    run is warned that other roles' writers are not seen."""
    monkeypatch.setattr(cursor, "FALLBACK_LAG", dt.timedelta(0))
    reader = make_conninfo(pg_dsn, user="own_writes_reader", password="own-writes-reader")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("drop role if exists own_writes_reader")
        admin.execute("create role own_writes_reader login password 'own-writes-reader'")
        try:
            with psycopg.connect(reader) as load:
                (load_started,) = load.execute(
                    "select pg_current_xact_id(), now() at time zone 'UTC'"  # an xid; its start
                ).fetchone()[1:]
                bound = exact_bound(reader)
        finally:
            admin.execute("drop role own_writes_reader")

    assert bound.utc <= load_started, (bound, load_started)
    assert "can see only its own sessions" in caplog.text


def test_a_writing_transaction_left_open_is_named_in_a_warning(pg_dsn, monkeypatch, caplog):
    """A session left idle in transaction after a write holds every table's bound at its start, and
    each run would report its tables unchanged: past HELD_BACK_WARNING the run names that session."""
    monkeypatch.setattr(cursor, "HELD_BACK_WARNING", dt.timedelta(0))
    with psycopg.connect(pg_dsn, application_name="forgotten-console") as forgotten:
        forgotten.execute("select pg_current_xact_id()")  # an open transaction with an xid
        exact_bound(pg_dsn)

    assert "forgotten-console" in caplog.text and "writing transaction open since" in caplog.text
