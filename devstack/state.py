"""The state directory of an embedded stack: where each local service keeps its data and says where it listens.

Every embedded service (PostgreSQL, ClickHouse-on-chDB, Elasticsearch/OpenSearch, SMTP sink) records
itself in ``<home>/services.json`` when it starts, so other commands (and other processes: dbt,
Dagster, tests) find its address without guessing. ``FUNNELHOUSE_HOME`` moves the whole stack, so
two stacks can run side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

DEFAULT_HOME = ".funnelhouse"
SERVICES_FILE = "services.json"


def home() -> Path:
    """The state directory: ``$FUNNELHOUSE_HOME`` or ``./.funnelhouse`` (created on first use)."""
    path = Path(os.environ.get("FUNNELHOUSE_HOME", DEFAULT_HOME)).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, from the first byte: created 0600,
    not written under the umask (0644 mostly) and narrowed afterwards, which left a moment in which
    any local user could read a password. Written beside it and renamed over it: readers never see
    half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover keeps its old mode: O_CREAT's mode applies to new files
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def read_services(state_home: Path | None = None) -> dict[str, dict]:
    path = (state_home or home()) / SERVICES_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def record_service(name: str, info: dict, state_home: Path | None = None) -> None:
    """Record (or replace) one service's address and pid. The file is private (0600): it holds passwords."""
    path = (state_home or home()) / SERVICES_FILE
    with _locked(path):
        services = read_services(path.parent)
        services[name] = info
        write_private(path, json.dumps(services, indent=2, sort_keys=True))


def record_started(
    name: str, process: subprocess.Popen, log_path: Path, fields: dict, state_home: Path
) -> dict:
    """Record ``process``, started and now answering, as service ``name``: ``fields``, then its pid, its
    start time (by which later commands tell it from a process given the same pid) and its log."""
    info = {
        **fields,
        "pid": process.pid,
        "pid_start_time": process_start_time(process.pid),
        "log": str(log_path),
    }
    record_service(name, info, state_home)
    return info


def forget_service(name: str, state_home: Path | None = None) -> None:
    path = (state_home or home()) / SERVICES_FILE
    with _locked(path):
        services = read_services(path.parent)
        if services.pop(name, None) is not None:
            write_private(path, json.dumps(services, indent=2, sort_keys=True))


def secret(name: str, state_home: Path | None = None) -> str:
    """A per-stack random secret, made once and kept in the state dir (never in the repository)."""
    directory = (state_home or home()) / "secrets"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / name
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24))
    return path.read_text().strip()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def unix_socket_answers(path: str, timeout_s: float = 2.0) -> bool:
    """Whether a server accepts a connection on the Unix socket at ``path`` (within ``timeout_s``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def free_port(preferred: int, host: str = "127.0.0.1", tries: int = 200) -> int:
    """``preferred`` if it is free, else the next free one above it."""
    for port in range(preferred, preferred + tries):
        if port_is_free(port, host):
            return port
    raise RuntimeError(f"no free port in {preferred}..{preferred + tries - 1} on {host}")


def pid_alive(pid: int | None) -> bool:
    """Whether some process has this id: not that it is the one we started (see ``process_is``)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_sigterm() -> None:
    """(In a child, between fork and exec: a ``preexec_fn``.) SIGTERM back to its default action.

    Processes started here are stopped with SIGTERM, and an ignored signal stays ignored across fork
    and exec. Dagster gives SIGTERM the disposition SIGINT has whenever it leaves an interrupt-capturing
    block (``dagster._utils.interrupts``), and a background job of a non-interactive shell (``&`` in a
    script, nohup, a CI runner) starts with SIGINT ignored: after one Dagster run in such a process
    every child it started ignored SIGTERM, and stopping one waited out its grace before SIGKILL (the
    search engine's JVM, which installs no handler for a signal it inherits ignored, and dbt alike)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# /proc/<pid>/stat fields (1-based): the process state ("Z" for a zombie) and when it started, in
# clock ticks since boot.
_STATE_FIELD = 3
_STARTTIME_FIELD = 22


def _stat_fields(pid: int | None) -> list[str]:
    """/proc/<pid>/stat from field 3 on ([] if the process is gone or there is no /proc). The command
    name (field 2) is in parentheses and may itself hold spaces and ``)``: fields are counted from
    its last ``)``."""
    if not pid:
        return []
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return []
    return stat[stat.rfind(")") + 1 :].split()


def process_start_time(pid: int | None) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if it is gone or there is no /proc.

    Recorded next to a service's pid: after a reboot (or a long uptime) the id may belong to another
    process, and only the pair names the one we started."""
    return _start_time(_stat_fields(pid))


def _start_time(fields: list[str]) -> int | None:
    try:
        return int(fields[_STARTTIME_FIELD - _STATE_FIELD])
    except (IndexError, ValueError):
        return None


def process_is(pid: int | None, started: int | None) -> bool:
    """Whether ``pid`` still is the running process that started at ``started`` (``process_start_time``).

    What every status, start and stop path asks before trusting or signalling a recorded pid: a
    process that is gone (or a zombie nobody reaped yet), or another one that got the same id, is not
    our service. An entry recorded by an older version has no start time (``started`` None): nothing
    tells then, so any live process with that id counts, as it did before."""
    if not pid_alive(pid):
        return False
    fields = _stat_fields(pid)
    if fields and fields[0] == "Z":
        return False
    return started is None or _start_time(fields) == started


def can_tell_processes_apart() -> bool:
    """Whether this system shows processes' start times and command lines (/proc: Linux). Without it
    (macOS) a recorded pid is trusted as before: nothing else can tell."""
    return Path("/proc/self/stat").exists()


