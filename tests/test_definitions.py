"""The whole Dagster code location loads, as `dagster dev -w workspace.yaml` would load it."""

import subprocess
import sys

import dagster as dg

from orchestration.definitions import defs


def test_code_location_loads():
    repository = defs.get_repository_def()
    assert isinstance(defs, dg.Definitions)
    # Resolving every job forces asset graphs, selections and resources to be consistent.
    for job in repository.get_all_jobs():
        assert job.name


def test_command_line_modules_do_not_load_dagster():
    """`funnelhouse build`, `report`, `search` and `ingest` import plain modules of the defs packages;
    a package ``__init__`` that built Definitions would load Dagster (and dbt) for each of them."""
    plain_modules = (
        "orchestration.cli",
        "orchestration.defs.warehouse.build",
        "orchestration.defs.reports.runner",
    )
    probe = f"import sys; import {', '.join(plain_modules)}; print(sorted({{'dagster', 'dbt'}} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
