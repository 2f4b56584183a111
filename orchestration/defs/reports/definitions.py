"""The reports domain's Dagster definitions (here, not in the package's ``__init__``: see
``orchestration.definitions``)."""

import dagster as dg

from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.reports.schedules import (
    daily_reports_job,
    daily_reports_schedule,
    weekly_reports_job,
    weekly_reports_schedule,
)
from orchestration.defs.reports.sensors import report_redelivery_sensor

defs = dg.Definitions(
    assets=[daily_kpi_reports, weekly_kpi_reports],
    jobs=[daily_reports_job, weekly_reports_job],
    schedules=[daily_reports_schedule, weekly_reports_schedule],
    sensors=[report_redelivery_sensor],
)
