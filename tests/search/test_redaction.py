import json
import sys
import unicodedata

import psycopg
import pytest

from ingestion.generate import vocab
from ingestion.replication import masking
from ingestion.search import rebuild
from ingestion.search.documents import redacted_tag_fields
from ingestion.search.query import search_conversations
from ingestion.search.redaction import plain_forms, redact, redact_all, redact_tag
from tests.search.crm import CONTACT_DETAILS, seed_people, seed_samples
from tests.search.helpers import NO_LAG, indexed_sources, rebuilt_with_messages


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        (
            "您好，我的手机是+86 138 0013 8000，微信: abc_123x，邮箱 zhang.wei@example.com",
            ["您好"],
            ["138", "abc_123x", "zhang.wei"],
        ),
        ("加我VX：wxid_8x8x8x 或者 13800138000", ["加我"], ["wxid_8x8x8x", "13800138000"]),
        ("我的号码138 0013 8000，明天联系", ["明天联系"], ["0013"]),
        ("电话１３８００１３８０００", ["电话"], ["１３８", "138"]),
        ("call me at (415) 555-0123 or WhatsApp +1 415 555 0199", ["call me"], ["555-0123", "0199"]),
        ("Telegram @trader_joe is faster, tg: @moonboy99", ["faster"], ["trader_joe", "moonboy99"]),
        ("My wechat is lily_invest, line id: happy.trader", ["My"], ["lily_invest", "happy.trader"]),
        ("打 010-12345678 或 0755-8888 6666", ["打"], ["12345678", "8888"]),
        ("WhatsApp me on +44 7700 900123", ["me on"], ["7700"]),
        # fewer than nine digits: only the international rule applies, and it still does
        ("call +44 20 7946 now", ["call", "now"], ["7946"]),
        ("编号 123456789 的单子", ["编号", "的单子"], ["123456789"]),
        # digits of other scripts are read as digits too
        ("رقمي ٠١٣٨٠٠١٣٨٠٠٠ شكرا", ["شكرا"], ["٠١٣٨", "0138"]),
        ("WA: 8613800138000, wxid_abc123", [], ["8613800138000", "abc123"]),
        # labels that are English words too: a handle when said to be one or shaped like one
        (
            "QQ号 abcdef, my line is lily.invest, signal wechat: abc_12",
            ["QQ号"],
            ["abcdef", "lily.invest", "abc_12"],
        ),
        # labels in any case, and found at the right place after a letter whose lowercase is longer
        (
            "İstanbul desk: WeChat: MoonBoy_88, TELEGRAM Trader_X",
            ["İstanbul desk: WeChat: ", "TELEGRAM"],
            ["MoonBoy", "Trader_X"],
        ),
    ],
)
def test_contact_details_are_redacted(text, kept, gone):
    redacted = redact(text)
    for fragment in kept:
        assert fragment in redacted
    for fragment in gone:
        assert fragment not in redacted, redacted


@pytest.mark.parametrize(
    "text",
    [
        "我想了解美股投资，入金 50000 美元",
        "Buy 100 shares on 2025-11-03 at 123.45",
        "S&P 500 rose 2% in 2025",
        "入金50000元，订单12345678",
        # Latin labels are whole words: "wa" of "wanted", "line" of "online", "tg" of "stgx"
        "I wanted to deposit more, the waiting list is long",
        "online trading signals from stgx desk",
        "The buy signal is strong, we chat every week; the bottom line is good. QQ is fine",
    ],
)
def test_ordinary_text_is_untouched(text):
    assert redact(text) == text


