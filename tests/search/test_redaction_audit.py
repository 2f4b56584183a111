"""The data-protection audit's misses: contact details in the forms people use to get past
filters, and birth dates. Engine-free: ``redact`` only."""

import pytest

from ingestion.search.redaction import BIRTHDATE, EMAIL, HANDLE, PHONE, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a lone "v" as the WeChat label, after 加/我的/+ or before a separator
        ("加V: zhangsan_88", f"加V: {HANDLE}"),
        ("我的v：abc_123", f"我的v：{HANDLE}"),
        ("加v zhangsan88", f"加v {HANDLE}"),
        ("方便的话加V zhangsan88 聊", f"方便的话加V {HANDLE} 聊"),
        ("私聊+v lily_2024", f"私聊+v {HANDLE}"),
        ("v号: wxid_8x8x8x, 备注开户", f"v号: {HANDLE}, 备注开户"),
        # labels spaced out
        ("微 信: lisi1990", f"微 信: {HANDLE}"),
        ("V 信 abc123", f"V 信 {HANDLE}"),
        ("有事加威 信 zhang_88", f"有事加威 信 {HANDLE}"),
        ("微\u3000信：moon_boy", f"微\u3000信：{HANDLE}"),
        # Telegram links
        ("t.me/moonboy_88", f"t.me/{HANDLE}"),
        ("join us: https://t.me/moonboy_88 today", f"join us: https://t.me/{HANDLE} today"),
        ("电报 telegram.me/trader_x", f"电报 {HANDLE}"),  # the link after a label: all of it
        ("HTTPS://T.ME/MoonBoy", f"HTTPS://T.ME/{HANDLE}"),
        # the handle before its label
        ("zhangsan88 是我微信", f"{HANDLE} 是我微信"),
        ("abc_123是我的微信号，加一下", f"{HANDLE}是我的微信号，加一下"),
        ("moon_boy99是我电报", f"{HANDLE}是我电报"),
        ("lily2024 是我的WhatsApp", f"{HANDLE} 是我的WhatsApp"),
        ("trader_x是我的VX, 备注姓名", f"{HANDLE}是我的VX, 备注姓名"),
        # Skype ids whole
        ("skype live:abc.def", f"skype {HANDLE}"),
        ("Skype: live:.cid.6d2f0c1a", f"Skype: {HANDLE}"),
        # spelled-out e-mails
        ("john.doe at gmail dot com", EMAIL),
        ("邮箱 john [at] gmail [dot] com 谢谢", f"邮箱 {EMAIL} 谢谢"),
        ("mail john(at)gmail(dot)com", f"mail {EMAIL}"),
        ("write to JOHN AT QQ DOT COM please", f"write to {EMAIL} please"),
        ("lily_w at outlook dot co dot uk", EMAIL),
        # phone numbers in Chinese numerals
        ("一三八零零一三八零零零", PHONE),
        ("我电话幺三八 零零一三 八零零零，晚上打", f"我电话{PHONE}，晚上打"),
        ("打这个: 一三九-一二三四-五六七八", f"打这个: {PHONE}"),
        ("座机 零二一 六二三四五六七八", f"座机 {PHONE}"),
        # birth dates after a birthday label
        ("生日 1985-03-12", f"生日 {BIRTHDATE}"),
        ("出生日期：1985年3月12日", f"出生日期：{BIRTHDATE}"),
        ("我的生日是1990/7/1，身份证还在办", f"我的生日是{BIRTHDATE}，身份证还在办"),
        ("DOB 12/03/1985", f"DOB {BIRTHDATE}"),
        ("birthday: March 12, 1985", f"birthday: {BIRTHDATE}"),
        ("Date of birth: 12 March 1985, passport attached", f"Date of birth: {BIRTHDATE}, passport attached"),
        # full-width text (the IME's full-width mode): the index holds it in plain characters
        ("Ｗｅｃｈａｔ：ｚｈａｎｇｓａｎ", f"Wechat：{HANDLE}"),
        ("ＷＸ：zhangsan", f"WX：{HANDLE}"),
        ("微信：ｚｈａｎｇｓａｎ８８", f"微信：{HANDLE}"),
        ("１３８－００１３－８０００", PHONE),
        ("ｚｈａｎｇｓａｎ＠１６３．ｃｏｍ", EMAIL),
        ("zhangsan@163。com", EMAIL),
        ("zhangsan@163．com", EMAIL),
        # phone separators other than a space and "-"
        ("138–0013–8000", PHONE),  # en dash
        ("138\u20110013\u20118000", PHONE),  # non-breaking hyphen
        ("138 - 0013 - 8000", PHONE),
        ("138/0013/8000", PHONE),
        ("电话 138·0013·8000", f"电话 {PHONE}"),
        ("138_0013_8000", PHONE),
        ("手机号:138.0013.8000", f"手机号:{PHONE}"),
        # e-mail addresses in other scripts
        ("张三@qq.com", EMAIL),
        ("mail: müller@bücher.de", f"mail: {EMAIL}"),
        ("email josé.garcía@correo.es", f"email {EMAIL}"),
        ("邮箱zhang.wei@example.com，谢谢", f"邮箱{EMAIL}，谢谢"),
        ("abc@qq.com是我的邮箱", f"{EMAIL}是我的邮箱"),
        # birth dates before a Chinese label, with a two-digit year, after "born"
        ("我是1985年3月12日出生的", f"我是{BIRTHDATE}出生的"),
        ("1985-03-12出生", f"{BIRTHDATE}出生"),
        ("3月12日是我的生日", f"{BIRTHDATE}是我的生日"),
        ("生日是85年3月12号", f"生日是{BIRTHDATE}"),
        ("I was born on March 12, 1985", f"I was born on {BIRTHDATE}"),
        ("birth date: 12-Mar-1985", f"birth date: {BIRTHDATE}"),
        # seven or eight digits after a phone word
        ("电话 91234567", f"电话 {PHONE}"),
        ("香港电话 9123 4567", f"香港电话 {PHONE}"),
        ("tel: 6234-5678", f"tel: {PHONE}"),
    ],
)
def test_audit_misses_are_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Chinese: month and day, no year
        ("我生日是3月12日", f"我生日是{BIRTHDATE}"),
        ("生日 3.12", f"生日 {BIRTHDATE}"),
        ("生日：12月3号", f"生日：{BIRTHDATE}"),
        ("生日在3月12号, 到时候提醒我", f"生日在{BIRTHDATE}, 到时候提醒我"),
        ("我的生日3月12", f"我的生日{BIRTHDATE}"),
        ("出生日期: 03-12", f"出生日期: {BIRTHDATE}"),
        ("生日 3/12, 身份证明天发", f"生日 {BIRTHDATE}, 身份证明天发"),
        # English: month names (one or two digits), numeric day/month
        ("birthday is March 12", f"birthday is {BIRTHDATE}"),
        ("my birthday: 12 March", f"my birthday: {BIRTHDATE}"),
        ("my birthday: 12 March, thanks", f"my birthday: {BIRTHDATE}, thanks"),
        ("DOB 12/03", f"DOB {BIRTHDATE}"),
        ("D.O.B.: 03.12", f"D.O.B.: {BIRTHDATE}"),
        ("birthday on the 5th of May", f"birthday on the {BIRTHDATE}"),
        ("My birthday is on the 5th of May, see you", f"My birthday is on the {BIRTHDATE}, see you"),
        ("my birthday's Sept 3rd", f"my birthday's {BIRTHDATE}"),
        ("Birthday: Mar. 12", f"Birthday: {BIRTHDATE}"),
        ("BIRTH DATE 7 JULY", f"BIRTH DATE {BIRTHDATE}"),
    ],
)
def test_birth_dates_without_a_year_are_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # dates without a birthday label
        "3月12日的行情",
        "March 12 earnings call",
        "2026-03-12 的行情",
        "see you on 3/12, DOB form attached later",
        "财报 3.12 发布",
        "NVDA reports on the 5th of May",
        # a birthday label that the date does not follow
        "生日快乐, 3月12日见",
        "生日那天 3.12 再聊",
        "Happy birthday! 3/12 deposit confirmed",
        # label letters inside a word, month letters starting a word
        "rebirth 2.0 of the fund",
        "adobe 3.12 update",
        "birthday maybe 5 people come",
        "birthday market 5 stars",
    ],
)
def test_unlabelled_dates_stay(text):
    assert redact(text) == text


