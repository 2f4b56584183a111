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

The modules by role: ``placeholders`` (what a contact detail becomes), ``text`` (the forms the rules
read: ``plain_forms``, ASCII digits, a lowercase copy), one module per kind of contact detail
(``emails``, ``handles``, ``phones``, ``birthdates``), ``message`` (``redact``: the rules in order)
and ``tags`` (``redact_tag``, ``redact_all``). This module re-exports what the rest of the code uses.
"""

from __future__ import annotations

from ingestion.search.redaction.message import redact
from ingestion.search.redaction.placeholders import BIRTHDATE, EMAIL, HANDLE, PHONE
from ingestion.search.redaction.tags import redact_all, redact_tag
from ingestion.search.redaction.text import plain_forms

__all__ = ["BIRTHDATE", "EMAIL", "HANDLE", "PHONE", "plain_forms", "redact", "redact_all", "redact_tag"]
