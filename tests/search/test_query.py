import datetime as dt

import psycopg
import pytest

from ingestion.search import rebuild
from ingestion.search.query import Filters, counts_per_day, search_conversations
from tests.search.crm import SAMPLES, seed_people, seed_samples
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
    recent = search_conversations(search_client, None, Filters(since=dt.date(2025, 11, 7)), alias=search_alias)
    assert {h.id for h in recent.hits} == {sample_index[SAMPLES[6][0]], sample_index[SAMPLES[7][0]]}
    negative = search_conversations(search_client, None, Filters(sentiment="negative", platform="wechat"),
                                    alias=search_alias)
    assert [h.content for h in negative.hits] == [SAMPLES[7][0]]


def test_counts_per_day(search_client, search_alias, sample_index):
    assert counts_per_day(search_client, search_alias) == {f"2025-11-0{i + 1}": 1 for i in range(8)}
