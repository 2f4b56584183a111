"""PostgreSQL backups as the seed's section 6 asks: a full backup every day at 03:00, an
incremental one every 6 hours, 30 days of retention, and a copy kept off the machine.

Physical backups with PostgreSQL's own tools: ``pg_basebackup`` for full backups and, since
PostgreSQL 17, ``pg_basebackup --incremental`` against the previous backup's manifest (the server
runs with ``summarize_wal = on``); ``pg_combinebackup`` rebuilds a restorable data directory from a
chain. A server that cannot take an incremental backup (PostgreSQL 14-16, or WAL summaries off) gets
a full one instead, with a warning: the 6-hour rule is still met, only with bigger backups. A
logical dump would be simpler but has no incremental form. Each backup is written to a temporary
folder and renamed into place only when complete, so a crash never leaves a backup that looks
finished. The off-site copy goes to any fsspec URL (``FUNNELHOUSE_BACKUP_OFFSITE_URL``: s3://,
oss:// via s3 compatibility, a mounted folder ...; the protocol's fsspec package, e.g. s3fs, must be
installed, which ``check_offsite`` verifies before each use of the store): one ``<name>.tar.gz`` per
backup with a ``<name>.json`` beside it, written last, so an archive without its JSON is an
interrupted upload. The off-site copy keeps whole chains (an incremental archive is useless without
the ones it builds on) and follows the same 30-day retention as the local folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from devstack.postgres import binary

RETENTION_DAYS = 30
_STAMP = "%Y%m%dT%H%M%SZ"
_INCREMENTAL_SINCE = 170000  # server_version_num of PostgreSQL 17, the first with --incremental

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backup:
    path: Path
    kind: str  # full | incremental
    taken_at: datetime
    parent: str | None  # name of the backup this incremental one builds on

    @property
    def name(self) -> str:
        return self.path.name

    def meta(self) -> dict:
        return {"kind": self.kind, "taken_at": self.taken_at.isoformat(), "parent": self.parent}


@dataclass(frozen=True)
class OffsiteBackup:
    """A backup as the off-site store holds it: its archive's name and the same metadata."""

    name: str
    kind: str
    taken_at: datetime
    parent: str | None


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


def incremental_unsupported(dsn: str) -> str | None:
    """Why the server cannot take an incremental backup, or None when it can.

    ``pg_basebackup --incremental`` needs PostgreSQL 17+ with WAL summaries on; asked of any other
    server it fails, so each 6-hourly run would fail and the real interval would be a day.
    """
    with psycopg.connect(dsn) as conn:
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])
        if version < _INCREMENTAL_SINCE:
            return f"the server is PostgreSQL {version // 10000}; incremental backups need 17 or later"
        if conn.execute("SHOW summarize_wal").fetchone()[0] != "on":
            return "the server runs with summarize_wal = off; incremental backups need it on"
    return None


def take_backup(
    dsn: str, backup_root: Path, kind: str, now: datetime | None = None, log: logging.Logger = _log
) -> Backup:
    """Take a full or incremental backup. An incremental one with no full backup to build on, or on a
    server that cannot take one (``incremental_unsupported``), becomes a full one, named and recorded
    as such, so the first scheduled run of either kind always succeeds and retention and restore see
    a chain's true base. ``log`` is where that is warned about (the Dagster job passes its own)."""
    if kind not in {"full", "incremental"}:
        raise ValueError(f"backup kind must be full or incremental, not {kind!r}")
    backup_root.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    previous = list_backups(backup_root)
    parent = previous[-1] if (kind == "incremental" and previous) else None
    if parent and (reason := incremental_unsupported(dsn)):
        log.warning(f"full backup taken instead of an incremental one: {reason}")
        parent = None
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
    backup = Backup(final, kind, now, parent.name if parent else None)
    (partial / "funnelhouse_backup.json").write_text(json.dumps(backup.meta()))
    partial.rename(final)
    return backup


def chain(backups: list, target):
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


def expired(backups: list, now: datetime, keep_days: int = RETENTION_DAYS) -> list:
    """Backups older than the retention window that no kept backup builds on (local or off-site).

    The newest backup (and the chain it builds on) is always kept, however old: retention also runs
    after a failed backup run (``jobs.py``), and after a month of failures (PostgreSQL down, a full
    disk, a machine switched off) it would otherwise delete the last restorable backup."""
    newest = max(backups, key=lambda b: b.taken_at, default=None)
    kept = [b for b in backups if now - b.taken_at <= timedelta(days=keep_days) or b is newest]
    needed = {link.name for backup in kept for link in chain(backups, backup)}
    return [backup for backup in backups if backup.name not in needed]


