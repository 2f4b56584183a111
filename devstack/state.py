"""The state directory of an embedded stack: where each local service keeps its data and says where it listens.

Every embedded service (PostgreSQL, ClickHouse-on-chDB, Elasticsearch/OpenSearch, SMTP sink) records
itself in ``<home>/services.json`` when it starts, so other commands (and other processes: dbt,
Dagster, tests) find its address without guessing. ``FUNNELHOUSE_HOME`` moves the whole stack, so
two stacks can run side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

DEFAULT_HOME = ".funnelhouse"
SERVICES_FILE = "services.json"


def home() -> Path:
    """The state directory: ``$FUNNELHOUSE_HOME`` or ``./.funnelhouse`` (created on first use)."""
    path = Path(os.environ.get("FUNNELHOUSE_HOME", DEFAULT_HOME)).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, from the first byte: created 0600,
    not written under the umask (0644 mostly) and narrowed afterwards, which left a moment in which
    any local user could read a password. Written beside it and renamed over it: readers never see
    half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover keeps its old mode: O_CREAT's mode applies to new files
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def read_services(state_home: Path | None = None) -> dict[str, dict]:
    path = (state_home or home()) / SERVICES_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def record_service(name: str, info: dict, state_home: Path | None = None) -> None:
    """Record (or replace) one service's address and pid. The file is private (0600): it holds passwords."""
    path = (state_home or home()) / SERVICES_FILE
    with _locked(path):
        services = read_services(path.parent)
        services[name] = info
        write_private(path, json.dumps(services, indent=2, sort_keys=True))


def forget_service(name: str, state_home: Path | None = None) -> None:
    path = (state_home or home()) / SERVICES_FILE
    with _locked(path):
        services = read_services(path.parent)
        if services.pop(name, None) is not None:
            write_private(path, json.dumps(services, indent=2, sort_keys=True))


def secret(name: str, state_home: Path | None = None) -> str:
    """A per-stack random secret, made once and kept in the state dir (never in the repository)."""
    directory = (state_home or home()) / "secrets"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / name
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24))
    return path.read_text().strip()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(preferred: int, host: str = "127.0.0.1", tries: int = 200) -> int:
    """``preferred`` if it is free, else the next free one above it."""
    for port in range(preferred, preferred + tries):
        if port_is_free(port, host):
            return port
    raise RuntimeError(f"no free port in {preferred}..{preferred + tries - 1} on {host}")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
