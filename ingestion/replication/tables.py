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
are what the performance reports show, and they are not customer data. Setting values (which may be
secrets) stay too, but for the few keys a model reads (``WAREHOUSE_SETTING_KEYS``).

Replication copies an allowlist: each table names the source columns it copies as they are
(``replicated``) and those reviewed to stay in PostgreSQL (``dropped``, which derived columns may
read). A column in neither, such as one a migration added since, is not copied, and every run warns
about it until it is classified here (``Replicator._warn_unclassified``): a new ``id_card_no`` must
not reach ClickHouse because nobody thought of it. tests/warehouse/test_replication_allowlist.py
holds the lists to the schema.

Short free text that a model shows but a person may have typed contact details into (a customer's
occupation, decision style and city, a journey step's trigger event, a withdrawal's reason, a tag's
description, a script's scenario and purpose, a material's purpose, a course's description; and names and
labels the marts show or group by: a tag's name, a material's title, a customer's industry, persona type
and trading platform, a script's and a material's subcategory, a course's title, in which letters with
digits are a sign only as long as a handle or after a messenger's label, so "VIP3", "MT5" and
"MT5开户教程" pass: ``_masked_name``) is replicated masked (``_masked``,
one RE2 ``match`` ClickHouse evaluates while pulling, on the value's NFKC form so that full-width,
circled and bold digits and letters count as the plain ones, "１３８", "①⑬⓪", "𝟏𝟑𝟖"; what is replicated
unmasked is the original text): a value becomes ``[masked]`` as a whole if it holds an "@"; five or
more digits of any script ("١٣٨٠٠") with up to three characters other than letters and digits between
each two (a phone or QQ number however it is grouped: "138　0013　8000" (U+3000), "138—0013—8000",
"138 - 0013 - 8000", "电话138,0013,8000", "(138) 0013"; a date in digits, "1990/05/12", "05/12/1990");
seven or more digits some of which are Chinese numerals, plain or formal ("一三八零零一三八零零零",
"壹叁捌零零壹叁捌零零零"); a date with 年 and 月 ("1990年5月12日", "85年3月12号");
a digit within four characters after "生日", "出生" or "birthday" ("生日 3月12日"); a URL or domain ("://",
"www.", "t.me"); or a handle's telltale (a Latin letter followed by a digit, maybe across a "_" or "-", next to a third letter or digit, "lina88", "zhangwei-1988", or
letters joined by "_", "li_na"). What passes: a Latin word without digits,
"_" or "." (so that ordinary values, "manual", "Engineer", stay, and so does a letters-only handle,
"zhangwei", or its letters and digits joined by ".", which no messenger's id holds: "Vol.3");
a number of fewer than five digits ("85/3/1"), or of fewer than seven with Chinese
numerals; a date without a year or label ("3月12日"), or in Chinese numerals or month names; an e-mail
address spelled out ("li at example dot com"); a letter and a digit alone ("Q3"). The price: any
five digits count, so an amount ("10,000") or a quarter before its year ("Q3 2024") is masked too; and
so is a term of letters and digits joined by "-" ("COVID-19", "iPhone-15").
The search index's redaction (``ingestion.search.redaction``), Python run on whole messages, catches
much of what passes here (labelled handles, spelled-out addresses, labelled dates of any form). Free
text no model needs (personality traits, a contact's source detail and group name, a script's follow-up)
is dropped. Lists typed by hand (a material's hashtags and tags, a script's tags, a customer's interests
and risk flags) are filtered as the extracted tags are (``_tag_filters``). What is chosen from lists is
copied as it is (a customer's source channel, country, time zone, income and capital range).

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

from ingestion.contracts import MATERIAL_TYPES
from ingestion.generate import phrases, vocab
from ingestion.replication.connections import string_literal


@dataclass(frozen=True)
class RawTable:
    name: str
    # incremental: pulled by the updated_at cursor, deletions by sync_deletions.
    # snapshot: small reference tables, reloaded whole and swapped in atomically.
    mode: str = "incremental"
    partition_by: str | None = None
    # Source columns copied as they are. Any other source column is not copied: it is dropped
    # (reviewed: stays in PostgreSQL) or not classified yet (warned about each run).
    replicated: tuple[str, ...] = ()
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


# Digits of any script ("\p{Nd}": ASCII, full-width, Arabic-Indic "١٣٨"...), "@" signs and Latin
# letters, each with their full-width forms (which count as the ASCII ones). RE2 classes, for
# ClickHouse's ``match`` (Python's ``re`` knows no "\p{Nd}": only ``HANDLE_SHAPED`` is used there).
_DIGITS, _ATS, _LATIN_LETTERS = r"\p{Nd}", "@＠", "A-Za-zＡ-Ｚａ-ｚ"
# A tag with any of these copied a phone number, an e-mail address or a numbered handle.
_CONTACT_CHARACTERS = f"[{_DIGITS}{_ATS}]"
# How a phone number is read out in Chinese ("一三八零零一三八零零零", "幺" for one, "两" for two,
# traditional "兩"), also in the formal numerals of amounts on cheques ("壹叁捌零零壹叁捌零零零",
# traditional "貳參陸" and the variant "叄" too). Not "拾" (ten) nor "佰仟万": a number read digit by digit
# has none, and an amount written out would be masked. The search index's redaction
# (``ingestion.search.redaction``) reads numbers written out with the same numerals.
CHINESE_DIGITS = "零〇一二三四五六七八九幺两兩壹贰貳叁參叄肆伍陆陸柒捌玖"
# Between the parts of a number or date people type anything but a letter or a digit, up to three
# of them: spaces (also U+3000, a Chinese IME's), dashes of any kind, "/", "_", commas, stops,
# brackets, and a dash between spaces ("138 - 0013 - 8000").
_SEPARATORS = r"[^\p{L}\p{N}]{0,3}"
# Seven or more digits some of which are Chinese numerals: a phone number read out. Fewer can be
# words ("一二三四五"). Sign of contact details in a tag as in free text.
_CHINESE_NUMERAL_NUMBER = f"[{_DIGITS}{CHINESE_DIGITS}](?:{_SEPARATORS}[{_DIGITS}{CHINESE_DIGITS}]){{6,}}"


def _matched_form(text: str) -> str:
    """``text`` (a ClickHouse expression) as the contact-detail rules read it: NFKC-normalised, so that
    a digit or letter in another form counts as itself (full-width "１３８", circled "①⑬⓪", bold
    "𝟏𝟑𝟖"). Only for matching: what is replicated is the original text. ``toValidUTF8`` first, as the
    normalisation fails on bytes that are not UTF-8 (a source database in SQL_ASCII)."""
    return f"normalizeUTF8NFKC(toValidUTF8({text}))"


# What joins the letters and digits of a messenger handle: "_" (Telegram, WeChat), "-" (WeChat:
# "zhangwei-1988", "li-na-520") and "." (an e-mail address without its domain: "zw.1988"), with their
# full-width forms. A character-class body ("-" last, so literal) for RE2 and Python's ``re`` alike:
# the free-text and tag rules here and the search index's tag redaction (``ingestion.search.redaction``)
# read handles with the same joiners.
HANDLE_JOINERS = "_＿.．－-"
# Of those, what a messenger id itself may hold between its letters and digits: "_" and "-" (WeChat,
# Telegram), not "." (no messenger allows it), so a title's "Vol.3" or "No.1" is not read as an id.
_ID_JOINERS = "_＿－-"
# A run of Latin letters and joiners long enough to be a messenger handle without digits: WeChat
# ids are 6-20 characters and Telegram usernames 5-32 (letters, digits, "_", WeChat also "-"), and
# "zhang.wei" is an e-mail address without its domain. Full-width forms count as the ASCII ones.
HANDLE_SHAPED = f"[{_LATIN_LETTERS}{HANDLE_JOINERS}]{{5,}}"


def known_tags_shaped_like_handles(extra: Iterable[str] = ()) -> list[str]:
    """The tags of the CRM's text analysis (keywords, risk keywords, intention signals, modelled by
    the generator: ingestion/generate/vocab.py and phrases.py), a material's kinds ("video": materials
    are tagged with them) and the deployment's ``extra`` words
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
    vocabulary = {*vocab.KEYWORDS, *vocab.RISK_KEYWORDS, *signals, *MATERIAL_TYPES, *extra}
    return sorted({tag.lower() for tag in vocabulary if re.search(HANDLE_SHAPED, tag)})


def _tags_without_contact_details(column: str, extra_known_words: Iterable[str] = ()) -> str:
    """A JSON array of extracted tags (keywords, intention signals, risk keywords) with only the tags
    that cannot be contact details. Tags are vocabulary: Chinese words ("美股", "询问费用"), tickers
    ("TSLA") and a few English words and phrases ("crypto", "wants to withdraw"). A tag is dropped if it
    holds a digit or an "@" (a phone number, an e-mail, a numbered handle; in any form, as the free
    text's rules read it: "①③⑧", "١٣٨"), a number of seven Chinese numerals or more
    ("壹叁捌零零壹叁捌零零零", the free text's rule), or a handle-shaped run of
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
        + ", ".join(string_literal(tag) for tag in known_tags_shaped_like_handles(extra_known_words))
        + "]"
    )
    # The raw element is matched (a number or a nested value is checked too), the string it holds is
    # looked up.
    matched = _matched_form("element")
    safe = (
        f"not match({matched}, {string_literal(_CONTACT_CHARACTERS)})"
        f" and not match({matched}, {string_literal(_CHINESE_NUMERAL_NUMBER)})"
        f" and (not match({matched}, {string_literal(HANDLE_SHAPED)})"
        f" or has({known}, lowerUTF8(JSONExtractString(element))))"
    )
    kept = f"arrayFilter(element -> {safe}, {elements})"
    return f"if({column} is null, null, concat('[', arrayStringConcat({kept}, ','), ']'))"


def _tag_filters(columns: Iterable[str], extra_known_words: Iterable[str] = ()) -> dict[str, str]:
    extra = tuple(extra_known_words)
    return {column: _tags_without_contact_details(column, extra) for column in columns}


# What makes short free text look like it carries contact details (module docstring). Unlike a tag's,
# a single digit or a word of five letters is no sign in a sentence ("满30天", "manual"). This is RE2
# (ClickHouse's ``match``): no lookbehind, so each rule spells out what it needs on both sides.
_LATIN_ALPHANUMERICS = f"{_LATIN_LETTERS}{_DIGITS}"
_CONTACT_DETAILS = (
    f"[{_ATS}]",
    # A phone or QQ number; also a date in digits ("1990/05/12", "05/12/1990", "90-5-12").
    f"[{_DIGITS}](?:{_SEPARATORS}[{_DIGITS}]){{4,}}",
    _CHINESE_NUMERAL_NUMBER,
    # A date in Chinese ("1990年5月12日", "85年3月12号"), and a digit just after a birthday label.
    f"[{_DIGITS}]{{2,4}}{_SEPARATORS}年{_SEPARATORS}[{_DIGITS}]{{1,2}}{_SEPARATORS}月{_SEPARATORS}[{_DIGITS}]",
    f"(?:生日|出生|[Bb]irthday)[^{_DIGITS}]{{0,3}}[{_DIGITS}]",
    "://|[Ww]{3}[.．]|[A-Za-z0-9][.．][A-Za-z]{2,}",
    # Letters joined by "_" to letters or digits ("wx_zhang", "wx_8", "wxid_abc01").
    f"[{_LATIN_LETTERS}][_＿][{_LATIN_ALPHANUMERICS}]",
)
# A Latin letter followed by a digit, maybe across an id's "_" or "-", with a third letter or digit
# before or after ("lina88", "zhangwei-1988"; not a quarter, "Q3", nor "Vol.3"). Not letters joined by
# "-" or "." (a handle of letters only passes anyway): "follow-up", "self-employed" and "e.g." are
# ordinary words.
_LETTERS_WITH_DIGITS = (
    f"[{_LATIN_ALPHANUMERICS}][{_LATIN_LETTERS}][{_ID_JOINERS}]?[{_DIGITS}]",
    f"[{_LATIN_LETTERS}][{_ID_JOINERS}]?[{_DIGITS}][{_LATIN_ALPHANUMERICS}]",
)
_CONTACT_LIKE_TEXT = "|".join((*_CONTACT_DETAILS, *_LETTERS_WITH_DIGITS))
# A name staff give a tag or a material: letters with digits are how products, tiers and series are
# named ("VIP3", "MT5开户教程", "Top10基金", "ETF50", "A50期指解读", "S&P500 weekly", "2024Q4策略会"),
# so there a messenger handle needs more to be read as one. Either its length: a Latin letter, three
# more letters or id joiners, then two digits or more ("lina88", "zhangwei1988", "wangli-1990",
# "li-na-520"; a product's name is shorter, but "iPhone15", "COVID-19", and indices and series named
# by a word and a year or a count, "Nasdaq100指数", "Russell2000周报", "Bitcoin2024展望", are masked
# too, the price). Or a messenger's label just before an id (below).
_HANDLE_WITH_DIGITS = f"[{_LATIN_LETTERS}][{_LATIN_LETTERS}{_ID_JOINERS}]{{3,}}[{_DIGITS}]{{2,}}"
# A messenger's label, case apart. A Latin label is a whole word: "mortgage" holds no "tg", "QQQ3"
# (an ETF) no "qq" (RE2's "\b" is ASCII-only, so a label followed by "号" or other CJK still ends a
# word). "加V" only as a label ("加V: lina1988"), as the separator below requires: "加VIP3会员福利" is a
# tier.
_MESSENGER_LABEL = r"(?i:微信|v信|加v\b|\b(?:vx|wx|wechat|weixin|telegram|tg|qq|whatsapp)\b)"
# Between the label and the id: "号" (id), or at least one separator. A label run into letters and
# digits names a product ("微信H5活动页制作", "微信5G消息", "微信OA2.0", "微信2024Q4运营复盘").
_AFTER_MESSENGER_LABEL = rf"(?:号{_SEPARATORS}|[^\p{{L}}\p{{N}}]{{1,3}})"
# What follows a label is an id if it looks like one: a letter and a digit side by side (maybe across
# "_" or "-") with three more id characters around them, five or more in all ("wx: ab1234",
# "微信号：lina88", "QQ号 q12345"): messengers allow no shorter id (WeChat ids are 6-20 characters,
# Telegram usernames 5 or more; a QQ number is digits only, caught as five digits). So "WeChat 3D海报"
# and "QQ 2FA设置" pass. An id of letters only passes, as a handle of letters does in free text.
_ID_CHARACTER = f"[{_LATIN_ALPHANUMERICS}{_ID_JOINERS}]"
_LETTER_NEXT_TO_DIGIT = (
    f"(?:[{_LATIN_LETTERS}][{_ID_JOINERS}]*[{_DIGITS}]|[{_DIGITS}][{_ID_JOINERS}]*[{_LATIN_LETTERS}])"
)
# (The pair may come anywhere: three or more id characters before it, "zhangwei8", "abcdef1".)
_MESSENGER_ID = (
    "(?:"
    + "|".join(
        f"{_ID_CHARACTER}{{{before}{',' if before == 3 else ''}}}{_LETTER_NEXT_TO_DIGIT}"
        f"{_ID_CHARACTER}{{{3 - before}}}"
        for before in range(4)
    )
    + ")"
)
# A WeChat id written straight after "微信" ("加微信zw1988"): it starts with a letter, which a product
# run into the label seldom is at id length ("微信2024Q4运营复盘", "微信OA2.0" pass; "微信OAuth2接入" is
# masked, the price).
_WECHAT_ID_AFTER_LABEL = f"(?i:微信|v信)[{_LATIN_LETTERS}]{_MESSENGER_ID}"
_CONTACT_LIKE_NAME = "|".join(
    (
        *_CONTACT_DETAILS,
        _HANDLE_WITH_DIGITS,
        f"{_MESSENGER_LABEL}{_AFTER_MESSENGER_LABEL}{_MESSENGER_ID}",
        _WECHAT_ID_AFTER_LABEL,
    )
)
MASKED = "[masked]"


def _masked(column: str, rules: str = _CONTACT_LIKE_TEXT) -> str:
    """``column`` (text), or ``MASKED`` if it looks like it carries contact details (``rules``, RE2);
    NULL stays NULL."""
    looks_like_contact_details = f"match({_matched_form(column)}, {string_literal(rules)})"
    return f"if({looks_like_contact_details}, {string_literal(MASKED)}, {column})"


def _masked_name(column: str) -> str:
    """``_masked`` for a tag's or a material's name (``_CONTACT_LIKE_NAME``)."""
    return _masked(column, _CONTACT_LIKE_NAME)


def _columns(names: str) -> tuple[str, ...]:
    return tuple(names.split())


def _masked_columns(text: Iterable[str] = (), names: Iterable[str] = ()) -> dict[str, str]:
    """The derived columns masking free ``text`` (``_masked``) and ``names`` (``_masked_name``), each
    under its own name (the source column is listed as dropped: derived columns may read it)."""
    return {
        **{column: _masked(column) for column in text},
        **{column: _masked_name(column) for column in names},
    }


_CONTACT_COLUMNS = ("wechat_id", "whatsapp", "telegram", "email", "phone")
# A customer's attributes staff type in (no CHECK): free text ("occupation", "decision_style", "city"),
# labels that may be named with letters and digits ("Web3" an industry, "MT5" a trading platform), and
# lists of words typed by hand ("interests", "risk_flags"), each of which has held a phone number or a
# WeChat id. The marts group by the ordinary values ("上海", "金融", "富途牛牛", "美股").
_MASKED_CUSTOMER_COLUMNS = ("occupation", "decision_style", "city")
_MASKED_CUSTOMER_LABELS = ("industry", "persona_type", "trading_platform")
_CUSTOMER_TAG_COLUMNS = ("interests", "risk_flags")
# The system_settings keys whose values replication copies: those a model reads. Any other setting's
# value stays in PostgreSQL, as it may be a secret (an SMTP password, an API key) and a key's name
# says nothing of what a deployment stored under it; a key is added here when a model needs it, after
# checking its value can hold nothing secret or personal. kpi.overall_score_weights: the CRM's weights
# of the KPI mart's overall_score (dbt_project/macros/kpi_score_weights.sql), numbers only.
WAREHOUSE_SETTING_KEYS: tuple[str, ...] = ("kpi.overall_score_weights",)


def _warehouse_setting_value(key: str, value: str) -> str:
    """The setting's ``value`` where its ``key`` is one of WAREHOUSE_SETTING_KEYS, else NULL."""
    keys = ", ".join(string_literal(name) for name in WAREHOUSE_SETTING_KEYS)
    return f"if({key} in ({keys}), {value}, NULL)"


_TAG_COLUMNS = ("keywords", "intention_signals", "risk_keywords")
_MATERIAL_TAG_COLUMNS = ("hashtags", "tags")
_SCRIPT_TAG_COLUMNS = ("tags",)

RAW_TABLES: tuple[RawTable, ...] = (
    RawTable(
        "employees",
        replicated=_columns(
            "id employee_code name role department level status total_customers active_customers"
            " total_net_deposit hired_at created_at updated_at last_login_at"
        ),
        dropped=("avatar_url", "email", "phone", "username", "password_hash"),
    ),
    RawTable(
        "customers",
        replicated=_columns(
            "id customer_code gender country timezone language income_range"
            " investment_experience risk_preference capital_range tier"
            " intention_score engagement_score ltv_prediction current_stage source_channel"
            " referrer_id assigned_employee_id assigned_at status created_at updated_at"
            " last_contact_at"
        ),
        dropped=(
            "name",
            "avatar_url",
            "age",
            "birth_date",
            *_CONTACT_COLUMNS,
            "communication_style",
            "blacklist_reason",
            "personality_traits",
            *_MASKED_CUSTOMER_COLUMNS,
            *_MASKED_CUSTOMER_LABELS,
            *_CUSTOMER_TAG_COLUMNS,
        ),
        derived={
            **{f"has_{column.removesuffix('_id')}": _present(column) for column in _CONTACT_COLUMNS},
            "age_band": (
                "multiIf(age is null, 'unknown', age < 25, 'under 25', age < 35, '25-34', "
                "age < 45, '35-44', age < 55, '45-54', '55 and over')"
            ),
            "has_blacklist_reason": _present("blacklist_reason"),
            **_masked_columns(text=_MASKED_CUSTOMER_COLUMNS, names=_MASKED_CUSTOMER_LABELS),
            **_tag_filters(_CUSTOMER_TAG_COLUMNS),
        },
        tag_columns=_CUSTOMER_TAG_COLUMNS,
    ),
    RawTable(
        "tags",
        mode="snapshot",
        # A tag's name is typed by staff, and a customer's WeChat id has been one ("微信wxid_..."):
        # the customer mart lists the names of each customer's tags. Its description, typed alike, has
        # held the customer's WeChat id and phone number next to it.
        replicated=_columns("id category color icon is_system display_order created_at updated_at"),
        dropped=("name", "description"),
        derived=_masked_columns(text=("description",), names=("name",)),
    ),
    RawTable(
        "customer_tags", replicated=_columns("id customer_id tag_id tagged_by tagged_at is_auto updated_at")
    ),
    RawTable(
        "customer_journey",
        replicated=_columns(
            "id source_key customer_id from_stage to_stage duration_days created_at updated_at"
        ),
        dropped=("notes", "trigger_event"),
        derived={"has_notes": _present("notes"), "trigger_event": _masked("trigger_event")},
    ),
    RawTable(
        "funnel_tofu",
        replicated=_columns(
            "id source_key customer_id employee_id contact_date source_channel joined_group joined_at"
            " stayed_in_group left_group_at screening_result created_at updated_at"
        ),
        dropped=("screening_reason", "leave_reason", "source_detail", "group_name"),
        derived={
            "has_screening_reason": _present("screening_reason"),
            "has_leave_reason": _present("leave_reason"),
        },
    ),
    RawTable(
        "funnel_mofu",
        replicated=_columns(
            "id source_key customer_id employee_id total_conversations high_quality_conversations"
            " total_反问_count followed_recommendations follow_count account_opened account_platform"
            " opened_at days_to_open intention_score engagement_score created_at updated_at"
        ),
    ),
    RawTable(
        "funnel_bofu",
        replicated=_columns(
            "id source_key customer_id employee_id total_deposits total_withdrawals net_deposit"
            " deposit_count withdrawal_count first_deposit_amount first_deposit_at days_to_first_deposit"
            " max_deposit_amount withdrawal_rate is_vip vip_since created_at updated_at"
        ),
    ),
    RawTable(
        "deposits",
        replicated=_columns(
            "id deposit_code customer_id employee_id amount currency deposit_type platform status"
            " deposited_at confirmed_at created_at updated_at"
        ),
        dropped=("notes",),
        derived={"has_notes": _present("notes")},
    ),
    RawTable(
        "withdrawals",
        replicated=_columns(
            "id withdrawal_code customer_id employee_id amount currency risk_level"
            " retention_success status requested_at processed_at created_at updated_at"
        ),
        dropped=("retention_action", "reason"),
        derived={"has_retention_action": _present("retention_action"), "reason": _masked("reason")},
    ),
    RawTable(
        "scripts",
        mode="snapshot",
        # Subcategory, scenario and purpose are typed by staff (the script mart shows the subcategory),
        # tags by hand like a material's; follow_up (free JSON no model reads) stays in PostgreSQL.
        replicated=_columns(
            "id script_code category level usage_count"
            " success_count success_rate avg_rating is_active created_by created_at updated_at"
        ),
        dropped=(
            "content_cn",
            "content_en",
            "follow_up",
            "subcategory",
            "scenario",
            "purpose",
            *_SCRIPT_TAG_COLUMNS,
        ),
        derived={
            **_masked_columns(text=("scenario", "purpose"), names=("subcategory",)),
            **_tag_filters(_SCRIPT_TAG_COLUMNS),
        },
        tag_columns=_SCRIPT_TAG_COLUMNS,
    ),
    RawTable(
        "conversations",
        partition_by="toYYYYMM(sent_at)",
        replicated=_columns(
            "id customer_id employee_id message_type direction sentiment script_used_id is_反问"
            " quality_score platform sent_at created_at updated_at"
        ),
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
        replicated=_columns(
            "id source_key conversation_id conversation_sent_at customer_id employee_id event_type"
            " impact_score created_at updated_at"
        ),
        dropped=("event_data",),
        derived={"has_event_data": "toUInt8(event_data is not null)"},
    ),
    RawTable(
        "employee_kpis",
        replicated=_columns(
            "id employee_id date tofu_contacts tofu_retained tofu_retention_rate mofu_quality_conversations"
            " mofu_反问_count mofu_accounts_opened bofu_deposits_count bofu_deposit_amount"
            " bofu_withdrawal_amount bofu_net_deposit bofu_withdrawal_rate overall_score created_at"
            " updated_at"
        ),
    ),
    RawTable(
        "materials",
        mode="snapshot",
        replicated=_columns(
            "id material_code type category suitable_stages views likes"
            " comments shares published_count is_active created_by created_at updated_at"
        ),
        # The title is shown by the material mart, and a customer story's title has named its customer
        # with a phone number; subcategory (shown by the mart too) and purpose, hashtags and tags are
        # typed by hand like the title.
        dropped=(
            "content",
            "caption",
            "media_url",
            "thumbnail_url",
            "title",
            "subcategory",
            "purpose",
            *_MATERIAL_TAG_COLUMNS,
        ),
        derived={
            **_masked_columns(text=("purpose",), names=("title", "subcategory")),
            **_tag_filters(_MATERIAL_TAG_COLUMNS),
        },
        tag_columns=_MATERIAL_TAG_COLUMNS,
    ),
    RawTable(
        "training_courses",
        mode="snapshot",
        # A course's title and description are typed by staff like a material's title.
        replicated=_columns(
            "id course_code course_type level duration_days is_required display_order created_at updated_at"
        ),
        dropped=("content", "title", "description"),
        derived=_masked_columns(text=("description",), names=("title",)),
    ),
    RawTable(
        "training_progress",
        replicated=_columns(
            "id employee_id course_id status progress_percentage score started_at completed_at updated_at"
        ),
    ),
    # Setting values may be secrets (SMTP passwords, API keys): only their presence leaves PostgreSQL,
    # and the values of WAREHOUSE_SETTING_KEYS, which the marts read (``warehouse_value``, NULL for
    # other keys). Not named ``value``: ClickHouse reads a name in the pull's SELECT as the alias it
    # defines, so has_value would test the NULLed value instead of the source's.
    RawTable(
        "system_settings",
        mode="snapshot",
        replicated=_columns("id key value_type category is_public updated_by updated_at"),
        # a description is typed by whoever adds the setting ("值班: 张伟 138..."): masked like a tag's
        dropped=("value", "description"),
        derived={
            "has_value": _present("value"),
            "warehouse_value": _warehouse_setting_value("key", "value"),
            **_masked_columns(text=("description",)),
        },
    ),
)

BY_NAME = {table.name: table for table in RAW_TABLES}
