"""Report partitions: one per KPI day and one per Monday-to-Sunday week of KPI days.

KPI days are UTC days (``mart_kpi_employee_daily``, ``KPI_PARTITIONS``), and a report of day D reads
KPI day D, so the report partitions are UTC days too: Dagster maps a report partition to the KPI
partitions it reads (a day to its day, a week to its seven), which it cannot do across timezones.
The managers' clock (``FUNNELHOUSE_REPORT_TIMEZONE``, default Asia/Shanghai) is the schedules'
(``schedules.py``), at ``FUNNELHOUSE_REPORT_HOUR`` (default 9): 09:00 in Shanghai is 01:00 UTC, after
the day being reported has ended and the warehouse's first refreshes of the next one (:15 and :45)
have completed it. The current day's and week's partitions exist already (``end_offset=1``), as the
KPI mart's do, so a partition can be looked at by hand while its day runs.
"""

from __future__ import annotations

import dagster as dg

from orchestration.environment import day_setting, hour_setting, timezone_setting

# Read when the code location loads: a value that cannot be used stops it with a message naming the
# variable (one line from the console script), not Dagster's refusal of the cron string or time zone.
REPORT_TIMEZONE = timezone_setting("FUNNELHOUSE_REPORT_TIMEZONE")
REPORT_HOUR = hour_setting("FUNNELHOUSE_REPORT_HOUR", 9)
FIRST_REPORT_DAY = day_setting("FUNNELHOUSE_REPORT_START", "2026-01-01")

daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_REPORT_DAY, end_offset=1)
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=FIRST_REPORT_DAY, day_offset=1, end_offset=1
)  # Monday
