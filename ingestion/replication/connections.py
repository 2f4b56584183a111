"""Connections for replication: a ClickHouse client, and the PostgreSQL named collection ClickHouse pulls through.

ClickHouse reads PostgreSQL itself (``postgresql(funnelhouse_pg_<db>, table=...)``), so rows never pass
through Python. The credentials live in a named collection: the pulling queries, and so every
query log, name the collection and never carry the password. The collection is (re)written at the
start of each run because the embedded PostgreSQL may come back on another port.

Every session runs in UTC, whatever zone the server is configured with (``<timezone>`` in its
config; Asia/Shanghai is common on servers in China): the CRM's timestamps are UTC wall-clock values
and KPI days are UTC days. See :func:`clickhouse_client`. The stored timestamps are declared in UTC
as well (``schema.declared_type``): a column without a zone would follow the server's zone again
after a restart.
"""

from __future__ import annotations

import datetime as dt
import re

import clickhouse_connect
from psycopg.conninfo import conninfo_to_dict

from orchestration.environment import ClickHouseSettings, clickhouse_settings

COLLECTION_PREFIX = "funnelhouse_pg_"
# Large INSERT ... SELECT statements run server-side for minutes on a 100k-customer load.
_QUERY_TIMEOUT_SECONDS = 3600
# The session's zone is what a zone-less timestamp means on the server: string literals
# (toDateTime64('2026-01-01 00:00:00', 6)), timestamps pulled from PostgreSQL's `timestamp without
# time zone` columns, now() and toDate(now()). dbt's sessions get the same setting (profiles.yml).
_UTC_SESSION = {"session_timezone": "UTC"}


def clickhouse_client(settings: ClickHouseSettings | None = None, **extra):
    """A clickhouse-connect client whose session runs in UTC, exchanging naive UTC datetimes.

    funnelhouse's timestamps are declared in UTC (``schema.declared_type``), which
    ``tz_mode="naive_utc"`` returns naive, as their UTC wall clock, like every value funnelhouse
    writes and compares them with. A zone-less value (``now64()``, a column of an older table) comes
    back in the zone the response names, the session's (UTC) on ClickHouse and on the local server;
    failing that, in ``server_tz`` (``tz_source="server"``), never in the process's own zone.
    clickhouse-connect learns the server's configured zone when it connects (before any setting
    applies): ``server_tz`` is set to UTC after it, and is also what an aware query parameter is
    rendered in. A column declared in another zone would still come back aware.
    """
    settings = settings or clickhouse_settings()
    client = clickhouse_connect.get_client(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        secure=settings.secure,
        send_receive_timeout=_QUERY_TIMEOUT_SECONDS,
        settings={**(extra.pop("settings", None) or {}), **_UTC_SESSION},
        tz_mode="naive_utc",
        tz_source="server",
        **extra,
    )
    client.server_tz = dt.UTC
    return client


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive UTC wall-clock time, marked as UTC for an insert: clickhouse-connect takes a naive
    value for the inserting process's local time (and would move it by that zone's offset)."""
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


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
