"""Connections for replication: a ClickHouse client, and the PostgreSQL named collection ClickHouse pulls through.

ClickHouse reads PostgreSQL itself (``postgresql(funnelhouse_pg_<db>, table=...)``), so rows never pass
through Python. The credentials live in a named collection: the pulling queries, and so every
query log, name the collection and never carry the password. The collection is (re)written at the
start of each run because the embedded PostgreSQL may come back on another port.
"""

from __future__ import annotations

import re

import clickhouse_connect
from psycopg.conninfo import conninfo_to_dict

from orchestration.environment import ClickHouseSettings, clickhouse_settings

COLLECTION_PREFIX = "funnelhouse_pg_"
# Large INSERT ... SELECT statements run server-side for minutes on a 100k-customer load.
_QUERY_TIMEOUT_SECONDS = 3600


def clickhouse_client(settings: ClickHouseSettings | None = None, **extra):
    settings = settings or clickhouse_settings()
    return clickhouse_connect.get_client(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        secure=settings.secure,
        send_receive_timeout=_QUERY_TIMEOUT_SECONDS,
        **extra,
    )


def string_literal(value: object) -> str:
    """``value`` as a ClickHouse string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def collection_name(pg_dsn: str) -> str:
    """One collection per PostgreSQL database, so two stacks (or test databases) sharing one
    ClickHouse server never pull from each other's database."""
    database = conninfo_to_dict(pg_dsn).get("dbname", "postgres")
    return COLLECTION_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", database)[:60]


def ensure_named_collection(client, pg_dsn: str) -> str:
    """Point the database's named collection at ``pg_dsn`` and return its name: created once, then
    altered in place (never dropped, so a concurrent pull never sees it missing)."""
    name = collection_name(pg_dsn)
    parts = conninfo_to_dict(pg_dsn)
    values = {
        "host": parts.get("host", "127.0.0.1"),
        "port": int(parts.get("port", 5432)),
        "user": parts.get("user", "postgres"),
        "password": parts.get("password", ""),
        "database": parts.get("dbname", "postgres"),
        "schema": "public",
    }
    assignments = ", ".join(f"{key} = {string_literal(value)}" for key, value in values.items())
    client.command(f"create named collection if not exists {name} as {assignments}")
    client.command(f"alter named collection {name} set {assignments}")
    return name


def source(table: str, collection: str) -> str:
    """The table function that reads one seed table through a named collection."""
    return f"postgresql({collection}, table = {string_literal(table)})"
