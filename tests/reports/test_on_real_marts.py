"""End to end on the warehouse's real dbt marts (tests/warehouse builds them from its hand-made CRM):
the report's numbers equal the marts', no customer contact detail appears, and the MoFu manager of
that CRM gets the mail."""

from __future__ import annotations

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