@pytest.mark.parametrize(
    ("tag", "redacted"),
    [
        # letters-only handles: a WeChat id or Telegram name without digits, an address without domain
        ("加我zhangwei", "加我[handle]"),
        ("zhangwei", "[handle]"),
        ("zhang.wei", "[handle]"),
        ("lina.wang", "[handle]"),
        ("lina-wang", "[handle]"),
        ("ＺｈａｎｇＷｅｉ", "[handle]"),  # full-width, read as plain letters
        ("[zhangwei]", "[[handle]]"),  # brackets do not make a placeholder
        ("美股 zhangwei", "美股 [handle]"),
        # words of the analysis's known tags stay in any case, also inside another tag
        ("Bitcoin", "Bitcoin"),
        ("US stocks", "US stocks"),
        ("wants to withdraw", "wants to withdraw"),
        ("GOOGL", "GOOGL"),
        ("买crypto", "买crypto"),
        ("Crypto zhangwei", "Crypto [handle]"),
        # short words and tickers are no handle shape
        ("ETF", "ETF"),
        ("TSLA", "TSLA"),
        ("risk", "risk"),
        ("美股", "美股"),
        # the placeholders of the rules before stay as they are
        ("zhang.wei@example.com", "[email]"),
        ("加我li_na", "加我[handle]"),
    ],
)
def test_a_tag_with_a_letters_only_handle_is_masked_and_known_words_stay(tag, redacted):
    assert redact_tag(tag) == redacted


def test_every_known_tag_of_the_analysis_stays_and_the_reported_handles_go():
    # the ClickHouse tag filter's vocabulary (``replication.masking``) passes whole, in its own case
    known = [*vocab.KEYWORDS, *vocab.RISK_KEYWORDS, *masking.known_tags_shaped_like_handles()]
    assert [redact_tag(tag) for tag in known] == known
    fields = redacted_tag_fields('["加我zhangwei","zhang.wei","美股"]', '["lina.wang"]', '["lina-wang"]')
    assert fields.decode() == (
        ',"keywords":["加我[handle]","[handle]","美股"],"intention_signals":["[handle]"],'
        '"risk_keywords":["[handle]"]'
    )


