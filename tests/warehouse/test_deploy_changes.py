"""A deploy that changes a staging view and an incremental fact is applied by the next incremental
`funnelhouse build`, with nothing changed in raw: the view gets its new column, the fact is rebuilt
whole with it, and so is everything downstream; a deployed seed is loaded with what reads it. In Dagster the KPI mart's own op applies the deploys
that reach the KPI mart, and each op records only the definitions of the models it built. The deploy
is written into a copy of the dbt project (dbt's DBT_PROJECT_DIR), never into the repository's
files."""

from __future__ import annotations

import json
from pathlib import Path

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import utc_now
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import build, marts_schema
from orchestration.defs.warehouse.dbt_assets import (
    DbtBuildConfig,
    _kpi_plan,
    _models_plan,
    _record_kpi_run,
    _record_models_run,
)
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT
from orchestration.defs.warehouse.dbt_graph import models_downstream_of
from orchestration.defs.warehouse.dbt_plan import incremental_plan
from orchestration.defs.warehouse.model_definitions import (
    PROJECT,
    STALE,
    current_definitions,
    model_checksums,
    own_project_row,
    project_checksum,
)
from orchestration.defs.warehouse.refresh_state import KPI_MART
from orchestration.defs.warehouse.resources import dbt_project
from tests.fixtures.warehouse import copy_of_the_dbt_project

VIEW = "dbt_project/models/staging/crm/stg_crm__withdrawals.sql"
FACT = "dbt_project/models/marts/core/fct_withdrawals.sql"
KPI_FILE = "dbt_project/models/marts/reporting/mart_kpi_employee_daily.sql"
MACRO = "dbt_project/macros/safe_ratio.sql"
SEED = "dbt_project/seeds/currency_names.csv"
SEED_READER = "dbt_project/models/intermediate/int_currency_names.sql"
# A project-wide deploy (a macro): every seed loaded again and every model rebuilt whole.
EVERY_SEED_AND_MODEL_REBUILT = (
    "build",
    "--full-refresh",
    "--resource-type",
    "seed",
    "--resource-type",
    "model",
)


def _applied_everywhere(project: Path) -> dict[str, str]:
    """What a build of every model records: each model, and the project-wide definition for the
    models and for the KPI mart (built apart in Dagster)."""
    return {**current_definitions(project), own_project_row(KPI_MART): project_checksum(project)}


def _deploy(project: Path) -> None:
    """The view gains a column; the incremental fact selects it (its old table lacks the column)."""
    view = project / VIEW
    view.write_text(
        view.read_text().replace(
            "        currency,\n", "        currency,\n        upper(currency) as currency_code,\n", 1
        )
    )
    fact = project / FACT
    fact.write_text(
        fact.read_text().replace("        currency,\n", "        currency,\n        currency_code,\n", 1)
    )


