"""Replication freshness as asset checks of the raw tables, judged hourly by a job of their own with
the crm source's bounds from dbt's manifest; a table too far behind is alerted like any failed check.
Real ClickHouse (the replication state written as replication writes it), real Dagster runs on an
ephemeral instance, real aiosmtpd relay."""

import copy
import datetime as dt
import json

import dagster as dg
import pytest

from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.tables import RAW_TABLES
from orchestration.defs.warehouse import freshness_checks
from orchestration.defs.warehouse.dbt_environment import MANIFEST
from tests.reports.conftest import messages_to
from tests.warehouse.alerting import ONCALL, AlertSensors, CheckAlertSensor

needs_manifest = pytest.mark.skipif(
    not MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)
JOB = "warehouse_replication_freshness"
PASSED, WARN, ERROR = "passed", dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _record_cursors(raw_database: str, hours_behind: dict[str, float], utc_offset_hours: int = 0) -> None:
    """State rows as replication records them: each cursor PostgreSQL's wall clock in a zone
    ``utc_offset_hours`` off UTC, ``hours_behind`` now."""
    client = clickhouse_client()
    schema.create_database(client, raw_database)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for table, hours in hours_behind.items():
        local = now - dt.timedelta(hours=hours) + dt.timedelta(hours=utc_offset_hours)
        rows.append([table, local, local, 0, 0, utc_offset_hours * 3600])
    client.insert(
        f"{raw_database}.{schema.STATE_TABLE}",
        rows,
        column_names=[
            "table_name",
            "rows_cursor",
            "deletions_cursor",
            "rows_copied",
            "tombstones",
            "cursor_utc_offset_seconds",
        ],
    )


def _verdicts(evaluations) -> dict[str, object]:
    return {
        evaluation.asset_key.path[-1]: PASSED if evaluation.passed else evaluation.severity
        for evaluation in evaluations
    }


@needs_manifest
def test_the_bounds_are_the_crm_sources_and_every_raw_table_has_a_check():
    manifest = _manifest()
    sources = {node["name"]: node for node in manifest["sources"].values() if node["source_name"] == "crm"}
    rules = freshness_checks.freshness_rules(manifest)
    assert set(rules) == set(sources) == {table.name for table in RAW_TABLES}
    for table, rule in rules.items():
        freshness = sources[table]["freshness"]
        assert rule.warn_after_hours == freshness["warn_after"]["count"]  # declared in hours
        assert rule.error_after_hours == freshness["error_after"]["count"]
        assert freshness["warn_after"]["period"] == freshness["error_after"]["period"] == "hour"

    [check] = freshness_checks.replication_freshness_checks
    assert {key.asset_key for key in check.check_keys} == {dg.AssetKey(["raw", t.name]) for t in RAW_TABLES}
    assert {key.name for key in check.check_keys} == {"replication_fresh"}
    assert not any(spec.blocking for spec in check.check_specs)


@needs_manifest
def test_only_their_own_job_runs_them_hourly_on_utc_clear_of_the_other_hourly_runs():
    from orchestration.definitions import defs

    def checks_of(job_name: str) -> set[dg.AssetCheckKey]:
        return set(defs.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys)

    freshness = set(freshness_checks.replication_freshness_checks[0].check_keys)
    assert checks_of(JOB) == freshness
    assert not defs.resolve_job_def(JOB).asset_layer.executable_asset_keys  # materialises nothing
    for job in ("warehouse_hourly_refresh", "warehouse_nightly_full_build"):
        assert not checks_of(job) & freshness, job  # never judged (and alerted) twice

    schedules = {schedule.name: schedule for schedule in defs.get_repository_def().schedule_defs}
    schedule = schedules["warehouse_replication_freshness_schedule"]
    assert schedule.job_name == JOB and schedule.execution_timezone == "UTC"
    minute, *every_hour = schedule.cron_schedule.split()
    assert every_hour == ["*", "*", "*", "*"]
    others = {
        schedules[name].cron_schedule.split()[0]
        for name in ("warehouse_hourly_refresh_schedule", "warehouse_kpi_daily_schedule")
    }
    assert others == {"15", "45"} and minute not in others


