"""A document the engine refuses for good is set aside with the engine's reason, and the sync (or the
rebuild) goes on past it: before, it failed every bulk and held the cursor back for every row after it.

The engines are made to refuse documents the way a real mapping conflict does: a numeric sub-field
on ``content``, so that a conversation whose text is not a number gets a 400
(document_parsing_exception), while one whose text is a number is indexed."""

from __future__ import annotations

import re

import psycopg
import pytest
from typer.testing import CliRunner

from ingestion.search import cursor_store, documents, indexer, mapping, quarantine, rebuild, sync
from ingestion.search.client import BulkFailed
from orchestration.cli import app
from orchestration.defs.search.checks import counts_per_day_match
from orchestration.defs.search.resources import SearchResource
from tests.search.crm import insert_conversation, seed_people, seed_samples
from tests.search.helpers import NO_LAG, fixed_row_leaves_quarantine, indexed_sources

_NUMERIC_CONTENT = {"as_number": {"type": "integer"}}


def _refuse_non_numeric_content(client, index: str) -> None:
    live = client.raw.indices.get_mapping(index=index)
    content = dict(live[index]["mappings"]["properties"]["content"])
    content["fields"] = {**content.get("fields", {}), **_NUMERIC_CONTENT}
    client.raw.indices.put_mapping(index=index, body={"properties": {"content": content}})


def refusing_index_body(index_body):
    """``index_body`` with that numeric sub-field: an index where only numeric texts are accepted."""

    def body(cjk: bool, shards: int = 1) -> dict:
        built = index_body(cjk, shards)
        content = built["mappings"]["properties"]["content"]
        content["fields"] = {**content.get("fields", {}), **_NUMERIC_CONTENT}
        return built

    return body


def test_a_refused_document_is_quarantined_and_leaves_when_it_is_accepted(
    pg_dsn, search_engine, search_client, search_alias, monkeypatch
):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        index = search_client.alias_targets(search_alias)[0]
        _refuse_non_numeric_content(search_client, index)
        refused = insert_conversation(conn, people, "not a number")
        accepted = insert_conversation(conn, people, "42")

    report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (report.indexed, report.quarantined) == (1, 1)
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)  # the cursor moved past the refused row
    stored = indexed_sources(search_client, search_alias)
    assert accepted in stored and refused not in stored
    with documents.connect(pg_dsn) as conn:
        [entry] = quarantine.listed(conn, index)
    assert (entry.doc_id, entry.operation, entry.status, entry.attempts) == (refused, "index", 400, 1)
    assert "as_number" in entry.reason, entry.reason

    # The saved state names another index than the alias (a rebuild whose state save failed after its
    # swap): the readers still list what the sync recorded, under the alias's index.
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "UPDATE search_sync_state SET physical_index = 'replaced_index' WHERE index_alias = %s",
            (search_alias,),
        )
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", pg_dsn)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])
    listing = CliRunner().invoke(app, ["search-quarantine", "--alias", search_alias], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    assert "1 quarantined document(s) in" in listing.output
    assert f"#{refused} index HTTP 400 x1" in listing.output and "as_number" in listing.output

    # The index lacks the document: the count check fails, and says which one and why.
    check = counts_per_day_match(search_index=SearchResource(alias=search_alias, lag_seconds=0))
    assert not check.passed
    [named] = check.metadata["quarantined_documents"].value
    assert named["id"] == refused and named["status"] == 400 and "as_number" in named["reason"]

    # Nothing new: nothing re-sent, the entry stays as it was.
    again = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (again.indexed, again.quarantined, again.batches) == (0, 0, 0)

    # The row is corrected in PostgreSQL: the sync sends it again, the engine takes it, it leaves.
    fixed_row_leaves_quarantine(pg_dsn, search_client, search_alias, index, refused, "7")


def _cursors(pg_dsn: str, alias: str):
    with documents.connect(pg_dsn) as conn:
        return cursor_store.load(conn, alias).cursors


def test_an_index_wide_error_holds_the_cursor_and_quarantines_nothing(pg_dsn, search_client, search_alias):
    """A closed index, or an alias without a write index, refuses every document with a 400 that says
    nothing about them: the sync fails naming the error, and applies the changes once it is fixed."""
    with psycopg.connect(pg_dsn) as conn:
        ids = seed_samples(conn, seed_people(conn))
    indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
    index = search_client.alias_targets(search_alias)[0]
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE conversations SET content = 'changed meanwhile' WHERE id = ANY(%s)", (ids[:2],))
        conn.execute("DELETE FROM conversations WHERE id = %s", (ids[2],))
    before = _cursors(pg_dsn, search_alias)

    search_client.raw.indices.close(index=index)  # an operator closed it
    try:
        with pytest.raises(BulkFailed, match=r"failed to index: index_closed_exception \(HTTP 400\)"):
            sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    finally:
        search_client.raw.indices.open(index=index)
    # A second index behind the alias: no write index.
    other = mapping.index_name(search_alias, "second")
    search_client.create_index(other, mapping.index_body(search_client.analyzer_available("cjk")))
    search_client.update_aliases([{"add": {"index": other, "alias": search_alias}}])
    with pytest.raises(BulkFailed, match=r"illegal_argument_exception \(HTTP 400\)"):
        sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    search_client.delete_index(other)

    assert _cursors(pg_dsn, search_alias) == before
    with documents.connect(pg_dsn) as conn:
        assert quarantine.count(conn, index) == 0
    fixed = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert (fixed.indexed, fixed.deleted, fixed.quarantined) == (2, 1, 0)
    stored = indexed_sources(search_client, search_alias)
    assert ids[2] not in stored
    assert [stored[row_id]["content"] for row_id in ids[:2]] == ["changed meanwhile"] * 2


def test_a_rebuild_swaps_in_without_the_refused_documents_and_lists_them(
    pg_dsn, search_engine, search_client, search_alias, monkeypatch
):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        samples = seed_samples(conn, people)
        numeric = insert_conversation(conn, people, "42")

    original_index_body = mapping.index_body
    monkeypatch.setattr(mapping, "index_body", refusing_index_body(original_index_body))
    # By default a rebuild may leave out 1%: a mapping refusing 8 of 9 is a bug, not bad rows.
    with pytest.raises(
        rebuild.RebuildVerificationFailed, match=r"refused 8 of 9 documents, more than the 1%"
    ):
        rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert search_client.alias_targets(search_alias) == []  # nothing swapped in
    with documents.connect(pg_dsn) as conn:  # and the dropped index left no quarantine behind
        assert conn.execute("select count(*) as n from search_sync_quarantine").fetchone()["n"] == 0

    report = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG, max_refused_share=0.9)
    # The count check allows for exactly the refused documents, and the alias moved.
    assert (report.expected, report.quarantined) == (len(samples) + 1, len(samples))
    assert search_client.alias_targets(search_alias) == [report.index]
    assert set(indexed_sources(search_client, search_alias)) == {numeric}
    with documents.connect(pg_dsn) as conn:
        assert sorted(entry.doc_id for entry in quarantine.listed(conn, report.index)) == sorted(samples)
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", pg_dsn)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])
    listing = CliRunner().invoke(
        app, ["search-quarantine", "--alias", search_alias, "--limit", "3"], env={"COLUMNS": "200"}
    )
    assert listing.exit_code == 0, listing.output
    assert f"8 quarantined document(s) in {report.index}, the first 3" in listing.output
    # (refused twice when the rebuild's replay of recent changes sent them again)
    assert len(re.findall(r"^#\d+ index HTTP 400 x\d, ", listing.output, flags=re.M)) == 3

    # A rebuild with the real mapping takes every row; the new index has nothing in quarantine.
    monkeypatch.setattr(mapping, "index_body", original_index_body)
    clean = rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert clean.quarantined == 0 and clean.loaded == len(samples) + 1
    with documents.connect(pg_dsn) as conn:
        assert quarantine.count(conn, clean.index) == 0


