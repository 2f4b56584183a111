"""Birth dates: a date next to a birthday label, after it or before a Chinese one; a date without a
label stays (market dates are what search is for).
"""

from __future__ import annotations

import re

# Birth dates after a label ("生日 1985-03-12", "出生日期：1985年3月12日", "DOB 12/03/1985",
# "birthday: March 12, 1985", "born on March 12, 1985", "生日是85年3月12号") or before a Chinese one
# (``_BIRTHDATE_BEFORE_LABEL``); a date without one stays ("2026-03-12 的行情", "March 12 earnings
# call" are what search is for). In chats a birth date often has no year ("我生日是3月12日", "生日
# 3.12", "DOB 12/03", "birthday is March 12", "birthday on the 5th of May"), and it is personal data
# all the same; what every form has is a day in digits. So texts without a digit (three in ten of
# the benchmark's templates mixed with chat phrases) skip the label test, the others test for
# "birth"/"born"/"dob"/"生日"/"出生" on the lowercased text before these rules run (a few substring tests:
# measured within the noise of the whole ``redact``). The pattern itself decides: the date must
# follow the label and its separators directly ("生日快乐, 3月12日见" stays), a Latin label must
# start a word ("rebirth 2.0" stays), and a month name must be a whole word ("birthday maybe 5
# people" stays). Dates in Chinese numerals ("一九九零年一月一日", "八月十五") count only after a label
# (texts without a digit reach the label test if they are not ASCII), a lunar or solar calendar
# named between ("生日在农历八月十五"). "生" alone labels a date after it ("生于1990年1月1日") or
# before it as a word of its own ("90年1月1日生的", "…日生人", not "…日生效"). The separators after a
# label are one loop, with no ``\s*`` around it: nested ones took cubic time to fail on a run of
# spaces ("生日" and 400 spaces: 2.5 s).
_MIN_DIGITS_BIRTHDATE = 1
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])\.?"
)
# In Chinese numerals: "一九九零年一月一日", "九〇年一月一号", "八月十五", "腊月初八".
_CHINESE_NUMERAL_DATE = (
    r"(?:[零〇一二三四五六七八九]{2,4}\s*年\s*)?[正一二三四五六七八九十冬腊]{1,2}\s*月"
    r"(?:\s*[初一二三四五六七八九十廿卅]{1,3}(?:\s*[日号])?)?"
)
# A date that may be a birth date: what follows a birthday label, or precedes a Chinese one.
_DATE = (
    r"(?:(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"  # "19850312", as forms ask for it
    r"|(?:\d{4}\s*[-/.年]|\d{2}\s*年)\s*\d{1,2}(?:\s*[-/.月]\s*\d{1,2}(?:\s*[日号])?|\s*月)?"  # "85年3月12号"
    r"|\d{1,2}\s*[-/.]\s*\d{1,2}\s*[-/.]\s*\d{2,4}"
    r"|\d{1,2}[-/.]\d{1,2}"  # no year: "3.12", "12/03"
    r"|\d{1,2}\s*月\s*\d{1,2}(?:\s*[日号])?"
    rf"|{_MONTH}\s*\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|\d{{1,2}}[-/.\s]{_MONTH}[-/.\s]\d{{2,4}}"  # "12-Mar-1985"
    rf"|\d{{4}}[-/.\s]{_MONTH}[-/.\s]?\d{{1,2}}(?:st|nd|rd|th)?"  # "1985 March 12"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?"
    rf"|{_CHINESE_NUMERAL_DATE})(?![0-9])"
)
_BIRTHDATE = re.compile(
    r"(?i)(?P<label>(?:生日|出生(?:日期|年月日|年月|于|在)?|生于"
    r"|(?<![a-z])(?:date\s+of\s+birth|birth\s*date|birthday|birth|born|d\.?o\.?b\.?|b[-']?day))"
    r"(?:是|为|在|农历|阴历|公历|阳历|:|：|=|-|is|was|on|the|'s|’s|\s)*)"
    rf"(?P<date>{_DATE})"
)
# Chinese says it the other way round as often: "我是1985年3月12日出生的", "1985-03-12出生", "3月12日
# 是我的生日" (the label directly after the date: "2026-03-12, 生日那天再聊" stays).
_BIRTHDATE_BEFORE_LABEL = re.compile(
    rf"(?i)(?<![0-9]){_DATE}(?=\s*(?:是我的?|是)?\s*(?:出生|生日|生(?:[的人，,。.!！;；\s]|\Z)))"
)


def _has_birthday_label(lowered: str) -> bool:
    # Every Latin label has a "b": a one-character needle is looked for as it is, so a Chinese text
    # without one skips the three longer ones, each first copied to wide characters (a third less
    # time for this test, now that texts with one digit make it).
    return (
        (
            "b" in lowered
            and (
                "birth" in lowered
                or "dob" in lowered
                or "d.o.b" in lowered
                or "born" in lowered
                or "day" in lowered  # "bday", "b-day"; the pattern says whether it is one
            )
        )
        or "生" in lowered  # "生日", "出生", "生于", "…日生的"
    )