@needs_manifest
def test_stale_and_never_replicated_tables_fail_and_an_error_is_alerted(clickhouse_env, relay):
    from orchestration.definitions import defs

    switch, outbox = relay
    switch("up")
    fresh = {
        table.name: 1.0 for table in RAW_TABLES if table.name not in ("conversations", "employees", "tags")
    }
    _record_cursors(clickhouse_env, {**fresh, "conversations": 5, "employees": 80})  # tags: never
    # PostgreSQL five hours behind UTC: 2 h behind in UTC is fresh (7 h on its wall clock is not).
    _record_cursors(clickhouse_env, {"deposits": 2}, utc_offset_hours=-5)

    location = AlertSensors()
    alerts = CheckAlertSensor(location)
    result = defs.resolve_job_def(JOB).execute_in_process(instance=location.instance)

    assert result.success  # not blocking: the run succeeds, its checks failed
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert _verdicts(evaluations.values()) == {
        **{table: PASSED for table in fresh},
        "conversations": WARN,
        "employees": ERROR,
        "tags": ERROR,
    }
    conversations = evaluations["conversations"].metadata
    assert 5 <= conversations["age_hours"].value < 6
    assert (conversations["warn_after_hours"].value, conversations["error_after_hours"].value) == (3, 12)
    assert 2 <= evaluations["deposits"].metadata["age_hours"].value < 3
    assert evaluations["tags"].metadata["age_hours"].value is None

    # the run succeeded with failed ERROR checks: mailed, the WARN left to the UI
    assert alerts.tick() == "1 of 1 successful run(s) with failed asset checks"
    [mail] = messages_to(outbox, ONCALL)
    # (folded: longer than a header line; the relay's copy keeps the fold's space)
    assert mail["Subject"].strip() == f"[funnelhouse] {JOB} checks failed (run {result.run_id[:8]})"
    body = mail.get_content()
    assert "- raw/employees: replication_fresh" in body and "- raw/tags: replication_fresh" in body
    assert "conversations" not in body


def test_a_raw_database_never_replicated_fails_every_table(clickhouse_env):
    rules = {"customers": freshness_checks.FreshnessRule("customers", "select 1", 24, 72)}
    assert freshness_checks.replicated_through(clickhouse_client(), clickhouse_env, rules) == {}
    now = dt.datetime.now(dt.UTC)
    result = freshness_checks.judge("customers", rules["customers"], None, now)
    assert (result.passed, result.severity) == (False, ERROR)


@needs_manifest
def test_the_bounds_follow_the_manifest(clickhouse_env):
    """Other bounds in _crm__sources.yml are other verdicts: the source's, read as dbt parsed them."""
    manifest = copy.deepcopy(_manifest())
    for node in manifest["sources"].values():
        if node["name"] == "customers":
            node["freshness"] = {"warn_after": {"count": 2, "period": "day"}, "error_after": None}
        if node["name"] == "deposits":
            node["freshness"] = {
                "warn_after": {"count": 30, "period": "minute"},
                "error_after": {"count": 1, "period": "hour"},
            }
    rules = freshness_checks.freshness_rules(manifest)
    assert (rules["customers"].warn_after_hours, rules["customers"].error_after_hours) == (48, None)
    assert (rules["deposits"].warn_after_hours, rules["deposits"].error_after_hours) == (0.5, 1)

    _record_cursors(clickhouse_env, {"customers": 80, "deposits": 2, "employees": 5})
    through = freshness_checks.replicated_through(clickhouse_client(), clickhouse_env, rules)
    assert set(through) == {"customers", "deposits", "employees"}
    now = dt.datetime.now(dt.UTC)
    verdicts = _verdicts(
        freshness_checks.judge(table, rules[table], through[table], now) for table in through
    )
    assert verdicts == {"customers": WARN, "deposits": ERROR, "employees": WARN}  # no error_after: WARN
