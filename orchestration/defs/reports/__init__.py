"""KPI reports: daily and weekly partitioned assets downstream of the marts, and their schedules."""
