"""Extracted tags (keywords, intention signals, risk keywords) reach ClickHouse without anything that
could be a contact detail, and with every tag of the CRM's vocabulary."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ingestion.generate import phrases, vocab
from ingestion.replication import tag_words
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from tests.fixtures.warehouse import load_fixture

TAG_COLUMNS = ("keywords", "intention_signals", "risk_keywords")


def _replicated_tags(pg_dsn: str, raw_database: str, tags: dict[str, object]) -> dict[str, object]:
    """Replicate one conversation carrying ``tags`` (column -> JSON value) and read its tag columns
    back from raw, parsed."""
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " sentiment, platform, sent_at, keywords, intention_signals, risk_keywords)"
            " values ('MSG_TAGS', 1, 2, 'text', 'inbound', 'neutral', 'wechat', now() - interval '1 hour',"
            " %s, %s, %s)",
            [Jsonb(tags[column]) if column in tags else None for column in TAG_COLUMNS],
        )
    replicate_tables(pg_dsn, ["conversations"])
    return _raw_tags(raw_database)


def _raw_tags(raw_database: str) -> dict[str, object]:
    """The tag columns of the MSG_TAGS conversation in raw, parsed: the newest id, inserted after the
    fixture's (raw has no platform message ids)."""
    [row] = (
        clickhouse_client()
        .query(
            f"select {', '.join(TAG_COLUMNS)} from `{raw_database}`.conversations final"
            f" where id = (select max(id) from `{raw_database}`.conversations)"
        )
        .result_rows
    )
    return {
        column: None if value is None else json.loads(value)
        for column, value in zip(TAG_COLUMNS, row, strict=True)
    }


def test_tags_that_could_be_contact_details_stay_in_postgresql(pg_dsn, clickhouse_env):
    replicated = _replicated_tags(
        pg_dsn,
        clickhouse_env,
        {
            "keywords": [
                "美股", "TSLA", "ETF", "risk", "crypto", "Bitcoin", "US stocks",  # vocabulary
                "zhangwei", "li-na_wx", "Zhang.Wei", "ｚｈａｎｇｗｅｉ", "加我zhangwei",  # handles without digits
                "wx_lina_002", "@lina", "li.na@mail.example", "+86-138-0000-0001",  # with digits or "@"
                "dividend",  # an English word outside the vocabulary: it cannot be told from a handle
                # Phone numbers in other digits: circled, bold, Arabic-Indic, formal Chinese numerals.
                "①③⑧⓪⓪①③⑧⓪⓪⓪", "⑬⑧⓪⓪⑬⑧⓪⓪⓪", "𝟏𝟑𝟖𝟎𝟎𝟏𝟑𝟖𝟎𝟎𝟎", "١٣٨٠٠١٣٨٠٠٠",
                "壹叁捌零零壹叁捌零零零", "电话壹叁捌零零壹叁捌零零零", "138 - 0013 - 8000",
                "投资顾问", "一二三",  # a Chinese tag, and Chinese numerals too few to be a number
            ],
            # An object's keys are its tags.
            "intention_signals": {"询问费用": 1, "asked about fees": 1, "tg_lina": 1, "①③⑧⓪⓪①③⑧⓪⓪⓪": 1},
        },
    )  # fmt: skip
    assert replicated["keywords"] == [
        "美股", "TSLA", "ETF", "risk", "crypto", "Bitcoin", "US stocks", "投资顾问", "一二三",
    ]  # fmt: skip
    assert sorted(replicated["intention_signals"]) == ["asked about fees", "询问费用"]
    assert replicated["risk_keywords"] is None  # no tags stays no tags


def test_handles_split_by_characters_that_show_nothing_are_dropped(pg_dsn, clickhouse_env):
    """A handle of letters split by characters that show nothing (Unicode's format characters: zero-width
    space, non-joiner and joiner, word joiner, soft hyphen, byte order mark; a Hangul filler) into runs
    too short to be one is read as the handle it shows; a tag that passes is copied as it was typed."""
    replicated = _replicated_tags(
        pg_dsn,
        clickhouse_env,
        {
            "keywords": [
                "美股", "美\u200b股",
                "zhan\u200bgwei", "li\u2060na\u2060wang", "加我zhan\u00adgwei", "zh\ufeffan\u200cgw\u200dei",
                "zhan\u3164gwei",
            ],
        },
    )  # fmt: skip
    assert replicated["keywords"] == ["美股", "美\u200b股"]


