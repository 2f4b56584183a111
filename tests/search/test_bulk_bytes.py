"""Bulk requests are cut by bytes as well as by count, and a document too large to send is quarantined.

The engines refuse a request body larger than their ``http.max_content_length`` (100 MB by default)
whole: a batch of long conversations cut by count alone, or one enormous conversation, failed every
run and held the sync's cursor (and every rebuild) back for good. These tests set a small budget
(``FUNNELHOUSE_SEARCH_BULK_MAX_BYTES``) instead of writing 100 MB; the last one makes the engine
itself refuse a request (one document of 101 MB, under a second).
"""

from __future__ import annotations

import datetime as dt

import orjson
import psycopg
import pytest

from ingestion.search import bulk_lines, documents, indexer, mapping, quarantine, rebuild, sync
from tests.search.crm import insert_conversation, seed_people
from tests.search.helpers import NO_LAG, fixed_row_leaves_quarantine, indexed_sources

BUDGET_VARIABLE = "FUNNELHOUSE_SEARCH_BULK_MAX_BYTES"
ONE_ENGINE = pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
# Bytes: two of the long conversations below fit in one request, the enormous one alone does not.
BUDGET = 4096
# A word only the enormous conversation holds: its quarantine entry must not quote its content.
MARKER = "enormouscontentmarker"


def _long(i: int) -> str:
    return f"conversation {i} about the market " * 40  # ~1.4 KB


def _enormous() -> str:
    return f"{MARKER} " * 400  # ~8.8 KB, more than BUDGET by itself


def _row(doc_id: int, content: str) -> documents.DocumentRow:
    source = orjson.dumps({"id": doc_id, "content": content})
    return documents.DocumentRow(doc_id, dt.datetime(2026, 1, 1), 1, source)


def test_requests_are_cut_by_count_and_by_bytes_in_order():
    sizes = [10, 10, 10, 10, 400, 10, 60, 60, 10]  # content lengths; the 400 is over the budget alone
    rows = [_row(doc_id, "x" * size) for doc_id, size in enumerate(sizes, start=1)]
    overhead = len(bulk_lines.index_item(_row(0, ""), b'"i"').lines)
    budget = 3 * (overhead + 10)  # three short ones, or one longer one and a short one
    requests = list(bulk_lines.chunks([rows[:5], rows[5:]], "i", 3, budget))
    assert [[int(item.doc_id) for item in request] for request in requests] == [
        [1, 2, 3],  # by count
        [4],  # the next one would not fit
        [5],  # alone, larger than the budget (``SearchClient.bulk`` refuses it unsent)
        [6, 7],
        [8, 9],
    ]
    assert len(requests[2][0].lines) > budget
    assert all(sum(len(item.lines) for item in request) <= budget for request in requests if len(request) > 1)


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(BUDGET_VARIABLE, raising=False)
    assert bulk_lines.max_request_bytes() == 16 * 1024**2
    monkeypatch.setenv(BUDGET_VARIABLE, "12mb")
    assert bulk_lines.max_request_bytes() == 12 * 1024**2
    monkeypatch.setenv(BUDGET_VARIABLE, "5000000")
    assert bulk_lines.max_request_bytes() == 5_000_000
    monkeypatch.setenv(BUDGET_VARIABLE, "lots")
    with pytest.raises(ValueError, match=f"{BUDGET_VARIABLE} must be a positive size.*'lots'"):
        bulk_lines.max_request_bytes()


def _record_request_sizes(client, monkeypatch) -> list[int]:
    """The size of every bulk request body sent to the (real) engine."""
    sizes: list[int] = []
    send = client.raw.bulk

    def recording_bulk(*, body, **kwargs):
        sizes.append(len(body))
        return send(body=body, **kwargs)

    monkeypatch.setattr(client.raw, "bulk", recording_bulk)
    return sizes


def _seed(conn: psycopg.Connection, people: dict[str, int], longs: int) -> tuple[list[int], int]:
    long_ids = [insert_conversation(conn, people, _long(i)) for i in range(longs)]
    return long_ids, insert_conversation(conn, people, _enormous())


def _assert_quarantined_for_its_size(entry: quarantine.QuarantinedDocument, doc_id: int) -> None:
    assert (entry.doc_id, entry.operation, entry.status) == (doc_id, "index", 413)
    assert f"#{doc_id}" in entry.reason and " bytes" in entry.reason, entry.reason
    assert MARKER not in entry.reason  # its id and size, nothing of what it says


