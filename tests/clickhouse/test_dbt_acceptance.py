"""dbt-clickhouse against the local server: the whole lifecycle, with row contents checked.

The project in ``dbt_acceptance/`` is copied to a temporary directory (dbt writes target/ and logs/
next to it). ``batch`` 1 is the first load; ``batch`` 2 adds orders, amends order 2 and moves customer 1
to France, so incremental models, snapshots and the full refresh all have real work to check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clickhouse.conftest import connect

PROJECT = Path(__file__).parent / "dbt_acceptance"
DBT = Path(sys.executable).with_name("dbt")
SCHEMA = "dbt_acceptance"
BATCH_2 = "--vars={batch: 2}"


@pytest.fixture(scope="module")
def dbt(clickhouse_server, tmp_path_factory):
    project = tmp_path_factory.mktemp("dbt") / "project"
    shutil.copytree(PROJECT, project)
    env = {
        # Not the dbt settings of the environment (DBT_TARGET ...): they are the warehouse project's,
        # and this project's profile has targets of its own.
        **{name: value for name, value in os.environ.items() if not name.startswith("DBT_")},
        "CH_HOST": clickhouse_server["host"],
        "CH_PORT": str(clickhouse_server["port"]),
        "CH_USER": clickhouse_server["user"],
        "CH_PASSWORD": clickhouse_server["password"],
        "CH_SCHEMA": SCHEMA,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # Its own artifacts: `make test` exports the project's dbt_project/target, whose manifest
        # Dagster loads and whose run_results the reports read; this project must not replace them.
        "DBT_TARGET_PATH": str(project / "target"),
        "DBT_LOG_PATH": str(project / "logs"),
    }

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(DBT), *args, "--profiles-dir", str(project), "--project-dir", str(project)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"dbt {' '.join(args)} failed:\n{result.stdout[-4000:]}"
        return result.stdout

    run.project = project
    return run


@pytest.fixture(scope="module")
def rows(clickhouse_server):
    """The rows a query returns on the test server."""
    client = connect(clickhouse_server)

    def result_rows(sql: str) -> list[tuple]:
        return client.query(sql).result_rows

    yield result_rows
    client.close()


def test_dbt_lifecycle(dbt, rows):
    assert "All checks passed" in dbt("debug")
    dbt("seed")
    dbt("run")
    dbt("snapshot")
    assert rows(f"SELECT count(), sum(amount) FROM {SCHEMA}.orders_append") == [(6, 210)]
    assert rows(f"SELECT count() FROM {SCHEMA}.customers_snapshot") == [(3,)]
    assert rows(
        f"SELECT engine FROM system.tables WHERE database = '{SCHEMA}' AND name = 'stg_customers'"
    ) == [("View",)]

    dbt("run", BATCH_2)
    dbt("snapshot", BATCH_2)
    # append: batch 2's four rows added (the amended order appears twice)
    assert rows(f"SELECT count(), sum(amount) FROM {SCHEMA}.orders_append") == [(10, 475)]
    # delete+insert: order 2 replaced by its amendment, orders 7-9 added
    assert rows(f"SELECT order_id, amount FROM {SCHEMA}.orders_current ORDER BY order_id") == [
        (1, 10),
        (2, 25),
        (3, 30),
        (4, 40),
        (5, 50),
        (6, 60),
        (7, 70),
        (8, 80),
        (9, 90),
    ]
    # insert_overwrite: only the days touched by batch 2 were recomputed, and recomputed whole
    assert rows(f"SELECT toString(order_date), revenue, orders FROM {SCHEMA}.daily_revenue ORDER BY 1") == [
        ("2024-01-01", 35, 2),
        ("2024-01-02", 70, 2),
        ("2024-01-03", 180, 3),
        ("2024-01-04", 170, 2),
    ]
    assert rows(
        f"SELECT name, country, orders, total FROM {SCHEMA}.customer_orders ORDER BY customer_id"
    ) == [("Ada", "FR", 3, 105), ("Grace", "US", 3, 150), ('Katherine "Kay"', "US", 3, 200)]
    assert rows(
        f"SELECT customer_id, country, dbt_valid_to IS NULL FROM {SCHEMA}.customers_snapshot ORDER BY 1, 3"
    ) == [(1, "GB", False), (1, "FR", True), (2, "US", True), (3, "US", True)]

    tested = dbt("test", BATCH_2)
    assert "PASS=7" in tested  # six data tests and the unit test
    dbt("docs", "generate")
    assert (dbt.project / "target" / "manifest.json").exists()  # its own, not the warehouse's target
    dbt("run", "--full-refresh", BATCH_2)
    assert rows(f"SELECT count(), sum(amount) FROM {SCHEMA}.orders_append") == [(10, 475)]
    assert rows(f"SELECT sum(revenue) FROM {SCHEMA}.daily_revenue") == [(455,)]
