"""`funnelhouse dbt` in production without a ClickHouse address says what `funnelhouse build` says: the
variable README names is missing (not dbt's "Env var required" for a variable of profiles.yml that
README never mentions)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orchestration.defs.warehouse.dbt_environment import REPO_ROOT

UNSET = ("FUNNELHOUSE_CLICKHOUSE_URL", "FUNNELHOUSE_CLICKHOUSE_HOST", "DBT_TARGET")


def _funnelhouse(*arguments: str, home) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in UNSET}
    environment.update(FUNNELHOUSE_ENV="prod", FUNNELHOUSE_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *arguments],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("command", [["debug"], ["ls"], ["compile"], ["docs", "generate"]])
def test_funnelhouse_dbt_in_production_without_clickhouse_says_what_build_says(command, tmp_path):
    build = _funnelhouse("build", "--skip-replication", "--no-freshness", home=tmp_path)
    [expected] = [line for line in build.stderr.splitlines() if line.startswith("Error: ")]
    assert "FUNNELHOUSE_ENV=prod needs FUNNELHOUSE_CLICKHOUSE_URL set" in expected

    dbt = _funnelhouse("dbt", *command, home=tmp_path)
    assert (dbt.returncode, dbt.stderr.strip().splitlines()[-1:]) == (1, [expected]), dbt.stdout[-2000:]
