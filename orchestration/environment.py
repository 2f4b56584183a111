"""One environment switch for the whole project.

``FUNNELHOUSE_ENV`` = ``local`` (default: the embedded devstack), ``ci`` (the same, in a throwaway
home) or ``prod`` (every address and secret from environment variables). Each service address is
read here and nowhere else; secrets are read when asked for, never at import time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import math
import os
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from devstack import stack, state

_log = logging.getLogger(__name__)
_REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigurationError(ValueError):
    """A variable of the environment holds a value no reader here can use. The message names the
    variable and what it must hold, and never repeats a password or other secret written into it; the
    console script prints it as one line (``orchestration.cli.main``). A ValueError, which the callers
    that retry or report a bad setting (sensors, ``funnelhouse search``) already catch."""


def env_name() -> str:
    name = os.environ.get("FUNNELHOUSE_ENV", "local")
    if name not in {"local", "ci", "prod"}:
        raise ConfigurationError(f"FUNNELHOUSE_ENV must be local, ci or prod, not {name!r}")
    return name


def number_setting(name: str, default: float, unit: str, minimum: float = 0) -> float:
    """The number (of ``unit``: "hours", "seconds" ...), ``minimum`` or more, the variable ``name``
    sets, else ``default``; read when asked (a sensor's tick), not at import, so a change needs no
    reload. A value that is no such number (``10m``, ``-5``, ``nan``) stops its reader with a message
    naming the variable."""
    value = os.environ.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        number = math.nan
    if not minimum <= number < math.inf:  # (nan compares false)
        raise ConfigurationError(f"{name} must be a number of {unit} ({minimum:g} or more), not {value!r}")
    return number


def dbt_target_dir() -> Path:
    """Where dbt writes its artifacts: dbt's own ``DBT_TARGET_PATH`` (relative to the repository
    root, where every dbt process here runs), else ``dbt_project/target``."""
    target = Path(os.environ.get("DBT_TARGET_PATH") or "dbt_project/target")
    return target if target.is_absolute() else _REPO_ROOT / target


def _parse_url(variable: str, url: str, schemes: set[str] | None = None) -> tuple[SplitResult, int | None]:
    """``url`` (the value of ``variable``) split, and its port (None when it gives none). A scheme not
    among ``schemes`` (when given) or a port that is no number from 0 to 65535 is a ConfigurationError
    naming the variable; the message repeats nothing of the URL but its scheme: a password with an
    unencoded '/' or '@' ends the address early, and what the parser takes for its port is then a piece
    of the password."""
    parsed = urlsplit(url)
    if schemes is not None and parsed.scheme not in schemes:
        wanted = " or ".join(f"{scheme}://" for scheme in sorted(schemes))
        raise ConfigurationError(f"{variable} must start with {wanted}, not {parsed.scheme}://")
    try:
        return parsed, parsed.port
    except ValueError:
        raise ConfigurationError(
            f"{variable} has a port that is no number from 0 to 65535 (write {parsed.scheme}://host:port; "
            "percent-encode a '/', '@' or ':' in a user or password written into it)"
        ) from None


class ServiceNotRunning(RuntimeError):
    """A service has no configured address and no embedded one is running: the message says what to do."""


# The variable that gives each service's address in production (README, "Pointing at real servers").
ADDRESS_VARIABLES = {
    service: variable for service, (_, variable) in stack.SERVICES.items() if service not in stack.OPTIONAL
}


def _start_it(service: str) -> str:
    return f"run `funnelhouse up` (or set {ADDRESS_VARIABLES[service]} for a real server, see README)"


def unconfigured_in_production() -> list[str]:
    """The address variables production still lacks (empty outside ``FUNNELHOUSE_ENV=prod``)."""
    if env_name() != "prod":
        return []
    return [variable for variable in ADDRESS_VARIABLES.values() if not os.environ.get(variable)]


def _embedded(service: str) -> dict:
    """The recorded address of the embedded ``service``, if its process still runs. services.json
    outlives a crash or a reboot: an address whose server is gone would fail later as a refused
    connection (a traceback, a driver's warning), not as the one line saying to start it again.
    Production never falls back to an embedded service: a forgotten variable would otherwise load,
    replicate or mail through whatever stack runs in the state home, and report success."""
    if env_name() == "prod":
        raise ServiceNotRunning(
            f"FUNNELHOUSE_ENV=prod needs {ADDRESS_VARIABLES[service]} set: production never uses an "
            f"embedded {service} (see README, 'Pointing at real servers')"
        )
    services = state.read_services()
    if service not in services:
        raise ServiceNotRunning(
            f"no {service} address configured and no embedded {service} running in {state.home()}: {_start_it(service)}"
        )
    recorded = services[service]
    if not state.recorded_process_runs(recorded):  # the recorded pid, not one a reboot reused
        raise ServiceNotRunning(
            f"{service} is not running: the embedded {service} recorded in {state.home()} "
            f"(pid {recorded.get('pid')}) has stopped (killed, or the machine restarted): {_start_it(service)}"
        )
    return recorded


def pg_dsn() -> str:
    """``FUNNELHOUSE_PG_DSN`` if set, else the embedded PostgreSQL of the current stack."""
    configured = os.environ.get("FUNNELHOUSE_PG_DSN")
    if configured:
        return configured
    return _embedded("postgres")["dsn"]


REPLICATION_DSN_VARIABLE = "FUNNELHOUSE_PG_REPLICATION_DSN"


def pg_replication_dsn(dsn: str | None = None) -> str:
    """What replication's ClickHouse pulls read the PostgreSQL database ``dsn`` (default ``pg_dsn()``)
    with: ClickHouse keeps it in a named collection (ingestion/replication/connections.py) through
    which whoever holds the ClickHouse user may run any query, so it should be a read-only role's.

    ``FUNNELHOUSE_PG_REPLICATION_DSN`` if set, which must name the same database as ``dsn``: rows are
    pulled through it while the bound, deletions and column types are read through ``dsn``, so a
    variable left pointing at another database would mix two databases without a word
    (``ReplicationDatabaseMismatch`` when the database names differ). Another host or port is only
    warned about: ClickHouse, which connects with it, often reaches the server by another name than
    this process (``host.docker.internal``, a pooler's port, a Unix socket here). Else, outside production, for a database of the
    embedded server, the embedded replication role on that database (a test's own database too);
    else ``dsn`` itself, its user's rights and all, with a warning naming the variable, so a
    deployment that predates the variable keeps replicating."""
    dsn = dsn or pg_dsn()
    configured = os.environ.get(REPLICATION_DSN_VARIABLE)
    if configured:
        pulled, read = _database_address(configured), _database_address(dsn)
        if pulled.rpartition("/")[2] != read.rpartition("/")[2]:
            raise ReplicationDatabaseMismatch(
                f"{REPLICATION_DSN_VARIABLE} names the database {pulled}, but replication reads {read}: "
                "point it at the same database (another user on it, the read-only role's), or unset it"
            )
        if pulled != read:
            _warn_other_address(pulled, read)
        return configured
    reader = _embedded_replication_reader(dsn)
    if reader:
        return reader
    _warn_replication_reads_with_the_main_user()
    return dsn


class ReplicationDatabaseMismatch(RuntimeError):
    """``FUNNELHOUSE_PG_REPLICATION_DSN`` names another database than the one replication reads."""


def _database_address(dsn: str) -> str:
    """``dsn``'s database as host:port/dbname, without user or password (for comparing and for
    messages), with libpq's defaults for what it leaves out: port 5432, the user's name as database."""
    parts = conninfo_to_dict(dsn)
    host = parts.get("host") or parts.get("hostaddr") or ""
    database = parts.get("dbname") or parts.get("user") or ""
    return f"{host}:{parts.get('port') or 5432}/{database}"


@functools.cache
def _warn_other_address(pulled: str, read: str) -> None:
    """Once per pair of addresses: every run would repeat it."""
    _log.warning(
        "%s names %s and replication reads %s: the same database name on another address, which is "
        "right only if ClickHouse reaches this process's server by that name",
        REPLICATION_DSN_VARIABLE,
        pulled,
        read,
    )


def _embedded_replication_reader(dsn: str) -> str | None:
    """``dsn`` as the embedded server's replication role, if ``dsn`` is on the embedded server
    (by host and port) and it has one (devstack/postgres.py); never in production."""
    if env_name() == "prod":
        return None
    try:
        embedded = _embedded("postgres")
    except ServiceNotRunning:
        return None
    if "replication_dsn" not in embedded:  # a server an older version started: `funnelhouse up` adds it
        return None
    target, reader = conninfo_to_dict(dsn), conninfo_to_dict(embedded["replication_dsn"])
    if (target.get("host"), str(target.get("port"))) != (embedded["host"], str(embedded["port"])):
        return None
    return make_conninfo(dsn, user=reader["user"], password=reader["password"])


@functools.cache
def _warn_replication_reads_with_the_main_user() -> None:
    """Once per process: every run would repeat it."""
    _log.warning(
        "%s is not set: ClickHouse pulls replication from PostgreSQL as the main user (FUNNELHOUSE_PG_DSN's, "
        "or the superuser of an embedded stack started before the read-only role existed: `funnelhouse up` "
        "adds it), and whoever holds the ClickHouse user can query PostgreSQL with that user's rights; set "
        "it to a read-only role's DSN (docs/warehouse.md, 'Replication')",
        REPLICATION_DSN_VARIABLE,
    )


@dataclass(frozen=True)
class ClickHouseSettings:
    host: str
    port: int
    username: str
    password: str = field(repr=False)  # settings get logged and printed: never the password
    secure: bool = False
    database: str = "default"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}:{self.port}"


def clickhouse_settings() -> ClickHouseSettings:
    """``FUNNELHOUSE_CLICKHOUSE_URL`` (+ ``_USER``/``_PASSWORD``) if set, else the embedded server."""
    url = os.environ.get("FUNNELHOUSE_CLICKHOUSE_URL")
    if url:
        parsed, port = _parse_url("FUNNELHOUSE_CLICKHOUSE_URL", url)
        secure = parsed.scheme == "https"
        return ClickHouseSettings(
            host=parsed.hostname or "localhost",
            port=port or (8443 if secure else 8123),
            # credentials in the URL are percent-encoded, as in the SMTP URL (a password with @ or /)
            username=os.environ.get("FUNNELHOUSE_CLICKHOUSE_USER", unquote(parsed.username or "default")),
            password=os.environ.get("FUNNELHOUSE_CLICKHOUSE_PASSWORD", unquote(parsed.password or "")),
            secure=secure,
        )
    info = _embedded("clickhouse")
    return ClickHouseSettings(
        host=info["host"], port=int(info["port"]), username=info["user"], password=info["password"]
    )


REPLICATION_USER_VARIABLE = "FUNNELHOUSE_CLICKHOUSE_REPLICATION_USER"
REPLICATION_PASSWORD_VARIABLE = "FUNNELHOUSE_CLICKHOUSE_REPLICATION_PASSWORD"


def clickhouse_replication_settings() -> ClickHouseSettings:
    """The ClickHouse user replication runs as: the only one that may pull PostgreSQL (its named
    collection holds the read-only role that reads every contact detail), so dbt's and the analysts'
    user need not, and must not (docs/warehouse.md, 'Replication').

    ``FUNNELHOUSE_CLICKHOUSE_REPLICATION_USER`` (+ ``_PASSWORD``) on the server of
    ``FUNNELHOUSE_CLICKHOUSE_URL`` if both are set; else, with no URL, the embedded server's
    replication user; else (a deployment that predates the variable, a server an older version
    started) :func:`clickhouse_settings` itself, with a warning naming the variable."""
    main = clickhouse_settings()
    if os.environ.get("FUNNELHOUSE_CLICKHOUSE_URL"):
        user = os.environ.get(REPLICATION_USER_VARIABLE)
        password = os.environ.get(REPLICATION_PASSWORD_VARIABLE, "")
    else:
        recorded = _embedded("clickhouse")
        user, password = recorded.get("replication_user"), recorded.get("replication_password", "")
    if user:
        return dataclasses.replace(main, username=user, password=password)
    _warn_replication_writes_with_the_main_user()
    return main


@functools.cache
def _warn_replication_writes_with_the_main_user() -> None:
    """Once per process: every run would repeat it."""
    _log.warning(
        "%s is not set: replication runs as the main ClickHouse user (FUNNELHOUSE_CLICKHOUSE_USER's, or "
        "`default` of an embedded server started before the replication user existed: `funnelhouse up` "
        "adds it), which then must be allowed PostgreSQL and named collections, and so may read every "
        "contact detail through them; set it to a user of its own (docs/warehouse.md, 'Replication')",
        REPLICATION_USER_VARIABLE,
    )


def backup_dir():
    """``FUNNELHOUSE_BACKUP_DIR``, else ``<state home>/backups``."""
    from pathlib import Path

    configured = os.environ.get("FUNNELHOUSE_BACKUP_DIR")
    return Path(configured) if configured else state.home() / "backups"


def backup_offsite_url() -> str | None:
    """Where each backup is copied off the machine (any fsspec URL); unset = no off-site copy."""
    return os.environ.get("FUNNELHOUSE_BACKUP_OFFSITE_URL") or None


TIMEZONE_VARIABLE = "FUNNELHOUSE_TIMEZONE"


def timezone_setting(variable: str, default: str = "Asia/Shanghai") -> str:
    """``variable``, an IANA time zone name such as ``Europe/Berlin`` (``default`` when unset or
    empty), checked here so that a wrong one names the variable, not just the schedule Dagster
    refuses it for."""
    name = os.environ.get(variable, "").strip() or default
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Asia", a folder
        raise ConfigurationError(
            f"{variable} must be an IANA time zone such as Asia/Shanghai, not {name!r}"
        ) from None
    return name


def day_setting(variable: str, default: str) -> str:
    """``variable``, a day as YYYY-MM-DD (``default`` when unset or empty), normalised."""
    value = os.environ.get(variable, "").strip() or default
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ConfigurationError(f"{variable} must be a day as YYYY-MM-DD, not {value!r}") from None


def hour_setting(variable: str, default: int) -> int:
    """``variable``, a whole hour of the day from 0 to 23 (``default`` when unset or empty): what a
    cron string is made with, refused here rather than by Dagster's cron parser."""
    value = os.environ.get(variable, "").strip() or str(default)
    if not (value.isascii() and value.isdigit() and int(value) < 24):
        raise ConfigurationError(f"{variable} must be a whole hour from 0 to 23, not {value!r}")
    return int(value)


def schedule_timezone() -> str:
    """The timezone every cron schedule runs in (the sales team's, not the server's)."""
    return timezone_setting(TIMEZONE_VARIABLE)


KPI_FIRST_DAY_VARIABLE = "FUNNELHOUSE_KPI_FIRST_DAY"


def kpi_first_day() -> str:
    """The first daily partition of the KPI mart in Dagster (a UTC day, YYYY-MM-DD): the earliest day a
    backfill can rebuild. A CRM with older history sets it to its first day."""
    return day_setting(KPI_FIRST_DAY_VARIABLE, "2024-01-01")


@dataclass(frozen=True)
class SearchSettings:
    url: str
    flavour: str  # elasticsearch | opensearch: picks the Python client (each refuses the other engine)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # kept out of logs and tracebacks
    verify_tls: bool = True
    ca_certs: str | None = None
    embedded: bool = False  # the engine of the current stack, not one FUNNELHOUSE_SEARCH_URL names


def search_settings() -> SearchSettings:
    """``FUNNELHOUSE_SEARCH_URL`` (+ ``_FLAVOUR``, ``_USER``/``_PASSWORD``, ``_VERIFY_TLS``, ``_CA_CERTS``)
    if set, else the embedded engine of the current stack."""
    url = os.environ.get("FUNNELHOUSE_SEARCH_URL")
    if url:
        flavour = os.environ.get("FUNNELHOUSE_SEARCH_FLAVOUR", "elasticsearch")
        if flavour not in {"elasticsearch", "opensearch"}:
            raise ConfigurationError(
                f"FUNNELHOUSE_SEARCH_FLAVOUR must be elasticsearch or opensearch, not {flavour!r}"
            )
        return SearchSettings(
            url=url,
            flavour=flavour,
            username=os.environ.get("FUNNELHOUSE_SEARCH_USER") or None,
            password=os.environ.get("FUNNELHOUSE_SEARCH_PASSWORD") or None,
            verify_tls=os.environ.get("FUNNELHOUSE_SEARCH_VERIFY_TLS", "true").lower()
            not in {"0", "false", "no"},
            ca_certs=os.environ.get("FUNNELHOUSE_SEARCH_CA_CERTS") or None,
        )
    info = _embedded("search")
    return SearchSettings(url=info["url"], flavour=info["flavour"], embedded=True)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False  # smtps:// (port 465): TLS from the first byte
    starttls: bool = False  # smtp:// upgraded with STARTTLS before AUTH
    outbox: str | None = None  # only the embedded sink has one: where its messages land

    def __repr__(self) -> str:  # keeps the password out of logs and tracebacks
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port}, sender={self.sender!r}, tls={self.tls_mode})"
        )

    @property
    def tls_mode(self) -> str:
        return "implicit" if self.implicit_tls else "starttls" if self.starttls else "none"


