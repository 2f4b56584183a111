"""Report partitions: one per day and one per Monday-to-Sunday week, on the managers' clock.

``hour_offset=7`` makes a day's partition complete at 07:00 the next morning in
``FUNNELHOUSE_REPORT_TIMEZONE`` (default Asia/Shanghai), which is exactly when its schedule runs it.
"""

from __future__ import annotations

import os

import dagster as dg

REPORT_TIMEZONE = os.environ.get("FUNNELHOUSE_REPORT_TIMEZONE", "Asia/Shanghai")
REPORT_HOUR = 7
FIRST_REPORT_DAY = os.environ.get("FUNNELHOUSE_REPORT_START", "2026-01-01")

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=FIRST_REPORT_DAY, timezone=REPORT_TIMEZONE, hour_offset=REPORT_HOUR
)
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=FIRST_REPORT_DAY,
    timezone=REPORT_TIMEZONE,
    day_offset=1,
    hour_offset=REPORT_HOUR,  # Monday
)
