"""Warm dbt: dbt commands forked from a server that has imported dbt once, not started cold each time.

A dbt process spends its first seconds importing dbt and its adapters (2.3 s of CPU on an idle machine
here, 7-8 s on two busy cores) before it reads the project. The server (``serve``) pays that once: it
imports dbt and parses the project once (what dbt builds lazily on first use: warm_dbt_parse.py), then
for every command forks a process that runs dbt's own console script with the caller's arguments,
environment, working directory, umask and standard streams (passed over a Unix socket), so the command
runs as it would cold, minus the imports and that first use.

It is used wherever ``FUNNELHOUSE_WARM_DBT_SOCKET`` names a server's socket, or the embedded stack runs
one (``funnelhouse up``: warm_dbt_service.py): every dbt command funnelhouse starts (``build.run_dbt``
and the rest, Dagster's dbt steps through funnelhouse-bound-dbt) then starts this module's client
instead of dbt (``command``/``run``). The test suite starts one server per test process
(tests/conftest.py). With neither, dbt starts cold as before.

The client stands in for dbt towards its caller, so what callers rely on of a dbt process holds:

* its exit status is dbt's (killed by a signal: the client ends by the same signal);
* SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to it go on to dbt;
* dbt does not outlive it: the server's process serving the command SIGKILLs dbt when the client's
  connection closes (the client killed outright: SIGKILL, the OOM killer; it is bound to its own
  caller as a cold dbt would be), and dbt is bound to that process in turn (``PR_SET_PDEATHSIG``).

A command falls back to a cold dbt, saying so on stderr, when no server answers at the socket, and
silently when the dbt asked for is not the server's (another installation's, a test's stand-in).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import runpy
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from devstack import state
from orchestration import warm_dbt_parse

SOCKET_VARIABLE = "FUNNELHOUSE_WARM_DBT_SOCKET"
SERVICE = "dbt"  # the embedded stack's server, in its services.json (warm_dbt_service.py)
# What the server imports before it serves: what every dbt command of this project imports itself.
PRELOADED = ("dbt.cli.main", "dbt.adapters.clickhouse", "dbt.adapters.postgres")
_RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_HEADER = struct.Struct("!I")  # the request's length, sent with the caller's three standard streams
_NOT_SERVED = "not-served"


def socket_path(env: dict[str, str]) -> str | None:
    """The socket of the server for a dbt command run in ``env``: the one FUNNELHOUSE_WARM_DBT_SOCKET
    names, else that of the embedded stack's server if it runs (``funnelhouse up``), else None."""
    if env.get(SOCKET_VARIABLE):
        return env[SOCKET_VARIABLE]
    home = Path(env.get("FUNNELHOUSE_HOME") or state.DEFAULT_HOME).expanduser()
    if not (home / state.SERVICES_FILE).exists():
        return None
    info = state.running_service(SERVICE, home.resolve())
    return info.get("socket") if info else None


def command(dbt: str, arguments: Sequence[str], env: dict[str, str]) -> list[str]:
    """The command line that runs dbt (the script at ``dbt``) with ``arguments`` in ``env``: this module's
    client when there is a server for it, else dbt itself."""
    path = socket_path(env)
    if path is None:
        return [dbt, *arguments]
    return [sys.executable, "-m", __name__, "run", path, dbt, *arguments]


# --- client ------------------------------------------------------------------------------------------


def run(path: str, dbt: str, arguments: Sequence[str]) -> NoReturn:
    """Run dbt warm through the server at socket ``path``, and end as dbt ended; cold (exec) when no
    server answers or it serves another dbt."""
    served = _run_warm(path, dbt, arguments)
    if served is None:
        _exec_cold(dbt, arguments)
    _end_as(served)


