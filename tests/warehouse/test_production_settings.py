"""The production setup as README gives it (FUNNELHOUSE_ENV=prod, the server as
FUNNELHOUSE_CLICKHOUSE_URL + _USER/_PASSWORD) reaches dbt: the prod target connects to the server
replication writes to (here the test one, over plain HTTP), and `make manifest` parses the project
with it and no server at all (as it does locally before any stack is up)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from orchestration.defs.warehouse.build import run_dbt

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_production_variables_reach_dbt(clickhouse_env, dbt_dirs, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_ENV", "prod")
    monkeypatch.delenv("DBT_TARGET")
    for explicit in ("HOST", "PORT", "SECURE"):
        monkeypatch.delenv(f"FUNNELHOUSE_CLICKHOUSE_{explicit}", raising=False)
    output: list[str] = []
    assert run_dbt(["--no-use-colors", "debug"], log=output.append) == 0, "\n".join(output[-30:])
    printed = "\n".join(output)
    assert "Connection test: [OK connection ok]" in printed, printed
    assert "connect_timeout: 10" in printed, printed  # the prod output's (the embedded one's is 30)


def _make_manifest(tmp_path: Path, **environment: str) -> str:
    """`make manifest` as a shell runs it, with ``environment`` and an empty stack home, into a target
    of the test's own (dbt_project/target is the developer's); the venv is taken as installed (`-o`),
    not rebuilt. Returns what it printed, after checking that it wrote a manifest of the project."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FUNNELHOUSE_", "DBT_", "MAKE", "MFLAGS"))
    }
    target = tmp_path / "target"
    made = subprocess.run(
        [
            "make",
            "-s",
            "-o",
            ".venv/bin/.installed",
            "manifest",
            f"DBT_TARGET_PATH={target}",
            f"DBT_LOG_PATH={tmp_path / 'logs'}",
        ],
        cwd=REPO,
        env={**clean, "FUNNELHOUSE_HOME": str(tmp_path / "home"), **environment},
        capture_output=True,
        text=True,
        timeout=600,
    )
    printed = made.stdout + made.stderr
    assert made.returncode == 0, printed[-3000:]
    manifest = json.loads((target / "manifest.json").read_text())
    models = [node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "model"]
    assert "mart_funnel_daily" in models, sorted(models)
    return printed


def test_make_manifest_parses_with_the_readme_production_variables_and_no_server(tmp_path):
    """The prod profile reads FUNNELHOUSE_CLICKHOUSE_HOST, which README's setup never sets: only dbt's
    environment derives it from the URL, so a bare `dbt parse` in the Makefile failed. Here the server
    does not even exist; the password is in neither the output nor the manifest."""
    password = "not-used-by-a-parse"
    printed = _make_manifest(
        tmp_path,
        FUNNELHOUSE_ENV="prod",
        FUNNELHOUSE_CLICKHOUSE_URL="https://clickhouse.example.invalid:8443",
        FUNNELHOUSE_CLICKHOUSE_USER="funnelhouse",
        FUNNELHOUSE_CLICKHOUSE_PASSWORD=password,
    )
    assert password not in printed
    assert password not in (tmp_path / "target" / "manifest.json").read_text()


def test_make_manifest_parses_locally_before_the_stack_is_up(tmp_path):
    """`make demo` parses before `funnelhouse up`: with no embedded server to take an address from, the
    local profile's defaults do (a parse connects to nothing)."""
    _make_manifest(tmp_path)
