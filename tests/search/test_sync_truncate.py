"""A TRUNCATE reaches the search index: it fires no row trigger, so the conversations it removes leave
no tombstone in ``sync_deletions``, only a marker (migration 0023); the sync then deletes every
document whose conversation PostgreSQL no longer has (``sync._delete_absent``), once."""

from __future__ import annotations

import datetime as dt
import logging

import psycopg

from ingestion.search import absent, documents, indexer, quarantine, rebuild, sync
from orchestration.defs.search.checks import counts_per_day_match
from orchestration.defs.search.resources import SearchResource
from tests.search.crm import insert_conversation, seed_people, seed_samples
from tests.search.helpers import NO_LAG, indexed_sources
from tests.search.test_quarantine import _refuse_non_numeric_content


def _indexed_in_two_months(pg_dsn, client, alias) -> tuple[dict[str, int], str, list[int], list[int]]:
    """Conversations of November 2025 (one partition) and December 2025 (another), an event of one of
    them (conversation_events references conversations: a TRUNCATE must cascade), all indexed;
    (people, November's partition, November's ids, December's ids)."""
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("SELECT ensure_conversation_partitions(DATE '2025-11-01', DATE '2025-12-01')")
        people = seed_people(conn)
        november = seed_samples(conn, people)
        december = [
            insert_conversation(conn, people, f"十二月的消息 {day}", sent_at=dt.datetime(2025, 12, day, 9))
            for day in (2, 3)
        ]
        conn.execute(
            "INSERT INTO conversation_events (source_key, conversation_id, conversation_sent_at, customer_id,"
            " employee_id, event_type) SELECT 'EV_' || id, id, sent_at, customer_id, employee_id, '反问'"
            " FROM conversations WHERE id = %s",
            (november[0],),
        )
        partitions = {
            row_id: partition
            for row_id, partition in conn.execute(
                "SELECT id, tableoid::regclass::text FROM conversations WHERE id = ANY(%s)",
                (november + december,),
            )
        }
        conn.commit()
    (partition,) = {partitions[row_id] for row_id in november}
    assert partition != "conversations_default" and partition not in {partitions[i] for i in december}
    indexer.synchronise(pg_dsn, client, alias, lag=NO_LAG)
    assert set(indexed_sources(client, alias)) == set(november) | set(december)
    return people, partition, november, december


def test_truncated_partition_and_table_leave_the_index_and_the_others_stay(
    pg_dsn, search_engine, search_client, search_alias, caplog, monkeypatch
):
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])  # (the check's resource)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])
    people, partition, november, december = _indexed_in_two_months(pg_dsn, search_client, search_alias)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {partition} CASCADE")
    assert sync.pending(pg_dsn, search_alias, lag=NO_LAG)  # the sensor launches a run for it
    # The day-count check before that sync: November's days hold more in the index, pending.
    check = counts_per_day_match(search_index=SearchResource(alias=search_alias, lag_seconds=0))
    assert check.passed, check.metadata
    assert "2025-11-01" in check.metadata["days_with_pending_changes"].value

    with caplog.at_level(logging.INFO, logger="ingestion.search.sync"):
        report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert report.deleted == len(november), report
    assert set(indexed_sources(search_client, search_alias)) == set(december)
    assert any("conversations was truncated in PostgreSQL" in line for line in caplog.messages), (
        caplog.messages
    )

    # Once: the marker is behind the deletions cursor now.
    again = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (again.indexed, again.deleted, again.batches) == (0, 0, 0), again
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)

    # The parent: every partition goes, and a conversation written after the TRUNCATE is indexed.
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("TRUNCATE conversations CASCADE")
        after = insert_conversation(conn, people, "清空之后的新消息", sent_at=dt.datetime(2025, 12, 9, 9))
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (report.indexed, report.deleted) == (1, len(december)), report
    assert set(indexed_sources(search_client, search_alias)) == {after}
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)


