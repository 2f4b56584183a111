"""The chDB store and its connections, with the state the HTTP layer must track around them.

One process owns the store (chDB locks it; a second process fails). Inside that process every
ClickHouse session gets its own chDB connection: connections keep their own SET values, current
database and temporary tables, and separate connections run queries in parallel.

Three chDB behaviours shape this module. INSERT data never goes into ``query()``'s text, which would run
a blank-line-separated tail as a new statement (guide hazard 1). Nor does it go through ``send_insert``,
chDB's streaming inserter: that one reports success, with the rows counted as written, when the engine
refuses the written block (a CHECK constraint, ``max_partitions_per_insert_block``, a PostgreSQL
error of ``INSERT INTO FUNCTION postgresql(...)``, a materialized view failing): its worker receives
the engine's exception and never looks at it. So the data is spooled to a file and inserted by
``INSERT ... FROM INFILE``, through ``query()``, whose insert path raises every such error. And a
``query()`` that fails after producing output leaves that output on the connection, where it would be
prepended to the next answer (hazard 2) -- so a failed connection is drained before it is used again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chdb.state import sqlitelike

from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.readonly_settings import reported
from devstack.clickhouse.sql import QUOTED_ID, WORD, tokens

_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DRAIN_MARKER = b"devstack-clean\n"
# What ClickHouse's FROM INFILE expands in a file name (a pattern matching several files, or none).
_GLOB_CHARACTERS = frozenset("*?{}[]")


class StoreBusyError(RuntimeError):
    """Another process holds the store."""


@dataclass
class Outcome:
    """A finished statement: its (buffered) answer and the statistics for X-ClickHouse-Summary."""

    body: bytes = b""
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    elapsed: float = 0.0
    streamed_bytes: int = 0  # answers streamed to the client have no buffered body

    @property
    def result_bytes(self) -> int:
        return len(self.body) or self.streamed_bytes

    def summary(self) -> dict[str, str]:
        # ClickHouse sends every value as a string; clickhouse-connect reads written_rows for inserts.
        return {
            "read_rows": str(self.read_rows),
            "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows),
            "written_bytes": str(self.written_bytes),
            "total_rows_to_read": str(self.read_rows),
            "result_rows": "0",
            "result_bytes": str(self.result_bytes),
            "elapsed_ns": str(int(self.elapsed * 1e9)),
        }


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# Of the settings a read-only connection may still be given (readonly_settings.CHANGEABLE_IN_READONLY),
# those chDB's readonly=1 refuses: chDB has no constraints (a read-only chDB connection accepts SET
# limit, not max_execution_time), so they are applied before the connection turns read-only, and a
# request that wants another value gets a connection opened anew.
_SET_BEFORE_READONLY = frozenset(["max_execution_time"])

_METADATA_TABLES_QUERY = (
    "SELECT DISTINCT table FROM system.columns WHERE database = 'system' AND name = 'database'"
)

# The database a new chDB connection is on, and a session returns to when nothing names another.
_DEFAULT_DATABASE = "default"


class EngineConnection:
    """One chDB connection and the settings/database this server applied to it.

    A session's own ``SET`` and ``USE`` persist; settings and ``database`` sent as URL parameters
    apply to one request only. Rather than resetting after every request, the connection remembers
    what it currently holds and applies only the difference before the next one: clients such as
    clickhouse-connect send the same settings with every request, so the usual difference is empty.
    """

    def __init__(
        self,
        store: Store,
        readonly: bool,
        settings: dict[str, str] | None = None,
        visible_databases: Iterable[str] | None = None,
    ):
        """``settings``: the first request's (a read-only connection is opened with its
        ``max_execution_time``, which it cannot change later). ``visible_databases``: those whose
        metadata a read-only connection shows (``Store.metadata_filter``); None: all."""
        self._store = store
        self.readonly = readonly
        self._metadata_filter = (
            store.metadata_filter(visible_databases) if readonly and visible_databases is not None else None
        )
        self._persistent: dict[str, str] = {}  # settings the session chose with SET statements
        self._session_database: str | None = None  # chosen with USE
        self._open(self._set_before_readonly(settings or {}))

    def _set_before_readonly(self, settings: dict[str, str]) -> dict[str, str]:
        if not self.readonly:
            return {}
        return {name: value for name, value in settings.items() if name in _SET_BEFORE_READONLY}

    def _open(self, before_readonly: dict[str, str]) -> None:
        """A new chDB connection; a read-only one gets ``before_readonly`` (and its metadata filter)
        together with readonly=1: one SET checks every change against the settings before it, so
        readonly=1 then forbids changing them (code 164, also from a query's SETTINGS clause)."""
        self._connection = sqlitelike.connect(self._store.connection_string)
        self._applied: dict[str, str] = {}  # setting -> value this server SET on the connection
        self._current_database = _DEFAULT_DATABASE  # what the connection is on now
        self._dirty = False
        self._before_readonly = before_readonly
        if not self.readonly:
            return
        assignments = [f"{name} = {_quote(value)}" for name, value in before_readonly.items()]
        if self._metadata_filter is not None:
            # not in _applied: prepare() neither restores it nor skips a client's (refused) attempt to set it
            assignments.append(f"additional_table_filters = {self._metadata_filter}")
        try:
            self._execute("SET " + ", ".join([*assignments, "readonly = 1"]))
            self._applied.update(before_readonly)
            self._applied["readonly"] = "1"
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._connection.close()

    # --- state around statements -------------------------------------------------------------

    def prepare(self, request_settings: dict[str, str], database: str | None) -> None:
        """Bring the connection to the session's state plus this request's settings and database."""
        before_readonly = self._set_before_readonly(request_settings)
        if before_readonly != self._before_readonly:
            # A read-only session's request with another (or no) max_execution_time: such a connection
            # holds nothing a new one would not get back here (SET values, the database; no temporary
            # tables under readonly=1).
            self.close()
            self._open(before_readonly)
        if self._dirty:
            self._drain()
        desired = {**self._persistent, **request_settings}
        assignments = []
        for name, value in desired.items():
            if not _SETTING_NAME_RE.match(name):
                raise ClickHouseError(115, f"Unknown setting '{name}'", None)
            if self._applied.get(name) != value:
                assignments.append(f"{name} = {_quote(value)}")
        restores = [name for name in self._applied if name not in desired and name != "readonly"]
        assignments += [f"{name} = DEFAULT" for name in restores]
        if assignments:
            self._execute("SET " + ", ".join(assignments))
            for name in restores:
                del self._applied[name]
            self._applied.update({name: value for name, value in desired.items()})
        # (the connection's own default when neither names one: a request's database is its own)
        wanted_database = database or self._session_database or _DEFAULT_DATABASE
        if wanted_database != self._current_database:
            self._execute(f"USE {_quote_identifier(wanted_database)}")
            self._current_database = wanted_database

    def remember_set(self, names: Iterable[str]) -> None:
        """After a successful ``SET`` statement: its values now belong to the session."""
        names = [name for name in names if _SETTING_NAME_RE.match(name)]
        if not names:
            return
        listed = ", ".join(_quote(name) for name in names)
        rows = self._execute(f"SELECT name, value FROM system.settings WHERE name IN ({listed})", "TSV")
        for line in rows.body.decode().splitlines():
            name, _, value = line.partition("\t")
            self._persistent[name] = value
            self._applied[name] = value

    def remember_use(self) -> None:
        """After a successful ``USE``: the session's database is whatever the connection is on now."""
        current = self._execute("SELECT currentDatabase()", "TSV").body.decode().strip()
        self._session_database = self._current_database = current

    def _drain(self) -> None:
        for _ in range(5):
            if self._connection.query("SELECT 'devstack-clean'", "TSV").bytes() == _DRAIN_MARKER:
                self._dirty = False
                return
        raise ClickHouseError(1001, "chDB connection could not be cleaned after a failed query")

    # --- statements ----------------------------------------------------------------------------

    def _execute(self, sql: str, output_format: str = "TSV", params: dict | None = None) -> Outcome:
        try:
            result = self._connection.query(sql, output_format, params=params or {})
        except Exception as error:
            self._dirty = True
            raise ClickHouseError.from_engine(error) from None
        return Outcome(
            body=result.bytes(),
            read_rows=result.rows_read(),
            read_bytes=result.bytes_read(),
            written_rows=result.rows_written(),
            written_bytes=result.bytes_written(),
            elapsed=result.elapsed(),
        )

    def run(self, sql: str, output_format: str, params: dict[str, str]) -> Outcome:
        """Run a statement and buffer its whole answer."""
        return self._execute(self._as_reported(sql), output_format, params)

    def stream(self, sql: str, output_format: str, params: dict[str, str]) -> Iterator[bytes]:
        """Run a SELECT and yield its answer chunk by chunk. The first chunk is computed eagerly by
        the caller (``next()``) so errors before any output still get a proper HTTP status."""
        try:
            result = self._connection.send_query(self._as_reported(sql), output_format, params=params or {})
        except Exception as error:
            raise ClickHouseError.from_engine(error) from None
        return _chunks(result)

    def _as_reported(self, sql: str) -> str:
        """What a read-only connection reads of ``system.settings`` tells the settings it may change."""
        return reported(sql) if self.readonly else sql

    def insert(
        self, head: str, input_format: str, data: Iterable[bytes], params: dict[str, str] | None = None
    ) -> Outcome:
        """Insert ``data`` (``input_format``) into ``head`` (an INSERT without FORMAT and data).

        The data is spooled to a file first and read by ``INSERT ... FROM INFILE``: the engine's own
        insert path, which reports a refused block as an error (see the module docstring). Nothing is
        inserted when the client's body ends early (the upload fails before the engine starts)."""
        with self._store.spooled(data) as path:
            statement = _insert_from_file(head, path, input_format)
            try:
                return self._execute(statement, "TSV", params)
            except ClickHouseError as error:
                raise _as_body_insert_error(error, path) from None


def _insert_from_file(head: str, path: Path, input_format: str) -> str:
    """``head`` reading its data from ``path``. ClickHouse's grammar puts FROM INFILE before the
    INSERT's SETTINGS clause (dbt-clickhouse's seeds have one) and after everything else."""
    at = _settings_clause_start(head)
    if at is None:
        at = len(head)
    # (after a newline: the text before may end in a -- comment)
    source = f"\nFROM INFILE {_quote(str(path))} COMPRESSION 'none' "
    return f"{head[:at]}{source}{head[at:]}\nFORMAT {_quote_identifier(input_format)}"


def _settings_clause_start(head: str) -> int | None:
    """Where the top-level ``SETTINGS name = ...`` clause of an INSERT head starts (a table may be
    called ``settings``: the keyword is the one followed by an assignment)."""
    top = [token for token in tokens(head) if token.depth == 0]
    for keyword, name, equals in zip(top, top[1:], top[2:], strict=False):
        if keyword.is_word("SETTINGS") and name.kind in (WORD, QUOTED_ID) and equals.text == "=":
            return keyword.start
    return None


_FILE_DATA_ERROR = re.compile(
    r"Code: (\d+)\. DB::Exception: (Code: \1\. DB::Exception: .*)\. \([A-Z0-9_]+\)", re.S
)


def _as_body_insert_error(error: ClickHouseError, path: Path) -> ClickHouseError:
    """The engine's error as it reads for data sent in the request body: FROM INFILE wraps an error
    in the data in a second ``Code: N. DB::Exception:`` and names the spool file, which is this
    server's business, not the client's."""
    text = error.text.replace(f": (in file/uri {path})", "")
    text = text.replace(": While executing File: data for INSERT was parsed from file", "")
    nested = _FILE_DATA_ERROR.fullmatch(text)
    if nested:
        text = nested.group(2)
    text = text.replace(str(path), "<request body>")
    return error if text == error.text else ClickHouseError.from_text(text)


def _chunks(result) -> Iterator[bytes]:
    try:
        for chunk in result:
            data = chunk.bytes()
            if data:
                yield data
    except Exception as error:
        raise ClickHouseError.from_engine(error) from None
    finally:
        result.close()


class Store:
    """The chDB store this process owns, guarded by an exclusive lock file next to chDB's own data.

    chDB also locks its data path, but its error ("Cannot lock file .../status") names neither the
    holder nor the remedy; this lock is taken first so the refusal says which process holds the store.
    """

    LOCK_NAME = ".devstack-server.lock"
    SPOOL_NAME = ".devstack-insert-spool"  # insert data waiting for the engine (engine.insert)

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path / self.LOCK_NAME, "a+")  # noqa: SIM115 -- held for the process lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "unknown"
            self._lock_file.close()
            raise StoreBusyError(
                f"the ClickHouse store {self.path} is held by another process (pid {holder}); "
                "stop that server (`funnelhouse down`) or choose another --path"
            ) from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        self.connection_string = f"file:{self.path}"
        try:
            # Kept open for the server's lifetime: the engine shuts down when its last connection closes.
            self._keeper = sqlitelike.connect(self.connection_string)
        except Exception as error:
            self._release_lock()
            if "Cannot lock file" in str(error):
                raise StoreBusyError(
                    f"the ClickHouse store {self.path} is open in another process: {error}"
                ) from None
            raise
        version, timezone = self._keeper.query("SELECT version(), timezone()", "TSV").bytes().decode().split()
        self.version, self.timezone = version, timezone
        # The system tables that list other databases' objects (tables, columns, parts, mutations, ...):
        # those with a `database` column, asked of this engine version rather than listed by hand.
        self._metadata_tables = sorted(
            self._keeper.query(_METADATA_TABLES_QUERY, "TSVRaw").bytes().decode().split()
        )
        self._spool = self._spool_directory()
        self._closed = threading.Event()

    def _spool_directory(self) -> Path:
        """Next to the store (its disk has room for the data), emptied of a previous run's leftovers.
        FROM INFILE reads a path with glob characters as a pattern: one matching nothing inserts
        nothing, silently. Such a store path gets a spool directory in the system's temporary one."""
        directory = self.path / self.SPOOL_NAME
        if not _GLOB_CHARACTERS.intersection(str(directory)):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(mode=0o700)
            return directory
        directory = Path(tempfile.mkdtemp(prefix="devstack-clickhouse-inserts-"))
        if _GLOB_CHARACTERS.intersection(str(directory)):
            raise RuntimeError(f"no directory for insert data without any of {''.join(_GLOB_CHARACTERS)}")
        return directory

    @contextlib.contextmanager
    def spooled(self, data: Iterable[bytes]) -> Iterator[Path]:
        """``data`` in a file of its own (names of ``tempfile``'s glob-free alphabet), removed after."""
        with tempfile.NamedTemporaryFile(dir=self._spool, prefix="insert-", suffix=".data") as spool:
            for chunk in data:
                spool.write(chunk)
            spool.flush()
            yield Path(spool.name)

    def connect(
        self,
        readonly: bool = False,
        settings: dict[str, str] | None = None,
        visible_databases: Iterable[str] | None = None,
    ) -> EngineConnection:
        return EngineConnection(self, readonly, settings, visible_databases)

    def metadata_filter(self, databases: Iterable[str]) -> str:
        """ClickHouse's ``additional_table_filters`` value (a map literal) that keeps the system tables'
        rows about other databases than ``databases`` out of every query: those of ``SHOW``,
        ``information_schema`` (views over system tables) and direct reads alike."""
        listed = ", ".join(_quote(name) for name in sorted(databases))
        filters = {f"system.{table}": f"database IN ({listed})" for table in self._metadata_tables}
        filters["system.databases"] = f"name IN ({listed})"
        # The completions a client's editor offers name databases, their tables (`belongs`: the
        # database) and those tables' columns (`belongs`: the table, by name only).
        filters["system.completions"] = (
            f"multiIf(context = 'database', word IN ({listed}), context = 'table', belongs IN ({listed}), "
            f"context = 'column', (belongs, word) IN (SELECT table, name FROM system.columns WHERE database IN ({listed})), "
            f"context = 'dictionary', word IN (SELECT name FROM system.dictionaries WHERE database IN ({listed})), true)"
        )
        # Every user's last error of each kind (another database's values, the engine's "Maybe you meant
        # raw.x?"): a real server refuses system.errors without a grant on it.
        filters["system.errors"] = "false"
        # Every user's running queries, texts included (all run as chDB's one user here): a real server
        # refuses system.processes to a user without a grant on it, too.
        filters["system.processes"] = "false"
        # The start-up jobs name every database and table ("load table raw.x", "startup Atomic database raw").
        filters["system.asynchronous_loader"] = (
            f"NOT match(job, ' (table|database) ') OR arrayExists(d -> endsWith(job, ' database ' || d) "
            f"OR position(job, ' table ' || d || '.') > 0, [{listed}])"
        )
        return "{" + ", ".join(f"{_quote(table)}: {_quote(where)}" for table, where in filters.items()) + "}"

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._keeper.close()
        shutil.rmtree(self._spool, ignore_errors=True)
        self._release_lock()

    def _release_lock(self) -> None:
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()
