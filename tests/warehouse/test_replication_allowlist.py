"""Replication copies an allowlist (ingestion/replication/tables.py): every column of the seed schema is
classified as replicated or dropped, a column added to PostgreSQL since stays there (and every run says
so), and short free text is replicated masked where it looks like it carries contact details."""

from __future__ import annotations

import dataclasses
import logging

import psycopg

from ingestion.generate import content, vocab
from ingestion.replication import declared_source, replicate
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.masking import MASKED
from ingestion.replication.replicate import replicate_tables
from ingestion.replication.tables import BY_NAME, RAW_TABLES, WAREHOUSE_SETTING_KEYS
from tests.fixtures.warehouse import load_fixture


def test_every_column_of_the_seed_schema_is_replicated_or_dropped(pg_dsn):
    source = declared_source.columns(pg_dsn)
    for table in RAW_TABLES:
        columns = [name for name, *_ in source[table.name]]
        replicated, dropped = set(table.replicated), set(table.dropped)
        unclassified = [name for name in columns if name not in replicated | dropped]
        assert not unclassified, f"{table.name}: {unclassified} neither replicated nor dropped"
        assert not (replicated | dropped) - set(columns), f"{table.name}: listed but not in PostgreSQL"
        assert not replicated & dropped, f"{table.name}: both replicated and dropped"
        # A derived column of a replicated one's name would be selected twice.
        assert not replicated & set(table.derived), f"{table.name}: derived over a replicated column"


def test_a_column_added_in_postgresql_stays_there_and_each_run_names_it(pg_dsn, clickhouse_env, caplog):
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("alter table customers add column id_card_no text")
        conn.execute("update customers set id_card_no = 'ID-' || id")
        conn.execute("update customers set occupation = '微信 13800000001' where id = 1")
    for _ in range(2):  # the first run (a reload: new raw table) and the next, incremental one
        messages: list[str] = []
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=replicate.__name__):
            [result] = replicate_tables(pg_dsn, ["customers"], log=messages.append)
        assert result.live_rows == 4
        for said in (messages, caplog.messages):
            assert any("customers.id_card_no" in line and "replication/tables.py" in line for line in said)
    client = clickhouse_client()
    described = client.query(f"describe table `{clickhouse_env}`.customers").result_rows
    columns = {name for name, *_ in described}
    assert "id_card_no" not in columns and "customer_code" in columns
    # A masked column arrives under its own name, masked (the fixture's other occupations are NULL).
    occupations = client.query(f"select id, occupation from `{clickhouse_env}`.customers final order by id")
    assert occupations.result_rows == [(1, MASKED), (2, None), (3, None), (4, None)]


# Every column replicated masked, as (table, column): the same rule for each.
_MASKED_COLUMNS = (
    ("customers", "occupation"),
    ("customers", "decision_style"),
    ("customer_journey", "trigger_event"),
    ("withdrawals", "reason"),
)
# Names staff give tags and materials: the same rule, but letters with digits (which name products,
# tiers and series) count only as long as a handle or after a messenger's label.
_MASKED_NAMES = (("tags", "name"), ("materials", "title"))


