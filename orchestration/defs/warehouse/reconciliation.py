"""Reconcile the two seed-view marts with the seed's PostgreSQL views, metric by metric.

v_customer_overview joins every funnel_tofu/mofu/bofu row of a customer, so a customer with two
funnel rows appears twice; v_employee_performance then sums such a customer's net deposit twice.
The marts keep one funnel row per customer (the one created last). So:

* customers the view shows once must match exactly; for a customer the view repeats, the mart's
  row must equal one of the view's rows (reported as ``repeated_in_view``);
* employees without such a customer must match exactly; for the others the distinct counts must
  still match, and the sum/average over funnel rows is reported as differing by design.

Plain Python (psycopg + clickhouse-connect) so the Dagster asset check and the tests share it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

# mart column -> view column, for every view column the mart carries (the customer's name is
# deliberately not in the mart: PII).
CUSTOMER_COLUMNS = {
    "customer_id": "id",
    "customer_code": "customer_code",
    "tier": "tier",
    "current_stage": "current_stage",
    "intention_score": "intention_score",
    "engagement_score": "engagement_score",
    "source_channel": "source_channel",
    "has_stayed_in_group": "stayed_in_group",
    "total_conversations": "total_conversations",
    "high_quality_conversations": "high_quality_conversations",
    "is_account_opened": "account_opened",
    "total_deposits": "total_deposits",
    "total_withdrawals": "total_withdrawals",
    "net_deposit": "net_deposit",
    "withdrawal_rate_percent": "withdrawal_rate",
    "is_vip": "is_vip",
    "employee_name": "employee_name",
    "employee_code": "employee_code",
    "created_at": "created_at",
    "last_contact_at": "last_contact_at",
}
EMPLOYEE_COLUMNS = {
    "employee_id": "id",
    "employee_code": "employee_code",
    "employee_name": "name",
    "employee_level": "level",
    "department": "department",
    "total_customers": "total_customers",
    "active_customers": "active_customers",
    "total_net_deposit": "total_net_deposit",
    "avg_withdrawal_rate_percent": "avg_withdrawal_rate",
    "accounts_opened": "accounts_opened",
    "first_deposits": "first_deposits",
    "hired_at": "hired_at",
}
# Measures over funnel rows: they differ by design where the view's join repeats a customer
# (v_employee_performance joins funnel_mofu and funnel_bofu, not funnel_tofu).
EMPLOYEE_FUNNEL_SUMS = ("total_net_deposit", "avg_withdrawal_rate_percent")

_EMPLOYEES_WITH_REPEATED_CUSTOMERS = """
select distinct c.assigned_employee_id
from customers c
where c.assigned_employee_id is not null and (
    (select count(*) from funnel_mofu m where m.customer_id = c.id) > 1
    or (select count(*) from funnel_bofu b where b.customer_id = c.id) > 1)
