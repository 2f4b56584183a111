"""Versioned schema migrations: numbered SQL files applied once each, in order, each in its own transaction.

``funnelhouse.schema_migrations`` records what ran and the checksum of the file that ran, so a
second run changes nothing, and an edited file that already ran is refused instead of silently
diverging from what the database holds (write a new migration instead).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: migrations from two processes at once run one after the other.
_ADVISORY_LOCK_KEY = 4_242_001


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
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO funnelhouse.schema_migrations (version, checksum) VALUES (%s, %s)",
                        (migration.version, migration.checksum),
                    )
                log(f"applied {migration.path.name}")
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return applied_now
