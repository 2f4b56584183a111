"""Users of the local server: a JSON file of salted PBKDF2 password hashes, never plain passwords.

File shape (written by :func:`write_users_file`, read by :class:`UserDirectory`)::

    {"users": {"default": {"pbkdf2_sha256": "<hex>", "salt": "<hex>", "iterations": 100000,
                           "readonly": false},
               "funnelhouse_replication": {..., "readonly": false, "postgres_source": true},
               "bi_reader": {..., "readonly": true, "databases": ["marts"]}}}

A user without a hash has no password, which the server accepts only while it listens on loopback.
A read-only user reads only its ``databases`` (enforced by ``grants``); a file without the key (written
before grants existed) grants the marts default, :func:`default_bi_databases` -- never everything.
Only a user with ``postgres_source`` (replication's) may reach PostgreSQL or named collections
(``protocol.check_permissions``); a file without the key allows it to nobody.
PBKDF2 costs tens of milliseconds by design; one verification per (user, password) is remembered in
memory -- keyed by a salted digest, not the password -- so small queries stay fast.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from devstack import state
from devstack.clickhouse.errors import ClickHouseError

ITERATIONS = 100_000
DEFAULT_USER = "default"
READONLY_USER = "bi_reader"
# The user replication writes raw with, the only one that pulls PostgreSQL (through its named collection).
REPLICATION_USER = "funnelhouse_replication"


def default_bi_databases() -> list[str]:
    """The read-only user's databases: ``FUNNELHOUSE_BI_DATABASES`` (comma-separated), else the marts
    dbt builds (``marts`` behind ``FUNNELHOUSE_SCHEMA_PREFIX``, as ``generate_schema_name`` names it)."""
    listed = [name.strip() for name in os.environ.get("FUNNELHOUSE_BI_DATABASES", "").split(",")]
    return [name for name in listed if name] or [os.environ.get("FUNNELHOUSE_SCHEMA_PREFIX", "") + "marts"]


@dataclass(frozen=True)
class User:
    name: str
    readonly: bool = False
    password_hash: str | None = None
    salt: str = ""
    iterations: int = ITERATIONS
    databases: tuple[str, ...] | None = None  # what a read-only user may read; None: everything
    postgres_source: bool = False  # may reach PostgreSQL and named collections (replication only)

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> dict:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return {"pbkdf2_sha256": digest.hex(), "salt": salt.hex(), "iterations": iterations}


def write_users_file(
    path: Path,
    users: dict[str, tuple[str | None, bool]],
    bi_databases: list[str] | None = None,
    postgres_source: Collection[str] = (),
) -> None:
    """Write ``{name: (password or None, readonly)}`` as a private users file; read-only users get
    ``bi_databases`` (default :func:`default_bi_databases`) as the databases they may read, the users
    named in ``postgres_source`` the PostgreSQL source."""
    entries = {}
    for name, (password, readonly) in users.items():
        entry = hash_password(password) if password else {}
        entries[name] = {**entry, "readonly": readonly}
        if name in postgres_source:
            entries[name]["postgres_source"] = True
        if readonly:
            entries[name]["databases"] = list(bi_databases or default_bi_databases())
    path.parent.mkdir(parents=True, exist_ok=True)
    state.write_private(path, json.dumps({"users": entries}, indent=2, sort_keys=True))


class UserDirectory:
    def __init__(self, users: dict[str, User]):
        self._users = users
        self._verified: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()

    @classmethod
    def passwordless_default(cls) -> UserDirectory:
        """What ``python -m devstack.clickhouse`` uses without ``--users``: one loopback-only user, who
        does everything (replication too): with no other user there is nobody to keep PostgreSQL from."""
        return cls({DEFAULT_USER: User(DEFAULT_USER, postgres_source=True)})

    @classmethod
    def load(cls, path: Path) -> UserDirectory:
        raw = json.loads(Path(path).read_text())["users"]
        return cls(
            {
                name: User(
                    name=name,
                    readonly=bool(entry.get("readonly", False)),
                    password_hash=entry.get("pbkdf2_sha256"),
                    salt=entry.get("salt", ""),
                    iterations=int(entry.get("iterations", ITERATIONS)),
                    databases=_granted_databases(entry),
                    postgres_source=entry.get("postgres_source") is True,
                )
                for name, entry in raw.items()
            }
        )

    def users_without_password(self) -> list[str]:
        return [name for name, user in self._users.items() if not user.has_password]

    def authenticate(self, name: str, password: str) -> User:
        user = self._users.get(name or DEFAULT_USER)
        if user is None:
            raise _authentication_failed(name)
        if not user.has_password:
            if password:
                raise _authentication_failed(name)
            return user
        cache_key = (user.name, hashlib.sha256(bytes.fromhex(user.salt) + password.encode()).digest())
        with self._lock:
            if cache_key in self._verified:
                return user
        computed = hash_password(password, bytes.fromhex(user.salt), user.iterations)["pbkdf2_sha256"]
        if not hmac.compare_digest(computed, user.password_hash or ""):
            raise _authentication_failed(name)
        with self._lock:
            self._verified.add(cache_key)
        return user


def _granted_databases(entry: dict) -> tuple[str, ...] | None:
    if not entry.get("readonly", False):
        return None
    return tuple(entry["databases"] if "databases" in entry else default_bi_databases())


def _authentication_failed(name: str) -> ClickHouseError:
    # ClickHouse's wording: it never says whether the user or the password was wrong.
    return ClickHouseError(
        516,
        f"{name or DEFAULT_USER}: Authentication failed: password is incorrect, or there is no user with such name",
    )
