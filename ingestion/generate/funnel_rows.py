"""The rows one simulated customer (a funnel.Life) leaves in each customer-level table.

Kept apart from funnel.py so the simulator (what happens to a customer, and when) reads on its
own; these builders only translate a finished Life into the landing columns of customers,
customer_journey, funnel_tofu/mofu/bofu, deposits, withdrawals and customer_tags. Those that take
an ``rng`` draw details no other row depends on (reasons, notes, group names, timestamps jitter);
the order run.py calls them in is still part of the seed's output.
"""

from __future__ import annotations

import random

from ingestion.contracts import STAGES
from ingestion.generate import content, vocab
from ingestion.generate.config import DAY, GenerateConfig, money, percent, to_date, to_datetime
from ingestion.generate.funnel import (
    ACTION,
    ATTENTION,
    ENGAGE,
    HOUR,
    SILENT_AFTER_DAYS,
    SUBSCRIBE,
    TIER_DEPOSIT_USD,
    TRUST,
    Life,
)
from ingestion.generate.people import Employee
from ingestion.generate.rules import deposit_type


def customer_row(life: Life, rng: random.Random) -> dict:
    p = life.profile
    risk_flags = []
    if any(w.reason == "恐慌离场" for w in life.withdrawals):
        risk_flags.append("出金风险")
    if life.status != "active":
        risk_flags.append("长期未回复")
    engagement = min(100, 10 + life.conversations // 2 + 5 * life.stage)
    ltv = TIER_DEPOSIT_USD[p.tier] * 100 * (1 + life.stage) // 4 + max(0, life.net_deposit_cents()) * 3 // 2
    return {
        "customer_code": life.code,
        "name": p.name,
        "avatar_url": f"https://cdn.funnelhouse.example/avatars/{life.code}.jpg" if p.has_avatar else None,
        "gender": p.gender,
        "age": p.age,
        "birth_date": p.birth_date,
        "wechat_id": p.wechat_id,
        "whatsapp": p.whatsapp,
        "telegram": p.telegram,
        "email": p.email,
        "phone": p.phone,
        "country": p.place.country,
        "city": p.city.name,
        "timezone": p.city.timezone,
        "language": vocab.LANGUAGE_LABELS[p.language],
        "occupation": p.occupation,
        "industry": p.industry,
        "income_range": p.income_range,
        "investment_experience": p.experience,
        "risk_preference": p.risk_preference,
        "capital_range": p.capital_range,
        "trading_platform": p.trading_platform,
        "interests": p.interests,
        "personality_traits": p.traits,
        "communication_style": p.communication_style,
        "decision_style": p.decision_style,
        "tier": p.tier,
        "persona_type": p.persona,
        "intention_score": life.intention_score,
        "engagement_score": engagement,
        "ltv_prediction": money(ltv),
        "current_stage": STAGES[life.stage],
        "source_channel": life.source_channel,
        "assigned_at": to_datetime(life.engage_ts or life.t0),
        "status": life.status,
        "blacklist_reason": rng.choice(vocab.BLACKLIST_REASONS) if life.status == "blacklist" else None,
        "risk_flags": risk_flags or None,
        "created_at": to_datetime(life.t0 - rng.randint(60, 6 * HOUR)),
        "last_contact_at": to_datetime(life.last_contact_ts) if life.last_contact_ts else None,
        "referrer_code": life.referrer_code,
        "assigned_employee_code": life.owner.code,
    }


def journey_rows(life: Life, rng: random.Random) -> list[dict]:
    rows = []
    for k in range(1, life.stage + 1):
        to_stage = STAGES[k]
        rows.append(
            {
                "source_key": f"JRN_{life.code}_{k}",
                "from_stage": STAGES[k - 1],
                "to_stage": to_stage,
                "duration_days": (life.stage_ts[k] - life.stage_ts[k - 1]) // DAY,
                "trigger_event": rng.choice(vocab.TRIGGER_EVENTS[to_stage]),
                "notes": rng.choice(vocab.JOURNEY_NOTES),
                "created_at": to_datetime(life.stage_ts[k]),
                "customer_code": life.code,
            }
        )
    return rows


def tofu_row(life: Life, rng: random.Random) -> dict:
    detail = rng.choice(vocab.SOURCE_DETAILS[life.source_channel]).format(n=rng.randint(1, 80))
    joined = life.joined_group
    if joined:
        screening, reason = "通过", rng.choice(vocab.SCREENING_PASS)
    elif life.status != "active":
        screening, reason = "筛掉", rng.choice(vocab.SCREENING_REJECT)
    else:
        screening, reason = None, None
    return {
        "source_key": f"TOFU_{life.code}",
        "contact_date": to_date(life.t0),
        "source_channel": life.source_channel,
        "source_detail": detail,
        "joined_group": joined,
        "group_name": f"{rng.choice(vocab.GROUP_TOPICS)}{rng.randint(1, 30)}群" if joined else None,
        "joined_at": to_datetime(life.stage_ts[ATTENTION]) if joined else None,
        "stayed_in_group": life.stayed_in_group,
        "left_group_at": to_datetime(life.left_group_ts) if life.left_group_ts else None,
        "leave_reason": rng.choice(vocab.LEAVE_REASONS) if life.left_group_ts else None,
        "screening_result": screening,
        "screening_reason": reason,
        "created_at": to_datetime(life.t0),
        "customer_code": life.code,
        "employee_code": life.tofu_emp.code,
    }


def mofu_row(life: Life) -> dict:
    opened = life.reached(ACTION)
    opened_ts = life.stage_ts[ACTION] if opened else None
    return {
        "source_key": f"MOFU_{life.code}",
        "total_conversations": life.conversations,
        "high_quality_conversations": life.quality_conversations,
        "total_反问_count": life.asks_back,
        "followed_recommendations": life.followed,
        "follow_count": life.follow_count,
        "account_opened": opened,
        "account_platform": life.profile.trading_platform if opened else None,
        "opened_at": to_datetime(opened_ts) if opened else None,
        "days_to_open": (to_date(opened_ts) - to_date(life.t0)).days if opened else None,
        "intention_score": life.intention_score,
        "engagement_score": min(100, 10 + life.conversations // 2 + 5 * life.stage),
        "created_at": to_datetime(life.stage_ts[ENGAGE]),
        "customer_code": life.code,
        "employee_code": life.advisor.code,
    }


def bofu_row(life: Life) -> dict:
    deposits = sorted(life.confirmed_deposits(), key=lambda d: d.ts)
    withdrawals = life.confirmed_withdrawals()
    total_in = sum(d.cents for d in deposits)
    total_out = sum(w.cents for w in withdrawals)
    first = deposits[0]
    vip_since = life.vip_since_ts()
    return {
        "source_key": f"BOFU_{life.code}",
        "total_deposits": money(total_in),
        "total_withdrawals": money(total_out),
        "net_deposit": money(total_in - total_out),
        "deposit_count": len(deposits),
        "withdrawal_count": len(withdrawals),
        "first_deposit_amount": money(first.cents),
        "first_deposit_at": to_datetime(first.ts),
        "days_to_first_deposit": (to_date(first.ts) - to_date(life.t0)).days,
        "max_deposit_amount": money(max(d.cents for d in deposits)),
        "withdrawal_rate": percent(total_out, total_in),
        "is_vip": vip_since is not None,
        "vip_since": to_datetime(vip_since) if vip_since else None,
        "created_at": to_datetime(first.ts),
        "customer_code": life.code,
        "employee_code": life.bofu_emp.code,
    }


def deposit_rows(life: Life) -> list[dict]:
    currency_platform = life.profile.trading_platform
    return [
        {
            "deposit_code": d.code,
            "amount": money(d.cents),
            "currency": "USD",
            "deposit_type": deposit_type(d.is_first, d.cents),
            "platform": currency_platform,
            "status": d.status,
            "notes": d.note,
            "deposited_at": to_datetime(d.ts),
            "confirmed_at": to_datetime(d.confirmed_ts) if d.confirmed_ts else None,
            "created_at": to_datetime(d.ts),
            "customer_code": life.code,
            "employee_code": life.bofu_emp.code,
        }
        for d in life.deposits
    ]


def withdrawal_rows(life: Life) -> list[dict]:
    return [
        {
            "withdrawal_code": w.code,
            "amount": money(w.cents),
            "currency": "USD",
            "reason": w.reason,
            "risk_level": w.risk_level,
            "retention_action": w.retention_action,
            "retention_success": w.retention_success,
            "status": w.status,
            "requested_at": to_datetime(w.ts),
            "processed_at": to_datetime(w.processed_ts) if w.processed_ts else None,
            "created_at": to_datetime(w.ts),
            "customer_code": life.code,
            "employee_code": life.bofu_emp.code,
        }
        for w in life.withdrawals
    ]


def tag_rows(life: Life, config: GenerateConfig) -> list[dict]:
    """Tags that follow from the customer's facts: tier, source, milestones, behaviour, risk."""
    tags: list[tuple[str, int, Employee | None]] = [
        (content.TIER_TAGS[life.profile.tier], life.t0, None),
        (content.SOURCE_TAGS[life.source_channel], life.t0, None),
    ]
    if life.stayed_in_group and life.reached(TRUST):
        tags.append((content.TAG_ACTIVE_MEMBER, life.stage_ts[TRUST], life.tofu_emp))
    if life.intention_score >= 40 and life.engage_ts:
        tags.append((content.TAG_HIGH_INTENT, life.engage_ts, life.advisor))
    if life.reached(ACTION):
        tags.append((content.TAG_OPENED, life.stage_ts[ACTION], None))
    if life.reached(SUBSCRIBE):
        tags.append((content.TAG_DEPOSITED, life.stage_ts[SUBSCRIBE], None))
        vip_since = life.vip_since_ts()
        if vip_since:
            tags.append((content.TAG_VIP, vip_since, None))
    panic = [w for w in life.withdrawals if w.reason == "恐慌离场"]
    if panic:
        tags.append((content.TAG_WITHDRAWAL_RISK, panic[0].ts, life.bofu_emp))
    silent_ts = life.activity_end + SILENT_AFTER_DAYS * DAY
    if life.status != "active" and silent_ts < config.end_ts:
        tags.append((content.TAG_SILENT, silent_ts, None))
    return [
        {
            "tagged_at": to_datetime(ts),
            "is_auto": by is None,
            "customer_code": life.code,
            "tag_name": name,
            "tagged_by_code": by.code if by else None,
        }
        for name, ts, by in tags
    ]
