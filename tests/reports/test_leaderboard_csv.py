"""The leaderboard CSV opens in a spreadsheet: a name that looks like a formula stays text. Employees tied
on net deposit and score share their rank, in the CSV as in the mail's HTML and text."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from ingestion.reports import content, render
from ingestion.reports.data import MartReader, competition_ranks
from ingestion.reports.periods import Period
from ingestion.reports.render import leaderboard_csv
from tests.reports import sample_marts
from tests.reports.conftest import REPORT_DAY


def _row(code: str, name: str, net: Decimal, rank: int) -> SimpleNamespace:
    return SimpleNamespace(
        employee_code=code,
        employee_name=name,
        department="BoFu",
        level="senior",
        net_deposit=net,
        overall_score=None,
        rank=rank,
    )


def _csv_rows(report_csv: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(report_csv.decode("utf-8-sig"))))[1:]


def test_formula_like_names_are_written_as_text_and_numbers_stay_numbers():
    report_content = SimpleNamespace(
        leaderboard=[
            _row("EMP_001", '=HYPERLINK("http://evil.example","点我")', Decimal("-1200.50"), 1),
            _row("EMP_002", "@SUM(A1:A9)", Decimal("300"), 2),
            _row("EMP_003", "王芳", Decimal("0"), 2),
        ]
    )
    rows = _csv_rows(leaderboard_csv(report_content))
    names = [row[2] for row in rows]
    assert names == ['\'=HYPERLINK("http://evil.example","点我")', "'@SUM(A1:A9)", "王芳"]
    assert [row[5] for row in rows] == ["-1200.50", "300", "0"]  # a negative amount is no formula
    assert [row[0] for row in rows] == ["1", "2", "2"]  # the row's rank, not its position


def test_equal_keys_share_a_competition_rank():
    keys = [
        (Decimal("10"), Decimal("1")),
        (Decimal("0"), Decimal("50")),
        (Decimal("0"), Decimal("50.00")),
        (Decimal("0"), None),
        (Decimal("0"), None),
        (Decimal("-5"), Decimal("99")),
    ]
    assert competition_ranks(keys) == [1, 2, 2, 4, 4, 6]
    assert competition_ranks([]) == []


def test_tied_employees_share_their_rank_in_the_html_the_text_and_the_csv(marts):
    """ToFu takes no deposits: with equal mean scores, two employees are tied, and the one after them is
    fourth, whatever their employee codes."""
    client, _ = marts
    database = "reports_tied_ranks"
    sample_marts.build(client, database)
    client.command(
        f"ALTER TABLE `{database}`.mart_kpi_employee_daily UPDATE bofu_deposit_amount = 0,"
        " bofu_withdrawal_amount = 0, bofu_net_deposit = 0, overall_score = multiIf("
        "employee_code = 'EMP_0_000', 80, employee_code = 'EMP_0_003', 10, 50)"
        " WHERE department = 'ToFu' SETTINGS mutations_sync = 2"
    )
    period = Period.weekly(REPORT_DAY - timedelta(days=7))
    report = render.render(content.gather(MartReader(client, database), "ToFu", period), "en", with_pdf=False)
    expected = {"EMP_0_000": 1, "EMP_0_001": 2, "EMP_0_002": 2, "EMP_0_003": 4}

    html_ranks = re.findall(r'<tr data-employee="([^"]+)">\s*<td[^>]*>(\d+)</td>', report.html)
    text_ranks = re.findall(r"^(\d+)\. (EMP_\S+) ", report.text, flags=re.MULTILINE)
    csv_ranks = [(row[1], row[0]) for row in _csv_rows(report.leaderboard_csv)]
    assert {code: int(rank) for code, rank in html_ranks} == expected
    assert {code: int(rank) for rank, code in text_ranks} == expected
    assert {code: int(rank) for code, rank in csv_ranks} == expected