def test_a_run_of_spaces_after_a_label_is_quick():
    text = "生日" + " " * 5000 + "x1"
    assert redact(text) == text  # nested separator loops took seconds here


@pytest.mark.parametrize(
    "text",
    [
        # "v" in ordinary words and expressions
        "V型反转, 明天看",
        "我的V型反转策略还有效",
        "I love you",
        "Vanguard funds are cheap, TV: later",
        "加vip群需要审核",
        # label words in ordinary text
        "line chart of NVDA",
        "微信群里已经发了",
        "这是我第一次投资美股",
        "是我的错, 下次注意",
        # handle-looking words that are not before a label
        "abc_123 是新的代码吗",
        # dates and numbers without a birthday label
        "生日快乐!",
        "2026-03-12 的行情",
        "财报日期 2026-03-12, 生日那天再聊",
        "we meet at the dot of noon",
        "at the dot of noon",
        "sign up at robinhood.com, dot your i's",
        "anecdote: look at example.com",
        # numerals in prose
        "一步步来, 分三批建仓",
        "星期一二三都可以, 一二三四五六",
        "三三两两",
        # digits near the new rules' words and separators that are no contact detail
        "订单号码 12345678",
        "电话费 12345678元",
        "电话会议 20251103 安排",
        "hotel 12345678 room, Tel Aviv office",
        "订单 2025/11/03/1234 已确认",
        "价格 123.4567 美元，涨了 12.5%",
        "stock code 600519.SH",
        # dates near a Chinese birthday word that is not their label
        "2025年3月12日生效",
        "2026-03-12, 生日那天再聊",
        "I'm stubborn 3/12, newborn 3.12 fund",
        # Chinese punctuation stays as written
        "好的～明天见……（周三）：可以！",
    ],
)
def test_ordinary_text_stays(text):
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # international numbers ending in pairs of digits: none of them left behind
        ("+7 912 345-67-89", PHONE),
        ("call +84 91 234 56 78 today", f"call {PHONE} today"),
        ("+33 6 12 34 56 78", PHONE),
        # a country or area code in brackets, without "+"
        ("(852) 9123 4567", PHONE),
        ("香港（852）9123-4567", f"香港{PHONE}"),
        ("call(415)555-0123", f"call{PHONE}"),  # no space after the bracket
        ("（４１５）５５５－０１２３", PHONE),  # full-width brackets stay as written
        # "my number", "call me at": phone words too
        ("my number is 9123 4567", f"my number is {PHONE}"),
        ("call me at 6234 5678 tonight", f"call me at {PHONE} tonight"),
        # Chinese financial numerals
        ("电话 壹叁捌零零壹叁捌零零零", f"电话 {PHONE}"),
        # a handle in brackets or after an arrow
        ("加我微信(zhangsan88)", f"加我微信({HANDLE})"),
        ("微信（lily_invest）谢谢", f"微信（{HANDLE}）谢谢"),
        ("wechat -> moon_boy99", f"wechat -> {HANDLE}"),
        # an address at a mail service with its "@" written otherwise
        ("email me: john.doe at gmail.com", f"email me: {EMAIL}"),
        ("邮箱 zhangsan艾特163.com 谢谢", f"邮箱 {EMAIL} 谢谢"),
        ("lily_88#qq.com", EMAIL),
        ("zhangsan（at）126.com", EMAIL),
        ("john @ gmail . com", EMAIL),
        # "bday"
        ("bday: 12/03/1985", f"bday: {BIRTHDATE}"),
        ("my b-day is 3/12", f"my b-day is {BIRTHDATE}"),
        # birth dates as forms ask for them, year first with a month name, and the space after one
        ("出生日期：19850312", f"出生日期：{BIRTHDATE}"),
        ("DOB: 19850312", f"DOB: {BIRTHDATE}"),
        ("19850312出生", f"{BIRTHDATE}出生"),
        ("birthday 1985 March 12", f"birthday {BIRTHDATE}"),
        ("DOB 1985/03/12 age 40", f"DOB {BIRTHDATE} age 40"),
    ],
)
def test_second_audit_misses_are_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # dates with a time, date ranges, a count before a date: no phone number
        "开会时间 2025-11-03 15:30，请准时",
        "会议 2025-11-03 10:00:00 开始",
        "on 2025-11-03 9:30am the market opens",
        "20251103 15:30 收盘价",
        "第 3 2025-11-03 期",
        "持有期 2025-11-03 2025-12-31",
        # decimals and times next to long numbers
        "成交额 123456789.50 元",
        "pi is 3.1415926535",
        # price changes after "+"
        "涨幅 +2.5 100 手",
        "score +1 2025",
        # "call" without "me" is no phone word
        "earnings call 2025 1103 confirmed",
        # "at" before a web site that is no mail service
        "sign up at example.com, meet at home",
        # A-share codes listed with spaces
        "关注 600519 000858 601318 三只",
        "自选 688981 300750",
        "港股 00700 09988 03690",
    ],
)
def test_dates_times_decimals_and_stock_codes_stay(text):
    assert redact(text) == text
