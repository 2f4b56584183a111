"""``funnelhouse build`` without Dagster: replication, then ``dbt build``, with a summary.

dbt runs as a child process (the venv's ``dbt``) so its logs stream to the terminal and a dbt crash
cannot take the caller down; the ClickHouse address reaches it through the environment only.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ingestion.replication.replicate import TableResult, replicate_tables
from orchestration import environment
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT, dbt_env, dbt_executable

MARTS = (
    "mart_customer_overview",
    "mart_employee_performance",
    "mart_manager_performance",
    "mart_kpi_employee_daily",
    "mart_funnel_daily",
    "mart_funnel_cohorts",
    "mart_script_performance",
    "mart_material_engagement",
    "mart_training_completion",
)


def marts_schema() -> str:
    return os.environ.get("FUNNELHOUSE_SCHEMA_PREFIX", "") + "marts"


def run_dbt(arguments: Sequence[str], log: Callable[[str], None] = print, env: dict | None = None) -> int:
    """Run one dbt command from the repository root, streaming its output to ``log``."""
    process = subprocess.Popen(
        [dbt_executable(), *arguments],
        cwd=REPO_ROOT,
        env=env or dbt_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        log(line.rstrip())
    return process.wait()


@dataclass
class BuildSummary:
    replication: list[TableResult] = field(default_factory=list)
    replication_seconds: float = 0.0
    dbt_seconds: float = 0.0
    dbt_exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.dbt_exit_code == 0

    @property
    def rows_copied(self) -> int:
        return sum(result.rows_copied for result in self.replication)


def build(
    *,
    full_refresh: bool = False,
    select: Sequence[str] = (),
    skip_replication: bool = False,
    dbt_vars: str | None = None,
    log: Callable[[str], None] = print,
) -> BuildSummary:
    summary = BuildSummary()
    if not skip_replication:
        started = time.perf_counter()
        summary.replication = replicate_tables(environment.pg_dsn(), full_refresh=full_refresh, log=log)
        summary.replication_seconds = time.perf_counter() - started
    arguments = ["build"]
    if full_refresh:
        arguments.append("--full-refresh")
    if select:
        arguments += ["--select", *select]
    if dbt_vars:
        arguments += ["--vars", dbt_vars]
    started = time.perf_counter()
    summary.dbt_exit_code = run_dbt(arguments, log=log)
    summary.dbt_seconds = time.perf_counter() - started
    return summary
