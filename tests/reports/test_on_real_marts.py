"""End to end on the warehouse's real dbt marts (tests/warehouse builds them from its hand-made CRM):
the report's numbers equal the marts', no customer contact detail appears, and the MoFu manager of
that CRM gets the mail."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
import pytest

from ingestion.reports import content, delivery, pipeline, render
from ingestion.reports.data import MartReader, connect
from ingestion.reports.ledger import Ledger
from ingestion.reports.periods import Period
from ingestion.reports.recipients import from_employees
from tests.reports.conftest import messages_to
from tests.reports.report_html import by_metric
from tests.reports.test_numbers_reconcile import as_decimal, mart_headline

# The session's shared warehouse (tests/fixtures/warehouse.py): built here if no test before needed it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_marts(warehouse, clickhouse_settings):  # noqa: F811
    assert warehouse.dbt_exit_code == 0, warehouse.dbt_output[-3000:]
    database = warehouse.schema("marts")
    client = connect(clickhouse_settings, database=database)
    busiest = client.query(
        f"SELECT kpi_date FROM {database}.mart_kpi_employee_daily GROUP BY kpi_date "
        "ORDER BY sum(bofu_deposit_amount) + sum(tofu_contacts) DESC, kpi_date DESC LIMIT 1"
    ).first_row[0]
    yield client, database, MartReader(client, database), busiest
    client.close()


def test_report_on_the_real_marts_reconciles_and_hides_contacts(real_marts, warehouse):  # noqa: F811
    client, database, reader, busiest = real_marts
    with psycopg.connect(warehouse.pg_dsn) as conn:
        contacts = [
            value
            for row in conn.execute(
                "SELECT name, email, phone, wechat_id, whatsapp, telegram FROM customers"
            ).fetchall()
            for value in row
            if value
        ]
    for period in (Period.daily(busiest), Period.weekly(busiest)):
        for scope in ("all", "MoFu"):
            with_pdf = period.kind == "daily" and scope == "all"  # one PDF is enough to prove it prints
            report = render.render(
                content.gather(reader, scope, period, warehouse.pg_dsn), "zh", with_pdf=with_pdf
            )
            shown = by_metric(report.html)
            for metric, value in mart_headline(client, scope, period, database).items():
                if metric != "retained":
                    assert as_decimal(shown[f"headline.{metric}"].value) == (
                        value if value is None else Decimal(value)
                    ), (period, scope, metric)
            everything = report.html + report.text + report.leaderboard_csv.decode("utf-8-sig")
            assert not [secret for secret in contacts if secret in everything]
            assert report.pdf.startswith(b"%PDF-") or not with_pdf


def test_the_customer_mart_states_the_build_date_its_stalled_days_count_to(real_marts):
    """mart_customer_overview's as_of_date is one day on every row, the day its day counts are to: here, built
    in one dbt build with the KPI mart, that mart's last day; the reports' stalled customers are as of it."""
    client, database, reader, _ = real_marts
    as_of_dates, kpi_last_day = client.query(
        f"SELECT (SELECT groupUniqArray(as_of_date) FROM {database}.mart_customer_overview),"
        f" (SELECT max(kpi_date) FROM {database}.mart_kpi_employee_daily)"
    ).first_row
    assert as_of_dates == [kpi_last_day]
    assert reader.customer_as_of_date() == kpi_last_day
    assert reader.stalled_as_of(date(2999, 12, 31)) == kpi_last_day


def test_the_real_manager_gets_the_mail(real_marts, warehouse, mail_settings, smtp_sink, monkeypatch):  # noqa: F811
    client, database, reader, busiest = real_marts
    recipients = from_employees(warehouse.pg_dsn)
    assert [(r.email, r.scope) for r in recipients] == [("mona@corp.example", "MoFu")]
    with psycopg.connect(warehouse.pg_dsn, autocommit=True) as conn:  # the warehouse's CRM database is shared
        conn.execute("DELETE FROM funnelhouse.report_deliveries WHERE recipient = 'mona@corp.example'")
    summary = pipeline.produce_reports(
        Period.daily(busiest),
        recipients,
        reader,
        sender="reports@funnelhouse.test",
        pg_dsn=warehouse.pg_dsn,
        smtp_settings=mail_settings,
        ledger=Ledger(warehouse.pg_dsn),
        retry_policy=delivery.RetryPolicy(attempts=2, first_delay=0.05),
    )
    assert [o.status for o in summary.outcomes] == ["sent"]
    assert messages_to(smtp_sink["outbox"], "mona@corp.example", f"daily-{busiest}-MoFu-zh")


# The marts the report reads (ingestion.reports.data): copied for the reassignment below.
REPORT_MARTS = ("mart_kpi_employee_daily", "mart_employee_performance", "mart_customer_overview")


def _copy_with_deposit_customer_reassigned(client, database: str, copy: str) -> None:
    """The marts of ``database`` in ``copy``, but Bob (BoFu) no longer has CUST_003, whose first deposit he
    took: Alice (MoFu) has it now, as a customer moves on after the deposit. Who took the deposit stays."""
    client.command(f"DROP DATABASE IF EXISTS `{copy}`")
    client.command(f"CREATE DATABASE `{copy}`")
    for table in REPORT_MARTS:
        client.command(f"CREATE TABLE `{copy}`.`{table}` AS `{database}`.`{table}`")
    for table in REPORT_MARTS[:2]:
        client.command(f"INSERT INTO `{copy}`.`{table}` SELECT * FROM `{database}`.`{table}`")
    client.command(
        f"INSERT INTO `{copy}`.mart_customer_overview SELECT * REPLACE ("
        "if(customer_code = 'CUST_003', 'EMP_A1', employee_code) AS employee_code,"
        "if(customer_code = 'CUST_003', 2, assigned_employee_id) AS assigned_employee_id)"
        f" FROM `{database}`.mart_customer_overview"
    )
    assert client.query(
        f"SELECT first_deposit_employee_code FROM `{copy}`.mart_customer_overview WHERE customer_code = 'CUST_003'"
    ).first_row == ("EMP_B1",)


def _assert_first_deposits_by_department(client, database: str) -> None:
    """A department's first deposits in the report data are its employees' in mart_employee_performance,
    for each of that mart's periods (this month, this quarter, all time, each ending on the build date)."""
    reader = MartReader(client, database)
    build_date = client.query(f"SELECT max(kpi_date) FROM `{database}`.mart_kpi_employee_daily").first_row[0]
    starts = {
        "this_month": build_date.replace(day=1),
        "this_quarter": build_date.replace(month=(build_date.month - 1) // 3 * 3 + 1, day=1),
        "all_time": date(1970, 1, 1),
    }
    for period, start in starts.items():
        by_department = dict(
            client.query(
                f"SELECT department, sum(first_deposits_{period}) FROM `{database}`.mart_employee_performance"
                " GROUP BY department"
            ).result_rows
        )
        if period == "all_time":  # the fixture CRM's two first deposits, one taken in MoFu, one in BoFu
            assert by_department["MoFu"] == by_department["BoFu"] == 1
        for department, first_deposits in by_department.items():
            shown = sum(
                day["first_deposits"] for day in reader.daily_sums(department, start, build_date).values()
            )
            assert shown == first_deposits, (database, period, department)


def test_each_department_has_the_first_deposits_its_employees_took(real_marts, warehouse):
    """A first deposit belongs to the employee who took it, as its amount does, wherever the customer is
    assigned now: on the real marts, and with the BoFu customer reassigned to MoFu after the deposit."""
    client, database, _, _ = real_marts
    _assert_first_deposits_by_department(client, database)
    copy = warehouse.schema("marts_reassigned")  # the warehouse's prefix: no other test's name
    _copy_with_deposit_customer_reassigned(client, database, copy)
    _assert_first_deposits_by_department(client, copy)
