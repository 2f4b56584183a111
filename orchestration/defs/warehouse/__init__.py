"""The warehouse domain: replication assets, dbt assets (tests as checks), jobs, schedules
and the reconciliation checks. Without a dbt manifest only replication is defined (resources.py)."""
