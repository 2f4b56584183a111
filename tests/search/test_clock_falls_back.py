"""The search sync when the clock conversations are stamped with falls back (daylight saving time
ends, or the server's TimeZone is changed to one behind it): changes and deletions written after it are
stamped earlier than the saved cursors, and must still reach the index (``Cursors.rewound_for``).

The fall-back is real: the database's default TimeZone goes from UTC+1 ('<+01>-1', a POSIX zone) to UTC,
so new sessions (the writers' triggers) stamp an hour earlier."""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ingestion.search import indexer, sync
from orchestration.defs.search.checks import counts_per_day_match
from orchestration.defs.search.resources import SearchResource
from tests.search.crm import insert_conversation, seed_people
from tests.search.helpers import NO_LAG, indexed_sources


def _stamp_zone(pg_dsn: str, zone: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"alter database \"{conninfo_to_dict(pg_dsn)['dbname']}\" set timezone to '{zone}'")


def test_changes_and_deletions_written_after_the_clock_fell_back_are_synced(
    pg_dsn, search_engine, search_client, search_alias, monkeypatch
):
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])  # (the check's resource)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])
    _stamp_zone(pg_dsn, "<+01>-1")
    with psycopg.connect(pg_dsn) as writer:
        people = seed_people(writer)
        kept = insert_conversation(writer, people, "written before the fall-back")
        deleted = insert_conversation(writer, people, "deleted after the fall-back")
    indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)  # built: cursors at its bound

    _stamp_zone(pg_dsn, "UTC")  # the stamps' clock falls back an hour
    with psycopg.connect(pg_dsn) as writer:  # a new session: stamped an hour before the cursors
        # (sent a week earlier: its day has one conversation more in PostgreSQL than in the index)
        a_week_ago = dt.datetime.now() - dt.timedelta(days=7)
        added = insert_conversation(writer, people, "written after the fall-back", sent_at=a_week_ago)
        writer.execute("delete from conversations where id = %s", (deleted,))
    assert sync.pending(pg_dsn, search_alias, lag=NO_LAG)
    # The day-count check, before that sync: the index lacks a row and keeps a deleted one, both pending.
    search_client.refresh(search_alias)
    check = counts_per_day_match(search_index=SearchResource(alias=search_alias, lag_seconds=0))
    assert check.passed, check.metadata
    assert a_week_ago.date().isoformat() in check.metadata["days_with_pending_changes"].value
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (report.indexed, report.deleted) == (1, 1)
    assert set(indexed_sources(search_client, search_alias)) == {kept, added}

    again = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (again.indexed, again.deleted, again.batches) == (0, 0, 0)
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)
