"""The warm dbt server and its client (orchestration/warm_dbt.py), on a real server process that has
imported dbt, serving a stand-in "dbt" script that reports what it was given: what a caller of dbt
relies on (arguments, environment, directory, streams, exit status, signals, never outliving the
caller) holds as it does for a dbt started cold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import stack
from orchestration import processes, warm_dbt
from tests.warehouse.test_run_dbt_signals import _wait_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pidfd and PR_SET_PDEATHSIG")

STAND_IN = """#!{python}
import json, os, pathlib, signal, sys, time
what, *rest = sys.argv[1:]
if what == "report":
    print(json.dumps({{
        "argv": sys.argv[1:], "cwd": os.getcwd(), "variable": os.environ.get("WARM_DBT_TEST"),
        "umask": os.umask(0), "stdin": sys.stdin.read(), "parent": os.getppid(),
        "cmdline": pathlib.Path("/proc/self/cmdline").read_bytes().split(b"\\0")[1:3],
    }}, default=bytes.decode))
    print("to stderr", file=sys.stderr)
elif what == "exit":
    sys.exit(int(rest[0]))
elif what == "signal":
    os.kill(os.getpid(), int(rest[0]))
elif what == "wait":
    pathlib.Path(rest[0]).write_text(str(os.getpid()))
    time.sleep(120)
"""


def _stand_in(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "dbt"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(socket path, the stand-in the server serves)."""
    folder = tmp_path_factory.mktemp("warm")
    script = _stand_in(folder / "bin")
    socket_path = str(folder / "dbt.sock")
    server = processes.start_bound(
        [sys.executable, "-m", warm_dbt.__name__, "serve", socket_path, str(script)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not os.path.exists(socket_path):
        assert server.poll() is None, "the server ended before it served"
        assert time.monotonic() < deadline, "the server never came up"
        time.sleep(0.1)
    yield socket_path, script
    server.terminate()
    assert server.wait(10) == 0
    assert not os.path.exists(socket_path), "the server left its socket behind"


def _start(socket_path: str, script: Path, *arguments: str, **popen) -> subprocess.Popen:
    env = {**os.environ, warm_dbt.SOCKET_VARIABLE: socket_path, "WARM_DBT_TEST": "given"}
    return subprocess.Popen(warm_dbt.command(str(script), arguments, env), env=env, text=True, **popen)


def _pid_from(pid_file: Path, deadline_s: float = 60) -> int:
    deadline = time.monotonic() + deadline_s
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the stand-in never started"
        time.sleep(0.05)
    return int(pid_file.read_text())


def test_dbt_runs_forked_from_the_server_with_the_callers_arguments_environment_and_streams(served, tmp_path):
    socket_path, script = served
    old_umask = os.umask(0o027)
    try:
        client = _start(
            socket_path,
            script,
            "report",
            "--select",
            "a b",
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        os.umask(old_umask)
    out, err = client.communicate("from stdin", timeout=60)
    assert client.returncode == 0, err
    report = json.loads(out)
    assert report["argv"] == ["report", "--select", "a b"]
    assert report["cwd"] == str(tmp_path)
    assert report["variable"] == "given"
    assert report["umask"] == 0o027
    assert report["stdin"] == "from stdin"
    assert err == "to stderr\n"
    # Forked from the server (whose command line it keeps), not the client's own process started cold.
    assert report["cmdline"] == ["-m", warm_dbt.__name__]
    assert report["parent"] != client.pid


@pytest.mark.parametrize("code", [0, 3])
def test_the_client_ends_with_dbts_exit_status(served, code):
    client = _start(*served, "exit", str(code))
    assert client.wait(60) == code


def test_dbt_killed_by_a_signal_ends_its_client_by_the_same_signal(served):
    client = _start(*served, "signal", str(int(signal.SIGTERM)))
    assert client.wait(60) == -signal.SIGTERM


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_client_reaches_dbt(served, tmp_path, signum):
    pid_file = tmp_path / "dbt.pid"
    client = _start(*served, "wait", str(pid_file))
    dbt_pid = _pid_from(pid_file)
    client.send_signal(signum)
    client.wait(30)
    assert _wait_gone(dbt_pid, 5), f"dbt (pid {dbt_pid}) outlived the {signum.name} its client was sent"
    # dbt ended by the signal (SIGINT as an uncaught KeyboardInterrupt ends Python), and so did the client
    assert client.returncode == -signum


def test_dbt_does_not_outlive_a_client_killed_outright(served, tmp_path):
    pid_file = tmp_path / "dbt.pid"
    client = _start(*served, "wait", str(pid_file))
    dbt_pid = _pid_from(pid_file)
    client.kill()
    client.wait(30)
    assert _wait_gone(dbt_pid, 5), f"dbt (pid {dbt_pid}) outlived its client killed with SIGKILL"


def test_another_dbt_than_the_servers_starts_cold_and_silently(served, tmp_path):
    socket_path, _ = served
    other = _stand_in(tmp_path / "other")
    client = _start(
        socket_path, other, "report", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = client.communicate(timeout=60)
    assert client.returncode == 0, err
    assert err == "to stderr\n"
    report = json.loads(out)
    assert report["cmdline"][0] == str(other)  # its own process: the script run by its interpreter
    assert report["parent"] == os.getpid()


def test_with_no_server_at_the_socket_dbt_starts_cold_and_says_so(tmp_path):
    script = _stand_in(tmp_path / "bin")
    client = _start(str(tmp_path / "absent.sock"), script, "exit", "4", stderr=subprocess.PIPE)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 4
    assert "no server at" in err and "dbt starts cold" in err


def test_without_a_server_named_or_running_in_the_stack_the_command_is_dbt_itself(tmp_path):
    assert warm_dbt.command("/x/dbt", ["run"], {"FUNNELHOUSE_HOME": str(tmp_path)}) == ["/x/dbt", "run"]


def test_the_stacks_server_is_found_by_every_dbt_command_of_the_stack_and_stopped_with_it(tmp_path):
    """`funnelhouse up` starts a warm dbt server (the service ``dbt``); a dbt command in that stack's
    environment, with no socket named, is served by it; `down` stops it and dbt starts cold again."""
    from orchestration import warm_dbt_service
    from orchestration.defs.warehouse.dbt_environment import dbt_executable

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != warm_dbt.SOCKET_VARIABLE} | {
        "FUNNELHOUSE_HOME": str(home)
    }
    info = warm_dbt_service.start(home)
    try:
        assert warm_dbt_service.start(home) == info  # started once
        assert warm_dbt_service.status(home) == info
        assert warm_dbt.socket_path(env) == info["socket"]
        command = warm_dbt.command(dbt_executable(), ["--help"], env)
        assert command[:5] == [sys.executable, "-m", warm_dbt.__name__, "run", info["socket"]]
        helped = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert helped.returncode == 0, helped.stderr
        assert "Usage: dbt" in helped.stdout and not helped.stderr
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FUNNELHOUSE_HOME", str(home))
            patch.delenv(warm_dbt.SOCKET_VARIABLE)
            assert ("dbt", True, info["socket"]) in stack.status()
            patch.setenv(warm_dbt.SOCKET_VARIABLE, str(tmp_path / "absent.sock"))
            assert ("dbt", False, f"{warm_dbt.SOCKET_VARIABLE} (configured, not answering)") in stack.status()
    finally:
        warm_dbt_service.stop(home)
    assert warm_dbt_service.status(home) is None
    assert not os.path.exists(info["socket"])
    assert warm_dbt.command("/x/dbt", ["run"], env) == ["/x/dbt", "run"]
    assert "Traceback" not in Path(info["log"]).read_text()
