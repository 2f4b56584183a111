"""The two seed-view marts equal the seed's PostgreSQL views on the same data, metric by metric."""

import psycopg

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from orchestration.defs.warehouse.reconciliation import reconcile_customers, reconcile_employees


def test_customer_overview_reconciles_with_the_seed_view(warehouse):
    report = reconcile_customers(warehouse.pg_dsn, warehouse.client(), warehouse.schema("marts"))
    assert report.passed, report.summary()
    assert report.keys_in_view == 4
    # CUST_003 has two funnel_tofu rows: the view repeats it, the mart keeps the latest contact.
    assert report.repeated_in_view == [3]


def test_employee_performance_reconciles_with_the_seed_view(warehouse):
    report = reconcile_employees(warehouse.pg_dsn, warehouse.client(), warehouse.schema("marts"))
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
    replicate_tables(pg_dsn)
    output: list[str] = []
    assert run_dbt(["run", "--select", "int_customers__latest_funnel+"], log=output.append) == 0, "\n".join(
        output[-40:]
    )
    report = reconcile_employees(pg_dsn, clickhouse_client(), marts_schema())
    assert report.passed, report.summary()
    assert 2 in report.differing_by_design  # Alice's customer now has two funnel rows of each kind
