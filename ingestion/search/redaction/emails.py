"""E-mail addresses: written plainly in any script, spelled out ("john at gmail dot com"), or at a mail
service with the "@" written some other way ("zhangsan艾特163.com", "lily#qq.com").
"""

from __future__ import annotations

import re

from ingestion.search.redaction.placeholders import EMAIL

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
