"""Known tag words a deployment adds to the tag filter's vocabulary (``masking.py``).

The filter drops every extracted tag with a handle-shaped run of 5+ Latin letters (a WeChat id or
Telegram name without digits) unless it is a known word; the CRM analysis's own words (modelled by
the generator) are known by default. A deployment whose analysis tags in other words ("dividend")
lists them in the operational database's ``system_settings`` (key ``replication.known_tag_words``,
value a JSON array of words, value_type ``json``), or in ``FUNNELHOUSE_KNOWN_TAG_WORDS`` (words
separated by commas); both count. A known word never lets a digit or an "@" through. Changing the
list changes the expression that fills the raw tag columns, so the next run reloads the replicated
conversations (``Replicator._needs_reload``): a word added comes back in every row, a word removed
goes from every row. The same words count in a material's hashtags and tags, whose table, a
snapshot, every run copies whole anyway.
"""

from __future__ import annotations

import json
import os

import psycopg

SETTING_KEY = "replication.known_tag_words"
ENVIRONMENT_VARIABLE = "FUNNELHOUSE_KNOWN_TAG_WORDS"


class BadKnownTagWords(ValueError):
    """The configured list is not a list of words."""


def configured(pg_dsn: str) -> tuple[str, ...]:
    """The extra known words, from the environment and the ``system_settings`` entry, sorted."""
    words = os.environ.get(ENVIRONMENT_VARIABLE, "").split(",")
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("select value from system_settings where key = %s", (SETTING_KEY,)).fetchone()
    if row and row[0] and row[0].strip():
        words += _words_of_setting(row[0])
    return tuple(sorted({word.strip() for word in words if word.strip()}))


def _words_of_setting(value: str) -> list[str]:
    try:
        words = json.loads(value)
    except json.JSONDecodeError as error:
        raise BadKnownTagWords(
            f'system_settings {SETTING_KEY!r}: expected a JSON array of words, e.g. ["dividend", "coupon"]'
            f" (not JSON: {error})"
        ) from None
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise BadKnownTagWords(
            f'system_settings {SETTING_KEY!r}: expected a JSON array of words, e.g. ["dividend", "coupon"]'
        )
    return words
