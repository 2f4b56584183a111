"""Daily employee KPIs, counted while the underlying rows are generated.

Rows stream to disk and are gone, so instead of re-reading them the generator adds each good
row's contribution to dense (employee x day) counters as it is written; employee_kpis is then one
row per employee per day with any activity. The definitions (what the tests recompute):

  tofu_contacts / tofu_retained   funnel_tofu rows by (employee, contact_date) / of those stayed_in_group
  mofu_quality_conversations      conversations with quality_score >= 7, by (employee, sent_at day)
  mofu_反问_count                  conversations with is_反问, by (employee, sent_at day)
  mofu_accounts_opened            funnel_mofu rows with account_opened, by (employee, opened_at day)
  bofu_deposits_count / _amount   confirmed deposits by (employee, deposited_at day)
  bofu_withdrawal_amount          confirmed withdrawals by (employee, requested_at day)
  bofu_net_deposit                deposit amount - withdrawal amount
  rates                           100 * part / whole, 2 decimals, NULL when whole is 0
  overall_score                   rules.overall_score
An employee-day is active when any of these is non-zero or the employee had any conversation.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ingestion.generate.config import DAY, GenerateConfig, money, percent, to_date, to_datetime
from ingestion.generate.funnel import ACTION, Life
from ingestion.generate.rules import HIGH_QUALITY_MIN_SCORE, overall_score

COUNTERS = (
    "tofu_contacts",
    "tofu_retained",
    "mofu_quality_conversations",
    "mofu_反问_count",
    "mofu_accounts_opened",
    "bofu_deposits_count",
    "conversations",
)
AMOUNTS = ("bofu_deposit_cents", "bofu_withdrawal_cents")


class KpiCounters:
    def __init__(self, config: GenerateConfig, employees: int):
        self.config = config
        shape = (employees, config.days)
        self.counts = {name: np.zeros(shape, dtype=np.int64) for name in COUNTERS}
        self.amounts = {name: np.zeros(shape, dtype=np.int64) for name in AMOUNTS}

    def _day(self, ts: int) -> int:
        return (ts - self.config.start_ts) // DAY

    def record_life(self, life: Life) -> None:
        day = self._day
        tofu = life.tofu_emp.index
        self.counts["tofu_contacts"][tofu, day(life.t0)] += 1
        if life.stayed_in_group:
            self.counts["tofu_retained"][tofu, day(life.t0)] += 1
        if life.reached(ACTION):
            self.counts["mofu_accounts_opened"][life.advisor.index, day(life.stage_ts[ACTION])] += 1
        for d in life.confirmed_deposits():
            self.counts["bofu_deposits_count"][life.bofu_emp.index, day(d.ts)] += 1
            self.amounts["bofu_deposit_cents"][life.bofu_emp.index, day(d.ts)] += d.cents
        for w in life.confirmed_withdrawals():
            self.amounts["bofu_withdrawal_cents"][life.bofu_emp.index, day(w.ts)] += w.cents

    def record_conversations(
        self, employee: np.ndarray, sent_at: np.ndarray, quality: np.ndarray, asks_back: np.ndarray
    ) -> None:
        """Vectorised: one call per block of conversations."""
        days = self.config.days
        flat = employee.astype(np.int64) * days + (sent_at - self.config.start_ts) // DAY
        size = self.counts["conversations"].size
        for name, weights in (
            ("conversations", None),
            ("mofu_quality_conversations", quality >= HIGH_QUALITY_MIN_SCORE),
            ("mofu_反问_count", asks_back),
        ):
            added = np.bincount(
                flat, weights=None if weights is None else weights.astype(np.int64), minlength=size
            )
            self.counts[name] += added.astype(np.int64).reshape(self.counts[name].shape)

    def row_batches(self, employee_codes: list[str], batch_rows: int = 20_000) -> Iterator[list[dict]]:
        """Rows in batches: at 100k customers there are ~200k employee-days, too many dicts to hold at once."""
        c, a = self.counts, self.amounts
        activity = sum(c.values()) + a["bofu_deposit_cents"] + a["bofu_withdrawal_cents"]
        rows = []
        for emp, day in zip(*np.nonzero(activity), strict=True):
            if len(rows) == batch_rows:
                yield rows
                rows = []
            counts = {name: int(c[name][emp, day]) for name in COUNTERS if name != "conversations"}
            deposit, withdrawal = (
                int(a["bofu_deposit_cents"][emp, day]),
                int(a["bofu_withdrawal_cents"][emp, day]),
            )
            day_ts = self.config.start_ts + int(day) * DAY
            rows.append(
                {
                    "date": to_date(day_ts),
                    **{k: v for k, v in counts.items() if k.startswith("tofu")},
                    "tofu_retention_rate": percent(counts["tofu_retained"], counts["tofu_contacts"]),
                    "mofu_quality_conversations": counts["mofu_quality_conversations"],
                    "mofu_反问_count": counts["mofu_反问_count"],
                    "mofu_accounts_opened": counts["mofu_accounts_opened"],
                    "bofu_deposits_count": counts["bofu_deposits_count"],
                    "bofu_deposit_amount": money(deposit),
                    "bofu_withdrawal_amount": money(withdrawal),
                    "bofu_net_deposit": money(deposit - withdrawal),
                    "bofu_withdrawal_rate": _storable_rate(percent(withdrawal, deposit)),
                    "overall_score": overall_score(counts, deposit - withdrawal),
                    "created_at": to_datetime(day_ts + DAY + 3600),
                    "employee_code": employee_codes[emp],
                }
            )
        yield rows


def _storable_rate(rate):
    """The seed stores the daily rate as DECIMAL(5,2): a day with withdrawals over ten times its
    deposits has no meaningful rate (the operational system leaves it empty), so neither do we."""
    return rate if rate is None or rate < 1000 else None