@pytest.mark.parametrize(
    ("op", "status", "error_type", "permanent"),
    [
        ("index", 400, "document_parsing_exception", True),  # Elasticsearch 8+
        ("index", 400, "mapper_parsing_exception", True),  # OpenSearch
        ("index", 400, "strict_dynamic_mapping_exception", True),
        ("index", 413, "document_too_large", True),
        ("index", 400, "index_closed_exception", False),
        ("index", 400, "illegal_argument_exception", False),  # e.g. no write index for the alias
        ("index", 400, None, False),
        ("delete", 400, "mapper_parsing_exception", False),  # a delete has no content to be wrong
        ("index", 403, "cluster_block_exception", False),
        ("index", 404, "index_not_found_exception", False),
        ("index", 429, "es_rejected_execution_exception", False),
        ("index", 500, None, False),
        ("index", 503, None, False),
    ],
)
def test_only_a_refused_document_is_permanent(op, status, error_type, permanent):
    """Only an error about the document itself is permanent; an index-wide one (a closed index, no
    write index, a block, no index, 5xx) says nothing about it: retried."""
    failure = {"id": "1", "op": op, "status": status, "error": {"type": error_type} if error_type else None}
    assert quarantine.is_permanent(failure) is permanent


def test_the_reason_reads_as_one_line_with_its_causes():
    failure = {
        "id": "7",
        "op": "index",
        "status": 400,
        "error": {
            "type": "document_parsing_exception",
            "reason": "failed to parse field [content.as_number] of type [integer]",
            "caused_by": {"type": "number_format_exception", "reason": 'For input string: "x"'},
        },
    }
    assert quarantine.reason(failure) == (
        "document_parsing_exception: failed to parse field [content.as_number] of type [integer]"
        ' <- number_format_exception: For input string: "x"'
    )
    assert quarantine.reason({"id": "7", "op": "index", "status": 400}) == "HTTP 400"
    assert len(quarantine.reason({**failure, "error": "x" * 5000})) == 2000
