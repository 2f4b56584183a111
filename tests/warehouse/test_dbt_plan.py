"""What dbt runs for each kind of build, and which model definitions a deploy changed (no servers
needed)."""

import datetime as dt
import json
import re

import pytest
from dbt.artifacts.resources.base import FileHash
from dbt_common.clients.system import load_file_contents

from orchestration.defs.warehouse.build_date import (
    BUILD_DATE_ENV,
    build_date,
    build_date_macros,
    date_relative_models,
)
from orchestration.defs.warehouse.dbt_environment import MANIFEST
from orchestration.defs.warehouse.dbt_graph import models_downstream_of
from orchestration.defs.warehouse.dbt_plan import complete_plan, incremental_plan, unaffected_models
from orchestration.defs.warehouse.model_definitions import (
    PROJECT,
    SEED,
    STALE,
    DefinitionChanges,
    current_definitions,
    model_checksums,
    own_project_row,
    project_checksum,
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
    # dbt matches *.sql and *.py without regard to case: this is a model too
    (tmp_path / "dbt" / "models" / "fct_tags.SQL").write_text("select 1 as tag_id\n")
    checksums = model_checksums(tmp_path)
    assert set(checksums) == {"stg_tags", "mart", "fct_tags"}
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


def test_without_a_refresh_mark_changed_definitions_are_built_whole():
    """Definitions recorded but no mark (its insert failed after theirs, or it was removed): the
    complete build must not run a changed incremental model incrementally and record it as applied."""
    recorded = {"stg_deposits": "a", "fct_deposits": "b"}
    changes = DefinitionChanges({**recorded, "fct_deposits": "b2"}, recorded)
    plan = incremental_plan(None, definitions=changes)
    assert plan.arguments == ("build", "--full-refresh") and "fct_deposits" in plan.reason
    assert plan.covers_all_changes and plan.definitions.to_record() == {"fct_deposits": "b2"}
    # Nothing changed, or nothing recorded yet: the first build as before.
    assert incremental_plan(None, definitions=DefinitionChanges(recorded, recorded)).arguments == ("build",)
    assert incremental_plan(None, definitions=DefinitionChanges(recorded, {})).arguments == ("build",)


def test_a_complete_build_applies_every_changed_definition():
    recorded = {"stg_deposits": "a", "mart": "c"}
    changes = DefinitionChanges({**recorded, "mart": "c2"}, recorded)
    plan = complete_plan(full_refresh=True, definitions=changes)
    assert plan.covers_all_changes and plan.definitions.to_record() == {"mart": "c2"}
    # A --select build records nothing: it may leave a changed model's downstream as it was.
    assert not complete_plan(select=["mart"], definitions=changes).covers_all_changes


def _project(root):
    (root / "dbt_project.yml").write_text(
        'name: p\nmodel-paths: ["dbt/models"]\nmacro-paths: ["dbt/macros"]\n'
    )
    (root / "dbt" / "models").mkdir(parents=True)
    (root / "dbt" / "macros").mkdir(parents=True)
    (root / "dbt" / "models" / "mart.sql").write_text("select {{ ratio('a', 'b') }} as r\n")
    (root / "dbt" / "models" / "_models.yml").write_text("models: [{name: mart}]\n")
    (root / "dbt" / "macros" / "ratio.sql").write_text(
        "{% macro ratio(a, b) %}{{ a }} / {{ b }}{% endmacro %}\n"
    )
    return root


def test_the_project_wide_definition_is_what_no_models_file_holds(tmp_path):
    root = _project(tmp_path)
    before = project_checksum(root)
    assert project_checksum(root) == before  # stable
    assert current_definitions(root) == {"mart": f"./{model_checksums(root)['mart']}", PROJECT: before}
    (root / "dbt" / "models" / "mart.sql").write_text("select 2 as r\n")  # a model's own definition
    assert project_checksum(root) == before
    seen = {before}
    for path, text in [
        # doc blocks: dbt_project.yml persists descriptions as ClickHouse comments
        ("dbt/models/notes.md", "{% docs mart %}The mart.{% enddocs %}\n"),
        ("dbt/macros/more_notes.md", "{% docs r %}A ratio.{% enddocs %}\n"),
        (".dbtignore", "dbt/models/old/\n"),  # which files dbt reads at all
        ("dbt/models/_models.yml", "models: [{name: mart, config: {contract: {enforced: true}}}]\n"),
        ("dbt/macros/ratio.sql", "{% macro ratio(a, b) %}{{ a }} / nullif({{ b }}, 0){% endmacro %}\n"),
        ("dbt/macros/new.sql", "{% macro new() %}1{% endmacro %}\n"),
        ("dbt/models/staging/_sources.yaml", "sources: []\n"),
        ("dbt/models/_configs.YML", "models: [{name: mart, config: {materialized: view}}]\n"),
        # dbt reads schema files under every resource path (dbt's defaults here), and functions are
        # called by models as macros are
        ("tests/_patches.yml", "models: [{name: mart, config: {materialized: table}}]\n"),
        ("snapshots/_snapshots.yml", "models: [{name: mart, config: {enabled: true}}]\n"),
        ("functions/double_it.sql", "x * 2\n"),
        (
            "dbt_project.yml",
            'name: p\nmodel-paths: ["dbt/models"]\nmacro-paths: ["dbt/macros"]\nvars: {x: 1}\n',
        ),
        ("packages.yml", "packages: []\n"),
        ("package-lock.yml", "packages: []\n"),
    ]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
        checksum = project_checksum(root)
        assert checksum not in seen, path
        seen.add(checksum)
    # Files dbt does not read define nothing: an editor's autosave, what .dbtignore ignores.
    (root / "dbt" / "macros" / "#ratio.sql#").write_text("{% macro ratio(a, b) %}0{% endmacro %}\n")
    (root / "dbt" / "models" / "old").mkdir()
    (root / "dbt" / "models" / "old" / "_old.yml").write_text("models: [{name: old}]\n")
    assert project_checksum(root) == checksum  # (the last one seen)
    # The same files under other names are another definition (each file counts by its path).
    (root / "dbt" / "macros" / "new.sql").rename(root / "dbt" / "macros" / "renamed.sql")
    assert project_checksum(root) not in seen
    # The reserved name cannot be a model's (a model is named by its file, and "/" is in no file name).
    assert "/" in PROJECT and "/" in own_project_row("mart")


def test_a_model_moved_unchanged_to_another_folder_has_changed(tmp_path):
    """dbt_project.yml configures models by folder (schema, materialization): the same file in
    another folder is built elsewhere or otherwise, and what reads it reads it there."""
    root = _project(tmp_path)
    before, checksum = current_definitions(root), model_checksums(root)["mart"]
    (root / "dbt" / "models" / "staging").mkdir()
    (root / "dbt" / "models" / "mart.sql").rename(root / "dbt" / "models" / "staging" / "mart.sql")
    after = current_definitions(root)
    assert model_checksums(root)["mart"] == checksum and after[PROJECT] == before[PROJECT]
    assert after["mart"] == f"staging/{checksum}"
    changes = DefinitionChanges(after, before)
    assert changes.changed == ("mart",) and not changes.project_changed


def test_a_project_wide_change_makes_every_model_changed_once():
    models = {"stg_deposits": "a", "fct_deposits": "b", "mart": "c", "stg_tags": "d"}
    recorded = {**models, PROJECT: "p"}
    changes = DefinitionChanges({**models, PROJECT: "p2"}, recorded)
    assert changes.project_changed and changes.changed == ("fct_deposits", "mart", "stg_deposits", "stg_tags")
    # One --full-refresh run of the whole project (no selection), views included; with or without
    # changed tables, and in Dagster (nothing to exclude).
    plan = incremental_plan([], definitions=changes)
    assert plan.arguments == ("run", "--full-refresh") and "project-wide" in plan.reason
    assert incremental_plan(["deposits"], dbt_vars="{}", definitions=changes).arguments == (
        "run",
        "--full-refresh",
        "--vars",
        "{}",
    )
    assert incremental_plan([], manifest=_manifest(), definitions=changes).arguments == (
        "run",
        "--full-refresh",
    )
    assert plan.definitions.to_record() == {**models, PROJECT: "p2"}
    # Once recorded, the next build has nothing to do.
    assert incremental_plan(
        [], definitions=DefinitionChanges({**models, PROJECT: "p2"}, {**models, PROJECT: "p2"})
    ).skip
    # A changed model alone is still just that model and its downstream.
    one = DefinitionChanges({**models, "mart": "c2", PROJECT: "p"}, recorded)
    assert not one.project_changed and one.to_record() == {"mart": "c2"}
    assert incremental_plan([], definitions=one).arguments == ("run", "--full-refresh", "--select", "mart+")
    # Models recorded before the project-wide row existed: taken as built, and recorded.
    upgraded = DefinitionChanges({**models, PROJECT: "p2"}, models)
    assert upgraded.changed == () and upgraded.to_record() == {PROJECT: "p2"}


def test_a_model_built_apart_has_its_own_project_wide_record():
    """The KPI mart: Dagster's hourly op builds every other model, the KPI op the mart alone. Neither
    records a definition as applied to a model it did not build."""
    others = {"stg_deposits": "a", "fct_deposits": "b", "stg_tags": "d"}
    recorded = {**others, "mart": "c", PROJECT: "p", own_project_row("mart"): "p"}
    everything = DefinitionChanges(
        {**others, "mart": "c", PROJECT: "p2"}, recorded, apart=frozenset({"mart"})
    )
    assert everything.changed == ("fct_deposits", "mart", "stg_deposits", "stg_tags")
    assert everything.to_record() == {**others, "mart": "c", PROJECT: "p2", own_project_row("mart"): "p2"}

    hourly = everything.within(others)
    assert hourly.to_record() == {**others, PROJECT: "p2"}  # not the mart's rows
    recorded = {**recorded, **hourly.to_record()}
    # (``funnelhouse build``, which builds every model, now has the mart alone to apply)
    build = DefinitionChanges(everything.current, recorded, apart=everything.apart)
    assert incremental_plan([], definitions=build).arguments == ("run", "--full-refresh", "--select", "mart+")
    kpi = DefinitionChanges(everything.current, recorded, apart=everything.apart).within(["mart"])
    assert kpi.changed == ("mart",)  # still to be applied to the mart
    kpi_plan = complete_plan(full_refresh=bool(kpi.changed), definitions=kpi)
    assert kpi_plan.full_refresh and kpi_plan.definitions.to_record() == {
        "mart": "c",
        own_project_row("mart"): "p2",
    }
    recorded = {**recorded, **kpi.to_record()}
    assert DefinitionChanges(everything.current, recorded, apart=everything.apart).changed == ()

    # A build that applies a definition the mart reads but leaves the mart out records it as stale:
    # the mart's own build then counts it as changed, and records it back.
    fact = DefinitionChanges({**everything.current, "fct_deposits": "b2"}, recorded, apart=everything.apart)
    left = fact.within(others).leaving_out(["mart"])
    assert left.changed == ("fct_deposits",) and left.to_record() == {"fct_deposits": "b2", "mart": STALE}
    recorded = {**recorded, **left.to_record()}
    kpi = DefinitionChanges(fact.current, recorded, apart=fact.apart).within(["mart"])
    assert kpi.changed == ("mart",) and kpi.to_record() == {"mart": "c"}

    # Nothing recorded for the mart yet (its job never recorded it): taken as built, not rebuilt.
    first = DefinitionChanges(everything.current, {**others, PROJECT: "p2"}, apart=everything.apart)
    assert first.within(["mart"]).first_record and first.within(["mart"]).changed == ()
    assert first.within(["mart"]).to_record() == {"mart": "c", own_project_row("mart"): "p2"}


def test_only_the_models_dbt_reads_are_models(tmp_path):
    """.dbtignore and dbt's own rule (no file beginning with "." "#" "~") decide which files are
    models: an ignored copy of a model is no model, and no second file of the same name."""
    root = _project(tmp_path)
    (root / "dbt" / "models" / "old").mkdir()
    (root / "dbt" / "models" / "old" / "mart.sql").write_text("select 0 as r\n")  # the old one, kept
    (root / "dbt" / "models" / ".#mart.sql").write_text("an editor's lock file\n")
    (root / ".dbtignore").write_text("dbt/models/old/\n")
    assert current_definitions(root)["mart"] == f"./{model_checksums(root)['mart']}"
    assert set(model_checksums(root)) == {"mart"}


def _profiles(directory, local_settings="join_use_nulls: 1", password="{{ env_var('PW') }}"):
    directory.mkdir(exist_ok=True)
    (directory / "profiles.yml").write_text(
        f"""# comments are no setting
p:
  target: "{{{{ env_var('DBT_TARGET', 'local') }}}}"
  outputs:
    local: &embedded
      type: clickhouse
      host: "{{{{ env_var('HOST', '127.0.0.1') }}}}"
      password: "{password}"
      schema: marts
      threads: 4
      custom_settings:
        {local_settings}
    ci: *embedded
    prod:
      type: clickhouse
      password: "{{{{ env_var('PW') }}}}"
      schema: marts
      custom_settings: {{join_use_nulls: 1}}
"""
    )
    return directory


def test_the_settings_of_the_profiles_target_in_use_are_project_wide(tmp_path, monkeypatch):
    """custom_settings (join_use_nulls: NULL or 0 for a missing match) change what models compute.
    Only the target in use counts, as written (env_var() calls, not their values), without the keys
    that only say how to connect: a rotated password or more threads are no deploy, and no secret
    is ever hashed."""
    (tmp_path / "project").mkdir()
    root = _project(tmp_path / "project")
    (root / "dbt_project.yml").write_text((root / "dbt_project.yml").read_text() + "profile: p\n")
    profiles = _profiles(tmp_path / "profiles")
    before = project_checksum(root, (profiles, "local"))
    assert project_checksum(root, (profiles, "ci")) == before  # the same output (a YAML alias)
    # prod's output differs only in how it connects: the same settings
    assert project_checksum(root, (profiles, "prod")) == before
    _profiles(profiles, local_settings="join_use_nulls: 0")
    assert project_checksum(root, (profiles, "local")) != before
    assert project_checksum(root, (profiles, "prod")) == before  # another target's change: not ours
    _profiles(profiles, local_settings="join_use_nulls: 1\n        session_timezone: UTC")
    assert project_checksum(root, (profiles, "local")) != before
    # a literal password (written in the file: neither hashed nor recorded), threads, comments
    _profiles(profiles, password="s3cret")
    text = (profiles / "profiles.yml").read_text().replace("threads: 4", "threads: 8")
    (profiles / "profiles.yml").write_text(text.replace("# comments", "# other comments"))
    assert project_checksum(root, (profiles, "local")) == before
    # By default: the profile of the builds' dbt processes (DBT_PROFILES_DIR, DBT_TARGET).
    monkeypatch.setenv("DBT_PROFILES_DIR", str(profiles))
    monkeypatch.setenv("DBT_TARGET", "prod")
    _profiles(profiles, local_settings="join_use_nulls: 0")
    assert project_checksum(root) == project_checksum(root, (profiles, "prod")) == before
    monkeypatch.setenv("DBT_TARGET", "local")
    assert current_definitions(root)[PROJECT] == project_checksum(root, (profiles, "local")) != before


def test_a_versioned_model_is_one_model_named_by_its_yaml(tmp_path):
    """dbt names a versioned model by its YAML (``dim_c``, versions in dim_c_v1.sql, dim_c_v2.sql and
    a ``defined_in`` file): a change to any version's file is a change of ``dim_c``, selected as dbt
    selects it (``dim_c+``: every version), and found in dbt's graph by its name."""
    root = _project(tmp_path)
    models = root / "dbt" / "models"
    (models / "staging").mkdir()
    (models / "dim_c_v1.sql").write_text("select 1 as c\n")
    (models / "staging" / "dim_c_v2.sql").write_text("select 2 as c\n")
    (models / "dim_c_newest.sql").write_text("select 3 as c\n")
    (models / "_dim_c.yml").write_text(
        "models:\n  - name: dim_c\n    versions:\n      - v: 1\n      - v: 2\n"
        "      - {v: 3, defined_in: dim_c_newest}\n"
    )
    before = current_definitions(root)
    assert set(before) == {"dim_c", "mart", PROJECT}
    (models / "dim_c_newest.sql").write_text("select 4 as c\n")
    changes = DefinitionChanges(current_definitions(root), before)
    assert changes.changed == ("dim_c",)
    assert incremental_plan([], definitions=changes).arguments == (
        "run",
        "--full-refresh",
        "--select",
        "dim_c+",
    )
    # Inside Dagster: dbt's graph has a node per version, each named dim_c.
    manifest = {
        "metadata": {"project_name": "p"},
        "nodes": {
            **{f"model.p.dim_c.v{v}": {"name": "dim_c", "resource_type": "model"} for v in (1, 2, 3)},
            "model.p.mart": {"name": "mart", "resource_type": "model"},
            "model.p.other": {"name": "other", "resource_type": "model"},
        },
        "child_map": {"model.p.dim_c.v3": ["model.p.mart"]},
    }
    assert models_downstream_of(manifest, [], changes.changed) == {"dim_c", "mart"}
    assert incremental_plan([], manifest=manifest, definitions=changes).arguments == (
        "run",
        "--full-refresh",
        "--exclude",
        "other",
    )


def test_a_changed_seed_is_loaded_with_the_models_reading_it(tmp_path):
    """The hourly ``dbt run`` loads no seed: a changed (or new) seed makes the plan a ``dbt build``
    of it and its downstream, whole, still without tests; in Dagster the models' op loads it."""
    root = _project(tmp_path)
    (root / "seeds" / "rates").mkdir(parents=True)
    (root / "seeds" / "rates" / "fx_rates.csv").write_text("currency,rate\nUSD,7.1\n")
    before = current_definitions(root)
    assert before["fx_rates"].startswith(SEED) and "mart" in before
    (root / "seeds" / "rates" / "fx_rates.csv").write_text("currency,rate\nUSD,7.2\n")
    changes = DefinitionChanges(current_definitions(root), before)
    assert changes.changed == changes.changed_seeds == ("fx_rates",)
    plan = incremental_plan(["deposits"], definitions=changes)
    assert plan.arguments == (
        "build",
        "--full-refresh",
        "--select",
        "source:crm.deposits+ fx_rates+",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
    )
    assert plan.definitions.to_record() == {"fx_rates": changes.current["fx_rates"]}
    assert incremental_plan([], with_tests=True, definitions=changes).arguments == (
        "build",
        "--full-refresh",
        "--select",
        "fx_rates+",
    )
    # Inside Dagster: the seed and the models reading it; the models' op (not the KPI mart's alone)
    # loads it.
    manifest = _manifest()
    manifest["nodes"]["seed.funnelhouse.fx_rates"] = {"name": "fx_rates", "resource_type": "seed"}
    manifest["nodes"]["seed.funnelhouse.holidays"] = {"name": "holidays", "resource_type": "seed"}
    manifest["child_map"]["seed.funnelhouse.fx_rates"] = ["model.funnelhouse.fct_deposits"]
    assert models_downstream_of(manifest, [], ["fx_rates"]) == {"fct_deposits", "mart"}
    changes = DefinitionChanges(
        {**changes.current, "fct_deposits": "b"},
        {**changes.recorded, "fct_deposits": "b"},
        apart=frozenset({"mart"}),
    )
    models_op = changes.within(["stg_deposits", "fct_deposits", "stg_tags"])
    assert models_op.changed == ("fx_rates",)
    assert incremental_plan([], manifest=manifest, definitions=models_op).arguments == (
        "build",
        "--full-refresh",
        "--exclude",
        "holidays stg_deposits stg_tags",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
    )
    # The KPI op (the mart alone, built apart) neither loads the seed nor records it; the models' op
    # records the mart as stale when the seed reaches it (dbt_assets.py).
    assert changes.within(["mart"]).changed == () and not changes.within(["mart"]).seeds


def _dated_manifest() -> dict:
    """``_manifest`` with the build date's macros: mart calls in_period (-> reporting_periods ->
    as_of_date), spine calls as_of_date and kpi reads spine; fct_deposits calls a macro of no date."""
    manifest = _manifest()
    macros = {
        "as_of_date": [],
        "reporting_periods": ["macro.funnelhouse.as_of_date"],
        "in_period": ["macro.funnelhouse.reporting_periods"],
        "safe_ratio": [],
    }
    manifest["macros"] = {
        f"macro.funnelhouse.{name}": {"depends_on": {"macros": calls}} for name, calls in macros.items()
    }
    calls = {
        "mart": ["macro.funnelhouse.in_period", "macro.funnelhouse.safe_ratio"],
        "fct_deposits": ["macro.funnelhouse.safe_ratio", "macro.dbt.run_query"],
        "spine": ["macro.funnelhouse.as_of_date"],
        "kpi": [],
    }
    for name, macros_called in calls.items():
        manifest["nodes"][f"model.funnelhouse.{name}"] = {
            "name": name,
            "resource_type": "model",
            "depends_on": {"macros": macros_called},
        }
    manifest["child_map"]["model.funnelhouse.spine"] = ["model.funnelhouse.kpi"]
    return manifest


def _no_manifest_needed():
    raise AssertionError("the manifest was read although the build date did not move")


def test_after_the_build_date_moved_the_date_relative_models_are_built_with_their_downstream(monkeypatch):
    monkeypatch.setenv(BUILD_DATE_ENV, "2026-03-31")
    manifest = _dated_manifest()
    assert date_relative_models(manifest) == {"mart", "spine"}  # through two macros, or directly
    yesterday_late = dt.datetime(2026, 3, 30, 23, 59)  # the refresh mark, naive UTC
    moved = "build date moved from 2026-03-30 to 2026-03-31: date-relative models"
    # Nothing changed: `funnelhouse build` (the manifest read only now) selects them by name, views
    # still left out ...
    plan = incremental_plan([], refreshed_through=yesterday_late, project_manifest=lambda: manifest)
    assert plan.arguments == ("run", "--select", "mart+ spine+", "--exclude", "config.materialized:view")
    assert plan.reason == moved and plan.covers_all_changes
    # ... and Dagster's op (the same plan) excludes the others.
    plan = incremental_plan([], manifest=manifest, refreshed_through=yesterday_late)
    assert plan.arguments == (
        "run",
        "--exclude",
        "fct_deposits stg_deposits stg_tags config.materialized:view",
    )
    assert plan.reason == moved
    # With a changed table: both.
    plan = incremental_plan(["tags"], refreshed_through=yesterday_late, project_manifest=lambda: manifest)
    assert plan.arguments[:3] == ("run", "--select", "source:crm.tags+ mart+ spine+")
    assert plan.reason == f"changed: tags; {moved}"
    # A mark taken at 07:00 in Shanghai on the 31st is 23:00 UTC on the 30th.
    shanghai = dt.timezone(dt.timedelta(hours=8))
    plan = incremental_plan(
        [], manifest=manifest, refreshed_through=dt.datetime(2026, 3, 31, 7, tzinfo=shanghai)
    )
    assert plan.reason == moved


def test_on_the_build_date_of_the_last_build_nothing_more_is_selected(monkeypatch):
    monkeypatch.setenv(BUILD_DATE_ENV, "2026-03-31")
    today_early = dt.datetime(2026, 3, 31, 0, 0, 1)
    plan = incremental_plan([], refreshed_through=today_early, project_manifest=_no_manifest_needed)
    assert plan.skip
    assert "nor the build date" in plan.reason
    plan = incremental_plan(["tags"], manifest=_dated_manifest(), refreshed_through=today_early)
    assert plan.arguments == (
        "run",
        "--exclude",
        "fct_deposits kpi mart spine stg_deposits config.materialized:view",
    )
    assert "build date" not in plan.reason
    # A mark after the build date (a rebuild as of an earlier day): nothing rolls over either.
    monkeypatch.setenv(BUILD_DATE_ENV, "2026-03-01")
    assert incremental_plan([], refreshed_through=today_early, project_manifest=_no_manifest_needed).skip


def test_the_build_date_is_the_as_of_date_macros(monkeypatch):
    """var as_of_date, else FUNNELHOUSE_AS_OF_DATE, else the UTC day (dbt_project/macros/as_of_date.sql)."""
    monkeypatch.delenv(BUILD_DATE_ENV, raising=False)
    before = dt.datetime.now(dt.UTC).date()
    assert build_date() in {before, dt.datetime.now(dt.UTC).date()}
    monkeypatch.setenv(BUILD_DATE_ENV, "2026-03-31")
    assert build_date() == dt.date(2026, 3, 31)
    assert build_date('{"as_of_date": "2026-02-28"}') == dt.date(2026, 2, 28)
    assert build_date("{as_of_date: 2026-02-28, kpi_lookback_days: 3}") == dt.date(2026, 2, 28)
    assert build_date('{"kpi_lookback_days": 3}') == dt.date(2026, 3, 31)


@pytest.mark.skipif(not MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)")
def test_every_model_calling_a_build_date_macro_is_date_relative_or_downstream_of_one():
    """dbt records the macros a model calls as it renders the model at parse time: a call only in a
    branch not rendered then (``is_incremental()``, ``execute``) is missing from the manifest, and the
    model would keep the previous build date unless it reads a date-relative model."""
    manifest = json.loads(MANIFEST.read_text())
    names = {macro.rsplit(".", 1)[1] for macro in build_date_macros(manifest)}
    assert {"as_of_date", "by_build_date", "days_to_build_date", "in_period", "in_last_days"} <= names
    calls = re.compile(r"\b(" + "|".join(sorted(names)) + r")\s*\(")
    calling = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and calls.search(re.sub(r"{#.*?#}", "", node["raw_code"], flags=re.DOTALL))
    }
    dated = date_relative_models(manifest)
    reached = models_downstream_of(manifest, [], dated)
    assert "mart_kpi_employee_daily" in calling  # (its lookback: only when incremental)
    assert calling - reached == set()
    assert {"mart_customer_overview", "int_customers__conversation_summary", "int_dates__spine"} <= dated
