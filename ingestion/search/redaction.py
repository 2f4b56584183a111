"""Contact details never reach the search index.

Customers paste phone numbers, e-mails and messenger handles into chats ("加我微信 abc123",
"WhatsApp +1 415 555 0123"). The index is read by many more people than the CRM, so these are
replaced by placeholders before a document is built. Precision matters less than recall here:
a long digit run that was an account number gets masked too, which costs nothing in search.

The rules run one after the other, each on the previous one's output: a later rule sees what an
earlier one left, which masks more than one combined pattern would (measured: a single
alternation let handles and phone numbers through in ~8% of mixed samples). Redaction runs once
per message of every full rebuild, so each rule is skipped when the text cannot hold what it
looks for (no address marker, no @, fewer digits than the shortest number a phone rule matches,
counted again after each rule that masked one), and the label rule skips every position that
cannot start a label. The skips are plain substring tests and a byte count, not regexes: on a
million messages they cost a fraction of the rules they skip.

Latin labels count only as whole words ("wa" is WhatsApp in "wa: 8613...", not in "wanted"), and
after a label that is also an English word ("signal", "line", "we chat", "QQ is fine") a plain word
is left alone unless the text says it is a handle (":", "号", "id") or it looks like one (digits,
"_" or "." inside): otherwise ordinary English would lose words to ``[handle]``. The price: a
letters-only handle after such a label and a bare space ("tg moonboy") stays; "@moonboy" does not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

EMAIL = "[email]"
PHONE = "[phone]"
HANDLE = "[handle]"

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-]+\s*(?:@|＠|\[at\]|\(at\))\s*[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)

# Messenger labels in both languages, including the usual homophones used to dodge filters
# (威信/薇信/V信/vx), followed by an optional "号/ID/账号" and a separator. A Latin label is a whole
# word: no letter or digit before it (checked in ``_redact_labelled_handles``), and after it no
# letter but the start of "id"/"no"/"number".
#
# The pattern runs on the lowercased text, case-sensitively, and every alternative starts with a
# literal: Python's ``re`` then jumps between positions that can start a label instead of trying
# each one, which measured twice as fast as ``(?i)`` with a lookbehind on English text.
_LATIN_LABELS = (
    "vx",
    "wx",
    "wechat",
    r"we\s?chat",
    "weixin",
    r"whats\s?app",
    "wa",
    "telegram",
    "tg",
    "line",
    "skype",
    "signal",
    "qq",
    "kakao",
)
_LATIN_LABEL_END = r"(?!(?!id|no|number)[a-z])"
_LABEL = "|".join(
    [
        "微信",
        "威信",
        "薇信",
        "徽信",
        "v信",
        "电报",
        "飞机",
        *(label + _LATIN_LABEL_END for label in _LATIN_LABELS),
    ]
)
_HANDLE_AFTER_LABEL = re.compile(
    rf"(?P<label>(?:{_LABEL})\s*(?:号|账号|帐号|id|号码|number|no\.?)?\s*(?:is|是|为|:|：|=|-|\s)*\s*)"
    r"(?P<handle>@?\+?[a-z0-9][a-z0-9_.\-]{2,}(?:[ \-][0-9]{2,})*)"
)
_WORD_CHARACTER_BEFORE_LABEL = re.compile(r"[a-z0-9]")
_ASCII_LOWERCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Telegram-style @handles anywhere (after e-mails are gone, so no address is cut in half).
_AT_HANDLE = re.compile(r"[@＠](?<![A-Za-z0-9_.].)[A-Za-z][A-Za-z0-9_]{3,31}")

# A pattern that starts with a lookbehind makes ``re`` try a match at every position of the text;
# one that starts with a literal (or a choice of literals) lets it jump from one candidate to the
# next. So where a rule's first character is known, it comes first and the "no digit before"
# test follows it: ``0(?<!\d.)`` is ``(?<!\d)0`` (checked equal on a million random texts). Each
# rule so written measured a fifth to two thirds of its former cost on the search benchmark's texts.
_PHONES = [
    # Chinese mobiles: "13800138000", "138-0013-8000", "138 0013 8000", after an optional +86/0086
    # (before the international rule, whose "00" prefix would otherwise bite into one's middle).
    re.compile(
        r"(?:\+(?<!\d.)86[\s\-]?1|＋(?<!\d.)86[\s\-]?1|0(?<!\d.)086[\s\-]?1|1(?<!\d.))"
        r"[3-9]\d[\s\-]?\d{4}[\s\-]?\d{4}(?!\d)"
    ),
    # International with + or 00: "+1 (415) 555-0123", "+852 9123-4567", "+44 7700 900123".
    re.compile(
        r"(?:\+(?<![\d\w].)|＋(?<![\d\w].)|0(?<![\d\w].)0)\d{1,3}[\s\-.]?(?:\(?\d{1,4}\)?[\s\-.]?){1,4}\d{3,4}(?!\d)"
    ),
    # North American: "(415) 555-0123", "415-555-0123", "415.555.0123" (starting with "(" or a
    # digit, it gains nothing from the literal-first form).
    re.compile(r"(?<!\d)\(?\d{3}\)?[\s\-.]\d{3}[\s\-.]\d{4}(?!\d)"),
    # Chinese landlines: "010-12345678", "0755-8888 6666".
    re.compile(r"0(?<!\d.)\d{2,3}[\s\-]\d{3,4}[\s\-]?\d{4}(?!\d)"),
    # Any other run of 9+ digits (optionally spaced): phone-like, never worth indexing.
    re.compile(r"(?<!\d)\d(?:[\s\-]?\d){8,}(?!\d)"),
]
_INTERNATIONAL = 1  # the one rule that matches fewer than nine digits, and only after + or 00
# The shortest number any phone rule matches has five digits ("+1 1 123"); every rule but the
# international one needs nine or more. Amounts and ticket numbers ("入金50000元") have five but
# not nine, so most texts with digits skip four of the five rules.
_MIN_DIGITS_ANY_RULE = 5
_MIN_DIGITS_OTHER_RULES = 9
_ASCII_DIGITS = b"0123456789"
# Decimal digits of any other script (full-width "１３８" is the usual way to slip a number past a
# filter): written as ASCII digits first, so the rules and the digit count see one alphabet.
_NON_ASCII_DIGIT = re.compile(r"[^\D0-9]")


def _ascii_digit(match: re.Match) -> str:
    return str(unicodedata.decimal(match.group()))


def _digit_count(text: str) -> int:
    """ASCII digits in ``text`` (UTF-8 encodes nothing else as bytes 0x30-0x39)."""
    encoded = text.encode()
    return len(encoded) - len(encoded.translate(None, _ASCII_DIGITS))


# Labels that are also everyday English ("buy signal is strong", "we chat every week", "QQ is
# fine"): after one of them, a plain word is a word. It counts as a handle only when the label says
# so (":", "=", "号", "id"...) or when it looks like one (a digit, or "_"/"." inside it).
_WORD_LABEL = re.compile(r"(?i)(?:we\s+chat|wa|tg|line|signal|qq)(?![a-z])")
_SAID_TO_BE_A_HANDLE = re.compile(r"(?i)[:：=]|号|\b(?:id|number|no)\b")
_LOOKS_LIKE_A_HANDLE = re.compile(r"[0-9@+]|[_.][A-Za-z0-9]")


def _is_ordinary_word(text: str, match: re.Match) -> bool:
    """``match`` (found in the lowercased text) is a label followed by a plain word of ``text``."""
    label = text[match.start("label") : match.end("label")]
    return (
        _WORD_LABEL.match(label) is not None
        and _SAID_TO_BE_A_HANDLE.search(label) is None
        and _LOOKS_LIKE_A_HANDLE.search(text, match.start("handle"), match.end("handle")) is None
    )


def _lowercase_same_positions(text: str) -> str:
    """``text`` lowercased letter by letter, as ``re``'s IGNORECASE compares, each character at its
    index. ``str.lower`` differs only for "İ" (U+0130), the one letter whose lowercase is two
    characters in Unicode; ``re`` takes it as "i"."""
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text.replace("\u0130", "i").lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWERCASE)


def _inside_a_word(lowered: str, begin: int) -> bool:
    """A Latin label must start a word ("twa" holds none); the Chinese ones, "v信" included, need not."""
    return (
        begin > 0
        and lowered[begin].isascii()
        and not lowered.startswith("v信", begin)
        and _WORD_CHARACTER_BEFORE_LABEL.match(lowered, begin - 1) is not None
    )


def _redact_labelled_handles(text: str) -> str:
    lowered = _lowercase_same_positions(text)
    parts, start, position = [], 0, 0
    while match := _HANDLE_AFTER_LABEL.search(lowered, position):
        begin = match.start()
        if _inside_a_word(lowered, begin):
            position = begin + 1
            continue
        if _is_ordinary_word(text, match):
            position = match.start("handle")  # the word may itself be a label ("signal wechat: abc")
            continue
        parts += [text[start:begin], text[begin : match.end("label")], HANDLE]
        start = position = match.end()
    return "".join(parts) + text[start:] if parts else text


def redact(text: str | None) -> str | None:
    if not text:
        return text
    if not text.isascii() and _NON_ASCII_DIGIT.search(text):
        text = _NON_ASCII_DIGIT.sub(_ascii_digit, text)
    if "@" in text or "＠" in text or "[at]" in text or "(at)" in text:
        text = _EMAIL.sub(EMAIL, text)
    text = _redact_labelled_handles(text)
    if "@" in text or "＠" in text:
        text = _AT_HANDLE.sub(HANDLE, text)
    return _redact_phone_numbers(text)


def _redact_phone_numbers(text: str) -> str:
    """The phone rules in order, each skipped when the digits left cannot make its shortest number:
    once the one phone number of a message is masked, the rules after it have nothing to look at."""
    digits = _digit_count(text)
    for rule, pattern in enumerate(_PHONES):
        if digits < _MIN_DIGITS_ANY_RULE:
            break
        if rule == _INTERNATIONAL:
            if not ("+" in text or "＋" in text or "00" in text):
                continue
        elif digits < _MIN_DIGITS_OTHER_RULES:
            continue
        text, masked = pattern.subn(PHONE, text)
        if masked:
            digits = _digit_count(text)
    return text


def redact_all(values: Iterable[str]) -> list[str]:
    return [redact(value) for value in values if value]
