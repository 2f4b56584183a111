"""Connections for replication: a ClickHouse client, and the PostgreSQL named collection ClickHouse pulls through.

ClickHouse reads PostgreSQL itself (``postgresql(funnelhouse_pg_<raw db>_<source hash>, table=...)``), so rows never pass
through Python. The credentials live in a named collection: the pulling queries, and so every
query log, name the collection and never carry the password. The collection is (re)written at the
start of each run because the embedded PostgreSQL may come back on another port. They are a
read-only role's (``environment.pg_replication_dsn``), not those of ``FUNNELHOUSE_PG_DSN``: whoever
holds the ClickHouse user may run any query through the collection (``INSERT INTO FUNCTION
postgresql(...)`` too). That user is replication's own (:func:`replication_client`), the only one
allowed PostgreSQL and named collections: dbt's and the analysts' user cannot read the contact
details the role can. Replication's own reads in Python (the bound, deletions) use the main DSN.

Every session runs in UTC, whatever zone the server is configured with (``<timezone>`` in its
config; Asia/Shanghai is common on servers in China): the CRM's timestamps are UTC wall-clock values
and KPI days are UTC days. See :func:`clickhouse_client`. The stored timestamps are declared in UTC
as well (``schema.declared_type``): a column without a zone would follow the server's zone again
after a restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError
from psycopg.conninfo import conninfo_to_dict

from orchestration.environment import (
    ClickHouseSettings,
    clickhouse_replication_settings,
    clickhouse_settings,
    pg_replication_dsn,
)

_log = logging.getLogger(__name__)

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


def replication_client(**extra):
    """The client replication does everything with (raw tables, state, the named collection): as
    the replication user (``environment.clickhouse_replication_settings``), the only one allowed to
    reach PostgreSQL."""
    return clickhouse_client(clickhouse_replication_settings(), **extra)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive UTC wall-clock time, marked as UTC for an insert: clickhouse-connect takes a naive
    value for the inserting process's local time (and would move it by that zone's offset)."""
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def string_literal(value: object) -> str:
    """``value`` as a ClickHouse string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _collection_values(pg_dsn: str) -> dict[str, str | int]:
    """What the named collection of ``pg_dsn`` holds (the defaults are libpq's)."""
    parts = conninfo_to_dict(pg_dsn)
    return {
        "host": parts.get("host", "127.0.0.1"),
        "port": int(parts.get("port", 5432)),
        "user": parts.get("user", "postgres"),
        "password": parts.get("password", ""),
        "database": parts.get("dbname", "postgres"),
        "schema": "public",
    }


def _raw_database_prefix(raw_database: str) -> str:
    return f"{COLLECTION_PREFIX}{_identifier(raw_database)[:40]}_"


def collection_name(pg_dsn: str, raw_database: str) -> str:
    """The collection a raw database pulls ``pg_dsn`` through: named after the raw database and a
    short hash of the source (host, port, user, database; never the password), so two stacks sharing
    one ClickHouse server, each with its own raw database (``FUNNELHOUSE_RAW_DATABASE``), never
    rewrite each other's collection and pull from the other's PostgreSQL, even if both databases
    are called alike. Another user (the replication's reader instead of the main one) is another
    collection: the one of the earlier user is dropped, not left holding its credentials."""
    values = _collection_values(pg_dsn)
    source_key = "\0".join(str(values[key]) for key in ("host", "port", "user", "database"))
    return _raw_database_prefix(raw_database) + hashlib.sha256(source_key.encode()).hexdigest()[:12]


def _drop_stale_collections(client, pg_dsn: str, raw_database: str, keep: str) -> None:
    """Drop the collections this raw database pulled through before: those of an earlier source (the
    embedded PostgreSQL came back on another port), and the one older versions named after the
    PostgreSQL database alone. Each source would otherwise leave one behind for good."""
    own = re.compile(re.escape(_raw_database_prefix(raw_database)) + "[0-9a-f]{12}")
    older_version = COLLECTION_PREFIX + _identifier(str(_collection_values(pg_dsn)["database"]))[:60]
    names = client.query(
        "select name from system.named_collections where startsWith(name, {prefix:String})",
        parameters={"prefix": COLLECTION_PREFIX},
    ).result_rows
    for (name,) in names:
        if name != keep and (own.fullmatch(name) or name == older_version):
            client.command(f"drop named collection if exists {name}")


def ensure_named_collection(client, pg_dsn: str, raw_database: str) -> str:
    """Point the collection of ``raw_database`` at the database of ``pg_dsn``, read as the replication's
    reader (``pg_replication_dsn``; ``collection_name`` of that DSN), and return its name: created
    once, then altered in place (never dropped while it is this source's, so a concurrent pull never
    sees it missing)."""
    reader_dsn = pg_replication_dsn(pg_dsn)
    name = collection_name(reader_dsn, raw_database)
    assignments = ", ".join(
        f"{key} = {string_literal(value)}" for key, value in _collection_values(reader_dsn).items()
    )
    client.command(f"create named collection if not exists {name} as {assignments}")
    client.command(f"alter named collection {name} set {assignments}")
    try:
        _drop_stale_collections(client, pg_dsn, raw_database, keep=name)
    except DatabaseError as error:  # a user allowed to alter collections but not to list or drop them
        _log.warning("could not drop named collections left by earlier sources: %s", error)
    return name


def source(table: str, collection: str) -> str:
    """The table function that reads one seed table through a named collection."""
    return f"postgresql({collection}, table = {string_literal(table)})"
