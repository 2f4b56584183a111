"""One customer's life in the funnel, and the ToFu/MoFu/BoFu rows it leaves behind.

A customer is contacted at t0 and tries to move forward through the nine stages in order; each
step succeeds with a tier-dependent probability after a plausible (log-normal) time, or the
customer stalls. Stages map to facts: Attention = joined the group, Engage = handed to a MoFu
advisor, Action = account opened, Subscribe = first deposit (首金), Growth = a repeat deposit.
Money is kept in integer cents so totals are exact: bofu totals are sums of confirmed deposits
and withdrawals, and no withdrawal ever exceeds what has been confirmed as deposited before it.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from ingestion.contracts import STAGES
from ingestion.generate import content, vocab
from ingestion.generate.config import DAY, GenerateConfig, money, percent, to_date, to_datetime
from ingestion.generate.people import CAPACITY, Employee, Profile, build_profile
from ingestion.generate.rules import VIP_THRESHOLD_CENTS, deposit_type

ATTENTION, TRUST, ENGAGE, ACTION, SUBSCRIBE, GROWTH, LOYAL, ADVOCATE = range(1, 9)
# Median days spent in stage k before moving to k+1, and the chance of moving at all.
STAGE_MEDIAN_DAYS = (1.5, 4, 6, 8, 3, 14, 25, 30)
STAGE_CONVERSION = (0.85, 0.75, 0.65, 0.55, 0.7, 0.65, 0.55, 0.45)
TIER_BOOST = {"S": 1.2, "A": 1.1, "B": 1.0, "C": 0.85}
TIER_DEPOSIT_USD = {"S": 20_000, "A": 8_000, "B": 3_000, "C": 1_000}
SILENT_AFTER_DAYS = 14
HOUR = 3600


@dataclass
class Deposit:
    code: str
    cents: int
    ts: int
    status: str
    confirmed_ts: int | None
    is_first: bool
    note: str | None


@dataclass
class Withdrawal:
    code: str
    cents: int
    ts: int
    status: str
    processed_ts: int | None
    reason: str
    risk_level: str
    retention_action: str | None
    retention_success: bool | None


@dataclass
class Life:
    index: int
    code: str
    profile: Profile
    source_channel: str
    referrer_code: str | None
    stage_ts: list[int]  # stage_ts[k]: when stage k was reached; stage_ts[0] = first contact
    activity_end: int  # last moment the customer is in touch
    status: str
    tofu_emp: Employee
    advisor: Employee | None  # MoFu advisor from Engage on
    bofu_emp: Employee | None  # BoFu / VIP employee from the first deposit on
    left_group_ts: int | None
    intention_score: int
    followed: bool
    follow_count: int
    deposits: list[Deposit] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)
    # Filled from the generated conversations (good rows only).
    conversations: int = 0
    quality_conversations: int = 0
    asks_back: int = 0
    last_contact_ts: int | None = None

    @property
    def t0(self) -> int:
        return self.stage_ts[0]

    @property
    def stage(self) -> int:
        return len(self.stage_ts) - 1

    def reached(self, stage: int) -> bool:
        return self.stage >= stage

    @property
    def engage_ts(self) -> int | None:
        return self.stage_ts[ENGAGE] if self.reached(ENGAGE) else None

    @property
    def owner(self) -> Employee:
        return self.advisor if self.advisor else self.tofu_emp

    @property
    def joined_group(self) -> bool:
        return self.reached(ATTENTION)

    @property
    def stayed_in_group(self) -> bool:
        return self.joined_group and self.left_group_ts is None

    def confirmed_deposits(self) -> list[Deposit]:
        return [d for d in self.deposits if d.status == "confirmed"]

    def confirmed_withdrawals(self) -> list[Withdrawal]:
        return [w for w in self.withdrawals if w.status == "confirmed"]

    def vip_since_ts(self) -> int | None:
        running = 0
        for d in sorted(self.confirmed_deposits(), key=lambda d: (d.confirmed_ts, d.code)):
            running += d.cents
            if running >= VIP_THRESHOLD_CENTS:
                return d.confirmed_ts
        return None

    def net_deposit_cents(self) -> int:
        return sum(d.cents for d in self.confirmed_deposits()) - sum(
            w.cents for w in self.confirmed_withdrawals()
        )


class EmployeePool:
    """Picks employees of a department in proportion to their capacity."""

    def __init__(self, staff: list[Employee], departments: tuple[str, ...]):
        self.members = [e for e in staff if e.takes_customers and e.department in departments]
        if not self.members:
            self.members = [e for e in staff if e.takes_customers]
        self.cumulative = []
        total = 0.0
        for e in self.members:
            total += CAPACITY[e.level]
            self.cumulative.append(total)

    def pick(self, rng: random.Random) -> Employee:
        return self.members[
            bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
            if len(self.members) > 1
            else 0
        ]


class FunnelSimulator:
    """Simulates customers in contact order; keeps only what later customers need (referrers, codes)."""

    def __init__(self, config: GenerateConfig, staff: list[Employee]):
        self.config = config
        self.tofu = EmployeePool(staff, ("ToFu",))
        self.mofu = EmployeePool(staff, ("MoFu",))
        self.bofu = EmployeePool(staff, ("BoFu",))
        self.vip = EmployeePool(staff, ("VIP",))
        self.referrers: list[tuple[int, str]] = []  # (time they became a client, customer_code)
        self.deposit_seq = 0
        self.withdrawal_seq = 0

    def simulate(self, index: int, t0: int, rng: random.Random) -> Life:
        code = customer_code(index)
        profile = build_profile(code, self.config, rng)
        stage_ts, activity_end = self._journey(t0, profile.tier, rng)
        status = "active" if activity_end >= self.config.end_ts - SILENT_AFTER_DAYS * DAY else "inactive"
        if status == "inactive" and rng.random() < 0.03:
            status = "blacklist"
        channel, referrer = self._source(profile.source_channel, t0, rng)
        stage = len(stage_ts) - 1
        life = Life(
            index=index,
            code=code,
            profile=profile,
            source_channel=channel,
            referrer_code=referrer,
            stage_ts=stage_ts,
            activity_end=activity_end,
            status=status,
            tofu_emp=self.tofu.pick(rng),
            advisor=self.mofu.pick(rng) if stage >= ENGAGE else None,
            bofu_emp=None,
            left_group_ts=self._left_group(stage_ts, activity_end, rng),
            intention_score=min(60, stage * 7 + rng.randint(0, 8)),
            followed=stage >= ENGAGE and rng.random() < 0.4 + 0.1 * (stage - ENGAGE),
            follow_count=0,
        )
        life.follow_count = rng.randint(1, 12) if life.followed else 0
        if life.reached(SUBSCRIBE):
            life.bofu_emp = (self.vip if profile.tier == "S" else self.bofu).pick(rng)
            life.deposits = self._deposits(life, rng)
            life.withdrawals = self._withdrawals(life, rng)
            self.referrers.append((stage_ts[SUBSCRIBE], code))
        return life

    def _journey(self, t0: int, tier: str, rng: random.Random) -> tuple[list[int], int]:
        end = self.config.end_ts
        stage_ts, t = [t0], t0
        for median, chance in zip(STAGE_MEDIAN_DAYS, STAGE_CONVERSION, strict=True):
            duration = max(2 * HOUR, int(median * DAY * math.exp(rng.gauss(0, 0.6))))
            if rng.random() > min(0.97, chance * TIER_BOOST[tier]):
                return stage_ts, min(end - 1, t + int(duration * rng.uniform(0.5, 2.0)))  # stalls here
            if t + duration >= end:
                return stage_ts, end - 1  # still on the way when the window closes
            t += duration
            stage_ts.append(t)
        return stage_ts, end - 1

    def _source(self, channel: str, t0: int, rng: random.Random) -> tuple[str, str | None]:
        if channel != "推荐":
            return channel, None
        for _ in range(8):
            if not self.referrers:
                break
            since, code = self.referrers[rng.randrange(len(self.referrers))]
            if since < t0:
                return channel, code
        return rng.choice([c for c in vocab.SOURCE_CHANNELS if c != "推荐"]), None

    @staticmethod
    def _left_group(stage_ts: list[int], activity_end: int, rng: random.Random) -> int | None:
        stalled_in_group = len(stage_ts) - 1 == ATTENTION
        if not stalled_in_group or rng.random() > 0.7:
            return None
        joined = stage_ts[ATTENTION]
        return joined + int((activity_end - joined) * rng.uniform(0.3, 1.0))

    def _deposits(self, life: Life, rng: random.Random) -> list[Deposit]:
        end = self.config.end_ts
        base = TIER_DEPOSIT_USD[life.profile.tier]
        first_ts = life.stage_ts[SUBSCRIBE]
        moments = [(first_ts, True)]
        if life.reached(GROWTH):
            moments.append((life.stage_ts[GROWTH], True))
        months_left = (life.activity_end - first_ts) / (30 * DAY)
        extra = _poisson(rng, months_left * (0.8 + 0.4 * (life.stage - SUBSCRIBE)))
        moments += [
            (rng.randint(first_ts + HOUR, max(first_ts + HOUR, life.activity_end)), False)
            for _ in range(extra)
        ]
        moments.sort()
        deposits = []
        for n, (ts, milestone) in enumerate(moments):
            is_first = n == 0
            spread = 0.5 if is_first else 0.7
            step = 10_000 if is_first else 5_000
            cents = max(step, round(base * 100 * math.exp(rng.gauss(0, spread)) / step) * step)
            confirmed_ts = ts + rng.randint(5 * 60, 6 * HOUR)
            status = "confirmed"
            if not milestone:
                if confirmed_ts >= end or (ts > end - 2 * DAY and rng.random() < 0.6):
                    status = "pending"
                elif rng.random() < 0.05:
                    status = "failed"
            elif confirmed_ts >= end:
                confirmed_ts = end - 1
            self.deposit_seq += 1
            deposits.append(
                Deposit(
                    code=f"DEP_{to_date(ts):%Y%m%d}_{self.deposit_seq:07d}",
                    cents=cents,
                    ts=ts,
                    status=status,
                    confirmed_ts=confirmed_ts if status == "confirmed" else None,
                    is_first=is_first,
                    note=rng.choice(vocab.DEPOSIT_NOTES),
                )
            )
        return deposits

    def _withdrawals(self, life: Life, rng: random.Random) -> list[Withdrawal]:
        end = self.config.end_ts
        start = life.stage_ts[SUBSCRIBE] + 2 * DAY
        chance = {"保守": 0.25, "稳健": 0.3, "激进": 0.4}[life.profile.risk_preference]
        if life.activity_end <= start or rng.random() > chance:
            return []
        count = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
        moments = sorted(rng.randint(start, life.activity_end) for _ in range(count))
        confirmed = sorted((d.confirmed_ts, d.cents) for d in life.deposits if d.status == "confirmed")
        withdrawals: list[Withdrawal] = []
        taken = 0
        for ts in moments:
            available = sum(cents for when, cents in confirmed if when <= ts) - taken
            cents = int(available * rng.uniform(0.1, 0.7))
            if cents < 5_000:
                continue
            reason = rng.choices(vocab.WITHDRAWAL_REASONS, (0.4, 0.25, 0.25, 0.1))[0]
            risk = {"盈利提现": "低", "恐慌离场": "高", "资金需求": "中", "其他": "中"}[reason]
            processed = ts + rng.randint(HOUR, 72 * HOUR)
            status = "confirmed"
            if processed >= end or (ts > end - 3 * DAY and rng.random() < 0.7):
                status = "pending"
            elif rng.random() < 0.04:
                status = "failed"
            if status != "failed":
                taken += cents
            self.withdrawal_seq += 1
            withdrawals.append(
                Withdrawal(
                    code=f"WTH_{to_date(ts):%Y%m%d}_{self.withdrawal_seq:07d}",
                    cents=cents,
                    ts=ts,
                    status=status,
                    processed_ts=processed if status != "pending" else None,
                    reason=reason,
                    risk_level=risk,
                    retention_action=rng.choice(vocab.RETENTION_ACTIONS) if risk != "低" else None,
                    retention_success=(rng.random() < 0.35) if risk != "低" else None,
                )
            )
        return withdrawals


def customer_code(index: int) -> str:
    return f"CUST_{index + 1:07d}"


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small means used here, and stays on the Python RNG stream."""
    limit, k, p = math.exp(-min(lam, 30.0)), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


# ------------------------------------------------------------------------------------- rows


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
