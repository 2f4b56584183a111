"""The ``funnelhouse`` console script as a user meets it in a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_console_script_is_the_guarded_entry_point():
    (script,) = metadata.entry_points(group="console_scripts", name="funnelhouse")
    assert script.value == "orchestration.cli:main"


def _funnelhouse(home: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    """The command as a shell runs it, on a stack home of its own, its output read through a pipe."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FUNNELHOUSE_") and name != "COLUMNS"
    }
    environment.update(FUNNELHOUSE_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_command_needing_a_service_nobody_started_says_to_run_up(tmp_path):
    """No ClickHouse configured and none running: one line saying what to do, no traceback."""
    result = _funnelhouse(tmp_path, "marts", COLUMNS="200")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: no clickhouse address configured and no embedded clickhouse"), (
        result.stderr
    )
    assert "`funnelhouse up`" in result.stderr


def test_output_into_a_pipe_or_log_keeps_paths_whole(tmp_path):
    """Away from a terminal (`make demo | tee`, CI logs) a path a command prints to say where to look
    stays on one line: rich would otherwise wrap it at 80 columns, mid-name."""
    home = tmp_path / ("a-state-home-with-a-name-long-enough-to-pass-eighty-columns" + "-" * 30)
    result = _funnelhouse(home, "status")
    assert result.returncode == 0, result.stderr
    assert f"passwords of the embedded services: {home / 'secrets'} (never printed)\n" in result.stdout
