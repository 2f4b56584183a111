"""ClickHouse's HTTP request semantics, independent of the socket handling in ``server``.

What a request means: which URL parameters are transport and which are settings or query
parameters, how much of the body is the statement (the rest of an INSERT is data, left unread for the
inserter), which output formats may be streamed block by block, and what a read-only request or the
read-only user may run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from devstack.clickhouse import sql
from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.users import User

MAX_QUERY_BYTES = 64 << 20  # text of a non-INSERT statement (INSERT data is streamed, not limited)

# URL parameters that steer the HTTP exchange itself; every other parameter (except param_*) is a setting.
TRANSPORT_PARAMS = frozenset(
    [
        "query",
        "database",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "default_format",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
        "with_stacktrace",
        "readonly",
        # how the answer to compress=1 is compressed (clickhouse-go sends them with it); the engine's
        # own value does not matter to an HTTP answer, and chDB's readonly=1 would refuse them
        "network_compression_method",
        "network_zstd_compression_level",
    ]
)
# Formats whose streamed blocks can simply be concatenated; the others (JSON, *WithNames*, Arrow,
# Parquet, Pretty, ...) repeat a header per block in chDB's stream, so their answers are buffered.
CONCATENABLE_FORMATS = frozenset(
    [
        "native",
        "tabseparated",
        "tsv",
        "tabseparatedraw",
        "tsvraw",
        "csv",
        "jsoneachrow",
        "jsonlines",
        "ndjson",
        "jsoncompacteachrow",
        "jsonstringseachrow",
        "jsoncompactstringseachrow",
        "rowbinary",
        "values",
        "tskv",
        "lineasstring",
        "null",
    ]
)


def content_type(output_format: str) -> str:
    name = output_format.lower()
    if name.startswith(("json", "ndjson")):
        return "application/json; charset=UTF-8"
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if name.startswith(("pretty", "vertical", "markdown", "xml")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


@dataclass
class Request:
    """One HTTP query request after authentication, with its text split into parts."""

    params: dict[str, str]
    user: User
    method: str
    query_id: str
    settings: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def split_params(cls, params: dict[str, str], user: User, method: str) -> Request:
        request = cls(
            params=params, user=user, method=method, query_id=params.get("query_id") or str(uuid.uuid4())
        )
        for name, value in params.items():
            if name.startswith("param_"):
                request.query_params[name[len("param_") :]] = value
            elif name not in TRANSPORT_PARAMS:
                request.settings[name] = value
        return request

    @property
    def native_revision(self) -> int:
        """The protocol revision the client reads Native blocks at (clickhouse-go sends its own)."""
        value = self.params.get("client_protocol_version", "")
        return int(value) if value.isascii() and value.isdigit() else 0

    @property
    def readonly_mode(self) -> int:
        """ClickHouse's readonly level for this request: GET implies 2, the BI user always has 1."""
        if self.user.readonly:
            return 1
        requested = self.params.get("readonly", "0")
        if self.method == "GET":
            return 2 if requested in ("0", "") else int(requested)
        return int(requested) if requested.isdigit() else 0


class StatementReader:
    """Reads just enough of ``query`` param + body to know the statement, leaving INSERT data unread."""

    HEAD_LIMIT = 1 << 20

    def __init__(self, query_param: str | None, body: Iterator[bytes]):
        self._body = body
        self.exhausted = False
        first = next(body, None)
        self._buffer = bytearray((query_param or "").encode())
        if first is None:
            self.exhausted = True
        else:
            if query_param:
                self._buffer += b"\n"
            self._buffer += first

    def _pull(self) -> bool:
        chunk = next(self._body, None)
        if chunk is None:
            self.exhausted = True
            return False
        self._buffer += chunk
        return True

    def read(self) -> tuple[sql.Statement, sql.DataInsert | None, Iterator[bytes] | None]:
        while True:
            text = self._buffer[: self.HEAD_LIMIT].decode("latin-1")
            try:
                insert = sql.find_data_insert(
                    text, complete=self.exhausted or len(self._buffer) > self.HEAD_LIMIT
                )
                break
            except sql.NeedMoreInput:
                self._pull()
        if insert is not None:
            head = bytes(self._buffer[: len(insert.head)]).decode(errors="replace")
            statement = sql.classify(head)
            insert.head = statement.sql
            return statement, insert, self._data(insert.data_offset)
        while not self.exhausted:
            self._pull()
            if len(self._buffer) > MAX_QUERY_BYTES:
                raise ClickHouseError(
                    229, f"Query is too large ({len(self._buffer)}). max_query_size = {MAX_QUERY_BYTES}"
                )
        text = bytes(self._buffer).decode(errors="replace").strip()
        if not text:
            raise ClickHouseError(62, "Empty query")
        return sql.classify(text), None, None

    def _data(self, offset: int) -> Iterator[bytes]:
        leftover, self._buffer = bytes(self._buffer[offset:]), bytearray()
        if leftover:
            yield leftover
        yield from self._body
        self.exhausted = True


