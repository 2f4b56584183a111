"""One customer's life in the funnel: the stages reached, when, with whom, and the money moved.

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

from ingestion.generate import vocab
from ingestion.generate.config import DAY, GenerateConfig, to_date
from ingestion.generate.people import CAPACITY, Employee, Profile, build_profile
from ingestion.generate.rules import VIP_THRESHOLD_CENTS

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
