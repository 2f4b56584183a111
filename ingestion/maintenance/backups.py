"""PostgreSQL backups as the seed's section 6 asks: a full backup every day at 03:00, an
incremental one every 6 hours, 30 days of retention, and a copy kept off the machine.

Physical backups with PostgreSQL's own tools: ``pg_basebackup`` for full backups and, since
PostgreSQL 17, ``pg_basebackup --incremental`` against the previous backup's manifest (the server
runs with ``summarize_wal = on``); ``pg_combinebackup`` rebuilds a restorable data directory from a
chain. A logical dump would be simpler but has no incremental form. Each backup is written to a
temporary folder and renamed into place only when complete, so a crash never leaves a backup that
looks finished. The off-site copy goes to any fsspec URL (``FUNNELHOUSE_BACKUP_OFFSITE_URL``:
s3://, oss:// via s3 compatibility, a mounted folder ...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from devstack.postgres import binary

RETENTION_DAYS = 30
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Backup:
    path: Path
    kind: str  # full | incremental
    taken_at: datetime
    parent: str | None  # name of the backup this incremental one builds on

    @property
    def name(self) -> str:
        return self.path.name


def _connection_args(dsn: str) -> tuple[list[str], dict[str, str]]:
    """pg_basebackup takes a connection string, but the password goes through the environment so it
    never shows in a process list or a log line.

    The DSN is read by libpq's own parser, as psycopg reads it everywhere else: a URL's
    percent-encoded parts are decoded, a keyword/value DSN (``host=... password=...``) and query
    parameters (``sslmode``, ``host=/socket/dir``) are understood, and what is not given takes
    libpq's defaults.
    """
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return ["-d", make_conninfo(**params)], env


def list_backups(backup_root: Path) -> list[Backup]:
    backups = []
    for meta_file in sorted(backup_root.glob("*/funnelhouse_backup.json")):
        meta = json.loads(meta_file.read_text())
        backups.append(
            Backup(meta_file.parent, meta["kind"], datetime.fromisoformat(meta["taken_at"]), meta["parent"])
        )
    return sorted(backups, key=lambda backup: backup.taken_at)


def take_backup(dsn: str, backup_root: Path, kind: str, now: datetime | None = None) -> Backup:
    """Take a full or incremental backup. An incremental one with no full backup to build on
    becomes a full one, so the first scheduled run of either kind always succeeds."""
    if kind not in {"full", "incremental"}:
        raise ValueError(f"backup kind must be full or incremental, not {kind!r}")
    backup_root.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    previous = list_backups(backup_root)
    parent = previous[-1] if (kind == "incremental" and previous) else None
    kind = "incremental" if parent else "full"
    name = f"{now.strftime(_STAMP)}-{kind}"
    final = backup_root / name
    partial = backup_root / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    connection, env = _connection_args(dsn)
    command = [
        str(binary("pg_basebackup")),
        *connection,
        "-D",
        str(partial),
        "--checkpoint=fast",
        "--wal-method=stream",
        "--no-password",
    ]
    if parent:
        command.append(f"--incremental={parent.path / 'backup_manifest'}")
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"pg_basebackup failed: {result.stderr.strip()}")
    (partial / "funnelhouse_backup.json").write_text(
        json.dumps({"kind": kind, "taken_at": now.isoformat(), "parent": parent.name if parent else None})
    )
    partial.rename(final)
    return Backup(final, kind, now, parent.name if parent else None)


def chain(backups: list[Backup], target: Backup) -> list[Backup]:
    """The full backup and every incremental one leading to ``target``, oldest first."""
    by_name = {backup.name: backup for backup in backups}
    links = [target]
    while links[0].parent:
        links.insert(0, by_name[links[0].parent])
    return links


def restore(backup_root: Path, target_dir: Path, backup_name: str | None = None) -> Path:
    """Rebuild a data directory from the newest (or the named) backup; start PostgreSQL on it."""
    backups = list_backups(backup_root)
    if not backups:
        raise RuntimeError(f"no backups in {backup_root}")
    target = next((b for b in backups if b.name == backup_name), None) if backup_name else backups[-1]
    if target is None:
        raise RuntimeError(f"no backup named {backup_name} in {backup_root}")
    links = chain(backups, target)
    if len(links) == 1:
        shutil.copytree(links[0].path, target_dir)
    else:
        result = subprocess.run(
            [str(binary("pg_combinebackup")), *[str(b.path) for b in links], "-o", str(target_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_combinebackup failed: {result.stderr.strip()}")
    (target_dir / "funnelhouse_backup.json").unlink(missing_ok=True)
    return target_dir


def prune(backup_root: Path, now: datetime | None = None, keep_days: int = RETENTION_DAYS) -> list[str]:
    """Delete backups older than the retention window, except those a kept backup still builds on."""
    now = now or datetime.now(UTC)
    backups = list_backups(backup_root)
    kept = [b for b in backups if now - b.taken_at <= timedelta(days=keep_days)]
    needed = {link.name for backup in kept for link in chain(backups, backup)}
    removed = []
    for backup in backups:
        if backup.name not in needed:
            shutil.rmtree(backup.path)
            removed.append(backup.name)
    return removed


def copy_offsite(backup: Backup, url: str) -> str:
    """Copy one backup as a tar.gz to an fsspec URL; written under a temporary name, then moved."""
    import fsspec

    archive = backup.path.parent / f".{backup.name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(backup.path, arcname=backup.name)
    destination = f"{url.rstrip('/')}/{backup.name}.tar.gz"
    filesystem, path = fsspec.core.url_to_fs(destination)
    filesystem.makedirs(filesystem._parent(path), exist_ok=True)
    filesystem.put_file(str(archive), path + ".partial")
    filesystem.mv(path + ".partial", path)
    archive.unlink()
    return destination
