"""The forms every rule reads: NFKC without invisible characters (``plain_forms``, also the form the
index holds and the search query reads), ASCII digits and their count, a lowercase copy with each
character at its index. Apart from the rules, so that all of them read text the same way.
"""

from __future__ import annotations

import re
import unicodedata

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
# bidi controls, the Mongolian vowel separator...) and every other default-ignorable code point: the
# unassigned ones, the variation selectors (the text and emoji presentation selectors among them), the
# combining grapheme joiner, Khmer's invisible vowels, Mongolian's free variation selectors and the
# Hangul fillers (NFKC's form of "\u3164" and "\uffa0"). They go before any rule runs, but for those
# that build an emoji: a joiner between two emoji ("👨\u200d👩\u200d👧") and the presentation selector
# after one ("❤\ufe0f") stay; no rule reads an emoji. Python counts the Cf and unassigned ones
# unprintable and the others printable (_PRINTABLE_INVISIBLE), so a text holds one only if
# ``str.isprintable`` says no or a search for those finds one (``plain_forms``): ~0.5 us a message, of
# the ~11 us its redaction takes.
_PRINTABLE_INVISIBLE_CLASS = (
    "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef"
)
_PRINTABLE_INVISIBLE = re.compile(f"[{_PRINTABLE_INVISIBLE_CLASS}]")
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\ufeff\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e00ff\U000e01f0-\U000e0fff"
    f"{_PRINTABLE_INVISIBLE_CLASS}"
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
    if not text.isprintable() or _PRINTABLE_INVISIBLE.search(text):
        text = _EMOJI_SEQUENCE_OR_INVISIBLE.sub(_emoji_sequence_only, text)
    return text


# Decimal digits of any other script (full-width "１３８" is the usual way to slip a number past a
# filter): written as ASCII digits first, so the rules and the digit count see one alphabet.
_NON_ASCII_DIGIT = re.compile(r"[^\D0-9]")


def _ascii_digit(match: re.Match) -> str:
    return str(unicodedata.decimal(match.group()))


_ASCII_DIGITS = b"0123456789"


def _digit_count(text: str) -> int:
    """ASCII digits in ``text`` (UTF-8 encodes nothing else as bytes 0x30-0x39)."""
    encoded = text.encode()
    return len(encoded) - len(encoded.translate(None, _ASCII_DIGITS))


_ASCII_LOWERCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lowercase_same_positions(text: str) -> str:
    """``text`` lowercased letter by letter, as ``re``'s IGNORECASE compares, each character at its
    index. ``str.lower`` differs only for "İ" (U+0130), the one letter whose lowercase is two
    characters in Unicode; ``re`` takes it as "i"."""
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text.replace("\u0130", "i").lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWERCASE)
