"""The upper bound of one replication run: every change older than it is committed and visible.

``updated_at`` is stamped with ``clock_timestamp()`` when a row is written, but the row becomes
visible only when its transaction commits. A plain "updated_at > last watermark" misses rows of a
long transaction that commits after a newer change was replicated. So each run reads the half-open
window ``[previous bound, bound)`` where ``bound`` is the start of the oldest transaction that has
written something and is still open (or now, if none): every row stamped before it belongs to a
committed transaction, and every row written later is stamped after it. Windows tile time exactly,
so no safety overlap and no (updated_at, id) tie-break is needed; re-reading a window anyway (a
crash before the cursor was saved) is harmless because ReplacingMergeTree keeps one version.

Seeing other sessions' transactions needs superuser or ``pg_read_all_stats``; without it the
bound falls back to now minus a safety lag.

The search sync bounds its reads the same way (``ingestion.search.documents.read_bound``).
"""

from __future__ import annotations

import datetime as dt
import functools

import psycopg
from psycopg.rows import tuple_row

from ingestion.schema import migrate

FALLBACK_LAG = dt.timedelta(minutes=5)
EPOCH = dt.datetime(1970, 1, 1)

# The zone the triggers stamp in: the TimeZone a session starts with (server, database or role
# default), which a later SET TIME ZONE of this session does not change (see ``visible_bound_of``).
STAMP_ZONE = "(select reset_val from pg_settings where name = 'TimeZone')"
_BOUND_SQL = f"""
select
    (clock_timestamp() at time zone {STAMP_ZONE})::timestamp as now_local,
    (min(xact_start) filter (where backend_xid is not null and pid <> pg_backend_pid())
        at time zone {STAMP_ZONE})::timestamp as oldest_open_write,
    pg_has_role(current_user, 'pg_read_all_stats', 'member') or
        (select rolsuper from pg_roles where rolname = current_user) as sees_all_sessions
from pg_stat_activity
"""


@functools.lru_cache(maxsize=64)
def utc_offset_seconds(pg_dsn: str, stamp: dt.datetime) -> int:
    """How far the stamps' wall clock was ahead of UTC at ``stamp`` (a bound, in the zone of the
    stamps): what turns a cursor into a UTC time (source freshness: dbt compares it with UTC).
    Asked once per run bound, not once per table (every table of a run shares its bound)."""
    with psycopg.connect(pg_dsn) as conn:
        (offset,) = conn.execute(
            f"select extract(epoch from %(stamp)s::timestamp"
            f" - ((%(stamp)s::timestamp at time zone {STAMP_ZONE}) at time zone 'UTC'))::integer",
            {"stamp": stamp},
        ).fetchone()
    return offset


def visible_bound(pg_dsn: str) -> dt.datetime:
    with psycopg.connect(pg_dsn) as conn:
        return visible_bound_of(conn)


def visible_bound_of(conn: psycopg.Connection) -> dt.datetime:
    """The bound, read through ``conn`` (any row factory) at the start of a transaction: PostgreSQL
    shows a transaction one unchanging view of ``pg_stat_activity``.

    ``updated_at`` and ``deleted_at`` are ``TIMESTAMP`` without zone: the trigger turns
    ``clock_timestamp()`` into the wall-clock time of the *writing* session's TimeZone. Writers never
    set one, so they stamp in the default zone of a new session (the server's, or the database's or
    role's). The bound is written in that zone too, taken from the TimeZone this session started
    with (``reset_val``), not from its current one: a reader that ran ``SET TIME ZONE 'UTC'`` (the
    search sync does) still gets a bound comparable with the stamps on a server that is not on UTC.
    The bound is returned naive and compared as a plain ``timestamp`` parameter, which PostgreSQL
    compares with the stamps as they are, whatever the reading session's TimeZone."""
    with conn.cursor(row_factory=tuple_row) as cursor:
        now_local, oldest_open_write, sees_all = cursor.execute(_BOUND_SQL).fetchone()
    if not sees_all:
        return now_local - FALLBACK_LAG
    return min(now_local, oldest_open_write) if oldest_open_write else now_local


# Run bounds are looked up while their run lasts; a week covers any run and its retries.
RUN_BOUNDS_KEPT = dt.timedelta(days=7)


def run_bound(pg_dsn: str, run_id: str) -> dt.datetime:
    """The bound of an orchestrated run that replicates its tables in separate steps (Dagster: a step
    per raw table): fixed by the first step that asks (``funnelhouse.replication_run_bounds``), read
    back by the others and by retries, so every table of the run is read up to the same instant, as
    in ``replicate_tables``. Two steps asking at once agree: the first insert wins. A database not
    migrated since the table was added (a deployment whose first run replicates) is migrated first."""
    try:
        return _run_bound(pg_dsn, run_id)
    except psycopg.errors.UndefinedTable:
        migrate.apply(pg_dsn, log=lambda *_: None)
        return _run_bound(pg_dsn, run_id)


def _run_bound(pg_dsn: str, run_id: str) -> dt.datetime:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        select = "select bound from funnelhouse.replication_run_bounds where run_id = %s"
        if row := conn.execute(select, (run_id,)).fetchone():
            return row[0]
        conn.execute(
            "delete from funnelhouse.replication_run_bounds"
            " where fixed_at < (clock_timestamp() at time zone 'UTC') - %s",
            (RUN_BOUNDS_KEPT,),
        )
        conn.execute(
            "insert into funnelhouse.replication_run_bounds (run_id, bound) values (%s, %s)"
            " on conflict (run_id) do nothing",
            (run_id, visible_bound(pg_dsn)),
        )
        return conn.execute(select, (run_id,)).fetchone()[0]


def deletions(pg_dsn: str, table: str, start: dt.datetime, end: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """(id, deleted_at) of rows deleted from ``table`` in ``[start, end)``, from the tombstones the
    triggers write."""
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "select row_id, max(deleted_at) from sync_deletions "
            "where table_name = %s and deleted_at >= %s and deleted_at < %s group by row_id",
            (table, start, end),
        ).fetchall()
    return [(row_id, deleted_at) for row_id, deleted_at in rows]
