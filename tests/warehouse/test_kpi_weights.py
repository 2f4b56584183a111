"""The KPI mart's overall_score follows the CRM's own weights (system_settings kpi.overall_score_weights),
falls back to its documented formula (with a warning from the run itself) when they are malformed, and an
incremental or a partition run rescores the months it would not recompute otherwise. The weights go the
real way: replication copies this setting's value (ingestion/replication/tables.py WAREHOUSE_SETTING_KEYS)
and no other, the staging view exposes it, the mart reads it (macros/kpi_score_weights.sql)."""

from __future__ import annotations

import json

import psycopg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from ingestion.replication.tables import WAREHOUSE_SETTING_KEYS
from orchestration.defs.warehouse.build import dbt_env, marts_schema, run_dbt
from tests.fixtures.clock import CLICKHOUSE_TODAY
from tests.warehouse.test_pii import _hits, _string_columns

KEY = "kpi.overall_score_weights"
COUNTS = (
    "tofu_contacts",
    "tofu_retained",
    "mofu_quality_conversations",
    "mofu_counter_question_count",
    "mofu_accounts_opened",
    "bofu_deposits_count",
)
# The setting's keys for COUNTS, in order (the CRM's names), and the net deposit's.
SETTING_KEYS = (
    "tofu_contacts",
    "tofu_retained",
    "mofu_quality_conversations",
    "mofu_反问_count",
    "mofu_accounts_opened",
    "bofu_deposits_count",
)
NET_KEY = "bofu_net_deposit_per_1000_usd"
WEIGHTS = {**dict(zip(SETTING_KEYS, (1, 2, 30, 4, 5, 6), strict=True)), NET_KEY: 8}
# The days no incremental run recomputes unless something sends it there (the lookback is 35 days).
OLD_DAYS = f"kpi_date < {CLICKHOUSE_TODAY} - 40"


@pytest.fixture
def weights_replicated(built_warehouse, pg_dsn):
    """``set_weights(text, partition_day=None)``: writes the setting in PostgreSQL (None deletes it),
    replicates, and runs the mart incrementally, or as Dagster's partition run of `partition_day` (the
    only runs Dagster makes of it but the nightly full refresh); returns dbt's output."""

    def set_weights(text: str | None, partition_day: str | None = None) -> list[str]:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("delete from system_settings where key = %s", (KEY,))
            if text is not None:
                conn.execute(
                    "insert into system_settings (key, value, value_type, category) values (%s, %s, 'json', 'kpi')",
                    (KEY, text),
                )
        # only system_settings changed since the warehouse was built (the setting and the _draft key)
        replicate_tables(pg_dsn, ["system_settings"])
        output: list[str] = []
        env = (
            dbt_env() if partition_day is None else {**dbt_env(), "FUNNELHOUSE_KPI_START_DATE": partition_day}
        )
        code = run_dbt(["run", "--select", "mart_kpi_employee_daily"], log=output.append, env=env)
        assert code == 0, "\n".join(output[-40:])
        return output

    return set_weights


def _scores(where: str = "1 = 1") -> dict[tuple, tuple]:
    """(employee_id, kpi_date) -> (overall_score, *COUNTS, net deposit) of the built mart."""
    rows = (
        clickhouse_client()
        .query(
            f"select employee_id, kpi_date, overall_score, {', '.join(COUNTS)}, toFloat64(bofu_net_deposit)"
            f" from `{marts_schema()}`.mart_kpi_employee_daily where {where}"
        )
        .result_rows
    )
    return {(row[0], row[1]): tuple(row[2:]) for row in rows}


def _only_scores(scores: dict[tuple, tuple]) -> dict[tuple, float]:
    return {day: values[0] for day, values in scores.items()}


def _crm_score(counts: tuple, net: float, weights: dict) -> float:
    """ingestion/generate/rules.py overall_score with these weights: points per unit, capped at 100."""
    total = sum(weights[key] * count for key, count in zip(SETTING_KEYS, counts, strict=True))
    return min(100.0, total + weights[NET_KEY] * max(net, 0.0) / 1000)


def _other_settings_values(pg_dsn: str) -> set[str]:
    """The values of every setting replication must keep in PostgreSQL (fixture_crm.sql's SMTP password)."""
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "select value from system_settings where value is not null and key <> all(%s)",
            (list(WAREHOUSE_SETTING_KEYS),),
        )
        return {value for (value,) in rows}


