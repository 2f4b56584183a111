"""The two seed-view marts equal the seed's PostgreSQL views on the same data, metric by metric."""

import psycopg

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from orchestration.defs.warehouse.changed_since_build import (
    IDS_PER_QUERY,
    ChangedSinceBuild,
    changed_since_build,
    marts_built_from,
)
from orchestration.defs.warehouse.reconciliation import reconcile_customers, reconcile_employees
from tests.fixtures.warehouse import load_fixture


def _replicate_and_build(pg_dsn: str, raw_database: str, tables=None, select=None) -> None:
    """Replicate ``tables`` (default: all) and build the models ``select`` names (default: all, with the
    seeds they read: ``dbt run`` loads none), without tests, leaving the refresh mark a build would."""
    replicate_tables(pg_dsn, tables)
    started_at, output = utc_now(), []
    selection = ["--select", *select] if select else []
    models_and_seeds = ["--resource-type", "seed", "--resource-type", "model"]
    assert run_dbt(["build", *selection, *models_and_seeds], log=output.append) == 0, "\n".join(output[-40:])
    refresh_state.record_refresh(clickhouse_client(), raw_database, marts_schema(), started_at)


def _reconcile(pg_dsn: str, raw_database: str):
    """(the customer mart's reconciliation, the employee mart's) of the test's own warehouse."""
    client = clickhouse_client()
    return (
        reconcile_customers(pg_dsn, client, marts_schema(), raw_database),
        reconcile_employees(pg_dsn, client, marts_schema(), raw_database),
    )


def test_customer_overview_reconciles_with_the_seed_view(warehouse):
    report = reconcile_customers(
        warehouse.pg_dsn, warehouse.client(), warehouse.schema("marts"), warehouse.raw_database
    )
    assert report.passed, report.summary()
    assert report.keys_in_view == 4
    # CUST_003 has two funnel_tofu rows: the view repeats it, the mart keeps the latest contact.
    assert report.repeated_in_view == [3]
    assert report.changed_since_build == []
    assert report.summary()["built_from"]["cursors"].keys() == {
        "customers",
        "employees",
        "funnel_tofu",
        "funnel_mofu",
        "funnel_bofu",
    }


def test_without_replication_cursors_everything_is_compared(warehouse):
    report = reconcile_customers(
        warehouse.pg_dsn, warehouse.client(), warehouse.schema("marts"), "never_replicated"
    )
    assert report.passed, report.summary()
    assert report.keys_in_view == 4
    assert report.summary()["built_from"] == "never replicated: nothing left out"


def test_employee_performance_reconciles_with_the_seed_view(warehouse):
    report = reconcile_employees(
        warehouse.pg_dsn, warehouse.client(), warehouse.schema("marts"), warehouse.raw_database
    )
    assert report.passed, report.summary()
    assert report.keys_in_view == 3
    assert report.metrics_compared == 3 * 12


