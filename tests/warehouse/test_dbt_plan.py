"""What dbt runs for each kind of build (no servers needed)."""

from orchestration.defs.warehouse.dbt_plan import (
    complete_plan,
    incremental_plan,
    models_downstream_of,
    unaffected_models,
)


def _manifest() -> dict:
    """raw.deposits -> stg_deposits (view) -> fct_deposits -> mart; raw.tags -> stg_tags (view)."""
    models = ("stg_deposits", "fct_deposits", "mart", "stg_tags")
    return {
        "metadata": {"project_name": "funnelhouse"},
        "nodes": {f"model.funnelhouse.{name}": {"name": name, "resource_type": "model"} for name in models},
        "child_map": {
            "source.funnelhouse.crm.deposits": ["model.funnelhouse.stg_deposits"],
            "model.funnelhouse.stg_deposits": ["model.funnelhouse.fct_deposits", "test.funnelhouse.x"],
            "model.funnelhouse.fct_deposits": ["model.funnelhouse.mart"],
            "source.funnelhouse.crm.tags": ["model.funnelhouse.stg_tags"],
        },
    }


def test_nightly_and_selected_builds_run_everything_with_tests():
    assert complete_plan(full_refresh=True).arguments == ("build", "--full-refresh")
    selected = complete_plan(select=["mart_funnel_daily+"])
    assert selected.arguments == (
        "build",
        "--select",
        "mart_funnel_daily+",
        "--warn-error-options",
        '{"error": ["NoNodesForSelectionCriteria"]}',  # a selector matching nothing fails the build
    )
    assert not selected.covers_all_changes  # a partial build must not mark changes as built


def test_incremental_runs_downstream_of_changed_tables_only():
    assert incremental_plan(None).arguments == ("build",)  # never built: complete, with tests
    assert incremental_plan([]).skip
    plan = incremental_plan(["tags", "deposits"], dbt_vars='{"a": 1}')
    assert plan.arguments == (
        "run",
        "--select",
        "source:crm.deposits+ source:crm.tags+",
        "--exclude",
        "config.materialized:view",
        "--vars",
        '{"a": 1}',
    )


def test_with_tests_the_same_selection_is_built_and_tested():
    plan = incremental_plan(["deposits"], with_tests=True)
    assert plan.arguments == ("build", *incremental_plan(["deposits"]).arguments[1:])
    assert incremental_plan([], with_tests=True).skip


def test_inside_dagster_the_selection_is_an_exclude_of_the_unaffected_models():
    manifest = _manifest()
    assert models_downstream_of(manifest, ["deposits"]) == {"stg_deposits", "fct_deposits", "mart"}
    assert unaffected_models(manifest, ["deposits"]) == ["stg_tags"]
    plan = incremental_plan(["deposits"], manifest=manifest)
    assert plan.arguments == ("run", "--exclude", "stg_tags config.materialized:view")
