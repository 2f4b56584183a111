"""The warehouse domain's Dagster wiring: one lineage graph, tests as checks, jobs, schedules, sensor."""

import copy
import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ingestion.replication.tables import RAW_TABLES
from orchestration.defs.warehouse import dbt_assets as dbt_assets_module
from orchestration.defs.warehouse.dbt_environment import dbt_env, kpi_window_environment
from orchestration.defs.warehouse.replication_assets import WAREHOUSE_POOL, replication_assets
from orchestration.defs.warehouse.translator import WarehouseTranslator

REPO = Path(__file__).resolve().parents[2]


def test_replication_assets_follow_the_ingestion_assets():
    assert len(replication_assets) == len(RAW_TABLES) == 18
    for asset in replication_assets:
        (key,) = asset.keys
        assert key.path[0] == "raw"
        assert asset.asset_deps[key] == {dg.AssetKey(["crm", key.path[1]])}
        assert asset.op.pool == WAREHOUSE_POOL  # never beside another replication or a dbt run


def test_translator_maps_crm_sources_to_raw_assets_and_groups_by_folder():
    translator = WarehouseTranslator()
    source = {
        "resource_type": "source",
        "name": "deposits",
        "source_name": "crm",
        "fqn": ["funnelhouse", "crm"],
    }
    assert translator.get_asset_key(source) == dg.AssetKey(["raw", "deposits"])
    model = {
        "resource_type": "model",
        "name": "mart_funnel_daily",
        "fqn": ["funnelhouse", "marts", "reporting", "x"],
    }
    assert translator.get_asset_key(model) == dg.AssetKey(["mart_funnel_daily"])
    assert translator.get_group_name(model) == "marts_reporting"


LOOSE_MODEL = "mart_analyst_loose"


def _manifest_with_a_model_at_the_marts_root(target: Path) -> None:
    """The project's manifest, with a model added as dbt parses a file at the root of models/marts
    (an analyst's own model): its group is ``marts``, none of the folders' groups."""
    manifest = json.loads(dbt_assets_module.MANIFEST.read_text())
    model = copy.deepcopy(manifest["nodes"]["model.funnelhouse.mart_funnel_daily"])
    unique_id = f"model.funnelhouse.{LOOSE_MODEL}"
    model.update(
        unique_id=unique_id,
        name=LOOSE_MODEL,
        alias=LOOSE_MODEL,
        fqn=["funnelhouse", "marts", LOOSE_MODEL],
        path=f"marts/{LOOSE_MODEL}.sql",
        original_file_path=f"dbt_project/models/marts/{LOOSE_MODEL}.sql",
        contract={"enforced": False, "alias_types": True},
        columns={},
    )
    manifest["nodes"][unique_id] = model
    manifest["parent_map"][unique_id] = list(model["depends_on"]["nodes"])
    manifest["child_map"][unique_id] = []
    for parent in model["depends_on"]["nodes"]:
        manifest["child_map"][parent].append(unique_id)
    target.mkdir()
    (target / dbt_assets_module.MANIFEST.name).write_text(json.dumps(manifest))


@pytest.mark.skipif(
    not dbt_assets_module.MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)
