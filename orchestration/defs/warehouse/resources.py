"""The dbt project and CLI resource of the warehouse domain.

The manifest is never parsed at import time. ``prepare_if_dev()`` parses it under ``dagster dev``;
elsewhere it must exist already (``make venv`` / ``funnelhouse build`` run dbt, which writes it;
CI images run ``dagster-dbt project prepare-and-package``). Without one, the code location still
loads, with the replication assets only (see dbt_assets.py).
"""

from __future__ import annotations

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
dbt_project.prepare_if_dev()


def dbt_resource() -> DbtCliResource:
    # The venv's dbt by path: the code location may run without the venv's bin on PATH.
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(PROFILES_DIR),
        target=dbt_target(),
        dbt_executable=dbt_executable(),
    )
