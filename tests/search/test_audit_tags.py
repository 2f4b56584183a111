"""The CRM's extracted tags reach the index one by one, each redacted on its own: a tag that is a bare
messenger id or phone number ("lily_invest88", "zhangwei", "91234567") has no label beside it, so the
rules for message text let it through (the ClickHouse replication drops such tags: ``replication.masking``).
Together with the third audit's message forms, through a real rebuild into one engine."""

import json

import pytest

from tests.search.helpers import rebuilt_with_messages

TAGS = [
    "美股",
    "ETF",
    "TSLA",
    "crypto",
    "lily_invest88",
    "wxid_8x8x8x",
    "moon.boy99",
    "91234567",
    "加我li_na",
    "加我zhangwei",
    "zhang.wei",
    "lina-wang",
    "Bitcoin",
]


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_tags_and_the_third_audits_forms_reach_the_index_without_contact_details(
    pg_dsn, search_client, search_alias
):
    messages = {
        "邮箱 zhangsan艾特qq点com，加微 lily2024": "邮箱 [email]，加微 [handle]",
        "生日 一九九零年一月一日，李四@公司.中国": "生日 [birthdate]，[email]",
    }

    def tag_the_first(conn, ids):
        conn.execute(
            "UPDATE conversations SET keywords = %s::jsonb, risk_keywords = %s::jsonb WHERE id = %s",
            (json.dumps(TAGS, ensure_ascii=False), json.dumps({"wx_lily2024": 1}), next(iter(ids))),
        )

    ids, stored = rebuilt_with_messages(pg_dsn, search_client, search_alias, messages, tag_the_first)
    tagged = next(iter(ids))
    assert stored[tagged]["keywords"] == [
        "美股",
        "ETF",
        "TSLA",
        "crypto",
        "[handle]",
        "wx[handle]",
        "[handle]",
        "[phone]",
        "加我[handle]",
        "加我[handle]",
        "[handle]",
        "[handle]",
        "Bitcoin",
    ]
    assert stored[tagged]["risk_keywords"] == ["[handle]"]
