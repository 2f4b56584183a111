"""The leaderboard CSV opens in a spreadsheet: a name that looks like a formula stays text."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from types import SimpleNamespace

from ingestion.reports.render import leaderboard_csv


def _row(code: str, name: str, net: Decimal) -> SimpleNamespace:
    return SimpleNamespace(
        employee_code=code,
        employee_name=name,
        department="BoFu",
        level="senior",
        net_deposit=net,
        overall_score=None,
    )


def test_formula_like_names_are_written_as_text_and_numbers_stay_numbers():
    content = SimpleNamespace(
        leaderboard=[
            _row("EMP_001", '=HYPERLINK("http://evil.example","点我")', Decimal("-1200.50")),
            _row("EMP_002", "@SUM(A1:A9)", Decimal("300")),
            _row("EMP_003", "王芳", Decimal("0")),
        ]
    )
    rows = list(csv.reader(io.StringIO(leaderboard_csv(content).decode("utf-8-sig"))))
    names = [row[2] for row in rows[1:]]
    assert names == ['\'=HYPERLINK("http://evil.example","点我")', "'@SUM(A1:A9)", "王芳"]
    assert [row[5] for row in rows[1:]] == ["-1200.50", "300", "0"]  # a negative amount is no formula