def test_every_model_and_seed_is_built_by_the_warehouse_jobs_whatever_its_folder(tmp_path, monkeypatch):
    """A model in a folder of its own (the root of models/marts, a new folder) gets a group of its own:
    jobs selecting groups left it out, no job built it, and the hourly op, no longer running all of its
    models, never recorded its refresh mark. The jobs select every dbt asset instead; the KPI mart is
    its own job's."""
    from dagster_dbt import DbtProject

    from orchestration.defs.warehouse.checks import reconciliation_checks
    from orchestration.defs.warehouse.dbt_environment import PROFILES_DIR, dbt_target
    from orchestration.defs.warehouse.freshness_checks import replication_freshness_checks
    from orchestration.defs.warehouse.jobs import hourly_refresh_job, kpi_daily_job, nightly_full_build_job
    from orchestration.defs.warehouse.resources import dbt_resource

    target = tmp_path / "target"
    _manifest_with_a_model_at_the_marts_root(target)
    with_the_model = DbtProject(
        project_dir=REPO, profiles_dir=PROFILES_DIR, target=dbt_target(), target_path=target
    )
    monkeypatch.setattr(dbt_assets_module, "dbt_project", with_the_model)
    manifest = json.loads((target / dbt_assets_module.MANIFEST.name).read_text())
    translator = WarehouseTranslator()
    nodes = [node for node in manifest["nodes"].values() if node["resource_type"] in ("model", "seed")]
    assert translator.get_group_name(manifest["nodes"][f"model.funnelhouse.{LOOSE_MODEL}"]) == "marts"

    defs = dg.Definitions(
        assets=[*replication_assets, *dbt_assets_module.build_dbt_assets()],
        asset_checks=[*reconciliation_checks, *replication_freshness_checks],  # (the jobs name them)
        jobs=[hourly_refresh_job, nightly_full_build_job, kpi_daily_job],
        resources={"dbt": dbt_resource()},
    )
    every_node = {dg.AssetKey([node["name"]]) for node in nodes}
    kpi_mart = dg.AssetKey([dbt_assets_module.KPI_MART])
    for job in (hourly_refresh_job, nightly_full_build_job):
        selected = defs.resolve_job_def(job.name).asset_layer.executable_asset_keys
        assert every_node - {kpi_mart} <= selected, (
            f"{job.name} leaves out {every_node - {kpi_mart} - selected}"
        )
        assert kpi_mart not in selected
    assert defs.resolve_job_def(kpi_daily_job.name).asset_layer.executable_asset_keys == {kpi_mart}


@pytest.mark.skipif(
    not dbt_assets_module.MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)
def test_code_location_has_one_lineage_graph_from_landing_file_to_mart():
    from orchestration.definitions import defs

    repository = defs.get_repository_def()
    graph = repository.asset_graph
    assert graph.get(dg.AssetKey(["stg_crm__conversations"])).parent_keys == {
        dg.AssetKey(["raw", "conversations"])
    }
    assert (
        dg.AssetKey(["crm", "conversations"]) in graph.get(dg.AssetKey(["raw", "conversations"])).parent_keys
    )
    checks = {key.name for key in graph.asset_check_keys}
    assert {"matches_v_customer_overview", "matches_v_employee_performance"} <= checks
    assert any(name.startswith("unique_") for name in checks)  # dbt tests arrive as asset checks
    jobs = {job.name for job in repository.get_all_jobs()}
    assert {"warehouse_hourly_refresh", "warehouse_nightly_full_build", "warehouse_kpi_daily"} <= jobs
    assert {"warehouse_hourly_refresh_schedule", "warehouse_nightly_full_build_schedule"} <= {
        schedule.name for schedule in repository.schedule_defs
    }
    assert {definition.op.pool for definition in dbt_assets_module.build_dbt_assets()} == {WAREHOUSE_POOL}
    kpi = graph.get(dg.AssetKey(["mart_kpi_employee_daily"]))
    assert isinstance(kpi.partitions_def, dg.DailyPartitionsDefinition)


def test_code_location_loads_without_a_manifest(tmp_path):
    """A fresh clone has no dbt manifest: the location loads with replication only, never parsing dbt."""
    probe = (
        "from orchestration.definitions import defs; r = defs.get_repository_def(); "
        "print(sorted(j.name for j in r.get_all_jobs() if j.name.startswith('warehouse')))"
    )
    environment = {**os.environ, "DBT_TARGET_PATH": str(tmp_path / "no-target")}
    output = subprocess.run(
        [sys.executable, "-c", probe],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert output.strip().splitlines()[-1] == "['warehouse_hourly_refresh']"
    assert not (tmp_path / "no-target").exists()


def test_replication_asset_materializes(pg_dsn, clickhouse_env):
    from tests.fixtures.warehouse import load_fixture

    load_fixture(pg_dsn)
    customers = next(asset for asset in replication_assets if asset.key == dg.AssetKey(["raw", "customers"]))
    result = dg.materialize([customers])
    assert result.success
    (materialization,) = result.asset_materializations_for_node("raw__customers")
    assert materialization.metadata["live_rows"].value == 4


def test_the_instance_settings_limit_the_warehouse_pool_to_one_run(tmp_path, monkeypatch):
    """`make ui` starts Dagster on devstack/dagster.yaml: one run at a time holds the warehouse pool."""
    (tmp_path / "dagster.yaml").write_bytes((REPO / "devstack" / "dagster.yaml").read_bytes())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1 and pools.pool_granularity.value == "run"


@pytest.mark.skipif(
    not dbt_assets_module.MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)
def test_kpi_schedule_follows_today_hourly_and_each_run_completes_the_day_before():
    """Reports read the KPI mart late in the UTC day: it must not hold the day as one early run saw it,
    and the day a month ends must be rebuilt once complete although the next run is in a new month."""
    from orchestration.definitions import defs

    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("warehouse_kpi_daily_schedule")
    assert schedule.cron_schedule == "45 * * * *"
    at = dt.datetime(2026, 11, 1, 0, 45, tzinfo=dt.UTC)
    with (
        dg.instance_for_test() as instance,  # (the tick looks for a KPI run of today not ended yet)
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=at, repository_def=repository
        ) as context,
    ):
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-01"
    window = dbt_assets_module.KPI_PARTITIONS.time_window_for_partition_key(request.partition_key)
    assert dbt_assets_module.kpi_window_vars(window) == {
        "kpi_start_date": "2026-10-31",
        "kpi_end_date": "2026-11-01",
    }


