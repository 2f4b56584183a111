import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from devstack import state
from orchestration import processes, warm_dbt
from orchestration.defs.warehouse.dbt_environment import dbt_executable
from tests.fixtures import clock

# The width the commands' output is read at, the same in every process of the suite. The commands print
# through consoles made when orchestration.commands is imported (orchestration/console.py): with no
# COLUMNS set, and stdout not a terminal (CliRunner's), 240 columns and lines left whole, as in a log;
# with COLUMNS set, rich fixes the width to it then. pytest imports GNU readline, which exports the
# launching terminal's COLUMNS and LINES (80x24 without one) into the C environment, unseen by
# os.environ; pytest-xdist's workers inherit them into os.environ, so a test saw tables and paths cut
# at 80 columns in a worker and whole in a serial run. Both are dropped here, before any test module
# imports the commands (and for the processes the tests start), and put back when the run ends.
_TERMINAL_SIZE = {name: os.environ[name] for name in ("COLUMNS", "LINES") if name in os.environ}
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)
    os.unsetenv(_name)  # readline's copy, which os.environ never held


# A background job of a non-interactive shell (a CI runner, `make test &`) starts with SIGINT ignored,
# and so did every test worker. Dagster gives SIGTERM SIGINT's disposition after each run in process,
# so every process a later test started ignored SIGTERM: funnelhouse's own children get it back
# (devstack.state.default_sigterm), a test's own `sleep` did not, and stopping it waited out a grace
# period (30 s in one test). The tests run as they do from a terminal, whichever way they were started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# One day for the whole run: every build the tests start is as of the day the CRM fixture is dated from
# and the tests count from (tests/fixtures/clock.py), also when the run crosses midnight UTC.
clock.pin_build_date()


@pytest.fixture(scope="session", autouse=True)
def warm_dbt_server():
    """One warm dbt server per test process (orchestration/warm_dbt.py): every dbt command of the
    process's tests forks from it instead of importing dbt again (~2.3 s of CPU each on an idle machine,
    7-8 s on the suite's two busy cores; the suite starts well over a hundred). Named in the environment
    of every process the tests start; a server that does not come up leaves dbt starting cold, as does
    FUNNELHOUSE_TEST_COLD_DBT=1 (to measure what the server saves)."""
    if os.environ.get("FUNNELHOUSE_TEST_COLD_DBT") == "1":
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="fh-dbt-"))
    socket_path = str(folder / "dbt.sock")
    with open(folder / "server.log", "w") as log:
        server = processes.start_bound(
            [sys.executable, "-m", warm_dbt.__name__, "serve", socket_path, dbt_executable()],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while not os.path.exists(socket_path) and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if os.path.exists(socket_path):
        os.environ[warm_dbt.SOCKET_VARIABLE] = socket_path
    else:
        warnings.warn(
            f"the warm dbt server did not come up (see {folder}/server.log): dbt starts cold", stacklevel=2
        )
    yield socket_path
    os.environ.pop(warm_dbt.SOCKET_VARIABLE, None)
    state.end_started_process(server)


def pytest_unconfigure(config):
    os.environ.update(_TERMINAL_SIZE)


pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.clickhouse",
    "tests.fixtures.warehouse",
    # Registered once for the whole suite: a session fixture imported into two test packages would be
    # two fixtures, each starting its own search engine.
    "tests.fixtures.search",
]
