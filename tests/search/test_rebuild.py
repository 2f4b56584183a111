import threading

import psycopg
import pytest

from ingestion.search import cursor_store, indexer, mapping, rebuild, sync
from ingestion.search.query import search_conversations
from ingestion.search.rebuild import RebuildReport
from tests.search.crm import insert_conversation, seed_people, seed_samples
from tests.search.helpers import NO_LAG, indexed_sources
from tests.search.test_quarantine import refusing_index_body


def _add_filler(conn, people, n):
    conn.execute(
        "INSERT INTO conversations (source_message_id, customer_id, employee_id, message_type, direction,"
        " content, platform, sent_at) SELECT 'fill-' || g, %s, %s, 'text', 'outbound', 'follow-up note ' || g,"
        " 'whatsapp', TIMESTAMP '2025-10-01' + g * INTERVAL '1 minute' FROM generate_series(1, %s) g",
        (people["CUST_002"], people["EMP_002"], n),
    )
    conn.commit()


def test_searches_keep_answering_during_rebuilds(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
        _add_filler(conn, people, 3000)
    first = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert first.loaded == first.expected == 3008

    problems, answers, done = [], [], threading.Event()

    def search_continuously():
        while not done.is_set():
            try:
                result = search_conversations(search_client, "美股", alias=search_alias)
                answers.append(result.total)
                if result.total != 1:
                    problems.append(f"{result.total} hits")
            except Exception as exc:  # any error during the rebuild is the failure we look for
                problems.append(repr(exc))

    searcher = threading.Thread(target=search_continuously)
    searcher.start()
    try:
        reports = [
            rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG, chunk_docs=200)
            for _ in range(2)
        ]
    finally:
        done.set()
        searcher.join()
    assert not problems, problems[:5]
    assert len(answers) > 10
    # the alias moved each time; the one before is kept for rollback, older ones are gone
    assert search_client.alias_targets(search_alias) == [reports[1].index]
    assert reports[1].previous == [reports[0].index]
    assert reports[1].dropped == [first.index]
    assert search_client.indices_matching(mapping.index_pattern(search_alias)) == sorted(
        [reports[0].index, reports[1].index]
    )


def test_changes_during_the_load_are_replayed(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        ids = seed_samples(conn, people)
        added = []

        def change_database(_index):
            added.append(insert_conversation(conn, people, "written while the index was loading"))
            conn.execute("DELETE FROM conversations WHERE id = %s", (ids[0],))
            conn.commit()

        report = rebuild.full_rebuild(
            pg_dsn, search_client, search_alias, lag=NO_LAG, after_load=change_database
        )
    assert report.loaded == 8 and report.replayed_indexed >= 1 and report.replayed_deleted >= 1
    assert set(indexed_sources(search_client, search_alias)) == (set(ids) - {ids[0]}) | set(added)


def test_a_failure_after_the_alias_swap_leaves_searches_on_the_new_index(
    pg_dsn, search_client, search_alias, monkeypatch
):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
        _add_filler(conn, people, 50)
    first = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    saved_state = cursor_store.save_rebuild

    def fail_after_the_swap(conn, *args):  # a statement error, so the transaction is aborted too
        conn.execute("SELECT 1 / 0")

    monkeypatch.setattr(cursor_store, "save_rebuild", fail_after_the_swap)
    with pytest.raises(psycopg.errors.DivisionByZero):  # the original error, not a cleanup's
        rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    (live,) = search_client.alias_targets(search_alias)
    assert live != first.index  # swapped to the new index, which was kept
    assert search_client.count(search_alias) == first.expected == 58
    assert search_conversations(search_client, "美股", alias=search_alias).total == 1
    assert search_client.index_exists(first.index)  # nothing dropped after a failure

    monkeypatch.setattr(cursor_store, "save_rebuild", saved_state)
    # both locks were released: the sync runs (not skipped) and finds the new index current
    with psycopg.connect(pg_dsn) as conn:
        insert_conversation(conn, people, "after the failed save 保存")
    caught_up = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG, refresh=True)
    assert not caught_up.skipped and not caught_up.needs_rebuild and caught_up.indexed >= 1
    assert search_client.count(search_alias) == 59
    third = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert third.previous == [live] and search_client.count(search_alias) == 59


