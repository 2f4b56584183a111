from __future__ import annotations

import datetime as dt

import psycopg

from ingestion.search import documents, quarantine, rebuild, sync
from ingestion.search.client import SearchClient

NO_LAG = dt.timedelta(0)


def indexed_sources(client: SearchClient, alias: str) -> dict[int, dict]:
    client.refresh(alias)
    response = client.search(alias, {"query": {"match_all": {}}, "size": 10_000})
    return {hit["_source"]["id"]: hit["_source"] for hit in response["hits"]["hits"]}


def rebuilt_with_messages(
    pg_dsn: str, client: SearchClient, alias: str, messages: dict[str, str], prepare=None
) -> tuple[dict[int, str], dict[int, dict]]:
    """Conversations holding each text of ``messages`` (``prepare(conn, ids)`` may change them before
    the commit), a full rebuild, and the check that each document's content is the text's expected
    redaction (the dict's value); (ids -> text, the indexed documents)."""
    from tests.search.crm import insert_conversation, seed_people

    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        ids = {insert_conversation(conn, people, text): text for text in messages}
        if prepare is not None:
            prepare(conn, ids)
        conn.commit()
    rebuild.full_rebuild(pg_dsn, client, alias, lag=NO_LAG)
    stored = indexed_sources(client, alias)
    assert {row_id: stored[row_id]["content"] for row_id in ids} == {
        row_id: messages[text] for row_id, text in ids.items()
    }
    return ids, stored


def fixed_row_leaves_quarantine(
    pg_dsn: str, client: SearchClient, alias: str, index: str, row_id: int, content: str
) -> None:
    """The quarantined conversation ``row_id`` corrected in PostgreSQL (its content now ``content``):
    the next sync sends it again, the engine takes it, and it leaves quarantine."""
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE conversations SET content = %s WHERE id = %s", (content, row_id))
    fixed = sync.run_incremental(pg_dsn, client, alias, lag=NO_LAG)
    assert (fixed.indexed, fixed.quarantined) == (1, 0)
    assert indexed_sources(client, alias)[row_id]["content"] == content
    with documents.connect(pg_dsn) as conn:
        assert quarantine.listed(conn, index) == []
