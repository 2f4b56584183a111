"""One writer of a warehouse at a time, whichever process it runs in.

Dagster keeps its own runs apart with the ``warehouse`` pool, but a ``funnelhouse build`` started
from a shell (an analyst, a cron job, a second deployment) knows nothing of that pool. Two writers
at once go wrong quietly:

* two replications of one raw database: each moves a table's cursors and committed watermark, and
  one can move them past rows the other is still committing;
* two dbt runs: each incremental fact deletes the ids of its window and appends them again (both
  appends land: duplicate rows), and two rebuilds of a table model collide on dbt's intermediate
  tables;
* a replication during a dbt run: the KPI mart picks the months to rebuild by wall clock, so rows
  committed meanwhile wait for the nightly rebuild.

So every writer (``funnelhouse build`` for its whole run, each Dagster replication step and dbt step)
holds one lock per raw database, as the pool does for Dagster: a session-level PostgreSQL advisory
lock on its own connection. PostgreSQL is the one server every writer already talks to, and a writer
that dies loses its session and with it the lock. A writer that finds the lock taken waits, saying
who holds it, for up to ``FUNNELHOUSE_WAREHOUSE_LOCK_WAIT`` seconds (default one hour), then fails
with :class:`WarehouseBusy` (a Dagster step then retries).

``funnelhouse dbt run|build|...`` (any dbt command that writes) holds it too. A bare ``dbt run``
takes none: it is the analyst's own tool, meant for their own schemas.

The lock lives as long as its session, which sits idle while the writer works. So the session sends
TCP keepalives (a firewall or NAT that drops idle connections would otherwise end it, and the lock
with it), opts out of ``idle_session_timeout``, and the lock is checked again when the writer is done:
a writer whose lock went away meanwhile (connection dropped, backend terminated, server restarted)
fails with :class:`WarehouseLockLost` instead of reporting success, since another writer may have run
at the same time. Callers can also check with :meth:`HeldLock.ensure_held` before a step that must
not run unprotected.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator

import psycopg

from ingestion.replication import schema
from orchestration import environment

DEFAULT_WAIT_SECONDS = 3600.0
LOCK_WAIT_VARIABLE = "FUNNELHOUSE_WAREHOUSE_LOCK_WAIT"
# How often a waiting writer tries again, and how often it says it is still waiting.
_POLL_SECONDS = 0.5
_REPORT_EVERY_SECONDS = 60.0

_HOLDERS_SQL = """
select a.pid, a.application_name, a.backend_start at time zone 'UTC'
from pg_locks l join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.objsubid = 1
  and l.classid::bigint = (hashtext(%(name)s)::bigint >> 32) & 4294967295
  and l.objid::bigint = hashtext(%(name)s)::bigint & 4294967295
"""


# TCP keepalives of the lock's connection: first probe after 60 idle seconds, then every 15 s; 4
# unanswered probes end the connection (libpq's names; the server keeps its own settings).
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 15, "keepalives_count": 4}

_HELD_SQL = """
select exists(
  select 1 from pg_locks
  where locktype = 'advisory' and granted and objsubid = 1 and pid = pg_backend_pid()
    and classid::bigint = (hashtext(%(name)s)::bigint >> 32) & 4294967295
    and objid::bigint = hashtext(%(name)s)::bigint & 4294967295
)
"""


class WarehouseBusy(RuntimeError):
    """Another writer kept the lock for longer than this one would wait."""


class WarehouseLockLost(RuntimeError):
    """The lock went away while this writer held it: another writer may have run at the same time."""


class HeldLock:
    """The writer lock while it is held: :meth:`ensure_held` says whether it still is."""

    def __init__(self, conn: psycopg.Connection, name: str):
        self._conn = conn
        self.name = name

    def ensure_held(self) -> None:
        """Raise :class:`WarehouseLockLost` unless this session still holds the lock."""
        reason = self.lost_because()
        if reason:
            raise WarehouseLockLost(
                f"{self.name} was lost while this writer held it: {reason}. Another writer may have "
                "written at the same time; check the warehouse (a full refresh rebuilds it) and run again."
            )

    def lost_because(self) -> str | None:
        """Why the lock is no longer held, or None while it is."""
        try:
            if self._conn.execute(_HELD_SQL, {"name": self.name}).fetchone()[0]:
                return None
            return "its session no longer holds it"
        except psycopg.Error as error:
            return f"its session was lost ({type(error).__name__}: {str(error).strip()})"


def lock_name(raw_database: str) -> str:
    return f"funnelhouse warehouse {raw_database}"


def for_command(
    log: Callable[[str], None] = print, command: str = "funnelhouse build"
) -> contextlib.AbstractContextManager:
    """The lock of the configured warehouse for this process (``command``, as waiters see it named)."""
    holder = f"{command} pid {os.getpid()}@{socket.gethostname()}"
    return exclusive(environment.pg_dsn(), lock_name(schema.raw_database()), holder=holder, log=log)


def for_dagster_step(context) -> contextlib.AbstractContextManager:
    """The lock of the configured warehouse for a Dagster step (its execution context), held by
    "dagster run <run id> <step>" and logged to the step's log."""
    holder = f"dagster run {context.run.run_id[:8]} {context.op_def.name}"
    return exclusive(
        environment.pg_dsn(), lock_name(schema.raw_database()), holder=holder, log=context.log.info
    )