def _assert_no_other_setting_value_in_clickhouse(pg_dsn: str, raw_database: str) -> None:
    """No other setting's value is in any string column of raw or of the dbt schemas (staging, core,
    marts...), and the raw table's value column holds this key's value only."""
    client = clickhouse_client()
    with_values = client.query(
        f"select key from `{raw_database}`.system_settings final where warehouse_value is not null"
    )
    assert with_values.result_rows == [(KEY,)]
    secrets = _other_settings_values(pg_dsn)
    assert "hunter2-secret" in secrets  # the scan looks for something
    databases = [raw_database] + [
        name
        for (name,) in client.query(
            "select name from system.databases where startsWith(name, {prefix:String})",
            parameters={"prefix": marts_schema().removesuffix("marts")},
        ).result_rows
    ]
    assert len(databases) >= 4, databases
    for database, table, column in _string_columns(client, databases):
        assert _hits(client, f"`{database}`.`{table}`", f"`{column}`", secrets) == 0, (
            f"{database}.{table}.{column}"
        )


def test_scores_follow_the_crms_weights_on_every_day(weights_replicated, clickhouse_env, pg_dsn):
    default = _scores()
    # A key that only starts like the weights' is another setting: its value stays in PostgreSQL.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into system_settings (key, value, value_type, category) values (%s, %s, 'json', 'kpi')",
            (f"{KEY}_draft", '{"token": "draft-secret-7"}'),
        )
    # Dagster's run of the mart: a partition run of the last day, which rescores every month too.
    last_day = max(day for _employee, day in default)
    weights_replicated(json.dumps(WEIGHTS, ensure_ascii=False), partition_day=last_day.isoformat())
    _assert_no_other_setting_value_in_clickhouse(pg_dsn, clickhouse_env)

    weighted = _scores()
    assert weighted.keys() == default.keys()
    for day, (score, *counts, net) in weighted.items():
        assert score == pytest.approx(_crm_score(tuple(counts), net, WEIGHTS), abs=0.005), day
    # The old days were rescored too (a partition run recomputes its month and the first and last ones
    # otherwise): some of them score differently from the default formula.
    old = _scores(OLD_DAYS)
    assert any(score != default[day][0] for day, (score, *_rest) in old.items() if score > 0), old


def test_changed_weights_reach_the_old_days_and_a_malformed_setting_falls_back_with_a_warning(
    weights_replicated,
):
    default = _scores()
    weights_replicated(json.dumps(WEIGHTS, ensure_ascii=False))
    doubled = {key: 2 * weight for key, weight in WEIGHTS.items()}
    weights_replicated(json.dumps(doubled, ensure_ascii=False))
    for day, (score, *counts, net) in _scores(OLD_DAYS).items():
        assert score == pytest.approx(_crm_score(tuple(counts), net, doubled), abs=0.005), day

    # Malformed in each way the rule names (not JSON, a weight not a number, below 0, a key missing, a
    # key given twice: ClickHouse would read the first value, the CRM the last; an array fails the same
    # object check as text): the mart's own formula again, on every day; the run itself warns, naming the
    # setting and what is wrong (`funnelhouse build` runs no tests), and so does the warning test (run
    # once: it reads the same weights query as the mart).
    duplicated = json.dumps(WEIGHTS, ensure_ascii=False)[:-1] + ', "tofu_contacts": 99}'
    assert json.loads(duplicated)["tofu_contacts"] == 99  # the CRM's reading: the last value
    for malformed, problem in (
        ("{not json", "not valid JSON"),
        (json.dumps({**WEIGHTS, "tofu_contacts": "4"}), "key tofu_contacts is not a number"),
        (json.dumps({**WEIGHTS, "tofu_contacts": -1}), "key tofu_contacts is not a finite number >= 0"),
        (
            json.dumps({key: weight for key, weight in WEIGHTS.items() if key != NET_KEY}),
            f"key {NET_KEY} is missing",
        ),
        (duplicated, "key tofu_contacts is given 2 times"),
    ):
        output = "\n".join(weights_replicated(malformed))
        assert _only_scores(_scores()) == _only_scores(default), malformed
        warning = f"System setting {KEY} is invalid ({problem})"
        assert output.count(warning) == 1, output[-3000:]
    assert _warning_test_output(expected="WARN=1")

    # No setting at all: the default formula, and no warning.
    output = "\n".join(weights_replicated(None))
    assert _only_scores(_scores()) == _only_scores(default)
    assert "is invalid" not in output, output[-3000:]
    assert _warning_test_output(expected="PASS=1")


def _warning_test_output(expected: str) -> str:
    """Runs the warning test kpi_score_weights_setting_is_valid; asserts dbt succeeded with `expected`."""
    output: list[str] = []
    code = run_dbt(["test", "--select", "test_name:kpi_score_weights_setting_is_valid"], log=output.append)
    log = "\n".join(output)
    assert code == 0 and expected in log and "ERROR=0" in log, log[-3000:]
    return log
