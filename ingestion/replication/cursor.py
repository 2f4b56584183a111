"""The upper bound of one replication run: every change older than it is committed and visible.

``updated_at`` is stamped with ``clock_timestamp()`` when a row is written, but the row becomes
visible only when its transaction commits. A plain "updated_at > last watermark" misses rows of a
long transaction that commits after a newer change was replicated. So each run reads the half-open
window ``[previous bound, bound)`` where ``bound`` is the start of the oldest transaction that has
written something in this database and is still open (or now, if none): every row stamped before it belongs to a
committed transaction, and every row written later is stamped after it. That holds because a
trigger reads the clock for a stamp only once its transaction has an xid (migration 0018), and the
bound reads the clock before it looks for such transactions (``_CLOCK_SQL``). Windows tile time exactly,
so no safety overlap and no (updated_at, id) tie-break is needed; re-reading a window anyway (a
crash before the cursor was saved) is harmless because ReplacingMergeTree keeps one version.

Seeing other sessions' transactions needs superuser or ``pg_read_all_stats``; without it the
bound is now minus a safety lag (``FALLBACK_LAG``), or the start of the oldest open writing transaction
the role can see (its own sessions') if that is earlier: a load of the role's own that commits later
than the lag is still not passed. A warning says so (``_warn_not_every_session_visible``).

The stamps are the wall clock of a zone (``STAMP_ZONE``), and that clock can fall back: daylight
saving time ends (America/New_York repeats 01:00-02:00), or the server's TimeZone is changed to one
behind it. Rows written after the fall-back are stamped earlier than a bound taken before it, and a
window starting at that bound would pass them by for good. So a bound carries the exact UTC offset of
the instant it was taken (``Bound``, from the same instant in the same statement: a naive local stamp
inside the repeated hour cannot tell which offset it had), bounds are compared in UTC
(``Bound.utc``), and the window after a cursor whose offset was larger starts earlier by the
difference (``window_start``): the repeated hour is read again, harmlessly. Where the offset does not
change (a server on UTC) windows stay exactly as described above.

The search sync bounds its reads the same way (``ingestion.search.documents.read_bound``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg.rows import tuple_row

from ingestion.schema import migrate

FALLBACK_LAG = dt.timedelta(minutes=5)
# An open writing transaction older than this holding the bound back is named in a warning: replication
# (and the search sync) stop at its start until it ends, and every run would otherwise report its tables
# unchanged while rows committed since wait (a session left "idle in transaction" after a write).
HELD_BACK_WARNING = dt.timedelta(minutes=15)
EPOCH = dt.datetime(1970, 1, 1)

_log = logging.getLogger(__name__)

# The zone the triggers stamp in: the TimeZone a session starts with (server, database or role
# default), which a later SET TIME ZONE of this session does not change (see ``exact_bound_of``).
STAMP_ZONE = "(select reset_val from pg_settings where name = 'TimeZone')"
# The clock first, then a fresh view of the other sessions (a second statement: PostgreSQL keeps one
# view of pg_stat_activity per transaction, so it is cleared too). A writer missing from that view got
# its xid after the clock was read, and stamps only once it has one (migration 0018): its rows are
# stamped after the bound. Read in one statement, the clock could come after the view, and a writer
# that got its xid and stamped in between would be behind a bound that did not see it.
_CLOCK_SQL = "select clock_timestamp(), pg_stat_clear_snapshot()"
# One instant for both the bound and its offset (``now``, read once): ``clock_timestamp()`` moves
# between two calls.
_BOUND_SQL = f"""
with activity as (
    select
        -- Only this database's transactions can stamp its rows: one open in another database of
        -- the server (a migration, a stuck session) must not hold replication back.
        min(xact_start) filter (
            where backend_xid is not null and pid <> pg_backend_pid() and datname = current_database()
        ) as oldest_open_write,
        (array_agg(pid::text || ' (' || coalesce(nullif(application_name, ''), 'no application name')
                   || ', ' || coalesce(nullif(usename::text, ''), '?') || ', ' || coalesce(state, 'no state') || ')'
                   order by xact_start) filter (
            where backend_xid is not null and pid <> pg_backend_pid() and datname = current_database()
        ))[1] as oldest_writer,
        pg_has_role(current_user, 'pg_read_all_stats', 'member') or
            (select rolsuper from pg_roles where rolname = current_user) as sees_all_sessions
    from pg_stat_activity
), bound as (
    -- (least() skips a NULL: no open writing transaction seen.)
    select least(
        %(now)s::timestamptz - case when sees_all_sessions then interval '0' else %(lag)s end,
        oldest_open_write
    ) as instant, sees_all_sessions, oldest_open_write, oldest_writer
    from activity
)
select
    (instant at time zone {STAMP_ZONE})::timestamp,
    extract(epoch from (instant at time zone {STAMP_ZONE}) - (instant at time zone 'UTC'))::integer,
    sees_all_sessions,
    %(now)s::timestamptz - oldest_open_write,
    oldest_writer