def wait_seconds() -> float:
    """``FUNNELHOUSE_WAREHOUSE_LOCK_WAIT``, else an hour: 0 tries the lock once and fails at once if
    another writer holds it; a value that is no such number names the variable (ConfigurationError)."""
    return environment.number_setting(LOCK_WAIT_VARIABLE, DEFAULT_WAIT_SECONDS, "seconds")


@contextlib.contextmanager
def exclusive(
    pg_dsn: str,
    name: str,
    *,
    holder: str,
    log: Callable[[str], None] = print,
    wait: float | None = None,
) -> Iterator[HeldLock]:
    """Hold the advisory lock ``name`` while inside; wait up to ``wait`` seconds (default
    :func:`wait_seconds`) for it, telling ``log`` who holds it. Leaving without error raises
    :class:`WarehouseLockLost` if the lock went away meanwhile."""
    wait = wait_seconds() if wait is None else wait
    # The holder's label is what a waiter reads in pg_stat_activity (PostgreSQL keeps 63 bytes of it).
    # Closing the session releases the lock (also when the session was lost meanwhile).
    with psycopg.connect(pg_dsn, autocommit=True, application_name=holder, **_KEEPALIVES) as conn:
        if conn.info.server_version >= 140000:  # (a server setting may end idle sessions)
            conn.execute("set idle_session_timeout = 0")
        _acquire(conn, name, wait, log)
        lock = HeldLock(conn, name)
        try:
            yield lock
        except Exception as error:
            # The writer failed anyway: its own error stays the one raised, noting a lost lock too.
            lost = None if isinstance(error, WarehouseLockLost) else lock.lost_because()
            if lost:
                error.add_note(f"{name} had been lost meanwhile: {lost}")
            raise
        lock.ensure_held()


def _acquire(conn: psycopg.Connection, name: str, wait: float, log: Callable[[str], None]) -> None:
    started = time.monotonic()
    reported_at: float | None = None
    while not _try_lock(conn, name):
        now = time.monotonic()
        holders = _holders(conn, name)
        if now - started >= wait:
            raise WarehouseBusy(
                f"{name} is held by {holders}; gave up after {wait:g} s "
                "(FUNNELHOUSE_WAREHOUSE_LOCK_WAIT). Run again once it has finished."
            )
        if reported_at is None or now - reported_at >= _REPORT_EVERY_SECONDS:
            log(f"waiting for {name}: held by {holders} (up to {wait:g} s in all)")
            reported_at = now
        time.sleep(min(_POLL_SECONDS, max(wait - (now - started), 0.0)))
    if reported_at is not None:
        log(f"{name}: acquired after {time.monotonic() - started:.1f} s")


def _try_lock(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select pg_try_advisory_lock(hashtext(%s))", (name,)).fetchone()[0]


def _holders(conn: psycopg.Connection, name: str) -> str:
    """Who holds ``name``: application name, pid and session start of each holder (only the pid
    when this role may not see the other session; "nobody" when it was released meanwhile)."""
    rows = conn.execute(_HOLDERS_SQL, {"name": name}).fetchall()
    described = [
        f"{application or 'a session'} (pid {pid}, connected {started:%Y-%m-%d %H:%M:%S} UTC)"
        if started
        else f"pid {pid}"
        for pid, application, started in rows
    ]
    return ", ".join(described) or "nobody any more"
