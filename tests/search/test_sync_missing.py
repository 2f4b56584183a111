"""After a partition of conversations is attached, the sync indexes those the index lacks whose change
its cursor has passed (``sync._index_missing``, on the marker migration 0026 leaves): only those, and
it builds no other conversation's document."""

from __future__ import annotations

import datetime as dt

import psycopg

from ingestion.search import bulk_lines, documents, quarantine, sync
from tests.search.crm import insert_conversation
from tests.search.helpers import NO_LAG, indexed_sources
from tests.search.test_sync_truncate import _indexed_in_two_months
from tests.warehouse.test_partition_detach import _attach, _take_out


def test_a_month_attached_brings_back_only_what_the_index_lacks(
    pg_dsn, search_client, search_alias, monkeypatch
):
    """What counts as missing is a document's absence, not its content nor its version: after a month
    is attached again its conversations come back, and so does one deleted from the index by hand,
    while one edited there by hand is left as it is and a quarantined one is not sent again. Only the
    missing conversations' documents are built (they used to be built for every conversation)."""
    people, november_partition, november, december = _indexed_in_two_months(
        pg_dsn, search_client, search_alias
    )
    index = search_client.alias_targets(search_alias)[0]
    monkeypatch.setenv(bulk_lines.MAX_REQUEST_BYTES_VARIABLE, "20000")  # (a bulk request's budget)
    with psycopg.connect(pg_dsn) as conn:
        too_large = insert_conversation(conn, people, "长" * 10_000, sent_at=dt.datetime(2025, 12, 5, 9))
    assert sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG).quarantined == 1
    _take_out(pg_dsn, "detach", november_partition)
    assert sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG).deleted == len(november)

    edited, dropped = december
    by_hand = {**indexed_sources(search_client, search_alias)[edited], "content": "edited by hand"}
    search_client.raw.index(index=index, id=str(edited), body=by_hand, refresh=True)
    search_client.raw.delete(index=index, id=str(dropped), refresh=True)
    built: list[int] = []
    build = documents.Parties.documents

    def recorded(parties: documents.Parties, rows):
        built.extend(row[0] for row in rows)
        return build(parties, rows)

    monkeypatch.setattr(documents.Parties, "documents", recorded)
    _attach(pg_dsn, november_partition, "2025-11")
    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (report.indexed, report.quarantined, report.deleted) == (len(november) + 1, 0, 0), report
    assert sorted(built) == sorted([*november, dropped])
    stored = indexed_sources(search_client, search_alias)
    assert set(stored) == {*november, *december}
    assert stored[edited] == by_hand
    with documents.connect(pg_dsn) as conn:
        [entry] = quarantine.listed(conn, index)
    assert (entry.doc_id, entry.attempts) == (too_large, 1)
