"""Report periods: a day or a Monday-to-Sunday week, and the periods each is compared against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

PeriodKind = Literal["daily", "weekly"]
TREND_DAYS = 30


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    start: date
    end: date  # inclusive

    @classmethod
    def daily(cls, day: date) -> Period:
        return cls("daily", day, day)

    @classmethod
    def weekly(cls, any_day: date) -> Period:
        """The Monday-to-Sunday week containing ``any_day``."""
        monday = any_day - timedelta(days=any_day.weekday())
        return cls("weekly", monday, monday + timedelta(days=6))

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.start.isoformat()}"

    def shifted(self, days: int) -> Period:
        return Period(self.kind, self.start - timedelta(days=days), self.end - timedelta(days=days))

    def comparisons(self) -> dict[str, Period]:
        """Named periods to compare against: the previous period, and for a day the same weekday
        a week earlier (sales have a strong weekly rhythm, so yesterday alone misleads on Mondays)."""
        if self.kind == "daily":
            return {"previous": self.shifted(1), "last_week": self.shifted(7)}
        return {"previous": self.shifted(7)}

    @property
    def trend_start(self) -> date:
        return self.end - timedelta(days=TREND_DAYS - 1)
