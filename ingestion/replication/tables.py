"""What each seed table becomes in ClickHouse ``raw``: load mode, partitioning, and the PII rule.

Every raw table is a ``ReplacingMergeTree(_version, _is_deleted)`` ordered by ``id``: an update
is a newer version of the same id, a deletion is a newer version flagged ``_is_deleted = 1``,
and ``FINAL`` (used by the staging models) returns each live row once. ``id`` is the ORDER BY
because it is the only column that never changes; a changed sort key would leave the old version
behind as a second row.

Only ``conversations`` is partitioned (by month of ``sent_at``): it is the one large time series.
A ``sent_at`` changed to another month puts the row's new version in another partition, where
merges no longer collapse it with the old one; ``FINAL`` still returns one row per id, because the
partition key is not part of the sort key, so ``FINAL`` merges across partitions. Other tables are
small enough (hundreds of thousands of rows) to stay unpartitioned and merge fully.

PII (DEVELOPERS.md, data-protection rule): contact details, birth dates, names of customers,
employee account data and free text that may carry contact details stay in PostgreSQL. A dropped
column is replaced by a derived, non-identifying column where a report needs the signal
(``has_phone``, ``age_band``, ``content_length``). Employee names are replicated: staff names
are what the performance reports show, and they are not customer data.

A conversation's ``source_message_id`` (the chat platform's message id, its business key in
PostgreSQL) stays there too: platforms build it from their users' ids, a WhatsApp Cloud API
``wamid.HBgL...`` being base64 whose payload holds the sender's phone number. No model or report
needs it (a message is ``id`` outside PostgreSQL), so it is dropped rather than hashed. Dropping a
column changes the raw table's column list, so the next run reloads the table once by itself
(``Replicator._needs_reload``), and the old values go with the old table.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ingestion.generate import phrases, vocab
from ingestion.replication.connections import string_literal


@dataclass(frozen=True)
class RawTable:
    name: str
    # incremental: pulled by the updated_at cursor, deletions by sync_deletions.
    # snapshot: small reference tables, reloaded whole and swapped in atomically.
    mode: str = "incremental"
    partition_by: str | None = None
    dropped: tuple[str, ...] = ()
    # ClickHouse expressions over the source columns, evaluated while pulling.
    derived: dict[str, str] = field(default_factory=dict)
    # Columns of extracted tags, derived by the tag filter: a deployment extends its known words.
    tag_columns: tuple[str, ...] = ()

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental"

    def with_known_tag_words(self, extra: Iterable[str]) -> RawTable:
        """This table with its tag filter also knowing the deployment's ``extra`` words (``tag_words``)."""
        if not self.tag_columns:
            return self
        return dataclasses.replace(self, derived={**self.derived, **_tag_filters(self.tag_columns, extra)})


def _present(column: str) -> str:
    return f"toUInt8(ifNull({column}, '') != '')"


# A tag with any of these copied a phone number, an e-mail address or a numbered handle.
_CONTACT_CHARACTERS = "[0-9０-９@＠]"
# A run of Latin letters, "_", "-" or "." long enough to be a messenger handle without digits: WeChat
# ids are 6-20 characters and Telegram usernames 5-32 (letters, digits, "_", WeChat also "-"), and
# "zhang.wei" is an e-mail address without its domain. Full-width forms count as the ASCII ones.
_HANDLE_SHAPED = "[A-Za-zＡ-Ｚａ-ｚ_＿.．－-]{5,}"


def _known_tags_shaped_like_handles(extra: Iterable[str] = ()) -> list[str]:
    """The tags of the CRM's text analysis (keywords, risk keywords, intention signals, modelled by
    the generator: ingestion/generate/vocab.py and phrases.py) and the deployment's ``extra`` words
    that hold a handle-shaped run, such as "crypto", "withdraw" or "asked about fees", lower-cased and
    sorted (the filter's definition must not change with their order): replicated because they are
    known words."""
    signals = (
        signal
        for by_phase in (phrases.ZH, phrases.EN)
        for phrase_list in by_phase.values()
        for phrase in phrase_list
        for signal in phrase.signals
    )
    vocabulary = {*vocab.KEYWORDS, *vocab.RISK_KEYWORDS, *signals, *extra}
    return sorted({tag.lower() for tag in vocabulary if re.search(_HANDLE_SHAPED, tag)})


