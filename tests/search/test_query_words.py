"""Words in the query as the index holds them: Chinese words as written, full-width forms as plain.

One engine is enough: the query is the same for both, and Elasticsearch's minimal distribution has no
``cjk`` sub-field to hide a mistake of the ``standard`` field behind."""

import psycopg
import pytest

from ingestion.search import rebuild
from ingestion.search.query import search_conversations
from tests.search.crm import insert_conversation, seed_people
from tests.search.helpers import NO_LAG

ONE_ENGINE = pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)

TEXTS = [
    "美股大涨，我想加仓",
    "股市美好",  # 美 and 股, in the other order
    "美元和港股都跌了",  # 美 and 股, far apart
    "港股 IPO 认购开始了",
    "IPO 认购 港股",
    "ＡＡＰＬ 财报不错",  # full-width: indexed as "AAPL"
    "aapl earnings beat",
    "特斯拉的股价新高",
]


@pytest.fixture
def word_index(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        for text in TEXTS:
            insert_conversation(conn, people, text)
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)


def _found(client, alias, text) -> set[str]:
    return {hit.content for hit in search_conversations(client, text, alias=alias, size=50).hits}


@ONE_ENGINE
def test_a_chinese_word_is_found_where_it_is_written_not_where_its_characters_are(
    search_client, search_alias, word_index
):
    assert _found(search_client, search_alias, "美股") == {"美股大涨，我想加仓"}
    # Chinese and English words together: each must be there, in any order
    assert _found(search_client, search_alias, "港股 IPO") == {"港股 IPO 认购开始了", "IPO 认购 港股"}
    assert _found(search_client, search_alias, "IPO认购") == {"港股 IPO 认购开始了", "IPO 认购 港股"}
    # words the user separates need not be adjacent
    assert _found(search_client, search_alias, "特斯拉 股价") == {"特斯拉的股价新高"}
    # punctuation requires nothing beside Chinese words, and finds nothing alone
    assert _found(search_client, search_alias, "美股！") == {"美股大涨，我想加仓"}
    assert _found(search_client, search_alias, "？") == set()


@ONE_ENGINE
def test_a_full_width_query_finds_what_the_index_holds_in_plain_forms(
    search_client, search_alias, word_index
):
    expected = {"AAPL 财报不错", "aapl earnings beat"}
    assert _found(search_client, search_alias, "AAPL") == expected
    assert _found(search_client, search_alias, "ＡＡＰＬ") == expected
    assert _found(search_client, search_alias, "ａａｐｌ　财报") == {"AAPL 财报不错"}