REPORT_FROM_VARIABLE = "FUNNELHOUSE_REPORT_FROM"


def report_sender() -> str:
    """The sender address of the reports and the run-failure alerts: ``FUNNELHOUSE_REPORT_FROM``, else
    ``funnelhouse-reports@localhost`` (also when unset or empty)."""
    return os.environ.get(REPORT_FROM_VARIABLE, "").strip() or "funnelhouse-reports@localhost"


def smtp_settings() -> SmtpSettings:
    """``FUNNELHOUSE_SMTP_URL`` (``smtp://`` or ``smtps://``, user and password in the URL or in
    ``FUNNELHOUSE_SMTP_USER``/``_PASSWORD``, STARTTLS on for ``smtp://`` unless
    ``FUNNELHOUSE_SMTP_STARTTLS=0``) if set, else the embedded SMTP sink of the current stack."""
    sender = report_sender()
    url = os.environ.get("FUNNELHOUSE_SMTP_URL")
    if url:
        parsed, port = _parse_url("FUNNELHOUSE_SMTP_URL", url, {"smtp", "smtps"})
        implicit_tls = parsed.scheme == "smtps"
        starttls_flag = os.environ.get("FUNNELHOUSE_SMTP_STARTTLS", "1").strip().lower()
        return SmtpSettings(
            host=parsed.hostname or "localhost",
            port=port or (465 if implicit_tls else 587),
            sender=sender,
            username=os.environ.get("FUNNELHOUSE_SMTP_USER") or unquote(parsed.username or "") or None,
            password=os.environ.get("FUNNELHOUSE_SMTP_PASSWORD") or unquote(parsed.password or "") or None,
            implicit_tls=implicit_tls,
            starttls=not implicit_tls and starttls_flag not in {"0", "false", "no", "off"},
        )
    info = _embedded("smtp")
    return SmtpSettings(host=info["host"], port=int(info["port"]), sender=sender, outbox=info.get("outbox"))
