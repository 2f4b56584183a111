"""Reference content the sales team works with: tags, scripts (话术), materials, training.

These tables are small and mostly fixed; a few columns (script usage, training progress) derive
from the simulated team so they agree with the rest of the data. The script texts themselves live
in script_catalogue.py and the system_settings rows in crm_settings.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ingestion.contracts import MATERIAL_TYPES
from ingestion.generate.config import DAY, GenerateConfig, money, percent, to_datetime
from ingestion.generate.people import Employee
from ingestion.generate.script_catalogue import SCRIPT_CATALOGUE
from ingestion.generate.vocab import SOURCE_CHANNELS

# ---------------------------------------------------------------------------------------- tags


@dataclass(frozen=True)
class Tag:
    name: str
    category: str
    color: str
    icon: str
    description: str
    is_system: bool


TIER_TAGS = {tier: f"{tier}级客户" for tier in ("S", "A", "B", "C")}
SOURCE_TAGS = {channel: f"来源-{channel}" for channel in SOURCE_CHANNELS}
TAG_HIGH_INTENT, TAG_OPENED, TAG_DEPOSITED, TAG_VIP = "高意向", "已开户", "已入金", "VIP客户"
TAG_ACTIVE_MEMBER, TAG_SILENT, TAG_WITHDRAWAL_RISK = "活跃群成员", "长期未回复", "出金风险"
TAG_EMOTIONAL, TAG_COMPLAINT = "情绪不稳", "投诉风险"


def build_tags() -> list[Tag]:
    tags = [
        Tag(name, "客户分层", color, "crown", f"客户分层: {tier}级", True)
        for (tier, name), color in zip(
            TIER_TAGS.items(), ("#d4af37", "#c0392b", "#2980b9", "#7f8c8d"), strict=True
        )
    ]
    tags += [
        Tag(name, "来源", "#16a085", "link", f"首次接触渠道为 {channel}", True)
        for channel, name in SOURCE_TAGS.items()
    ]
    tags += [
        Tag(TAG_HIGH_INTENT, "意向", "#e67e22", "fire", "意向分数 >= 40", False),
        Tag(TAG_OPENED, "意向", "#27ae60", "bank", "已完成开户", True),
        Tag(TAG_DEPOSITED, "意向", "#2ecc71", "money", "已有确认入金", True),
        Tag(TAG_VIP, "客户分层", "#8e44ad", "star", "累计确认入金达到VIP标准", True),
        Tag(TAG_ACTIVE_MEMBER, "行为", "#3498db", "users", "在群内活跃并留存", False),
        Tag(TAG_SILENT, "行为", "#95a5a6", "moon", "超过两周没有互动", True),
        Tag(TAG_WITHDRAWAL_RISK, "风险", "#e74c3c", "alert", "出现恐慌离场或大额出金", False),
        Tag(TAG_EMOTIONAL, "风险", "#d35400", "alert", "沟通中情绪波动明显", False),
        Tag(TAG_COMPLAINT, "风险", "#c0392b", "alert", "有投诉倾向", False),
    ]
    return tags


def tag_rows(tags: list[Tag], config: GenerateConfig) -> list[dict]:
    created = to_datetime(config.start_ts - 400 * DAY)
    return [
        {
            "name": t.name,
            "category": t.category,
            "color": t.color,
            "icon": t.icon,
            "description": t.description,
            "is_system": t.is_system,
            "display_order": order,
            "created_at": created,
        }
        for order, t in enumerate(tags, start=1)
    ]


# ------------------------------------------------------------------------------------- scripts


@dataclass(frozen=True)
class Script:
    code: str
    category: str
    subcategory: str
    scenario: str
    level: str
    content_cn: str
    content_en: str
    purpose: str
    phase: int
    event_type: str  # the conversation event a message using this script produces


def build_scripts() -> list[Script]:
    return [
        Script(f"SCR_{n:03d}", cat, sub, scen, level, cn, en, purpose, phase, event)
        for n, (cat, sub, scen, level, phase, event, cn, en, purpose) in enumerate(SCRIPT_CATALOGUE, start=1)
    ]


def script_rows(
    scripts: list[Script],
    usage: list[int],
    successes: list[int],
    authors: list[Employee],
    config: GenerateConfig,
    rng: random.Random,
) -> list[dict]:
    """usage/successes come from the generated conversations, so the statistics are consistent."""
    rows = []
    for i, s in enumerate(scripts):
        same_phase = [o.code for o in scripts if o.phase == s.phase and o.code != s.code]
        rows.append(
            {
                "script_code": s.code,
                "category": s.category,
                "subcategory": s.subcategory,
                "scenario": s.scenario,
                "level": s.level,
                "content_cn": s.content_cn,
                "content_en": s.content_en,
                "purpose": s.purpose,
                "follow_up": same_phase[:2],
                "tags": [s.category, s.subcategory],
                "usage_count": usage[i],
                "success_count": successes[i],
                "success_rate": percent(successes[i], usage[i]),
                "avg_rating": money(rng.randint(300, 500)) if usage[i] else None,
                "is_active": i % 11 != 10,
                "created_at": to_datetime(
                    config.start_ts - rng.randint(30, 365) * DAY + rng.randint(9, 18) * 3600
                ),
                "created_by_code": authors[i % len(authors)].code if authors else None,
            }
        )
    return rows


# ----------------------------------------------------------------------------------- materials

_MATERIAL_TOPICS = {
    "生活自律": ("晨跑打卡第{n}天", "读书笔记: 《穷查理宝典》第{n}章", "理财日记第{n}篇"),
    "专业投资": ("美股财报季解读 Vol.{n}", "比特币减半周期复盘 Vol.{n}", "ETF定投入门第{n}讲"),
    "心智价值观": ("长期主义的力量 #{n}", "复利思维 #{n}", "如何面对市场恐慌 #{n}"),
    "客户案例": ("客户故事: 从新手到稳健盈利 #{n}", "Client story: first year in US stocks #{n}"),
    "市场快讯": ("盘前速递 {n}", "Market wrap {n}"),
}
_STAGE_GROUPS = (["ToFu"], ["ToFu", "MoFu"], ["MoFu"], ["MoFu", "BoFu"], ["BoFu"])


def material_rows(
    config: GenerateConfig, authors: list[Employee], rng: random.Random, count: int = 60
) -> list[dict]:
    categories = list(_MATERIAL_TOPICS)
    rows = []
    for n in range(1, count + 1):
        category = categories[n % len(categories)]
        title = rng.choice(_MATERIAL_TOPICS[category]).format(n=n)
        kind = MATERIAL_TYPES[n % len(MATERIAL_TYPES)]
        code = f"MAT_{n:04d}"
        views = rng.randint(200, 80_000)
        likes = rng.randint(0, views // 5)
        has_media = kind in ("image", "video", "mixed")
        rows.append(
            {
                "material_code": code,
                "type": kind,
                "category": category,
                "subcategory": title.split(" ")[0][:20],
                "title": title,
                "content": f"{title}: 用通俗的语言讲清楚一个投资或成长的道理。",
                "media_url": f"https://media.funnelhouse.example/materials/{code}.{'mp4' if kind == 'video' else 'jpg'}"
                if has_media
                else None,
                "thumbnail_url": f"https://media.funnelhouse.example/materials/{code}_thumb.jpg"
                if has_media
                else None,
                "caption": f"{title} | 关注我们, 每天进步一点点",
                "hashtags": [f"#{category}", "#美股" if n % 2 else "#加密货币", "#投资"],
                "purpose": rng.choice(("吸粉引流", "建立信任", "促进转化", "客户维护")),
                "suitable_stages": _STAGE_GROUPS[n % len(_STAGE_GROUPS)],
                "views": views,
                "likes": likes,
                "comments": rng.randint(0, likes // 3 + 1),
                "shares": rng.randint(0, likes // 4 + 1),
                "published_count": rng.randint(1, 12),
                "tags": [category, kind],
                "is_active": n % 9 != 0,
                "created_at": to_datetime(
                    config.start_ts - rng.randint(1, 200) * DAY + rng.randint(8, 20) * 3600
                ),
                "created_by_code": authors[n % len(authors)].code if authors else None,
            }
        )
    return rows


# ------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class Course:
    code: str
    title: str
    course_type: str
    level: str
    duration_days: int
    modules: tuple[str, ...]
    is_required: bool


COURSES = (
    Course(
        "CRS_7D_01",
        "新人7天上手: 产品与合规",
        "7天上手",
        "新人",
        7,
        ("公司介绍", "合规红线", "产品基础"),
        True,
    ),
    Course(
        "CRS_7D_02",
        "新人7天上手: 接粉与建群",
        "7天上手",
        "新人",
        7,
        ("渠道认知", "破冰话术", "社群运营"),
        True,
    ),
    Course(
        "CRS_7D_03", "新人7天上手: CRM使用", "7天上手", "新人", 7, ("客户录入", "标签体系", "聊天记录"), True
    ),
    Course(
        "CRS_30D_01", "30天成才: 12大模型", "30天成才", "进阶", 30, ("需求挖掘", "痛点放大", "反问技巧"), True
    ),
    Course(
        "CRS_30D_02",
        "30天成才: 开户引导",
        "30天成才",
        "进阶",
        30,
        ("流程讲解", "异议处理", "跟进节奏"),
        False,
    ),
    Course(
        "CRS_30D_03", "30天成才: 美股基础", "30天成才", "进阶", 30, ("财报阅读", "估值入门", "ETF"), False
    ),
    Course(
        "CRS_90D_01",
        "90天中坚: 入金促成与维护",
        "90天中坚",
        "高级",
        90,
        ("首金", "复入金", "大额客户"),
        False,
    ),
    Course(
        "CRS_90D_02", "90天中坚: 出金挽留", "90天中坚", "高级", 90, ("风险识别", "情绪安抚", "复盘"), False
    ),
    Course(
        "CRS_90D_03", "90天中坚: 团队带教", "90天中坚", "高级", 90, ("带教方法", "KPI解读", "复盘会"), False
    ),
)
# Which course types an employee takes, by level: newcomers never see the 90-day track.
_TRACKS = {
    "新人": ("7天上手",),
    "组员": ("7天上手", "30天成才"),
    "A级执行者": ("30天成才", "90天中坚"),
    "精英": ("30天成才", "90天中坚"),
    "高手": ("90天中坚",),
    "主管": ("90天中坚",),
}


def course_rows(config: GenerateConfig) -> list[dict]:
    created = to_datetime(config.start_ts - 500 * DAY)
    return [
        {
            "course_code": c.code,
            "title": c.title,
            "description": f"{c.course_type}系列课程, 共{len(c.modules)}个模块",
            "course_type": c.course_type,
            "level": c.level,
            "duration_days": c.duration_days,
            "content": {"modules": [{"order": i, "title": m} for i, m in enumerate(c.modules, start=1)]},
            "is_required": c.is_required,
            "display_order": order,
            "created_at": created,
        }
        for order, c in enumerate(COURSES, start=1)
    ]


def training_progress_rows(
    employees: list[Employee], config: GenerateConfig, rng: random.Random
) -> list[dict]:
    rows = []
    for e in employees:
        if e.role == "admin":
            continue
        for course in COURSES:
            if course.course_type not in _TRACKS[e.level]:
                continue
            started = (
                max(config.start_ts - 300 * DAY, e.hired_ts + rng.randint(0, 5) * DAY)
                + rng.randint(9, 17) * 3600
            )
            finish = started + course.duration_days * DAY + rng.randint(-2, 10) * DAY
            roll = rng.random()
            if started >= config.end_ts or roll < 0.1:
                status, pct, score, completed = "not_started", 0, None, None
            elif finish >= config.end_ts or roll < 0.3:
                status, pct, score, completed = "in_progress", rng.randint(5, 95), None, None
            elif roll < 0.36:
                status, pct, score, completed = "failed", 100, money(rng.randint(3000, 5900)), finish
            else:
                status, pct, score, completed = "completed", 100, money(rng.randint(6000, 10000)), finish
            rows.append(
                {
                    "status": status,
                    "progress_percentage": pct,
                    "score": score,
                    "started_at": to_datetime(started) if status != "not_started" else None,
                    "completed_at": to_datetime(completed) if completed else None,
                    "employee_code": e.code,
                    "course_code": course.code,
                }
            )
    return rows
