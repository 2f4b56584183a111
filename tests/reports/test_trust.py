"""The footer's dbt line: every test's latest outcome across the results dbt and Dagster's dbt runs
leave (the hourly run has no tests, a KPI partition build only its mart's)."""

from __future__ import annotations

import json
import os
from datetime import date

import psycopg

from ingestion.load.pipeline import ingest_locations
from ingestion.reports import i18n, render, trust
from tests.ingestion import landing_rows as rows
from tests.reports.test_funnel_chart import report_content


def _results(path, generated_at: str, results: list[tuple[str, str]], mtime: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "metadata": {"generated_at": generated_at},
                "results": [{"unique_id": unique_id, "status": status} for unique_id, status in results],
            }
        )
    )
    os.utime(path, (mtime, mtime))


def test_each_test_counts_with_its_latest_outcome_wherever_it_ran(tmp_path):
    nightly = [
        ("test.funnelhouse.unique_a", "pass"),
        ("test.funnelhouse.kpi_range", "fail"),
        ("model.x", "success"),
    ]
    _results(
        tmp_path / "warehouse_dbt_models-run1-abc" / "run_results.json", "2026-11-27T02:31:00Z", nightly, 100
    )
    kpi = [("model.funnelhouse.mart_kpi_employee_daily", "success"), ("test.funnelhouse.kpi_range", "pass")]
    _results(
        tmp_path / "warehouse_dbt_kpi_daily-run2-def" / "run_results.json", "2026-11-27T03:45:00Z", kpi, 200
    )
    _results(
        tmp_path / "run_results.json", "2026-11-27T04:15:00Z", [("model.x", "success")], 300
    )  # hourly run

    # unique_a last ran in the nightly build, kpi_range in the KPI build after it.
    assert trust.dbt_test_results(tmp_path) == ({"pass": 2}, ("2026-11-27T02:31:00Z", "2026-11-27T03:45:00Z"))

    _results(
        tmp_path / "run3" / "run_results.json",
        "2026-11-28T02:31:00Z",
        [("test.funnelhouse.unique_a", "error")],
        400,
    )
    tests, _ = trust.dbt_test_results(tmp_path)
    assert tests == {"pass": 1, "error": 1}
    assert trust.TrustFooter(None, 0, tests).dbt_ok is False


def test_tests_skipped_after_a_model_failed_are_not_ok(tmp_path):
    """The nightly build: a model errors, dbt skips its tests. The footer must not show them as fine."""
    _results(
        tmp_path / "run1" / "run_results.json",
        "2026-11-27T02:31:00Z",
        [("test.funnelhouse.unique_a", "pass"), ("test.funnelhouse.kpi_range", "pass")],
        100,
    )
    _results(
        tmp_path / "run2" / "run_results.json",
        "2026-11-28T02:31:00Z",
        [("model.funnelhouse.mart_kpi_employee_daily", "error"), ("test.funnelhouse.kpi_range", "skipped")],
        200,
    )
    tests, _ = trust.dbt_test_results(tmp_path)
    assert tests == {"pass": 1, "skipped": 1}
    assert trust.TrustFooter(None, 0, tests).dbt_ok is False


def test_no_results_mean_unknown_not_passed(tmp_path):
    assert trust.dbt_test_results(tmp_path) == (None, None)
    _results(tmp_path / "run_results.json", "2026-11-27T04:15:00Z", [("model.x", "success")], 300)
    assert trust.dbt_test_results(tmp_path) == (None, None)
    assert trust.TrustFooter(None, 0, None).dbt_ok is None


def test_compiling_the_tests_does_not_hide_a_failure(tmp_path):
    """An analyst's ``dbt compile`` or ``dbt docs generate`` lists every test as "success" without running it."""
    _results(
        tmp_path / "run1" / "run_results.json",
        "2026-11-27T02:31:00Z",
        [("test.funnelhouse.kpi_range", "fail")],
        100,
    )
    _results(
        tmp_path / "run_results.json",
        "2026-11-27T09:00:00Z",
        [("test.funnelhouse.kpi_range", "success")],
        200,
    )
    tests, ran = trust.dbt_test_results(tmp_path)
    assert tests == {"fail": 1} and ran == ("2026-11-27T02:31:00Z", "2026-11-27T02:31:00Z")
    assert trust.TrustFooter(None, 0, tests).dbt_ok is False


