"""What the headline numbers are and how they are derived, compared and written.

Rates are recomputed from summed counts and amounts (withdrawals / deposits, retained / contacts),
never averaged from per-employee rates: an average of rates over employees of different sizes is
not the department's rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Kind = Literal["amount", "count", "percent", "score"]
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Metric:
    key: str
    kind: Kind
    higher_is_better: bool = True


HEADLINE = (
    Metric("net_deposit", "amount"),
    Metric("deposits", "amount"),
    Metric("withdrawals", "amount", higher_is_better=False),
    Metric("withdrawal_rate", "percent", higher_is_better=False),
    Metric("accounts_opened", "count"),
    Metric("first_deposits", "count"),
    Metric("new_contacts", "count"),
    Metric("group_retention", "percent"),
    Metric("quality_conversations", "count"),
)
# What each count counts. A funnel's bars must count the same things, customers, stage by stage:
# quality conversations count conversations (thousands a week against tens of customers) and so
# stay a headline KPI, never a funnel stage.
COUNTED = {
    "new_contacts": "customers",
    "retained": "customers",
    "accounts_opened": "customers",
    "first_deposits": "customers",
    "quality_conversations": "conversations",
    "deposits_count": "deposits",
}
# In journey order, top to bottom of the chart.
FUNNEL_STAGES = ("new_contacts", "retained", "accounts_opened", "first_deposits")
# Summed per day from the daily KPI mart (rates are derived from these sums, never averaged).
DAILY_SUMS = (
    "new_contacts",
    "retained",
    "quality_conversations",
    "accounts_opened",
    "deposits_count",
    "deposits",
    "withdrawals",
    "net_deposit",
)
# Everything a period's totals add up: the daily sums and first deposits (counted from the customers).
SUMMED = (*DAILY_SUMS, "first_deposits")


def rate(part, whole) -> Decimal | None:
    """``part / whole`` in percent to the hundredth; None when there is nothing to divide by."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP)


def period_values(days: list[dict]) -> dict:
    """Headline values of a period from its days' sums (an empty period sums to zero)."""
    totals = {name: sum((day.get(name, 0) for day in days), start=0) for name in SUMMED}
    for name in ("deposits", "withdrawals", "net_deposit"):
        totals[name] = Decimal(totals[name]).quantize(CENT)
    totals["withdrawal_rate"] = rate(totals["withdrawals"], totals["deposits"])
    totals["group_retention"] = rate(totals["retained"], totals["new_contacts"])
    return totals


def change(current, previous, kind: Kind) -> Decimal | None:
    """Percentage points for rates, relative percent otherwise; None when there is no base."""
    if current is None or previous is None:
        return None
    if kind == "percent":
        return (Decimal(current) - Decimal(previous)).quantize(CENT)
    if previous == 0:
        return None
    return ((Decimal(current) - Decimal(previous)) * 100 / abs(Decimal(previous))).quantize(
        CENT, ROUND_HALF_UP
    )


def format_value(value, kind: Kind) -> str:
    """Display text. Thousands separators and two decimals for money, so the text parses back exactly."""
    if value is None:
        return "–"
    if kind == "amount":
        return f"{Decimal(value):,.2f}"
    if kind == "percent":
        return f"{Decimal(value):.2f}%"
    if kind == "score":
        return f"{Decimal(value):.2f}"
    return f"{int(value):,}"


def format_change(value, kind: Kind) -> str:
    if value is None:
        return "–"
    unit = "pp" if kind == "percent" else "%"
    return f"{Decimal(value):+.2f}{unit}"