def test_a_customer_with_a_later_unopened_funnel_row_still_counts_as_opened(
    built_warehouse, pg_dsn, clickhouse_env
):
    """The seed view counts a customer whose ANY funnel_mofu row opened an account (COUNT DISTINCT over
    the joined rows): a newer row of the same customer without an account (re-contact) changes neither
    that count nor first deposits, and the mart must agree, not only look at its chosen row."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into funnel_mofu (source_key, customer_id, employee_id, account_opened, created_at)"
            " values ('M1_again', 1, 2, false, now())"
        )
        conn.execute(
            "insert into funnel_bofu (source_key, customer_id, employee_id, created_at) values ('B1_again', 1, 2, now())"
        )
    _replicate_and_build(pg_dsn, clickhouse_env, select=["int_customers__latest_funnel+"])
    report = reconcile_employees(pg_dsn, clickhouse_client(), marts_schema(), clickhouse_env)
    assert report.passed, report.summary()
    assert report.changed_since_build == []
    assert 2 in report.differing_by_design  # Alice's customer now has two funnel rows of each kind


def test_what_the_crm_changed_since_the_build_is_left_out_and_reported(
    built_warehouse, pg_dsn, clickhouse_env
):
    """The views are read live, the marts hold what replication copied: a customer whose row changed
    (2), whose funnel row changed (3) and one deleted (4) after the build are left out of the
    comparison and the key counts, with their employees (2 and 3), and reported; the rest is still
    compared exactly, also once replication copied the changes but no build has taken them up yet.
    Every employee logging in since (their row written, nothing the views show changed) leaves Mona and
    customer 1 (Alice's) compared."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update employees set last_login_at = now(), updated_at = now()")
        conn.execute("update customers set tier = 'S' where id = 2")
        conn.execute(
            "update funnel_bofu set net_deposit = 4000, total_withdrawals = 1000 where source_key = 'B3'"
        )
        conn.execute("delete from customers where id = 4")
    client = clickhouse_client()

    for replicated_since_the_build in (False, True):
        if replicated_since_the_build:
            replicate_tables(pg_dsn, ["customers", "funnel_bofu"])
        customers, employees = _reconcile(pg_dsn, clickhouse_env)
        assert customers.passed, customers.summary()
        assert customers.changed_since_build == [2, 3, 4]
        assert customers.summary()["first_keys_changed_since_build"] == [2, 3, 4]
        assert customers.keys_in_view == customers.keys_in_mart == 1  # customer 1, compared column by column
        assert customers.metrics_compared == 20
        assert employees.passed, employees.summary()
        assert employees.changed_since_build == [2, 3]
        assert employees.keys_in_view == employees.keys_in_mart == 1  # Mona, without customers
        assert employees.metrics_compared == 12

    client.command(
        f"alter table `{marts_schema()}`.mart_customer_overview update intention_score = 99 where customer_id = 1",
        settings={"mutations_sync": 2},
    )
    customers, _ = _reconcile(pg_dsn, clickhouse_env)
    assert not customers.passed
    assert [(mismatch["key"], mismatch["column"]) for mismatch in customers.mismatches] == [
        (1, "intention_score")
    ]


def test_a_deleted_funnel_row_and_a_reassigned_customer_are_left_out_with_every_employee_they_counted_for(
    built_warehouse, pg_dsn, clickhouse_env
):
    """A funnel row deleted since the build is gone from PostgreSQL: only the raw copy still names its
    customer (1, Alice's). A customer reassigned since the build (3, from Bob to Mona) counts in the
    employee mart for Bob as built and in the view for Mona now: both are left out."""
    client = clickhouse_client()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("delete from funnel_bofu where source_key = 'B1'")
    customers, employees = _reconcile(pg_dsn, clickhouse_env)
    assert customers.passed, customers.summary()
    assert customers.changed_since_build == [1]
    assert customers.keys_in_view == customers.keys_in_mart == 3
    assert employees.passed, employees.summary()
    assert employees.changed_since_build == [2]
    assert employees.keys_in_view == employees.keys_in_mart == 2  # Mona and Bob, compared exactly
    assert employees.metrics_compared == 2 * 12

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update customers set assigned_employee_id = 1 where id = 3")
    customers, employees = _reconcile(pg_dsn, clickhouse_env)
    assert customers.passed, customers.summary()
    assert customers.changed_since_build == [1, 3]
    assert customers.keys_in_view == customers.keys_in_mart == 2
    assert employees.passed, employees.summary()
    assert employees.changed_since_build == [1, 2, 3]
    assert employees.keys_in_view == employees.keys_in_mart == 0

    # Replication copies both changes before the next build, and ClickHouse merges the raw versions
    # (in the background, whenever it likes): the version as built is gone from raw, yet still in the marts.
    replicate_tables(pg_dsn, ["customers", "funnel_bofu"])
    for table in ("customers", "funnel_bofu"):
        client.command(f"optimize table `{clickhouse_env}`.`{table}` final")
    customers, employees = _reconcile(pg_dsn, clickhouse_env)
    assert customers.passed, customers.summary()
    assert customers.changed_since_build == [1, 3]
    assert employees.passed, employees.summary()
    assert employees.changed_since_build == [1, 2, 3]


def test_many_changed_rows_are_looked_up_in_clickhouse_a_bounded_number_of_ids_at_a_time(warehouse):
    """A bulk change (an import, a mass reassignment) changes tens of thousands of rows since the build.
    Their ids travel to ClickHouse as a query parameter, a form field a ClickHouse server bounds
    (``http_max_field_value_size``, 128 KiB; the local test server does not), so they go a batch at a
    time, the raw copy still asked for each (customer 2's deleted funnel row is only there)."""
    client, marts = warehouse.client(), warehouse.schema("marts")
    built = marts_built_from(client, warehouse.raw_database, marts)
    # Never committed: the session's warehouse stays as built (an error rolls back on leaving too).
    with psycopg.connect(warehouse.pg_dsn) as conn:
        conn.execute("delete from funnel_mofu where source_key = 'M2'")
        conn.execute(
            "insert into funnel_mofu (source_key, customer_id, employee_id)"
            " select 'bulk_' || n, 1, 2 from generate_series(1, %s) n",
            (4 * IDS_PER_QUERY,),
        )
        changed = changed_since_build(conn, client, warehouse.raw_database, marts, built)
        conn.rollback()
    assert changed.customers == {1, 2}
    assert changed.in_employee_mart == {2}


def test_an_employee_counts_as_changed_since_the_build_only_when_the_views_show_them_otherwise(warehouse):
    """Every login writes the employee's row (last_login_at, updated_at) without changing what the
    views show: the employees and their customers are still compared. A new name (both views show it)
    leaves the employee out with their customers (Alice: 1 and 2), and so does an employee added since."""
    client, marts = warehouse.client(), warehouse.schema("marts")
    built = marts_built_from(client, warehouse.raw_database, marts)
    # Never committed: the session's warehouse stays as built (an error rolls back on leaving too).
    with psycopg.connect(warehouse.pg_dsn) as conn:
        conn.execute("update employees set last_login_at = now(), updated_at = now()")
        logged_in = changed_since_build(conn, client, warehouse.raw_database, marts, built)
        conn.execute("update employees set name = 'Alice Renamed' where id = 2")
        conn.execute(
            "insert into employees (id, employee_code, name, email, username, password_hash, role)"
            " values (4, 'EMP_N1', 'Nina New', 'nina@corp.example', 'nina', 'hash-n', 'employee')"
        )
        renamed = changed_since_build(conn, client, warehouse.raw_database, marts, built)
        conn.rollback()
    assert logged_in == ChangedSinceBuild()
    assert renamed.employees == {2, 4}
    assert renamed.in_employee_mart == {2, 4}
    assert renamed.in_customer_mart == {1, 2}


def test_an_employee_deleted_since_the_build_is_left_out_and_the_others_still_compared(
    built_warehouse, pg_dsn, clickhouse_env
):
    """Mona (1, without customers) leaves after the build. The schema has no soft delete and the rows
    she wrote keep her id (scripts, materials): they are handed over first, then her row is deleted.
    The employee mart still has her, the view no longer: she is left out and reported, before and after
    replication copied her tombstone and ClickHouse merged it, while Alice and Bob are compared exactly
    and a wrong value of Bob's is still a mismatch."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update scripts set created_by = null where created_by = 1")
        conn.execute("update materials set created_by = null where created_by = 1")
        conn.execute("delete from employees where id = 1")
    client = clickhouse_client()

    for step in ("deleted", "tombstone copied", "tombstone merged"):
        if step == "tombstone copied":
            replicate_tables(pg_dsn, ["employees"])
        elif step == "tombstone merged":
            client.command(f"optimize table `{clickhouse_env}`.`employees` final")
        customers, employees = _reconcile(pg_dsn, clickhouse_env)
        assert employees.passed, (step, employees.summary())
        assert employees.changed_since_build == [1], step
        assert employees.keys_in_view == employees.keys_in_mart == 2, step  # Alice and Bob
        assert employees.metrics_compared == 2 * 12, step
        assert customers.passed, (step, customers.summary())
        assert customers.changed_since_build == [], step  # she had none

    client.command(
        f"alter table `{marts_schema()}`.mart_employee_performance update accounts_opened = 7 where employee_id = 3",
        settings={"mutations_sync": 2},
    )
    # ... and so is an employee only the mart has (not left out: unknown to PostgreSQL and raw alike)
    client.command(
        f"insert into `{marts_schema()}`.mart_employee_performance"
        " select * replace (99 as employee_id)"  # (a where beside it would read the alias: 99)
        f" from (select * from `{marts_schema()}`.mart_employee_performance where employee_id = 2)"
    )
    _, employees = _reconcile(pg_dsn, clickhouse_env)
    assert not employees.passed
    assert [(mismatch["key"], mismatch["column"]) for mismatch in employees.mismatches] == [
        (99, "*"),
        (3, "accounts_opened"),
    ]
    assert employees.mismatches[0] == {"key": 99, "column": "*", "view": "missing", "mart": "present"}
    assert employees.changed_since_build == [1]


def test_an_employee_renamed_just_before_the_build_is_compared_with_the_latest_raw_version(
    built_warehouse, pg_dsn, clickhouse_env
):
    """Alice is renamed, and replication copies it just before a build: until ClickHouse merges them,
    raw holds her old and her new version (merges are stopped here to hold that moment); the marts show
    the new name. Her next login writes her row again: she and her customers are still compared, with
    the raw version the marts were built from (the latest), not left out for the older one."""
    client = clickhouse_client()
    client.command(f"system stop merges `{clickhouse_env}`.`employees`")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update employees set name = 'Alice Renamed' where id = 2")
    _replicate_and_build(pg_dsn, clickhouse_env, ["employees"], select=["stg_crm__employees+"])
    [(versions,)] = client.query(
        f"select count() from `{clickhouse_env}`.`employees` where id = 2"
    ).result_rows
    assert versions == 2  # the old name still in raw beside the new
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("update employees set last_login_at = now() where id = 2")

    customers, employees = _reconcile(pg_dsn, clickhouse_env)
    assert customers.passed, customers.summary()
    assert customers.changed_since_build == []
    assert customers.keys_in_view == 4
    assert employees.passed, employees.summary()
    assert employees.changed_since_build == []
    assert employees.metrics_compared == 3 * 12


def test_an_average_rate_clickhouse_computes_in_floating_point_matches_the_exact_one(
    pg_dsn, clickhouse_env, dbt_dirs
):
    """Bob (3) has 39 more customers, each with a withdrawal rate of 13.37 %: with his first one's 0 %,
    their average is exactly 13.03575 in the view (PostgreSQL's numeric) and 13.035749999999998 in the
    mart (ClickHouse averages a decimal column in floating point). Rounded to four decimals they fall on
    either side of the rounding (13.0358, 13.0357), yet they are the same average."""
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into customers (id, customer_code, name, assigned_employee_id)"
            " select n, 'CUST_R' || n, 'Rate ' || n, 3 from generate_series(101, 139) n"
        )
        conn.execute(
            "insert into funnel_bofu (source_key, customer_id, employee_id, withdrawal_rate)"
            " select 'BR' || n, n, 3, 13.37 from generate_series(101, 139) n"
        )
    _replicate_and_build(pg_dsn, clickhouse_env)
    client = clickhouse_client()
    [(average,)] = client.query(
        f"select avg_withdrawal_rate_percent from `{marts_schema()}`.mart_employee_performance where employee_id = 3"
    ).result_rows
    assert round(average, 4) != round(13.03575, 4), "the averages no longer round apart: choose other rates"

    report = reconcile_employees(pg_dsn, client, marts_schema(), clickhouse_env)
    assert report.passed, report.summary()
    assert report.changed_since_build == report.differing_by_design == []
    assert report.metrics_compared == 3 * 12