def _run_warm(path: str, dbt: str, arguments: Sequence[str]) -> int | None:
    """dbt's wait status, run by the server at ``path``; None when it does not serve this dbt."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError as error:
        print(f"warm dbt: no server at {path} ({error.strerror}): dbt starts cold", file=sys.stderr)
        connection.close()
        return None
    umask = os.umask(0)
    os.umask(umask)
    # A signal this process was started ignoring, dbt started cold would ignore too: not relayed.
    ignored = [signum for signum in _RELAYED_SIGNALS if signal.getsignal(signum) == signal.SIG_IGN]
    request = json.dumps(
        {
            "dbt": os.path.realpath(dbt),
            "arguments": list(arguments),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": umask,
            "ignored": ignored,
        }
    ).encode()
    pending: list[int] = []
    dbt_pid: list[int] = []

    def relay(signum, _frame):
        if dbt_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(dbt_pid[0], signum)
        else:
            pending.append(signum)

    for signum in set(_RELAYED_SIGNALS) - set(ignored):
        signal.signal(signum, relay)
    with connection, connection.makefile("rb") as replies:
        socket.send_fds(connection, [_HEADER.pack(len(request))], _standard_stream_fds())
        connection.sendall(request)
        first = replies.readline().split()
        if first == [_NOT_SERVED.encode()]:
            for signum in set(_RELAYED_SIGNALS) - set(ignored):  # as they were, for the dbt started cold
                signal.signal(signum, signal.SIG_DFL)
            for signum in pending:
                os.kill(os.getpid(), signum)
            return None
        if len(first) != 2 or first[0] != b"pid":
            _give_up("the server ended before it started dbt")
        dbt_pid.append(int(first[1]))
        for signum in pending:
            relay(signum, None)
        last = replies.readline().split()
        if len(last) != 2 or last[0] != b"status":
            _give_up(f"the server's process running dbt (pid {dbt_pid[0]}) ended before dbt did")
        return int(last[1])


def _standard_stream_fds() -> list[int]:
    """fds 0-2, each one this process lacks (started with it closed) standing in as /dev/null."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def _exec_cold(dbt: str, arguments: Sequence[str]) -> NoReturn:
    try:
        os.execv(dbt, [dbt, *arguments])
    except OSError as error:
        _give_up(f"cannot run {dbt}: {error}")


def _end_as(wait_status: int) -> NoReturn:
    code = os.waitstatus_to_exitcode(wait_status)
    if code < 0:  # killed by a signal: so is this process, for its caller to see the same
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
        code = 128 - code
    sys.exit(code)


def _give_up(why: str) -> NoReturn:
    print(f"warm dbt: {why}", file=sys.stderr)
    sys.exit(1)


# --- server ------------------------------------------------------------------------------------------


def running_threads() -> int:
    """Threads of this process, native ones included (a library's own pool, which Python's threading
    does not list) where the system says (Linux), else those Python knows of."""
    with contextlib.suppress(OSError):
        return len(os.listdir("/proc/self/task"))
    return threading.active_count()


def serve(path: str, dbt: str) -> NoReturn:
    """Import dbt and parse the project once (warm_dbt_parse.py), then serve commands for the dbt script
    at ``dbt`` on a Unix socket at ``path`` until SIGTERM. The socket appears only once the server is
    ready (bound under another name, then renamed), so a client never waits on a server still importing
    or parsing: it finds none and starts dbt cold."""
    from orchestration import processes  # noqa: F401 -- for each command's dbt process to bind itself

    for module in PRELOADED:
        __import__(module)
    warm_dbt_parse.warm_up()
    if running_threads() != 1:  # a fork copies one thread: another's locks would stay taken
        sys.exit(
            f"warm dbt: importing dbt started threads ({running_threads()} running,"
            f" Python's: {threading.enumerate()}): not serving"
        )
    dbt = os.path.realpath(dbt)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    binding = f"{path}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(binding)
    listener.bind(binding)
    listener.listen(16)
    os.replace(binding, path)
    socket_file = os.stat(path).st_ino  # removed at the end unless another server has replaced it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # each command's process is reaped by the kernel
    try:
        while True:
            connection, _ = listener.accept()
            sys.stdout.flush()
            sys.stderr.flush()
            # SIGTERM held during the fork: its handler's SystemExit, raised in one of the fork's own
            # callbacks (logging's), would be swallowed there, and the server would go on serving.
            held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                listener.close()
                _serve_one(connection, dbt)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            connection.close()
    finally:
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == socket_file:
                os.unlink(path)


