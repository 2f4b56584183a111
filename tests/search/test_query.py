import datetime as dt

import psycopg
import pytest

from ingestion.search import query, rebuild
from ingestion.search.query import (
    MAX_QUERY_CHARACTERS,
    Filters,
    QueryRefused,
    QueryTooLong,
    counts_per_day,
    search_conversations,
)
from tests.search.crm import SAMPLES, insert_conversation, seed_people, seed_samples
from tests.search.helpers import NO_LAG


@pytest.fixture
def sample_index(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        ids = seed_samples(conn, seed_people(conn))
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    return dict(zip([content for content, _, _ in SAMPLES], ids, strict=True))


def _found(client, alias, text, filters=None):
    filters = filters or Filters()
    return {hit.content for hit in search_conversations(client, text, filters, alias=alias).hits}


def test_chinese_words_find_what_they_should(search_client, search_alias, sample_index):
    assert _found(search_client, search_alias, "美股") == {SAMPLES[0][0]}  # not 美元 in sample 7
    assert _found(search_client, search_alias, "入金") == {SAMPLES[2][0]}
    assert _found(search_client, search_alias, "美元汇率") == {SAMPLES[7][0]}
    assert _found(search_client, search_alias, "期货") == set()


def test_english_words_find_what_they_should(search_client, search_alias, sample_index):
    assert _found(search_client, search_alias, "withdraw") == {SAMPLES[3][0]}
    assert _found(search_client, search_alias, "deposit account") == {SAMPLES[1][0]}
    assert _found(search_client, search_alias, "Withdraw FUNDS") == {SAMPLES[3][0]}


def test_filters_and_highlights(search_client, search_alias, sample_index):
    result = search_conversations(search_client, "美股", alias=search_alias)
    assert result.total == 1 and "<<" in result.hits[0].highlights[0]
    by_customer = search_conversations(search_client, None, Filters(customer="CUST_002"), alias=search_alias)
    assert by_customer.total == 4 and {h.customer_code for h in by_customer.hits} == {"CUST_002"}
    by_employee = search_conversations(search_client, "", Filters(employee="EMP_002"), alias=search_alias)
    assert by_employee.total == 4
    recent = search_conversations(
        search_client, None, Filters(since=dt.date(2025, 11, 7)), alias=search_alias
    )
    assert {h.id for h in recent.hits} == {sample_index[SAMPLES[6][0]], sample_index[SAMPLES[7][0]]}
    negative = search_conversations(
        search_client, None, Filters(sentiment="negative", platform="wechat"), alias=search_alias
    )
    assert [h.content for h in negative.hits] == [SAMPLES[7][0]]


def test_counts_per_day(search_client, search_alias, sample_index):
    assert counts_per_day(search_client, search_alias) == {f"2025-11-0{i + 1}": 1 for i in range(8)}


# What a user pastes into the search: a whole message, or more. OpenSearch 2.19 refused both of these
# (HTTP 400, "maxClauseCount is set to 1024"), Elasticsearch 9 found nothing.
LONG_QUERIES = {
    "1,100 words": " ".join(f"w{i}" for i in range(1100)),
    "1,030 Chinese characters": "".join(chr(0x4E00 + (i * 7) % 20000) for i in range(1030)),
}


@pytest.mark.parametrize("text", LONG_QUERIES.values(), ids=LONG_QUERIES.keys())
def test_a_query_past_the_limit_is_refused_saying_so(search_client, search_alias, sample_index, text):
    with pytest.raises(QueryTooLong, match=rf"characters long, at most {MAX_QUERY_CHARACTERS} are searched"):
        search_conversations(search_client, text, alias=search_alias)


# The shapes that make the most clauses per character: one Chinese run (a bigram per character), one
# letter words, Chinese characters and letters or digits in turn (a phrase and a word each).
_LETTERS = "bcdfghjklmnpqrstvwxyz"
QUERIES_AT_THE_LIMIT = {
    "chinese": "".join(chr(0x4E00 + (i * 7) % 20000) for i in range(MAX_QUERY_CHARACTERS)),
    "letters": " ".join(_LETTERS[i % len(_LETTERS)] for i in range(MAX_QUERY_CHARACTERS))[
        :MAX_QUERY_CHARACTERS
    ],
    "chinese and letters": "".join(
        chr(0x4E00 + i) if i % 2 else _LETTERS[i % len(_LETTERS)] for i in range(MAX_QUERY_CHARACTERS)
    ),
    "chinese and digits": "".join(
        chr(0x4E00 + i) if i % 2 else str(i % 10) for i in range(MAX_QUERY_CHARACTERS)
    ),
    "spaced chinese": " ".join(chr(0x4E00 + 3 * i) for i in range(MAX_QUERY_CHARACTERS))[
        :MAX_QUERY_CHARACTERS
    ],
}


def test_every_query_up_to_the_limit_is_answered_and_a_pasted_message_is_found(
    pg_dsn, search_client, search_alias
):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        for text in QUERIES_AT_THE_LIMIT.values():
            insert_conversation(conn, people, text)
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    for name, text in QUERIES_AT_THE_LIMIT.items():
        assert len(text) == MAX_QUERY_CHARACTERS, name
        found = {hit.content for hit in search_conversations(search_client, text, alias=search_alias).hits}
        assert text in found, name


@pytest.mark.parametrize("search_engine", ["opensearch"], indirect=True)
def test_a_query_the_engine_refuses_is_a_query_refused_with_its_reason(
    search_client, search_alias, sample_index, monkeypatch
):
    monkeypatch.setattr(query, "MAX_QUERY_CHARACTERS", 2000)  # past the limit, as before there was one
    with pytest.raises(
        QueryRefused, match="the search engine refused the query: .*maxClauseCount is set to 1024"
    ):
        search_conversations(search_client, LONG_QUERIES["1,030 Chinese characters"], alias=search_alias)