def _tags_without_contact_details(column: str, extra_known_words: Iterable[str] = ()) -> str:
    """A JSON array of extracted tags (keywords, intention signals, risk keywords) with only the tags
    that cannot be contact details. Tags are vocabulary: Chinese words ("美股", "询问费用"), tickers
    ("TSLA") and a few English words and phrases ("crypto", "wants to withdraw"). A tag is dropped if it
    holds a digit or an "@" (a phone number, an e-mail, a numbered handle), or a handle-shaped run of
    Latin letters (a WeChat id or Telegram username without digits, "zhangwei", "加我li_na") unless it
    is one of the analysis's known words, or of the deployment's (``tag_words``). What is lost is an
    English tag outside the vocabulary with a word of five letters or more; Chinese tags and short words (tickers, "risk") all pass. (The search
    index redacts tags instead: ``ingestion.search.redaction``.) An object becomes the array of its
    keys; anything else but an array, an empty array."""
    value = f"ifNull({column}, '')"
    elements = (
        f"if(JSONType({value}) = 'Object', arrayMap(key -> toJSONString(key), JSONExtractKeys({value})), "
        f"JSONExtractArrayRaw({value}))"
    )
    known = (
        "["
        + ", ".join(string_literal(tag) for tag in _known_tags_shaped_like_handles(extra_known_words))
        + "]"
    )
    # The raw element is matched (a number or a nested value is checked too), the string it holds is
    # looked up.
    safe = (
        f"not match(element, '{_CONTACT_CHARACTERS}') and (not match(element, '{_HANDLE_SHAPED}') "
        f"or has({known}, lowerUTF8(JSONExtractString(element))))"
    )
    kept = f"arrayFilter(element -> {safe}, {elements})"
    return f"if({column} is null, null, concat('[', arrayStringConcat({kept}, ','), ']'))"


def _tag_filters(columns: Iterable[str], extra_known_words: Iterable[str] = ()) -> dict[str, str]:
    extra = tuple(extra_known_words)
    return {column: _tags_without_contact_details(column, extra) for column in columns}


_CONTACT_COLUMNS = ("wechat_id", "whatsapp", "telegram", "email", "phone")
_TAG_COLUMNS = ("keywords", "intention_signals", "risk_keywords")

RAW_TABLES: tuple[RawTable, ...] = (
    RawTable(
        "employees",
        dropped=("avatar_url", "email", "phone", "username", "password_hash"),
    ),
    RawTable(
        "customers",
        dropped=(
            "name",
            "avatar_url",
            "age",
            "birth_date",
            *_CONTACT_COLUMNS,
            "communication_style",
            "blacklist_reason",
        ),
        derived={
            **{f"has_{column.removesuffix('_id')}": _present(column) for column in _CONTACT_COLUMNS},
            "age_band": (
                "multiIf(age is null, 'unknown', age < 25, 'under 25', age < 35, '25-34', "
                "age < 45, '35-44', age < 55, '45-54', '55 and over')"
            ),
            "has_blacklist_reason": _present("blacklist_reason"),
        },
    ),
    RawTable("tags", mode="snapshot"),
    RawTable("customer_tags"),
    RawTable("customer_journey", dropped=("notes",), derived={"has_notes": _present("notes")}),
    RawTable(
        "funnel_tofu",
        dropped=("screening_reason", "leave_reason"),
        derived={
            "has_screening_reason": _present("screening_reason"),
            "has_leave_reason": _present("leave_reason"),
        },
    ),
    RawTable("funnel_mofu"),
    RawTable("funnel_bofu"),
    RawTable("deposits", dropped=("notes",), derived={"has_notes": _present("notes")}),
    RawTable(
        "withdrawals",
        dropped=("retention_action",),
        derived={"has_retention_action": _present("retention_action")},
    ),
    RawTable("scripts", mode="snapshot", dropped=("content_cn", "content_en")),
    RawTable(
        "conversations",
        partition_by="toYYYYMM(sent_at)",
        dropped=("content", "media_url", "source_message_id", *_TAG_COLUMNS),
        derived={
            "content_length": "toUInt32(lengthUTF8(ifNull(content, '')))",
            "has_media": _present("media_url"),
            **_tag_filters(_TAG_COLUMNS),
        },
        tag_columns=_TAG_COLUMNS,
    ),
    RawTable(
        "conversation_events",
        dropped=("event_data",),
        derived={"has_event_data": "toUInt8(event_data is not null)"},
    ),
    RawTable("employee_kpis"),
    RawTable("materials", mode="snapshot", dropped=("content", "caption", "media_url", "thumbnail_url")),
    RawTable("training_courses", mode="snapshot", dropped=("content",)),
    RawTable("training_progress"),
    # Setting values may be secrets (SMTP passwords, API keys): only their presence leaves PostgreSQL.
    RawTable(
        "system_settings", mode="snapshot", dropped=("value",), derived={"has_value": _present("value")}
    ),
)

BY_NAME = {table.name: table for table in RAW_TABLES}