def _serve_one(connection: socket.socket, dbt: str) -> NoReturn:
    """(A child of the server, one per command.) Read the request, fork dbt, tell the client its pid, wait
    for it, tell its wait status; kill it if the client goes first."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        received = _receive(connection)
        if received is None:  # a probe (`funnelhouse status`): connected, asked nothing
            os._exit(0)
        request, streams = received
        if request["dbt"] != dbt:
            connection.sendall(f"{_NOT_SERVED}\n".encode())
            os._exit(0)
        handler = os.getpid()
        dbt_pid = os.fork()
        if dbt_pid == 0:
            _run_dbt(request, streams, connection, handler, dbt)
        for stream in streams:
            os.close(stream)
        connection.sendall(f"pid {dbt_pid}\n".encode())
        status = _wait_unless_abandoned(connection, dbt_pid)
        if status is not None:
            connection.sendall(f"status {status}\n".encode())
    except BaseException:  # noqa: BLE001 -- a child of the server never returns into its accept loop
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def _receive(connection: socket.socket) -> tuple[dict, list[int]] | None:
    """The request and the caller's standard streams; None if the connection closed without one."""
    header, streams, _flags, _address = socket.recv_fds(connection, _HEADER.size, 3)
    if not header and not streams:
        return None
    if len(header) != _HEADER.size or len(streams) != 3:
        raise ConnectionError("a request without its header and three standard streams")
    (length,) = _HEADER.unpack(header)
    body = bytearray()
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise ConnectionError("the client left before its request was read")
        body += chunk
    return json.loads(body), streams


def _wait_unless_abandoned(connection: socket.socket, dbt_pid: int) -> int | None:
    """dbt's wait status; None, dbt killed, if the client's connection closes first."""
    ended = os.pidfd_open(dbt_pid)
    poller = select.poll()
    poller.register(ended, select.POLLIN)
    poller.register(connection, select.POLLIN)
    try:
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if ended in ready:
                return os.waitpid(dbt_pid, 0)[1]
            if connection.fileno() in ready and not connection.recv(1):
                os.kill(dbt_pid, signal.SIGKILL)
                os.waitpid(dbt_pid, 0)
                return None
    finally:
        os.close(ended)


def _run_dbt(
    request: dict, streams: list[int], connection: socket.socket, handler: int, dbt: str
) -> NoReturn:
    """(The grandchild.) Become the caller's dbt process and run dbt's console script."""
    code = 1
    try:
        from orchestration import processes

        if not processes.bind_to_parent(handler):
            os._exit(1)
        connection.close()
        for target, stream in enumerate(streams):
            os.dup2(stream, target)
            os.close(stream)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in request["ignored"]:
            signal.signal(signum, signal.SIG_IGN)
        _standard_streams(request["env"])
        sys.argv = [dbt, *request["arguments"]]
        code = _exit_code_of(lambda: runpy.run_path(dbt, run_name="__main__"))
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 -- whatever happens, this process ends here, never in the server's code
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _exit_code_of(main) -> int:
    """The exit status Python gives a script whose body is ``main``."""
    try:
        main()
    except SystemExit as stop:
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # as Python does: the process ends by SIGINT
        sys.stdout.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    return 0


def _standard_streams(env: dict[str, str]) -> None:
    """sys.stdin/stdout/stderr made anew on the caller's streams (now fds 0-2), buffered as Python
    buffers them for a process started in ``env``: by line on a terminal, not at all with
    PYTHONUNBUFFERED, else by block."""
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    encoding, _, errors = env.get("PYTHONIOENCODING", "").partition(":")
    encoding = encoding or sys.stdout.encoding

    def stream(fd: int, mode: str, default_errors: str):
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffered,
            encoding=encoding,
            errors=errors or default_errors,
            line_buffering=mode == "w" and (unbuffered or raw.isatty()),
            write_through=unbuffered,
        )

    sys.stdin = sys.__stdin__ = stream(0, "r", "strict")
    sys.stdout = sys.__stdout__ = stream(1, "w", "strict")
    sys.stderr = sys.__stderr__ = stream(2, "w", "backslashreplace")


def main() -> None:
    """``python -m orchestration.warm_dbt serve SOCKET DBT`` | ``run SOCKET DBT [ARGS...]``."""
    match sys.argv[1:]:
        case ["serve", path, dbt]:
            serve(path, dbt)
        case ["run", path, dbt, *arguments]:
            run(path, dbt, arguments)
        case _:
            sys.exit(main.__doc__)


if __name__ == "__main__":
    main()
