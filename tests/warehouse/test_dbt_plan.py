"""What dbt runs for each kind of build, and which model definitions a deploy changed (no servers
needed)."""

from dbt.artifacts.resources.base import FileHash
from dbt_common.clients.system import load_file_contents

from orchestration.defs.warehouse.dbt_plan import (
    DefinitionChanges,
    complete_plan,
    incremental_plan,
    model_checksums,
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


def test_a_models_checksum_is_dbts_of_its_file(tmp_path):
    (tmp_path / "dbt_project.yml").write_text('name: p\nmodel-paths: ["dbt/models"]\n')
    staging = tmp_path / "dbt" / "models" / "staging"
    staging.mkdir(parents=True)
    (staging / "stg_tags.sql").write_text("\n  select 1 as tag_id  \n\n")
    (staging / "_models.yml").write_text("models: []\n")  # not a model
    (tmp_path / "dbt" / "models" / "mart.sql").write_text("select * from {{ ref('stg_tags') }}\n")
    checksums = model_checksums(tmp_path)
    assert set(checksums) == {"stg_tags", "mart"}
    # what dbt itself puts in the manifest's checksum.checksum (the file's text, stripped)
    dbts = FileHash.from_contents(load_file_contents(str(staging / "stg_tags.sql"))).checksum
    assert checksums["stg_tags"] == dbts
    (staging / "stg_tags.sql").write_text("select 2 as tag_id")
    assert model_checksums(tmp_path)["stg_tags"] != dbts


def test_a_definition_changed_when_it_differs_from_the_one_built_or_is_new():
    recorded = {"stg_deposits": "a", "fct_deposits": "b", "mart": "c", "stg_tags": "d"}
    current = {**recorded, "stg_deposits": "a2", "stg_new": "e"}
    changes = DefinitionChanges(current, recorded)
    assert changes.changed == ("stg_deposits", "stg_new")
    assert changes.to_record() == {"stg_deposits": "a2", "stg_new": "e"}
    assert DefinitionChanges(recorded, recorded).changed == ()
    # A Dagster op counts only its own models.
    assert changes.within(["stg_deposits", "mart"]).changed == ("stg_deposits",)


def test_with_nothing_recorded_the_current_definitions_are_taken_as_built():
    """The first build after this existed, on a warehouse already built: no rebuild of every model."""
    current = {"stg_deposits": "a", "mart": "c"}
    first = DefinitionChanges(current, {})
    assert first.first_record and first.changed == ()
    plan = incremental_plan([], definitions=first)
    assert plan.skip and plan.definitions.to_record() == current  # recorded by the skipped build too
    assert (
        incremental_plan(["deposits"], definitions=first).arguments
        == incremental_plan(["deposits"]).arguments
    )


def test_changed_definitions_are_built_with_their_downstream_views_included_in_full():
    recorded = {"stg_deposits": "a", "fct_deposits": "b", "mart": "c", "stg_tags": "d"}
    view_changed = DefinitionChanges({**recorded, "stg_tags": "d2"}, recorded)
    # Nothing in raw changed: the deploy alone is built.
    plan = incremental_plan([], definitions=view_changed)
    assert plan.arguments == ("run", "--full-refresh", "--select", "stg_tags+")
    assert plan.covers_all_changes and plan.definitions.to_record() == {"stg_tags": "d2"}
    assert "stg_tags" in plan.reason
    plan = incremental_plan(["deposits"], dbt_vars='{"a": 1}', with_tests=True, definitions=view_changed)
    assert plan.arguments == (
        "build",
        "--full-refresh",
        "--select",
        "source:crm.deposits+ stg_tags+",
        "--vars",
        '{"a": 1}',
    )
    # Inside Dagster: the same models, as an exclude of the others (views no longer excluded).
    manifest = _manifest()
    assert incremental_plan([], manifest=manifest, definitions=view_changed).arguments == (
        "run",
        "--full-refresh",
        "--exclude",
        "fct_deposits mart stg_deposits",
    )
    fact_changed = DefinitionChanges({**recorded, "fct_deposits": "b2"}, recorded)
    assert models_downstream_of(manifest, [], ["fct_deposits"]) == {"fct_deposits", "mart"}
    assert incremental_plan(["tags"], manifest=manifest, definitions=fact_changed).arguments == (
        "run",
        "--full-refresh",
        "--exclude",
        "stg_deposits",
    )
    # Every model affected: no --exclude at all (an empty one would be an argument dbt rejects).
    assert incremental_plan(["deposits", "tags"], manifest=manifest, definitions=fact_changed).arguments == (
        "run",
        "--full-refresh",
    )


def test_a_complete_build_applies_every_changed_definition():
    recorded = {"stg_deposits": "a", "mart": "c"}
    changes = DefinitionChanges({**recorded, "mart": "c2"}, recorded)
    plan = complete_plan(full_refresh=True, definitions=changes)
    assert plan.covers_all_changes and plan.definitions.to_record() == {"mart": "c2"}
    # A --select build records nothing: it may leave a changed model's downstream as it was.
    assert not complete_plan(select=["mart"], definitions=changes).covers_all_changes
