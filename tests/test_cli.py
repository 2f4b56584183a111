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


def test_a_command_needing_a_service_nobody_started_says_to_run_up(tmp_path):
    """No ClickHouse configured and none running: one line saying what to do, no traceback."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FUNNELHOUSE_")}
    env.update(FUNNELHOUSE_HOME=str(tmp_path), COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "marts"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: no clickhouse address configured and no embedded clickhouse"), (
        result.stderr
    )
    assert "`funnelhouse up`" in result.stderr
