"""A child started by funnelhouse to do its work (dbt above all) dies with a parent killed outright:
SIGKILL leaves no ``finally`` and no signal handler to stop it, and an orphaned dbt went on writing
to the warehouse without the writer lock (orchestration/processes.py). Real process trees: the
"dbt" is a Python process that writes its pid to a file and sleeps; the parent is SIGKILLed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.defs.warehouse.dbt_environment import REPO_ROOT
from tests.warehouse.test_run_dbt_signals import _running, _wait_gone

_CHILD = (
    "import os, pathlib, time; pathlib.Path(os.environ['CHILD_PID_FILE']).write_text(str(os.getpid()));"
    " time.sleep(300)"
)

# Each parent starts the child its own way and waits for it, as funnelhouse does.
_PARENTS = {
    # the function itself, from the main thread and from a worker thread that waits for the child
    # (PR_SET_PDEATHSIG follows the thread that forked)
    "start_bound": """
from orchestration import processes
processes.start_bound([sys.executable, "-c", CHILD]).wait()
""",
    "start_bound-in-a-thread": """
import threading
from orchestration import processes
worker = threading.Thread(target=lambda: processes.start_bound([sys.executable, "-c", CHILD]).wait())
worker.start()
worker.join()
""",
    # the dbt of `funnelhouse build` and `funnelhouse dbt`, and the source freshness started beside it
    "run_dbt": """
from orchestration.defs.warehouse import build
build.dbt_executable = lambda: sys.executable
build.run_dbt(["-c", CHILD], log=print, env=dict(os.environ))
""",
    "dbt_in_background": """
import time
from orchestration.defs.warehouse import build
build.dbt_executable = lambda: sys.executable
with build.dbt_in_background(["-c", CHILD], env=dict(os.environ)):
    time.sleep(300)
""",
    # Dagster's dbt steps: the warehouse's dbt resource (its executable, run from a folder whose dbt is
    # the stand-in) and dagster-dbt's own Popen of it, as a step streams a dbt command's events
    "dagster-dbt": """
from pathlib import Path
from tests.test_processes import dbt_resource_beside_a_stand_in
folder = Path(os.environ["CHILD_PID_FILE"]).parent
dbt_resource_beside_a_stand_in(folder / "bin").cli(["build"], target_path=folder / "target").wait()
""",
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", list(_PARENTS))
def test_child_dies_with_a_parent_killed_outright(how, tmp_path):
    pid_file, parent_log = tmp_path / "child.pid", tmp_path / "parent.log"
    parent = _start_parent(how, pid_file, parent_log)
    child_pid = None
    try:
        child_pid = _pid_written_to(pid_file, parent, parent_log)
        assert _running(child_pid)
        # The parent's own child (a launcher execs dbt): what the parent signals is dbt itself.
        assert _parent_of(child_pid) == parent.pid
        parent.kill()  # SIGKILL: nothing in the parent runs any more
        parent.wait(timeout=10)
        assert _wait_gone(child_pid, 2), f"the child (pid {child_pid}) outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child_pid is not None and _running(child_pid):
            os.kill(child_pid, signal.SIGKILL)


# A parent that ignores SIGTERM, as a Dagster process does that started with SIGINT ignored: Dagster
# gives SIGTERM SIGINT's disposition on leaving an interrupt-capturing block (every run does), and a
# background job of a non-interactive shell (`&` in a script, nohup, a CI runner) starts so.
_IGNORING_SIGTERM = """
import signal
from dagster._utils.interrupts import capture_interrupts
signal.signal(signal.SIGINT, signal.SIG_IGN)
with capture_interrupts():
    pass
assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
"""


@pytest.mark.parametrize("how", list(_PARENTS))
def test_a_child_stops_on_sigterm_though_its_parent_ignores_it(how, tmp_path):
    """funnelhouse stops the processes it started with SIGTERM (dbt on an interrupted build, a service
    on `down`); inherited ignored, SIGTERM did nothing and each stop waited out its grace."""
    pid_file, parent_log = tmp_path / "child.pid", tmp_path / "parent.log"
    parent = _start_parent(how, pid_file, parent_log, prelude=_IGNORING_SIGTERM)
    child_pid = None
    try:
        child_pid = _pid_written_to(pid_file, parent, parent_log)
        os.kill(child_pid, signal.SIGTERM)
        assert _wait_gone(child_pid, 5), f"the child (pid {child_pid}) ignored SIGTERM as its parent does"
    finally:
        if child_pid is not None and _running(child_pid):
            os.kill(child_pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def _start_parent(how: str, pid_file: Path, parent_log: Path, prelude: str = "") -> subprocess.Popen:
    """The parent ``how`` (_PARENTS), ``prelude`` run first; it starts _CHILD, which writes its pid to
    ``pid_file``."""
    with parent_log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-c", f"import os, sys\n{prelude}\nCHILD = {_CHILD!r}\n{_PARENTS[how]}"],
            env={**os.environ, "CHILD_PID_FILE": str(pid_file)},
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _pid_written_to(path: Path, parent: subprocess.Popen, parent_log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if parent.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"the child never started; its parent said: {parent_log.read_text()}")


def dbt_resource_beside_a_stand_in(folder: Path):
    """The warehouse's dbt resource (dbt_resource(): Dagster's dbt steps), its executable installed in
    ``folder`` beside a stand-in dbt that answers ``--version`` as dbt does and otherwise runs _CHILD.
    (Were the executable dbt itself, unbound as it once was, the stand-in would replace it.)"""
    from orchestration.defs.warehouse.resources import dbt_resource

    resource = dbt_resource()
    folder.mkdir()
    executable = shutil.copy(resource.dbt_executable, folder)
    stand_in = folder / "dbt"
    stand_in.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "if sys.argv[1:] == ['--version']:\n    print('Core:\\n  - installed: 1.11.16')\n    sys.exit()\n"
        f"{_CHILD}\n"
    )
    stand_in.chmod(0o755)
    return type(resource)(
        project_dir=resource.project_dir,
        profiles_dir=resource.profiles_dir,
        target=resource.target,
        dbt_executable=executable,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_dagster_dbt_not_run_once_its_step_process_is_gone(tmp_path):
    """A step process killed while its dbt launcher was still starting: the launcher, reparented, is
    bound to no step, and must not start dbt (the pid of a process that ended stands for the step's)."""
    from orchestration import bound_dbt

    executable = dbt_resource_beside_a_stand_in(tmp_path / "bin").dbt_executable
    pid_file = tmp_path / "child.pid"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    launched = subprocess.run(
        [executable, "build"],
        env={
            **os.environ,
            "CHILD_PID_FILE": str(pid_file),
            bound_dbt.PARENT_PID_VARIABLE: ended.stdout.decode().strip(),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert launched.returncode == 127, launched.stdout + launched.stderr
    assert "ended before dbt started" in launched.stderr
    assert not pid_file.exists()


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
