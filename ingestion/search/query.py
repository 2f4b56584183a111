"""Searching conversations by words (Chinese or English), customer, employee, platform, sentiment, time.

Words: ``standard`` splits Chinese into single characters, so "美股" as a plain match would find any
text with 美 and 股 anywhere ("股市美好", "美元和港股"). So each run of Chinese (or Japanese) characters
in the query must appear as it is written (a phrase of its characters), and the other words each
somewhere (``operator: and``): "港股 IPO" finds "IPO 认购 港股" too, and a space separates Chinese words
that need not be adjacent ("特斯拉 股价"). The whole query as a phrase ranks first, and where the
engine has the ``cjk`` sub-field its bigrams count too. Fields that do not exist (no ``content.cjk``
on Elasticsearch's minimal distribution) simply match nothing, so one query serves both engines.

The index holds message text in NFKC (``redaction.plain_forms``: full-width "ＡＡＰＬ" as "AAPL"), and
``standard`` does not fold widths: the query is written in the same form first.

A query is at most ``MAX_QUERY_CHARACTERS`` characters long (in that form, without the spaces around
it); a longer one is refused (``QueryTooLong``) before it is sent. Every word (every Chinese character,
as a bigram of ``content.cjk``) becomes a clause of its own, and OpenSearch 2.19 refuses a query of more
than 1,024 clauses in all ("maxClauseCount is set to 1024": a paste of 1,030 Chinese characters, or of
1,100 words), where Elasticsearch 9 answers with no hits. Measured on OpenSearch 2.19, the query of
every shape tried (Chinese runs, words, single letters, Chinese characters and letters or digits in
turn) took about one clause per character: 1,000 characters passed, 1,020 of Chinese characters and
digits in turn did not. Half of that leaves room for what was not tried. Cutting the text instead
would drop words every hit must hold, and the search would silently find texts without them. What an
engine still refuses with HTTP 400 is a ``QueryRefused`` naming its reason.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ingestion.search import mapping
from ingestion.search.client import SearchClient, error_status
from ingestion.search.redaction import plain_forms

HIGHLIGHT_PRE, HIGHLIGHT_POST = "<<", ">>"
MAX_QUERY_CHARACTERS = 500


class QueryRefused(ValueError):
    """The search text cannot be searched as given: the message says why, for the user."""


class QueryTooLong(QueryRefused):
    """Longer than ``MAX_QUERY_CHARACTERS``: refused before it is sent."""


@dataclass(frozen=True)
class Filters:
    customer: str | None = None
    employee: str | None = None
    platform: str | None = None
    sentiment: str | None = None
    since: dt.date | dt.datetime | None = None
    until: dt.date | dt.datetime | None = None


@dataclass(frozen=True)
class Hit:
    id: int
    score: float | None
    sent_at: str
    customer_code: str
    employee_code: str
    platform: str | None
    sentiment: str | None
    direction: str
    content: str | None
    highlights: list[str]


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[Hit]
    took_ms: int


# Scripts written without spaces, which ``standard`` indexes one character per token: kana, CJK
# ideographs (with their extensions and compatibility forms).
_UNSPACED_RUN = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")


def _text_clause(text: str) -> dict:
    required: list[dict] = [{"match_phrase": {"content": run}} for run in _UNSPACED_RUN.findall(text)]
    other_words = _UNSPACED_RUN.sub(" ", text)
    if not other_words.isspace():
        # Punctuation alone analyses to no term: beside Chinese words it requires nothing ("美股！"),
        # alone it finds nothing ("？").
        match = {"query": other_words, "operator": "and", "zero_terms_query": "all" if required else "none"}
        required.append({"match": {"content": match}})
    return {
        "bool": {
            "must": required,
            "should": [
                {"match_phrase": {"content": {"query": text, "boost": 3}}},
                {"match": {"content.cjk": {"query": text, "operator": "and", "boost": 2}}},
            ],
        }
    }


def _filter_clauses(filters: Filters) -> list[dict]:
    clauses: list[dict] = []
    for field, value in (
        ("customer_code", filters.customer),
        ("employee_code", filters.employee),
        ("platform", filters.platform),
        ("sentiment", filters.sentiment),
    ):
        if value:
            clauses.append({"term": {field: value}})
    window = {}
    if filters.since:
        window["gte"] = filters.since.isoformat()
    if filters.until:
        window["lt"] = filters.until.isoformat()
    if window:
        clauses.append({"range": {"sent_at": window}})
    return clauses


def build_query(text: str | None, filters: Filters, size: int = 10) -> dict:
    query: dict = {"bool": {"filter": _filter_clauses(filters)}}
    if text and text.strip():
        words = plain_forms(text.strip())
        if len(words) > MAX_QUERY_CHARACTERS:
            raise QueryTooLong(
                f"the search text is {len(words):,} characters long, at most {MAX_QUERY_CHARACTERS} are "
                "searched: keep the words you are looking for"
            )
        query["bool"]["must"] = [_text_clause(words)]
        sort: list = ["_score", {"sent_at": "desc"}]
    else:
        sort = [{"sent_at": "desc"}]
    return {
        "query": query,
        "size": size,
        "sort": sort,
        "track_total_hits": True,
        "highlight": {
            "pre_tags": [HIGHLIGHT_PRE],
            "post_tags": [HIGHLIGHT_POST],
            "fields": {"content": {"number_of_fragments": 2, "fragment_size": 120}, "content.cjk": {}},
        },
    }


def search_conversations(
    client: SearchClient,
    text: str | None,
    filters: Filters = Filters(),
    *,
    alias: str = mapping.DEFAULT_ALIAS,
    size: int = 10,
) -> SearchResult:
    try:
        response = client.search(alias, build_query(text, filters, size))
    except Exception as exc:
        status = error_status(exc)
        if status == 404:
            raise LookupError(f"no search index {alias!r} yet: run `funnelhouse reindex --full`") from exc
        if status == 400:
            raise QueryRefused(f"the search engine refused the query: {_reason(exc)}") from exc
        raise
    hits = []
    for hit in response["hits"]["hits"]:
        source = hit["_source"]
        highlight = hit.get("highlight", {})
        hits.append(
            Hit(
                id=source["id"],
                score=hit.get("_score"),
                sent_at=source["sent_at"],
                customer_code=source["customer_code"],
                employee_code=source["employee_code"],
                platform=source.get("platform"),
                sentiment=source.get("sentiment"),
                direction=source["direction"],
                content=source.get("content"),
                highlights=highlight.get("content") or highlight.get("content.cjk") or [],
            )
        )
    return SearchResult(total=response["hits"]["total"]["value"], hits=hits, took_ms=response.get("took", 0))


def _reason(exc: BaseException) -> str:
    """The engine's own words for a refused request (its root cause), not the client's whole repr."""
    body = getattr(exc, "info", None) or getattr(exc, "body", None)  # opensearch-py, elasticsearch-py
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        reason = causes[0].get("reason") if isinstance(causes[0], dict) else None
        if reason:
            return str(reason)[:300]
    return str(exc)[:300]


def count_conversations(client: SearchClient, filters: Filters, *, alias: str = mapping.DEFAULT_ALIAS) -> int:
    """How many conversations match ``filters`` (no words, no hits fetched)."""
    response = client.search(
        alias, {"query": {"bool": {"filter": _filter_clauses(filters)}}, "size": 0, "track_total_hits": True}
    )
    return response["hits"]["total"]["value"]


# Ids per request when asking for the days of given documents: far below any engine's terms limit.
_IDS_PER_REQUEST = 10_000


def counts_per_day(
    client: SearchClient, alias: str = mapping.DEFAULT_ALIAS, ids: list[int] | None = None
) -> dict[str, int]:
    """Documents per UTC day of ``sent_at``, for the asset check against PostgreSQL (``ids``: of
    those documents only)."""
    if ids is not None:
        counts: dict[str, int] = {}
        for start in range(0, len(ids), _IDS_PER_REQUEST):
            chunk = [str(row_id) for row_id in ids[start : start + _IDS_PER_REQUEST]]
            for day, count in _counts_per_day(client, alias, {"ids": {"values": chunk}}).items():
                counts[day] = counts.get(day, 0) + count
        return counts
    return _counts_per_day(client, alias, None)


def _counts_per_day(client: SearchClient, alias: str, query: dict | None) -> dict[str, int]:
    response = client.search(
        alias,
        {
            "size": 0,
            **({"query": query} if query else {}),
            "aggs": {
                "days": {
                    "date_histogram": {
                        "field": "sent_at",
                        "calendar_interval": "day",
                        "min_doc_count": 1,
                        "format": "yyyy-MM-dd",
                    }
                }
            },
        },
    )
    return {
        bucket["key_as_string"]: bucket["doc_count"] for bucket in response["aggregations"]["days"]["buckets"]
    }