def test_only_a_kpi_run_reaching_the_refreshed_days_moves_the_kpi_mark():
    """The hourly run of today's partition does; a backfill of older days (today's rows untouched) does
    not, or a report would count on KPI rows that no run built from the newer facts."""
    mark = dt.datetime(2026, 11, 1, 0, 15)
    hourly = dbt_assets_module.KPI_PARTITIONS.time_window_for_partition_key("2026-11-01")
    assert dbt_assets_module.reaches(dbt_assets_module.kpi_window_vars(hourly), mark)
    backfill = dg.TimeWindow(dt.datetime(2026, 9, 1, tzinfo=dt.UTC), dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
    assert not dbt_assets_module.reaches(dbt_assets_module.kpi_window_vars(backfill), mark)


def test_a_kpi_runs_dates_leave_the_environment_as_they_found_it(monkeypatch):
    """Dagster runs steps in process too (execute_in_process, the tests): a KPI run's dates must not
    reach the next dbt command of the process, and a date set beforehand comes back."""
    monkeypatch.setenv("FUNNELHOUSE_KPI_END_DATE", "2026-01-31")
    monkeypatch.delenv("FUNNELHOUSE_KPI_START_DATE", raising=False)
    with kpi_window_environment({"kpi_start_date": "2026-10-31", "kpi_end_date": "2026-11-01"}):
        assert os.environ["FUNNELHOUSE_KPI_START_DATE"] == "2026-10-31"
        assert os.environ["FUNNELHOUSE_KPI_END_DATE"] == "2026-11-01"
    assert "FUNNELHOUSE_KPI_START_DATE" not in os.environ
    assert os.environ["FUNNELHOUSE_KPI_END_DATE"] == "2026-01-31"


def test_kpi_dates_exported_outside_a_kpi_run_are_ignored_with_a_warning(monkeypatch, caplog):
    """FUNNELHOUSE_KPI_START_DATE / _END_DATE exported in a shell would make every build rebuild those
    days of the KPI mart instead of the changed ones: a dbt process gets them only from a KPI run's own
    window (whose dates win over the exported ones)."""
    monkeypatch.setenv("FUNNELHOUSE_KPI_START_DATE", "2020-01-01")
    base = {**os.environ, "FUNNELHOUSE_CLICKHOUSE_HOST": "clickhouse.example"}  # no local server asked
    with caplog.at_level(logging.WARNING):
        assert "FUNNELHOUSE_KPI_START_DATE" not in dbt_env(base)
    [warning] = [r.getMessage() for r in caplog.records if "FUNNELHOUSE_KPI_START_DATE" in r.getMessage()]
    assert "FUNNELHOUSE_KPI_START_DATE=2020-01-01" in warning and "KPI partition run" in warning

    with kpi_window_environment({"kpi_start_date": "2026-10-31", "kpi_end_date": "2026-11-01"}):
        env = dbt_env({**os.environ, "FUNNELHOUSE_CLICKHOUSE_HOST": "clickhouse.example"})
    assert (env["FUNNELHOUSE_KPI_START_DATE"], env["FUNNELHOUSE_KPI_END_DATE"]) == (
        "2026-10-31",
        "2026-11-01",
    )
