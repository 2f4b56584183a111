"""The dbt project and CLI resource of the warehouse domain.

The manifest is never parsed at import time. ``prepare_if_dev()`` parses it under ``dagster dev``;
elsewhere it must exist already (``make venv`` / ``funnelhouse build`` run dbt, which writes it;
CI images run ``dagster-dbt project prepare-and-package``). Without one, the code location still
loads, with the replication assets only (see dbt_assets.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from orchestration.defs.warehouse.dbt_environment import (
    MANIFEST,
    PROFILES_DIR,
    REPO_ROOT,
    dbt_executable,
    dbt_target,
)

dbt_project = DbtProject(
    project_dir=REPO_ROOT,
    profiles_dir=PROFILES_DIR,
    target=dbt_target(),
    target_path=MANIFEST.parent,
)
# dagster-dbt's preparer runs a bare `dbt` from PATH (it takes no executable), and `dagster dev`
# started as .venv/bin/dagster has no venv on PATH: the venv's dbt goes first for this process.
_DBT = Path(dbt_executable())
if _DBT.is_absolute() and str(_DBT.parent) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join(filter(None, [str(_DBT.parent), os.environ.get("PATH")]))
dbt_project.prepare_if_dev()


def dbt_resource() -> DbtCliResource:
    # The venv's dbt by path: the code location may run without the venv's bin on PATH.
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(PROFILES_DIR),
        target=dbt_target(),
        dbt_executable=dbt_executable(),
    )