def recorded_process_runs(info: dict | None) -> bool:
    """``process_is`` for a services.json entry: its ``pid`` and ``pid_start_time``."""
    return bool(info) and process_is(info.get("pid"), info.get("pid_start_time"))


def running_service(name: str, state_home: Path | None = None) -> dict | None:
    """The services.json entry of ``name`` if its process still runs (not another one that got its
    pid), else None."""
    info = read_services(state_home).get(name)
    return info if recorded_process_runs(info) else None


# How long a process has to be gone after SIGKILL, which it cannot catch: only one in uninterruptible
# sleep (a hung disk or NFS) outlasts it.
_KILL_WAIT_S = 10.0


def terminate(
    pid: int | None,
    started: int | None,
    grace_s: float,
    group: bool = False,
    reap: Callable[[], object] | None = None,
) -> bool:
    """End process ``pid`` (``process_is(pid, started)``): SIGTERM (to its whole process group with
    ``group``), up to ``grace_s`` for it to finish, then SIGKILL. Whether it is gone. Our own child
    (started in this process) is reaped on the way, or it would linger as a zombie: by ``reap`` if
    given (``Popen.poll``, which keeps its exit status), else by ``os.waitpid``."""
    send = os.killpg if group else os.kill

    def reap_it() -> None:
        if reap is not None:
            reap()
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    def gone_within(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            reap_it()
            if not process_is(pid, started):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    for how, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, _KILL_WAIT_S)):
        if not process_is(pid, started):  # never signal a process that only got its pid
            return True
        with contextlib.suppress(ProcessLookupError):
            _signal(send, pid, how)
        if gone_within(wait_s):
            return True
    return False


class NotOursToSignal(RuntimeError):
    """A process, or every process left in a group, that this user may not signal (EPERM): a member
    that changed its user (a setuid program) or runs as another user. It is left running; a service it
    belongs to stays recorded."""

    def __init__(self, pid: int, group: bool):
        what = f"process group {pid}" if group else f"process {pid}"
        super().__init__(
            f"{what} belongs to another user: this user may not signal it, so it was left running"
        )
        self.pid = pid


def _signal(send: Callable[[int, int], None], pid: int, how: int) -> None:
    """``send(pid, how)`` (``os.kill`` or ``os.killpg``), a refusal said as ``NotOursToSignal``: a
    bare PermissionError would end `funnelhouse down` with a traceback before the other services."""
    try:
        send(pid, how)
    except PermissionError as refused:
        raise NotOursToSignal(pid, group=send is os.killpg) from refused


class StillRunning(RuntimeError):
    """A recorded service's process outlived SIGKILL (uninterruptible sleep: a hung disk or NFS); it
    stays recorded."""

    def __init__(self, name: str, pid: int | None):
        super().__init__(f"{name} (pid {pid}) still runs after SIGKILL; it stays recorded")
        self.name, self.pid = name, pid


def stop_service(name: str, state_home: Path, grace_s: float, group: bool = False) -> None:
    """Stop the recorded service ``name`` (``terminate``) and forget it once its process is gone. A
    process that outlives even SIGKILL stays recorded, so `status` still shows it and `down` tries again.
    With ``group`` (a service started in a session of its own) what is left of its process group goes
    too: Elasticsearch's launcher JVM may be gone while the node JVM it started still holds the ports."""
    info = read_services(state_home).get(name)
    if not info:
        return
    pid = info.get("pid")
    started = info.get("pid_start_time")
    if not process_is(pid, started):
        # Its process is gone. The id still names its group while the group has members (the kernel
        # gives no new process an id in use as a group's), unless another process runs under it now.
        if group and pid and not process_is(pid, None):
            _end_process_group(pid, grace_s)
        forget_service(name, state_home)
        return
    if not terminate(pid, started, grace_s, group):
        raise StillRunning(name, pid)
    if group:
        _end_process_group(pid, grace_s)
    forget_service(name, state_home)


def end_started_process(process: subprocess.Popen, grace_s: float = 10.0, group: bool = False) -> None:
    """Stop a server process this command started but did not record (it did not come up, or the
    start was interrupted) and wait for it: ``terminate``, then reap it (its exit status stays in
    ``process.returncode``). Unrecorded, `down` would not know it, and it would hold its port and data
    against every later start. With ``group`` (a process started in a session of its own), what is
    left of its process group goes too, even when the process itself is already gone: a child it
    started there may outlive it."""
    if process.poll() is None:  # not reaped yet, so its pid (and start time) are still its own
        terminate(process.pid, process_start_time(process.pid), grace_s, group, reap=process.poll)
    process.wait()  # at once, unless it outlived SIGKILL: then as long as its uninterruptible sleep lasts
    if group:
        _end_process_group(process.pid, grace_s)


def _end_process_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the processes left in group ``pgid`` (whose leader is gone and reaped: its id stays
    reserved while the group has members), up to ``grace_s`` for them to go, then SIGKILL and up to
    _KILL_WAIT_S for them to be gone: a SIGKILL is delivered, not done, when ``killpg`` returns, and the
    caller goes on to reuse the ports and data the group held."""
    for how, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, _KILL_WAIT_S)):
        deadline = time.monotonic() + wait_s
        try:
            _signal(os.killpg, pgid, how)
        except ProcessLookupError:  # the group is empty
            return
        while _group_runs(pgid):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        else:
            return


def _group_runs(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs: a zombie does not (its new parent, often a
    container's init that never reaps, may keep it listed long after it ended). Without /proc, whether
    the group has any member."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:  # no member at all: no need to look through /proc
        return False
    except PermissionError:  # members, all another user's
        return True
    if not can_tell_processes_apart():
        return True
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            # fields from /proc/<pid>/stat's third on: state, ppid, pgrp
            if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False
