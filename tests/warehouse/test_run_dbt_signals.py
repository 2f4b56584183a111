"""dbt never outlives the command that started it (``funnelhouse docs --serve`` stopped with SIGTERM
used to leave ``dbt docs serve`` running, adopted by init). No servers needed: the "dbt" here is a
Python process that prints its pid and sleeps, started through the real :func:`run_dbt`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.defs.warehouse.dbt_environment import REPO_ROOT

# The parent starts with the dispositions of an interactive command. A test runner started in the
# background by a non-interactive shell has SIGINT ignored (and a supervisor may ignore SIGTERM);
# children inherit that, and a parent ignoring the signal under test would never end.
_PARENT = """
import os, signal, sys
from contextlib import nullcontext
from orchestration.defs.warehouse import build

signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)

build.dbt_executable = lambda: sys.executable  # "dbt" = a Python that reports its pid and waits
child = "import os, time; print('child-pid', os.getpid(), flush=True); time.sleep(300)"
with build.dbt_in_background(["-c", BESIDE], env=dict(os.environ)) if BESIDE else nullcontext():
    build.run_dbt(["-c", child], log=lambda line: print(line, flush=True), env=dict(os.environ))
print("run_dbt returned", flush=True)
"""
# A second "dbt" started beside the first, as a build starts source freshness: it writes its pid to
# the file named by FAKE_DBT_PID_FILE (its output is kept until it ends).
_BESIDE = (
    "import os, pathlib, time; pathlib.Path(os.environ['FAKE_DBT_PID_FILE']).write_text(str(os.getpid()));"
    " time.sleep(300)"
)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone (reaped between the open and the read: ESRCH)
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.1)
    return not _running(pid)


def _pid_written_to(path: Path, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError("the dbt beside it never started")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("beside", [False, True], ids=["alone", "with-one-beside"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_dbt_child_ends_with_its_parent(signum, beside, tmp_path):
    pid_file = tmp_path / "beside.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"BESIDE = {_BESIDE if beside else ''!r}\n" + _PARENT],
        env={**os.environ, "FAKE_DBT_PID_FILE": str(pid_file)},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    child_pid = beside_pid = None
    try:
        assert parent.stdout is not None
        for line in parent.stdout:
            if line.startswith("child-pid "):
                child_pid = int(line.split()[1])
                break
        assert child_pid is not None, "the fake dbt never started"
        assert _running(child_pid)
        if beside:
            beside_pid = _pid_written_to(pid_file, 10)
            assert _running(beside_pid)
        parent.send_signal(signum)  # to the parent only, as `kill` or a supervisor does
        parent.wait(timeout=30)
        assert _wait_gone(child_pid, 5), f"dbt (pid {child_pid}) outlived its parent"
        if beside:
            assert _wait_gone(beside_pid, 5), f"the dbt beside it (pid {beside_pid}) outlived its parent"
        if signum == signal.SIGTERM:
            assert parent.returncode == -signal.SIGTERM  # still ends as SIGTERM would have
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in (child_pid, beside_pid):
            if pid is not None and _running(pid):
                os.kill(pid, signal.SIGKILL)
