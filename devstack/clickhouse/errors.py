"""ClickHouse's error contract over HTTP: numeric code, HTTP status and the ``Code: N. DB::Exception`` text.

Clients key on these (clickhouse-connect raises by ``X-ClickHouse-Exception-Code``, dbt matches codes
in messages), so errors raised by this server itself use ClickHouse's own codes and wording, and
chDB's errors pass through with their code intact.
"""

from __future__ import annotations

import re

ENGINE_VERSION_FALLBACK = "26.9"

# ClickHouse's src/Server/HTTP/exceptionCodeToHTTPStatus.cpp, transcribed by code. One deliberate
# difference: CANNOT_OPEN_FILE (76) is a deterministic error here (a missing file stays missing), so it
# answers 500 instead of 503, which clients and proxies would retry forever.
_STATUS_BY_CODE = {
    194: 401,  # REQUIRED_PASSWORD
    **dict.fromkeys((192, 193, 516, 512, 497), 403),  # unknown user, wrong password, auth, role, access
    **dict.fromkeys(
        (
            36,
            427,
            6,
            25,
            26,
            38,
            41,
            72,
            441,
            675,
            676,
            27,
            376,
            15,
            44,
            37,
            123,
            8,
            167,
            168,
            223,
            62,
            117,
            53,
            321,
        ),
        400,
    ),
    **dict.fromkeys((60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511), 404),
    229: 413,  # QUERY_IS_TOO_LARGE
    48: 501,  # NOT_IMPLEMENTED
    209: 503,  # SOCKET_TIMEOUT
    439: 503,  # CANNOT_SCHEDULE_TASK
    381: 411,  # HTTP_LENGTH_REQUIRED
    159: 408,  # TIMEOUT_EXCEEDED
    779: 415,  # UNSUPPORTED_MEDIA_TYPE
}

# Names for the codes this server raises itself; engine errors carry their own name in the text.
ERROR_NAMES = {
    36: "BAD_ARGUMENTS",
    48: "NOT_IMPLEMENTED",
    62: "SYNTAX_ERROR",
    89: "UNKNOWN_COMPRESSION_METHOD",
    164: "READONLY",
    229: "QUERY_IS_TOO_LARGE",
    271: "CANNOT_DECOMPRESS",
    372: "SESSION_NOT_FOUND",
    373: "SESSION_IS_LOCKED",
    394: "QUERY_WAS_CANCELLED",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    1001: "STD_EXCEPTION",
}

_CODE_RE = re.compile(r"Code: (\d+)\. ")
_ENGINE_VERSION = re.compile(r" \(version [0-9.]+\)$")
# ("Maybe you meant: [...]" with a colon suggests functions, settings or the query's own columns)
_OBJECT_HINT = re.compile(r" ?Maybe you meant [^:?][^?]*\?")
# The engine's access checks (ContextAccess: ACCESS_DENIED, READONLY, QUERY_IS_PROHIBITED,
# FUNCTION_NOT_ALLOWED) begin their message with the user's name: always chDB's one user, `default`.
# (Other codes keep it: a dictionary source's "default: Authentication failed" names the source's user.)
_ACCESS_CODES = frozenset([497, 164, 392, 446])
_ENGINE_USER = re.compile(r"(?<=DB::Exception: )default: ")


def http_status(code: int) -> int:
    return _STATUS_BY_CODE.get(code, 500)


class ClickHouseError(Exception):
    """An error with a ClickHouse code; ``str()`` is the one-line ``Code: N. DB::Exception: ...`` text."""

    def __init__(self, code: int, message: str, full_text: str | None = None):
        self.code = code
        self.message = message
        name = ERROR_NAMES.get(code, "UNKNOWN")
        self.text = full_text or f"Code: {code}. DB::Exception: {message}. ({name})"
        super().__init__(self.text)

    @property
    def status(self) -> int:
        return http_status(self.code)

    @classmethod
    def from_engine(cls, error: BaseException) -> ClickHouseError:
        """Wrap a chDB exception. Its text already reads ``Code: N. DB::Exception: ...`` after a prefix
        such as ``Streaming query failed: ``, which is dropped so clients see ClickHouse's exact shape."""
        if isinstance(error, ClickHouseError):
            return error
        return cls.from_text(str(error) or type(error).__name__)

    @classmethod
    def from_text(cls, text: str) -> ClickHouseError:
        """The error an engine message tells (``body()`` adds the version, so the engine's own goes)."""
        match = _CODE_RE.search(text)
        if not match:
            return cls(1001, text)
        full_text = _ENGINE_VERSION.sub("", text[match.start() :].strip())
        return cls(int(match.group(1)), full_text[match.end() - match.start() :], full_text=full_text)

    def seen_by(self, user: str, restricted: bool) -> ClickHouseError:
        """The error as ``user`` is told it: the engine's access errors name ``user``, as a real server's
        would, rather than chDB's one user; a ``restricted`` user's (one who may see only some databases)
        go without the engine's "Maybe you meant db.table?" (a table or database of any database, similar
        to the name asked for)."""
        text, message = self.text, self.message
        if self.code in _ACCESS_CODES:
            text, message = (_ENGINE_USER.sub(f"{user}: ", value) for value in (text, message))
        if restricted:
            text, message = (_OBJECT_HINT.sub("", value) for value in (text, message))
        return self if text == self.text else ClickHouseError(self.code, message, text)

    def body(self, version: str) -> bytes:
        return f"{self.text} (version {version})\n".encode()