@ONE_ENGINE
def test_the_sync_cuts_requests_by_bytes_and_quarantines_a_document_over_the_budget(
    pg_dsn, search_client, search_alias, monkeypatch
):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)  # an empty index
        long_ids, enormous = _seed(conn, people, longs=5)
    monkeypatch.setenv(BUDGET_VARIABLE, str(BUDGET))
    sizes = _record_request_sizes(search_client, monkeypatch)

    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (report.indexed, report.quarantined) == (5, 1)
    assert len(sizes) >= 3 and max(sizes) <= BUDGET, sizes  # one batch, several requests
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)  # the cursor moved past it
    assert set(indexed_sources(search_client, search_alias)) == set(long_ids)
    index = search_client.alias_targets(search_alias)[0]
    with documents.connect(pg_dsn) as conn:
        [entry] = quarantine.listed(conn, index)
    _assert_quarantined_for_its_size(entry, enormous)
    assert BUDGET_VARIABLE in entry.reason

    # Run again: nothing to send, nothing quarantined again.
    sizes.clear()
    again = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (again.indexed, again.quarantined, again.batches, sizes) == (0, 0, 0, [])

    # Shortened in PostgreSQL, it is sent again, indexed, and leaves quarantine.
    fixed_row_leaves_quarantine(pg_dsn, search_client, search_alias, index, enormous, "shortened")


@ONE_ENGINE
def test_a_rebuild_cuts_requests_by_bytes_and_swaps_in_without_the_document_over_the_budget(
    pg_dsn, search_client, search_alias, monkeypatch
):
    with psycopg.connect(pg_dsn) as conn:
        long_ids, enormous = _seed(conn, seed_people(conn), longs=5)
    monkeypatch.setenv(BUDGET_VARIABLE, str(BUDGET))
    sizes = _record_request_sizes(search_client, monkeypatch)

    for _ in range(2):  # and the same again: a rebuild is safe to re-run
        sizes.clear()
        # (one of six documents is more than the 1% a rebuild of a large table may leave out)
        report = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG, max_refused_share=0.5)
        assert (report.expected, report.loaded, report.quarantined) == (6, 5, 1)
        assert len(sizes) >= 3 and max(sizes) <= BUDGET, sizes
        assert search_client.alias_targets(search_alias) == [report.index]
        assert set(indexed_sources(search_client, search_alias)) == set(long_ids)
        with documents.connect(pg_dsn) as conn:
            [entry] = quarantine.listed(conn, report.index)
        _assert_quarantined_for_its_size(entry, enormous)

    # The incremental sync after it has nothing to send.
    caught_up = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (caught_up.indexed, caught_up.quarantined, caught_up.batches) == (0, 0, 0)


@ONE_ENGINE
def test_a_document_the_engine_refuses_as_too_large_fails_alone_and_the_rest_is_indexed(
    search_client, search_alias, monkeypatch
):
    """A budget above the engine's own limit (100 MB by default): the engine refuses the request (413);
    it is sent again in halves, the other documents are indexed, and the one the engine refuses in a
    request of its own comes back as a permanent refusal (quarantined by the sync or rebuild, as above).
    Built here rather than through PostgreSQL, which would take ~10 s to store and redact 101 MB."""
    index = mapping.index_name(search_alias, "20260101t000000")
    search_client.create_index(index, mapping.index_body(cjk=False))
    index_json = bulk_lines.index_name_json(index)

    def item(doc_id: int, content: str) -> bulk_lines.BulkItem:
        return bulk_lines.index_item(_row(doc_id, content), index_json)

    huge = 4
    items = [item(1, "small 1"), item(2, "small 2"), item(3, "small 3"), item(huge, "x" * 101 * 1024**2)]
    monkeypatch.setenv(BUDGET_VARIABLE, str(1024**3))
    sizes = _record_request_sizes(search_client, monkeypatch)

    outcome = search_client.bulk(items)
    search_client.refresh(index)
    assert sizes[0] > 100 * 1024**2  # what the engine refused
    assert outcome.succeeded == 3 and search_client.count(index) == 3
    [refused] = quarantine.refusals(outcome)  # permanent: the sync and the rebuild quarantine it
    assert (refused["id"], refused["op"], refused["status"]) == (str(huge), "index", 413)
    assert "HTTP 413" in quarantine.reason(refused) and f"#{huge}" in quarantine.reason(refused)
