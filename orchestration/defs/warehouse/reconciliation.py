"""Reconcile the two seed-view marts with the seed's PostgreSQL views, metric by metric.

Two things keep a mart from equalling its view by design; the check leaves each out and says which
keys and why. Everything else must match exactly.

The view's join. v_customer_overview joins every funnel_tofu/mofu/bofu row of a customer, so a
customer with two funnel rows appears twice; v_employee_performance then sums such a customer's net
deposit twice. The marts keep one funnel row per customer (the one created last). So:

* customers the view shows once must match exactly; for a customer the view repeats, the mart's
  row must equal one of the view's rows (reported as ``repeated_in_view``);
* employees without such a customer must match exactly; for the others the distinct counts must
  still match, and the sum/average over funnel rows is reported as differing by design.

Time. The views are read live while the CRM keeps writing, but the marts hold what replication
copied, each raw table up to its cursor. Keys that changed since, in the tables the views read, are
left out of the comparison and of the key counts (reported as ``changed_since_build``): which keys,
and why, in changed_since_build.py. The views and the changed keys are read in one REPEATABLE READ
transaction, so both describe the same moment. A warehouse never replicated has no cursor: nothing is
left out.

Currencies. No compared metric sums deposits or withdrawals, so exchange rates play no part: the
views' money (total deposits and withdrawals, net deposit, withdrawal rate) is funnel_bofu's stored
figures, which carry no currency, and both sides show them as stored. The marts' sums of movements in
US dollars (``amount_usd``: confirmed_deposit_amount, deposit_amount_* ...) have no view column.

Plain Python (psycopg + clickhouse-connect) so the Dagster asset check and the tests share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from ingestion.replication import schema
from orchestration.defs.warehouse.changed_since_build import (
    CHANGED_SINCE_BUILD_RULE,
    BuiltFrom,
    changed_since_build,
    marts_built_from,
)
from orchestration.defs.warehouse.value_comparison import normalise, same, same_row

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

FIRST_KEYS_REPORTED = 10


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
    changed_since_build: list = field(default_factory=list)
    built_from: BuiltFrom | None = None

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
            "keys_changed_since_build": len(self.changed_since_build),
            "first_keys_changed_since_build": self.changed_since_build[:FIRST_KEYS_REPORTED],
            "built_from": self.built_from.as_dict()
            if self.built_from
            else "never replicated: nothing left out",
            "rule": "one funnel_tofu/mofu/bofu row per customer: the one created last (greatest created_at, then id)",
            "changed_since_build_rule": CHANGED_SINCE_BUILD_RULE,
        }

    def leave_out(self, changed: frozenset[int], view_rows: dict, mart_rows: dict) -> tuple[dict, dict]:
        """(view rows, mart rows) without the keys changed since the build, recorded as such when
        found on either side (the others were inserted and deleted since), and their key counts; a
        key left only in the mart is a mismatch (one only in the view is found comparing the rows)."""
        self.changed_since_build = sorted(changed & (view_rows.keys() | mart_rows.keys()))
        view_rows = {key: row for key, row in view_rows.items() if key not in changed}
        mart_rows = {key: row for key, row in mart_rows.items() if key not in changed}
        self.keys_in_view, self.keys_in_mart = len(view_rows), len(mart_rows)
        # A key only the mart has is named as one only the view has is (else only the counts differ).
        for key in sorted(mart_rows.keys() - view_rows.keys()):
            self.mismatches.append({"key": key, "column": "*", "view": "missing", "mart": "present"})
        return view_rows, mart_rows


def _view_rows(conn: psycopg.Connection, view: str, columns: list[str]) -> list[dict]:
    cursor = conn.execute(f"select {', '.join(columns)} from {view}")
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _snapshot(pg_dsn: str) -> psycopg.Connection:
    """A connection whose queries all run in one REPEATABLE READ transaction (one view of the data),
    committed when its ``with`` block ends."""
    conn = psycopg.connect(pg_dsn)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def _mart_rows(client, relation: str, columns: list[str]) -> list[dict]:
    result = client.query(f"select {', '.join(columns)} from {relation}")
    return [dict(zip(columns, row, strict=True)) for row in result.result_rows]


def _as_view_row(mart_row: dict, mapping: dict[str, str]) -> dict:
    return {view_column: normalise(mart_row[mart_column]) for mart_column, view_column in mapping.items()}


def _compare(report: Reconciliation, key, expected: dict, actual: dict, skip: tuple[str, ...] = ()) -> None:
    for column, value in expected.items():
        if column in skip:
            continue
        report.metrics_compared += 1
        if not same(value, actual.get(column)):
            report.mismatches.append(
                {"key": key, "column": column, "view": str(value), "mart": str(actual.get(column))}
            )


def reconcile_customers(
    pg_dsn: str, client, marts_schema: str = "marts", raw_database: str | None = None
) -> Reconciliation:
    report = Reconciliation("v_customer_overview", f"{marts_schema}.mart_customer_overview")
    raw_database = raw_database or schema.raw_database()
    # Bound, then marts, then PostgreSQL: a build in between only moves the marts towards changes
    # PostgreSQL already shows, which are left out as changed since the bound read first.
    report.built_from = marts_built_from(client, raw_database, marts_schema)
    mart = {
        row["customer_id"]: _as_view_row(row, CUSTOMER_COLUMNS)
        for row in _mart_rows(client, report.mart, list(CUSTOMER_COLUMNS))
    }
    view_rows: dict[int, list[dict]] = {}
    with _snapshot(pg_dsn) as conn:
        for row in _view_rows(conn, "v_customer_overview", list(CUSTOMER_COLUMNS.values())):
            view_rows.setdefault(row["id"], []).append(row)
        changed = changed_since_build(
            conn, client, raw_database, marts_schema, report.built_from
        ).in_customer_mart
    view_rows, mart = report.leave_out(changed, view_rows, mart)
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
        if not any(same_row(row, actual) for row in rows):
            report.mismatches.append(
                {"key": key, "column": "*", "view": f"{len(rows)} rows", "mart": "equals none of them"}
            )
    return report


def reconcile_employees(
    pg_dsn: str, client, marts_schema: str = "marts", raw_database: str | None = None
) -> Reconciliation:
    report = Reconciliation("v_employee_performance", f"{marts_schema}.mart_employee_performance")
    raw_database = raw_database or schema.raw_database()
    report.built_from = marts_built_from(client, raw_database, marts_schema)  # in this order: see above
    mart = {
        row["employee_id"]: _as_view_row(row, EMPLOYEE_COLUMNS)
        for row in _mart_rows(client, report.mart, list(EMPLOYEE_COLUMNS))
    }
    with _snapshot(pg_dsn) as conn:
        view_rows = {
            row["id"]: row
            for row in _view_rows(conn, "v_employee_performance", list(EMPLOYEE_COLUMNS.values()))
        }
        affected = {employee_id for (employee_id,) in conn.execute(_EMPLOYEES_WITH_REPEATED_CUSTOMERS)}
        changed = changed_since_build(
            conn, client, raw_database, marts_schema, report.built_from
        ).in_employee_mart
    for row in view_rows.values():
        row["department"] = row["department"] or "unassigned"
    view_rows, mart = report.leave_out(changed, view_rows, mart)
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
