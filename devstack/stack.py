"""The embedded stack as one unit: which services run here, and which a configured URL replaces.

A service whose address is configured (``FUNNELHOUSE_PG_DSN``, ``FUNNELHOUSE_CLICKHOUSE_URL``,
``FUNNELHOUSE_SEARCH_URL``, ``FUNNELHOUSE_SMTP_URL``, ``FUNNELHOUSE_WARM_DBT_SOCKET``) is never started here: production and CI
against real servers use exactly the same commands.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from devstack import state

# service name -> (module with start/stop/status, env var that replaces it)
SERVICES = {
    "postgres": ("devstack.postgres", "FUNNELHOUSE_PG_DSN"),
    "clickhouse": ("devstack.clickhouse.launcher", "FUNNELHOUSE_CLICKHOUSE_URL"),
    "search": ("devstack.search.launcher", "FUNNELHOUSE_SEARCH_URL"),
    "smtp": ("devstack.smtp", "FUNNELHOUSE_SMTP_URL"),
    # not a server of data: dbt's imports paid once for every dbt command (orchestration/warm_dbt.py)
    "dbt": ("orchestration.warm_dbt_service", "FUNNELHOUSE_WARM_DBT_SOCKET"),
}
# Services a deployment may go without (production included): without a warm dbt server, dbt starts cold.
OPTIONAL = frozenset({"dbt"})


def _module(service: str):
    try:
        return importlib.import_module(SERVICES[service][0])
    except ModuleNotFoundError:
        return None  # a service a later part of the project adds


def _redact(address: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]+@", r"//\1:***@", address)


def up(search: str = "elasticsearch") -> Iterator[str]:
    home = state.home()
    for service, (_, replaced_by) in SERVICES.items():
        if os.environ.get(replaced_by):
            yield f"{service}: using {replaced_by}"
            continue
        module = _module(service)
        if module is None:
            continue
        if service == "search":
            if search == "none":
                continue
            info = module.start(home, flavour=search)
        else:
            info = module.start(home)
        yield f"{service}: {_redact(_address(info))}"


class NotAllStopped(RuntimeError):
    """``down`` could not stop these services (each has its line); they stay recorded."""

    def __init__(self, services: list[str]):
        super().__init__(f"not stopped: {', '.join(services)}; run `funnelhouse down` again")
        self.services = services


def down() -> Iterator[str]:
    """Stop this stack's services, the last started first, each on its own: one that cannot be stopped
    gets its line and the others are stopped all the same. Then ``NotAllStopped`` if any is left."""
    home = state.home()
    left = []
    for service in reversed(list(SERVICES)):
        module = _module(service)
        if module is None or not (service in state.read_services(home) or _left_unrecorded(module, home)):
            continue
        try:
            module.stop(home)
        except RuntimeError as error:  # state.StillRunning or NotOursToSignal; PostgreSQL's pg_ctl failing
            left.append(service)
            yield f"{service}: {_not_stopped(error)}"
        else:
            yield f"{service}: stopped"
    if left:
        raise NotAllStopped(left)


def _not_stopped(error: RuntimeError) -> str:
    if isinstance(error, state.StillRunning):
        return (
            f"still running (pid {error.pid}) after SIGKILL; it stays recorded, run `funnelhouse down` again"
        )
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    return f"not stopped ({reason}); it stays recorded, run `funnelhouse down` again"


def _left_unrecorded(module, home) -> bool:
    """Whether a service that can find its server without services.json (PostgreSQL, by its data
    dir's postmaster.pid) left one running unrecorded, as an interrupted `funnelhouse up` does."""
    running_unrecorded = getattr(module, "running_unrecorded", None)
    return running_unrecorded is not None and running_unrecorded(home)


# The port each service's client takes when its URL gives none, by scheme (environment.py: ClickHouse's
# HTTP interface 8123/8443; the search clients 443 for https, 9200 for http; SMTP submission 587/465).
_DEFAULT_PORTS = {
    "postgres": {"postgresql": 5432, "postgres": 5432},
    "clickhouse": {"http": 8123, "https": 8443},
    "search": {"http": 9200, "https": 443},
    "smtp": {"smtp": 587, "smtps": 465},
}


def _accepts_connections(service: str, address: str) -> bool | None:
    """Whether the server a configured URL or DSN names accepts a TCP connection (within 2 s): a
    configured service is not shown running on the strength of its variable alone. None when the
    address names no host and port to try (a key=value DSN, a Unix socket)."""
    if address.startswith("/"):  # a Unix socket (the warm dbt server's)
        return state.unix_socket_answers(address)
    try:
        parsed = urlsplit(address)
        host, port = parsed.hostname, parsed.port or _DEFAULT_PORTS.get(service, {}).get(parsed.scheme)
    except ValueError:
        return None
    if not host or not port:
        return None
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _address(info: dict) -> str:
    return (
        info.get("dsn") or info.get("url") or info.get("socket") or f"{info.get('host')}:{info.get('port')}"
    )


def status() -> list[tuple[str, bool, str]]:
    home = state.home()
    rows = []
    for service, (_, replaced_by) in SERVICES.items():
        if os.environ.get(replaced_by):
            answers = _accepts_connections(service, os.environ[replaced_by])
            how = {True: "answers", False: "not answering", None: "not checked"}[answers]
            rows.append((service, answers is not False, f"{replaced_by} (configured, {how})"))
            continue
        module = _module(service)
        if module is None:
            continue
        info = module.status(home)
        recorded = state.read_services(home).get(service, {})
        rows.append(
            (service, info is not None, _redact(_address(info or recorded)) if (info or recorded) else "-")
        )
    return rows
