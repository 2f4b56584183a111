"""What the alerts read from the environment, at the time they run, not at import: the address they
go to and the hours their retries and reminders are counted in (and how their times are shown)."""

from __future__ import annotations

import time

from orchestration.environment import number_setting

ALERT_EMAIL_ENV = "FUNNELHOUSE_ALERT_EMAIL"
RETRY_HOURS_ENV = "FUNNELHOUSE_ALERT_RETRY_HOURS"
DEFAULT_RETRY_HOURS = 24.0
REPEAT_HOURS_ENV = "FUNNELHOUSE_ALERT_REPEAT_HOURS"
DEFAULT_REPEAT_HOURS = 24.0


def _hours_setting(name: str, default: float) -> float:
    """The hours variable ``name`` sets (read when the sensor runs, not at import), else ``default``."""
    return number_setting(name, default, "hours")


def retry_hours() -> float:
    """Hours an unsent alert is retried for; 0: not retried."""
    return _hours_setting(RETRY_HOURS_ENV, DEFAULT_RETRY_HOURS)


def repeat_hours() -> float:
    """Hours between the reminders of an asset check or a job that keeps failing; 0: every time."""
    return _hours_setting(REPEAT_HOURS_ENV, DEFAULT_REPEAT_HOURS)


def utc_minute(timestamp: float) -> str:
    """A moment as the alerts and `funnelhouse alerts` show it: "2026-12-02 06:15 UTC"."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
