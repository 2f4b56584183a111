"""One environment switch for the whole project.

``FUNNELHOUSE_ENV`` = ``local`` (default: the embedded devstack), ``ci`` (the same, in a throwaway
home) or ``prod`` (every address and secret from environment variables). Each service address is
read here and nowhere else; secrets are read when asked for, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from devstack import state


def env_name() -> str:
    name = os.environ.get("FUNNELHOUSE_ENV", "local")
    if name not in {"local", "ci", "prod"}:
        raise ValueError(f"FUNNELHOUSE_ENV must be local, ci or prod, not {name!r}")
    return name


def _embedded(service: str) -> dict:
    services = state.read_services()
    if service not in services:
        raise RuntimeError(
            f"no {service} address configured and no embedded {service} running in {state.home()}: "
            "run `funnelhouse up` (or set the FUNNELHOUSE_* variable for a real server, see README)"
        )
    return services[service]


def pg_dsn() -> str:
    """``FUNNELHOUSE_PG_DSN`` if set, else the embedded PostgreSQL of the current stack."""
    configured = os.environ.get("FUNNELHOUSE_PG_DSN")
    if configured:
        return configured
    return _embedded("postgres")["dsn"]


@dataclass(frozen=True)
class ClickHouseSettings:
    host: str
    port: int
    username: str
    password: str
    secure: bool = False
    database: str = "default"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}:{self.port}"


def clickhouse_settings() -> ClickHouseSettings:
    """``FUNNELHOUSE_CLICKHOUSE_URL`` (+ ``_USER``/``_PASSWORD``) if set, else the embedded server."""
    url = os.environ.get("FUNNELHOUSE_CLICKHOUSE_URL")
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        secure = parsed.scheme == "https"
        return ClickHouseSettings(
            host=parsed.hostname or "localhost",
            port=parsed.port or (8443 if secure else 8123),
            username=os.environ.get("FUNNELHOUSE_CLICKHOUSE_USER", parsed.username or "default"),
            password=os.environ.get("FUNNELHOUSE_CLICKHOUSE_PASSWORD", parsed.password or ""),
            secure=secure,
        )
    info = _embedded("clickhouse")
    return ClickHouseSettings(
        host=info["host"], port=int(info["port"]), username=info["user"], password=info["password"]
    )
