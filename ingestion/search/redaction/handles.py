"""Messenger handles: the label scan (a handle after its label or before "是我…", and the numbers in
Chinese numerals it finds on the way), whether a word after a label is a handle, and "@handles".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ingestion.replication.masking import CHINESE_DIGITS
from ingestion.search.redaction.placeholders import HANDLE, PHONE

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
# Telegram-style @handles anywhere (after e-mails are gone, so no address is cut in half).
_AT_HANDLE = re.compile(r"@(?<![A-Za-z0-9_.].)[A-Za-z][A-Za-z0-9_]{3,31}")


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
