"""Tags extracted from a message: ``redact``, then what a tag alone cannot be without being a contact
detail (a run shaped like a handle or a phone number), the words of the CRM's own tags kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ingestion.replication.masking import (
    HANDLE_JOINERS,
    HANDLE_SHAPED,
    known_tags_shaped_like_handles,
)
from ingestion.search.redaction.message import redact
from ingestion.search.redaction.placeholders import BIRTHDATE, EMAIL, HANDLE, PHONE

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
# ClickHouse tag filter (``replication.masking``), which drops such a tag where the index masks the run.
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
