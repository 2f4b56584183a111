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
copied: each raw table up to its cursor (``updated_at < cursor``, in ``raw._replication_state``).
Keys that changed since, in the tables the views read (customers, employees, funnel_tofu/mofu/bofu),
are left out of the comparison and of the key counts (reported as ``changed_since_build``):

* customers whose own row or one of whose funnel rows was written at or after its table's cursor,
  or deleted since (``sync_deletions``, the log replication turns into tombstones); in the customer
  mart also the customers of a changed employee (the mart shows the employee's name and code);
* in the employee mart, changed employees, and employees of such a customer.

An employee counts as changed only when the views would show them otherwise: a column the views read
from ``employees`` (``EMPLOYEE_VIEW_COLUMNS``) differs between PostgreSQL now and the raw copy's latest
version (the one staging reads with ``final``; an older version not merged away yet is not what the
marts show), or the row was added or deleted since. An employee's row is written on every login
(``last_login_at``, ``updated_at``): counting any write would leave nearly every active employee and
all their customers out of the comparison every day. Employee rows replication copied after the last
build count as changed whatever their columns: ClickHouse may have merged away the version the marts
were built from, so the raw copy can no longer tell.

A row's customer or employee is taken both as PostgreSQL has it now and as the marts were built from
it (a deleted funnel row is only in raw; a reassigned customer counts for both of its employees):
from every version the raw copy holds, tombstones included, and for a customer also from the customer
mart itself. ClickHouse merges a raw row's versions whenever it likes, so once replication copied a
change the version the marts were built from may be gone from raw; the customer mart still names the
employee it counted a customer for, and a deleted row's tombstone keeps its customer. (A funnel row
moved to another customer, copied and merged before the check, loses its first customer: no mart
names funnel rows.) If replication ran again after the last build (rows copied after the marts' refresh
mark, ``refresh_state``), the rows it copied count as changed too: the marts have not seen them
(replication and builds do not overlap: they share the ``warehouse`` pool). Without a refresh mark
(models built by hand) the marts are taken to hold what raw holds. The views and the changed keys
are read in one REPEATABLE READ transaction, so both describe the same moment. A warehouse never
replicated has no cursor: nothing is left out.

Currencies. No compared metric sums deposits or withdrawals, so exchange rates play no part: the
views' money (total deposits and withdrawals, net deposit, withdrawal rate) is funnel_bofu's stored
figures, which carry no currency, and both sides show them as stored. The marts' sums of movements in
US dollars (``amount_usd``: confirmed_deposit_amount, deposit_amount_* ...) have no view column.

Plain Python (psycopg + clickhouse-connect) so the Dagster asset check and the tests share it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

from ingestion.replication import schema
from orchestration.defs.warehouse import refresh_state

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

# The columns v_customer_overview / v_employee_performance read from employees (besides ``id``, the
# join key): the customer view shows name and employee_code, the employee view these and level,
# department, created_at (as hired_at). The raw copy keeps PostgreSQL's column names.
EMPLOYEE_VIEW_COLUMNS = ("employee_code", "name", "level", "department", "created_at")

# The tables the two views read, each with the column naming whom its row counts for: a funnel row
# its customer, a customer its employee (an employee row counts for itself).
VIEW_SOURCES = {
    "customers": "assigned_employee_id",
    "employees": None,
    "funnel_tofu": "customer_id",
    "funnel_mofu": "customer_id",
    "funnel_bofu": "customer_id",
}
FIRST_KEYS_REPORTED = 10
# Ids per ClickHouse query that names them: they travel as a query parameter in the request's URL,
# whose fields ClickHouse bounds (``http_max_field_value_size``, 128 KiB by default).
IDS_PER_QUERY = 10_000
CHANGED_SINCE_BUILD_RULE = (
    "keys whose customers/employees/funnel rows PostgreSQL changed or deleted at or after the replication "
    "cursor the marts were built from (or that replication copied after the last build) are left out; "
    "an employee only when a column the views show from employees changed, or it was added or deleted"
)


# ClickHouse computes the mart's averages (avg_withdrawal_rate_percent) in floating point, PostgreSQL
# the view's in exact numeric: the two may differ in the last binary digit. Rounding both to a fixed
# number of decimals does not absorb that: an average of 40 rates with two decimals ends in 5 at the
# fifth decimal half the time, and one ulp then rounds the other way (a false mismatch); it also hides
# real differences below the rounding (one customer's rate off by 0.01 among 200 or more). So a float
# is compared within this tolerance (relative, and absolute near zero), far below any real difference,
# and exact numbers (decimals, integers) exactly.
FLOAT_TOLERANCE = 1e-12


