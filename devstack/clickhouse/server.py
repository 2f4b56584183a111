"""ClickHouse's HTTP interface in front of a chDB store.

Requests are routed by what the statement is: an INSERT with data is spooled to a file the engine
inserts from, a SELECT streams through ``send_query`` (or is buffered when the client waits for the
end of the query or the format repeats its header per block), anything else runs through ``query()``.
Around that sit the parts of ClickHouse's protocol that clients rely on: sessions, per-request
settings, query parameters, compressed bodies (and ClickHouse's block compression of answers,
``compress=1``), error codes and statuses, and the tagged mid-stream error trailer.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from devstack.clickhouse import compressed_blocks, grants, native_blocks, sql
from devstack.clickhouse.bodies import decoded_body, form_fields, framed_body
from devstack.clickhouse.engine import EngineConnection, Outcome, Store
from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.protocol import (
    CONCATENABLE_FORMATS,
    Request,
    StatementReader,
    check_permissions,
    content_type,
)
from devstack.clickhouse.sessions import Session, SessionRegistry
from devstack.clickhouse.users import UserDirectory

log = logging.getLogger("devstack.clickhouse")

KEEP_ALIVE_SECONDS = 30
ACTIVE_SOCKET_TIMEOUT = 600


class ClickHouseHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: Store, users: UserDirectory):
        self.store = store
        self.users = users
        self.sessions = SessionRegistry(store)
        self.display_name = socket.gethostname()
        self.draining = threading.Event()
        self._handlers_lock = threading.Lock()
        self._idle_handlers: set[Handler] = set()
        self._busy = 0
        self._busy_changed = threading.Condition(self._handlers_lock)
        super().__init__(address, Handler)

    # Handlers report whether they wait for a request (idle) or run one, so shutdown can close idle
    # keep-alive connections at once and wait for the running requests (no lost inserts).
    def mark_idle(self, handler: Handler) -> bool:
        with self._handlers_lock:
            if self.draining.is_set():
                return False
            self._idle_handlers.add(handler)
            return True

    def mark_busy(self, handler: Handler, busy: bool) -> None:
        with self._handlers_lock:
            self._idle_handlers.discard(handler)
            self._busy += 1 if busy else -1
            self._busy_changed.notify_all()

    def forget(self, handler: Handler) -> None:
        with self._handlers_lock:
            self._idle_handlers.discard(handler)

    def drain(self, timeout: float = 60.0) -> None:
        """Stop taking requests, let running ones finish, then release the store."""
        self.draining.set()
        with self._handlers_lock:
            for handler in list(self._idle_handlers):
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
            deadline = time.monotonic() + timeout
            while self._busy and time.monotonic() < deadline:
                self._busy_changed.wait(deadline - time.monotonic())
            unfinished = self._busy
        if unfinished:
            log.warning("shutting down with %d request(s) still running", unfinished)
        self.sessions.close_all()
        self.server_close()


def _unexpected(error: Exception) -> ClickHouseError:
    """A failure of this server's own code (not the engine's), as ClickHouse reports a std::exception."""
    return ClickHouseError(1001, f"{type(error).__name__}: {error}")


_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&\s]*")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse-devstack"
    disable_nagle_algorithm = True
    server: ClickHouseHTTPServer
    _head_sent = False  # whether this request's status line is already on the wire
    _answer_method: int | None = None  # ClickHouse's block compression the request asked for (compress=1)
    _answer_level = compressed_blocks.ZSTD_DEFAULT_LEVEL

    def log_message(self, format, *args):  # noqa: A002 -- BaseHTTPRequestHandler's signature
        # The request line carries the URL's parameters: a client may send its password as one.
        log.debug("%s %s", self.address_string(), _PASSWORD_PARAMETER.sub(r"\1***", format % args))

    def handle_one_request(self):
        if not self.server.mark_idle(self):
            self.close_connection = True
            return
        self.connection.settimeout(KEEP_ALIVE_SECONDS)
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            self.server.forget(self)
            self.close_connection = True
            return
        self.server.mark_busy(self, True)
        self._head_sent = False
        self._answer_method = None
        try:
            self.connection.settimeout(ACTIVE_SOCKET_TIMEOUT)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536 or not self.parse_request():
                self.close_connection = True
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            method()
            self.wfile.flush()
            if self.server.draining.is_set():
                self.close_connection = True
        except (TimeoutError, ConnectionError, BrokenPipeError):
            self.close_connection = True
        finally:
            self.server.mark_busy(self, False)

    # --- routing -------------------------------------------------------------------------------

    def do_HEAD(self):
        self._send(200, b"", {"Content-Type": "text/html; charset=UTF-8"}, head_only=True)

    def do_OPTIONS(self):
        self._send(204, b"", {"Allow": "GET, POST, HEAD, OPTIONS"})

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def _route(self):
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path in ("/ping", "/replicas_status") or (path == "/" and self.command == "GET" and not url.query):
            self._discard_body()
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
        elif path == "/":
            self._query(dict(parse_qsl(url.query, keep_blank_values=True)))
        else:
            self._discard_body()
            self._send_error(
                ClickHouseError(48, f"There is no handle {url.path}"), str(uuid.uuid4()), status=404
            )

    def _discard_body(self):
        for _ in framed_body(self.rfile, self.headers):
            pass

    # --- queries -------------------------------------------------------------------------------

    def _credentials(self, params: dict[str, str]) -> tuple[str, str]:
        authorization = self.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ClickHouseError(516, "Malformed Basic authorization header") from None
            return user, password
        if authorization:
            raise ClickHouseError(516, "Only Basic authentication is supported by the local server")
        return (
            self.headers.get("X-ClickHouse-User") or params.get("user", ""),
            self.headers.get("X-ClickHouse-Key") or params.get("password", ""),
        )

    def _query(self, params: dict[str, str]) -> None:
        started = time.perf_counter()
        query_id = params.get("query_id") or str(uuid.uuid4())
        body = iter(())
        statement: sql.Statement | None = None
        reader: StatementReader | None = None
        user_name = "-"
        restricted = False  # a user reading only some databases: engine errors must not hint at others
        try:
            if self.command == "POST":
                body = framed_body(self.rfile, self.headers)
                content_type_header = self.headers.get("Content-Type", "")
                if content_type_header.lower().startswith("multipart/form-data"):
                    params = {**params, **form_fields(body, content_type_header)}
                    body = iter(())
                else:
                    body = decoded_body(body, self.headers.get("Content-Encoding"))
            user_name, password = self._credentials(params)
            user = self.server.users.authenticate(user_name, password)
            user_name = user.name
            restricted = user.databases is not None
            # As in ClickHouse, the answer is compressed from here on (after authentication): results
            # and errors alike, except 401/403, which clients read uncompressed.
            if params.get("compress") == "1":
                self._answer_method = compressed_blocks.method_named(params.get("network_compression_method"))
                self._answer_level = compressed_blocks.zstd_level(
                    params.get("network_zstd_compression_level")
                )
            if params.get("decompress") == "1":
                raise ClickHouseError(
                    48, "ClickHouse's block compression of request bodies (decompress=1) is not supported"
                )
            request = Request.split_params(params, user, self.command)
            request.query_id = query_id
            reader = StatementReader(params.get("query"), body)
            statement, insert, data = reader.read()
            check_permissions(request, statement, insert is not None)
            outcome = self._execute(request, statement, insert, data)
            if outcome is not None:
                self._log(request, statement, started, 200, outcome)
        except ClickHouseError as error:
            self._finish_failed_body(reader, body)
            error = error.seen_by(user_name, restricted)
            self._send_error(error, query_id)
            self._log_failure(user_name, query_id, statement, started, error)
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True
        except Exception as error:
            log.exception("unexpected failure in query %s", query_id)
            self.close_connection = True
            self._send_error(_unexpected(error), query_id)

    def _finish_failed_body(self, reader: StatementReader | None, body: Iterator[bytes]) -> None:
        """A failed request may leave body bytes unread; the connection cannot carry another request."""
        if self.command == "POST" and (reader is None or not reader.exhausted):
            self.close_connection = True

    def _execute(self, request: Request, statement: sql.Statement, insert, data) -> Outcome | None:
        session_id = request.params.get("session_id")
        session: Session | None = None
        if session_id:
            timeout = float(request.params.get("session_timeout") or 0) or None
            session = self.server.sessions.acquire(
                request.user,
                session_id,
                timeout,
                request.params.get("session_check") == "1",
                request.settings,
            )
            connection = session.connection
        else:
            connection = self.server.store.connect(
                readonly=request.user.readonly,
                settings=request.settings,
                visible_databases=grants.visible_databases(request.user),
            )
        released = False

        def release():
            nonlocal released
            if released:
                return
            released = True
            if session is not None:
                self.server.sessions.release(session, close=request.params.get("close_session") == "1")
            else:
                connection.close()

        try:
            connection.prepare(request.settings, request.params.get("database"))
            # on the connection that runs it: the same settings, parameters and current database
            grants.check_reads(connection, request.user, statement, request.query_params)
            if insert is not None:
                outcome = connection.insert(insert.head, insert.format, data, request.query_params)
                release()
                self._send(200, b"", self._headers(request.query_id, outcome, request.settings))
                return outcome
            output_format = (
                statement.format
                or request.params.get("default_format")
                or self.headers.get("X-ClickHouse-Format")
                or "TabSeparated"
            )
            if (
                statement.streamable
                and request.params.get("wait_end_of_query") != "1"
                and output_format.lower() in CONCATENABLE_FORMATS
            ):
                return self._stream(request, statement, connection, output_format, release)
            outcome = connection.run(statement.sql, output_format, request.query_params)
            self._remember_session_state(statement, connection)
            release()
            headers = self._headers(request.query_id, outcome, request.settings)
            if statement.is_read or outcome.body:
                headers.update(
                    {"X-ClickHouse-Format": output_format, "Content-Type": content_type(output_format)}
                )
            body = outcome.body
            if output_format.lower() == "native" and request.native_revision:
                body = native_blocks.rewrite(body, request.native_revision)
            self._send(200, body, headers)
            return outcome
        finally:
            release()

    @staticmethod
    def _remember_session_state(statement: sql.Statement, connection: EngineConnection) -> None:
        if statement.kind == "SET":
            connection.remember_set(statement.set_names())
        elif statement.kind == "USE":
            connection.remember_use()

    def _stream(self, request, statement, connection, output_format, release) -> Outcome | None:
        started = time.perf_counter()
        chunks = connection.stream(statement.sql, output_format, request.query_params)
        if output_format.lower() == "native" and request.native_revision:
            chunks = native_blocks.rewritten_chunks(chunks, request.native_revision)
        first = next(chunks, b"")  # errors before any output still get a proper status
        tag = secrets.token_hex(8)
        headers = self._headers(request.query_id, Outcome(), request.settings)
        headers.update(
            {
                "X-ClickHouse-Format": output_format,
                "Content-Type": content_type(output_format),
                "X-ClickHouse-Exception-Tag": tag,
                "Transfer-Encoding": "chunked",
            }
        )
        self._send_head(200, headers)
        sent = len(first)
        # From here on the status line is out: whatever fails (the engine, this server's own code,
        # releasing the connection) must end the body with the tagged trailer, never a second response.
        try:
            if first:
                self._write_chunk(self._encoded(first, 200))
            for chunk in chunks:
                self._write_chunk(self._encoded(chunk, 200))
                sent += len(chunk)
            release()
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True
            self._abandon(chunks, release, request.query_id)  # client went away: cancel the query
            return None
        except Exception as error:
            failure = error if isinstance(error, ClickHouseError) else _unexpected(error)
            if failure is not error:
                log.exception("unexpected failure while streaming query %s", request.query_id)
            failure = failure.seen_by(request.user.name, request.user.databases is not None)
            self._abandon(chunks, release, request.query_id)
            self._write_exception_trailer(failure, tag)
            self._log_failure(request.user.name, request.query_id, statement, started, failure)
            return None
        self.wfile.write(b"0\r\n\r\n")
        return Outcome(streamed_bytes=sent, elapsed=time.perf_counter() - started)

    @staticmethod
    def _abandon(chunks: Iterator[bytes], release, query_id: str) -> None:
        """Cancel an unfinished stream and free its connection; a failure here must not hide the first."""
        for step in (chunks.close, release):
            try:
                step()
            except Exception:
                log.exception("could not clean up after query %s", query_id)

    def _write_exception_trailer(self, error: ClickHouseError, tag: str) -> None:
        """ClickHouse 25.11+'s mid-stream error block, which clickhouse-connect scans for by tag."""
        message = error.body(self.server.store.version).decode().rstrip("\n")
        block = f"__exception__\r\n{tag}\r\n{message}\n{len(message)} {tag}\r\n__exception__\r\n".encode()
        self._write_chunk(self._encoded(block, 200))
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    # --- response writing --------------------------------------------------------------------

    def _headers(
        self, query_id: str, outcome: Outcome, settings: dict[str, str] | None = None
    ) -> dict[str, str]:
        """ClickHouse's response headers. The time zone named is the session's, as ClickHouse names
        it: a request's ``session_timezone`` (what clients such as clickhouse-connect convert
        zone-less values to), else the server's."""
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": (settings or {}).get("session_timezone") or self.server.store.timezone,
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
            "X-ClickHouse-Summary": json.dumps(outcome.summary(), separators=(",", ":")),
        }

    def _send_head(self, status: int, headers: dict[str, str], small_body: bytes = b"") -> None:
        """Status line and headers (plus a small body, so a short answer leaves in one packet)."""
        self._head_sent = True
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection or self.server.draining.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Keep-Alive", f"timeout={KEEP_ALIVE_SECONDS}")
        self._headers_buffer.append(b"\r\n" + small_body)
        self.flush_headers()

    def _encoded(self, body: bytes, status: int) -> bytes:
        """The body as the client asked for it: ClickHouse compressed blocks after ``compress=1``.
        The Java client (client-v2) reads 401 and 403 answers uncompressed, so those stay plain."""
        if self._answer_method is not None and body and status not in (401, 403):
            return compressed_blocks.compress(body, self._answer_method, self._answer_level)
        return body

    def _send(self, status: int, body: bytes, headers: dict[str, str], head_only: bool = False) -> None:
        body = self._encoded(body, status)
        headers = {**headers, "Content-Length": str(len(body))}
        if head_only or len(body) > 65536:
            self._send_head(status, headers)
            if not head_only:
                self.wfile.write(body)
        else:
            self._send_head(status, headers, small_body=body)

    def _write_chunk(self, data: bytes) -> None:
        if len(data) < 65536:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.wfile.write(b"%x\r\n" % len(data))
            self.wfile.write(data)
            self.wfile.write(b"\r\n")

    def _send_error(self, error: ClickHouseError, query_id: str, status: int | None = None) -> None:
        if self._head_sent:
            # An answer is already on the wire: a second status line would land inside its body, where
            # a client reads it as data. Cutting the connection makes the client report a broken answer.
            log.warning(
                "query %s failed after its answer started; closing the connection: %s", query_id, error
            )
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        headers = self._headers(query_id, Outcome())
        headers.update(
            {
                "X-ClickHouse-Exception-Code": str(error.code),
                "Content-Type": "text/plain; charset=UTF-8",
            }
        )
        self._send(status or error.status, error.body(self.server.store.version), headers)

    # --- query log -------------------------------------------------------------------------------

    def _log(self, request: Request, statement: sql.Statement, started: float, status: int, outcome: Outcome):
        log.info(
            "query id=%s user=%s session=%s kind=%s status=%d ms=%.1f read_rows=%d written_rows=%d "
            "result_bytes=%d sql=%r",
            request.query_id,
            request.user.name,
            request.params.get("session_id", "-"),
            statement.kind,
            status,
            (time.perf_counter() - started) * 1000,
            outcome.read_rows,
            outcome.written_rows,
            outcome.result_bytes,
            sql.loggable(statement.sql)[:300],
        )

    def _log_failure(self, user, query_id, statement, started, error: ClickHouseError) -> None:
        log.info(
            "query id=%s user=%s kind=%s status=%d code=%d ms=%.1f error=%r sql=%r",
            query_id,
            user,
            statement.kind if statement else "-",
            error.status,
            error.code,
            (time.perf_counter() - started) * 1000,
            sql.loggable(error.text)[:300],
            sql.loggable(statement.sql)[:300] if statement else "",
        )
