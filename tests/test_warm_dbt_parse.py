"""The warm dbt server's parse before serving (orchestration/warm_dbt_parse.py), run as the server runs
it: in a process that has imported dbt, which then forks a dbt command. It must leave the project's
target and logs as they were, start no thread, native ones included (the server forks: a forked command
would wait for ever on a pool it does not have), make a forked command cheaper than one forked after the
imports alone, and never stop a server whose project cannot be parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import warm_dbt
from orchestration.defs.warehouse.dbt_environment import PROFILES_DIR, REPO_ROOT, dbt_executable

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server forks")

# In a fresh process: the server's imports, optionally the parse, then one dbt command forked (`dbt ls`
# unless given), timed by process CPU (user + system of the forked child, which is what the parse spares
# it). As the server, it forks nothing while another thread runs.
PROBE = """
import json, os, resource, sys
for module in {preloaded!r}:
    __import__(module)
from orchestration import warm_dbt, warm_dbt_parse
parsed = warm_dbt_parse.warm_up() if sys.argv[1] == "parse" else None
threads = warm_dbt.running_threads()
if threads != 1:
    print(json.dumps({{"parsed": parsed, "threads": threads, "command_ok": None}}))
    sys.exit(0)
command = sys.argv[2].split() if len(sys.argv) > 2 else ["ls", "--select", "tag:selects_nothing"]
pid = os.fork()
if pid == 0:  # the command, on a copy of the target: the test compares the target as the parse left it
    import shutil, tempfile
    from dbt.cli.main import dbtRunner
    from orchestration.defs.warehouse.dbt_environment import REPO_ROOT
    scratch = tempfile.mkdtemp()
    shutil.copytree(os.environ["DBT_TARGET_PATH"], scratch + "/target")
    os.environ.update(DBT_TARGET_PATH=scratch + "/target", DBT_LOG_PATH=scratch + "/logs")
    os.chdir(REPO_ROOT)
    ok = dbtRunner().invoke([*command, "--quiet"]).success
    shutil.rmtree(scratch, ignore_errors=True)
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"parsed": parsed, "threads": threads, "command_ok": status == 0,
                   "command_cpu_s": usage.ru_utime + usage.ru_stime}}))
"""


def _probe(mode: str, env: dict[str, str], *command: str) -> dict:
    script = PROBE.format(preloaded=warm_dbt.PRELOADED)
    done = subprocess.run(
        [sys.executable, "-c", script, mode, *command], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dbt_folders(tmp_path_factory):
    """A target holding a partial-parse file to seed from, and a log folder, both as dbt would find them."""
    folder = tmp_path_factory.mktemp("dbt")
    target, logs = folder / "target", folder / "logs"
    env = {
        **os.environ,
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(logs),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "FUNNELHOUSE_CLICKHOUSE_HOST": "127.0.0.1",
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
    }
    done = subprocess.run(
        [dbt_executable(), "parse", "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return env, target, logs


def _contents(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_the_parse_leaves_the_target_and_logs_alone_starts_no_thread_and_spares_each_command(dbt_folders):
    env, target, logs = dbt_folders
    before = (_contents(target), _contents(logs))

    warmed = _probe("parse", env)
    imported_only = _probe("imports", env)

    assert warmed["parsed"] is True
    assert warmed["threads"] == 1, "a thread running at the fork would leave its locks taken in the command"
    assert (_contents(target), _contents(logs)) == before, "the parse wrote into the project's target or logs"
    assert warmed["command_ok"] and imported_only["command_ok"]
    # What the parse built is not built again by the command: well under its cost after the imports alone
    # (measured 0.8-1.2 s against 2.6-2.9 s of wall time on an idle machine).
    assert warmed["command_cpu_s"] < 0.7 * imported_only["command_cpu_s"], (warmed, imported_only)


def test_a_project_that_cannot_be_parsed_leaves_the_server_serving(dbt_folders):
    env, target, logs = dbt_folders
    env = {**env, "DBT_TARGET": "no_such_target"}  # the profile has none: dbt refuses to parse

    result = _probe("parse", env)

    assert result["parsed"] is False
    assert result["threads"] == 1
    assert not result["command_ok"], "the command forked after it ran in the same broken environment"


def test_a_project_changed_since_the_targets_parse_leaves_forked_commands_able_to_parse(dbt_folders):
    # Another ClickHouse port: the profile is not the one of the target's parse, so the server parses the
    # project whole, and so does the forked command (dbt then parses every model, statically where it can).
    env, _target, _logs = dbt_folders
    env = {**env, "FUNNELHOUSE_CLICKHOUSE_PORT": "18123"}

    result = _probe("parse", env, "parse --no-partial-parse")

    assert result["parsed"] is True
    assert result["threads"] == 1, "the parse left a native thread pool: a forked parse would wait for ever"
    assert result["command_ok"] is True
