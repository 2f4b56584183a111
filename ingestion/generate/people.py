"""The sales team and the customers' static profiles.

The team is sized from the customer count (about one employee per 50 customers, at least 10),
with one manager (主管) per department, trainers in 培训, an admin, and sales staff in the four
funnel departments whose level sets how many customers they carry.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from ingestion.generate import vocab
from ingestion.generate.config import DAY, GenerateConfig, to_date, to_datetime

SALES_DEPARTMENTS = ("ToFu", "MoFu", "BoFu", "VIP")
DEPARTMENT_SHARE = {"ToFu": 0.32, "MoFu": 0.38, "BoFu": 0.2, "VIP": 0.1}
LEVELS = ("新人", "组员", "A级执行者", "精英", "高手")
LEVEL_WEIGHTS = (0.2, 0.35, 0.2, 0.15, 0.1)
# Relative number of customers an employee carries; managers mostly coach.
CAPACITY = {"新人": 0.6, "组员": 1.0, "A级执行者": 1.2, "精英": 1.4, "高手": 1.5, "主管": 0.4}


@dataclass(frozen=True)
class Employee:
    index: int
    code: str
    name: str
    email: str
    phone: str
    username: str
    role: str
    department: str | None
    level: str
    status: str
    hired_ts: int
    last_login_ts: int | None

    @property
    def takes_customers(self) -> bool:
        return self.status == "active" and self.department in SALES_DEPARTMENTS

    def row(self, total_customers: int, active_customers: int, total_net_deposit, seed: int) -> dict:
        digest = hashlib.sha256(f"{seed}:{self.code}".encode()).hexdigest()
        return {
            "employee_code": self.code,
            "name": self.name,
            "avatar_url": f"https://cdn.funnelhouse.example/staff/{self.code}.png",
            "email": self.email,
            "phone": self.phone,
            "username": self.username,
            "password_hash": f"$2b$12${digest[:53]}",
            "role": self.role,
            "department": self.department,
            "level": self.level,
            "status": self.status,
            "total_customers": total_customers,
            "active_customers": active_customers,
            "total_net_deposit": total_net_deposit,
            "hired_at": to_date(self.hired_ts),
            "created_at": to_datetime(self.hired_ts + 9 * 3600),
            "last_login_at": to_datetime(self.last_login_ts) if self.last_login_ts else None,
        }


def build_staff(config: GenerateConfig) -> list[Employee]:
    rng = config.python_rng("staff")
    total = config.employee_count
    plan: list[tuple[str, str | None, str]] = [("admin", None, "主管")]
    plan += [("manager", dept, "主管") for dept in (*SALES_DEPARTMENTS, "培训")]
    trainers = max(1, round(total * 0.04))
    plan += [("trainer", "培训", rng.choice(("精英", "高手"))) for _ in range(trainers)]
    sales = max(0, total - len(plan))  # each sales department's manager also carries customers
    departments = _split(sales, DEPARTMENT_SHARE)
    for dept in SALES_DEPARTMENTS:
        plan += [("employee", dept, rng.choices(LEVELS, LEVEL_WEIGHTS)[0]) for _ in range(departments[dept])]
    staff = []
    for index, (role, dept, level) in enumerate(plan):
        # A few sales staff have left or are suspended: they exist but carry no customers.
        status = "active"
        if role == "employee" and total >= 30 and rng.random() < 0.03:
            status = rng.choice(("inactive", "suspended"))
        staff.append(_employee(index, role, dept, level, status, config, rng))
    return staff


def _split(count: int, shares: dict[str, float]) -> dict[str, int]:
    """Whole numbers per key proportional to shares, summing to count."""
    result = {key: int(count * share) for key, share in shares.items()}
    keys = list(shares)
    i = 0
    while sum(result.values()) < count:
        result[keys[i % len(keys)]] += 1
        i += 1
    return result


def _employee(
    index: int,
    role: str,
    dept: str | None,
    level: str,
    status: str,
    config: GenerateConfig,
    rng: random.Random,
) -> Employee:
    code = f"EMP_{index + 1:04d}"
    if rng.random() < 0.8:
        surname, surname_py = rng.choice(vocab.CN_SURNAMES)
        given, given_py = rng.choice(vocab.CN_GIVEN)
        name, alias = surname + given, f"{given_py}.{surname_py}"
    else:
        first, last = rng.choice(vocab.EN_FIRST), rng.choice(vocab.EN_LAST)
        name, alias = f"{first} {last}", f"{first}.{last}".lower()
    # Newcomers joined shortly before the window; seniors up to four years earlier.
    tenure_days = rng.randint(15, 75) if level == "新人" else rng.randint(90, 1500)
    hired_ts = config.start_ts - tenure_days * DAY
    last_login = config.end_ts - rng.randint(600, 3 * DAY) if status == "active" else None
    return Employee(
        index=index,
        code=code,
        name=name,
        email=f"{alias}{index + 1}@funnelhouse.example",
        phone=f"+86 139 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        username=f"{alias}{index + 1}",
        role=role,
        department=dept,
        level=level,
        status=status,
        hired_ts=hired_ts,
        last_login_ts=last_login,
    )


# ------------------------------------------------------------------------------------ customers


@dataclass(frozen=True)
class Profile:
    """What a customer is, independent of what happens to them in the funnel."""

    name: str
    gender: str
    age: int
    birth_date: object
    place: vocab.Place
    city: vocab.City
    language: int  # vocab.LANG_*
    platform: int  # index into vocab.PLATFORMS: where the conversations happen
    second_platform: int
    wechat_id: str | None
    whatsapp: str | None
    telegram: str | None
    email: str | None
    phone: str
    occupation: str
    industry: str
    income_range: str
    experience: str
    risk_preference: str
    capital_range: str
    trading_platform: str
    interests: list[str]
    traits: list[str]
    communication_style: str
    decision_style: str
    tier: str
    persona: str
    source_channel: str
    has_avatar: bool


TIER_WEIGHTS = {"S": 0.05, "A": 0.15, "B": 0.3, "C": 0.5}
_PLACE_WEIGHTS = [p.weight for p in vocab.PLACES]


def build_profile(code: str, config: GenerateConfig, rng: random.Random) -> Profile:
    place = rng.choices(vocab.PLACES, _PLACE_WEIGHTS)[0]
    language = rng.choices((vocab.LANG_ZH, vocab.LANG_EN, vocab.LANG_BOTH), place.language_weights)[0]
    platform = rng.choices((0, 1, 2), place.platform_weights)[0]
    second = rng.choice([p for p in (0, 1, 2) if p != platform])
    gender = rng.choices(vocab.GENDERS, (0.52, 0.45, 0.03))[0]
    age = rng.randint(22, 68)
    birth = to_date(config.end_ts - age * 365 * DAY - rng.randint(1, 360) * DAY)
    if language == vocab.LANG_EN:
        first, last = rng.choice(vocab.EN_FIRST), rng.choice(vocab.EN_LAST)
        name, handle = f"{first} {last}", f"{first}{last}".lower()
    else:
        surname, surname_py = rng.choice(vocab.CN_SURNAMES)
        given, given_py = rng.choice(vocab.CN_GIVEN)
        name, handle = surname + given, f"{given_py}{surname_py}"
        if language == vocab.LANG_BOTH and rng.random() < 0.4:
            name = f"{rng.choice(vocab.EN_FIRST)} {name}"
    handle = f"{handle}{rng.randint(10, 9999)}"
    phone = fake_phone(place, rng)
    occupation, industry = rng.choice(vocab.OCCUPATIONS)
    tier = rng.choices(list(TIER_WEIGHTS), list(TIER_WEIGHTS.values()))[0]
    capital_floor = {"S": 3, "A": 2, "B": 1, "C": 0}[tier]
    platforms = vocab.TRADING_PLATFORMS_EN if language == vocab.LANG_EN else vocab.TRADING_PLATFORMS_ZH
    return Profile(
        name=name,
        gender=gender,
        age=age,
        birth_date=birth,
        place=place,
        city=rng.choice(place.cities),
        language=language,
        platform=platform,
        second_platform=second,
        wechat_id=f"wxid_{handle}" if platform == 0 or rng.random() < 0.2 else None,
        whatsapp=phone if platform == 1 or rng.random() < 0.3 else None,
        telegram=f"@{handle}" if platform == 2 or rng.random() < 0.15 else None,
        email=f"{handle}@{rng.choice(('gmail.com', 'qq.com', '163.com', 'outlook.com', 'yahoo.com'))}"
        if rng.random() < 0.7
        else None,
        phone=phone,
        occupation=occupation,
        industry=industry,
        income_range=rng.choice(vocab.INCOME_RANGES[capital_floor:]),
        experience=rng.choices(vocab.EXPERIENCE, (0.5, 0.35, 0.15))[0],
        risk_preference=rng.choices(vocab.RISK_PREFERENCES, (0.3, 0.5, 0.2))[0],
        capital_range=vocab.CAPITAL_RANGES[min(4, capital_floor + rng.randint(0, 1))],
        trading_platform=rng.choice(platforms),
        interests=sorted(rng.sample(vocab.INTERESTS, rng.randint(1, 3)), key=vocab.INTERESTS.index),
        traits=sorted(rng.sample(vocab.PERSONALITY_TRAITS, 2), key=vocab.PERSONALITY_TRAITS.index),
        communication_style=rng.choice(
            vocab.COMMUNICATION_STYLES_EN if language == vocab.LANG_EN else vocab.COMMUNICATION_STYLES_ZH
        ),
        decision_style=rng.choice(vocab.DECISION_STYLES),
        tier=tier,
        persona=rng.choice(vocab.PERSONAS),
        source_channel=rng.choices(vocab.SOURCE_CHANNELS, vocab.SOURCE_CHANNEL_WEIGHTS)[0],
        has_avatar=rng.random() < 0.6,
    )


def fake_phone(place: vocab.Place, rng: random.Random) -> str:
    return "".join(str(rng.randint(0, 9)) if ch == "#" else ch for ch in rng.choice(place.phone_formats))
