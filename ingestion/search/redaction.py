"""Contact details never reach the search index.

Customers paste phone numbers, e-mails and messenger handles into chats ("加我微信 abc123",
"WhatsApp +1 415 555 0123"), also in the forms people use to get past filters ("加V: abc_123",
"微 信", "abc_123是我微信", "john at gmail dot com", "一三八零零一三八零零零"), and now and then a
birth date ("生日 1985-03-12", "生日 3.12", "1985年3月12日出生"). The index is read by many more
people than the CRM, so these are replaced by placeholders before a document is built. Precision
matters less than recall here: a long digit run that was an account number gets masked too, which
costs nothing in search. A date is masked only next to a birthday label (after it, or before a
Chinese one), and seven or eight digits only after a phone word: market dates, amounts and order
numbers are what search is for. For the same reason a run of digit groups does not take in a
calendar date, a time or a decimal beside it ("2025-11-03 15:30", "20251103 9:30"), a list of stock
codes is no number ("600519 000858 300750", "00700 09988"), and fewer than eight digits after a "+" are a price
change ("+2.5 100").

Full-width and other compatibility forms ("Ｗｅｃｈａｔ：ｚｈａｎｇｓａｎ", "１３８－００１３－８０００") are
rewritten in NFKC first, Chinese punctuation aside, and characters that show nothing ("138\\u200b0013",
a soft hyphen, a bidi control) dropped but in emoji sequences (``plain_forms``), so every rule sees
plain letters, digits and signs; the index holds that form of the text.

The rules run one after the other, each on the previous one's output: a later rule sees what an
earlier one left, which masks more than one combined pattern would (measured: a single
alternation let handles and phone numbers through in ~8% of mixed samples). Redaction runs once
per message of every full rebuild, so each rule is skipped when the text cannot hold what it
looks for (no address marker, no @, fewer digits than the shortest number a phone rule matches,
counted again after each rule that masked one; no "dot" for spelled-out e-mails, no digit in an
ASCII text or no "birth"/"dob"/"生" for birth dates, no phone word with a digit's name or a Chinese
numeral after it for numbers partly in words), and the label rule skips every position
that cannot start a label. The skips are plain substring tests and a byte count, not regexes (but
for numbers in words, where literal-first searches beat the substring tests): on a million
messages they cost a fraction of the rules they skip. Handles before their label ("是我")
and numbers in Chinese numerals have no such test: the label rule's scan finds them, as a few more
positions it stops at, instead of a regex search of their own over every Chinese message.

Latin labels count only as whole words ("wa" is WhatsApp in "wa: 8613...", not in "wanted"), and
after a label that is also an English word, a name or a ticker ("signal", "line", "we chat", "QQ is
fine", "Wei Xin said", "Facebook earnings", "FB shares", "IG") a plain word is left alone unless the
text says it is a handle (":", "号", "id", "hao", "account") or it looks like one (digits, "_" or "."
inside): otherwise ordinary English would lose words to ``[handle]``. The price: a
letters-only handle after such a label and a bare space ("tg moonboy") stays; "@moonboy" does not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ingestion.replication.tables import (
    CHINESE_DIGITS,
    HANDLE_JOINERS,
    HANDLE_SHAPED,
    known_tags_shaped_like_handles,
)

EMAIL = "[email]"
PHONE = "[phone]"
HANDLE = "[handle]"
BIRTHDATE = "[birthdate]"

# Addresses in any script ("张三@qq.com", "müller@bücher.de", "josé.garcía@correo.es"): the local
# part and the domain are word characters of any alphabet. Chinese has no space before an address,
# so a local part in a script written without spaces is at most four characters (a name: "我的邮箱是
# 张三@qq.com" keeps "我的邮"), and a Latin one stops at such a script ("邮箱zhang@qq.com" keeps
# "邮箱"). A dot of the domain may be the ideographic "。" ("zhangsan@163。com"); the top-level
# domain is letters of a spaced script ("com", "рф") or one of the Chinese ones registries sell
# ("李四@公司.中国"): no other Chinese word is taken for one, so an address's end is found before
# the Chinese text after it.
# Thai and Lao, kana, CJK ideographs, Hangul.
_UNSPACED_SCRIPTS = "\u0e00-\u0eff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CHINESE_TOP_LEVEL_DOMAINS = (
    "中国|中國|公司|网络|網絡|香港|台湾|台灣|新加坡|广告|在线|中文网|网店|网址|商城|商店|集团|手机|信息"
    "|游戏|企业|娱乐|商标|我爱你"
)
_EMAIL = re.compile(
    rf"(?:[{_UNSPACED_SCRIPTS}]{{1,4}}|(?:(?![{_UNSPACED_SCRIPTS}])[\w.%+\-])+)"
    r"\s*(?:@|\[at\]|\(at\))\s*[\w\-]+(?:[.。][\w\-]+)*[.。]"
    rf"(?:[A-Za-z]{{2,}}|{_CHINESE_TOP_LEVEL_DOMAINS}|(?:(?![{_UNSPACED_SCRIPTS}])[^\W\d_]){{2,}})"
)
# Spelled out: "john.doe at gmail dot com", "john [at] gmail [dot] com", "john(at)gmail(dot)com",
# the local part's dots too ("john dot doe at gmail dot com" from "john" on).
# Only texts with "dot" in them get here, and only a match with a spelled-out dot counts (an
# address with a real one is caught above, or is a web site: "sign up at example.com"). The domain
# must end in a known top-level domain, so "meet at the dot of noon" keeps its words.
_SPELLED_AT = r"(?:\s*(?:@|\[at\]|\(at\)|\{at\})\s*|\s+at\s+)"
_SPELLED_DOT = r"(?:\s*(?:\.|\[dot\]|\(dot\)|\{dot\})\s*|\s+dot\s+)"
_TOP_LEVEL_DOMAINS = (
    "com|net|org|edu|gov|info|biz|io|co|me|cn|hk|tw|mo|sg|my|jp|kr|uk|us|ca|au|nz|de|fr|ru|in|vn|th|ph"
)
_SPELLED_LOCAL_DOT = r"(?:\s*(?:\[dot\]|\(dot\)|\{dot\})\s*|\s+dot\s+)"
_SPELLED_EMAIL = re.compile(
    rf"(?i)(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+(?:{_SPELLED_LOCAL_DOT}[A-Za-z0-9._%+\-]+)*"
    rf"{_SPELLED_AT}[A-Za-z0-9\-]+"
    rf"(?:{_SPELLED_DOT}[A-Za-z0-9\-]+)*{_SPELLED_DOT}(?:{_TOP_LEVEL_DOMAINS})(?![A-Za-z0-9])"
)
_SPELLED_DOT_WORD = re.compile(r"(?i)[\s\[({]dot[\s\])}]")


def _spelled_email(match: re.Match) -> str:
    return EMAIL if _SPELLED_DOT_WORD.search(match[0]) else match[0]


# The "@" of an address at a mail service written some other way, with a real dot: "john at gmail.com",
# "zhangsan艾特163.com" ("艾特" says "at"), "lily#qq.com", "abc（at）126.com", "john @ gmail . com",
# also with the dot said in Chinese ("zhangsan艾特qq点com", "zhangsan@163点com").
# "at" before a domain also names a web site ("sign up at example.com"), so only the domains of mail
# services count here. Found from the "@" onwards (each alternative starts with a known character,
# so ``re`` jumps between candidates), and the local part looked for before it (``_LOCAL_PART_BEFORE``).
_MAIL_SERVICES = (
    "gmail|googlemail|outlook|hotmail|msn|yahoo|ymail|icloud|aol|protonmail|proton|gmx|yandex|zoho"
    "|qq|foxmail|163|126|yeah|sina|sohu|aliyun|139|189|21cn"
)
_MAIL_SERVICE_TOP_LEVEL_DOMAINS = "com|net|cn|org|co|uk|hk|tw|jp|sg|de|fr|ru|io"
_AT_WRITTEN_OUT_BEFORE_A_MAIL_SERVICE = re.compile(
    r"(?:\sat|@|艾特|#|（at）|【at】|\(at\)|\[at\])\s*(?:vip\s*[.。点]\s*)?"
    rf"(?:{_MAIL_SERVICES})(?:\s*[.。点]\s*(?:{_MAIL_SERVICE_TOP_LEVEL_DOMAINS}))+(?![a-z0-9])"
)
_LOCAL_PART_BEFORE = re.compile(r"(?<![a-z0-9._%+\-])[a-z0-9._%+\-]+\s*\Z")
_LOCAL_PART_REACH = 64 + 8  # the longest local part an address may have, and spaces after it


def _redact_addresses_at_mail_services(text: str, lowered: str) -> str:
    """Addresses at mail services with their "@" written otherwise (``lowered`` is
    ``_lowercase_same_positions(text)``)."""
    parts, start = [], 0
    for match in _AT_WRITTEN_OUT_BEFORE_A_MAIL_SERVICE.finditer(lowered):
        local = _LOCAL_PART_BEFORE.search(
            lowered, max(start, match.start() - _LOCAL_PART_REACH), match.start()
        )
        if local is not None:
            parts += [text[start : local.start()], EMAIL]
            start = match.end()
    return "".join(parts) + text[start:] if parts else text


# Birth dates after a label ("生日 1985-03-12", "出生日期：1985年3月12日", "DOB 12/03/1985",
# "birthday: March 12, 1985", "born on March 12, 1985", "生日是85年3月12号") or before a Chinese one
# (``_BIRTHDATE_BEFORE_LABEL``); a date without one stays ("2026-03-12 的行情", "March 12 earnings
# call" are what search is for). In chats a birth date often has no year ("我生日是3月12日", "生日
# 3.12", "DOB 12/03", "birthday is March 12", "birthday on the 5th of May"), and it is personal data
# all the same; what every form has is a day in digits. So texts without a digit (three in ten of
# the benchmark's templates mixed with chat phrases) skip the label test, the others test for
# "birth"/"born"/"dob"/"生日"/"出生" on the lowercased text before these rules run (a few substring tests:
# measured within the noise of the whole ``redact``). The pattern itself decides: the date must
# follow the label and its separators directly ("生日快乐, 3月12日见" stays), a Latin label must
# start a word ("rebirth 2.0" stays), and a month name must be a whole word ("birthday maybe 5
# people" stays). Dates in Chinese numerals ("一九九零年一月一日", "八月十五") count only after a label
# (texts without a digit reach the label test if they are not ASCII), a lunar or solar calendar
# named between ("生日在农历八月十五"). "生" alone labels a date after it ("生于1990年1月1日") or
# before it as a word of its own ("90年1月1日生的", "…日生人", not "…日生效"). The separators after a
# label are one loop, with no ``\s*`` around it: nested ones took cubic time to fail on a run of
# spaces ("生日" and 400 spaces: 2.5 s).
_MIN_DIGITS_BIRTHDATE = 1
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])\.?"
)
# In Chinese numerals: "一九九零年一月一日", "九〇年一月一号", "八月十五", "腊月初八".
_CHINESE_NUMERAL_DATE = (
    r"(?:[零〇一二三四五六七八九]{2,4}\s*年\s*)?[正一二三四五六七八九十冬腊]{1,2}\s*月"
    r"(?:\s*[初一二三四五六七八九十廿卅]{1,3}(?:\s*[日号])?)?"
)
# A date that may be a birth date: what follows a birthday label, or precedes a Chinese one.
_DATE = (
    r"(?:(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"  # "19850312", as forms ask for it
    r"|(?:\d{4}\s*[-/.年]|\d{2}\s*年)\s*\d{1,2}(?:\s*[-/.月]\s*\d{1,2}(?:\s*[日号])?|\s*月)?"  # "85年3月12号"
    r"|\d{1,2}\s*[-/.]\s*\d{1,2}\s*[-/.]\s*\d{2,4}"
    r"|\d{1,2}[-/.]\d{1,2}"  # no year: "3.12", "12/03"
    r"|\d{1,2}\s*月\s*\d{1,2}(?:\s*[日号])?"
    rf"|{_MONTH}\s*\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|\d{{1,2}}[-/.\s]{_MONTH}[-/.\s]\d{{2,4}}"  # "12-Mar-1985"
    rf"|\d{{4}}[-/.\s]{_MONTH}[-/.\s]?\d{{1,2}}(?:st|nd|rd|th)?"  # "1985 March 12"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?"
    rf"|{_CHINESE_NUMERAL_DATE})(?![0-9])"
)
_BIRTHDATE = re.compile(
    r"(?i)(?P<label>(?:生日|出生(?:日期|年月日|年月|于|在)?|生于"
    r"|(?<![a-z])(?:date\s+of\s+birth|birth\s*date|birthday|birth|born|d\.?o\.?b\.?|b[-']?day))"
    r"(?:是|为|在|农历|阴历|公历|阳历|:|：|=|-|is|was|on|the|'s|’s|\s)*)"
    rf"(?P<date>{_DATE})"
)
# Chinese says it the other way round as often: "我是1985年3月12日出生的", "1985-03-12出生", "3月12日
# 是我的生日" (the label directly after the date: "2026-03-12, 生日那天再聊" stays).
_BIRTHDATE_BEFORE_LABEL = re.compile(
    rf"(?i)(?<![0-9]){_DATE}(?=\s*(?:是我的?|是)?\s*(?:出生|生日|生(?:[的人，,。.!！;；\s]|\Z)))"
)


def _has_birthday_label(lowered: str) -> bool:
    # Every Latin label has a "b": a one-character needle is looked for as it is, so a Chinese text
    # without one skips the three longer ones, each first copied to wide characters (a third less
    # time for this test, now that texts with one digit make it).
    return (
        (
            "b" in lowered
            and (
                "birth" in lowered
                or "dob" in lowered
                or "d.o.b" in lowered
                or "born" in lowered
                or "day" in lowered  # "bday", "b-day"; the pattern says whether it is one
            )
        )
        or "生" in lowered  # "生日", "出生", "生于", "…日生的"
    )


# Messenger labels in both languages, including the usual homophones used to dodge filters
# (威信/薇信/V信/vx, also spaced out: "微 信", "V 信", "wei xin", "we chat", "whats app", "kakao talk"),
# followed by an optional "号/ID/账号" (also in pinyin, "hao"/"zhanghao"/"haoma", or "account") and a
# separator. Instagram and Facebook ("ig", "fb") are labels too. A Latin label is a whole word: no
# letter or digit before it (checked in ``_redact_labelled_handles``), and after it no letter but the
# start of "id"/"no"/"number"/"hao"/"zhanghao"/"account" ("weixinhao: lina_w2024").
# A lone "v" is WeChat only where Chinese slang makes it one: after "加"/"我的"/"+" ("加V
# zhangsan88"), or before ":"/"："/"号" ("我的v：abc_123"); "V型反转", "I love you" hold none.
# "加微" ("add me on WeChat": "加微 lily2024") and "微" before a separator ("微：lily2024") are
# WeChat too, and "联系方式" (contact details) labels any of them (a plain word after it stays,
# ``_WORD_LABEL``: "联系方式 email 给你"). Asking to be added or found ("加我", "找我", "联系我", "我是",
# "add me", "find me") labels a handle too ("加我lina_88 聊", "add me lina_88 on wechat"), but these
# are everyday words more often: after them only a handle that looks like one counts
# (``_CONTACT_VERB``). A QQ number is also a QQ mailbox's name ("QQ邮箱 12345678",
# "扣扣 12345678", "Q号 12345678"), and a mailbox named without its domain is an address all the
# same ("邮箱 zhangsan88", "my gmail is johndoe88"; "gmail is down" stays).
# Telegram links ("t.me/moonboy_88", "telegram.me/...") and profile links ("facebook.com/lina.wang88",
# "instagram.com/...", "fb.com/...") are labels that need no separator; the handle after any label may
# be "live:abc.def" (a Skype id is all of it) or a link ("电报 t.me/moonboy_88", "ig:
# instagram.com/lina").
#
# The pattern runs on the lowercased text, case-sensitively, and every alternative starts with a
# literal: Python's ``re`` then jumps between positions that can start a label instead of trying
# each one, which measured twice as fast as ``(?i)`` with a lookbehind on English text. At such a
# position every alternative that starts with its character is entered, so alternatives sharing
# a first character are grouped under it (``_by_first_character``): a "t" or a "w" of English
# text enters one alternative, not two or six (about 12% less time for the scan).
# The sites whose profile links ("facebook.com/lina.wang88", "https://www.instagram.com/lina.wang88")
# are labels with no separator before the handle, as Telegram's are.
_PROFILE_SITES = ("facebook", "fb", "instagram")
_LATIN_LABELS = (
    "vx",
    "wx",
    r"we\s?chat",
    r"wei\s?xin",
    r"whats\s?app",
    "wa",
    "telegram",
    "tg",
    "line",
    "skype",
    "signal",
    "qq",
    r"kakao(?:\s?talk)?",
    "gmail",
    "instagram",
    "ig",
    "facebook",
    "fb",
    # "add me", "find me": from "me", a rarer first character than "a" and "f" (``_CONTACT_VERB``)
    r"me(?:(?<=\badd\sme)|(?<=\bfind\sme))",
)
_LATIN_LABEL_END = r"(?!(?!id|no(?![a-z])|number|hao|zhanghao|account)[a-z])"
_LABELS = (
    r"微\s*信",
    r"威\s*信",
    r"薇\s*信",
    r"徽\s*信",
    r"v\s*信",
    r"加微(?!\s*信)",
    r"微(?=\s*[:：])",
    "联系方式",
    # "加我", "找我", "联系我", "我是": from "我", one first character for the four (``_CONTACT_VERB``)
    r"我(?:(?<=加我)|(?<=找我)|(?<=联系我)|是)",
    "扣扣",
    r"q(?=\s*号)",
    r"qq\s*邮箱",
    "邮箱",
    "电报",
    "飞机",
    r"telegram\.me/",
    r"t\.me/",
    *(rf"{site}\.com/" for site in _PROFILE_SITES),
    *(label + _LATIN_LABEL_END for label in _LATIN_LABELS),
    r"v(?:(?<=加v)|(?<=我的v)|(?<=\+v))" + _LATIN_LABEL_END,
    r"v(?=\s*(?:[:：]|号))",
)
# The same scan finds two things that have no handle after them, at the price of one more
# candidate position where their first character occurs (cheaper than a search of their own):
# - "是我", for a handle before its label ("zhangsan88 是我微信", "abc_123是我的微信号"), which
#   ``_redact_labelled_handles`` checks and looks back for;
# - seven or more Chinese numerals ("一三八零零一三八零零零", "幺三八 零零一三 八零零零"), a
#   phone number written out, one alternative per numeral so that each starts with a literal (the
#   numerals: ``CHINESE_DIGITS``, those by which replication masks ClickHouse's copies).
# What they end with ("是我", a numeral) no label ends with: that tells them apart, in
# ``(?P<bare>...)``, with no group at their start (which would cost the literal-first jumps).
_BARE = ("是我", *(rf"{numeral}(?:[\s\-]{{0,2}}[{CHINESE_DIGITS}]){{6,}}" for numeral in CHINESE_DIGITS))
_BARE_END = rf"(?<=是我)|(?<=[{CHINESE_DIGITS}])"


def _by_first_character(alternatives: Iterable[str]) -> list[str]:
    """``alternatives`` rewritten so that no two start with the same character: those that do are
    grouped under it, and so on for the characters after it while they are plain letters
    ("we\\s?chat", "weixin" -> "we(?:\\s?chat|ixin)")."""
    groups: dict[str, list[str]] = {}
    for alternative in alternatives:
        groups.setdefault(alternative[0] if alternative[:1].isalnum() else alternative, []).append(
            alternative
        )
    merged = []
    for first, members in groups.items():
        if len(members) == 1:
            merged.append(members[0])
        else:
            rests = _by_first_character(member[1:] for member in members)
            merged.append(first + (rests[0] if len(rests) == 1 else f"(?:{'|'.join(rests)})"))
    return merged


# "号"/"账号"/"号码" in pinyin ("weixin hao: lina_w2024", "wei xin zhanghao lina88"), and "account":
# words between a label and its handle, not the handle.
_ID_IN_WORDS = r"(?:(?:zhang\s?)?hao(?:\s?ma)?|account)(?![a-z])"
# A link to a profile, the handle after a label ("电报 t.me/moonboy_88", "ig: instagram.com/lina88").
_PROFILE_LINK = (
    r"(?:https?://)?(?:www\.|m\.)?(?:(?:t|telegram)\.me|(?:" + "|".join(_PROFILE_SITES) + r")\.com)/"
)


def _label_scan(alternatives: Iterable[str]) -> re.Pattern:
    """The labels, their separators (a "[" among them), and the handle after them: not an address
    already masked ("邮箱 [email]")."""
    return re.compile(
        rf"(?P<label>(?:{'|'.join(_by_first_character(alternatives))})"
        rf"(?:(?P<bare>{_BARE_END})|\s*(?:号|账号|帐号|(?:id|number|no)(?![a-z])|no\.|号码|{_ID_IN_WORDS})?\s*"
        r"(?:is|是|为|:|：|=|-|>|→|[(（【\[]|\s)*\s*))"
        rf"(?(bare)|(?P<handle>(?!email\])@?\+?(?:live:\.?|{_PROFILE_LINK})?"
        r"[a-z0-9][a-z0-9_.\-]{2,}(?:[ \-][0-9]{2,})*))"
    )


# A position that cannot start a match costs one set lookup, one that can costs a look at every
# alternative: an ASCII text (four in ten, and most of the Latin letters the scan stops at) is
# scanned without the alternatives that start with any other character, which more than pays for
# the Chinese ones above (measured: 1% more instructions per message than before them, not 6%).
_HANDLE_AFTER_LABEL = _label_scan((*_LABELS, *_BARE))
_HANDLE_AFTER_LATIN_LABEL = _label_scan(label for label in _LABELS if label[0].isascii())
# After "是我": "(的)微信(号)" and the like; before it, letters, digits and "_", five or more with a
# digit or "_" among them.
_LABEL_AFTER_IT_IS_MY = re.compile(
    r"的?\s*(?:[微威薇徽v]\s*信|电报|飞机|vx|wx|we\s?chat|wei\s?xin|whats\s?app|telegram|tg|qq|line|skype"
    r"|instagram|ig|facebook|fb)(?![a-z])"
)
_HANDLE_BEFORE_LABEL = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z]*[0-9_])(?P<handle>[A-Za-z0-9_]{5,})\s*\Z")
_HANDLE_BEFORE_LABEL_REACH = 64  # longer than any messenger's handle, with spaces after it
_WORD_CHARACTER_BEFORE_LABEL = re.compile(r"[a-z0-9]")
_V_XIN = re.compile(r"v\s*信")
_ASCII_LOWERCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Telegram-style @handles anywhere (after e-mails are gone, so no address is cut in half).
_AT_HANDLE = re.compile(r"@(?<![A-Za-z0-9_.].)[A-Za-z][A-Za-z0-9_]{3,31}")

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
_ASCII_DIGITS = b"0123456789"
# Decimal digits of any other script (full-width "１３８" is the usual way to slip a number past a
# filter): written as ASCII digits first, so the rules and the digit count see one alphabet.
_NON_ASCII_DIGIT = re.compile(r"[^\D0-9]")
# Full-width letters and signs ("Ｗｅｃｈａｔ：ｚｈａｎｇｓａｎ", "ｚｈａｎｇｓａｎ＠１６３．ｃｏｍ", "１３８－００１３－８０００")
# and other compatibility forms are the IME's way past a filter: NFKC writes them as the plain
# characters the rules know (so no rule looks for "＠" or "＋"), and the index holds that form.
# The Chinese punctuation NFKC would rewrite too stays as written: the rules read it as it is ("："
# after a label, the ideographic space as a space), and messages keep their own look ("，" and
# "…" are in most of them).
_COMPATIBILITY_FORMS_OUTSIDE_PUNCTUATION = re.compile("[^，：；！？（）～…\u3000]+")


# Characters that show nothing split a number, an address or a handle for the rules and not for the
# reader ("138\u200b0013\u200b8000", "li\u200bna@gmail.com", "lina\xad88"): Unicode's format characters
# (category Cf: zero-width space, non-joiner and joiner, soft hyphen, word joiner, byte order mark,
# bidi controls, the Mongolian vowel separator...), the unassigned default-ignorable code points,
# the text and emoji presentation selectors, the combining grapheme joiner and the Hangul fillers
# (NFKC's form of "\u3164" and "\uffa0"). They go before any rule runs, but for those that build an
# emoji: a joiner between two emoji ("👨\u200d👩\u200d👧") and the presentation selector after one
# ("❤\ufe0f") stay; no rule reads an emoji. Python counts none of them printable but five (the two
# presentation selectors, the combining grapheme joiner, the two Hangul fillers), so a text holds one
# only if ``str.isprintable`` says no or one of those five is in it (``plain_forms``): tests that
# cost a third of one regex search for all of them. Known gap: the other variation selectors and
# Khmer's and Mongolian's invisible vowels and selectors stay.
_INVISIBLE = (
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u115f\u1160\ufe0e\ufe0f\ufeff\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e00ff\U000e01f0-\U000e0fff"
)
_EMOJI = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u25fe"
    "\u2600-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
)
_EMOJI_SEQUENCE_OR_INVISIBLE = re.compile(
    f"(?P<emoji>[{_EMOJI}][\ufe0e\ufe0f]?(?:\u200d[{_EMOJI}][\ufe0e\ufe0f]?)*)|[{_INVISIBLE}]+"
)


def _emoji_sequence_only(match: re.Match) -> str:
    return match["emoji"] or ""


def plain_forms(text: str) -> str:
    """``text`` in NFKC but for the Chinese punctuation in it, without invisible characters but in
    emoji sequences."""
    if not unicodedata.is_normalized("NFKC", text):
        text = _COMPATIBILITY_FORMS_OUTSIDE_PUNCTUATION.sub(
            lambda run: unicodedata.normalize("NFKC", run.group()), text
        )
    if (
        not text.isprintable()
        or "\ufe0f" in text
        or "\ufe0e" in text
        or "\u034f" in text
        or "\u115f" in text
        or "\u1160" in text
    ):  # the five printable ones, tested one by one: a generator over them costs as much again
        text = _EMOJI_SEQUENCE_OR_INVISIBLE.sub(_emoji_sequence_only, text)
    return text


def _ascii_digit(match: re.Match) -> str:
    return str(unicodedata.decimal(match.group()))


def _digit_count(text: str) -> int:
    """ASCII digits in ``text`` (UTF-8 encodes nothing else as bytes 0x30-0x39)."""
    encoded = text.encode()
    return len(encoded) - len(encoded.translate(None, _ASCII_DIGITS))


# Labels that are also everyday English ("buy signal is strong", "we chat every week", "QQ is
# fine"): after one of them, a plain word is a word. It counts as a handle only when the label says
# so (":", "=", "号", "id"...) or when it looks like one (a digit, or "_"/"." inside it).
_WORD_LABEL = re.compile(
    r"(?i)(?:we\s+chat|wei\s+xin|wa|tg|line|signal|qq|gmail|instagram|ig|facebook|fb)(?![a-z.])|联系方式|扣扣"
)
_SAID_TO_BE_A_HANDLE = re.compile(r"(?i)[:：=]|号|\b(?:id|number|no)\b|hao(?:\s?ma)?\b|\baccount\s*(?:是|为)")
_LOOKS_LIKE_A_HANDLE = re.compile(r"[0-9@+]|[_.][A-Za-z0-9]")


# After a request to be added or found ("加我", "我是 lina_88", "add me"), a handle is five characters
# or more with a letter and a digit, "_" or "." among them ("找我 zhangwei1990"); a plain word, a
# year, an amount ("我是 2024 年开户的", "add me 100 shares") or "10x" is none.
_CONTACT_VERB = re.compile("我|me")  # the start of their labels: no other label starts so
_A_LATIN_LETTER = re.compile("[A-Za-z]")
_SHORTEST_HANDLE_AFTER_A_CONTACT_VERB = 5


def _is_ordinary_word(text: str, match: re.Match) -> bool:
    """``match`` (found in the lowercased text) is a label followed by a plain word of ``text``."""
    label = text[match.start("label") : match.end("label")]
    if _CONTACT_VERB.match(label):
        begin, end = match.span("handle")
        return (
            end - begin < _SHORTEST_HANDLE_AFTER_A_CONTACT_VERB
            or _A_LATIN_LETTER.search(text, begin, end) is None
            or _LOOKS_LIKE_A_HANDLE.search(text, begin, end) is None
        )
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
        and _WORD_CHARACTER_BEFORE_LABEL.match(lowered, begin - 1) is not None
        and _V_XIN.match(lowered, begin) is None
    )


def _redact_labelled_handles(text: str, lowered: str) -> str:
    """Handles after (or before) their label, and numbers in Chinese numerals (``lowered`` is
    ``_lowercase_same_positions(text)``)."""
    parts, start, position = [], 0, 0
    scan = _HANDLE_AFTER_LATIN_LABEL if lowered.isascii() else _HANDLE_AFTER_LABEL
    while match := scan.search(lowered, position):
        begin = match.start()
        if _inside_a_word(lowered, begin):
            position = begin + 1
            continue
        if match.start("bare") < 0:
            if _is_ordinary_word(text, match):
                position = match.start("handle")  # the word may be a label ("signal wechat: abc")
                continue
            parts += [text[start:begin], text[begin : match.end("label")], HANDLE]
            start = position = match.end()
        elif lowered[begin] != "是":
            parts += [text[start:begin], PHONE]
            start = position = match.end()
        else:
            position = match.end()  # the label after "是我" may have a handle after it too
            if _LABEL_AFTER_IT_IS_MY.match(lowered, position) and (
                handle := _HANDLE_BEFORE_LABEL.search(
                    text, max(start, begin - _HANDLE_BEFORE_LABEL_REACH), begin
                )
            ):
                parts += [text[start : handle.start()], HANDLE, text[handle.end("handle") : begin]]
                start = begin
    return "".join(parts) + text[start:] if parts else text


def redact(text: str | None) -> str | None:
    if not text:
        return text
    if not text.isascii():
        text = plain_forms(text)
        if _NON_ASCII_DIGIT.search(text):
            text = _NON_ASCII_DIGIT.sub(_ascii_digit, text)
    # A one-character needle is looked for as it is, a longer ASCII one is first copied to wider
    # characters when the text has any (Chinese does): "[" and "(" go first, as cheap as "@".
    if "@" in text or ("[" in text and "[at]" in text) or ("(" in text and "(at)" in text):
        text = _EMAIL.sub(EMAIL, text)
    lowered = _lowercase_same_positions(text)
    if "dot" in lowered:
        text = _SPELLED_EMAIL.sub(_spelled_email, text)
        lowered = _lowercase_same_positions(text)
    if ("." in text or "。" in text or "点" in text) and (
        "at" in lowered or "#" in text or "@" in text or "艾特" in text
    ):
        redacted = _redact_addresses_at_mail_services(text, lowered)
        if redacted is not text:
            text, lowered = redacted, _lowercase_same_positions(redacted)
    if _may_hold_a_number_in_words(lowered):
        redacted = _redact_numbers_in_words(text, lowered)
        if redacted is not text:
            text, lowered = redacted, _lowercase_same_positions(redacted)
    text = _redact_labelled_handles(text, lowered)
    if "@" in text:
        text = _AT_HANDLE.sub(HANDLE, text)
    digits = _digit_count(text)
    if (digits >= _MIN_DIGITS_BIRTHDATE or "月" in lowered) and _has_birthday_label(lowered):
        text = _BIRTHDATE.sub(rf"\g<label>{BIRTHDATE}", text)
        text = _BIRTHDATE_BEFORE_LABEL.sub(BIRTHDATE, text)
        digits = _digit_count(text)
    return _redact_phone_numbers(text, lowered, digits)


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


# A tag stands alone: one that is a messenger id or a phone number has no label beside it, as the
# same text in a message would ("lily_invest88", "wxid_8x8x8x", "91234567", "加我li_na"). So in a tag
# a run of Latin letters, digits and a handle's joiners ("_", "." and "-": ``HANDLE_JOINERS``, those
# the ClickHouse rules read) of five or more with a letter and a digit or "_" is a handle, and seven
# digits or more are a phone number. The CRM's tags are words and tickers ("美股", "ETF", "TSLA",
# "crypto"); a stock code of six digits stays ("600519").
_HANDLE_CHARACTER = f"[A-Za-z0-9{HANDLE_JOINERS}]"
_HANDLE_IN_TAG = re.compile(
    f"(?<!{_HANDLE_CHARACTER})(?={_HANDLE_CHARACTER}*[A-Za-z])(?={_HANDLE_CHARACTER}*[0-9_])"
    f"{_HANDLE_CHARACTER}{{5,}}(?!{_HANDLE_CHARACTER})"
)
_NUMBER_IN_TAG = re.compile(r"(?<![0-9])[0-9]{7,}(?![0-9])")
# A handle needs no digit: a WeChat id or Telegram name of letters ("zhangwei", "加我zhangwei",
# "lina-wang"), or an e-mail address without its domain ("zhang.wei"). So a run of five or more
# Latin letters, "_", "." or "-" in a tag is a handle too, unless it is a word of the CRM analysis's
# own tags ("crypto", "withdraw" of "wants to withdraw", "googl"): the shape and the vocabulary of the
# ClickHouse tag filter (``replication.tables``), which drops such a tag where the index masks the run.
# A tag of English words outside the vocabulary loses those of five letters or more; Chinese tags
# and tickers are untouched. The placeholders the rules before put in are words too, and stay.
# The words a deployment adds to the vocabulary (``tag_words.configured``: FUNNELHOUSE_KNOWN_TAG_WORDS,
# system_settings) are not read here: such a word of five letters or more, kept in ClickHouse, is
# masked in the index (the safe side; known gap: a search by that tag finds nothing).
_WORDS_OF_KNOWN_TAGS = frozenset(
    word for tag in known_tags_shaped_like_handles() for word in re.findall(HANDLE_SHAPED, tag)
)
_PLACEHOLDER_OR_HANDLE_SHAPED = re.compile(
    "(?P<placeholder>"
    + "|".join(re.escape(placeholder) for placeholder in (EMAIL, PHONE, HANDLE, BIRTHDATE))
    + f")|{HANDLE_SHAPED}"
)


def _known_word_or_handle(run: re.Match[str]) -> str:
    word = run[0]
    return word if run["placeholder"] or word.lower() in _WORDS_OF_KNOWN_TAGS else HANDLE


def redact_tag(tag: str) -> str:
    """One extracted tag: ``redact``, then what a tag alone cannot be without being a contact detail."""
    tag = redact(tag)
    if any(character in _ASCII_DIGITS_AND_UNDERSCORE for character in tag):
        tag = _NUMBER_IN_TAG.sub(PHONE, _HANDLE_IN_TAG.sub(HANDLE, tag))
    return _PLACEHOLDER_OR_HANDLE_SHAPED.sub(_known_word_or_handle, tag)


_ASCII_DIGITS_AND_UNDERSCORE = frozenset("0123456789_")


def redact_all(values: Iterable[str]) -> list[str]:
    """Extracted tags (``redact_tag``)."""
    return [redact_tag(value) for value in values if value]
