"""The system_settings rows: the rules the generator follows, published as the CRM's own settings.

Kept apart from content.py because these rows come from rules.py (thresholds, score weights), not
from the team's reference content; changing a rule there changes the published setting here.
"""

from __future__ import annotations

import json

from ingestion.generate.config import money
from ingestion.generate.people import Employee
from ingestion.generate.rules import (
    HIGH_QUALITY_MIN_SCORE,
    LARGE_DEPOSIT_CENTS,
    OVERALL_SCORE_WEIGHTS,
    VIP_THRESHOLD_CENTS,
)


def settings_rows(admin: Employee | None) -> list[dict]:
    """The rules the generator follows, published as the CRM's own settings."""
    entries = (
        (
            "funnel.stages",
            '["Awareness","Attention","Trust","Engage","Action","Subscribe","Growth","Loyal","Advocate"]',
            "json",
            "funnel",
            "客户旅程九个阶段",
            True,
        ),
        (
            "funnel.vip_threshold_usd",
            str(money(VIP_THRESHOLD_CENTS)),
            "number",
            "funnel",
            "累计确认入金达到此金额成为VIP",
            False,
        ),
        (
            "deposit.large_amount_usd",
            str(money(LARGE_DEPOSIT_CENTS)),
            "number",
            "deposit",
            "单笔达到此金额记为大额入金",
            False,
        ),
        ("deposit.default_currency", "USD", "string", "deposit", "默认币种", True),
        (
            "conversation.high_quality_min_score",
            str(HIGH_QUALITY_MIN_SCORE),
            "number",
            "conversation",
            "高质量对话的最低质量分",
            False,
        ),
        (
            "conversation.platforms",
            '["wechat","whatsapp","telegram"]',
            "json",
            "conversation",
            "支持的聊天平台",
            True,
        ),
        (
            "kpi.overall_score_weights",
            _json_text(OVERALL_SCORE_WEIGHTS),
            "json",
            "kpi",
            "综合评分权重",
            False,
        ),
        ("kpi.compute_hour_utc", "1", "number", "kpi", "每日KPI计算时间(UTC小时)", False),
        ("customer.intention_score_max", "60", "number", "customer", "意向分数上限", True),
        ("customer.silent_after_days", "14", "number", "customer", "超过此天数未互动标记为长期未回复", False),
        (
            "security.redact_contact_details",
            "true",
            "boolean",
            "security",
            "搜索结果中隐藏手机号/邮箱/微信号",
            False,
        ),
        ("ui.default_language", "zh-CN", "string", "ui", "界面默认语言", True),
    )
    return [
        {
            "key": key,
            "value": value,
            "value_type": value_type,
            "category": category,
            "description": description,
            "is_public": is_public,
            "updated_by_code": admin.code if admin else None,
        }
        for key, value, value_type, category, description, is_public in entries
    ]


def _json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
