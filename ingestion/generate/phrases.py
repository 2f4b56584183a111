"""Chat phrases for advisor/customer conversations, in Chinese and English, by funnel phase.

Each template carries what the CRM's analysis would have said about it (sentiment, whether the
advisor asks the customer back - "反问", intention signals, a base quality) so those columns stay
consistent with the text. Slots ({stock}, {coin}, {amount}, {pct}, {day}) are filled when the
message pool is built.
"""

from __future__ import annotations

from dataclasses import dataclass

PHASE_TOFU, PHASE_MOFU, PHASE_BOFU = 0, 1, 2
PHASES = (PHASE_TOFU, PHASE_MOFU, PHASE_BOFU)
OUTBOUND, INBOUND = 0, 1


@dataclass(frozen=True)
class Phrase:
    text: str
    sentiment: str = "neutral"
    asks_back: bool = False
    signals: tuple[str, ...] = ()
    quality: int = 5


def _p(text, sentiment="neutral", asks_back=False, signals=(), quality=5) -> Phrase:
    return Phrase(text, sentiment, asks_back, tuple(signals), quality)


ZH = {
    (OUTBOUND, PHASE_TOFU): (
        _p(
            "您好, 我是您的投资顾问小助手, 看到您关注了我们的美股内容, 平时有在投资吗?",
            asks_back=True,
            quality=6,
        ),
        _p("欢迎进群! 群里每天早上8点会发盘前速递, 有问题随时问我", "positive", quality=5),
        _p("您之前主要投资哪些品种呢? 股票、基金还是加密货币?", asks_back=True, quality=7),
        _p("今天{stock}盘前涨了{pct}%, 群里已经发了分析, 您看了吗?", asks_back=True, quality=6),
        _p("很多新朋友一开始都担心风险, 我们会先从认识市场开始, 不着急", "positive", quality=7),
        _p("您投资的主要目标是什么? 是长期增值还是短期收益?", asks_back=True, quality=8),
        _p("分享一篇关于{coin}周期的文章给您, 写得很通俗", quality=5),
        _p("最近{day}晚上有一场免费直播, 讲美股入门, 需要给您留个位置吗?", asks_back=True, quality=6),
    ),
    (INBOUND, PHASE_TOFU): (
        _p("你好, 我是在抖音上看到你们的视频", quality=4),
        _p("我之前买过一点基金, 美股还没碰过", signals=("表达投资兴趣",), quality=5),
        _p("这个群是收费的吗?", quality=4),
        _p("{stock}现在还能买吗? 感觉已经涨很多了", signals=("询问个股",), quality=6),
        _p("我对{coin}比较感兴趣, 但是怕被骗", "negative", signals=("表达投资兴趣",), quality=5),
        _p("好的谢谢, 我先看看", quality=3),
        _p("最近工作比较忙, 晚点再聊", quality=3),
        _p("你们是正规机构吗? 有牌照吗?", "negative", quality=5),
        _p("谢谢分享, 内容很实用!", "positive", quality=5),
    ),
    (OUTBOUND, PHASE_MOFU): (
        _p(
            "按照您{amount}美元左右的预算, 可以先做一个稳健的ETF组合, 您觉得怎么样?",
            asks_back=True,
            quality=8,
        ),
        _p("开户流程大概10分钟, 需要身份证件和地址证明, 我可以一步步带您操作", "positive", quality=7),
        _p("今天跟票的{stock}已经盈利{pct}%, 您有跟上吗?", asks_back=True, quality=7),
        _p("您担心的是资金安全还是操作不熟悉? 说说具体顾虑我帮您分析", asks_back=True, quality=9),
        _p("我们的框架是先定仓位再选标的, 单只股票不超过总资金的20%", quality=8),
        _p("{stock}本周发财报, 我整理了三个关注点发您", quality=7),
        _p("您的开户申请已经提交, 一般1-2个工作日审核通过", "positive", quality=6),
    ),
    (INBOUND, PHASE_MOFU): (
        _p("开户需要什么材料? 护照可以吗?", signals=("询问开户流程",), quality=7),
        _p("跟了{stock}, 确实涨了, 挺厉害的", "positive", signals=("认可跟票",), quality=7),
        _p("手续费怎么算的?", signals=("询问费用",), quality=6),
        _p(
            "我想先用小资金试试, 比如{amount}美元可以吗?", signals=("询问入金方式", "表达投资兴趣"), quality=8
        ),
        _p("上次推荐的那只亏了{pct}%, 有点不靠谱", "negative", quality=5),
        _p("开户好了, 下一步怎么做?", "positive", signals=("询问入金方式",), quality=8),
        _p("我再考虑一下, 和家人商量商量", quality=4),
    ),
    (OUTBOUND, PHASE_BOFU): (
        _p("入金已经到账{amount}美元, 我帮您按计划分三批建仓", "positive", quality=8),
        _p("最近市场波动大, 您的仓位整体还在计划内, 不用太担心", "positive", quality=8),
        _p("本月组合收益{pct}%, 跑赢了标普500, 给您发一份月报", "positive", quality=7),
        _p("您这次想出金是有资金需求还是对市场有担心? 我们可以聊聊", asks_back=True, quality=9),
        _p("{coin}回调了, 按我们的纪律这个位置可以考虑定投加仓, 您怎么看?", asks_back=True, quality=8),
        _p("下周有VIP客户线上沙龙, 主题是美股科技股展望, 给您预留名额了", "positive", quality=6),
    ),
    (INBOUND, PHASE_BOFU): (
        _p("已经入金了, 麻烦确认一下", signals=("确认入金",), quality=7),
        _p("这个月赚了不少, 想再追加{amount}美元", "positive", signals=("追加入金意向",), quality=9),
        _p("最近亏损有点大, 我想先出金一部分", "negative", signals=("出金意向",), quality=6),
        _p("{stock}还要继续拿吗?", signals=("询问个股",), quality=6),
        _p("我朋友也想开户, 可以介绍给你吗?", "positive", signals=("推荐意向",), quality=9),
        _p("出金什么时候到账? 已经三天了", "negative", quality=5),
        _p("谢谢你一直这么耐心, 收益还不错", "positive", quality=7),
    ),
}

