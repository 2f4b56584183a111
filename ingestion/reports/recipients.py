"""Who receives which report: managers see their department, admins see everything.

The default list comes from the seed's ``employees`` (active managers and admins with an email).
``FUNNELHOUSE_REPORT_RECIPIENTS`` may name a YAML or TOML file that changes it::

    replace: false            # true: ignore the employees table, use only the entries below
    default_language: zh
    exclude: [someone@example.com]
    recipients:
      - email: ceo@example.com
        scope: all            # or a department: ToFu / MoFu / BoFu / VIP / 培训
        language: en
      - email: tofu.lead@example.com
        language: en          # an entry for an existing recipient changes only what it names

An entry without ``scope`` only changes a recipient the table already gives (an active manager or
admin); for anyone else it is skipped with a warning, never a whole-company report by default.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from ingestion.contracts import CONTRACTS

log = logging.getLogger(__name__)

ALL_DEPARTMENTS = "all"
# employees.department's CHECK set, as the landing contract declares it
DEPARTMENTS = next(c.allowed for c in CONTRACTS["employees"].columns if c.name == "department")
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
CONFIG_ENV = "FUNNELHOUSE_REPORT_RECIPIENTS"


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    scope: str  # a department, or ALL_DEPARTMENTS
    language: str = DEFAULT_LANGUAGE
    role: str = "manager"

    @property
    def sees_everything(self) -> bool:
        return self.scope == ALL_DEPARTMENTS


def from_employees(dsn: str, default_language: str = DEFAULT_LANGUAGE) -> list[Recipient]:
    """Active managers (scoped to their department) and admins (everything)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT email, name, role, department FROM public.employees
               WHERE status = 'active' AND role IN ('manager', 'admin') AND email <> ''
                 AND (role = 'admin' OR department IS NOT NULL)
               ORDER BY role, department, email"""
        ).fetchall()
    return [
        Recipient(
            email=email.strip().lower(),
            name=name,
            scope=ALL_DEPARTMENTS if role == "admin" else department,
            language=default_language,
            role=role,
        )
        for email, name, role, department in rows
    ]


def load_config(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


def apply_config(recipients: list[Recipient], config: dict) -> list[Recipient]:
    default_language = config.get("default_language", DEFAULT_LANGUAGE)
    by_email = (
        {} if config.get("replace") else {r.email: replace(r, language=default_language) for r in recipients}
    )
    for entry in config.get("recipients", []):
        email = entry["email"].strip().lower()
        if email not in by_email and "scope" not in entry:
            # Most likely a manager who left: defaulting to a scope would hand them the whole company.
            log.warning("recipient %s: not an active manager or admin and no scope given: skipped", email)
            continue
        base = by_email.get(email) or Recipient(
            email=email,
            name=entry.get("name", email),
            scope=entry["scope"],
            language=default_language,
            role="configured",
        )
        changes = {key: entry[key] for key in ("name", "scope", "language") if key in entry}
        by_email[email] = replace(base, **changes)
    for email in config.get("exclude", []):
        by_email.pop(email.strip().lower(), None)
    for recipient in by_email.values():
        if recipient.scope != ALL_DEPARTMENTS and recipient.scope not in DEPARTMENTS:
            # A misspelt department would filter every number out: an empty report, sent as if fine.
            raise ValueError(
                f"{recipient.email}: scope must be {ALL_DEPARTMENTS!r} or one of {DEPARTMENTS}, "
                f"not {recipient.scope!r}"
            )
        if recipient.language not in LANGUAGES:
            raise ValueError(
                f"{recipient.email}: language must be one of {LANGUAGES}, not {recipient.language!r}"
            )
    return sorted(by_email.values(), key=lambda r: (r.scope != ALL_DEPARTMENTS, r.scope, r.email))


def resolve(dsn: str, config_path: str | os.PathLike | None = None) -> list[Recipient]:
    """The employees table, changed by the config file (argument, else ``$FUNNELHOUSE_REPORT_RECIPIENTS``)."""
    config_path = config_path or os.environ.get(CONFIG_ENV)
    config = load_config(Path(config_path)) if config_path else {}
    recipients = [] if config.get("replace") else from_employees(dsn)
    return apply_config(recipients, config)
