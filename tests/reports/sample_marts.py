"""Small marts with the shape the reports read, written into a ClickHouse database of their own.

Until the warehouse's dbt marts exist (and beside them afterwards) the report tests run against
these: same table and column names as ``ingestion.reports.data`` expects, deterministic values,
and customer contact columns on purpose, to prove a report never shows them. The benchmark uses
the same builder at 100,000 customers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

DEPARTMENTS = ("ToFu", "MoFu", "BoFu", "VIP", "培训")
LEVELS = ("新人", "组员", "A级执行者", "精英", "高手", "主管")
STAGES = ("Awareness", "Attention", "Trust", "Engage", "Action", "Subscribe", "Growth", "Loyal", "Advocate")
END_DATE = date(2026, 11, 26)


@dataclass(frozen=True)
class Employee:
    code: str
    name: str
    email: str
    role: str
    department: str | None
    level: str


def employees(per_department: int = 4, managers_per_department: int = 1) -> list[Employee]:
    people = [Employee("EMP_ADMIN", "Admin 管理员", "admin@example.com", "admin", None, "主管")]
    for d_index, department in enumerate(DEPARTMENTS):
        for m in range(managers_per_department):
            people.append(
                Employee(
                    f"EMP_M{d_index}_{m}",
                    f"经理{d_index}-{m}",
                    f"manager{d_index}.{m}@example.com",
                    "manager",
                    department,
                    "主管",
                )
            )
        for e in range(per_department):
            people.append(
                Employee(
                    f"EMP_{d_index}_{e:03d}",
                    f"员工{d_index}-{e}",
                    f"emp{d_index}.{e}@example.com",
                    "employee",
                    department,
                    LEVELS[(d_index + e) % 5],
                )
            )
    return people


def _kpi_rows(people: list[Employee], days: int, end: date, rng: random.Random) -> list[list]:
    rows = []
    workers = [p for p in people if p.role == "employee"]
    for offset in range(days):
        day = end - timedelta(days=offset)
        for index, person in enumerate(workers):
            if rng.random() < 0.08:  # days off: the mart has no row, the report must still add up
                continue
            contacts = rng.randint(0, 30)
            retained = rng.randint(0, contacts)
            deposit = Decimal(rng.randint(0, 5_000_000)) / 100
            withdrawal = Decimal(rng.randint(0, 2_000_000)) / 100
            rows.append(
                [
                    day,
                    index + 1,
                    person.code,
                    person.name,
                    person.department,
                    person.level,
                    contacts,
                    retained,
                    (Decimal(retained * 100) / contacts).quantize(Decimal("0.01")) if contacts else None,
                    rng.randint(0, 12),
                    rng.randint(0, 20),
                    rng.randint(0, 3),
                    rng.randint(0, 4),
                    deposit,
                    withdrawal,
                    deposit - withdrawal,
                    (withdrawal * 100 / deposit).quantize(Decimal("0.01"))
                    if deposit and withdrawal <= deposit
                    else None,
                    Decimal(rng.randint(4000, 9999)) / 100,
                    1,  # is_employed
                    0,  # has_reported_kpis: the sample has no operational reports
                ]
            )
    return rows


KPI_COLUMNS = [
    ("kpi_date", "Date"),
    ("employee_id", "Int64"),
    ("employee_code", "String"),
    ("employee_name", "String"),
    ("department", "String"),
    ("level", "String"),
    ("tofu_contacts", "Int32"),
    ("tofu_retained", "Int32"),
    ("tofu_retention_rate", "Nullable(Decimal(5, 2))"),
    ("mofu_quality_conversations", "Int32"),
    ("mofu_counter_question_count", "Int32"),
    ("mofu_accounts_opened", "Int32"),
    ("bofu_deposits_count", "Int32"),
    ("bofu_deposit_amount", "Decimal(12, 2)"),
    ("bofu_withdrawal_amount", "Decimal(12, 2)"),
    ("bofu_net_deposit", "Decimal(12, 2)"),
    ("bofu_withdrawal_rate", "Nullable(Decimal(9, 2))"),
    ("overall_score", "Nullable(Decimal(5, 2))"),
    ("is_employed", "UInt8"),
    ("has_reported_kpis", "UInt8"),
]
EMPLOYEE_COLUMNS = [
    ("employee_code", "String"),
    ("employee_name", "String"),
    ("employee_level", "String"),
    ("department", "String"),
    ("employee_status", "String"),
]
# The real mart has no contact columns; these have them on purpose, to prove a report never shows them.
CUSTOMER_COLUMNS = [
    ("customer_code", "String"),
    ("customer_name", "String"),
    ("email", "String"),
    ("phone", "String"),
    ("wechat_id", "String"),
    ("current_stage", "String"),
    ("days_in_current_stage", "Nullable(Int64)"),
    ("employee_code", "Nullable(String)"),
    ("customer_status", "String"),
    ("first_deposit_date", "Nullable(Date32)"),
    ("first_deposit_employee_code", "Nullable(String)"),
    ("as_of_date", "Date"),  # the mart's build date, which days_in_current_stage counts to
]


def customer_contact(index: int) -> tuple[str, str, str, str]:
    """Name, e-mail, phone and WeChat id of a sample customer: what must never reach a report."""
    return (
        f"客户姓名{index}",
        f"customer{index}@private.example",
        f"+86-139-{index:08d}",
        f"wx_secret_{index}",
    )


def _create(client, database: str, table: str, columns: list[tuple[str, str]], order_by: str) -> None:
    client.command(f"DROP TABLE IF EXISTS `{database}`.`{table}`")
    definition = ", ".join(f"`{name}` {kind}" for name, kind in columns)
    client.command(
        f"CREATE TABLE `{database}`.`{table}` ({definition}) ENGINE = MergeTree ORDER BY {order_by}"
    )


def build(
    client,
    database: str,
    *,
    customers: int = 400,
    days: int = 45,
    end: date = END_DATE,
    people: list[Employee] | None = None,
    seed: int = 7,
) -> list[Employee]:
    """(Re)create the three marts the reports read in ``database``; return the employees they describe."""
    rng = random.Random(seed)
    people = people or employees()
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    _create(client, database, "mart_kpi_employee_daily", KPI_COLUMNS, "(kpi_date, employee_code)")
    client.insert(
        f"`{database}`.`mart_kpi_employee_daily`",
        _kpi_rows(people, days, end, rng),
        column_names=[name for name, _ in KPI_COLUMNS],
    )
    _create(client, database, "mart_employee_performance", EMPLOYEE_COLUMNS, "employee_code")
    client.insert(
        f"`{database}`.`mart_employee_performance`",
        [[p.code, p.name, p.level, p.department or "unassigned", "active"] for p in people],
        column_names=[name for name, _ in EMPLOYEE_COLUMNS],
    )
    _create(client, database, "mart_customer_overview", CUSTOMER_COLUMNS, "customer_code")
    workers = [p for p in people if p.role == "employee"]
    # As in the CRM, BoFu takes the first deposit of a customer who may be assigned anywhere by now: the
    # employee who took it is seldom the one assigned, nor in the same department.
    depositors = [p for p in workers if p.department == "BoFu"] or workers
    rows = []
    for index in range(customers):
        owner = workers[index % len(workers)]
        stage = STAGES[rng.randrange(len(STAGES))]
        first_deposit = end - timedelta(days=rng.randrange(days * 2)) if rng.random() < 0.4 else None
        rows.append(
            [
                f"CUST_{index:06d}",
                *customer_contact(index),
                stage,
                int(rng.expovariate(1 / 12)),
                owner.code,
                "active" if rng.random() < 0.95 else "blacklist",
                first_deposit,
                None if first_deposit is None else depositors[index % len(depositors)].code,
                end,  # built as of the KPI spine's last day
            ]
        )
    client.insert(
        f"`{database}`.`mart_customer_overview`", rows, column_names=[name for name, _ in CUSTOMER_COLUMNS]
    )
    return people


def insert_employees(dsn: str, people: list[Employee], inactive_manager: bool = True) -> None:
    """The same people in the seed's ``employees`` table (plus an inactive manager who gets nothing)."""
    import psycopg

    rows = [
        (p.code, p.name, p.email, p.code.lower(), "x", p.role, p.department, p.level, "active")
        for p in people
    ]
    if inactive_manager:
        rows.append(
            ("EMP_GONE", "已离职经理", "gone@example.com", "gone", "x", "manager", "ToFu", "主管", "inactive")
        )
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany(
            """INSERT INTO public.employees (employee_code, name, email, username, password_hash, role, department,
                                             level, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            rows,
        )


def add_spine_days(client, database: str, people: list[Employee], first: date, last: date) -> None:
    """Rows without any activity for every employee on [first, last], as the real mart's date spine
    writes them up to its build date whether or not any data arrived (score 0, rates NULL)."""
    workers = [p for p in people if p.role == "employee"]
    zero_money = Decimal("0.00")
    rows = [
        [
            first + timedelta(days=offset),
            index + 1,
            person.code,
            person.name,
            person.department,
            person.level,
            *([0] * 2),  # contacts, retained
            None,  # retention rate
            *([0] * 4),  # quality conversations, counter questions, accounts opened, deposits count
            zero_money,
            zero_money,
            zero_money,
            None,  # withdrawal rate
            Decimal("0.00"),  # overall score
            1,  # is_employed
            0,  # has_reported_kpis
        ]
        for offset in range((last - first).days + 1)
        for index, person in enumerate(workers)
    ]
    client.insert(
        f"`{database}`.`mart_kpi_employee_daily`", rows, column_names=[name for name, _ in KPI_COLUMNS]
    )