def test_every_tag_of_the_crm_analysis_is_replicated(pg_dsn, clickhouse_env):
    """The tags the CRM's analysis produces (modelled by the generator) all reach the marts."""
    signals = sorted(
        {
            signal
            for by_phase in (phrases.ZH, phrases.EN)
            for phrase_list in by_phase.values()
            for phrase in phrase_list
            for signal in phrase.signals
        }
    )
    tags = {
        "keywords": list(dict.fromkeys(vocab.KEYWORDS)),
        "intention_signals": signals,
        "risk_keywords": list(vocab.RISK_KEYWORDS),
    }
    assert _replicated_tags(pg_dsn, clickhouse_env, tags) == tags


def test_tags_an_older_filter_let_through_are_reloaded_away(pg_dsn, clickhouse_env):
    """Raw rows written under an older tag rule (here: the keywords column recorded with another
    definition, and holding a handle) are replaced by a reload, deleted rows' tombstones included."""
    _replicated_tags(pg_dsn, clickhouse_env, {"keywords": ["美股", "zhangwei"]})
    client, raw = clickhouse_client(), f"`{clickhouse_env}`.conversations"
    with psycopg.connect(pg_dsn) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "select id from conversations where source_message_id in ('MSG_TAGS', 'MSG1')"
            )
        ]
    # What the older rule left: a handle in the tags of MSG_TAGS and of MSG1, and its own definition.
    client.command(
        f'insert into {raw} select * replace (\'["美股","zhangwei"]\' as keywords, _version + 1 as _version)'
        f" from {raw} final where has({ids}, id)"
    )
    client.command(f"alter table {raw} comment column keywords 'pull older rule'")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from conversations where source_message_id = 'MSG1'")

    [result] = replicate_tables(pg_dsn, ["conversations"])
    assert (result.tombstones, result.live_rows) == (1, 6)
    assert _raw_tags(clickhouse_env)["keywords"] == ["美股"]
    assert client.query(f"select count() from {raw} where keywords like '%zhangwei%'").result_rows == [(0,)]


def test_a_deployments_own_tag_words_are_replicated_once_configured(pg_dsn, clickhouse_env, monkeypatch):
    """A word outside the CRM analysis's vocabulary ("dividend") cannot be told from a handle and is
    dropped, until the deployment lists it (system_settings, or the environment): then the raw table
    is reloaded with it, and reloaded without it once it is taken off the list."""
    monkeypatch.delenv(tag_words.ENVIRONMENT_VARIABLE, raising=False)
    tags = {"keywords": ["美股", "dividend", "coupon", "zhangwei"]}
    assert _replicated_tags(pg_dsn, clickhouse_env, tags)["keywords"] == ["美股"]

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into system_settings (key, value, value_type, category) values (%s, %s, 'json', 'replication')",
            (tag_words.SETTING_KEY, '["Dividend"]'),
        )
    monkeypatch.setenv(tag_words.ENVIRONMENT_VARIABLE, "coupon, bond")
    messages: list[str] = []
    replicate_tables(pg_dsn, ["conversations"], log=messages.append)
    assert _raw_tags(clickhouse_env)["keywords"] == ["美股", "dividend", "coupon"]
    assert any("reloading it from scratch" in message for message in messages)

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from system_settings where key = %s", (tag_words.SETTING_KEY,))
    replicate_tables(pg_dsn, ["conversations"])
    assert _raw_tags(clickhouse_env)["keywords"] == ["美股", "coupon"]


def test_a_malformed_tag_word_setting_is_a_clear_error(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into system_settings (key, value) values (%s, %s)",
            (tag_words.SETTING_KEY, "dividend, coupon"),
        )
    with pytest.raises(tag_words.BadKnownTagWords, match="replication.known_tag_words.*JSON array"):
        tag_words.configured(pg_dsn)