def prune(backup_root: Path, now: datetime | None = None, keep_days: int = RETENTION_DAYS) -> list[str]:
    """Delete backups older than the retention window, except those a kept backup still builds on."""
    removed = expired(list_backups(backup_root), now or datetime.now(UTC), keep_days)
    for backup in removed:
        shutil.rmtree(backup.path)
    return [backup.name for backup in removed]


class OffsiteStoreUnavailable(RuntimeError):
    """The off-site URL names a filesystem this installation cannot open."""


# Added to "pip install <package>" when a protocol's fsspec package is missing.
_INSTALL_HINTS = {
    "s3fs": " (or the version this project pins: pip install -e '.[s3]')",
    "ossfs": "; or, with s3fs, an s3:// URL to OSS's S3-compatible endpoint (README, backups)",
}


def check_offsite(url: str) -> None:
    """Fail in seconds, before an hour of ``pg_basebackup``, when a filesystem package ``url`` needs
    (s3fs for s3:// ...) is not installed; the message names it. Only the package is checked, no
    connection is made: an outage of the store must not stop the local backup. The URL itself is
    never in the message (it may carry credentials)."""
    import fsspec
    from fsspec.registry import known_implementations

    for part in url.split("::"):  # a chained URL (simplecache::s3://...) needs every layer
        protocol = fsspec.core.split_protocol(part)[0] or "file"
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as error:
            package = known_implementations[protocol]["class"].split(".")[0]
            install = f"pip install {package}" if package != "fsspec" else str(error)
            raise OffsiteStoreUnavailable(
                f"FUNNELHOUSE_BACKUP_OFFSITE_URL ({protocol}://) needs a filesystem package that is not "
                f"installed: {install}{_INSTALL_HINTS.get(package, '')}"
            ) from error
        except ValueError as error:
            raise OffsiteStoreUnavailable(
                f"FUNNELHOUSE_BACKUP_OFFSITE_URL ({protocol}://) is a protocol fsspec does not know"
            ) from error


def _offsite_store(url: str):
    import fsspec

    check_offsite(url)
    filesystem, root = fsspec.core.url_to_fs(url.rstrip("/"))
    return filesystem, root


def list_offsite(url: str) -> list[OffsiteBackup]:
    """The complete archives of the off-site store (those whose JSON was written), oldest first."""
    filesystem, root = _offsite_store(url)
    if not filesystem.exists(root):
        return []
    copies = []
    for meta_path in filesystem.glob(f"{root}/*.json"):
        meta = json.loads(filesystem.cat_file(meta_path))
        name = meta_path.rsplit("/", 1)[-1].removesuffix(".json")
        copies.append(
            OffsiteBackup(name, meta["kind"], datetime.fromisoformat(meta["taken_at"]), meta["parent"])
        )
    return sorted(copies, key=lambda copy: copy.taken_at)


def copy_offsite(backup: Backup, url: str) -> list[str]:
    """Copy ``backup`` and every backup of its chain not yet off-site; returns the names copied.

    Each archive is uploaded under a temporary name and moved into place, then its JSON is written:
    a reader (or the next run) trusts only archives with their JSON, and re-uploads the others.
    """
    filesystem, root = _offsite_store(url)
    filesystem.makedirs(root, exist_ok=True)
    already = {copy.name for copy in list_offsite(url)}
    copied = []
    for link in chain(list_backups(backup.path.parent), backup):
        if link.name in already:
            continue
        archive = link.path.parent / f".{link.name}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(link.path, arcname=link.name)
        destination = f"{root}/{link.name}.tar.gz"
        filesystem.put_file(str(archive), destination + ".partial")
        filesystem.mv(destination + ".partial", destination)
        archive.unlink()
        filesystem.pipe_file(f"{root}/{link.name}.json", json.dumps(link.meta()).encode())
        copied.append(link.name)
    return copied


def prune_offsite(url: str, now: datetime | None = None, keep_days: int = RETENTION_DAYS) -> list[str]:
    """The local retention rule applied to the off-site store: JSON first, so a half-pruned copy
    reads as an interrupted upload, never as a complete archive."""
    filesystem, root = _offsite_store(url)
    removed = expired(list_offsite(url), now or datetime.now(UTC), keep_days)
    for copy in removed:
        filesystem.rm_file(f"{root}/{copy.name}.json")
        filesystem.rm_file(f"{root}/{copy.name}.tar.gz")
    return [copy.name for copy in removed]