def check_permissions(request: Request, statement: sql.Statement, is_insert: bool) -> None:
    """Refuse what this request may not run, before the engine sees it.

    Whatever the user and mode: only a user allowed the PostgreSQL source (replication's) reaches
    PostgreSQL or named collections (``_check_postgres_source``), and no user reaches host files or
    other servers (``_check_external_sources``).

    GET requests and ``readonly`` ones may only read (ClickHouse's rule). chDB's ``readonly=1`` still
    allows ``KILL``, so the BI user's is refused here.
    """
    _check_postgres_source(request.user, statement, current_database(request))
    _check_external_sources(request.user, statement)
    mode = request.readonly_mode
    if not mode:
        return
    allowed = set(sql.READ_KINDS) | ({"SET", "USE"} if mode != 1 or request.user.readonly else set())
    if is_insert or statement.kind not in allowed:
        if request.method == "GET" and not request.user.readonly:
            raise ClickHouseError(
                164, "Cannot execute query in readonly mode. For queries over HTTP, method POST is required"
            )
        raise ClickHouseError(164, f"{request.user.name}: Cannot execute query in readonly mode")


def _not_enough_privileges(user: User, grant: str, why: str) -> ClickHouseError:
    return ClickHouseError(
        497,
        f"{user.name}: Not enough privileges. To execute this query, it's necessary to have the grant "
        f"{grant} ({why})",
    )


def _check_external_sources(user: User, statement: sql.Statement) -> None:
    """Refuse ``INTO OUTFILE`` and the functions, engines and dictionary sources reading host files or
    reaching other servers (``sql.EXTERNAL_SOURCES``) to every user, as a real server refuses them
    without ``READ ON FILE``, ``READ ON URL``, ``READ ON REMOTE``, ... grants: chDB runs them as this
    server's process, so ``file()`` reads its secrets (services.json, every password) and ``url()``
    calls this very server as another user, replication's included. Nothing here needs them: dbt, ingestion and reports
    insert with ``INSERT ... FORMAT`` / ``VALUES``; replication needs only ``postgresql()`` (its
    own check, ``_check_postgres_source``), which is all its ``postgres_source`` exempts."""
    if statement.writes_outfile():
        raise _not_enough_privileges(user, "WRITE ON FILE", "INTO OUTFILE writes a host file; no user may")
    exempt = sql.POSTGRES_SOURCES if user.postgres_source else frozenset()
    function = statement.called(sql.EXTERNAL_SOURCES - exempt)
    if function:
        raise _not_enough_privileges(
            user, sql.source_grant(function), f"{function}() reads host files or other servers; no user may"
        )


def current_database(request: Request) -> str | None:
    """The database the engine runs this request on (``EngineConnection.prepare``): its ``database``
    parameter, else ``default`` outside a session; None in a session without one, whose ``USE`` is
    known only to its connection."""
    return request.params.get("database") or (None if request.params.get("session_id") else "default")


def _check_postgres_source(user: User, statement: sql.Statement, current_database: str | None) -> None:
    """Refuse PostgreSQL and named collections to a user without ``postgres_source``, as a real
    server refuses them without ``READ ON POSTGRES`` and ``NAMED COLLECTION`` grants: the replication
    collection's read-only role reads every contact detail in clear, which must stay in PostgreSQL
    for everyone but replication (dbt, analysts, the BI user)."""
    if user.postgres_source:
        return
    source = statement.called(sql.POSTGRES_SOURCES)
    if source:
        raise _not_enough_privileges(
            user, "READ ON POSTGRES", f"{source}() reaches PostgreSQL; only the replication user may"
        )
    collection = statement.named_collection_use()
    if collection:
        raise _not_enough_privileges(
            user, "NAMED COLLECTION ADMIN", f"{collection}; only the replication user may"
        )
    # a read-only user's table functions are checked by its grants (grants.py), also over system
    system_read = statement.reads_system_by_function(current_database) if user.databases is None else None
    if system_read:
        raise _not_enough_privileges(
            user, "SELECT ON system.*", f"{system_read}: it lists system.named_collections"
        )