from bound
"""


@functools.total_ordering
@dataclass(frozen=True)
class Bound:
    """A bound (or a cursor: the bound a run read up to) as the stamps show it, ``local`` in the zone
    they are stamped in, and how far that zone's clock was ahead of UTC at that instant. Bounds
    order by their instant (``utc``), not by their stamps, which can go back."""

    local: dt.datetime
    utc_offset_seconds: int

    @property
    def utc(self) -> dt.datetime:
        """The instant itself (naive UTC)."""
        return self.local - dt.timedelta(seconds=self.utc_offset_seconds)

    def __lt__(self, other: Bound) -> bool:
        return self.utc < other.utc

    def isoformat(self) -> str:
        return self.local.isoformat()


def window_start(saved: Bound, bound: Bound) -> dt.datetime:
    """Where the window after the cursor ``saved`` starts, in stamps, when it ends at ``bound``.

    At the cursor itself, unless the stamps' clock fell back since (its offset shrank by D): rows
    written after the fall-back are stamped up to D earlier than the cursor, so the window starts D
    earlier and reads the repeated stretch again (read twice, a row keeps one version). A cursor never
    saved (``EPOCH``) starts where it is."""
    fallen_back = saved.utc_offset_seconds - bound.utc_offset_seconds
    if saved.local == EPOCH or fallen_back <= 0:
        return saved.local
    return saved.local - dt.timedelta(seconds=fallen_back)


@functools.lru_cache(maxsize=64)
def utc_offset_seconds(pg_dsn: str, stamp: dt.datetime) -> int:
    """How far the stamps' wall clock was ahead of UTC at ``stamp`` (in the zone of the stamps), for a
    bound recorded without its offset (``Bound``; a run bound fixed by an older version). Inside a
    repeated hour the stamp is ambiguous, and PostgreSQL reads it as standard time (the later of its
    two instants): a window after it then starts at the cursor, as before offsets were recorded."""
    with psycopg.connect(pg_dsn) as conn:
        (offset,) = conn.execute(
            f"select extract(epoch from %(stamp)s::timestamp"
            f" - ((%(stamp)s::timestamp at time zone {STAMP_ZONE}) at time zone 'UTC'))::integer",
            {"stamp": stamp},
        ).fetchone()
    return offset


def as_bound(pg_dsn: str, bound: Bound | dt.datetime) -> Bound:
    """``bound`` with its offset; a bare stamp (a caller's own) gets the offset PostgreSQL gives it."""
    return bound if isinstance(bound, Bound) else Bound(bound, utc_offset_seconds(pg_dsn, bound))


def visible_bound(pg_dsn: str) -> dt.datetime:
    """The bound as the stamps show it (``exact_bound_of``)."""
    return exact_bound(pg_dsn).local


def exact_bound(pg_dsn: str) -> Bound:
    """The bound with its UTC offset (``exact_bound_of``)."""
    with psycopg.connect(pg_dsn) as conn:
        return exact_bound_of(conn)


def exact_bound_of(conn: psycopg.Connection) -> Bound:
    """The bound, read through ``conn`` (any row factory) at the start of a transaction: PostgreSQL
    shows a transaction one unchanging view of ``pg_stat_activity``. The clock is read first and that
    view is then taken afresh (``_CLOCK_SQL``), so it is never older than the bound's ``now``.

    ``updated_at`` and ``deleted_at`` are ``TIMESTAMP`` without zone: the trigger turns
    ``clock_timestamp()`` into the wall-clock time of the *writing* session's TimeZone. Writers never
    set one, so they stamp in the default zone of a new session (the server's, or the database's or
    role's). The bound is written in that zone too, taken from the TimeZone this session started
    with (``reset_val``), not from its current one: a reader that ran ``SET TIME ZONE 'UTC'`` (the
    search sync does) still gets a bound comparable with the stamps on a server that is not on UTC.
    The bound is returned naive and compared as a plain ``timestamp`` parameter, which PostgreSQL
    compares with the stamps as they are, whatever the reading session's TimeZone; its offset is
    that zone's at the bound's instant, taken in the same statement."""
    with conn.cursor(row_factory=tuple_row) as cursor:
        (now, _) = cursor.execute(_CLOCK_SQL).fetchone()
        local, offset, sees_all_sessions, held_for, writer = cursor.execute(
            _BOUND_SQL, {"now": now, "lag": FALLBACK_LAG}
        ).fetchone()
    if not sees_all_sessions:
        _warn_not_every_session_visible(conn.info.user, conn.info.dbname)
    if held_for is not None and held_for > HELD_BACK_WARNING:
        _warn_held_back(conn.info.dbname, writer, now - held_for)
    return Bound(local, offset)


@functools.cache
def _warn_held_back(database: str, writer: str, since: dt.datetime) -> None:
    """Once per process and open transaction (the search sync reads a bound per batch)."""
    _log.warning(
        "PostgreSQL session %s of %s has had a writing transaction open since %s: replication and the"
        " search sync copy nothing changed after that until it commits or rolls back (end it, e.g."
        " pg_terminate_backend, if it is left idle in transaction)",
        writer,
        database,
        since.isoformat(timespec="seconds"),
    )


@functools.cache
def _warn_not_every_session_visible(user: str, database: str) -> None:
    """Once per process (a run) and role, not at each bound: the search sync reads one per batch."""
    _log.warning(
        "PostgreSQL role %s can see only its own sessions (neither superuser nor pg_read_all_stats): the"
        " bound of %s holds back by %s, or to its own oldest open writing transaction; a writer of another"
        " role that commits later than that is never replicated. Grant it pg_read_all_stats.",
        user,
        database,
        FALLBACK_LAG,
    )


# Run bounds are looked up while their run lasts; a week covers any run and its retries.
RUN_BOUNDS_KEPT = dt.timedelta(days=7)


def run_bound(pg_dsn: str, run_id: str, log: Callable[[str], None] = lambda _message: None) -> Bound:
    """The bound of an orchestrated run that replicates its tables in separate steps (Dagster: a step
    per raw table): fixed by the first step that asks (``funnelhouse.replication_run_bounds``), read
    back by the others and by retries, so every table of the run is read up to the same instant, as
    in ``replicate_tables``. Two steps asking at once agree: the first insert wins. A database not
    migrated since the table (or its offset column) was added is migrated first. ``log``: where the
    partition poll before a new bound says what it found (a month that left or came)."""
    try:
        return _run_bound(pg_dsn, run_id, log)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        migrate.apply(pg_dsn, log=lambda *_: None)
        return _run_bound(pg_dsn, run_id, log)


def _run_bound(pg_dsn: str, run_id: str, log: Callable[[str], None]) -> Bound:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        select = "select bound, utc_offset_seconds from funnelhouse.replication_run_bounds where run_id = %s"
        if row := conn.execute(select, (run_id,)).fetchone():
            return _fixed(pg_dsn, *row)
        conn.execute(
            "delete from funnelhouse.replication_run_bounds"
            " where fixed_at < (clock_timestamp() at time zone 'UTC') - %s",
            (RUN_BOUNDS_KEPT,),
        )
        # A partition detached, dropped or attached since the last poll leaves its marker before the
        # bound every step of this run reads to, so this run replicates it (each step polls again,
        # after the bound: what changes meanwhile is the next run's).
        migrate.record_partition_changes(conn, log)
        bound = exact_bound(pg_dsn)
        conn.execute(
            "insert into funnelhouse.replication_run_bounds (run_id, bound, utc_offset_seconds)"
            " values (%s, %s, %s) on conflict (run_id) do nothing",
            (run_id, bound.local, bound.utc_offset_seconds),
        )
        return _fixed(pg_dsn, *conn.execute(select, (run_id,)).fetchone())


def _fixed(pg_dsn: str, bound: dt.datetime, offset: int | None) -> Bound:
    """A run bound as fixed (one fixed before offsets were recorded has none)."""
    return as_bound(pg_dsn, bound) if offset is None else Bound(bound, offset)


def deletions(
    pg_dsn: str, table: str, start: dt.datetime, end: dt.datetime, batch_size: int
) -> Iterator[list[tuple[int, dt.datetime]]]:
    """(id, deleted_at) of rows deleted from ``table`` in ``[start, end)``, from the tombstones the
    triggers write, in lists of at most ``batch_size``. Read through a server-side cursor: a purge of
    tens of millions of rows is streamed, never held in memory whole."""
    with psycopg.connect(pg_dsn) as conn, conn.cursor(name="replication_deletions") as rows:
        rows.execute(
            "select row_id, max(deleted_at) from sync_deletions "
            "where table_name = %s and deleted_at >= %s and deleted_at < %s group by row_id",
            (table, start, end),
        )
        while batch := rows.fetchmany(batch_size):
            yield [(row_id, deleted_at) for row_id, deleted_at in batch]


def last_truncation(
    conn: psycopg.Connection, table: str, start: dt.datetime, end: dt.datetime
) -> dt.datetime | None:
    """When ``table`` was last truncated in ``[start, end)``, or None. TRUNCATE fires no row trigger,
    so it leaves no tombstones, only a marker per statement (``sync_truncations``, migration 0023),
    stamped and bounded like them. A database not migrated that far has no markers to read."""
    try:
        with conn.cursor(row_factory=tuple_row) as rows:
            (at,) = rows.execute(
                "select max(truncated_at) from sync_truncations "
                "where table_name = %s and truncated_at >= %s and truncated_at < %s",
                (table, start, end),
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        if not conn.autocommit:
            conn.rollback()
        return None
    return at
