"""Versioned schema migrations: numbered SQL files applied once each, in order, each in its own transaction.

``funnelhouse.schema_migrations`` records what ran and the checksum of the file that ran, so a
second run changes nothing, and an edited file that already ran is refused instead of silently
diverging from what the database holds (write a new migration instead).

After migrating, the replication's read-only role (``REPLICATION_READER``) may read every table of
public, those a migration just created too: ClickHouse pulls replication through it (see
``grant_replication_reads``).

A migration's WARNING (a right the migrator lacks, a step left to a DBA) is shown in the output,
not dropped with the session's notices (``_notices_to``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: migrations from two processes at once run one after the other.
_ADVISORY_LOCK_KEY = 4_242_001
# The role replication's ClickHouse pulls read PostgreSQL as (environment.pg_replication_dsn): the
# embedded stack creates it (devstack/postgres.py), a DBA in production (docs/warehouse.md).
REPLICATION_READER = "funnelhouse_replication"
# Relation kinds a SELECT reads: tables, partitioned tables, views, materialized and foreign tables.
_READABLE_KINDS = ("r", "p", "v", "m", "f")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def available() -> list[Migration]:
    return [Migration(path.stem, path) for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


def apply(dsn: str, log=print) -> list[str]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The seed's tables live in public. The default search_path starts with "$user", and the
        # embedded superuser is called funnelhouse like the tooling schema, so pin it.
        conn.execute("SET search_path TO public")
        # The lock comes first: two processes migrating a new database at once would otherwise
        # both create the schema and its table (IF NOT EXISTS does not guard against a concurrent
        # creation: one of them fails with a unique violation in the catalog).
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            # Created only when missing: PostgreSQL checks the CREATE privilege before IF NOT EXISTS,
            # and a migrator that owns no schema (production, tables another role owns) must still
            # find an up-to-date database up to date.
            if conn.execute("SELECT to_regclass('funnelhouse.schema_migrations')").fetchone()[0] is None:
                conn.execute("CREATE SCHEMA IF NOT EXISTS funnelhouse")
                conn.execute(
                    """CREATE TABLE IF NOT EXISTS funnelhouse.schema_migrations (
                           version TEXT PRIMARY KEY,
                           checksum TEXT NOT NULL,
                           applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
                )
            done = dict(
                conn.execute("SELECT version, checksum FROM funnelhouse.schema_migrations").fetchall()
            )
            for migration in available():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise RuntimeError(
                            f"migration {migration.path.name} changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction(), _notices_to(conn, log, migration.path.name, ("WARNING",)):
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO funnelhouse.schema_migrations (version, checksum) VALUES (%s, %s)",
                        (migration.version, migration.checksum),
                    )
                log(f"applied {migration.path.name}")
                applied_now.append(migration.version)
            _grant_replication_reads(conn, log)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return applied_now


def grant_replication_reads(dsn: str, log=print) -> None:
    """Let ``REPLICATION_READER``, if it exists, read the tables of ``dsn``'s database (see
    ``_grant_replication_reads``); under the migrations' lock, as a grant racing a migration's DDL
    on the same catalog rows fails ("tuple concurrently updated")."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            _grant_replication_reads(conn, log)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))


def _grant_replication_reads(conn: psycopg.Connection, log) -> None:
    """SELECT on every relation of public (and on those this user creates there later: the default
    privileges) for ``REPLICATION_READER``, when it exists and one relation is not readable to it yet;
    nothing else, so it stays a reader. Every load migrates: the check keeps the grants from
    rewriting catalog rows each time. A user that may not grant (in production, tables another
    role owns) leaves the grants to the DBA (docs/warehouse.md), with a line saying so."""
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATION_READER,)).fetchone():
        return
    if not _unreadable_to_the_reader(conn):
        return
    reader = sql.Identifier(REPLICATION_READER)
    try:
        with conn.transaction():
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(reader))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(reader))
            conn.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(
                    reader
                )
            )
    except psycopg.errors.InsufficientPrivilege as error:
        log(
            f"could not grant {REPLICATION_READER} SELECT on public's tables (grant it as their owner): {error}"
        )
        return
    # A user with rights it may not pass on gets a warning per table, not an error: count again.
    still = _unreadable_to_the_reader(conn)
    if still:
        log(
            f"could not grant {REPLICATION_READER} SELECT on {still} of public's relations "
            "(grant it as their owner: docs/warehouse.md, Replication)"
        )


def _unreadable_to_the_reader(conn: psycopg.Connection) -> int:
    """How many relations of public ``REPLICATION_READER`` may not SELECT from."""
    return conn.execute(
        """SELECT count(*) FROM pg_class
           WHERE relnamespace = 'public'::regnamespace AND relkind = ANY(%s)
             AND NOT has_table_privilege(%s, oid, 'SELECT')""",
        (list(_READABLE_KINDS), REPLICATION_READER),
    ).fetchone()[0]


@contextlib.contextmanager
def _notices_to(
    conn: psycopg.Connection, log: Callable[[str], None], source: str, severities: tuple[str, ...]
) -> Iterator[None]:
    """PostgreSQL's notices of these ``severities`` raised on ``conn`` meanwhile, logged (this module's
    logger) and passed to ``log`` as "source: SEVERITY: message". psycopg drops them otherwise."""

    def handler(notice: psycopg.errors.Diagnostic) -> None:
        if notice.severity_nonlocalized in severities:
            message = f"{source}: {notice.severity_nonlocalized}: {notice.message_primary}"
            _log.log(logging.WARNING if notice.severity_nonlocalized == "WARNING" else logging.INFO, message)
            log(message)

    conn.add_notice_handler(handler)
    try:
        yield
    finally:
        conn.remove_notice_handler(handler)


def record_partition_changes(
    conn: psycopg.Connection, log: Callable[[str], None] = lambda _message: None
) -> int:
    """Markers recorded for partitioned seed tables whose partitions changed since the last call
    (migration 0026's ``record_partition_changes()``: a partition detached or dropped, or attached
    holding rows), committed. Replication and the search sync call it before they read markers, so a
    change made since their last run is in their window; what it says (which partitions went or came,
    a trigger it could not update) is logged, and passed to ``log``. A database not migrated that far has nothing to
    record."""
    try:
        with (
            _notices_to(conn, log, "partitions", ("NOTICE", "WARNING")),
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            (marked,) = cursor.execute("SELECT public.record_partition_changes()").fetchone()
    except psycopg.errors.UndefinedFunction:
        if not conn.autocommit:
            conn.rollback()
        return 0
    if not conn.autocommit:
        conn.commit()
    return marked
