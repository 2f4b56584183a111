"""Which keys of the two seed-view marts the seed's views may show otherwise by now: the rows changed
since the marts were built, left out of the reconciliation (reconciliation.py).

The views are read live while the CRM keeps writing, but the marts hold what replication copied: each
raw table up to its cursor (``updated_at < cursor``, in ``raw._replication_state``). Keys that changed
since, in the tables the views read (customers, employees, funnel_tofu/mofu/bofu), are left out of the
comparison and of the key counts (reported as ``changed_since_build``):

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
(models built by hand) the marts are taken to hold what raw holds. The changed keys are read through
the reconciliation's REPEATABLE READ transaction, the one it reads the views in, so both describe the
same moment. A warehouse never replicated has no cursor: nothing is left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from ingestion.replication import schema
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.value_comparison import normalise

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
# Ids per ClickHouse query that names them: they travel as a query parameter in the request's URL,
# whose fields ClickHouse bounds (``http_max_field_value_size``, 128 KiB by default).
IDS_PER_QUERY = 10_000
CHANGED_SINCE_BUILD_RULE = (
    "keys whose customers/employees/funnel rows PostgreSQL changed or deleted at or after the replication "
    "cursor the marts were built from (or that replication copied after the last build) are left out; "
    "an employee only when a column the views show from employees changed, or it was added or deleted"
)


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
            return {row[0]: tuple(map(normalise, row)) for row in rows}

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