def test_the_index_is_read_a_page_at_a_time(pg_dsn, search_client, search_alias, monkeypatch):
    """The index's ids are read a page at a time, each page's absent ones deleted before the next is
    read, and each page looked up in PostgreSQL as the range from its first id to its last (``absent``):
    pages of 3 here, holding both months' ids. A conversation the index lacks within a page's range
    (its document deleted by hand) is not one of the page's: it is left to ``_index_missing``, which
    indexes it again."""
    people, partition, november, december = _indexed_in_two_months(pg_dsn, search_client, search_alias)
    with psycopg.connect(pg_dsn) as conn:  # (ids after December's first two)
        lacked, late, last = (
            insert_conversation(conn, people, f"又一条消息 {n}", sent_at=dt.datetime(2025, month, 20 + n, 9))
            for n, month in enumerate((12, 11, 12))
        )
    sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    search_client.raw.delete(index=search_client.alias_targets(search_alias)[0], id=str(lacked))
    monkeypatch.setattr(absent, "IDS_PER_PAGE", 3)
    pages: list[list[int]] = []
    read = search_client.document_ids

    def recorded(index: str, page_size: int):
        for ids in read(index, page_size):
            pages.append(ids)
            yield ids

    monkeypatch.setattr(search_client, "document_ids", recorded)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {partition} CASCADE")
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (report.deleted, report.indexed) == (len(november) + 1, 1), report
    assert set(indexed_sources(search_client, search_alias)) == {*december, lacked, last}
    assert [row_id for page in pages for row_id in page] == sorted([*november, *december, late, last])
    assert {len(page) for page in pages[:-1]} == {3}, pages
    assert any(page[0] < lacked < page[-1] for page in pages), pages


def test_a_truncate_rolled_back_changes_nothing(pg_dsn, search_client, search_alias):
    _, partition, november, december = _indexed_in_two_months(pg_dsn, search_client, search_alias)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(f"TRUNCATE {partition} CASCADE")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM sync_truncations").fetchone() == (0,)
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (report.indexed, report.deleted, report.batches) == (0, 0, 0), report
    assert set(indexed_sources(search_client, search_alias)) == set(november) | set(december)


def test_a_quarantined_conversation_truncated_leaves_the_quarantine(pg_dsn, search_client, search_alias):
    """A document the engine refused was never in the index: its conversation truncated, its entry
    leaves the list, as a tombstone's delete releases it (it named a conversation that is gone)."""
    people, partition, november, december = _indexed_in_two_months(pg_dsn, search_client, search_alias)
    index = search_client.alias_targets(search_alias)[0]
    _refuse_non_numeric_content(search_client, index)
    with psycopg.connect(pg_dsn) as conn:
        refused = insert_conversation(conn, people, "not a number", sent_at=dt.datetime(2025, 11, 20, 9))
    assert sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG).quarantined == 1
    with documents.connect(pg_dsn) as conn:
        assert [entry.doc_id for entry in quarantine.listed(conn, index)] == [refused]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {partition} CASCADE")
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    # (the engines answer a delete of a document they never held as done, or as not found: harmless)
    assert report.deleted + report.replayed == len(november) + 1, report
    assert set(indexed_sources(search_client, search_alias)) == set(december)
    with documents.connect(pg_dsn) as conn:
        assert quarantine.listed(conn, index) == []


def test_a_truncate_during_a_rebuild_leaves_the_new_index(pg_dsn, search_client, search_alias):
    """A TRUNCATE committed after the rebuild's snapshot was loaded, before the alias swap: the replay
    of what the snapshot lacks follows its marker as a sync does, so the swapped-in index lacks them."""
    _, partition, november, december = _indexed_in_two_months(pg_dsn, search_client, search_alias)

    def truncate(index: str) -> None:
        assert search_client.count(index) == len(november) + len(december)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {partition} CASCADE")

    report = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG, after_load=truncate)
    assert report.replayed_deleted == len(november), report
    assert set(indexed_sources(search_client, search_alias)) == set(december)
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)
