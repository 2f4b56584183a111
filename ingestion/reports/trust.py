"""The footer's evidence that the numbers can be trusted: how fresh, how much was refused on the way
in, whether dbt's tests passed. Each is "unknown" rather than absent when its source is missing."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg

_REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_RUN_RESULTS = (
    Path(os.environ.get("FUNNELHOUSE_DBT_TARGET", _REPO_ROOT / "dbt_project" / "target")) / "run_results.json"
)


@dataclass(frozen=True)
class TrustFooter:
    latest_data_day: date | None
    ingestion_rejects: int | None
    dbt_tests: dict[str, int] | None  # status -> count, e.g. {"pass": 40, "fail": 1}
    dbt_generated_at: str | None = None

    @property
    def dbt_summary(self) -> str | None:
        if self.dbt_tests is None:
            return None
        return ", ".join(f"{count} {status}" for status, count in sorted(self.dbt_tests.items())) or "0"

    @property
    def dbt_ok(self) -> bool | None:
        if self.dbt_tests is None:
            return None
        return not any(self.dbt_tests.get(status) for status in ("fail", "error"))


def ingestion_rejects(dsn: str | None, first_day: date, last_day: date) -> int | None:
    """Rows refused by ingestion while the period's data came in (the period and the morning after)."""
    if not dsn:
        return None
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('funnelhouse.ingest_rejects')").fetchone()[0] is None:
            return None
        return conn.execute(
            "SELECT count(*) FROM funnelhouse.ingest_rejects WHERE rejected_at >= %s AND rejected_at < %s",
            (first_day, last_day + timedelta(days=2)),
        ).fetchone()[0]


def dbt_test_results(path: Path = DBT_RUN_RESULTS) -> tuple[dict[str, int] | None, str | None]:
    """Status counts of the tests in dbt's last ``run_results.json`` (a build or test run)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None, None
    statuses = Counter(
        result.get("status", "unknown")
        for result in document.get("results", [])
        if str(result.get("unique_id", "")).startswith(("test.", "unit_test."))
    )
    generated = document.get("metadata", {}).get("generated_at")
    if not statuses:
        return None, generated
    return dict(statuses), generated


def footer(
    latest_data_day: date | None,
    dsn: str | None,
    first_day: date,
    last_day: date,
    run_results: Path = DBT_RUN_RESULTS,
) -> TrustFooter:
    tests, generated = dbt_test_results(run_results)
    if generated:
        generated = datetime.fromisoformat(generated.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    return TrustFooter(latest_data_day, ingestion_rejects(dsn, first_day, last_day), tests, generated)
