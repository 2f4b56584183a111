"""Rules every dbt model keeps, checked on the project's SQL (no server needed)."""

from __future__ import annotations

import re
from pathlib import Path

DBT_SQL = sorted((Path(__file__).resolve().parents[2] / "dbt_project").glob("**/*.sql"))


def test_no_model_reads_the_server_clock_for_today():
    """ "Today" is the as_of_date macro (a UTC day, or the as_of_date var): the server's today() would
    put the KPI spine's end, this month and the 7/30-day windows off on a server not on UTC."""
    readers = [
        f"{path.relative_to(path.parents[2])}:{number}"
        for path in DBT_SQL
        if "target" not in path.parts and "dbt_packages" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\btoday\(\)|\bnow\(\)|\bnow64\(\)", line)
    ]
    assert DBT_SQL and readers == []