def _normalise(value):
    """``value`` as compared: a timestamp as its wall clock (both engines hold PostgreSQL's, the mart's
    declared UTC); anything else as is (numbers: ``_same``)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return value


def _is_number(value) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _same(view_value, mart_value) -> bool:
    """Whether a view's value equals the mart's: floats within ``FLOAT_TOLERANCE``, other
    values exactly (``Decimal("5000.00") == 5000``)."""
    if _is_number(view_value) and _is_number(mart_value):
        if isinstance(view_value, float) or isinstance(mart_value, float):
            return math.isclose(
                float(view_value),
                float(mart_value),
                rel_tol=FLOAT_TOLERANCE,
                abs_tol=FLOAT_TOLERANCE,
            )
        return view_value == mart_value
    return _normalise(view_value) == _normalise(mart_value)


def _same_row(view_row: dict, mart_row: dict) -> bool:
    return all(_same(value, mart_row.get(column)) for column, value in view_row.items())


@dataclass(frozen=True)
class BuiltFrom:
    """What the marts were built from: each view table's replication cursor (PostgreSQL's wall clock in
    the zone rows are stamped in, as ``updated_at``: ``ingestion/replication/cursor.py``), and the
    marts' refresh mark (UTC; None when no build recorded one)."""

    cursors: dict[str, dt.datetime]
    refreshed_through: dt.datetime | None

    def as_dict(self) -> dict:
        return {
            "cursors": {table: cursor.isoformat() for table, cursor in sorted(self.cursors.items())},
            "marts_refreshed_through": self.refreshed_through.isoformat() if self.refreshed_through else None,
        }


def marts_built_from(client, raw_database: str, marts_schema: str) -> BuiltFrom | None:
    """The bound of the data the marts hold, or None if no table the views read was ever replicated.
    Reads only (the check must not create the state tables)."""
    if not schema.table_exists(client, raw_database, schema.STATE_TABLE):
        return None
    rows = client.query(
        f"select table_name, rows_cursor, deletions_cursor from `{raw_database}`.{schema.STATE_TABLE} final "
        "where table_name in {tables:Array(String)}",
        parameters={"tables": list(VIEW_SOURCES)},
    ).result_rows
    if not rows:
        return None
    # Stored in a column declared UTC but holding PostgreSQL's wall-clock time: compared as written.
    cursors = {
        table: min(rows_cursor, deletions_cursor).replace(tzinfo=None)
        for table, rows_cursor, deletions_cursor in rows
    }
    return BuiltFrom(cursors, refresh_state.recorded_marks(client, raw_database, marts_schema)[0])


@dataclass(frozen=True)
class ChangedSinceBuild:
    customers: frozenset[int] = frozenset()  # own row or a funnel row changed
    employees: frozenset[int] = frozenset()  # shown otherwise by the views, added or deleted
    employees_of_changed_customers: frozenset[int] = frozenset()  # now or as built
    customers_of_changed_employees: frozenset[int] = frozenset()

    @property
    def in_customer_mart(self) -> frozenset[int]:
        return self.customers | self.customers_of_changed_employees

    @property
    def in_employee_mart(self) -> frozenset[int]:
        return self.employees | self.employees_of_changed_customers