EN = {
    (OUTBOUND, PHASE_TOFU): (
        _p(
            "Hi! I'm your investment advisor. I saw you follow our US stocks content - do you invest at the moment?",
            asks_back=True,
            quality=6,
        ),
        _p(
            "Welcome to the group! We post a pre-market brief every morning at 8, feel free to ask anything",
            "positive",
            quality=5,
        ),
        _p("What do you mostly invest in today: stocks, funds or crypto?", asks_back=True, quality=7),
        _p(
            "{stock_en} is up {pct}% pre-market, our analysis is in the group. Did you get a chance to read it?",
            asks_back=True,
            quality=6,
        ),
        _p("What is your main goal: long-term growth or short-term income?", asks_back=True, quality=8),
        _p("Sharing an easy read about the {coin_en} cycle with you", quality=5),
    ),
    (INBOUND, PHASE_TOFU): (
        _p("Hi, I found you through a TikTok video", quality=4),
        _p(
            "I have some ETFs but never traded US stocks directly", signals=("expressed interest",), quality=5
        ),
        _p("Is this group free?", quality=4),
        _p(
            "Is it too late to buy {stock_en}? It already went up a lot",
            signals=("asked about a stock",),
            quality=6,
        ),
        _p(
            "I'm curious about {coin_en} but I'm afraid of scams",
            "negative",
            signals=("expressed interest",),
            quality=5,
        ),
        _p("Thanks, I'll have a look first", quality=3),
        _p("Busy at work today, talk later", quality=3),
    ),
    (OUTBOUND, PHASE_MOFU): (
        _p(
            "With a budget of about {amount} USD we could start with a balanced ETF portfolio. How does that sound?",
            asks_back=True,
            quality=8,
        ),
        _p(
            "Opening the account takes about 10 minutes, you need an ID and a proof of address. I can walk you "
            "through it",
            "positive",
            quality=7,
        ),
        _p(
            "Is your concern the safety of funds or the app itself? Tell me and I'll help you think it through",
            asks_back=True,
            quality=9,
        ),
        _p(
            "Our framework: position size first, then the ticker. No single stock above 20% of the portfolio",
            quality=8,
        ),
        _p("{stock_en} reports earnings this week, I summarised three things to watch for you", quality=7),
    ),
    (INBOUND, PHASE_MOFU): (
        _p(
            "What documents do I need to open the account? Is a passport OK?",
            signals=("asked about account opening",),
            quality=7,
        ),
        _p(
            "I followed the {stock_en} call and it worked, nice!",
            "positive",
            signals=("trusts recommendations",),
            quality=7,
        ),
        _p("How are the fees calculated?", signals=("asked about fees",), quality=6),
        _p(
            "Can I start small, say {amount} USD?",
            signals=("asked how to deposit", "expressed interest"),
            quality=8,
        ),
        _p("Account is open, what's next?", "positive", signals=("asked how to deposit",), quality=8),
        _p("Let me think about it and talk to my family", quality=4),
    ),
    (OUTBOUND, PHASE_BOFU): (
        _p(
            "Your deposit of {amount} USD has arrived, I'll build the position in three tranches as planned",
            "positive",
            quality=8,
        ),
        _p("Markets are volatile but your portfolio is within plan, no need to worry", "positive", quality=8),
        _p(
            "Your portfolio returned {pct}% this month, ahead of the S&P 500. Monthly report attached",
            "positive",
            quality=7,
        ),
        _p(
            "Is this withdrawal for a cash need or are you worried about the market? Happy to talk it through",
            asks_back=True,
            quality=9,
        ),
    ),
    (INBOUND, PHASE_BOFU): (
        _p("I've made the deposit, can you confirm?", signals=("confirmed deposit",), quality=7),
        _p(
            "Good month! I'd like to add another {amount} USD",
            "positive",
            signals=("wants to top up",),
            quality=9,
        ),
        _p(
            "The loss is getting big, I want to withdraw part of it",
            "negative",
            signals=("wants to withdraw",),
            quality=6,
        ),
        _p(
            "My friend wants to open an account too, can I refer him?",
            "positive",
            signals=("referral intent",),
            quality=9,
        ),
        _p("When will my withdrawal arrive? It's been three days", "negative", quality=5),
    ),
}

# Messages carrying contact details: realistic in CRM chats, and what search redaction must mask.
CONTACT_ZH = (
    (INBOUND, "我的手机是 {phone}, 微信: {wechat}, 方便的话加一下"),
    (INBOUND, "邮箱 {email}, 资料可以发这里"),
    (OUTBOUND, "这是我的工作微信: {wechat}, 有问题随时找我"),
    (OUTBOUND, "紧急情况可以打我电话 {phone}"),
)
CONTACT_EN = (
    (INBOUND, "You can reach me at {phone} or {email}"),
    (INBOUND, "My telegram is @{handle}, WhatsApp {phone}"),
    (OUTBOUND, "Here's my work email {email}, send the documents there"),
    (OUTBOUND, "Add my work WeChat: {wechat}"),
)
