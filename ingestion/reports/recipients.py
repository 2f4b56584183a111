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

An address is one recipient however many active manager/admin rows carry it (compared lower-cased):
it gets the widest report they give, the whole company's if one is an admin's, unless its entry in the
file gives a scope. An entry without ``scope`` only changes a recipient the table already gives (an
active manager or admin); for anyone else it is skipped with a warning, never a whole-company report
by default. A key the file does not know, or a value of the wrong type (``replace = "false"``,
``exclude`` as one address rather than a list), is a RecipientError naming the key: never a guess.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from ingestion.contracts import CONTRACTS
from ingestion.reports import addresses

log = logging.getLogger(__name__)

ALL_DEPARTMENTS = "all"
# employees.department's CHECK set, as the landing contract declares it
DEPARTMENTS = next(c.allowed for c in CONTRACTS["employees"].columns if c.name == "department")
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
CONFIG_ENV = "FUNNELHOUSE_REPORT_RECIPIENTS"


class RecipientError(ValueError):
    """A scope, language or recipients file that cannot be used: a one-line message, no traceback needed."""


def valid_scopes() -> tuple[str, ...]:
    return (ALL_DEPARTMENTS, *DEPARTMENTS)


def check_scope(scope: str) -> str:
    """``scope`` if it is a department or ``all``. A misspelt department would filter every number out:
    an empty report, sent as if fine. The recipients file and ``funnelhouse report --scope`` both use this."""
    if scope not in valid_scopes():
        raise RecipientError(f"scope must be one of {', '.join(valid_scopes())}, not {scope!r}")
    return scope


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise RecipientError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    return language


def email_problem(email: str, smtputf8: bool | None = None) -> str | None:
    """Why a report cannot be mailed to ``email``, or None if it can.

    ``smtputf8``: whether the SMTP server offers SMTPUTF8 (RFC 6531), None if not known (nothing is
    sent, or the server could not be asked). Without it an address whose local part is not ASCII
    (``josé@example.com``, ``张三@例子.中国``) cannot be delivered, however valid it is; an
    internationalised domain always can (``addresses``)."""
    if problem := addresses.shape_problem(email):
        return problem
    if smtputf8 is False and addresses.needs_smtputf8(email):
        return addresses.SMTPUTF8_NOT_OFFERED
    return None


