"""The embedded stack as one unit: which services run here, and which a configured URL replaces.

A service whose address is configured (``FUNNELHOUSE_PG_DSN``, ``FUNNELHOUSE_CLICKHOUSE_URL``,
``FUNNELHOUSE_SEARCH_URL``, ``FUNNELHOUSE_SMTP_URL``) is never started here: production and CI
against real servers use exactly the same commands.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator

from devstack import state

# service name -> (module with start/stop/status, env var that replaces it)
SERVICES = {
    "postgres": ("devstack.postgres", "FUNNELHOUSE_PG_DSN"),
    "clickhouse": ("devstack.clickhouse.launcher", "FUNNELHOUSE_CLICKHOUSE_URL"),
    "search": ("devstack.search.launcher", "FUNNELHOUSE_SEARCH_URL"),
    "smtp": ("devstack.smtp", "FUNNELHOUSE_SMTP_URL"),
}


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


def down() -> Iterator[str]:
    home = state.home()
    for service in reversed(list(SERVICES)):
        module = _module(service)
        if module is not None and (service in state.read_services(home) or _left_unrecorded(module, home)):
            module.stop(home)
            yield f"{service}: stopped"


def _left_unrecorded(module, home) -> bool:
    """Whether a service that can find its server without services.json (PostgreSQL, by its data
    dir's postmaster.pid) left one running unrecorded, as an interrupted `funnelhouse up` does."""
    running_unrecorded = getattr(module, "running_unrecorded", None)
    return running_unrecorded is not None and running_unrecorded(home)


def _address(info: dict) -> str:
    return info.get("dsn") or info.get("url") or f"{info.get('host')}:{info.get('port')}"


def status() -> list[tuple[str, bool, str]]:
    home = state.home()
    rows = []
    for service, (_, replaced_by) in SERVICES.items():
        if os.environ.get(replaced_by):
            rows.append((service, True, f"{replaced_by} (configured)"))
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
