"""The footer's evidence that the numbers can be trusted: how fresh, how much was refused on the way
in, whether dbt's tests passed. Each is "unknown" rather than absent when its source is missing."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg

from orchestration.defs.warehouse.dbt_environment import run_results_files

# A test that ran passed, failed, warned, errored or was skipped; ``dbt compile`` and ``dbt docs
# generate`` list every test they only compiled as "success", which must not hide a failure.
_COMPILED_ONLY = "success"


@dataclass(frozen=True)
class TrustFooter:
    latest_data_day: date | None
    ingestion_rejects: int | None
    dbt_tests: dict[str, int] | None  # status -> count, e.g. {"pass": 40, "fail": 1}
    # When the counted tests last ran: (oldest, newest) of their latest runs, as "YYYY-MM-DD HH:MM UTC".
    dbt_tests_ran: tuple[str, str] | None = None

    @property
    def dbt_summary(self) -> str | None:
        if self.dbt_tests is None:
            return None
        return ", ".join(f"{count} {status}" for status, count in sorted(self.dbt_tests.items())) or "0"

    @property
    def dbt_ok(self) -> bool | None:
        """False when a test's latest outcome failed, errored or was skipped: dbt skips a test when a
        model it checks failed to build, so its last word is not a pass but "not checked"."""
        if self.dbt_tests is None:
            return None
        return not any(self.dbt_tests.get(status) for status in ("fail", "error", "skipped"))

    def dbt_tests_ran_label(self, words: dict[str, str]) -> str | None:
        """When the tests counted last ran, worded from the oldest run: a KPI build runs only its mart's
        few tests, so the newest run alone would date a suite last run days ago as today's."""
        if self.dbt_tests_ran is None:
            return None
        oldest, newest = self.dbt_tests_ran
        if oldest == newest:
            return words["dbt_tests_ran_at"].format(at=oldest)
        return words["dbt_tests_ran_between"].format(oldest=oldest, newest=newest)


# Per file content (the ledger's identity of a file: table and checksum), its latest attempt that
# judged its rows before the window's end: loaded, recorded as a duplicate of a clean load, or
# failed with every row rejected; not a file that failed whole (rolled back, it kept no reject).
# Every load of a content that rejected rows writes them again (a re-run after a failure, the same
# export re-dropped under a new name, `ingest PATH` once an upstream file is fixed): counting every
# attempt's rejects counted one row once per attempt, and kept counting a row a later attempt loaded.
_LATEST_JUDGEMENTS = """
    SELECT DISTINCT ON (table_name, checksum) id
    FROM funnelhouse.ingest_files
    WHERE (status IN ('loaded', 'duplicate') OR rows_rejected > 0) AND started_at < %(end)s
    ORDER BY table_name, checksum, id DESC"""


def ingestion_rejects(dsn: str | None, first_day: date, last_day: date) -> int | None:
    """Rows refused by ingestion while the period's data came in (the period and the morning after),
    each row of a file's content once, as its content's latest attempt left it (by the window's end):
    a row rejected again by a re-run counts once, and a row a later attempt loaded (an unknown
    reference, loaded once its upstream file was fixed and the content dropped again) not at all."""
    if not dsn:
        return None
    window = {"start": first_day, "end": last_day + timedelta(days=2)}
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('funnelhouse.ingest_rejects')").fetchone()[0] is None:
            return None
        return conn.execute(
            f"""SELECT count(*) FROM funnelhouse.ingest_rejects r
                JOIN ({_LATEST_JUDGEMENTS}) latest ON latest.id = r.file_id
                WHERE r.rejected_at >= %(start)s AND r.rejected_at < %(end)s""",
            window,
        ).fetchone()[0]


def dbt_test_results(
    target: Path | None = None,
) -> tuple[dict[str, int] | None, tuple[str, str] | None]:
    """Status counts of every dbt test's latest outcome, and when the oldest and the newest of those
    outcomes were produced (dbt's ``generated_at``). The oldest is the one that says how fresh the
    counts are: every test counted has run since then, while the newest may be one KPI build's few.

    Each dbt command writes its own results: an hourly ``dbt run`` has no tests, a KPI partition's
    build only its mart's. A test's latest outcome wherever it ran, not one file's, is what the
    numbers in the report were last checked against. The results are read from this stack's (under
    its home, not another's of the same checkout): its Dagster dbt steps' folders and its archive of
    the CLI's (``run_results_files``: the newest, as many as are kept), or from the folders under
    ``target`` when given."""
    latest: dict[str, tuple[str, str]] = {}  # test id -> (generated_at, status)
    for path in run_results_files([target] if target else []):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        generated = document.get("metadata", {}).get("generated_at", "")
        for result in document.get("results", []):
            test_id, status = str(result.get("unique_id", "")), result.get("status", "unknown")
            if status == _COMPILED_ONLY:
                continue
            if test_id.startswith(("test.", "unit_test.")) and generated >= latest.get(test_id, ("", ""))[0]:
                latest[test_id] = (generated, status)
    if not latest:
        return None, None
    produced = [at for at, _ in latest.values()]
    return dict(Counter(status for _, status in latest.values())), (min(produced), max(produced))


def footer(
    latest_data_day: date | None,
    dsn: str | None,
    first_day: date,
    last_day: date,
    target: Path | None = None,
) -> TrustFooter:
    tests, ran = dbt_test_results(target)
    # A result without its time makes the oldest unknown: show no date rather than the newest.
    ran_label = (_minute_utc(ran[0]), _minute_utc(ran[1])) if ran and ran[0] else None
    return TrustFooter(latest_data_day, ingestion_rejects(dsn, first_day, last_day), tests, ran_label)


def _minute_utc(generated_at: str) -> str:
    """dbt's ``generated_at`` (ISO, UTC, "Z") as the footer shows it."""
    return datetime.fromisoformat(generated_at.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