"""


def _normalise(value):
    if isinstance(value, Decimal | float):
        return round(float(value), 4)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if value is None or isinstance(value, bool | str | dt.date):
        return value
    if isinstance(value, int):
        return value
    return value


@dataclass
class Reconciliation:
    view: str
    mart: str
    keys_in_view: int = 0
    keys_in_mart: int = 0
    metrics_compared: int = 0
    mismatches: list[dict] = field(default_factory=list)
    repeated_in_view: list = field(default_factory=list)
    differing_by_design: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.keys_in_view == self.keys_in_mart

    def summary(self) -> dict:
        return {
            "view": self.view,
            "mart": self.mart,
            "keys_in_view": self.keys_in_view,
            "keys_in_mart": self.keys_in_mart,
            "metrics_compared": self.metrics_compared,
            "mismatches": len(self.mismatches),
            "first_mismatches": self.mismatches[:10],
            "keys_repeated_in_view": len(self.repeated_in_view),
            "keys_differing_by_design": len(self.differing_by_design),
            "rule": "one funnel_tofu/mofu/bofu row per customer: the one created last (greatest created_at, then id)",
        }


def _view_rows(pg_dsn: str, view: str, columns: list[str]) -> list[dict]:
    with psycopg.connect(pg_dsn) as conn:
        cursor = conn.execute(f"select {', '.join(columns)} from {view}")
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _mart_rows(client, relation: str, columns: list[str]) -> list[dict]:
    result = client.query(f"select {', '.join(columns)} from {relation}")
    return [dict(zip(columns, row, strict=True)) for row in result.result_rows]


def _as_view_row(mart_row: dict, mapping: dict[str, str]) -> dict:
    return {view_column: _normalise(mart_row[mart_column]) for mart_column, view_column in mapping.items()}


def _compare(report: Reconciliation, key, expected: dict, actual: dict, skip: tuple[str, ...] = ()) -> None:
    for column, value in expected.items():
        if column in skip:
            continue
        report.metrics_compared += 1
        if _normalise(value) != actual.get(column):
            report.mismatches.append(
                {"key": key, "column": column, "view": str(value), "mart": str(actual.get(column))}
            )


def reconcile_customers(pg_dsn: str, client, marts_schema: str = "marts") -> Reconciliation:
    report = Reconciliation("v_customer_overview", f"{marts_schema}.mart_customer_overview")
    view_rows: dict[int, list[dict]] = {}
    for row in _view_rows(pg_dsn, "v_customer_overview", list(CUSTOMER_COLUMNS.values())):
        view_rows.setdefault(row["id"], []).append(row)
    mart = {
        row["customer_id"]: _as_view_row(row, CUSTOMER_COLUMNS)
        for row in _mart_rows(client, report.mart, list(CUSTOMER_COLUMNS))
    }
    report.keys_in_view, report.keys_in_mart = len(view_rows), len(mart)
    for key, rows in view_rows.items():
        actual = mart.get(key)
        if actual is None:
            report.mismatches.append({"key": key, "column": "*", "view": "present", "mart": "missing"})
            continue
        if len(rows) == 1:
            _compare(report, key, rows[0], actual)
            continue
        report.repeated_in_view.append(key)
        report.metrics_compared += len(CUSTOMER_COLUMNS)
        if not any({column: _normalise(value) for column, value in row.items()} == actual for row in rows):
            report.mismatches.append(
                {"key": key, "column": "*", "view": f"{len(rows)} rows", "mart": "equals none of them"}
            )
    return report


def reconcile_employees(pg_dsn: str, client, marts_schema: str = "marts") -> Reconciliation:
    report = Reconciliation("v_employee_performance", f"{marts_schema}.mart_employee_performance")
    view_rows = {
        row["id"]: row
        for row in _view_rows(pg_dsn, "v_employee_performance", list(EMPLOYEE_COLUMNS.values()))
    }
    for row in view_rows.values():
        row["department"] = row["department"] or "unassigned"
    mart = {
        row["employee_id"]: _as_view_row(row, EMPLOYEE_COLUMNS)
        for row in _mart_rows(client, report.mart, list(EMPLOYEE_COLUMNS))
    }
    with psycopg.connect(pg_dsn) as conn:
        affected = {employee_id for (employee_id,) in conn.execute(_EMPLOYEES_WITH_REPEATED_CUSTOMERS)}
    report.keys_in_view, report.keys_in_mart = len(view_rows), len(mart)
    view_names = tuple(EMPLOYEE_COLUMNS[column] for column in EMPLOYEE_FUNNEL_SUMS)
    for key, expected in view_rows.items():
        actual = mart.get(key)
        if actual is None:
            report.mismatches.append({"key": key, "column": "*", "view": "present", "mart": "missing"})
            continue
        if key in affected:
            report.differing_by_design.append(key)
            _compare(report, key, expected, actual, skip=view_names)
        else:
            _compare(report, key, expected, actual)
    return report
