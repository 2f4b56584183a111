"""Every number in a rendered report equals the mart's value, read back from the HTML.

The expected values come from SQL written here, independently of ``ingestion.reports.data``: a
shared bug in the report's queries would otherwise agree with itself.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from ingestion.reports import content, render
from ingestion.reports.data import MartReader
from ingestion.reports.periods import Period
from tests.reports import sample_marts
from tests.reports.conftest import MARTS_DATABASE, REPORT_DAY
from tests.reports.report_html import by_metric, numbers, shown_value
from tests.reports.sample_marts import customer_contact

HEADLINE_SQL = """
    SELECT sum(bofu_net_deposit), sum(bofu_deposit_amount), sum(bofu_withdrawal_amount), sum(mofu_accounts_opened),
           sum(tofu_contacts), sum(tofu_retained), sum(mofu_quality_conversations)
    FROM {database}.mart_kpi_employee_daily
    WHERE kpi_date BETWEEN {{first:Date}} AND {{last:Date}} AND ({{scope:String}} = 'all' OR department = {{scope:String}})"""
# A first deposit is the department's of the employee who took it (not of the one the customer is assigned to).
FIRST_DEPOSITS_SQL = """
    SELECT count() FROM {database}.mart_customer_overview
    WHERE first_deposit_date BETWEEN {{first:Date}} AND {{last:Date}}
      AND ({{scope:String}} = 'all' OR first_deposit_employee_code IN (
          SELECT employee_code FROM {database}.mart_kpi_employee_daily WHERE department = {{scope:String}}))"""


def percent(part, whole) -> Decimal | None:
    return (
        None if not whole else (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    )


def mart_headline(client, scope: str, period: Period, database: str = MARTS_DATABASE) -> dict:
    parameters = {"first": period.start, "last": period.end, "scope": scope}
    net, deposits, withdrawals, opened, contacts, retained, quality = client.query(
        HEADLINE_SQL.format(database=database), parameters=parameters
    ).first_row
    first_deposits = client.query(
        FIRST_DEPOSITS_SQL.format(database=database), parameters=parameters
    ).first_row[0]
    return {
        "net_deposit": Decimal(net or 0),
        "deposits": Decimal(deposits or 0),
        "withdrawals": Decimal(withdrawals or 0),
        "withdrawal_rate": percent(withdrawals, deposits),
        "accounts_opened": opened or 0,
        "first_deposits": first_deposits or 0,
        "new_contacts": contacts or 0,
        "group_retention": percent(retained, contacts),
        "quality_conversations": quality or 0,
        "retained": retained or 0,
    }


# A day that shows the employee at work: any counted or summed metric, or an operational employee_kpis report.
WORKED = (
    "tofu_contacts != 0 OR tofu_retained != 0 OR mofu_quality_conversations != 0 OR mofu_counter_question_count != 0"
    " OR mofu_accounts_opened != 0 OR bofu_deposits_count != 0 OR bofu_deposit_amount != 0"
    " OR bofu_withdrawal_amount != 0 OR has_reported_kpis = 1"
)


def mart_leaderboard(client, database: str, scope: str, period: Period) -> list[tuple]:
    """(code, net deposit, mean score over the days employed), ranked: the employees employed on a day of
    the period who are active now or worked in it."""
    return client.query(
        f"""SELECT employee_code, sum(bofu_net_deposit) AS net, round(avgIf(overall_score, is_employed = 1), 2) AS score
            FROM {database}.mart_kpi_employee_daily
            WHERE kpi_date BETWEEN {{first:Date}} AND {{last:Date}} AND ({{scope:String}} = 'all' OR department = {{scope:String}})
            GROUP BY employee_code
            HAVING max(is_employed) = 1 AND (max({WORKED}) = 1 OR employee_code IN (
                SELECT employee_code FROM {database}.mart_employee_performance WHERE employee_status = 'active'))
            ORDER BY net DESC, score DESC, employee_code""",
        parameters={"first": period.start, "last": period.end, "scope": scope},
    ).result_rows


def as_decimal(text: str) -> Decimal | None:
    return None if text == "" else Decimal(text)


@pytest.mark.parametrize(
    ("scope", "language", "kind"),
    [
        ("all", "zh", "daily"),
        ("BoFu", "en", "daily"),
        ("培训", "zh", "weekly"),
        ("all", "en", "weekly"),
    ],
)
def test_every_number_equals_the_mart(marts, reader, scope, language, kind):
    client = marts[0]
    period = Period.daily(REPORT_DAY) if kind == "daily" else Period.weekly(REPORT_DAY - timedelta(days=7))
    report = render.render(content.gather(reader, scope, period), language, with_pdf=False)
    shown = by_metric(report.html)

    expected = mart_headline(client, scope, period)
    for metric, value in expected.items():
        if metric == "retained":
            continue
        assert as_decimal(shown[f"headline.{metric}"].value) == value, metric
    # the funnel counts customers, stage by stage (quality conversations are a headline KPI only)
    for stage in ("new_contacts", "retained", "accounts_opened", "first_deposits"):
        assert as_decimal(shown[f"funnel.{stage}"].value) == expected[stage], stage

    comparisons = {"previous": period.shifted(1 if kind == "daily" else 7)}
    if kind == "daily":
        comparisons["last_week"] = period.shifted(7)
    for name, compared in comparisons.items():
        base = mart_headline(client, scope, compared)
        for metric in (
            "net_deposit",
            "deposits",
            "withdrawals",
            "withdrawal_rate",
            "accounts_opened",
            "first_deposits",
            "new_contacts",
            "group_retention",
            "quality_conversations",
        ):
            change = shown[f"change.{name}.{metric}"]
            assert as_decimal(change.attributes["data-base"]) == base[metric], (name, metric)
            current, previous = expected[metric], base[metric]
            if metric in ("withdrawal_rate", "group_retention"):
                wanted = None if current is None or previous is None else current - previous
            else:
                wanted = (
                    None
                    if not previous
                    else ((Decimal(current) - previous) * 100 / abs(Decimal(previous))).quantize(
                        Decimal("0.01"), ROUND_HALF_UP
                    )
                )
            assert as_decimal(change.value) == wanted, (name, metric)

    leaderboard = mart_leaderboard(client, MARTS_DATABASE, scope, period)[:10]
    rows = {}
    for number in numbers(report.html):
        if "data-employee" in number.row:
            rows.setdefault(number.row["data-employee"], {})[number.metric] = as_decimal(number.value)
    assert list(rows) == [code for code, _, _ in leaderboard]  # same people, same order
    for code, net_deposit, score in leaderboard:
        assert rows[code]["leaderboard.net_deposit"] == net_deposit
        assert rows[code]["leaderboard.overall_score"] == Decimal(str(score)).quantize(Decimal("0.01"))


def test_where_nobody_takes_deposits_the_score_ranks_the_leaderboard(marts):
    """ToFu and MoFu take no deposits: every net deposit there is 0, and a leaderboard in employee-code
    order would rank nobody. The mean score breaks the tie."""
    client, _ = marts
    database = "reports_no_deposits"
    sample_marts.build(client, database)
    client.command(
        f"ALTER TABLE `{database}`.mart_kpi_employee_daily UPDATE bofu_deposit_amount = 0,"
        " bofu_withdrawal_amount = 0, bofu_net_deposit = 0 WHERE department = 'ToFu'"
        " SETTINGS mutations_sync = 2"
    )
    board = MartReader(client, database).leaderboard("ToFu", Period.weekly(REPORT_DAY - timedelta(days=7)))
    assert len(board) > 2 and {row.net_deposit for row in board} == {0}
    scores = [row.overall_score for row in board]
    assert len(set(scores)) > 1 and scores == sorted(scores, reverse=True)


def test_the_leaderboard_counts_days_of_employment_and_leaves_out_idle_departed_employees(marts):
    """The KPI mart has a row for every employee on every day, before their hire and after they left too.
    A mid-period hire's mean score is over the days since the hire (the zero days before would dilute
    it); a suspended or inactive employee with no activity in the period is not ranked, one who worked
    in it (a reported KPI day counts) is, and nobody hired after the period is."""
    client, _ = marts
    database = "reports_leaderboard_employment"
    sample_marts.build(client, database)
    period = Period.weekly(REPORT_DAY - timedelta(days=7))
    hire_day = period.start + timedelta(days=3)
    kpis = f"`{database}`.mart_kpi_employee_daily"
    reported_day = client.query(  # a day the sample has a row for (it leaves some days off)
        f"SELECT max(kpi_date) FROM {kpis} WHERE employee_code = 'EMP_0_003' AND kpi_date <= {{last:Date}}",
        parameters={"last": period.end},
    ).first_row[0]
    assert reported_day >= period.start
    idle = (
        "tofu_contacts = 0, tofu_retained = 0, mofu_quality_conversations = 0, mofu_counter_question_count = 0,"
        " mofu_accounts_opened = 0, bofu_deposits_count = 0, bofu_deposit_amount = 0, bofu_withdrawal_amount = 0,"
        " bofu_net_deposit = 0, overall_score = 0, has_reported_kpis = 0"
    )
    for statement in (
        # EMP_0_000 joined mid-period: before that, spine days of zeros, as the real mart writes them
        f"ALTER TABLE {kpis} UPDATE {idle}, is_employed = 0 WHERE employee_code = 'EMP_0_000' AND kpi_date < '{hire_day}'",
        # EMP_0_001 is joining after the period
        f"ALTER TABLE {kpis} UPDATE {idle}, is_employed = 0 WHERE employee_code = 'EMP_0_001' AND kpi_date > '{period.start - timedelta(days=30)}'",
        # EMP_0_002 (suspended) did nothing in the period; EMP_0_003 (suspended) only reported one day of zeros
        f"ALTER TABLE {kpis} UPDATE {idle} WHERE employee_code IN ('EMP_0_002', 'EMP_0_003') AND kpi_date >= '{period.start}'",
        f"ALTER TABLE {kpis} UPDATE has_reported_kpis = 1 WHERE employee_code = 'EMP_0_003' AND kpi_date = '{reported_day}'",
        # EMP_1_000 (inactive) worked in the period
        f"ALTER TABLE `{database}`.mart_employee_performance UPDATE employee_status = if(employee_code = 'EMP_1_000',"
        " 'inactive', 'suspended') WHERE employee_code IN ('EMP_0_002', 'EMP_0_003', 'EMP_1_000')",
    ):
        client.command(statement + " SETTINGS mutations_sync = 2")
    reader = MartReader(client, database)

    tofu = {row.employee_code: row for row in reader.leaderboard("ToFu", period)}
    assert sorted(tofu) == ["EMP_0_000", "EMP_0_003"]  # not EMP_0_001 (hired later), nor EMP_0_002 (idle)
    scores = client.query(
        f"SELECT kpi_date, overall_score FROM {kpis} WHERE employee_code = 'EMP_0_000'"
        " AND kpi_date BETWEEN {first:Date} AND {last:Date}",
        parameters={"first": period.start, "last": period.end},
    ).result_rows
    since_hire = [score for day, score in scores if day >= hire_day]
    assert len(since_hire) < len(scores)
    mean_since_hire, mean_of_every_day = (
        sum(since_hire) / len(since_hire),
        sum(s for _, s in scores) / len(scores),
    )
    assert abs(tofu["EMP_0_000"].overall_score - mean_since_hire) <= Decimal("0.005")  # rounded to the cent
    assert mean_of_every_day < mean_since_hire - 1  # what the days before the hire would have made of it
    assert "EMP_1_000" in {row.employee_code for row in reader.leaderboard("MoFu", period)}
    assert [row.employee_code for row in reader.leaderboard("all", period)] == [
        code for code, _, _ in mart_leaderboard(client, database, "all", period)
    ]


def test_what_a_reader_sees_is_the_exact_value(reader):
    """The formatted text parses back to data-value (to the displayed precision) for every number."""
    report = render.render(content.gather(reader, "all", Period.daily(REPORT_DAY)), "zh", with_pdf=False)
    checked = 0
    for number in numbers(report.html):
        if number.value == "":
            assert number.text.strip() == "–"
            continue
        if number.metric == "footer.latest_data_day":
            assert number.text.strip() == number.value == REPORT_DAY.isoformat()
            continue
        assert shown_value(number.text) == Decimal(number.value), number
        checked += 1
    assert checked > 40


def test_stalled_customers_are_past_their_stage_usual_stay(marts, reader):
    client = marts[0]
    department_of = {person.code: person.department for person in marts[1]}
    stays = client.query(
        f"SELECT customer_code, current_stage, days_in_current_stage, employee_code, customer_status "
        f"FROM {MARTS_DATABASE}.mart_customer_overview"
    ).result_rows
    days_by_stage: dict[str, list[int]] = {}
    for _, stage, days, _, status in stays:
        if status == "active":  # the usual stay is the active customers' (lost ones never move on)
            days_by_stage.setdefault(stage, []).append(days)
    report = render.render(content.gather(reader, "MoFu", Period.daily(REPORT_DAY)), "en", with_pdf=False)
    stalled = {}
    for number in numbers(report.html):
        if "data-customer" in number.row:
            stalled.setdefault(number.row["data-customer"], {})[number.metric] = int(number.value)
    assert stalled, "the sample marts have customers past the usual stay"
    customers = {
        code: (stage, days, department_of[owner], status) for code, stage, days, owner, status in stays
    }
    for code, shown in stalled.items():
        stage, days, department, status = customers[code]
        assert department == "MoFu" and status == "active" and stage not in ("Loyal", "Advocate")
        assert shown["stalled.days_in_stage"] == days
        ordered = sorted(days_by_stage[stage])
        # ClickHouse's quantileExact(0.9): the element at index floor(0.9 * n) of the sorted stays
        assert days > shown["stalled.usual_days"] == ordered[min(int(0.9 * len(ordered)), len(ordered) - 1)]


def test_no_customer_contact_details_anywhere(reader):
    report = render.render(content.gather(reader, "all", Period.daily(REPORT_DAY)), "zh", with_pdf=False)
    everything = report.html + report.text + report.leaderboard_csv.decode("utf-8-sig")
    for index in range(400):
        for secret in customer_contact(index):
            assert secret not in everything
    assert "CUST_" in report.html  # codes are there, and only codes
