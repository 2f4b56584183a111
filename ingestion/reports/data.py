"""Every query the reports run against the ClickHouse marts, and nothing else reads them.

The marts belong to the dbt project (``dbt_project/models/marts``); when a column is renamed
there, the mapping below is the one place to follow it. Amounts stay ``Decimal`` end to end so
the numbers in a report are the marts' sums to the cent.

First deposits come from the customer mart (first_deposit_date), credited to the department of the
employee who took them (first_deposit_employee_code), as deposits are: mart_funnel_daily counts journey-stage
entries, not deposits. Daily KPI sums are fetched once per scope over one window (30-day trend plus the comparison
periods) and every period's headline is summed from those days, so headline, comparisons and
trend can never disagree with each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from clickhouse_connect.driver.exceptions import DatabaseError

from ingestion.replication.connections import clickhouse_client
from ingestion.reports.metrics import DAILY_SUMS
from ingestion.reports.periods import Period
from ingestion.reports.recipients import ALL_DEPARTMENTS

DEFAULT_DATABASE = "marts"

# Physical names in the marts. Left: what the report calls it; right: the mart's column.
KPI_DAILY_TABLE = "mart_kpi_employee_daily"
KPI_DAILY = {
    "day": "kpi_date",
    "employee_code": "employee_code",
    "employee_name": "employee_name",
    "department": "department",
    "new_contacts": "tofu_contacts",
    "retained": "tofu_retained",
    "quality_conversations": "mofu_quality_conversations",
    "accounts_opened": "mofu_accounts_opened",
    "deposits_count": "bofu_deposits_count",
    "deposits": "bofu_deposit_amount",
    "withdrawals": "bofu_withdrawal_amount",
    "net_deposit": "bofu_net_deposit",
    "overall_score": "overall_score",
    "counter_questions": "mofu_counter_question_count",
    "has_reported_kpis": "has_reported_kpis",
    "is_employed": "is_employed",  # the day is on or after the hire date (or the hire date is unknown)
}
EMPLOYEE_PERFORMANCE_TABLE = "mart_employee_performance"  # one row per employee: their current level
EMPLOYEE_PERFORMANCE = {
    "employee_code": "employee_code",
    "level": "employee_level",
    "status": "employee_status",  # now: active / inactive / suspended
}
CUSTOMER_OVERVIEW_TABLE = "mart_customer_overview"
CUSTOMER_OVERVIEW = {
    "customer_code": "customer_code",
    "stage": "current_stage",
    "days_in_stage": "days_in_current_stage",
    "employee_code": "employee_code",  # the assigned employee: their department scopes the customer
    "status": "customer_status",
    "first_deposit_day": "first_deposit_date",
    # who took the first deposit (BoFu, usually), not who has the customer now: it is credited to them
    "first_deposit_employee_code": "first_deposit_employee_code",
    # the day days_in_stage counts to: this mart's own build date, the same on every row (the KPI mart is
    # built by another Dagster job and can be as of another day)
    "as_of": "as_of_date",
}
# Every mart the reports read, and the only ones ``_table`` names: the report assets depend on these
# (orchestration/defs/reports/assets.py), as the dbt exposure kpi_reports does (tests/warehouse/test_exposures.py).
MART_TABLES = (KPI_DAILY_TABLE, EMPLOYEE_PERFORMANCE_TABLE, CUSTOMER_OVERVIEW_TABLE)
# A customer in these stages has arrived; staying there is the goal, not a stall.
SETTLED_STAGES = ("Loyal", "Advocate")
# Result aliases are prefixed ``out_``: ClickHouse lets an alias shadow a column in WHERE, so an alias
# equal to a mart column name would turn the filter into a filter on the aggregate.
# "Longer than usual" = beyond this quantile of the days the active customers in the stage on the report's
# last day had spent there. Inactive customers are left out: lost ones sit in their last stage for good, and with
# them in, the quantile grew past every active customer's stay (the demo's list was always empty).
USUAL_STAGE_QUANTILE = 0.9


def connect(settings, database: str = DEFAULT_DATABASE):
    """A clickhouse-connect client from ``orchestration.environment.clickhouse_settings()``."""
    return clickhouse_client(settings, database=database)


def as_number(value):
    """Ints stay ints, Decimals stay Decimals; a Float64 mart column is read to the cent."""
    if value is None or isinstance(value, int | Decimal):
        return value
    return Decimal(repr(value)).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class LeaderboardRow:
    employee_code: str
    employee_name: str
    department: str
    level: str
    net_deposit: Decimal
    overall_score: Decimal | None
    rank: int  # shared by employees tied on (net_deposit, overall_score): see competition_ranks()


def competition_ranks(keys: list) -> list[int]:
    """Ranks of ``keys`` (already sorted best first) in standard competition order, "1224": equal keys
    share the rank of the first of them, and the key after them is ranked by how many came before it.
    Ranking by position would rank employees with the same net deposit and score in code order (in ToFu
    and MoFu, which take no deposits, everyone's net deposit is 0)."""
    ranks: list[int] = []
    for index, key in enumerate(keys):
        ranks.append(ranks[-1] if index and key == keys[index - 1] else index + 1)
    return ranks


@dataclass(frozen=True)
class StalledCustomer:
    customer_code: str
    stage: str
    days_in_stage: int
    usual_days: int


# ClickHouse's codes for a column or table the query names and the marts lack: UNKNOWN_IDENTIFIER,
# NO_SUCH_COLUMN_IN_TABLE, UNKNOWN_TABLE.
_MISSING_IN_MARTS = re.compile(r"\bCode: (47|16|60)\b")


class MartsBehindCode(RuntimeError):
    """The marts lack a column or table this code reads: they were built by an older version (a deploy
    before the next build). Not the report's fault and not lasting: the next refresh rebuilds them with
    the current definitions, so a report run retries (runner.Incomplete) instead of failing for good."""


class MartReader:
    def __init__(self, client, database: str = DEFAULT_DATABASE):
        self.client = client
        self.database = database

    def _query(self, sql: str, parameters: dict | None = None):
        try:
            return self.client.query(sql, parameters=parameters)
        except DatabaseError as error:
            if _MISSING_IN_MARTS.search(str(error)):
                raise MartsBehindCode(
                    f"the marts in {self.database} lack what this version reads (built before it was "
                    f"deployed?): the next refresh rebuilds them. ClickHouse said: {str(error).splitlines()[0]}"
                ) from error
            raise

    def _table(self, name: str) -> str:
        if name not in MART_TABLES:  # a mart read but missing from MART_TABLES: not in the assets' deps
            raise ValueError(f"{name} is not one of MART_TABLES {MART_TABLES}")
        return f"`{self.database}`.`{name}`"

    @staticmethod
    def _scope_filter(column: str, scope: str) -> str:
        return "1" if scope == ALL_DEPARTMENTS else f"{column} = {{department:String}}"

    def daily_sums(self, scope: str, first_day: date, last_day: date) -> dict[date, dict]:
        """``{day: {metric: sum}}`` for every day in the window that has rows, within the scope."""
        c = KPI_DAILY
        sums = ", ".join(f"sum({c[name]}) AS out_{name}" for name in DAILY_SUMS)
        result = self._query(
            f"""SELECT {c["day"]} AS out_day, {sums}
                FROM {self._table(KPI_DAILY_TABLE)}
                WHERE {c["day"]} BETWEEN {{first:Date}} AND {{last:Date}} AND {self._scope_filter(c["department"], scope)}
                GROUP BY out_day ORDER BY out_day""",
            parameters={"first": first_day, "last": last_day, "department": scope},
        )
        days = {}
        for day, *sums_of_day in result.result_rows:
            days[day] = {name: as_number(value) for name, value in zip(DAILY_SUMS, sums_of_day, strict=True)}
        first_deposits = self.first_deposits(scope, first_day, last_day)
        for day, values in days.items():
            values["first_deposits"] = first_deposits.get(day, 0)
        for day, count in first_deposits.items():
            days.setdefault(day, {name: 0 for name in DAILY_SUMS})["first_deposits"] = count
        return dict(sorted(days.items()))

    def _employee_departments(self) -> str:
        """CTE: each employee's latest department. The customer mart names employees (assigned, first deposit), not their
        department, and the reports' database user sees the marts only (not dim_employees)."""
        c = KPI_DAILY
        return f"""employee_departments AS (
                    SELECT {c["employee_code"]} AS employee_code, argMax({c["department"]}, {c["day"]}) AS department
                    FROM {self._table(KPI_DAILY_TABLE)} GROUP BY employee_code)"""

    def first_deposits(self, scope: str, first_day: date, last_day: date) -> dict[date, int]:
        """Customers whose first confirmed deposit fell on each day, in the department of the employee who
        took it (as mart_employee_performance.first_deposits_* counts them, and as the deposit amounts
        go): the customer's assigned employee is usually in MoFu by then, which takes no deposits."""
        c = CUSTOMER_OVERVIEW
        result = self._query(
            f"""WITH {self._employee_departments()}
                SELECT o.{c["first_deposit_day"]} AS out_day, count() AS out_first_deposits
                FROM {self._table(CUSTOMER_OVERVIEW_TABLE)} AS o
                LEFT JOIN employee_departments AS d ON d.employee_code = o.{c["first_deposit_employee_code"]}
                WHERE o.{c["first_deposit_day"]} BETWEEN {{first:Date}} AND {{last:Date}}
                  AND {self._scope_filter("d.department", scope)}
                GROUP BY out_day""",
            parameters={"first": first_day, "last": last_day, "department": scope},
        )
        return {day: int(count) for day, count in result.result_rows}

    def leaderboard(self, scope: str, period: Period) -> list[LeaderboardRow]:
        """Every employee employed on a day of the period, best net deposit first, then best score (mean
        daily score over the days employed: the mart has a row for every employee on every day, before
        their hire too, and those zero days would drag a new hire's mean down): in a department that takes
        no deposits (ToFu, MoFu) everyone's net deposit is 0, and the score is what ranks them. An employee
        not active now (inactive, suspended) is left out unless they had activity in the period: a
        departed employee's empty days are no ranking."""
        c = KPI_DAILY
        p = EMPLOYEE_PERFORMANCE
        result = self._query(
            f"""WITH employees AS (
                    SELECT {p["employee_code"]} AS code, any({p["level"]}) AS level, any({p["status"]}) AS status
                    FROM {self._table(EMPLOYEE_PERFORMANCE_TABLE)} GROUP BY code)
                SELECT k.{c["employee_code"]} AS out_code,
                       argMax(k.{c["employee_name"]}, k.{c["day"]}) AS out_name,
                       argMax(k.{c["department"]}, k.{c["day"]}) AS out_department,
                       any(e.level) AS out_level,
                       sum(k.{c["net_deposit"]}) AS out_net_deposit,
                       round(avgIf(k.{c["overall_score"]}, k.{c["is_employed"]} = 1), 2) AS out_score
                FROM {self._table(KPI_DAILY_TABLE)} AS k
                LEFT JOIN employees AS e ON e.code = k.{c["employee_code"]}
                WHERE k.{c["day"]} BETWEEN {{first:Date}} AND {{last:Date}}
                  AND {self._scope_filter("k." + c["department"], scope)}
                GROUP BY out_code
                HAVING countIf(k.{c["is_employed"]} = 1) > 0
                   AND (any(e.status) = 'active' OR countIf({self._has_any_activity("k.")}) > 0)
                ORDER BY out_net_deposit DESC, out_score DESC NULLS LAST, out_code""",
            parameters={"first": period.start, "last": period.end, "department": scope},
        )
        rows = [
            (
                code,
                name,
                department,
                level,
                as_number(net_deposit),
                None if score is None else Decimal(str(score)).quantize(Decimal("0.01")),
            )
            for code, name, department, level, net_deposit, score in result.result_rows
        ]
        # ranked on what the ORDER BY sorts on (the score as rounded there), so ties are exactly the rows
        # the ORDER BY cannot tell apart but by code
        ranks = competition_ranks([(net_deposit, score) for *_, net_deposit, score in rows])
        return [
            LeaderboardRow(
                employee_code=code,
                employee_name=name or "",
                department=department or "",
                level=level or "",
                net_deposit=net_deposit,
                overall_score=score,
                rank=rank,
            )
            for (code, name, department, level, net_deposit, score), rank in zip(rows, ranks, strict=True)
        ]

    def customer_as_of_date(self) -> date | None:
        """The customer mart's build date (its as_of_date: days_in_current_stage counts to it); None when
        the mart is empty (ClickHouse's max() over no rows is the epoch)."""
        (day,) = self._query(
            f"SELECT max({CUSTOMER_OVERVIEW['as_of']}) FROM {self._table(CUSTOMER_OVERVIEW_TABLE)}"
        ).first_row
        return day if day and day.year > 1970 else None

    def stalled_as_of(self, last_day: date) -> date | None:
        """The day a report ending on ``last_day`` lists stalled customers as of: that day, or the customer
        mart's build date when it was built before it (a preliminary report: the days after it have not
        happened in it); None when the customer mart is empty. Not the KPI mart's build date: Dagster builds
        that mart in a job of its own, which can be as of another day."""
        as_of_date = self.customer_as_of_date()
        return None if as_of_date is None else min(last_day, as_of_date)

    def stalled_customers(self, scope: str, as_of: date | None, limit: int = 10) -> list[StalledCustomer]:
        """Active customers (codes only: a report never carries contact details) longest past their stage's
        usual stay, as of ``as_of`` (the report period's last day, from stalled_as_of): a report of a past
        period, re-sent or backfilled, shows that period, not the day it is rendered.

        The customer mart has only each customer's current stage and the days since entering it, counted to
        the mart's own build date (its as_of_date column, not the KPI mart's: see stalled_as_of): on
        ``as_of`` those days were fewer by the days from then to that date. A customer who entered the
        current stage after ``as_of`` was in another stage then, which the mart does not keep: such a
        customer is neither listed nor counted in the usual stay, which is over every active customer in
        the stage on ``as_of`` (so a department is compared with the firm). Status and department are the
        current ones, the only ones the marts keep."""
        if as_of is None:
            return []
        c = CUSTOMER_OVERVIEW
        settled = ", ".join(f"'{stage}'" for stage in SETTLED_STAGES)
        result = self._query(
            f"""WITH in_stage AS (
                    SELECT {c["customer_code"]} AS out_code, {c["stage"]} AS out_stage,
                           {c["employee_code"]} AS out_employee_code,
                           -- the days from as_of to the row's own build date; none when as_of is later
                           toInt64({c["days_in_stage"]})
                             - greatest(0, dateDiff('day', {{as_of:Date}}, {c["as_of"]})) AS out_days
                    FROM {self._table(CUSTOMER_OVERVIEW_TABLE)}
                    WHERE {c["stage"]} NOT IN ({settled}) AND {c["days_in_stage"]} IS NOT NULL
                      AND {c["status"]} = 'active' AND out_days >= 0),
                usual AS (
                    SELECT out_stage AS stage, toInt64(ceil(quantileExact({USUAL_STAGE_QUANTILE})(out_days))) AS usual_days
                    FROM in_stage GROUP BY stage),
                {self._employee_departments()}
                SELECT s.out_code, s.out_stage, s.out_days, u.usual_days AS out_usual
                FROM in_stage AS s
                INNER JOIN usual AS u ON u.stage = s.out_stage
                LEFT JOIN employee_departments AS d ON d.employee_code = s.out_employee_code
                WHERE s.out_days > u.usual_days AND {self._scope_filter("d.department", scope)}
                ORDER BY s.out_days - out_usual DESC, s.out_code
                LIMIT {int(limit)}""",
            parameters={"department": scope, "as_of": as_of},
        )
        return [StalledCustomer(*row) for row in result.result_rows]

    @staticmethod
    def _has_activity(prefix: str = "") -> str:
        """A KPI row with any non-zero number the report sums. mart_kpi_employee_daily is on a date
        spine (every employee, every day up to the build date), so a row alone proves nothing."""
        return "(" + " OR ".join(f"{prefix}{KPI_DAILY[name]} != 0" for name in DAILY_SUMS) + ")"

    @classmethod
    def _has_any_activity(cls, prefix: str = "") -> str:
        """A KPI row showing the employee at work: anything the report sums, a counter-question, or an
        operational employee_kpis report for the day (a reported day of zeros is still a working day)."""
        extra = " OR ".join(
            f"{prefix}{KPI_DAILY[name]} != 0" for name in ("counter_questions", "has_reported_kpis")
        )
        return f"({cls._has_activity(prefix)} OR {extra})"

    def activity_range(self) -> tuple[date, date] | None:
        """The first and last day with any activity in the KPI mart, or None when it has none."""
        day = KPI_DAILY["day"]
        first, last = self._query(
            f"SELECT min({day}), max({day}) FROM {self._table(KPI_DAILY_TABLE)} WHERE {self._has_activity()}"
        ).first_row
        # min/max over no rows are the epoch, not NULL
        return (first, last) if last and last.year > 1970 else None

    def has_activity(self, first_day: date, last_day: date) -> bool:
        """Whether any employee of any department has activity on a day of [first_day, last_day]."""
        day = KPI_DAILY["day"]
        rows = self._query(
            f"""SELECT 1 FROM {self._table(KPI_DAILY_TABLE)}
                WHERE {day} BETWEEN {{first:Date}} AND {{last:Date}} AND {self._has_activity()} LIMIT 1""",
            parameters={"first": first_day, "last": last_day},
        ).result_rows
        return bool(rows)

    def latest_kpi_day(self) -> date | None:
        """The newest day with activity in the KPI mart: the report's data freshness (not the date
        spine's end, which is the build date whether or not any data arrived for it)."""
        days = self.activity_range()
        return days[1] if days else None