def test_a_failure_before_the_swap_deletes_the_new_index(pg_dsn, search_client, search_alias, monkeypatch):
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    first = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)

    def fail(_index):
        raise RuntimeError("load interrupted")

    with pytest.raises(RuntimeError, match="load interrupted"):
        rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG, after_load=fail)
    assert search_client.alias_targets(search_alias) == [first.index]
    assert search_client.indices_matching(mapping.index_pattern(search_alias)) == [first.index]
    assert search_client.count(search_alias) == 8


def test_new_mapping_version_triggers_a_full_rebuild(pg_dsn, search_client, search_alias, monkeypatch):
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert not isinstance(indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG), RebuildReport)
    monkeypatch.setattr(mapping, "MAPPING_VERSION", mapping.MAPPING_VERSION + 1)
    report = indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert isinstance(report, RebuildReport) and f"_v{mapping.MAPPING_VERSION}_" in report.index
    assert search_client.mapping_meta(report.index)["mapping_version"] == mapping.MAPPING_VERSION
    assert len(indexed_sources(search_client, search_alias)) == 8


def test_rollback_returns_to_the_previous_index_and_catches_it_up(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        ids = seed_samples(conn, people)
    with pytest.raises(rebuild.NothingToRollBackTo):
        rebuild.roll_back(pg_dsn, search_client, search_alias, lag=NO_LAG)
    first = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    with psycopg.connect(pg_dsn) as conn:  # the first index sees this change before it is replaced
        conn.execute("UPDATE conversations SET sentiment = 'positive' WHERE id = %s", (ids[1],))
        conn.commit()
    indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
    second = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    with psycopg.connect(pg_dsn) as conn:  # made after the swap: only the second index has them
        added = insert_conversation(conn, people, "rollback check 回滚")
        conn.execute("DELETE FROM conversations WHERE id = %s", (ids[0],))
        conn.commit()
    indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)

    back = rebuild.roll_back(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (back.index, back.left) == (first.index, [second.index])
    assert search_client.alias_targets(search_alias) == [first.index]
    # caught up from the cursors the first index had: exactly the changes it had not seen
    assert (back.caught_up.indexed, back.caught_up.deleted) == (1, 1)
    docs = indexed_sources(search_client, search_alias)
    assert added in docs and ids[0] not in docs and docs[ids[1]]["sentiment"] == "positive"

    forward = rebuild.roll_back(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (forward.index, forward.left) == (second.index, [first.index])
    assert (forward.caught_up.indexed, forward.caught_up.deleted) == (0, 0)
    # the next rebuild keeps the index the alias left (the second), not merely the newest older one
    third = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert third.previous == [second.index] and third.dropped == [first.index]


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_a_rebuild_drops_only_its_own_aliass_old_indices(pg_dsn, search_client, search_alias):
    """Another alias whose name starts like this one and "_v" ("conversations" and
    "conversations_vn") has indices the wildcard ``conversations_v*`` matches too: they are not this
    alias's old versions, and a rebuild of this one must leave them alone."""
    neighbour = f"{search_alias}_vn"  # its indices are deleted with the test alias's (same prefix)
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    theirs = rebuild.full_rebuild(pg_dsn, search_client, neighbour, lag=NO_LAG)
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    last = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert theirs.index not in last.dropped
    assert search_client.alias_targets(neighbour) == [theirs.index]
    assert search_client.count(neighbour) == 8


def test_the_live_index_keeps_syncing_while_its_rebuild_fails(
    pg_dsn, search_client, search_alias, monkeypatch
):
    """After a deploy of a new mapping version whose rebuild fails its verification, the old index
    stays live: it still gets the changes (before, none until a rebuild went through, and a deleted
    conversation stayed searchable)."""
    with psycopg.connect(pg_dsn) as conn:
        ids = seed_samples(conn, seed_people(conn))
    indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
    live = search_client.alias_targets(search_alias)
    monkeypatch.setattr(mapping, "MAPPING_VERSION", mapping.MAPPING_VERSION + 1)
    monkeypatch.setattr(mapping, "index_body", refusing_index_body(mapping.index_body))  # refuses them all
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE conversations SET content = 'changed after the deploy' WHERE id = %s", (ids[0],))
        conn.execute("DELETE FROM conversations WHERE id = %s", (ids[1],))

    with pytest.raises(rebuild.RebuildVerificationFailed):
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert search_client.alias_targets(search_alias) == live
    stored = indexed_sources(search_client, search_alias)
    assert ids[1] not in stored
    assert stored[ids[0]]["content"] == "changed after the deploy"
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)
