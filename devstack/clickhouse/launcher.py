"""Start, stop and inspect the local ClickHouse server of a stack (used by ``funnelhouse up/down/status``).

The server runs as a detached process (its own session, so it outlives the command that started it)
that owns ``<state_home>/clickhouse/store``. Its address, pid and credentials go to ``services.json``
under the name ``clickhouse`` -- the keys ``host``, ``port``, ``user`` and ``password`` are what
``orchestration.environment.clickhouse_settings()`` reads, ``replication_user`` and
``replication_password`` what ``clickhouse_replication_settings()`` reads -- so every other process
finds it. Three users: ``default`` (dbt, the commands), ``bi_reader`` (BI tools, read-only) and
``funnelhouse_replication``, the only one that may reach PostgreSQL (``users.User.postgres_source``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devstack import state
from devstack.clickhouse.users import DEFAULT_USER, READONLY_USER, REPLICATION_USER, write_users_file

SERVICE = "clickhouse"
DEFAULT_PORT = 8123
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _directory(state_home: Path) -> Path:
    return Path(state_home) / "clickhouse"


def _ping(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=timeout) as response:
            return response.status == 200 and response.read() == b"Ok.\n"
    except OSError:
        return False


def _answers_as_ours(host: str, port: int, password: str, timeout: float = 1.0) -> bool:
    """/ping alone would also accept another stack's server that grabbed the port first; only our
    own server knows this stack's password."""
    import base64

    request = urllib.request.Request(
        f"http://{host}:{port}/?query=SELECT%201",
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{DEFAULT_USER}:{password}".encode()).decode()
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"1"
    except OSError:
        return False


def status(state_home: Path) -> dict | None:
    """The recorded service info if its process still runs (not another one that got its pid) and
    answers /ping, else None."""
    info = state.running_service(SERVICE, Path(state_home))
    if info and _ping(info["host"], int(info["port"])):
        return info
    return None


def _write_users(state_home: Path, bi_databases: list[str] | None) -> tuple[Path, dict[str, str]]:
    """(Re)write the users file from the stack's secrets at every start: a stack an older version
    made gets the users added since (their secrets made now), the others keep their passwords."""
    passwords = {
        DEFAULT_USER: state.secret("clickhouse-default", state_home),
        READONLY_USER: state.secret("clickhouse-bi-reader", state_home),
        REPLICATION_USER: state.secret("clickhouse-replication", state_home),
    }
    users_file = _directory(state_home) / "users.json"
    write_users_file(
        users_file,
        {
            DEFAULT_USER: (passwords[DEFAULT_USER], False),
            READONLY_USER: (passwords[READONLY_USER], True),
            REPLICATION_USER: (passwords[REPLICATION_USER], False),
        },
        bi_databases,
        postgres_source=[REPLICATION_USER],
    )
    return users_file, passwords


def _log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _make_private(directory: Path) -> None:
    """Create ``directory`` and its ``store`` readable by the owner only, narrowing existing ones: the
    server persists named collections there, and the replication's holds the PostgreSQL superuser's
    password (in 0644 files). Not the state home itself: as root, the ``embedded_postgres`` user must
    still reach its data dir through it."""
    for path in (directory, directory / "store"):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)


def start(state_home: Path, port: int | None = None, bi_databases: list[str] | None = None) -> dict:
    """Start the server (or return the running one's info) and record it in services.json.

    ``bi_databases``: what the read-only user may read (default ``users.default_bi_databases()``)."""
    state_home = Path(state_home)
    directory = _directory(state_home)
    _make_private(directory)  # also for a server an older version started with open directories
    running = status(state_home)
    if running and "replication_user" in running:
        return running
    if running:
        # Started by a version without the replication user: its users (and its code) let every
        # user reach PostgreSQL. Restarted on the same store, so it refuses them from now on.
        stop(state_home)
    store = directory / "store"
    users_file, passwords = _write_users(state_home, bi_databases)
    log_path = directory / "server.log"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    last_error = ""
    for _attempt in range(3):  # the chosen port may be taken between the check and the bind
        chosen_port = port or state.free_port(DEFAULT_PORT, HOST)
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack.clickhouse",
                    "--path",
                    str(store),
                    "--port",
                    str(chosen_port),
                    "--host",
                    HOST,
                    "--users",
                    str(users_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=state.default_sigterm,  # stopped with SIGTERM, which this process may ignore
                cwd=_REPO_ROOT,
                env=environment,
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            password = passwords[DEFAULT_USER]
            while (
                time.monotonic() < deadline
                and process.poll() is None
                and not _answers_as_ours(HOST, chosen_port, password, 0.5)
            ):
                time.sleep(0.1)
            if process.poll() is None and _answers_as_ours(HOST, chosen_port, password):
                info = {
                    "host": HOST,
                    "port": chosen_port,
                    "user": DEFAULT_USER,
                    "password": passwords[DEFAULT_USER],
                    "readonly_user": READONLY_USER,
                    "readonly_password": passwords[READONLY_USER],
                    "replication_user": REPLICATION_USER,
                    "replication_password": passwords[REPLICATION_USER],
                    "url": f"http://{HOST}:{chosen_port}",
                    "pid": process.pid,
                    "pid_start_time": state.process_start_time(process.pid),
                    "store": str(store),
                    "log": str(log_path),
                    "users_file": str(users_file),
                }
                state.record_service(SERVICE, info, state_home)
                return info
        except BaseException:  # interrupted (Ctrl-C) before it was recorded
            state.end_started_process(process)
            raise
        state.end_started_process(process)
        last_error = _log_tail(log_path)
        if process.returncode != 4 or port:  # 4 = could not listen: retry on another port
            break
    raise RuntimeError(f"the local ClickHouse server did not start (log {log_path}):\n{last_error}")


def stop(state_home: Path) -> None:
    """SIGTERM the server, wait for it to finish running requests (SIGKILL after ``STOP_TIMEOUT``), and
    forget it."""
    state.stop_service(SERVICE, Path(state_home), STOP_TIMEOUT)
