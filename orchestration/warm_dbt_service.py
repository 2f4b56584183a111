"""The embedded stack's warm dbt server (orchestration/warm_dbt.py) as a service of ``funnelhouse up``:
started detached, recorded in services.json as ``dbt`` with its socket, stopped by ``funnelhouse down``.
While it runs, every dbt command of this stack forks from it (``warm_dbt.socket_path`` finds it in the
stack's services.json when FUNNELHOUSE_WARM_DBT_SOCKET is not set).

It serves the dbt of the installation that started it, as imported then: after upgrading dbt or an
adapter, ``funnelhouse down`` and ``up`` again (until then its commands run the dbt it imported).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from devstack import state
from orchestration import bound_dbt, warm_dbt

SERVICE = warm_dbt.SERVICE
START_TIMEOUT = 120.0  # dbt's imports: 2-3 s on an idle machine, 7-8 s on two busy cores
STOP_TIMEOUT = 10.0


def status(state_home: Path) -> dict | None:
    info = state.running_service(SERVICE, Path(state_home))
    if info and state.unix_socket_answers(info["socket"]):
        return info
    return None


def start(state_home: Path) -> dict:
    """Start the server (or return the running one) and record ``{socket, pid, log}``."""
    state_home = Path(state_home)
    running = status(state_home)
    if running:
        return running
    socket_path = str(state_home / "dbt.sock")
    log_path = state_home / "dbt-server.log"
    dbt = bound_dbt.find_dbt(Path(sys.executable).parent)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", warm_dbt.__name__, "serve", socket_path, dbt],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `funnelhouse up`
            preexec_fn=state.default_sigterm,  # stopped with SIGTERM, which this process may ignore
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (os.path.exists(socket_path) and state.unix_socket_answers(socket_path)):
            if process.poll() is not None or time.monotonic() > deadline:
                why = "it exited" if process.poll() is not None else f"no answer within {START_TIMEOUT} s"
                tail = log_path.read_text(errors="replace").splitlines()[-10:]
                raise RuntimeError(
                    f"the warm dbt server did not start, {why} (log {log_path}):\n" + "\n".join(tail)
                )
            time.sleep(0.1)
        info = state.record_started(SERVICE, process, log_path, {"socket": socket_path}, state_home)
    except BaseException:  # not a start: timed out, or interrupted (Ctrl-C) before it was recorded
        state.end_started_process(process)
        raise
    return info


def stop(state_home: Path) -> None:
    """SIGTERM the server (commands it is running go on to their end), SIGKILL it if it is still there
    after ``STOP_TIMEOUT``, and forget it."""
    state.stop_service(SERVICE, Path(state_home), STOP_TIMEOUT)
