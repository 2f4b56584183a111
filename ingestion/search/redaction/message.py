"""``redact``: one message's text through every rule in order, each skipped when the text cannot hold
what it looks for (why this order and these skips: the package's docstring).
"""

from __future__ import annotations

from ingestion.search.redaction.birthdates import (
    _BIRTHDATE,
    _BIRTHDATE_BEFORE_LABEL,
    _MIN_DIGITS_BIRTHDATE,
    _has_birthday_label,
)
from ingestion.search.redaction.emails import (
    _EMAIL,
    _SPELLED_EMAIL,
    _redact_addresses_at_mail_services,
    _spelled_email,
)
from ingestion.search.redaction.handles import _AT_HANDLE, _redact_labelled_handles
from ingestion.search.redaction.phones import (
    _may_hold_a_number_in_words,
    _redact_numbers_in_words,
    _redact_phone_numbers,
)
from ingestion.search.redaction.placeholders import BIRTHDATE, EMAIL, HANDLE
from ingestion.search.redaction.text import (
    _NON_ASCII_DIGIT,
    _ascii_digit,
    _digit_count,
    _lowercase_same_positions,
    plain_forms,
)


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
