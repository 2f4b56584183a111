"""The two seed-view marts equal the seed's PostgreSQL views on the same data, metric by metric."""

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
