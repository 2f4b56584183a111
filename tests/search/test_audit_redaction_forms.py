"""Third data-protection audit: contact details in Chinese and Unicode forms the earlier rules let
through (a Chinese "点" for the dot, a local part spelled with "dot", addresses at Unicode domains,
"加微", a generic "联系方式" label, birth dates in Chinese numerals or with "生" as their label), and
phone numbers in odd groups ("138 00138 000", "(138)0013-8000", "138，0013，8000") or partly in
words after a phone label ("电话138零0138000", "call me at four one five ...").
Engine-free: ``redact`` only."""

import pytest

from ingestion.search.redaction import BIRTHDATE, EMAIL, HANDLE, PHONE, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail addresses with the dot said in Chinese, or a local part with a spelled-out dot
        ("zhangsan艾特qq点com", EMAIL),
        ("邮箱 zhangsan 艾特 qq 点 com 谢谢", f"邮箱 {EMAIL} 谢谢"),
        ("邮箱zhangsan@163点com", f"邮箱{EMAIL}"),
        ("john dot doe at gmail dot com", EMAIL),
        ("mail john [dot] doe [at] gmail [dot] com", f"mail {EMAIL}"),
        # addresses at Unicode domains
        ("李四@公司.中国", EMAIL),
        ("邮箱：用户@例子.广告，谢谢", f"邮箱：{EMAIL}，谢谢"),
        ("почта: иван@почта.рф", f"почта: {EMAIL}"),
        # "加微" ("add me on WeChat"), "微：", and the generic "联系方式" (contact details) label
        ("加微 lily2024", f"加微 {HANDLE}"),
        ("有兴趣加微：lily_2024", f"有兴趣加微：{HANDLE}"),
        ("微：lily2024", f"微：{HANDLE}"),
        ("联系方式：zhangsan", f"联系方式：{HANDLE}"),
        ("我的联系方式 zhangsan88", f"我的联系方式 {HANDLE}"),
        # a QQ number as a QQ mailbox, a mailbox without its domain
        ("QQ邮箱 12345678", f"QQ邮箱 {HANDLE}"),
        ("扣扣 12345678", f"扣扣 {HANDLE}"),
        ("Q号 12345678", f"Q号 {HANDLE}"),
        ("邮箱是 zhangsan88 @qq", f"邮箱是 {HANDLE} @qq"),
        ("my gmail is johndoe88", f"my gmail is {HANDLE}"),
        ("gmail: john.doe", f"gmail: {HANDLE}"),
        # birth dates in Chinese numerals after a label
        ("生日 一九九零年一月一日", f"生日 {BIRTHDATE}"),
        ("生日是九〇年一月一号", f"生日是{BIRTHDATE}"),
        ("生日：八月十五", f"生日：{BIRTHDATE}"),
        ("生日: 二月三号，记得", f"生日: {BIRTHDATE}，记得"),
        ("我的生日在农历八月十五", f"我的生日在农历{BIRTHDATE}"),
        ("出生日期：一九八五年三月十二日", f"出生日期：{BIRTHDATE}"),
        # a mobile or landline number with its groups two spaces apart
        ("138  0013  8000", PHONE),
        ("电话 138 0013  8000，晚上打", f"电话 {PHONE}，晚上打"),
        ("座机 010  6234  5678", f"座机 {PHONE}"),
        # "生" as the label, after or before the date
        ("生于1990年1月1日", f"生于{BIRTHDATE}"),
        ("我是90年1月1日生的", f"我是{BIRTHDATE}生的"),
        ("1990年1月1日生，属马", f"{BIRTHDATE}生，属马"),
        ("我是1990年1月1日生人", f"我是{BIRTHDATE}生人"),
        # a mobile number in other groups, with its area code bracketed, or listed with commas
        ("138 00138 000", PHONE),
        ("(138)0013-8000", PHONE),
        ("电话 (138)0013-8000", f"电话 {PHONE}"),
        ("138，0013，8000", PHONE),
        ("手机：138、0013、8000，谢谢", f"手机：{PHONE}，谢谢"),
        # a number after a phone word, partly in Chinese numerals or in English words
        ("电话138零0138000", f"电话{PHONE}"),
        ("电话138一三八零零零零", f"电话{PHONE}"),
        ("call me at four one five five five five one two three four", f"call me at {PHONE}"),
        ("my number is 415 five five five 0123", f"my number is {PHONE}"),
    ],
)
def test_third_audit_misses_are_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # the new rules' words in ordinary text
        "增加微小的仓位",
        "加微软的仓位",
        "微调一下仓位",
        "联系方式 email 给你",
        "联系方式请看官网",
        "gmail is down today",
        "我的邮箱满了",
        "QQ邮箱收到了",
        "2025年3月12日生效",
        "开盘 2025-11-03  15:30  1380 手",
        "持仓 138  1000  股",
        "1990年出生的客户比较多",
        "学生 2025年3月12日 开户",
        "三月十二日的行情",
        "生日快乐, 八月十五见",
        "重点关注 qq 点评",
        "点 com 域名很贵",
        "I'll dot the i's at the office",
        # numbers near the phone forms above
        "价格 138.00 元，涨 13.8%",
        "2025年11月3日 收盘 1380 点",
        "600519 涨停, 000858 跟涨",
        "买了138只股票",
        "成交额 1,380,013 元",
        "股价 138，成交 2000 手",
        "电话一直打不通，一两天再说",
        "call me at one or two",
        "phone battery at five percent",
    ],
)
def test_ordinary_text_near_the_new_rules_stays(text):
    assert redact(text) == text
