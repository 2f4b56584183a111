"""Conversations: bilingual, spread over several monthly partitions, consistent with their events."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from ingestion.generate import DEFAULT_END_DATE

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_several_monthly_partitions_fill(clean):
    months = [f for f in clean.manifest.files_of("conversations") if f.rows]
    assert len(months) >= 4
    for entry in months:
        month = entry.batch
        rows = [r for r in clean.good["conversations"] if r.file == entry.file]
        assert all(f"{r.typed['sent_at']:%Y_%m}" == month for r in rows)


def test_sent_at_inside_the_window(clean):
    end = datetime.combine(DEFAULT_END_DATE, datetime.min.time())
    start = end - timedelta(days=120)
    for row in clean.rows("conversations"):
        assert start <= row["sent_at"] < end
        assert row["created_at"] >= row["sent_at"]


def test_content_is_bilingual_with_contact_details(clean):
    texts = [r["content"] for r in clean.rows("conversations") if r["content"]]
    chinese = sum(bool(CJK.search(t)) for t in texts)
    english = sum(not CJK.search(t) for t in texts)
    assert chinese > len(texts) * 0.3 and english > len(texts) * 0.1
    assert any(re.search(r"\+86 1[0-9]{2} [0-9]{4} [0-9]{4}", t) for t in texts)
    assert any(re.search(r"[\w.]+@[\w.]+", t) for t in texts)
    assert any("微信" in t for t in texts)
    assert {r["platform"] for r in clean.rows("conversations")} == {"wechat", "whatsapp", "telegram"}


def test_analysis_columns_are_plausible(clean):
    rows = clean.rows("conversations")
    assert any(r["is_反问"] for r in rows)
    assert all(r["direction"] == "outbound" for r in rows if r["is_反问"])
    assert all(r["direction"] == "outbound" for r in rows if r["script_used_code"])
    assert any(r["script_used_code"] for r in rows)
    assert all(isinstance(r["keywords"], list) for r in rows if r["keywords"] is not None)
    assert {r["sentiment"] for r in rows} == {"positive", "neutral", "negative"}
    assert all(r["media_url"] for r in rows if r["message_type"] in ("image", "video"))
    assert all(r["content"] is None for r in rows if r["message_type"] in ("image", "video"))


def test_messages_average_tens_per_customer(clean):
    per_customer = len(clean.rows("conversations")) / len(clean.rows("customers"))
    assert 20 <= per_customer <= 90


def test_events_match_their_conversation(clean):
    conversations = {r["source_message_id"]: r for r in clean.rows("conversations")}
    events = clean.rows("conversation_events")
    unattached = 0
    for event in events:
        message_id = event["conversation_message_id"]
        if message_id is None:
            unattached += 1
            continue
        message = conversations[message_id]
        assert (event["customer_code"], event["employee_code"]) == (
            message["customer_code"],
            message["employee_code"],
        )
        assert event["created_at"] >= message["sent_at"]
        if event["event_type"] == "反问":
            assert message["is_反问"]
    assert 0 < unattached < len(events)
    assert len({e["event_type"] for e in events}) == 7


def test_employee_changes_with_the_funnel_phase(clean):
    """ToFu contact first, the MoFu advisor from Engage on."""
    tofu = {r["customer_code"]: r["employee_code"] for r in clean.rows("funnel_tofu")}
    mofu = {r["customer_code"]: (r["employee_code"], r["created_at"]) for r in clean.rows("funnel_mofu")}
    for row in clean.rows("conversations"):
        code = row["customer_code"]
        if code not in mofu or row["sent_at"] < mofu[code][1]:
            assert row["employee_code"] == tofu[code]


def test_the_employee_writes_first(clean):
    first: dict[str, dict] = {}
    for row in clean.rows("conversations"):
        current = first.get(row["customer_code"])
        if current is None or row["sent_at"] < current["sent_at"]:
            first[row["customer_code"]] = row
    assert all(row["direction"] == "outbound" for row in first.values())
