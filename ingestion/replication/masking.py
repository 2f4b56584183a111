"""The PII rules for text a person typed, as ClickHouse expressions replication evaluates while pulling:
free text masked where it looks like it carries contact details (``masked``, ``masked_columns``), and
lists of tags without the tags that could be contact details (``tag_filters``). ``tables.py`` says which
columns each applies to (DEVELOPERS.md, data-protection rule).

Short free text that a model shows but a person may have typed contact details into (a customer's
occupation, a journey step's trigger event, a tag's description...: ``tables.py``) is replicated masked
(``masked``, one RE2 ``match``), and so are the names and labels the marts show or group by (a tag's
name, a material's title, a customer's industry...), in which letters with digits are a sign only as
long as a handle or after a messenger's label, so "VIP3", "MT5" and "MT5开户教程" pass
(``_masked_name``). The rules read the value's NFKC form, so that full-width, circled and bold digits
and letters count as the plain ones, "１３８", "①⑬⓪", "𝟏𝟑𝟖", without the characters that show nothing
(Unicode's format characters: zero-width space, non-joiner and joiner, word joiner, soft hyphen, byte
order mark, bidi controls...; Hangul fillers, presentation selectors), so that a handle split by a
zero-width space, "lina88" or "zhangwei", reads as the handle it shows (``_matched_form``; the tag
filter reads tags so too); what is replicated unmasked is the original text. A value becomes
``[masked]`` as a whole if it holds an "@"; five or
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
much of what passes here (labelled handles, spelled-out addresses, labelled dates of any form).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ingestion.contracts import MATERIAL_TYPES
from ingestion.generate import phrases, vocab
from ingestion.replication.connections import string_literal

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


def _normalized(text: str) -> str:
    """``text`` (a ClickHouse expression) NFKC-normalised, so that a digit or letter in another form
    counts as itself (full-width "１３８", circled "①⑬⓪", bold "𝟏𝟑𝟖"). ``toValidUTF8`` first, as the
    normalisation fails on bytes that are not UTF-8 (a source database in SQL_ASCII)."""
    return f"normalizeUTF8NFKC(toValidUTF8({text}))"


# Characters that show nothing split a handle for the rules and not for the reader (a zero-width space
# in "lina88" or "zhangwei"): Unicode's format characters (category Cf: zero-width space, non-joiner
# and joiner, word joiner, soft hyphen, byte order mark, bidi controls, the Mongolian vowel
# separator...) and every other default-ignorable code point, as the search index's redaction removes
# them (``ingestion.search.redaction.text``): the combining grapheme joiner, the Hangul fillers U+115F
# and U+1160 (NFKC's form of U+3164 and U+FFA0 too), Khmer's invisible vowels, Mongolian's free
# variation selectors, the variation selectors 1-16 (the text and emoji presentation selectors among
# them), U+2065 and U+FFF0-FFF8 (unassigned) and the block U+E0000-E0FFF (variation selectors 17-256,
# the rest unassigned). RE2.
_INVISIBLE = (
    r"[\p{Cf}\x{034F}\x{115F}\x{1160}\x{17B4}\x{17B5}\x{180B}-\x{180F}\x{FE00}-\x{FE0F}\x{2065}"
    r"\x{FFF0}-\x{FFF8}\x{E0000}-\x{E0FFF}]"
)


def _matched_form(text: str) -> str:
    """``text`` (a ClickHouse expression) as the contact-detail rules read it: ``_normalized``, without
    the characters that show nothing (``_INVISIBLE``), so that what they split is read whole. Only for
    matching: what is replicated is the original text."""
    return f"replaceRegexpAll({_normalized(text)}, {string_literal(_INVISIBLE)}, '')"


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
    Latin letters (a WeChat id or Telegram username without digits, "zhangwei", "加我li_na"; also when
    characters that show nothing split it into shorter runs, as the free text's rules read past them)
    unless it is one of the analysis's known words, or of the deployment's (``tag_words``), as typed
    (a known word split by such a character is dropped). What is lost is an
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


def tag_filters(columns: Iterable[str], extra_known_words: Iterable[str] = ()) -> dict[str, str]:
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
_LABELLED_ID = f"{_MESSENGER_LABEL}{_AFTER_MESSENGER_LABEL}{_MESSENGER_ID}"
_CONTACT_LIKE_NAME = "|".join((*_CONTACT_DETAILS, _HANDLE_WITH_DIGITS, _LABELLED_ID, _WECHAT_ID_AFTER_LABEL))
MASKED = "[masked]"


def _matches(form: str, rules: str) -> str:
    return f"match({form}, {string_literal(rules)})"


def _masked_where(looks_like_contact_details: str, column: str) -> str:
    return f"if({looks_like_contact_details}, {string_literal(MASKED)}, {column})"


def masked(column: str) -> str:
    """``column`` (free text), or ``MASKED`` if it looks like it carries contact details
    (``_CONTACT_LIKE_TEXT``); NULL stays NULL."""
    return _masked_where(_matches(_matched_form(column), _CONTACT_LIKE_TEXT), column)


def _masked_name(column: str) -> str:
    """``masked`` for a tag's or a material's name (``_CONTACT_LIKE_NAME``). A messenger's label ends at
    a separator or a word's end, and characters that show nothing may be all there is between a
    label and an id ("wx", a zero-width space, "a1b2c3": without it "wxa1b2c3" holds no label), so the
    label's rule is matched on a form that keeps each run of them as one separator (four in a row
    would be more separators than the rule allows). The other rules only gain from their going (it
    joins what they split), and matching all of them twice would cost twice the time."""
    any_rule = _matches(_matched_form(column), _CONTACT_LIKE_NAME)
    runs_as_one = f"replaceRegexpAll({_normalized(column)}, {string_literal(_INVISIBLE + '+')}, ' ')"
    label_before_an_invisible_character = _matches(runs_as_one, _LABELLED_ID)
    return _masked_where(f"{any_rule} or {label_before_an_invisible_character}", column)


def masked_columns(text: Iterable[str] = (), names: Iterable[str] = ()) -> dict[str, str]:
    """The derived columns masking free ``text`` (``masked``) and ``names`` (``_masked_name``), each
    under its own name (the source column is listed as dropped: derived columns may read it)."""
    return {
        **{column: masked(column) for column in text},
        **{column: _masked_name(column) for column in names},
    }
