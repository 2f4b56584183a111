"""Operational upkeep of PostgreSQL: backups and partitions."""
