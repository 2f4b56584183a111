"""PostgreSQL backups as the seed's section 6 asks: a full backup every day at 03:00, an
incremental one every 6 hours, 30 days of retention, and a copy kept off the machine.

Physical backups with PostgreSQL's own tools: ``pg_basebackup`` for full backups and, since
PostgreSQL 17, ``pg_basebackup --incremental`` against the previous backup's manifest (the server
runs with ``summarize_wal = on``); ``pg_combinebackup`` rebuilds a restorable data directory from a
chain. A server that cannot take an incremental backup (PostgreSQL 14-16, or WAL summaries off) gets
a full one instead, with a warning: the 6-hour rule is still met, only with bigger backups. A
logical dump would be simpler but has no incremental form. Each backup is written to a temporary
folder and renamed into place only when complete, so a crash never leaves a backup that looks
finished; pg_basebackup dies with the process running the backup, and the next run removes a
temporary folder whose run is gone (``clear_stale_partials``). The off-site copy goes to any fsspec
URL (``FUNNELHOUSE_BACKUP_OFFSITE_URL``: s3://, oss:// via s3 compatibility, a mounted folder ...;
the protocol's fsspec package, e.g. s3fs, must be installed, which ``check_offsite`` verifies before
each use of the store): one ``<name>.tar.gz`` per backup with a ``<name>.json`` beside it, written
last, so an archive without its JSON is an interrupted upload. The off-site copy keeps whole chains
(an incremental archive is useless without the ones it builds on) and follows the same 30-day
retention as the local folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from devstack.postgres import binary

# Plain Python (no Dagster), shared with the dbt runs; ingestion already reads orchestration.environment.
from orchestration.processes import start_bound

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
    """The finished backups, oldest first. A ``.<name>.partial`` folder is never one, even with its
    JSON already written (a run killed just before the rename): pathlib's ``*`` matches dot names."""
    backups = []
    for meta_file in sorted(backup_root.glob("*/funnelhouse_backup.json")):
        if meta_file.parent.name.startswith("."):
            continue
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


def _partial_paths(backup_root: Path, name: str) -> tuple[Path, Path]:
    """The temporary folder a backup is written to and the lock file that says its run is alive."""
    partial = backup_root / f".{name}.partial"
    return partial, partial.with_name(f"{partial.name}.lock")


def _try_lock(path: Path) -> int | None:
    """A descriptor of ``path`` (created if missing) holding its exclusive ``flock``, or None when
    another process holds it. The kernel drops the lock when the last process holding the descriptor
    ends, however it ends (kill -9, the OOM killer)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The holder deletes the file before it lets go (_unlock): a descriptor opened just before
        # that holds a lock on a file nobody else can see any more, so open the file again.
        try:
            if os.path.samestat(os.stat(path), os.fstat(fd)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _unlock(path: Path, fd: int) -> None:
    """Delete the lock file while still holding it, then let go (see ``_try_lock``)."""
    path.unlink(missing_ok=True)
    os.close(fd)


def clear_stale_partials(backup_root: Path, log: logging.Logger = _log) -> list[str]:
    """Remove the ``.partial`` folders of backup runs that are no longer alive; the names removed.

    Alive is decided by a lock, not a pid file: ``take_backup`` holds an exclusive ``flock`` on
    ``.<name>.partial.lock`` from before pg_basebackup starts until the backup is renamed into place,
    and pg_basebackup inherits the descriptor, so the lock lasts while any process of the run (the
    Python one, pg_basebackup, its WAL-streaming child) lives, and ends with the last of them however
    they end. A pid file could name a pid reused since, and says nothing of the children. A partial
    whose lock is held is left alone; one without a lock file (from a version before the lock) is
    stale like any other."""
    return _clear_unowned(
        backup_root,
        ".partial",
        "an unfinished backup left by a run that ended before it completed (killed or crashed); "
        "it was never a usable backup",
        log,
    )


def clear_stale_archives(backup_root: Path, log: logging.Logger = _log) -> list[str]:
    """Remove the ``.<name>.tar.gz`` archives off-site copies left behind when killed; the names removed.
    A copy holds ``.<name>.tar.gz.lock`` while it writes and uploads its archive (``copy_offsite``),
    so an archive is removed only when no run is using it. Each is as big as its backup, and would
    stay after retention removed the backup."""
    return _clear_unowned(
        backup_root, ".tar.gz", "the archive of an off-site copy that ended before it completed", log
    )


def _clear_unowned(backup_root: Path, suffix: str, what: str, log: logging.Logger) -> list[str]:
    """Remove each ``.<name><suffix>`` file or folder of ``backup_root`` whose lock
    (``.<name><suffix>.lock``) no live run holds, with the lock file; the names removed."""
    names = {lock.name.removesuffix(".lock") for lock in backup_root.glob(f".*{suffix}.lock")}
    names |= {path.name for path in backup_root.glob(f".*{suffix}")}
    cleared = []
    for name in sorted(names):
        path, lock = backup_root / name, backup_root / f"{name}.lock"
        fd = _try_lock(lock)
        if fd is None:
            log.info(f"{path} left alone: the run writing it is still running")
            continue
        try:
            if path.exists():
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                log.warning(f"removed {path}: {what}")
                cleared.append(name)
        finally:
            _unlock(lock, fd)
    return cleared


# The watchdog beside pg_basebackup (``_run_bound``), leader of the process group pg_basebackup joins:
# its input ending without "done" means the backup run died, and it kills its whole group, itself
# included.
_WATCHDOG = """
import os, signal, sys
if sys.stdin.read() != "done":
    os.killpg(0, signal.SIGKILL)