def test_free_text_is_masked_where_it_looks_like_contact_details(clickhouse_env):
    # The generator's values of the masked columns are what real ones look like: none is masked.
    vocabulary = [
        *(occupation for occupation, _ in vocab.OCCUPATIONS),
        *vocab.DECISION_STYLES,
        *(event for events in vocab.TRIGGER_EVENTS.values() for event in events),
        *vocab.WITHDRAWAL_REASONS,
        *(tag.name for tag in content.build_tags()),
    ]
    kept = [
        *vocabulary,
        "持续入金满30天",
        "manual",
        "Software Engineer",
        "1-5万美元",
        "3年经验",
        "2024 Q3",
        "Engineer",
        "投资顾问",
        "3月12日",
        "壹万伍仟元",  # an amount in formal numerals: "万" and "仟" are no digits of a number read out
        "m²",  # "m2" in NFKC: one digit is no sign
        "follow-up",  # letters joined by "-" or "." are words; only "_" joins a handle of letters
        "self-employed",
        "Market wrap 12",  # a material's title
        "长期主义的力量 #7",
        "美股财报季解读 Vol.12",  # "." joins no messenger id's letters and digits: a title's volume passes
        "No.1 客户经理",
        None,
    ]
    masked = [
        "微信 13800000001",
        "+86-138-0000-0001",
        "QQ 12345",
        "138\u30000013\u30008000",  # the full-width space a Chinese IME types
        "138—0013—8000",
        "138–0013‐8000",
        "138－0013－8000",
        "138_0013_8000",
        "电话138,0013,8000",
        "电话138，0013、8000。",
        "电话（138）0013",
        "[138] 0013",
        "一三八零零一三八零零零",
        # Digits in other forms, matched as their NFKC (circled, bold) or as digits of any script.
        "①③⑧⓪⓪①③⑧⓪⓪⓪",
        "⑬⑧⓪⓪⑬⑧⓪⓪⓪",
        "𝟏𝟑𝟖𝟎𝟎𝟏𝟑𝟖𝟎𝟎𝟎",
        "١٣٨٠٠١٣٨٠٠٠",
        "壹叁捌零零壹叁捌零零零",  # formal numerals
        "电话壹叁捌零零壹叁捌零零零",
        "138 - 0013 - 8000",  # three characters between groups
        "138 / 0013 / 8000",
        "10,000",  # the price of any five digits counting, as before
        "1990/05/12",
        "05/12/1990",
        "1990-5-12",
        "1990年5月12日",
        "85年3月12号",
        "1990 年 5 月 12 日",
        "生日 3月12日",
        "birthday: 3/12",
        "li@example.com",
        "找我＠lina",
        "https://t.me/lina",
        "t.me/lina",
        "www.example.cn",
        "加我 lina88",
        "wx_zhang",
        "wx_8",
        # Letters and digits joined by "-", as WeChat ids are, full-width too.
        "zhangwei-1988",
        "li-na-520",
        "ｚｈａｎｇｗｅｉ－１９８８",
        "ｌｉ－ｎａ－５２０",
        "加我微信wxid_piitag01",  # a tag's name that copied a WeChat id
        "客户张三 +86 138-0013-8000 wxid_piimat01 的开户故事",  # a material's title
        "COVID-19",  # the price of "-" joining letters and digits
    ]
    # Names of products, tiers and series: letters with digits, but shorter than a handle.
    product_names = [
        "VIP1",
        "VIP3",
        "ETF50",
        "Web3",
        "B2B",
        "TOP10",
        "MT5开户教程",
        "2024Q4策略会",
        "Top10基金",
    ]
    product_names += ["A50期指解读", "S&P500 weekly", "微信5群"]
    # A messenger's label run into a product's name, or before a name shorter than any id.
    product_names += ["加VIP3会员福利", "微信H5活动页制作", "微信5G消息", "WeChat 3D海报", "QQ 2FA设置"]
    product_names += ["微信2024Q4运营复盘", "微信OA2.0", "QQQ3倍杠杆ETF解读", "ＷｅＣｈａｔ　３Ｄ海报"]
    # Messenger handles in a name: long enough, or after a messenger's label (also in full-width forms,
    # a Latin label followed by "号").
    handles = ["加微信 lina88 领资料", "微信号zhangwei1988", "Telegram lina88", "wechat: wang-1988"]
    handles += ["加V: lina1988", "客户故事: 王女士 微信 wangli-1990 三个月收益", "微信 ab123", "V信：a1234"]
    handles += ["微信号：lina88", "wx: ab1234", "QQ号 q12345", "WX li888", "tg: 8lina", "WhatsApp - ab_123"]
    handles += ["wechat号ab1234", "ｗｘ：ａｂ１２３４", "加vx ab1234"]
    # the letter-digit pair past the id's fourth character; an id straight after 微信
    handles += [
        "微信: zhangwei8",
        "wx: abcdef1",
        "微信号：wangli8",
        "tg: linawang1",
        "加微信zw1988",
        "微信ab1234",
    ]
    # The price of a handle's length: a word and a count or year read as one.
    handles += ["iPhone15发布会解读", "Nasdaq100指数", "Russell2000周报", "Bitcoin2024展望"]
    client = clickhouse_client()
    for columns, passing, caught in (
        (_MASKED_COLUMNS, kept, masked),
        (_MASKED_NAMES, kept + product_names, masked + handles),
    ):
        for table, column in columns:
            expression = BY_NAME[table].derived[column]
            rows = client.query(
                f"select `{column}`, {expression} from "
                f"(select arrayJoin({{values:Array(Nullable(String))}}) as `{column}`)",
                parameters={"values": passing + caught},
            ).result_rows
            assert rows == [(value, value) for value in passing] + [(value, MASKED) for value in caught], (
                f"{table}.{column}"
            )


def test_setting_values_reach_clickhouse_only_for_the_keys_the_warehouse_reads(
    pg_dsn, clickhouse_env, monkeypatch
):
    """system_settings.value may be a secret: raw's ``warehouse_value`` holds it for WAREHOUSE_SETTING_KEYS only,
    NULL for every other key (fixture_crm.sql's SMTP password, a key that merely starts like an allowed
    one), ``has_value`` still saying there is one (read from the source's value, not the NULLed one). A raw table copied by the older rule (no value column at
    all) is replaced by the next run, which counts as a change (the models reading it are rebuilt)."""
    load_fixture(pg_dsn)
    weights_key = "kpi.overall_score_weights"
    assert weights_key in WAREHOUSE_SETTING_KEYS
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into system_settings (key, value, value_type) values (%s, '{\"tofu_contacts\": 4}', 'json'),"
            " (%s, 'sk-not-for-the-warehouse', 'string')",
            (weights_key, f"{weights_key}.backup"),
        )
    table = BY_NAME["system_settings"]
    older = dataclasses.replace(table, derived={"has_value": table.derived["has_value"]})
    with monkeypatch.context() as patch:
        patch.setitem(BY_NAME, table.name, older)
        replicate_tables(pg_dsn, [table.name])
    client = clickhouse_client()
    query = (
        f"select key, has_value, warehouse_value from `{clickhouse_env}`.system_settings final order by key"
    )
    assert "warehouse_value" not in {
        name for name, *_ in client.query(f"describe `{clickhouse_env}`.system_settings").result_rows
    }

    [result] = replicate_tables(pg_dsn, [table.name])
    assert result.changed
    assert client.query(query).result_rows == [
        (weights_key, 1, '{"tofu_contacts": 4}'),
        (f"{weights_key}.backup", 1, None),
        ("smtp.password", 1, None),
    ]
