"""A deploy that changes a staging view and an incremental fact is applied by the next incremental
`funnelhouse build`, with nothing changed in raw: the view gets its new column, the fact is rebuilt
whole with it, and so is everything downstream. The deploy is written into a copy of the dbt project
(dbt's DBT_PROJECT_DIR), never into the repository's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ingestion.replication.connections import clickhouse_client
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import build, marts_schema
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT
from orchestration.defs.warehouse.dbt_plan import model_checksums, models_downstream_of

VIEW = "dbt_project/models/staging/crm/stg_crm__withdrawals.sql"
FACT = "dbt_project/models/marts/core/fct_withdrawals.sql"


def _copy_of_the_project(destination: Path) -> Path:
    shutil.copy(REPO_ROOT / "dbt_project.yml", destination / "dbt_project.yml")
    shutil.copytree(
        REPO_ROOT / "dbt_project",
        destination / "dbt_project",
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"),
    )
    return destination


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
    assert refresh_state.recorded_definitions(client, raw, marts) == model_checksums(REPO_ROOT)

    project = _copy_of_the_project(tmp_path)
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
    assert refresh_state.recorded_definitions(client, raw, marts) == model_checksums(project)
    assert build(**quiet).dbt_plan.skip
