"""Everything one report shows, gathered from the marts for one scope and period, before any rendering.

Content depends on (scope, period) only, not on the recipient or language: the pipeline gathers it
once per scope and renders it per language, which is what keeps 50 managers' reports cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ingestion.reports import metrics, trust
from ingestion.reports.data import LeaderboardRow, MartReader, StalledCustomer
from ingestion.reports.periods import Period


@dataclass(frozen=True)
class ReportContent:
    scope: str
    period: Period
    headline: dict  # metric -> value for the period
    comparisons: dict[str, dict]  # "previous"/"last_week" -> metric -> value
    trend: list[tuple[date, dict]]  # every day of the 30-day window, zeros where the mart has none
    leaderboard: list[LeaderboardRow]
    stalled: list[StalledCustomer]
    footer: trust.TrustFooter
    # The day the stalled customers and their days are as of: the period's last day (the customer mart's
    # as_of_date if it was built before then); None when that mart is empty.
    stalled_as_of: date | None = None
    # Rendered from marts last refreshed before the period ended (sent by hand; see ledger.py).
    preliminary: bool = False
    generated_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    @property
    def funnel(self) -> list[tuple[str, object]]:
        return [(stage, self.headline[stage]) for stage in metrics.FUNNEL_STAGES]

    def change(self, comparison: str, metric: metrics.Metric):
        return metrics.change(
            self.headline[metric.key], self.comparisons[comparison][metric.key], metric.kind
        )


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def gather(
    reader: MartReader,
    scope: str,
    period: Period,
    pg_dsn: str | None = None,
    stalled_limit: int = 10,
    preliminary: bool = False,
) -> ReportContent:
    comparisons = period.comparisons()
    first_day = min([period.trend_start, period.start, *(p.start for p in comparisons.values())])
    by_day = reader.daily_sums(scope, first_day, period.end)
    stalled_as_of = reader.stalled_as_of(period.end)
    empty = {name: 0 for name in metrics.SUMMED}

    def values(p: Period) -> dict:
        return metrics.period_values([by_day.get(day, empty) for day in _days(p.start, p.end)])

    return ReportContent(
        scope=scope,
        period=period,
        headline=values(period),
        comparisons={name: values(p) for name, p in comparisons.items()},
        trend=[(day, by_day.get(day, empty)) for day in _days(period.trend_start, period.end)],
        leaderboard=reader.leaderboard(scope, period),
        stalled=reader.stalled_customers(scope, stalled_as_of, stalled_limit),
        stalled_as_of=stalled_as_of,
        footer=trust.footer(reader.latest_kpi_day(), pg_dsn, period.start, period.end),
        preliminary=preliminary,
    )
