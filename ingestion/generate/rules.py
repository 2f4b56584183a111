"""Business rules shared by the simulation, the KPI roll-up and the tests that check them.

Also published in system_settings, so a reader of the generated data can find them there.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

VIP_THRESHOLD_CENTS = 5_000_000  # cumulative confirmed deposits of 50,000 USD make a VIP
LARGE_DEPOSIT_CENTS = 1_000_000  # a repeat deposit of 10,000 USD or more is 大额入金
HIGH_QUALITY_MIN_SCORE = 7  # a conversation with quality_score >= 7 is high quality

DEPOSIT_FIRST, DEPOSIT_REPEAT, DEPOSIT_LARGE = "首金", "复入金", "大额入金"

# overall_score = min(100, sum(weight * metric)) where net deposit counts per 1,000 USD and never below 0.
OVERALL_SCORE_WEIGHTS = {
    "tofu_contacts": 4,
    "tofu_retained": 6,
    "mofu_quality_conversations": 2,
    "mofu_反问_count": 3,
    "mofu_accounts_opened": 12,
    "bofu_deposits_count": 10,
    "bofu_net_deposit_per_1000_usd": 2,
}


def deposit_type(is_first: bool, amount_cents: int) -> str:
    if is_first:
        return DEPOSIT_FIRST
    return DEPOSIT_LARGE if amount_cents >= LARGE_DEPOSIT_CENTS else DEPOSIT_REPEAT


def overall_score(counts: dict[str, int], net_deposit_cents: int) -> Decimal:
    """The employee's daily score, 0-100, from the day's KPI counts (see OVERALL_SCORE_WEIGHTS)."""
    weights = OVERALL_SCORE_WEIGHTS
    total = Decimal(sum(weights[name] * counts[name] for name in weights if name in counts))
    total += Decimal(weights["bofu_net_deposit_per_1000_usd"] * max(0, net_deposit_cents)) / Decimal(100_000)
    return min(Decimal(100), total).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
