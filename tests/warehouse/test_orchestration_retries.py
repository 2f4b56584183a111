"""A dbt step's tests: a subset of the models (picked in the UI) runs the tests of those models, not
those of the models it leaves out; and a step whose tests failed, or whose model's SQL ClickHouse
refused, is not retried. The retry would run the whole build again (the nightly job's
--full-refresh three times over, the warehouse pool held throughout) to the same failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables
from orchestration.defs.warehouse import dbt_assets as dbt_assets_module
from tests.fixtures.warehouse import copy_of_the_dbt_project, load_fixture

pytestmark = pytest.mark.skipif(
    not dbt_assets_module.MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)

STAGED_EMPLOYEES = dg.AssetKey(["stg_crm__employees"])


@pytest.fixture
def dagster_dbt_runs(tmp_path, monkeypatch) -> Path:
    """Where the test's Dagster dbt steps leave their dbt folders: under a stack home of its own
    (the session's is every test's); returns that folder."""
    from orchestration.defs.warehouse.dbt_environment import dagster_dbt_runs

    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    return dagster_dbt_runs()


def test_every_step_that_should_retry_carries_its_policy_in_every_job():
    """The steps a transient failure may stop (replication, both dbt ops, the search index) retry in
    each job of the location that runs them, the implicit one of a materialisation from the UI too."""
    from dagster._core.definitions.dependency import NodeHandle

    from orchestration.definitions import defs
    from orchestration.defs.search import assets as search_assets
    from orchestration.defs.warehouse import replication_assets

    expected = {
        **{asset.node_def.name: replication_assets.RETRY for asset in replication_assets.replication_assets},
        "warehouse_dbt_models": dbt_assets_module.RETRY,
        dbt_assets_module.KPI_OP: dbt_assets_module.RETRY,
        "search__conversations_index": search_assets.RETRY,
    }
    found: dict[str, set] = {}
    for job in defs.get_repository_def().get_all_jobs():
        for node in job.graph.nodes:
            if node.name in expected:
                found.setdefault(node.name, set()).add(
                    job.get_retry_policy_for_handle(NodeHandle(node.name, None))
                )
    assert found.keys() == expected.keys()  # each step is in some job (a renamed one is not left out)
    wrong = {name: policies for name, policies in found.items() if policies != {expected[name]}}
    assert not wrong, f"steps running without their retry policy in some job: {wrong}"


def test_a_subset_runs_its_own_tests_and_is_not_retried_when_they_fail(
    pg_dsn, clickhouse_env, dbt_dirs, dagster_dbt_runs
):
    from orchestration.defs.warehouse.resources import dbt_resource

    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["employees"])
    # a second employee with employee 1's code: the unique test of the staged codes fails
    client = clickhouse_client()
    employee = client.query(f"select * from `{clickhouse_env}`.employees final where id = 1")
    twin = [1001, *employee.result_rows[0][1:]]
    client.insert(f"{clickhouse_env}.employees", [twin], column_names=list(employee.column_names))
    models = dbt_assets_module.build_dbt_assets()
    assert dbt_assets_module.RETRY.max_retries > 0  # (a step that retries at all)

    result = dg.materialize(
        models,
        selection=[STAGED_EMPLOYEES],
        resources={"dbt": dbt_resource()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    checks = {check.check_name: check.passed for check in result.get_asset_check_evaluations()}
    assert checks["unique_stg_crm__employees_employee_code"] is False  # the verdict still arrives
    # what dbt ran: not the relationships tests of the staged tables reading stg_crm__employees
    # (their models are not built here), whose errors would also have made the step retry
    ran = {  # test name (unique ids read test.<project>.<name>.<hash>) -> statuses
        node["unique_id"].split(".")[2]: node["status"]
        for invocation in dagster_dbt_runs.glob("warehouse_dbt_models-*/run_results.json")
        for node in json.loads(invocation.read_text())["results"]
    }
    assert not [name for name in ran if name.startswith("relationships_")]
    assert ran["unique_stg_crm__employees_employee_code"] == "fail"
    assert [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"] == []
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert "unique_stg_crm__employees_employee_code" in str(failure.event_specific_data.error_display_string)


def test_a_model_whose_sql_clickhouse_refuses_is_not_retried(
    pg_dsn, clickhouse_env, dbt_dirs, dagster_dbt_runs
):
    """A model selecting a column the raw table lacks (a deployed model ahead of its source) fails
    with ClickHouse's UNKNOWN_IDENTIFIER: the same on every attempt, so the step runs once."""
    from orchestration.defs.warehouse.resources import dbt_resource

    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["employees"])
    clickhouse_client().command(f"alter table `{clickhouse_env}`.employees drop column department")

    result = dg.materialize(
        dbt_assets_module.build_dbt_assets(),
        selection=[STAGED_EMPLOYEES],
        resources={"dbt": dbt_resource()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    (invocation,) = dagster_dbt_runs.glob("warehouse_dbt_models-*/run_results.json")  # dbt ran once
    assert [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"] == []
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    error = str(failure.event_specific_data.error_display_string)
    assert "not retried" in error
    assert "model.funnelhouse.stg_crm__employees failed with Database Error" in error
    assert "UNKNOWN_IDENTIFIER" in error  # and why


def _staged_employees_run_in(project: Path, monkeypatch) -> dg.ExecuteInProcessResult:
    """The staged employees' Dagster dbt step, its dbt run in ``project`` (a copy of the project,
    given the repository's manifest: the assets are those deployed before the copy's change)."""
    from dagster_dbt import DbtProject

    from orchestration.defs.warehouse.dbt_environment import MANIFEST, PROFILES_DIR, dbt_target
    from orchestration.defs.warehouse.resources import dbt_resource

    target = project / "dbt_project" / "target"
    target.mkdir()
    shutil.copy(MANIFEST, target / MANIFEST.name)
    in_the_copy = DbtProject(
        project_dir=project, profiles_dir=PROFILES_DIR, target=dbt_target(), target_path=target
    )
    monkeypatch.setattr(dbt_assets_module, "dbt_project", in_the_copy)
    return dg.materialize(
        dbt_assets_module.build_dbt_assets(),
        selection=[STAGED_EMPLOYEES],
        resources={"dbt": dbt_resource()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _retries_and_failure(result: dg.ExecuteInProcessResult) -> tuple[int, str]:
    retries = [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    return len(retries), str(failure.event_specific_data.error_display_string)


def test_a_deployed_model_dbt_cannot_parse_is_not_retried(
    pg_dsn, clickhouse_env, dbt_dirs, dagster_dbt_runs, tmp_path, monkeypatch
):
    """A Jinja syntax error stops dbt before it runs anything (no run_results.json): the same on every
    attempt, so the step runs once and says where the error is."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["employees"])
    project = copy_of_the_dbt_project(tmp_path)
    (project / "dbt_project/models/staging/crm/broken_jinja.sql").write_text("select {{ 1 + }} as x\n")

    result = _staged_employees_run_in(project, monkeypatch)
    assert not result.success
    assert list(dagster_dbt_runs.glob("warehouse_dbt_models-*/run_results.json")) == []  # dbt ran no node
    retries, error = _retries_and_failure(result)
    assert retries == 0
    assert "not retried" in error
    assert "the project failed with Compilation Error in model broken_jinja" in error
    assert "unexpected 'end of print statement'" in error


def test_a_model_dbt_cannot_compile_when_it_runs_is_not_retried(
    pg_dsn, clickhouse_env, dbt_dirs, dagster_dbt_runs, tmp_path, monkeypatch
):
    """A compilation error at run time (a macro raising while the model compiles): dbt records the
    node's error as "Compilation Error", which a retry meets again."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["employees"])
    project = copy_of_the_dbt_project(tmp_path)
    model = project / "dbt_project/models/staging/crm/stg_crm__employees.sql"
    model.write_text(
        "{% if execute %}{{ exceptions.raise_compiler_error('no employees today') }}{% endif %}\n"
        + model.read_text()
    )

    result = _staged_employees_run_in(project, monkeypatch)
    assert not result.success
    (invocation,) = dagster_dbt_runs.glob("warehouse_dbt_models-*/run_results.json")  # dbt ran once
    retries, error = _retries_and_failure(result)
    assert retries == 0
    assert "model.funnelhouse.stg_crm__employees failed with Compilation Error" in error
    assert "no employees today" in error
