"""The report schedule's settings: a value that cannot be used is a ConfigurationError naming the
variable and what it must hold (the console script prints it as one line), not a ValueError of int()
or strptime, or Dagster's refusal of the schedule made from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.environment import ConfigurationError, hour_setting

HOUR = "FUNNELHOUSE_REPORT_HOUR"


@pytest.mark.parametrize("value", ["nine", "9.5", "-1", "24", "٣", "0x9"])
def test_a_report_hour_that_is_no_hour_of_the_day_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(HOUR, value)
    with pytest.raises(ConfigurationError, match=rf"^{HOUR} must be a whole hour from 0 to 23, not "):
        hour_setting(HOUR, 9)


@pytest.mark.parametrize(("value", "hour"), [(None, 9), ("", 9), (" 7 ", 7), ("0", 0), ("23", 23), ("09", 9)])
def test_a_report_hour_defaults_to_nine_and_takes_every_hour_of_the_day(monkeypatch, value, hour):
    if value is None:
        monkeypatch.delenv(HOUR, raising=False)
    else:
        monkeypatch.setenv(HOUR, value)
    assert hour_setting(HOUR, 9) == hour


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (HOUR, "nine", f"{HOUR} must be a whole hour from 0 to 23, not 'nine'"),
        (HOUR, "24", f"{HOUR} must be a whole hour from 0 to 23, not '24'"),
        (
            "FUNNELHOUSE_REPORT_TIMEZONE",
            "Mars/Base",
            "FUNNELHOUSE_REPORT_TIMEZONE must be an IANA time zone such as Asia/Shanghai, not 'Mars/Base'",
        ),
        (
            "FUNNELHOUSE_REPORT_START",
            "2026-13-01",
            "FUNNELHOUSE_REPORT_START must be a day as YYYY-MM-DD, not '2026-13-01'",
        ),
    ],
)
def test_loading_the_report_schedules_with_a_bad_setting_fails_naming_the_variable(variable, value, says):
    """What Dagster's code location load meets: the schedules module imported in a process of its own
    (before: int()'s "invalid literal", Dagster's "invalid cron schedule" or "Invalid execution
    timezone", strptime's ValueError, none naming the variable)."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import orchestration.defs.reports.schedules"],
        env={**os.environ, variable: value},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode != 0
    assert loaded.stderr.strip().splitlines()[-1] == f"orchestration.environment.ConfigurationError: {says}"
