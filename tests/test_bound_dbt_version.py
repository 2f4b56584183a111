"""dagster-dbt asks its dbt executable ``--version`` before every dbt command of a Dagster step: the
launcher (orchestration/bound_dbt.py) answers for its own environment's dbt from the package metadata,
without importing dbt (seconds of CPU) or asking PyPI for newer releases; any other dbt answers itself."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys

import pytest
from packaging import version

from orchestration import bound_dbt


def _modules_imported(stderr: str) -> set[str]:
    """The modules a run with PYTHONPROFILEIMPORTTIME=1 imported (its "import time:" lines)."""
    return {
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")
    }


def test_the_launcher_answers_for_its_environments_dbt_without_importing_it():
    answered = subprocess.run(
        [bound_dbt.executable(), "--version"],
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert f"installed: {importlib.metadata.version('dbt-core')}" in answered.stdout
    for adapter in ("clickhouse", "postgres"):  # (as dbt lists them)
        assert f"{adapter}:" in answered.stdout
        assert importlib.metadata.version(f"dbt-{adapter}") in answered.stdout
    imported = _modules_imported(answered.stderr)
    assert "orchestration.bound_dbt" in imported  # (the import log works)
    assert not [name for name in imported if name == "dbt" or name.startswith("dbt.")]


def test_dagster_dbt_reads_the_installed_version_from_the_launcher():
    from orchestration.defs.warehouse.resources import dbt_resource

    resource = dbt_resource()
    assert resource.dbt_executable == bound_dbt.executable()
    assert resource._cli_version == version.parse(importlib.metadata.version("dbt-core"))


def test_a_dbt_of_another_installation_answers_itself(tmp_path):
    launcher = shutil.copy(bound_dbt.executable(), tmp_path)
    other_dbt = tmp_path / "dbt"
    other_dbt.write_text(f"#!{sys.executable}\nprint('Core:\\n  - installed: 9.9.9')\n")
    other_dbt.chmod(0o755)
    answered = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=120)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip() == "Core:\n  - installed: 9.9.9"


@pytest.mark.parametrize(
    ("content", "answered"),
    [
        ("#!{python}\nimport sys\nfrom dbt.cli.main import cli\n", True),  # dbt-core's, pip-written
        ("#!/usr/bin/python3\nimport sys\nfrom dbt.cli.main import cli\n", False),  # another Python's
        ("\x7fELF dbt-fusion 2.0.0", False),  # another dbt (a binary) put into the same folder
    ],
)
def test_only_dbt_cores_script_of_this_python_is_answered_for(tmp_path, monkeypatch, content, answered):
    python = tmp_path / "python3.11"
    monkeypatch.setattr(sys, "executable", str(python))
    dbt = tmp_path / "dbt"
    dbt.write_text(content.format(python=python))
    answer = bound_dbt.version_answer(str(dbt))
    if answered:
        assert answer.startswith(f"Core:\n  - installed: {importlib.metadata.version('dbt-core')}\n")
    else:
        assert answer is None
