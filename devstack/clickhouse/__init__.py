"""A local ClickHouse server: the chDB engine behind ClickHouse's HTTP interface.

No ClickHouse server binary can be installed on development machines, so the embedded stack runs one
process that owns a chDB store and speaks ClickHouse's HTTP protocol on 127.0.0.1. dbt-clickhouse,
clickhouse-connect, Dagster, curl and BI tools use it exactly as they use a real server; production
points the same clients at a real ClickHouse. ``launcher`` starts and stops it for ``funnelhouse up``;
``python -m devstack.clickhouse --path DIR --port N`` runs it in the foreground.
"""
