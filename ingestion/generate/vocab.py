"""Words the synthetic CRM is made of: names, places, channels, products and chat phrases.

Kept apart from the simulation so the realism can be improved without touching the funnel logic.
Everything is a tuple (ordered, immutable): iteration order is part of determinism.
"""

from __future__ import annotations

from dataclasses import dataclass

# (汉字, pinyin) so employees get plausible e-mail addresses and usernames.
CN_SURNAMES = (
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
    ("罗", "luo"),
    ("高", "gao"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
    ("唐", "tang"),
    ("许", "xu"),
    ("韩", "han"),
    ("冯", "feng"),
    ("邓", "deng"),
    ("曹", "cao"),
    ("彭", "peng"),
    ("曾", "zeng"),
    ("萧", "xiao"),
    ("田", "tian"),
    ("董", "dong"),
    ("潘", "pan"),
    ("蔡", "cai"),
    ("叶", "ye"),
    ("苏", "su"),
    ("魏", "wei"),
    ("程", "cheng"),
    ("沈", "shen"),
)
CN_GIVEN = (
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("磊", "lei"),
    ("强", "qiang"),
    ("洋", "yang"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("浩然", "haoran"),
    ("子涵", "zihan"),
    ("欣怡", "xinyi"),
    ("梓萱", "zixuan"),
    ("宇轩", "yuxuan"),
    ("思远", "siyuan"),
    ("嘉怡", "jiayi"),
    ("俊杰", "junjie"),
    ("雨桐", "yutong"),
    ("晨曦", "chenxi"),
    ("一鸣", "yiming"),
    ("佳琪", "jiaqi"),
    ("志强", "zhiqiang"),
    ("海燕", "haiyan"),
    ("文博", "wenbo"),
    ("晓东", "xiaodong"),
    ("雪梅", "xuemei"),
    ("建华", "jianhua"),
    ("丽华", "lihua"),
    ("国强", "guoqiang"),
    ("婷婷", "tingting"),
    ("博文", "bowen"),
)
EN_FIRST = (
    "James",
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Ethan",
    "Sophia",
    "Lucas",
    "Mia",
    "Mason",
    "Chloe",
    "Daniel",
    "Grace",
    "Kevin",
    "Emily",
    "Ryan",
    "Hannah",
    "Jason",
    "Natalie",
    "Brian",
    "Rachel",
    "Eric",
    "Vivian",
    "Andrew",
    "Cindy",
    "Jonathan",
    "Michelle",
    "Victor",
    "Serena",
)
EN_LAST = (
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Miller",
    "Wilson",
    "Moore",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Carter",
    "Wong",
    "Tan",
    "Lim",
    "Ng",
    "Lee",
    "Chan",
    "Chua",
    "Goh",
    "Ong",
    "Teo",
)

LANG_ZH, LANG_EN, LANG_BOTH = 0, 1, 2
LANGUAGE_LABELS = {LANG_ZH: ["中文"], LANG_EN: ["英语"], LANG_BOTH: ["中文", "英语"]}
PLATFORMS = ("wechat", "whatsapp", "telegram")


@dataclass(frozen=True)
class City:
    name: str
    timezone: str
    utc_offset: int  # hours (standard time): conversations happen in the customer's daytime


@dataclass(frozen=True)
class Place:
    country: str
    cities: tuple[City, ...]
    weight: float
    language_weights: tuple[float, float, float]  # zh, en, both
    platform_weights: tuple[float, float, float]  # wechat, whatsapp, telegram
    phone_formats: tuple[str, ...]  # '#' = a random digit; fictional ranges where the country has them


def _cities(timezone: str, offset: int, *names: str) -> tuple[City, ...]:
    return tuple(City(name, timezone, offset) for name in names)


PLACES = (
    Place(
        "中国",
        _cities("Asia/Shanghai", 8, "上海", "北京", "深圳", "杭州", "广州", "成都"),
        0.30,
        (0.92, 0.0, 0.08),
        (0.9, 0.02, 0.08),
        ("+86 138 #### ####", "+86 139 #### ####", "+86 186 #### ####"),
    ),
    Place(
        "中国香港",
        _cities("Asia/Hong_Kong", 8, "香港"),
        0.10,
        (0.45, 0.05, 0.5),
        (0.35, 0.45, 0.2),
        ("+852 9### ####", "+852 6### ####"),
    ),
    Place(
        "中国台湾",
        _cities("Asia/Taipei", 8, "台北", "台中"),
        0.07,
        (0.8, 0.0, 0.2),
        (0.05, 0.35, 0.6),
        ("+886 9## ### ###",),
    ),
    Place(
        "新加坡",
        _cities("Asia/Singapore", 8, "新加坡"),
        0.10,
        (0.2, 0.2, 0.6),
        (0.1, 0.7, 0.2),
        ("+65 9### ####", "+65 8### ####"),
    ),
    Place(
        "马来西亚",
        _cities("Asia/Kuala_Lumpur", 8, "吉隆坡", "槟城"),
        0.07,
        (0.35, 0.15, 0.5),
        (0.1, 0.8, 0.1),
        ("+60 12-### ####", "+60 16-### ####"),
    ),
    Place(
        "美国",
        _cities("America/New_York", -5, "纽约", "波士顿")
        + _cities("America/Los_Angeles", -8, "旧金山", "洛杉矶", "西雅图"),
        0.18,
        (0.15, 0.55, 0.3),
        (0.15, 0.55, 0.3),
        ("+1 415 555 01##", "+1 212 555 01##", "+1 206 555 01##"),
    ),
    Place(
        "加拿大",
        _cities("America/Vancouver", -8, "温哥华") + _cities("America/Toronto", -5, "多伦多"),
        0.07,
        (0.3, 0.3, 0.4),
        (0.3, 0.5, 0.2),
        ("+1 604 555 01##", "+1 416 555 01##"),
    ),
    Place(
        "英国",
        _cities("Europe/London", 0, "伦敦", "曼彻斯特"),
        0.05,
        (0.05, 0.8, 0.15),
        (0.0, 0.85, 0.15),
        ("+44 7700 900###",),
    ),
    Place(
        "澳大利亚",
        _cities("Australia/Sydney", 10, "悉尼", "墨尔本"),
        0.06,
        (0.2, 0.5, 0.3),
        (0.1, 0.7, 0.2),
        ("+61 491 570 ###",),
    ),
)

SOURCE_CHANNELS = (
    "TikTok",
    "Facebook",
    "Instagram",
    "YouTube",
    "小红书",
    "抖音",
    "推荐",
    "Google",
    "Twitter",
)
SOURCE_CHANNEL_WEIGHTS = (0.2, 0.14, 0.1, 0.1, 0.1, 0.1, 0.12, 0.08, 0.06)
SOURCE_DETAILS = {
    "TikTok": ("美股入门短视频第{n}期", "加密货币避坑指南第{n}期", "每日盘前速递直播"),
    "Facebook": ("投资交流群广告第{n}组", "美股财报季专题帖", "主页私信咨询"),
    "Instagram": ("理财日常图文第{n}篇", "Story问答互动", "达人合作推广"),
    "YouTube": ("美股实盘复盘第{n}集", "比特币周线分析第{n}集", "新手开户教程视频"),
    "小红书": ("美股开户攻略笔记第{n}篇", "理财自律打卡笔记", "海外投资经验分享"),
    "抖音": ("财经直播间第{n}场", "ETF定投科普短视频", "加密货币行情解读"),
    "推荐": ("老客户推荐",),
    "Google": ("搜索广告: 美股开户", "搜索广告: crypto investing", "官网咨询表单"),
    "Twitter": ("市场快讯推文", "投资观点长推第{n}条", "私信咨询"),
}

GENDERS = ("男", "女", "未知")
OCCUPATIONS = (
    ("软件工程师", "互联网"),
    ("产品经理", "互联网"),
    ("会计师", "金融"),
    ("银行职员", "金融"),
    ("医生", "医疗"),
    ("护士", "医疗"),
    ("教师", "教育"),
    ("大学讲师", "教育"),
    ("销售经理", "零售"),
    ("个体店主", "零售"),
    ("外贸业务员", "贸易"),
    ("律师", "法律"),
    ("设计师", "文化创意"),
    ("自由职业者", "文化创意"),
    ("工厂主", "制造业"),
    ("工程师", "制造业"),
    ("房产中介", "房地产"),
    ("退休人员", "其他"),
    ("全职妈妈", "其他"),
    ("公务员", "公共服务"),
    ("餐厅老板", "餐饮"),
    ("物流主管", "物流"),
)
INCOME_RANGES = ("<5万", "5-15万", "15-30万", "30-60万", "60-100万", ">100万")
CAPITAL_RANGES = ("<1万美元", "1-5万美元", "5-20万美元", "20-50万美元", ">50万美元")
EXPERIENCE = ("新手", "中级", "高级")
RISK_PREFERENCES = ("保守", "稳健", "激进")
PERSONAS = ("愿意成长", "愿意负责", "拥抱未来")
TRADING_PLATFORMS_ZH = ("富途牛牛", "老虎证券", "长桥证券", "盈透证券", "币安", "OKX")
TRADING_PLATFORMS_EN = ("Interactive Brokers", "Charles Schwab", "Robinhood", "Binance", "Coinbase", "Moomoo")
INTERESTS = ("美股", "港股", "加密货币", "ETF", "期权", "外汇", "黄金", "基金定投")
PERSONALITY_TRAITS = ("理性", "谨慎", "果断", "好奇", "焦虑", "乐观", "务实", "自律", "爱社交", "独立思考")
COMMUNICATION_STYLES_ZH = (
    "喜欢简短直接的文字沟通",
    "偏好语音, 晚上回复较多",
    "会追问细节, 需要数据支撑",
    "回复慢但认真",
    "爱发表情包, 氛围轻松",
)
COMMUNICATION_STYLES_EN = (
    "Prefers concise English messages",
    "Likes charts and numbers before deciding",
    "Replies late in the evening",
    "Asks many follow-up questions",
)
DECISION_STYLES = ("数据驱动", "跟随朋友", "权威导向", "直觉型", "反复比较后决定")
RISK_FLAGS = ("出金风险", "情绪不稳", "长期未回复", "投诉风险")
BLACKLIST_REASONS = ("多次恶意投诉", "疑似同行套取资料", "辱骂员工", "提供虚假身份信息")

STOCKS = ("特斯拉", "英伟达", "苹果", "微软", "亚马逊", "Meta", "谷歌", "台积电", "AMD", "奈飞")
STOCKS_EN = ("TSLA", "NVDA", "AAPL", "MSFT", "AMZN", "META", "GOOGL", "TSM", "AMD", "NFLX")
COINS = ("比特币", "以太坊", "SOL", "BNB")
COINS_EN = ("Bitcoin", "Ethereum", "Solana", "BNB")

TRIGGER_EVENTS = {
    "Attention": ("加入社群", "关注直播间", "领取入门资料"),
    "Trust": ("首次深度沟通", "参加线上分享会", "认可投资框架"),
    "Engage": ("参与跟票", "主动咨询产品", "预约一对一"),
    "Action": ("完成开户", "开户审核通过"),
    "Subscribe": ("首笔入金",),
    "Growth": ("复入金", "追加投资"),
    "Loyal": ("持续入金满30天", "参与VIP活动"),
    "Advocate": ("推荐新客户", "社群分享收益"),
}
JOURNEY_NOTES = ("客户反馈积极", "需要持续跟进", "对费率比较敏感", "家人也有兴趣", "偏好周末沟通", None, None)
GROUP_TOPICS = ("美股交流", "加密货币研习", "财富自律打卡", "ETF定投", "新手投资")
LEAVE_REASONS = ("信息太多打扰", "暂时没有投资计划", "对内容不感兴趣", "被同行挖走", "未说明原因")
SCREENING_PASS = ("有投资经验且资金充足", "意向明确", "对美股有兴趣")
SCREENING_REJECT = ("无投资意向", "年龄不符合要求", "疑似同行", "长期未回复")
WITHDRAWAL_REASONS = ("盈利提现", "恐慌离场", "资金需求", "其他")
RETENTION_ACTIONS = (
    "电话沟通市场波动, 讲解长期持有逻辑",
    "安排高手一对一复盘持仓",
    "提供降费方案",
    "邀请参加VIP线下沙龙",
    "发送历史回撤与恢复数据",
)
DEPOSIT_NOTES = ("银行电汇", "USDT转入", "信用卡入金", "第三方支付", None)

# Words the CRM's text analysis would pick up: they become a message's keywords / risk keywords.
KEYWORDS = (
    (
        "美股",
        "港股",
        "加密货币",
        "比特币",
        "以太坊",
        "开户",
        "入金",
        "出金",
        "ETF",
        "期权",
        "财报",
        "定投",
        "收益",
        "风险",
        "仓位",
        "US stocks",
        "crypto",
        "Bitcoin",
        "account",
        "deposit",
        "withdraw",
        "ETF",
        "earnings",
        "portfolio",
        "risk",
    )
    + STOCKS
    + STOCKS_EN
)
RISK_KEYWORDS = (
    "亏损",
    "骗",
    "出金",
    "退钱",
    "投诉",
    "爆仓",
    "不靠谱",
    "scam",
    "loss",
    "refund",
    "withdraw",
    "complain",
)