def test_by_default_only_the_stacks_own_results_count(tmp_path, monkeypatch):
    """Without ``target``: this stack's Dagster dbt steps' folders and archive of the CLI's, under its
    home; not the dbt target every stack of the checkout shares, nor another stack's home."""
    from orchestration.defs.warehouse import dbt_environment

    home, target = tmp_path / "home", tmp_path / "target"
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(home))
    monkeypatch.setenv("DBT_TARGET_PATH", str(target))
    step = [("test.funnelhouse.unique_a", "pass")]
    _results(
        home / dbt_environment.DAGSTER_DBT_RUNS / "warehouse_dbt_models-9f0e1d2-aaaaaaa" / "run_results.json",
        "2026-11-27T02:31:00Z",
        step,
        100,
    )
    cli = [("test.funnelhouse.kpi_range", "pass")]
    _results(
        home / dbt_environment.RUN_RESULTS_ARCHIVE / "20261127T030000000000Z-1c0a" / "run_results.json",
        "2026-11-27T03:00:00Z",
        cli,
        200,
    )
    another_stacks = [("test.funnelhouse.unique_a", "fail"), ("test.funnelhouse.other", "fail")]
    _results(
        target / "warehouse_dbt_models-1a2b3c4-bbbbbbb" / "run_results.json",
        "2026-11-27T04:00:00Z",
        another_stacks,
        300,
    )

    assert trust.dbt_test_results() == ({"pass": 2}, ("2026-11-27T02:31:00Z", "2026-11-27T03:00:00Z"))
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "other-home"))
    assert trust.dbt_test_results() == (None, None)


def test_a_kpi_builds_fresh_tests_do_not_date_the_suite_as_fresh(tmp_path):
    """Issue 7: 280 tests passed 8 days ago and a KPI build ran its 2 today. The footer said
    ``282 pass (2026-12-01 06:45 UTC)``; it must say that some of them last ran 8 days ago."""
    suite = [(f"test.funnelhouse.t{number}", "pass") for number in range(280)]
    _results(tmp_path / "run1" / "run_results.json", "2026-11-23T06:45:00Z", suite, 100)
    kpi = [("test.funnelhouse.kpi_a", "pass"), ("test.funnelhouse.kpi_b", "pass")]
    _results(tmp_path / "warehouse_dbt_kpi_daily-run2" / "run_results.json", "2026-12-01T06:45:00Z", kpi, 200)

    footer = trust.footer(None, None, date(2026, 11, 30), date(2026, 11, 30), target=tmp_path)
    assert footer.dbt_summary == "282 pass"
    assert footer.dbt_tests_ran == ("2026-11-23 06:45 UTC", "2026-12-01 06:45 UTC")
    assert footer.dbt_tests_ran_label(i18n.texts("en")) == (
        "every test last ran between 2026-11-23 06:45 UTC and 2026-12-01 06:45 UTC"
    )

    for language in ("zh", "en"):
        label = footer.dbt_tests_ran_label(i18n.texts(language))
        assert label.index("2026-11-23 06:45 UTC") < label.index("2026-12-01 06:45 UTC"), language
        rendered = render.render(report_content(footer), language, with_pdf=False)
        assert f"282 pass ({label})" in rendered.text, language
        assert f"282 pass ({label})" in rendered.html, language


def test_tests_that_all_ran_together_show_one_time():
    footer = trust.TrustFooter(None, 0, {"pass": 3}, ("2026-11-27 02:31 UTC", "2026-11-27 02:31 UTC"))
    assert footer.dbt_tests_ran_label(i18n.texts("en")) == "last run 2026-11-27 02:31 UTC"
    assert trust.TrustFooter(None, 0, None).dbt_tests_ran_label(i18n.texts("en")) is None


def test_rejected_rows_count_once_and_not_once_loaded(pg_dsn, tmp_path):
    """The footer's "入库拒绝行数（本期）": a file whose load rejected rows is loaded again on every re-run
    (a retry, `ingest PATH`, the same export under a new name) and its rejects are written again;
    each rejected row counts once, and a row a later attempt loaded (its reference fixed) not at all."""
    with psycopg.connect(pg_dsn) as conn:
        today = conn.execute("SELECT current_date").fetchone()[0]

    def rejects() -> int:
        return trust.ingestion_rejects(pg_dsn, today, today)

    def ingest(*paths) -> None:
        ingest_locations(pg_dsn, [str(path) for path in paths])

    employees = rows.write(tmp_path, "employees", "b1", [rows.employee(1), rows.employee(2, role="intern")])
    unknown_manager = rows.customer(2, assigned_employee_code="EMP_003")
    customers = rows.write(tmp_path, "customers", "b1", [rows.customer(1), unknown_manager])
    ingest(employees, customers)
    assert rejects() == 2

    ingest(employees, customers)  # re-run: both files load again and reject the same rows again
    (tmp_path / "copy").mkdir()
    copy = tmp_path / "copy" / "employees__b2.csv"
    copy.write_bytes(employees.read_bytes())  # the same content under a new name
    ingest(copy)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM funnelhouse.ingest_rejects").fetchone() == (5,)
    assert rejects() == 2

    # EMP_003 arrives; the customers content dropped again loads its rejected row.
    ingest(rows.write(tmp_path, "employees", "b3", [rows.employee(3)]))
    ingest(customers)
    assert rejects() == 1  # employees row 2 only: the customer is loaded now