def test_the_next_incremental_build_applies_a_deploy(built_warehouse, clickhouse_env, tmp_path, monkeypatch):
    client, raw, marts = clickhouse_client(), clickhouse_env, marts_schema()
    core = marts.removesuffix("marts") + "core"
    quiet = {"skip_replication": True, "freshness": False, "log": lambda _line: None}

    # A warehouse built before definitions were recorded: its first build takes the current ones as
    # built, without rebuilding anything.
    first = build(**quiet)
    assert first.ok and first.dbt_plan.skip, first.dbt_plan
    assert refresh_state.recorded_definitions(client, raw, marts) == _applied_everywhere(REPO_ROOT)

    project = copy_of_the_dbt_project(tmp_path)
    _deploy(project)
    monkeypatch.setenv("DBT_PROJECT_DIR", str(project))
    # The copy's own target, so that its partial parse never reaches the next test's.
    target = tmp_path / "deploy-target"
    monkeypatch.setenv("DBT_TARGET_PATH", str(target))
    output: list[str] = []
    deployed = build(**{**quiet, "log": output.append})
    assert deployed.ok, "\n".join(output[-40:])
    arguments = deployed.dbt_plan.arguments
    assert arguments == ("run", "--full-refresh", "--select", "fct_withdrawals+ stg_crm__withdrawals+")

    # The view and the fact have the new column; the fact was rebuilt whole (every row has it).
    [(missing_codes, facts)] = client.query(
        f"select countIf(currency_code != upper(currency)), count() from `{core}`.fct_withdrawals"
    ).result_rows
    assert facts > 0 and missing_codes == 0
    view_columns = client.query(
        "select name from system.columns where database = {db:String} and table = 'stg_crm__withdrawals'",
        parameters={"db": marts.removesuffix("marts") + "staging"},
    ).result_rows
    assert ("currency_code",) in view_columns
    # What ran is the changed models and everything downstream of them, by dbt's own graph; the
    # checksums computed from the files are dbt's.
    manifest = json.loads((target / "manifest.json").read_text())
    results = json.loads((target / "run_results.json").read_text())["results"]
    run = {result["unique_id"].removeprefix("model.funnelhouse.") for result in results}
    assert run == models_downstream_of(manifest, [], ["stg_crm__withdrawals", "fct_withdrawals"])
    assert {
        node["name"]: node["checksum"]["checksum"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    } == model_checksums(project)

    # Recorded as built: the next build has nothing to do.
    assert refresh_state.recorded_definitions(client, raw, marts) == _applied_everywhere(project)
    assert build(**quiet).dbt_plan.skip

    # A seed deployed with a model reading it: the hourly `dbt run` loads no seed, so the next build
    # is a `dbt build` of the seed and what reads it (seeds and models only: no tests).
    (project / SEED).write_text("currency,currency_name\nUSD,US dollar\nCNY,Renminbi\n")
    (project / SEED_READER).write_text("select currency, currency_name from {{ ref('currency_names') }}\n")
    seeded = build(**{**quiet, "log": output.append})
    assert seeded.ok, "\n".join(output[-40:])
    assert seeded.dbt_plan.arguments == (
        "build",
        "--full-refresh",
        "--select",
        "currency_names+ int_currency_names+",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
    )
    results = json.loads((target / "run_results.json").read_text())["results"]
    assert {result["unique_id"] for result in results} == {
        "seed.funnelhouse.currency_names",
        "model.funnelhouse.int_currency_names",
    }
    assert client.query(f"select count() from `{core}`.int_currency_names").result_rows == [(2,)]
    assert refresh_state.recorded_definitions(client, raw, marts) == _applied_everywhere(project)
    assert build(**quiet).dbt_plan.skip

    # A rate added to the project's exchange-rate seed: the facts convert every movement with it, so the
    # next build reloads the seed and rebuilds whole what reads it (an incremental fact would convert
    # only the rows it appends); planned here, the run is dbt's as above.
    rates = project / "dbt_project/seeds/marts/core/fx_rates_to_usd.csv"
    rates.write_text(rates.read_text() + "EUR,2025-01-01,1.04\n")
    changes = refresh_state.definition_changes(client, raw, marts, project)
    assert changes.changed == changes.changed_seeds == ("fx_rates_to_usd",)
    assert incremental_plan([], definitions=changes).arguments == (
        "build",
        "--full-refresh",
        "--select",
        "fx_rates_to_usd+",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
    )
    manifest = json.loads((target / "manifest.json").read_text())
    assert {"fct_deposits", "fct_withdrawals", "mart_employee_performance", KPI_MART} <= models_downstream_of(
        manifest, [], ["fx_rates_to_usd"]
    )

    # A deploy of a macro alone changes no model's file: by the project-wide definition every model
    # (and seed) changed, and the next build is one --full-refresh build of all of them, seeds loaded
    # again (not run here: the cost of a full build; what runs is dbt's).
    _append(project, MACRO, "{# deployed #}\n")
    changes = refresh_state.definition_changes(client, raw, marts, project)
    assert changes.changed == tuple(sorted([*model_checksums(project), "currency_names", "fx_rates_to_usd"]))
    assert incremental_plan([], definitions=changes).arguments == EVERY_SEED_AND_MODEL_REBUILT


def _append(project: Path, relative: str, text: str) -> None:
    path = project / relative
    path.write_text(path.read_text() + text)


def test_in_dagster_the_kpi_op_applies_what_reaches_the_kpi_mart(clickhouse_env, tmp_path):
    """The decisions and records of Dagster's two dbt ops (the hourly models' op, the KPI op) after
    each kind of deploy, against the records in ClickHouse (the dbt runs are other tests' business:
    test_dagster_jobs runs the ops)."""
    client, raw, marts = clickhouse_client(), clickhouse_env, marts_schema()
    hourly = kpi_partition = DbtBuildConfig()
    old_days = {"kpi_start_date": "2024-01-01", "kpi_end_date": "2024-01-02"}  # a backfill: no KPI mark

    def recorded() -> dict[str, str]:
        return refresh_state.recorded_definitions(client, raw, marts)

    def recorded_for_the_others() -> dict[str, str]:
        kpi_rows = (KPI_MART, own_project_row(KPI_MART))
        return {name: checksum for name, checksum in recorded().items() if name not in kpi_rows}

    def kpi_op(project: Path) -> tuple[str, ...]:
        """The KPI op's arguments, and its records after a successful run."""
        plan = _kpi_plan(kpi_partition, client, project)
        _record_kpi_run(client, plan, old_days, refresh_state.last_refresh(client, raw, marts))
        return plan.arguments

    def models_op(project: Path) -> tuple[str, ...]:
        plan = _models_plan(hourly, client, project)  # (no raw table changed: the deploy alone)
        _record_models_run(client, plan, utc_now())
        return plan.arguments

    # First runs of both ops on a warehouse with nothing recorded: the definitions are taken as built,
    # each op recording its own models' (the KPI mart's are not the models' op's to record).
    assert models_op(REPO_ROOT) == ("build",)  # (no mark yet: a complete build)
    assert KPI_MART not in recorded() and own_project_row(KPI_MART) not in recorded()
    assert recorded() == {name: c for name, c in current_definitions(REPO_ROOT).items() if name != KPI_MART}
    assert kpi_op(REPO_ROOT) == ("build",)
    assert recorded() == _applied_everywhere(REPO_ROOT)
    assert refresh_state.last_kpi_refresh(client, raw, marts) is None  # an old partition moves no mark

    # A deploy of the KPI mart alone: the models' op has nothing of it to apply, the KPI op rebuilds
    # the mart whole, once, and records it (and its mark: the whole mart holds the models' mark).
    project = copy_of_the_dbt_project(tmp_path)
    _append(project, KPI_FILE, "-- deployed\n")
    models_recorded = recorded_for_the_others()
    assert models_op(project) == ()
    assert recorded()[KPI_MART] == current_definitions(REPO_ROOT)[KPI_MART]  # not claimed by the models' op
    assert kpi_op(project) == ("build", "--full-refresh")
    assert refresh_state.last_kpi_refresh(client, raw, marts) == refresh_state.last_refresh(
        client, raw, marts
    )
    assert recorded() == _applied_everywhere(project)
    assert recorded_for_the_others() == models_recorded
    assert kpi_op(project) == ("build",)

    # A deploy of a macro (project-wide): each op rebuilds its models whole; the models' op records
    # the project-wide row of its models, not the KPI mart's, which its own op then applies.
    _append(project, MACRO, "{# deployed #}\n")
    # every model (Dagster selects its own), and the seeds, loaded again (fx_rates_to_usd: the facts read it)
    assert models_op(project) == EVERY_SEED_AND_MODEL_REBUILT
    assert recorded()[PROJECT] == project_checksum(project)
    assert recorded()[own_project_row(KPI_MART)] != project_checksum(project)
    assert kpi_op(project) == ("build", "--full-refresh")
    assert recorded() == _applied_everywhere(project)
    assert kpi_op(project) == ("build",)

    # A deploy of a fact the KPI mart reads: the models' op applies it and records the KPI mart as
    # stale, so that the KPI op rebuilds the mart whole with it.
    _append(project, FACT, "-- deployed\n")
    assert models_downstream_of(
        json.loads(dbt_project.manifest_path.read_text()), [], ["fct_withdrawals"]
    ) >= {KPI_MART}
    assert models_op(project)[:3] == ("run", "--full-refresh", "--exclude")
    assert recorded()["fct_withdrawals"] == current_definitions(project)["fct_withdrawals"]
    assert recorded()[KPI_MART] == STALE
    assert kpi_op(project) == ("build", "--full-refresh")
    assert recorded() == _applied_everywhere(project)
    assert kpi_op(project) == ("build",)

    # Definitions recorded but no refresh mark (its insert failed after theirs, or it was removed):
    # the complete build that follows rebuilds whole, or it would run the changed fact incrementally
    # and record it as applied.
    client.command(f"truncate table `{raw}`.{refresh_state.REFRESH_TABLE}")
    _append(project, FACT, "-- deployed again\n")
    assert models_op(project) == ("build", "--full-refresh")
    assert recorded()["fct_withdrawals"] == current_definitions(project)["fct_withdrawals"]


DEPLOYED_MART = "dbt_project/models/marts/reporting/mart_funnel_daily.sql"


def test_a_dagster_run_of_some_models_records_neither_the_mark_nor_a_definition(
    built_warehouse, clickhouse_env, tmp_path, monkeypatch
):
    """`dagster asset materialize --select dim_employees` after a deploy of mart_funnel_daily runs dbt
    on dim_employees alone (dagster-dbt narrows dbt's selection to the assets asked for): the changed
    mart is not rebuilt, so neither the refresh mark (the reports wait for it) nor the mart's new
    definition may be recorded, or the next build would skip the mart and leave it as the old
    definition built it. The next build rebuilds it, and records both."""
    import dagster as dg
    from dagster_dbt import DbtCliResource

    from orchestration.defs.warehouse.dbt_assets import build_dbt_assets
    from orchestration.defs.warehouse.dbt_environment import PROFILES_DIR, dbt_executable, dbt_target

    client, raw, marts = clickhouse_client(), clickhouse_env, marts_schema()
    quiet = {"skip_replication": True, "freshness": False, "log": lambda _line: None}
    assert build(**quiet).dbt_plan.skip  # (the definitions as built: their first record)
    mark = refresh_state.last_refresh(client, raw, marts)
    old_definition = current_definitions(REPO_ROOT)["mart_funnel_daily"]

    project = copy_of_the_dbt_project(tmp_path)
    _append(project, DEPLOYED_MART, "-- deployed\n")
    monkeypatch.setenv("DBT_PROJECT_DIR", str(project))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "deploy-target"))
    dbt = DbtCliResource(
        project_dir=str(project),
        profiles_dir=str(PROFILES_DIR),
        target=dbt_target(),
        dbt_executable=dbt_executable(),
    )

    def materialize_dim_employees() -> None:
        result = dg.materialize(
            build_dbt_assets(),
            selection=[dg.AssetKey(["dim_employees"])],
            resources={"dbt": dbt},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        assert result.success, [str(e.event_specific_data) for e in result.all_events if e.is_failure]

    materialize_dim_employees()
    assert refresh_state.last_refresh(client, raw, marts) == mark
    assert refresh_state.recorded_definitions(client, raw, marts)["mart_funnel_daily"] == old_definition

    output: list[str] = []
    rebuilt = build(**{**quiet, "log": output.append})
    assert rebuilt.ok, "\n".join(output[-40:])
    assert rebuilt.dbt_plan.arguments == ("run", "--full-refresh", "--select", "mart_funnel_daily+")
    recorded = refresh_state.recorded_definitions(client, raw, marts)
    assert recorded["mart_funnel_daily"] == current_definitions(project)["mart_funnel_daily"]
    rebuilt_mark = refresh_state.last_refresh(client, raw, marts)
    assert rebuilt_mark > mark

    # Nothing to run now, but a run of some assets still moves no mark: only a run of every model does.
    materialize_dim_employees()
    assert refresh_state.last_refresh(client, raw, marts) == rebuilt_mark
