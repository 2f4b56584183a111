"""A customer's or an employee's change reaches every document that copies it at the next sync."""

import psycopg

from ingestion.search import bulk_lines, documents, indexer, sync
from tests.search.crm import seed_people, seed_samples
from tests.search.helpers import NO_LAG, indexed_sources


def _add_conversations(conn, people, customer, employee, n):
    conn.execute(
        "INSERT INTO conversations (source_message_id, customer_id, employee_id, message_type, direction,"
        " content, platform, sent_at) SELECT 'many-' || g, %s, %s, 'text', 'outbound', 'follow-up ' || g,"
        " 'wechat', TIMESTAMP '2025-10-01' + g * INTERVAL '1 minute' FROM generate_series(1, %s) g",
        (people[customer], people[employee], n),
    )
    conn.commit()


def _shown(stored: dict, field: str, value: str) -> dict:
    return {doc_id: doc for doc_id, doc in stored.items() if doc[field] == value}


def test_customer_tier_and_stage_reach_all_their_conversations(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
        _add_conversations(conn, people, "CUST_001", "EMP_002", 1200)  # more than one bulk: streamed
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        conn.execute(
            "UPDATE customers SET tier = 'S', current_stage = 'Action' WHERE customer_code = 'CUST_001'"
        )
        # Changes no document shows: must not re-send CUST_002's conversations.
        conn.execute(
            "UPDATE customers SET last_contact_at = now(), intention_score = 42 WHERE customer_code = 'CUST_002'"
        )
        conn.commit()
    assert sync.pending(pg_dsn, search_alias, lag=NO_LAG)

    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG, batch_size=500)
    stored = indexed_sources(search_client, search_alias)
    theirs = _shown(stored, "customer_code", "CUST_001")
    assert len(theirs) == 1204 and report.related_reindexed == 1204 and report.indexed == 1204
    assert {(doc["customer_tier"], doc["customer_stage"]) for doc in theirs.values()} == {("S", "Action")}
    assert {doc["customer_tier"] for doc in _shown(stored, "customer_code", "CUST_002").values()} == {"S"}

    with psycopg.connect(pg_dsn) as conn:  # an update that changes nothing documents show
        conn.execute("UPDATE customers SET last_contact_at = now() WHERE customer_code = 'CUST_001'")
        conn.commit()
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)
    again = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (again.indexed, again.batches) == (0, 0)


def test_employee_department_reaches_their_conversations_and_old_copies_stay_out(
    pg_dsn, search_client, search_alias
):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        with documents.connect(pg_dsn) as reader, reader.transaction():
            before = [
                item
                for rows in documents.stream_conversations_of(reader, "employee_id", [people["EMP_002"]], 100)
                for item in bulk_lines.index_items(rows, search_alias)
            ]
        conn.execute("UPDATE employees SET department = 'BoFu' WHERE employee_code = 'EMP_002'")
        conn.commit()

    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert report.related_reindexed == 4
    stored = indexed_sources(search_client, search_alias)
    assert {doc["employee_department"] for doc in _shown(stored, "employee_code", "EMP_002").values()} == {
        "BoFu"
    }
    assert {doc["employee_department"] for doc in _shown(stored, "employee_code", "EMP_001").values()} == {
        "ToFu"
    }

    # A late copy read before the change (a replayed batch, a slower writer) is refused by version.
    late = search_client.bulk(before, refresh=True)
    assert (late.succeeded, late.harmless, late.failed) == (0, 4, [])
    assert indexed_sources(search_client, search_alias) == stored


def test_a_delete_outranked_by_a_customer_change_still_removes_the_document(
    pg_dsn, search_client, search_alias
):
    """A delete is versioned by when it ran, a document by the newest change of its conversation,
    customer and employee. Here the customer changes after the delete ran but commits before it, and
    a sync in between reads the conversation (still there) with the customer's newer version: the
    delete's version is older than the document's, yet the conversation is gone and must be too."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        doomed, *others = seed_samples(conn, people)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        conn.execute("UPDATE conversations SET content = 'changed, then deleted' WHERE id = %s", (doomed,))
        conn.commit()
        with psycopg.connect(pg_dsn) as slow:
            slow.execute("DELETE FROM conversations WHERE id = %s", (doomed,))
            conn.execute("UPDATE customers SET tier = 'S' WHERE id = %s", (people["CUST_001"],))
            conn.commit()
            sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)  # a tick meanwhile
            slow.commit()
        assert (
            indexed_sources(search_client, search_alias)[doomed]["customer_tier"] == "S"
        )  # the newer version
        # A conversation deleted and inserted again under its id: its delete is outranked by the new
        # row's document, which stays.
        reborn = others[0]
        conn.execute("CREATE TEMP TABLE reborn AS SELECT * FROM conversations WHERE id = %s", (reborn,))
        conn.execute("DELETE FROM conversations WHERE id = %s", (reborn,))
        conn.execute("INSERT INTO conversations SELECT * FROM reborn")
        conn.execute("UPDATE conversations SET content = 'inserted again' WHERE id = %s", (reborn,))
        conn.commit()

    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    stored = indexed_sources(search_client, search_alias)
    assert doomed not in stored and set(stored) == set(others)
    assert stored[reborn]["content"] == "inserted again"
    assert report.deleted == 1
    again = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (again.indexed, again.deleted) == (0, 0)
