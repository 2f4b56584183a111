"""Phone numbers: the rules in order, each with the digit count and the needles that let a text skip
it, and numbers written partly in words after a phone word.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ingestion.replication.masking import CHINESE_DIGITS
from ingestion.search.redaction.handles import _inside_a_word
from ingestion.search.redaction.placeholders import PHONE
from ingestion.search.redaction.text import _digit_count

# A pattern that starts with a lookbehind makes ``re`` try a match at every position of the text;
# one that starts with a literal (or a choice of literals) lets it jump from one candidate to the
# next. So where a rule's first character is known, it comes first and the "no digit before"
# test follows it: ``0(?<!\d.)`` is ``(?<!\d)0`` (checked equal on a million random texts). Each
# rule so written measured a fifth to two thirds of its former cost on the search benchmark's texts.
#
# Between the digit groups of a Chinese number people write a space, any dash ("138–0013–8000",
# U+2011, the minus sign), " - ", "/", ".", "_" or a middle dot ("138·0013·8000"), or two or three
# spaces ("138  0013  8000"): ``_GROUP_GAP``.
# The other rules take one space or dash of any kind (and "." where they did): one character, as
# cheap to try as before, and the catch-all rule for long digit runs with "/" or "." would take
# dates with a time and decimal numbers for phone numbers.
_DASHES = "\\-\u2010-\u2015\u2212"
_GROUP_GAP = rf"(?:[ ]?[{_DASHES}/._·・•][ ]?|\s{{1,3}})"
# A mobile number's groups may also be listed with commas ("138，0013，8000", "138、0013、8000",
# "138,0013,8000"): groups of three and four digits, so no amount with thousands separators.
_MOBILE_GROUP_GAP = rf"(?:{_GROUP_GAP}|[ ]?[，、,][ ]?)"
_SPACE_OR_DASH = rf"[\s{_DASHES}]"
_SPACE_DASH_OR_DOT = rf"[\s.{_DASHES}]"


@dataclass(frozen=True)
class _PhoneRule:
    pattern: re.Pattern
    min_digits: int  # the fewest digits a number it matches has: a text with fewer skips it
    needles: tuple[str, ...] = ()  # a match holds one of them (in the lowercased text): else skipped
    # What a match becomes, when that depends on the match (else ``PHONE``, after its label if any).
    replace: Callable[[re.Match], str] | None = None


# After its first character ("+" or "0"): a number's start is no word's or number's middle.
_STARTS_A_NUMBER = rf"(?<![\d\w)）].)(?<![\d)）]{_SPACE_OR_DASH}.)"


# Stock codes listed with spaces: Shanghai and Shenzhen ones ("600519 000858 300750", six digits
# starting as listed codes do), or Hong Kong ones ("00700 09988 03690", five digits starting with 0);
# no phone number is written in groups of six, nor only in groups of five that start with 0.
_STOCK_CODES = re.compile(r"(?:(?:00[0-3]|30[01]|60[0135]|68[89])\d{3}(?:\s|\Z))+|(?:0\d{4}(?:\s|\Z)){2,}")


def _international_number(match: re.Match) -> str:
    """An international number has a country code and a subscriber number of seven digits or more:
    fewer digits after a "+" are a change in a price or a score ("+2.5 100", "+1 2025"). "00" may
    also start a list of stock codes ("000858 601318")."""
    number = match[0]
    return PHONE if _digit_count(number) >= 8 and not _STOCK_CODES.fullmatch(number) else number


# A phone word and its separators ("电话号码是", "我的号码", "联系我", "加我", "call me at", "text me
# at", "ring", "my number is"); a Latin one starts a word. "号码" is a number of anything but an
# order's, an invoice's, a contract's or a trade's ("订单号码 12345678", "发票号码"), and "call" a verb, not
# the noun of "earnings call 2025 1103" and the like (the words before it that make it one are
# listed: ``_CALL_AS_A_NOUN``).
_CHINESE_PHONE_WORD = r"(?:电话|手机|座机|固话|(?<![单票])(?<!合同)(?<!交易)号码|联系我?|加我|找我)(?:号码?)?(?:是|为|[:：=\s])*"
_CALL_AS_A_NOUN = "".join(
    rf"(?<!{noun}\s)"
    for noun in ("earnings", "conference", "margin", "analyst", "investor", "capital", "results", "sales")
)
_LATIN_PHONE_WORD = (
    rf"(?:tel|phone|mobile|cell|(?:{_CALL_AS_A_NOUN}call|text|ring)(?:\s+me)?(?:\s+(?:at|on))?"
    r"|my\s+(?:number|no\.?))(?![a-z])(?:\s*(?:no\.?|number|#))?(?:\s*(?:is|:|：|=))*\s*"
)
_PHONE_LABEL = rf"{_CHINESE_PHONE_WORD}|(?<![a-z]){_LATIN_PHONE_WORD}"
_PHONE_LABEL_NEEDLES = (
    "电话",
    "手机",
    "座机",
    "固话",
    "号码",
    "联系",
    "加我",
    "找我",
    "tel",
    "phone",
    "mobile",
    "cell",
    "call",
    "text",
    "ring",
    "my",
)
# A number after a phone word written partly or wholly in words: Arabic digits mixed with Chinese
# numerals ("电话138零0138000"; Chinese numerals alone are the label scan's, which this runs before),
# or English ones ("call me at four one five five five five one two three four", "415 five five five
# 0123"). Seven digits or more, so "电话一直打不通" and "call me at one or two" keep their words; the
# tokens and the gaps between them share no character, so a run is read one way only. The scan runs
# on the lowercased text and starts with the labels' literals (``_redact_numbers_in_words`` checks
# that a Latin one starts a word), and only on texts that pass ``_may_hold_a_number_in_words``.
_SPELLED_DIGITS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGIT_TOKEN = rf"(?:[0-9{CHINESE_DIGITS}]+|(?:{'|'.join(_SPELLED_DIGITS)})(?![a-z]))"
_NUMBER_IN_WORDS_AFTER_PHONE_LABEL = re.compile(
    rf"(?P<label>{_CHINESE_PHONE_WORD}|{_LATIN_PHONE_WORD})"
    rf"(?P<number>{_DIGIT_TOKEN}(?:(?:{_GROUP_GAP}|,\s?){_DIGIT_TOKEN})*)"
)
_WORD_IN_A_NUMBER = re.compile(rf"[a-z{CHINESE_DIGITS}]")
_ONE_DIGIT = re.compile(rf"[0-9{CHINESE_DIGITS}]|{'|'.join(_SPELLED_DIGITS)}")


# The pretest: the start of a phone word ("my n", not "my funds"), and after it a digit's name (but
# for "one" and "oh" after a gap: "phone", "someone" and "john" hold them) or, in a Chinese text, a
# Chinese numeral and a digit. Literal-first searches: substring tests with ASCII needles took
# twice the time, and cost a copy of a Chinese text each.
_PHONE_WORD_NEEDLE = re.compile(
    r"电话|手机|座机|固话|号码|联系|加我|找我|tel|phone|mobile|cell|call|t(?<![a-z]t)ext|r(?<![a-z]r)ing"
    r"|my\s+n"
)
_DIGIT_NAME_NEEDLE = re.compile(r"zero|two|three|four|five|six|seven|eight|nine| one| oh")
_ASCII_DIGIT = re.compile("[0-9]")
_CHINESE_NUMERAL = re.compile(f"[{CHINESE_DIGITS}]")


def _may_hold_a_number_in_words(lowered: str) -> bool:
    label = _PHONE_WORD_NEEDLE.search(lowered)
    return label is not None and (
        _DIGIT_NAME_NEEDLE.search(lowered, label.start()) is not None
        or (
            not lowered.isascii()
            and _CHINESE_NUMERAL.search(lowered, label.start()) is not None
            and _ASCII_DIGIT.search(lowered, label.start()) is not None
        )
    )


def _redact_numbers_in_words(text: str, lowered: str) -> str:
    """Numbers of seven digits or more after a phone word, with words among their digits
    (``lowered`` is ``_lowercase_same_positions(text)``)."""
    parts, start = [], 0
    for match in _NUMBER_IN_WORDS_AFTER_PHONE_LABEL.finditer(lowered):
        number = match["number"]
        if (
            not _inside_a_word(lowered, match.start())
            and _WORD_IN_A_NUMBER.search(number)
            and len(_ONE_DIGIT.findall(number)) >= 7
        ):
            parts += [text[start : match.end("label")], PHONE]
            start = match.end()
    return "".join(parts) + text[start:] if parts else text


# A calendar date inside a run of digit groups ("3 2025-11-03", "2025-11-03 2025-11-04"): a date,
# not part of a phone number. Digit groups around it still count, if they make a number of their own.
_CALENDAR_DATE = re.compile(r"(?<!\d)(?:19|20)\d\d-(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])(?!\d)")


def _digit_run(match: re.Match) -> str:
    run = match[0]
    if _STOCK_CODES.fullmatch(run):
        return run
    if _CALENDAR_DATE.search(run) is None:
        return PHONE
    parts, start = [], 0
    for date in _CALENDAR_DATE.finditer(run):
        parts += [_DIGIT_RUN.sub(_digit_run, run[start : date.start()]), date[0]]
        start = date.end()
    return "".join(parts) + _DIGIT_RUN.sub(_digit_run, run[start:])


# Any other run of 9+ digits (optionally spaced): phone-like, never worth indexing. A run neither
# continues into nor out of a time or a decimal ("2025-11-03 15:30", "20251103 9:30", "123456789.50",
# "3.1415926535"): a digit before ":", ".", "," and a digit belongs to that number, not to a run.
_DIGIT_RUN = re.compile(rf"\d(?<!\d\d)(?<!\d[:：.,]\d)(?:{_SPACE_OR_DASH}?\d){{8,}}(?!\d)(?![:：.,]\d)")


_PHONE_RULES = (
    # Chinese mobiles: "13800138000", "138-0013-8000", "138 0013 8000", after an optional +86/0086
    # (before the international rule, whose "00" prefix would otherwise bite into one's middle).
    _PhoneRule(
        re.compile(
            rf"(?:\+(?<!\d.)86{_GROUP_GAP}?1|0(?<!\d.)086{_GROUP_GAP}?1|1(?<!\d.))"
            rf"[3-9]\d{_MOBILE_GROUP_GAP}?\d{{4}}{_MOBILE_GROUP_GAP}?\d{{4}}(?!\d)"
        ),
        9,
    ),
    # International with + or 00: "+1 (415) 555-0123", "+852 9123-4567", "+44 7700 900123", also
    # ending in pairs ("+7 912 345-67-89", "+84 91 234 56 78"); the one rule that matches fewer than
    # nine digits without a label ("+44 20 7946"), only after + or 00, and eight at least. The "+"
    # or "00" starts the number: after a digit group and a gap, or after a bracketed area code, it
    # is inside one ("138 00138 000", "(138)0013-8000"), which the rules below mask whole.
    _PhoneRule(
        re.compile(
            rf"(?:\+{_STARTS_A_NUMBER}|0{_STARTS_A_NUMBER}0)\d{{1,3}}{_SPACE_DASH_OR_DOT}?"
            rf"(?:\(?\d{{1,4}}\)?{_SPACE_DASH_OR_DOT}?){{1,5}}\d{{2,4}}(?!\d)"
        ),
        8,
        ("+", "00"),
        _international_number,
    ),
    # North American: "(415) 555-0123", "415-555-0123", "415.555.0123" (starting with "(" or a
    # digit, it gains nothing from the literal-first form).
    _PhoneRule(
        re.compile(rf"(?<!\d)\(?\d{{3}}\)?{_SPACE_DASH_OR_DOT}\d{{3}}{_SPACE_DASH_OR_DOT}\d{{4}}(?!\d)"), 9
    ),
    # A country or area code in brackets, without "+": "(852) 9123 4567", "（86）138 0013 8000",
    # "(0755) 8888 6666".
    _PhoneRule(
        re.compile(rf"[(（]\d{{2,4}}[)）]\s?\d{{3,4}}{_SPACE_DASH_OR_DOT}?\d{{4}}(?!\d)"), 9, ("(", "（")
    ),
    # Chinese landlines: "010-12345678", "0755-8888 6666".
    _PhoneRule(re.compile(rf"0(?<!\d.)\d{{2,3}}{_GROUP_GAP}\d{{3,4}}{_GROUP_GAP}?\d{{4}}(?!\d)"), 9),
    # Local numbers of seven or eight digits after a phone word ("电话 91234567", "香港电话 9123
    # 4567", "tel: 6234 5678", "call me at 6234 5678", "my number is 9123 4567"): too short to tell
    # from an amount or an order number without one ("earnings call 2025 1103" has none). The
    # groups after them belong to the number ("电话 852 9027 0565", "tel 852-9027-0565", "电话 1234
    # 5678 90"), but for a lone digit ("电话 9027 0565 3 点后打").
    _PhoneRule(
        re.compile(
            rf"(?i)(?P<label>{_PHONE_LABEL})\d{{3,4}}{_GROUP_GAP}?\d{{4}}(?:{_GROUP_GAP}\d{{2,}})*(?!\d)"
        ),
        7,
        _PHONE_LABEL_NEEDLES,
    ),
    _PhoneRule(_DIGIT_RUN, 9, replace=_digit_run),
)
# Amounts and ticket numbers ("入金50000元") have five digits but not seven, so most texts with
# digits skip every rule but the international one.
_MIN_DIGITS_ANY_RULE = min(rule.min_digits for rule in _PHONE_RULES)


def _redact_phone_numbers(text: str, lowered: str, digits: int) -> str:
    """The phone rules in order, each skipped when the digits left cannot make its shortest number
    or when ``lowered`` (lowercased before the handle rules, which like these put in placeholders
    only) holds none of its needles: once the one phone number of a message is masked, the rules
    after it have nothing to look at. A rule with a label keeps the label."""
    for rule in _PHONE_RULES:
        if digits < _MIN_DIGITS_ANY_RULE:
            break
        if digits < rule.min_digits or (rule.needles and not any(n in lowered for n in rule.needles)):
            continue
        replacement = rule.replace or (rf"\g<label>{PHONE}" if "label" in rule.pattern.groupindex else PHONE)
        text, masked = rule.pattern.subn(replacement, text)
        if masked:
            digits = _digit_count(text)
    return text