def test_no_contact_detail_reaches_the_index(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    stored = indexed_sources(search_client, search_alias)
    assert len(stored) == 8
    everything = json.dumps(list(stored.values()), ensure_ascii=False)
    # message text, and the customer/employee rows' own name, phone, e-mail, wechat id
    for detail in [
        *CONTACT_DETAILS,
        "张伟",
        "zhangwei@example.com",
        "zw_wechat",
        "137 0000 1111",
        "13911112222",
        "corp.example",
    ]:
        assert detail not in everything, detail
    assert "[phone]" in everything and "[email]" in everything and "[handle]" in everything


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_the_index_holds_dates_and_codes_and_no_number_in_the_second_audits_forms(
    pg_dsn, search_client, search_alias
):
    messages = {
        # contact details the first rules let through, whole or in part
        "香港号码 (852) 9123 4567，或者 +7 912 345-67-89": "香港号码 [phone]，或者 [phone]",
        "加我微信(zhangsan88)，my number is 9123 4567": "加我微信([handle])，my number is [phone]",
        "bday: 12/03/1985, 电话 壹叁捌零零壹叁捌零零零": "bday: [birthdate], 电话 [phone]",
        "邮箱 zhangsan艾特163.com 或 john.doe at gmail.com": "邮箱 [email] 或 [email]",
        # ordinary text they took for phone numbers
        "开会时间 2025-11-03 15:30，关注 600519 000858 601318": "开会时间 2025-11-03 15:30，关注 600519 000858 601318",
        "成交额 123456789.50 元，涨幅 +2.5 100 手": "成交额 123456789.50 元，涨幅 +2.5 100 手",
    }
    rebuilt_with_messages(pg_dsn, search_client, search_alias, messages)


# The fourth review: an invisible character inside a contact detail, a phone word before a number
# in three groups or of eight digits after an everyday phone word, a handle after "加我"/"add me".
REVIEWED_LEAKS = {
    # zero-width, joiner, soft hyphen, word joiner, byte order mark, bidi and Mongolian format characters
    "我的手机 138\u200b0013\u200b8000 邮箱 li\u200bna@gmail.com": "我的手机 [phone] 邮箱 [email]",
    "call me 415\u200b555\u200b0123": "call me [phone]",
    "微信：lina\u200d88": "微信：[handle]",
    "lina\xad88@gmail.com": "[email]",
    "tel 415\u2060555\ufeff0123": "tel [phone]",
    "电话 138\u202e0013\u202c8000\u2066\u2069": "电话 [phone]",
    "wechat: lina\u180e\u200c_88": "wechat: [handle]",
    # a phone word before a number in groups takes all of them, and everyday ones count too
    "电话 852 9027 0565": "电话 [phone]",
    "tel 852-9027-0565": "tel [phone]",
    "电话 1234 5678 90": "电话 [phone]",
    "电话 9027 0565, 3 点后打": "电话 [phone], 3 点后打",
    "电话 9027 0565. 3点后打": "电话 [phone]. 3点后打",
    "我的号码 9027 0565, 有事找我": "我的号码 [phone], 有事找我",
    "联系我 9027 0565": "联系我 [phone]",
    "call 9027 0565": "call [phone]",
    "text me at 9027 0565": "text me at [phone]",
    "ring me on 9027 0565": "ring me on [phone]",
    # a handle after a request to be added or found
    "加我lina_88 聊": "加我[handle] 聊",
    "add me lina_88 on wechat": "add me [handle] on wechat",
    "找我 zhangwei1990": "找我 [handle]",
    "我是 lina_88": "我是 [handle]",
}


@pytest.mark.parametrize(("text", "expected"), REVIEWED_LEAKS.items())
def test_the_fourth_reviews_leaks_are_redacted(text, expected):
    assert redact(text) == expected


# Phone numbers read out in Chinese numerals, in forms each of the two lists of numerals (the search
# index's and replication's) once lacked: "两" for two, the formal "叄" for three, traditional "兩".
PHONES_IN_CHINESE_NUMERALS = {
    "电话 一三八两两一三八两两两": "电话 [phone]",
    "电话 壹叄捌零零壹叄捌零零零": "电话 [phone]",
    "電話 一三八兩兩一三八兩兩兩": "電話 [phone]",
}


@pytest.mark.parametrize(("text", "expected"), PHONES_IN_CHINESE_NUMERALS.items())
def test_phone_numbers_in_chinese_numerals_are_redacted(text, expected):
    assert redact(text) == expected
    assert redact_tag(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # after a request to be added, a year, an amount, a plain word or a short one is no handle
        "我是 2024 年开户的",
        "我是 VIP 客户, 加我 zhangwei 也行",
        "add me 100 shares, add me 10x leverage",
        "找我 2000 块",
        # "号码" of an order or an invoice, "call" as a noun
        "订单号码 12345678, 发票号码 87654321",
        "earnings call 2025 1103, conference call 9027 0565",
        "string 9027 0565 during 1234 5678",
        # emoji sequences keep their joiners and presentation selectors
        "👨\u200d👩\u200d👧 家人 ❤\ufe0f 👩🏽\u200d💻",
    ],
)
def test_ordinary_text_near_the_fourth_reviews_words_is_untouched(text):
    assert redact(text) == text


# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, unchanged since Unicode 14),
# written out: Python's unicodedata does not give it.
_DEFAULT_IGNORABLE = [
    chr(code)
    for first, last in [
        (0x00AD, 0x00AD),
        (0x034F, 0x034F),
        (0x061C, 0x061C),
        (0x115F, 0x1160),
        (0x17B4, 0x17B5),
        (0x180B, 0x180F),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x206F),
        (0x3164, 0x3164),
        (0xFE00, 0xFE0F),
        (0xFEFF, 0xFEFF),
        (0xFFA0, 0xFFA0),
        (0xFFF0, 0xFFF8),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0000, 0xE0FFF),
    ]
    for code in range(first, last + 1)
]


