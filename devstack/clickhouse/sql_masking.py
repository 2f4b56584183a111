"""Query text for logs: secrets masked as ClickHouse masks them in its own logs."""

from __future__ import annotations

import re

_SECRET_PATTERNS = (
    # key = 'value' pairs in NAMED COLLECTION / SETTINGS / engine arguments
    re.compile(r"(\b(?:password|secret_access_key|access_key_id|token)\b\s*=?\s*)'(?:[^'\\]|\\.)*'", re.I),
    # CREATE/ALTER USER ... IDENTIFIED [WITH method] BY 'secret'
    re.compile(r"(\bIDENTIFIED\b(?:\s+WITH\s+\w+)?\s+BY\s+)'(?:[^'\\]|\\.)*'", re.I),
    # postgresql('host:port', 'db', 'table', 'user', 'password' ...) and mysql(...) positional form
    re.compile(r"(\b(?:postgresql|mysql)\s*\(\s*(?:'(?:[^'\\]|\\.)*'\s*,\s*){4})'(?:[^'\\]|\\.)*'", re.I),
)


def loggable(text: str) -> str:
    """Query text with secrets masked, as ClickHouse masks them in its own logs: the query log must
    never carry the PostgreSQL password of a named collection or a table function."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1'[HIDDEN]'", text)
    return text
