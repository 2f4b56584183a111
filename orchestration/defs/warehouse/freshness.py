"""``dbt source freshness`` after a build: a report, never a reason to fail the build.

Freshness is replication lag: for each raw table, the point in PostgreSQL's time through which the
last successful replication run copied every change (``rows_cursor`` in ``raw._replication_state``,
in UTC whatever zone PostgreSQL stamps rows in: the sources' ``loaded_at_query``; warn after 3 h,
error after 12 h, see _crm__sources.yml). A quiet table that replication keeps checking is fresh; a
replication that stopped makes every table stale.
The result is printed for people to judge, and the build's exit code stays the dbt run's. In
Dagster the same query and bounds are judged every hour by asset checks of the raw tables, which
alert a table beyond error_after (freshness_checks.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("pass", "warn", "error", "runtime error")
_EPOCH_YEAR = "1970-"


@dataclass(frozen=True)
class SourceFreshness:
    table: str
    status: str
    age_hours: float | None


@dataclass
class FreshnessReport:
    exit_code: int = 0
    sources: list[SourceFreshness] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(source.status for source in self.sources)

    def summary(self) -> str:
        if not self.sources:
            return f"source freshness: no result (dbt exit {self.exit_code})"
        counts = self.counts()
        stale = [
            f"{source.table} {source.status}"
            + (f" ({source.age_hours:.0f} h)" if source.age_hours is not None else " (never replicated)")
            for source in self.sources
            if source.status != "pass"
        ]
        totals = ", ".join(f"{counts[status]} {status}" for status in STATUSES if counts[status])
        return f"source freshness: {totals}" + (f"; {'; '.join(stale)}" if stale else "")


def read_sources_json(target_path: Path, exit_code: int = 0) -> FreshnessReport:
    """The report dbt wrote to ``<target>/sources.json`` (empty if dbt wrote none)."""
    path = Path(target_path) / "sources.json"
    report = FreshnessReport(exit_code=exit_code)
    if not path.exists():
        return report
    for result in json.loads(path.read_text())["results"]:
        # A table never replicated has no bound yet: dbt reports the epoch; say so instead of 56 years.
        loaded = result.get("max_loaded_at") and not result["max_loaded_at"].startswith(_EPOCH_YEAR)
        age = result.get("max_loaded_at_time_ago_in_s") if loaded else None
        report.sources.append(
            SourceFreshness(
                table=result["unique_id"].rsplit(".", 1)[-1],
                status=result["status"],
                age_hours=round(age / 3600, 1) if age is not None else None,
            )
        )
    return report
