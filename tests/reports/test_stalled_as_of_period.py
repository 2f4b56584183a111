"""Stalled customers are as of the reported period's last day, not as of the build date.

mart_customer_overview counts days_in_current_stage to its own build date, its as_of_date column (the KPI
mart, built by another Dagster job, can end its date spine on another day). A weekly report of a past week
(a re-send, a late delivery, a backfill) must count them to the week's last day, and compare them with the
customers in the stage on that day: a customer who entered the stage after the week neither stalled in it
nor makes the stage's "usual stay" shorter. Hand-made marts on
the real ClickHouse server, in their own database; customers carry contact columns to prove none is shown.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ingestion.reports import content, i18n, render
from ingestion.reports.data import MartReader, StalledCustomer
from ingestion.reports.periods import Period
from tests.reports import sample_marts
from tests.reports.report_html import numbers

DATABASE = "reports_stalled_as_of"
BUILD_DATE = sample_marts.END_DATE  # Thursday 2026-11-26: the marts' build date unless a test moves one
WEEK = Period.weekly(date(2026, 11, 18))  # Monday 11-16 to Sunday 11-22, four days before the build date
MOFU_EMPLOYEE = "EMP_1_000"  # sample_marts: department index 1 is MoFu

LATE = "CUST_LATE"  # in Trust for 56 days on the week's last day: stalled then
BORDERLINE = "CUST_T28"  # in Trust for 24 days on the week's last day: the usual stay then, not more
MOVER = "CUST_T10"  # in Trust during the week, moved to Engage after it
STUCK_MOVER = "CUST_STUCK"  # stalled in Action during the week, moved on to Subscribe after it


def _customer(index: int, code: str, stage: str, days: int | None) -> list:
    name, email, phone, wechat = sample_marts.customer_contact(index)
    return [code, name, email, phone, wechat, stage, days, MOFU_EMPLOYEE, "active", None, None]


def _customers(days_later: int, moved: bool) -> list[list]:
    """The customer mart built ``days_later`` days after BUILD_DATE; ``moved``: MOVER and STUCK_MOVER have
    left their stage since (the mart keeps only the current stage, entered after the week)."""
    rows = [_customer(0, LATE, "Trust", 60 + days_later)]
    # Trust's usual stay during the week: 19 customers in it for 6..24 days on its last day
    for index, days in enumerate(range(10, 29), start=1):
        rows.append(_customer(index, f"CUST_T{days}", "Trust", days + days_later))
    # Ten customers who entered Trust after the week (0..3 days before the build date): in the old report
    # they pulled Trust's usual stay down to 27 days, so BORDERLINE (28) stalled
    for index, days in enumerate((0, 0, 1, 1, 2, 2, 3, 3, 3, 3), start=100):
        rows.append(_customer(index, f"CUST_NEW{index}", "Trust", days + days_later))
    # Action: STUCK_MOVER stalled (40 days on the week's last day) beside 19 customers in it for 3..20 days
    # (20 twice, so that the stage's usual stay, 20, is the same with and without STUCK_MOVER)
    rows.append(_customer(200, STUCK_MOVER, *(("Subscribe", 3) if moved else ("Action", 44 + days_later))))
    for index, days in enumerate([*range(7, 25), 24], start=201):
        rows.append(_customer(index, f"CUST_A{index}", "Action", days + days_later))
    if moved:
        rows = [_customer(10, MOVER, "Engage", 2) if row[0] == MOVER else row for row in rows]
    return rows


def _build(
    client, people, days_later: int = 0, moved: bool = False, kpi_days_later: int | None = None
) -> MartReader:
    """The sample marts with the customers above, the customer mart built as of ``days_later`` days past
    BUILD_DATE (its as_of_date), the KPI spine running ``kpi_days_later`` days past it (by default as many:
    both built the same day)."""
    sample_marts.build(client, DATABASE, customers=0, people=people)
    kpi_days_later = days_later if kpi_days_later is None else kpi_days_later
    if kpi_days_later:
        first = BUILD_DATE + timedelta(days=1)
        sample_marts.add_spine_days(
            client, DATABASE, people, first, BUILD_DATE + timedelta(days=kpi_days_later)
        )
    as_of_date = BUILD_DATE + timedelta(days=days_later)
    client.insert(
        f"`{DATABASE}`.`mart_customer_overview`",
        [[*row, as_of_date] for row in _customers(days_later, moved)],  # as_of_date: the last column
        column_names=[name for name, _ in sample_marts.CUSTOMER_COLUMNS],
    )
    return MartReader(client, DATABASE)


def _stalled(reader: MartReader, period: Period, scope: str = "all") -> list[StalledCustomer]:
    return content.gather(reader, scope, period).stalled


def test_a_past_weeks_report_counts_the_days_to_the_weeks_last_day(marts):
    client, people = marts
    reader = _build(client, people)
    gathered = content.gather(reader, "MoFu", WEEK)
    # days and usual stays as of Sunday 11-22 (the build date minus 4), among the customers in the stage
    # then: neither the 60 days of the build date nor BORDERLINE, who was at Trust's usual 24 days
    assert gathered.stalled == [
        StalledCustomer(LATE, "Trust", 56, 24),
        StalledCustomer(STUCK_MOVER, "Action", 40, 20),
    ]
    assert gathered.stalled_as_of == WEEK.end

    # a daily report: as of its day (the build date minus 6)
    assert _stalled(reader, Period.daily(date(2026, 11, 20))) == [
        StalledCustomer(LATE, "Trust", 54, 22),
        StalledCustomer(STUCK_MOVER, "Action", 38, 18),
    ]
    # a week not over at the build date (a preliminary report): as of the build date, as the mart has it
    current = content.gather(reader, "all", Period.weekly(BUILD_DATE))
    assert current.stalled_as_of == BUILD_DATE
    assert current.stalled == [
        StalledCustomer(LATE, "Trust", 60, 27),
        StalledCustomer(STUCK_MOVER, "Action", 44, 24),
        StalledCustomer(BORDERLINE, "Trust", 28, 27),
    ]
    # the usual stay is the firm's, the list the department's
    assert _stalled(reader, WEEK, "ToFu") == []


def test_the_same_week_re_sent_later_shows_the_same_customers_and_days(marts):
    """Rebuilt two weeks later, every day count has grown by 14 and the report of the week is the same, but
    for a customer who has moved to another stage since: the mart keeps only the current stage, so the
    week's stage of that customer is unknown and it is no longer listed (the rule the report's footer
    states). A customer who moved on leaves the stage's usual stay too; here that stays 20 days."""
    client, people = marts
    _build(client, people)
    before = _stalled(MartReader(client, DATABASE), WEEK)
    later = _stalled(_build(client, people, days_later=14, moved=True), WEEK)
    assert before == [StalledCustomer(LATE, "Trust", 56, 24), StalledCustomer(STUCK_MOVER, "Action", 40, 20)]
    assert later == [StalledCustomer(LATE, "Trust", 56, 24)]