"""


def _run_bound(command: list[str], env: dict[str, str], lock_fd: int) -> subprocess.CompletedProcess:
    """Run pg_basebackup so that none of its processes outlives the backup run, however the run ends,
    instead of writing on into an orphaned ``.partial``. pg_basebackup inherits the run's lock
    (``clear_stale_partials``).

    ``start_bound`` has the kernel kill pg_basebackup with the run, but not the child it forks to
    stream WAL (``--wal-method=stream``): the death signal is not inherited across fork, and that
    child stops only when pg_basebackup sends it the end position, so it would stream on, holding a
    replication slot (the server keeps WAL for it) until the server stops. So a watchdog starts first,
    in a process group of its own (out of reach of signals sent to the run's group), and pg_basebackup
    joins that group before it runs: the WAL child is born in it, and the watchdog kills the group
    when the run's end of its input closes without "done". The group exists before pg_basebackup
    does, so there is no moment when the run could die with pg_basebackup running and the watchdog
    not knowing whom to kill (telling it pg_basebackup's pid after the start left one). An exception
    here (an interrupted Dagster step) kills the group directly."""
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG], stdin=subprocess.PIPE, text=True, process_group=0
    )
    try:
        process = start_bound(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=(lock_fd,),
            process_group=watchdog.pid,
        )
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            # The watchdog is not reaped before the ``finally`` below: its group id cannot have been
            # reused. The watchdog goes with the group.
            os.killpg(watchdog.pid, signal.SIGKILL)
            process.wait()
            raise
        with contextlib.suppress(BrokenPipeError):
            watchdog.stdin.write("done")
    finally:
        with contextlib.suppress(BrokenPipeError):
            watchdog.stdin.close()
        watchdog.wait()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


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
    clear_stale_partials(backup_root, log)
    previous = list_backups(backup_root)
    parent = previous[-1] if (kind == "incremental" and previous) else None
    if parent and (reason := incremental_unsupported(dsn)):
        log.warning(f"full backup taken instead of an incremental one: {reason}")
        parent = None
    kind = "incremental" if parent else "full"
    name = f"{now.strftime(_STAMP)}-{kind}"
    final = backup_root / name
    partial, lock = _partial_paths(backup_root, name)
    lock_fd = _try_lock(lock)
    if lock_fd is None:
        raise RuntimeError(f"a backup named {name} is already being taken by another run (it holds {lock})")
    try:
        return _write_backup(dsn, Backup(final, kind, now, parent.name if parent else None), partial, lock_fd)
    finally:
        _unlock(lock, lock_fd)


def _write_backup(dsn: str, backup: Backup, partial: Path, lock_fd: int) -> Backup:
    """pg_basebackup into ``partial``, renamed to ``backup.path`` once complete; on any failure the
    partial is removed (the caller holds ``lock_fd``, the lock that says this run owns it)."""
    shutil.rmtree(partial, ignore_errors=True)  # ours by the lock: left by a dead run of the same name
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
    if backup.parent:
        command.append(f"--incremental={backup.path.parent / backup.parent / 'backup_manifest'}")
    try:
        result = _run_bound(command, env, lock_fd)
        if result.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {result.stderr.strip()}")
        (partial / "funnelhouse_backup.json").write_text(json.dumps(backup.meta()))
        partial.rename(backup.path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
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


def copy_offsite(backup: Backup, url: str, log: logging.Logger = _log) -> list[str]:
    """Copy ``backup`` and every backup of its chain not yet off-site; returns the names copied.

    Each archive is uploaded under a temporary name and moved into place, then its JSON is written:
    a reader (or the next run) trusts only archives with their JSON, and re-uploads the others. The
    local archive is removed whether its upload succeeds or fails; one left by a killed run goes with
    the next copy (``clear_stale_archives``). A backup another run is copying at the same moment is
    left to it (both would write the same archive).
    """
    filesystem, root = _offsite_store(url)
    filesystem.makedirs(root, exist_ok=True)
    clear_stale_archives(backup.path.parent, log)
    already = {copy.name for copy in list_offsite(url)}
    copied = []
    for link in chain(list_backups(backup.path.parent), backup):
        if link.name in already:
            continue
        archive = link.path.parent / f".{link.name}.tar.gz"
        lock = archive.with_name(f"{archive.name}.lock")
        lock_fd = _try_lock(lock)
        if lock_fd is None:
            log.info(f"{link.name} left to the run copying it off-site now")
            continue
        try:
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(link.path, arcname=link.name)
            destination = f"{root}/{link.name}.tar.gz"
            filesystem.put_file(str(archive), destination + ".partial")
            filesystem.mv(destination + ".partial", destination)
        finally:
            archive.unlink(missing_ok=True)
            _unlock(lock, lock_fd)
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