class _ChangeReader:
    """Reads what changed since ``built`` through one PostgreSQL transaction and the raw copies."""

    def __init__(
        self, conn: psycopg.Connection, client, raw_database: str, marts_schema: str, built: BuiltFrom
    ):
        self.conn, self.client, self.built = conn, client, built
        self.raw_database, self.marts_schema = raw_database, marts_schema

    def _raw(self, table: str) -> str:
        return f"`{self.raw_database}`.`{table}`"

    def rows(self, table: str) -> set[int]:
        """Ids of ``table``'s rows written at or after its cursor, deleted since, or copied after the
        marts' last build."""
        return self.written_in_postgres(table) | self.copied_after_build(table)

    def written_in_postgres(self, table: str) -> set[int]:
        """Ids of ``table``'s rows written at or after its cursor or deleted since."""
        cursor = self.built.cursors[table]
        ids = {
            row_id
            for (row_id,) in self.conn.execute(f"select id from {table} where updated_at >= %s", (cursor,))
        }
        ids |= {
            row_id
            for (row_id,) in self.conn.execute(
                "select distinct row_id from sync_deletions where table_name = %s and deleted_at >= %s",
                (table, cursor),
            )
        }
        return ids

    def copied_after_build(self, table: str) -> set[int]:
        """Ids of ``table``'s rows replication copied after the marts' last build (none without a
        refresh mark)."""
        if self.built.refreshed_through is None:
            return set()
        return {
            row_id
            for (row_id,) in self.client.query(
                f"select distinct id from {self._raw(table)} where _replicated_at >= {{mark:DateTime64(6, 'UTC')}}",
                parameters={"mark": self.built.refreshed_through},
            ).result_rows
        }

    def versions(self, table: str, columns: Iterable[str], ids: list[int]) -> tuple[set[tuple], set[tuple]]:
        """``columns`` of rows ``ids`` of ``table``: (as PostgreSQL has them now, as the raw copy holds
        them in every version, tombstones included, with ``_is_deleted`` last)."""
        raw = self._clickhouse_rows(
            f"select distinct {', '.join(columns)}, _is_deleted from {self._raw(table)}", "id", ids
        )
        return self.in_postgres(table, columns, ids), raw

    def in_postgres(self, table: str, columns: Iterable[str], ids: list[int]) -> set[tuple]:
        """``columns`` of rows ``ids`` of ``table`` as PostgreSQL has them now."""
        return set(self.conn.execute(f"select {', '.join(columns)} from {table} where id = any(%s)", (ids,)))

    def latest_in_raw(self, table: str, columns: Iterable[str], ids: list[int]) -> set[tuple]:
        """``columns`` of rows ``ids`` of ``table`` in their latest version in the raw copy: the one the
        staging models read (``final``, which also leaves out a row whose latest version is a
        tombstone), so the one the marts were built from unless replication copied it after the build
        (then the row counts as changed anyway: ``copied_after_build``). Older versions ClickHouse has
        not merged away yet are no longer what the marts show."""
        return self._clickhouse_rows(f"select {', '.join(columns)} from {self._raw(table)} final", "id", ids)

    def owners(self, table: str, ids: Iterable[int]) -> set[int]:
        """Whom rows ``ids`` of ``table`` count for (``VIEW_SOURCES``): as PostgreSQL has them now, and
        as the marts were built from them (module docstring)."""
        ids, column = sorted(ids), VIEW_SOURCES[table]
        if not ids:
            return set()
        now, raw = self.versions(table, [column], ids)
        owners = {owner for (owner,) in now} | {owner for owner, _is_deleted in raw}
        if table == "customers":
            owners |= {
                owner
                for (owner,) in self._clickhouse_rows(
                    f"select assigned_employee_id from `{self.marts_schema}`.mart_customer_overview",
                    "customer_id",
                    ids,
                )
            }
        return owners - {None}

    def employees_shown_otherwise(self, ids: Iterable[int]) -> set[int]:
        """Of employees ``ids``, those the views show otherwise now than as built: a column they read
        from ``employees`` differs between PostgreSQL now and the raw copy's latest version, or the
        employee is only on one side (added or deleted since)."""
        ids = sorted(ids)
        if not ids:
            return set()
        columns = ["id", *EMPLOYEE_VIEW_COLUMNS]

        def by_id(rows: set[tuple]) -> dict[int, tuple]:
            return {row[0]: tuple(map(_normalise, row)) for row in rows}

        shown_now = by_id(self.in_postgres("employees", columns, ids))
        shown_as_built = by_id(self.latest_in_raw("employees", columns, ids))
        return {
            employee_id
            for employee_id in ids
            if shown_now.get(employee_id) != shown_as_built.get(employee_id)
        }

    def _clickhouse_rows(self, select: str, key: str, ids: list[int]) -> set[tuple]:
        """The rows ``select`` returns for the rows whose ``key`` is one of ``ids``, asked
        ``IDS_PER_QUERY`` ids at a time."""
        rows = set()
        for start in range(0, len(ids), IDS_PER_QUERY):
            rows |= set(
                map(
                    tuple,
                    self.client.query(
                        f"{select} where {key} in {{ids:Array(Int64)}}",
                        parameters={"ids": ids[start : start + IDS_PER_QUERY]},
                    ).result_rows,
                )
            )
        return rows

    def customers_of(self, employees: Iterable[int]) -> set[int]:
        """Customers PostgreSQL assigns to ``employees`` (a customer assigned otherwise when the marts
        were built changed since, so it is one of the changed customers already)."""
        rows = self.conn.execute(
            "select id from customers where assigned_employee_id = any(%s)", (sorted(employees),)
        )
        return {customer_id for (customer_id,) in rows}


def changed_since_build(
    conn: psycopg.Connection, client, raw_database: str, marts_schema: str, built: BuiltFrom | None
) -> ChangedSinceBuild:
    """The keys of the two marts the views may show otherwise than the marts by now (module docstring)."""
    if built is None:
        return ChangedSinceBuild()
    reader = _ChangeReader(conn, client, raw_database, marts_schema, built)
    changed = {table: reader.rows(table) for table in built.cursors if table != "employees"}
    customers = set(changed.get("customers", ()))
    for table, column in VIEW_SOURCES.items():
        if column == "customer_id" and table in changed:
            customers |= reader.owners(table, changed[table])
    # An employee's row is written on every login: only a change the views show counts (module docstring).
    employees = set()
    if "employees" in built.cursors:
        employees = reader.employees_shown_otherwise(reader.written_in_postgres("employees"))
        employees |= reader.copied_after_build("employees")
    return ChangedSinceBuild(
        customers=frozenset(customers),
        employees=frozenset(employees),
        employees_of_changed_customers=frozenset(reader.owners("customers", customers)),
        customers_of_changed_employees=frozenset(reader.customers_of(employees)),
    )


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
    return {view_column: _normalise(mart_row[mart_column]) for mart_column, view_column in mapping.items()}


def _compare(report: Reconciliation, key, expected: dict, actual: dict, skip: tuple[str, ...] = ()) -> None:
    for column, value in expected.items():
        if column in skip:
            continue
        report.metrics_compared += 1
        if not _same(value, actual.get(column)):
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
        if not any(_same_row(row, actual) for row in rows):
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
