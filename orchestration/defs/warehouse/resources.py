"""The dbt project and CLI resource of the warehouse domain.

The manifest is never parsed at import time. ``prepare_if_dev()`` parses it under ``dagster dev``;
elsewhere it must exist already: ``make manifest`` (``funnelhouse manifest``) parses it, and each dbt
command of ``funnelhouse build`` writes it; an image of the code location runs ``funnelhouse manifest``
with its deployment's variables (``dagster-dbt project prepare-and-package`` runs a bare ``dbt parse``,
which lacks the host and port the prod profile reads: parse_environment() derives them from
FUNNELHOUSE_CLICKHOUSE_URL). Without one, the code location still loads, with the replication assets
only (see dbt_assets.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from orchestration import bound_dbt
from orchestration.defs.warehouse.dbt_environment import (
    MANIFEST,
    PROFILES_DIR,
    REPO_ROOT,
    dbt_executable,
    dbt_target,
    parse_environment,
    scoped_environment,
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
# Only `dagster dev` parses here (prepare_if_dev does nothing elsewhere), and only then is dbt's
# environment built: it reads the ClickHouse address and password, which every other process loading
# the code location (the daemon, a run worker, `dagster definitions validate`) must not read at import,
# nor be stopped by when one cannot be read. The parse renders profiles.yml, whose prod target reads
# FUNNELHOUSE_CLICKHOUSE_HOST/_PORT/...: a deployment configured as README says
# (FUNNELHOUSE_CLICKHOUSE_URL) has them only as parse_environment() derives them, as for
# `funnelhouse manifest`. A URL it cannot read stops `dagster dev`'s load with the message naming it.
if dbt_project.preparer.using_dagster_dev():
    with scoped_environment(parse_environment()):
        dbt_project.prepare_if_dev()


class BoundDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, each dbt command bound to the process that starts it: its executable is
    funnelhouse-bound-dbt (orchestration/bound_dbt.py), told this process's pid. (dagster-dbt starts dbt
    from the thread calling ``cli``, the step's, which ends with the step, not before dbt: the thread
    PR_SET_PDEATHSIG follows, see orchestration/processes.py.)"""

    def cli(self, args, **kwargs):
        # DbtCliResource.cli takes no environment: its dbt process inherits this process's.
        with scoped_environment(bound_dbt.parent_environment()):
            return super().cli(args, **kwargs)


def dbt_resource() -> DbtCliResource:
    # The launcher by path, as it finds dbt: the code location may run without the venv's bin on PATH.
    return BoundDbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(PROFILES_DIR),
        target=dbt_target(),
        dbt_executable=bound_dbt.executable(),
    )
