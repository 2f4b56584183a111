"""Replication of the seed tables from PostgreSQL into ClickHouse's ``raw`` database.

Plain Python, no Dagster: the Dagster assets, ``funnelhouse build``, the tests and the benchmark
all call :func:`ingestion.replication.replicate.replicate_tables`.
"""
