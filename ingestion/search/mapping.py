"""The ``conversations`` index: its mapping, and the settings used while a new version is loaded.

Bump ``MAPPING_VERSION`` whenever the mapping or the document shape changes: the next sync sees the
live index's ``_meta.mapping_version`` differ and runs a full rebuild into a new versioned index.

History: 2 - documents are versioned by the newest of their conversation, customer and employee
rows, and each index has its customer/employee attributes recorded (``related``), which only a
rebuild writes for all rows.
3 - the free-text tags (keywords, intention signals, risk keywords) index only terms up to 256
characters: Lucene refuses a term over 32,766 bytes, and the one document holding it would fail every
bulk, keeping the sync's cursor (and every rebuild) from ever getting past it. A longer tag stays in
``_source``, unsearchable.
4 - the same mapping; the redaction masks more forms of contact details (bracketed area codes, digits
in pairs, "at"-spelled mail addresses, labelled birth dates) and fewer dates and stock codes: the
rebuild this forces re-redacts every document already indexed at the next sensor tick, rather than
leaving the old text searchable until the nightly rebuild.
5 - no ``source_message_id``: a platform's message id can hold the sender's phone number (a WhatsApp
``wamid.`` is base64 of it), and it stays in PostgreSQL; the rebuild this forces removes it from every
document already indexed.
6 - the same mapping; the redaction masks addresses at Unicode domains or with the dot said in Chinese
("点") or spelled in the local part, "加微"/"微："/"联系方式" handles, and birth dates in Chinese
numerals or labelled "生": the rebuild this forces re-redacts every document already indexed.
Also phone numbers in other groups ("138 00138 000", "(138)0013-8000", "138，0013，8000") or partly in
words after a phone label ("电话138零0138000", "call me at four one five ...").
7 - the same mapping; a tag's run of five or more Latin letters, "_", "." or "-" is masked as a handle
unless it is a word of the CRM analysis's known tags ("加我zhangwei", "zhang.wei", "lina-wang"; not
"crypto"), as the ClickHouse tag filter drops such tags: the rebuild this forces re-redacts every
document already indexed.
8 - the same mapping; the redaction masks handles after WeChat in spaced pinyin ("Wei Xin: ..."), after
"hao"/"zhanghao"/"haoma"/"account" behind a label ("weixin hao: lina_w2024" used to mask "hao" and keep
the id), and after Instagram/Facebook labels and profile links ("ig", "fb", "facebook.com/..."): the
rebuild this forces re-redacts every document already indexed.
9 - the same mapping; the redaction reads a phone number written out with the numerals replication
masks by (``CHINESE_DIGITS``, which adds "兩" and "叄": "电话 壹叄捌零零壹叄捌零零零" was kept): the
rebuild this forces re-redacts every document already indexed.
"""

from __future__ import annotations

import re

MAPPING_VERSION = 9
DEFAULT_ALIAS = "conversations"

_KEYWORD = {"type": "keyword"}
# CRM tags are free text typed by people: a term too long to be a tag is left out of the index.
_TAG = {"type": "keyword", "ignore_above": 256}


def index_name(alias: str, stamp: str) -> str:
    """A physical index behind the alias: ``conversations_v1_20260101t030000``."""
    return f"{alias}_v{MAPPING_VERSION}_{stamp}"


def index_pattern(alias: str) -> str:
    """A wildcard for the alias's indices, which also matches those of an alias named like
    ``<alias>_v...`` ("conversations_vn"): ``stamp_of`` tells them apart."""
    return f"{alias}_v*"


def stamp_of(alias: str, index: str) -> str | None:
    """When ``index`` was created, if it is one of ``alias``'s versioned indices (``index_name``),
    else None. Stamps sort in time order, whatever the mapping version."""
    found = re.fullmatch(rf"{re.escape(alias)}_v[0-9]+_([0-9]{{8}}t[0-9]+)", index)
    return found[1] if found else None


def content_field(cjk: bool) -> dict:
    """``standard`` (one token per Han character, works everywhere) plus a ``cjk`` bigram sub-field
    where the engine has that analyzer: bigrams rank "美股" above texts that merely contain 美 and 股."""
    field = {"type": "text", "analyzer": "standard"}
    if cjk:
        field["fields"] = {"cjk": {"type": "text", "analyzer": "cjk"}}
    return field


def mappings(cjk: bool) -> dict:
    return {
        "dynamic": "strict",  # a field nobody mapped (a customer's phone...) is refused, not indexed
        "_meta": {"mapping_version": MAPPING_VERSION, "cjk": cjk, "owner": "funnelhouse"},
        "properties": {
            "id": {"type": "long"},
            "customer_code": _KEYWORD,
            "customer_tier": _KEYWORD,
            "customer_stage": _KEYWORD,
            "employee_code": _KEYWORD,
            "employee_department": _KEYWORD,
            "platform": _KEYWORD,
            "message_type": _KEYWORD,
            "direction": _KEYWORD,
            "content": content_field(cjk),
            "has_media": {"type": "boolean"},
            "sentiment": _KEYWORD,
            "keywords": _TAG,
            "intention_signals": _TAG,
            "risk_keywords": _TAG,
            "is_counter_question": {"type": "boolean"},
            "script_used_id": {"type": "long"},
            "quality_score": {"type": "integer"},
            "sent_at": {"type": "date"},
            "created_at": {"type": "date"},
            "updated_at": {"type": "date"},
        },
    }


def load_settings() -> dict:
    """While a new index is bulk loaded nobody searches it: no refreshes, no replicas, async translog
    (Elastic's "tune for indexing speed"); ``serving_settings`` restores them before the alias swap."""
    return {"refresh_interval": "-1", "number_of_replicas": 0, "translog.durability": "async"}


def serving_settings(replicas: int) -> dict:
    return {"refresh_interval": "1s", "number_of_replicas": replicas, "translog.durability": "request"}


def index_body(cjk: bool, shards: int = 1) -> dict:
    return {
        "settings": {"index": {"number_of_shards": shards, **load_settings()}},
        "mappings": mappings(cjk),
    }