def test_every_format_character_is_dropped_and_the_tag_path_agrees():
    format_characters = [
        chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cf"
    ]
    assert [character for character in format_characters if plain_forms(f"a{character}b") != "ab"] == []
    # nor any other default-ignorable code point, printable ones included (variation selectors, grapheme
    # joiner, Khmer's invisible vowels, Mongolian's free variation selectors, Hangul fillers)
    assert [f"U+{ord(c):04X}" for c in _DEFAULT_IGNORABLE if plain_forms(f"a{c}b") != "ab"] == []
    assert redact("电话 138\ufe0f0013\u034f8000") == "电话 [phone]"
    # a joiner between an emoji and a digit joins nothing
    assert plain_forms("🙂\u200d1") == "🙂1"
    assert redact_all(["加我lina_88", "li\u200bna_88", "138\u200b0013\u200b8000"]) == [
        "加我[handle]",
        "[handle]",
        "[phone]",
    ]


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_the_index_holds_none_of_the_fourth_reviews_leaks(pg_dsn, search_client, search_alias):
    rebuilt_with_messages(pg_dsn, search_client, search_alias, REVIEWED_LEAKS)


# The search review: WeChat in spaced pinyin, "号" in pinyin between a label and its handle (which
# took "hao" for the handle and left the id), Instagram and Facebook by name, abbreviation or link.
SEARCH_REVIEWS_LEAKS = {
    "Wei Xin: zhangwei88": "Wei Xin: [handle]",
    "weixin hao: lina_w2024": "weixin hao: [handle]",
    "weixinhao lina_w2024": "weixinhao [handle]",
    "wei xin zhanghao lina88": "wei xin zhanghao [handle]",
    "WEIXIN haoma: lina": "WEIXIN haoma: [handle]",
    "qq hao 12345678": "qq hao [handle]",
    "my wechat account is lina88": "my wechat account is [handle]",
    "kakao talk: lina88": "kakao talk: [handle]",
    "instagram lina.wang88": "instagram [handle]",
    "Instagram: lina_wang": "Instagram: [handle]",
    "IG lina.w": "IG [handle]",
    "fb: lina_w": "fb: [handle]",
    "facebook.com/lina.wang88": "facebook.com/[handle]",
    "看我 https://www.instagram.com/lina.wang88 吧": "看我 https://www.instagram.com/[handle] 吧",
    "ig: instagram.com/linawang": "ig: [handle]",
    "lina_88 是我weixin": "[handle] 是我weixin",
    # "account" then 是/为 says a handle follows, as ":" does
    "我的 ig account 是 linawang": "我的 ig account 是 [handle]",
    "line account 为 moonboy": "line account 为 [handle]",
}


@pytest.mark.parametrize(("text", "expected"), SEARCH_REVIEWS_LEAKS.items())
def test_the_search_reviews_leaks_are_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # a name, a company, a ticker: a plain word after them is a word
        "Wei Xin said the market is up",
        "Facebook earnings beat, facebook stock fell, FB shares and IG group results",
        "the instagram ads business grows",
        # a word that starts with a label ("ig" + "no..."), and "account" after a label: a word
        "He ignored the email, she ignores calls: ignorance is costly",
        "客户 ignored 我的消息, fbnotes",
        "open an IG account today; our fb account manager will call",
        "my instagram account is private, qq account suspended, your credit line account balance is low",
        # a word starting with "no", "id" or "number" after a label and a space
        "IG noted the drop, Signal noise is high, qq notification, FB nonprofit, wa nobody",
        "IG identity checks, line numbering",
    ],
)
def test_ordinary_text_near_the_search_reviews_labels_is_untouched(text):
    assert redact(text) == text


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_searching_a_handle_of_the_search_review_finds_nothing(pg_dsn, search_client, search_alias):
    rebuilt_with_messages(pg_dsn, search_client, search_alias, SEARCH_REVIEWS_LEAKS)
    for handle in ("zhangwei88", "lina_w2024", "lina.wang88"):
        assert search_conversations(search_client, handle, alias=search_alias).total == 0, handle