@pytest.mark.parametrize(
    ("kpi_days_later", "customer_days_later"),
    [
        # the customer mart rebuilt later: with the KPI mart's date its customers stayed 2 days longer
        (2, 4),
        # the KPI mart rebuilt later (the customer mart's job failed): 3 days shorter
        (3, 0),
    ],
)
def test_the_days_count_to_the_customer_marts_own_build_date_not_the_kpi_marts(
    marts, kpi_days_later, customer_days_later
):
    """Dagster builds the KPI mart in a job of its own: the two marts can be as of different days. The
    customer mart's day counts are to its as_of_date, so the week's report is the one of marts built together;
    with the KPI mart's last day, the first case listed LATE at 58 days and BORDERLINE too, counting six
    customers who entered Trust after the week."""
    client, people = marts
    reader = _build(client, people, days_later=customer_days_later, kpi_days_later=kpi_days_later)
    gathered = content.gather(reader, "all", WEEK)
    assert gathered.stalled == [
        StalledCustomer(LATE, "Trust", 56, 24),
        StalledCustomer(STUCK_MOVER, "Action", 40, 20),
    ]
    assert gathered.stalled_as_of == WEEK.end
    # a report of the KPI mart's last day: as of the customer mart's build date when that is earlier
    kpi_last_day = BUILD_DATE + timedelta(days=kpi_days_later)
    assert reader.stalled_as_of(kpi_last_day) == min(
        kpi_last_day, BUILD_DATE + timedelta(days=customer_days_later)
    )


def test_an_empty_customer_mart_lists_no_stalled_customers(marts):
    """No customer mart rows, no build date to count to (the KPI mart's is not the customer mart's)."""
    client, people = marts
    sample_marts.build(client, DATABASE, customers=0, people=people)
    gathered = content.gather(MartReader(client, DATABASE), "all", WEEK)
    assert (gathered.stalled, gathered.stalled_as_of) == ([], None)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_report_shows_the_days_of_the_week_states_the_rule_and_no_contact_details(marts, language):
    client, people = marts
    reader = _build(client, people, days_later=3)
    report = render.render(content.gather(reader, "all", WEEK), language, with_pdf=False)
    shown = {
        (n.row["data-customer"], n.metric): n.value
        for n in numbers(report.html)
        if n.row.get("data-customer")
    }
    assert shown == {
        (LATE, "stalled.days_in_stage"): "56",
        (LATE, "stalled.usual_days"): "24",
        (STUCK_MOVER, "stalled.days_in_stage"): "40",
        (STUCK_MOVER, "stalled.usual_days"): "20",
    }
    assert f"- {STUCK_MOVER} {i18n.stage_name('Action', language)}: 40 " in report.text
    # the footer states the rule: days to the period's end, customers who moved on since not listed
    footer = i18n.texts(language)["no_customer_details"]
    assert footer in report.text and footer in report.html
    assert {"en": "moved to another stage", "zh": "已进入其他阶段"}[language] in footer
    contacts = [value for index in (0, 200) for value in sample_marts.customer_contact(index)]
    assert not [secret for secret in contacts if secret in report.html + report.text]
