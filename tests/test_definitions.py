"""The whole Dagster code location loads, as `dagster dev -w workspace.yaml` would load it."""

import os
import subprocess
import sys
from pathlib import Path

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


def _dagster_dev_loads_the_marts(tmp_path, **environment: str) -> None:
    """The code location imported as `dagster dev` imports it (it parses the dbt project then), in a
    process whose environment is only ``environment`` and the basics: it loads, with mart assets."""
    probe = (
        "from orchestration.definitions import defs; "
        "print(sum(1 for key in defs.resolve_asset_graph().get_all_asset_keys() if key.path[-1].startswith('mart_')))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DAGSTER_IS_DEV_CLI": "1",
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        **environment,
    }
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert int(loaded.stdout.split()[-1]) > 0


def test_dagster_dev_without_the_venv_on_path_still_loads_the_dbt_assets(tmp_path):
    """`dagster dev` parses the dbt project with a bare `dbt` from PATH; started as .venv/bin/dagster
    (as `make ui` does) the venv is not on PATH, and the code location must still find dbt."""
    _dagster_dev_loads_the_marts(tmp_path)


def test_dagster_dev_in_production_configured_by_url_loads_the_dbt_assets(tmp_path):
    """README's production setup (FUNNELHOUSE_ENV=prod, the ClickHouse address as
    FUNNELHOUSE_CLICKHOUSE_URL) under `dagster dev`: the parse renders the prod profile, which reads
    the host and port variables that only dbt's environment derives from the URL."""
    _dagster_dev_loads_the_marts(
        tmp_path,
        FUNNELHOUSE_HOME=str(tmp_path / "home"),
        FUNNELHOUSE_ENV="prod",
        FUNNELHOUSE_CLICKHOUSE_URL="https://clickhouse.example:8443",
        FUNNELHOUSE_CLICKHOUSE_USER="funnelhouse",
        FUNNELHOUSE_CLICKHOUSE_PASSWORD="not-used-by-a-parse",
    )


def test_the_workspace_validates_as_dagster_loads_it(tmp_path):
    """`dagster dev -w workspace.yaml` (make ui) loads the module and validates the whole asset graph,
    partition mappings included: importing ``defs`` in Python checks less."""
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    validated = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert validated.returncode == 0, (validated.stdout + validated.stderr)[-3000:]


def test_every_schedule_and_sensor_runs_once_the_daemon_does():
    """Reports are on by default, so everything they read must be too (refresh, KPI days, search)."""
    repository = defs.get_repository_def()
    assert len(repository.schedule_defs) >= 9 and len(repository.sensor_defs) >= 3
    stopped = [
        definition.name
        for definition in (*repository.schedule_defs, *repository.sensor_defs)
        if definition.default_status.value != "RUNNING"
    ]
    assert stopped == []


# A password with an unencoded '/' ends the address early: what the URL parser takes for the port is
# "pa" (environment._parse_url refuses it, naming the variable).
_MALFORMED_CLICKHOUSE_URL = "https://fh:pa/ss@ch.example:8443"
# Imports the code location as every process but `dagster dev` does (the daemon, a run worker), counting
# the reads of the ClickHouse settings (the only reader of its password) the import makes.
_COUNTING_PROBE = (
    "from orchestration import environment; read = []; real = environment.clickhouse_settings; "
    "environment.clickhouse_settings = lambda: read.append(1) or real(); "
    "from orchestration.definitions import defs; defs.get_repository_def(); print('settings read', len(read))"
)


def _import_code_location(tmp_path, probe: str, **environment: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FUNNELHOUSE_")}
    env.pop("DAGSTER_IS_DEV_CLI", None)
    env.update(FUNNELHOUSE_HOME=str(tmp_path / "home"), DBT_LOG_PATH=str(tmp_path / "logs"), **environment)
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)


def test_outside_dagster_dev_the_code_location_loads_without_reading_clickhouse_settings(tmp_path):
    """Only `dagster dev` parses the dbt project at import: the daemon and the run workers must neither
    read the ClickHouse password then (environment.py reads secrets when asked for) nor fail to load
    ingestion, reports, search and backups over a ClickHouse URL that cannot be read: only what uses
    ClickHouse fails, at run time, with the message naming the variable."""
    for url in ("https://clickhouse.example:8443", _MALFORMED_CLICKHOUSE_URL):
        loaded = _import_code_location(
            tmp_path,
            _COUNTING_PROBE,
            FUNNELHOUSE_ENV="prod",
            FUNNELHOUSE_CLICKHOUSE_URL=url,
            FUNNELHOUSE_CLICKHOUSE_PASSWORD="not-read-at-import",
        )
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert loaded.stdout.split()[-3:] == ["settings", "read", "0"], loaded.stdout


def test_under_dagster_dev_a_clickhouse_url_that_cannot_be_read_is_named(tmp_path):
    """`dagster dev` parses the dbt project with the environment `funnelhouse manifest` parses it with
    (dbt_environment.parse_environment): a URL it cannot take the host and port from stops the load with
    the error naming the variable, not a parse with defaults that every dbt step would then contradict."""
    failed = _import_code_location(
        tmp_path,
        "from orchestration.definitions import defs",
        DAGSTER_IS_DEV_CLI="1",
        DBT_TARGET_PATH=str(tmp_path / "target"),
        FUNNELHOUSE_CLICKHOUSE_URL=_MALFORMED_CLICKHOUSE_URL,
    )
    assert failed.returncode != 0
    assert "ConfigurationError: FUNNELHOUSE_CLICKHOUSE_URL has a port" in failed.stderr, failed.stderr[-2000:]
    assert "pa/ss" not in failed.stderr
    assert not (tmp_path / "target" / "manifest.json").exists()