def check_email(email: str, smtputf8: bool | None = None) -> str:
    """``email`` if a report can be mailed to it; else a RecipientError naming it and saying why."""
    if problem := email_problem(email, smtputf8):
        raise RecipientError(f"{email!r}: {problem}")
    return email


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
    """The file's mapping; a missing, unreadable or malformed file is a RecipientError saying which."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipientError("no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipientError(f"cannot read it: {getattr(error, 'strerror', None) or error}") from None
    import yaml

    try:
        config = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RecipientError(
            f"not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {first_line}"
        ) from None
    if not isinstance(config, dict):
        raise RecipientError(
            f"expected a mapping (replace / recipients / exclude ...), not {type(config).__name__}"
        )
    return config


# The keys of a recipients file and of each of its recipients entries; anything else is most likely a
# misspelling (``exlude:``) that would silently change nothing.
CONFIG_KEYS = ("replace", "default_language", "exclude", "recipients")
ENTRY_KEYS = ("email", "name", "scope", "language")


def _wrong(key: str, expected: str, value: object) -> RecipientError:
    return RecipientError(f"{key}: expected {expected}, not {type(value).__name__} {value!r}")


def _unknown(keys, known: tuple[str, ...], where: str) -> None:
    if unknown := [key for key in keys if key not in known]:
        raise RecipientError(f"{where}unknown key {unknown[0]!r} (known: {', '.join(known)})")


def _listed(config: dict, key: str):
    """``config[key]``; an empty list for a key not given, or given without a value (YAML ``exclude:``)."""
    value = config.get(key)
    return [] if value is None else value


def check_config(config: dict) -> dict:
    """``config`` with every key present and of its type: ``replace`` a real boolean (the TOML string
    ``"false"`` is true to Python: it would drop every manager), ``default_language`` a language,
    ``exclude`` a list of addresses (a single address walked as a string excludes nobody),
    ``recipients`` a list of mappings of text. Anything else is a RecipientError naming the key."""
    _unknown(config, CONFIG_KEYS, "")
    replace_all = config.get("replace", False)
    if not isinstance(replace_all, bool):
        raise _wrong("replace", "true or false", replace_all)
    default_language = config.get("default_language", DEFAULT_LANGUAGE)
    if not isinstance(default_language, str):
        raise _wrong("default_language", "a language", default_language)
    try:
        check_language(default_language)
    except RecipientError as error:
        raise RecipientError(f"default_language: {error}") from None
    exclude = _listed(config, "exclude")
    if not isinstance(exclude, list) or not all(isinstance(email, str) for email in exclude):
        raise _wrong("exclude", "a list of e-mail addresses", exclude)
    entries = _listed(config, "recipients")
    if not isinstance(entries, list):
        raise _wrong("recipients", "a list of entries with an email", entries)
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("email"), str):
            raise RecipientError(f"every entry of recipients needs an email: {entry!r}")
        _unknown(entry, ENTRY_KEYS, f"recipients: {entry['email']}: ")
        for key in ENTRY_KEYS:
            if key in entry and not isinstance(entry[key], str):
                raise _wrong(f"recipients: {entry['email']}: {key}", "text", entry[key])
    return {
        "replace": replace_all,
        "default_language": default_language,
        "exclude": exclude,
        "recipients": entries,
    }


def one_per_address(recipients: list[Recipient]) -> dict[str, Recipient]:
    """Each address once, with the widest report its rows give: addresses are compared lower-cased, so
    two employee rows (``employees.email`` is unique only as written) may be one mailbox. An admin's
    row (the whole company) wins over a manager's; of two departments, neither wider, the first row's
    (``from_employees`` orders them by department) stays, with a warning saying to choose one in the
    recipients file, whose entry for the address decides either way (``apply_config``)."""
    chosen: dict[str, Recipient] = {}
    for recipient in recipients:
        kept = chosen.get(recipient.email)
        if kept is None or (recipient.sees_everything and not kept.sees_everything):
            chosen[recipient.email] = recipient
        elif not kept.sees_everything and kept.scope != recipient.scope:
            log.warning(
                "recipient %s: manager of %s and of %s in employees: gets the %s report only (give it a "
                "scope in the recipients file to choose)",
                recipient.email,
                kept.scope,
                recipient.scope,
                kept.scope,
            )
    return chosen


def apply_config(recipients: list[Recipient], config: dict) -> list[Recipient]:
    """``recipients`` (the employees table's: one address may come several times, see
    :func:`one_per_address`) changed by the recipients file ``config``."""
    config = check_config(config)
    default_language = config["default_language"]
    by_email = (
        {}
        if config["replace"]
        else {
            email: replace(r, language=default_language) for email, r in one_per_address(recipients).items()
        }
    )
    for entry in config["recipients"]:
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
    for email in config["exclude"]:
        by_email.pop(email.strip().lower(), None)
    for recipient in by_email.values():
        try:
            check_scope(recipient.scope)
            check_language(recipient.language)
        except RecipientError as error:
            raise RecipientError(f"{recipient.email}: {error}") from None
    return sorted(by_email.values(), key=lambda r: (r.scope != ALL_DEPARTMENTS, r.scope, r.email))


def resolve(dsn: str, config_path: str | os.PathLike | None = None) -> list[Recipient]:
    """The employees table, changed by the config file (argument, else ``$FUNNELHOUSE_REPORT_RECIPIENTS``).

    Anything wrong with the file is a RecipientError naming the file (and the variable that named it)."""
    source = f"recipients file {config_path}" if config_path else "employees table"
    if not config_path and os.environ.get(CONFIG_ENV):
        config_path = os.environ[CONFIG_ENV]
        source = f"{CONFIG_ENV}={config_path}"
    try:
        config = check_config(load_config(Path(config_path)) if config_path else {})
        recipients = [] if config["replace"] else from_employees(dsn)
        return apply_config(recipients, config)
    except RecipientError as error:
        raise RecipientError(f"{source}: {error}") from None
