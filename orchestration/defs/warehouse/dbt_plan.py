"""What dbt runs for a build, decided from what replication changed and what a deploy changed.

* Complete build (nightly ``--full-refresh``, the first build of a set of models): ``dbt build`` of
  every model, data test and unit test.
* Explicit ``--select``: ``dbt build`` of that selection, tests included. A selector that matches
  nothing fails the build (dbt only warns, and would "succeed" having built nothing - a typo).
* Incremental (hourly): ``dbt run`` of the models downstream of the raw tables changed since the
  last successful build (``source:crm.<table>+``), once the UTC day rolled over also the
  date-relative models (build_date.py), and nothing at all when none of these. Data
  tests run nightly, not hourly: with 1% new rows nearly every source changes, and their ~200 tests
  would cost more than the models. ``with_tests`` (``funnelhouse build --test``) makes it a ``dbt
  build`` of the same selection: the selected models' and sources' tests run too. Contracts are
  still enforced, since they are checked when a model is built. Views are left out: a staging
  view reads raw at query time, so new rows reach it without a rebuild.
* A deploy that changed model definitions: the incremental plan also selects every model whose
  definition changed since the build that last applied it (``<model>+``: it and everything
  downstream; every model when the project-wide definition changed), views included, and runs with
  ``--full-refresh``. Without this the hourly runs kept
  the old view (a table reading a column the deploy added to it failed) or the old logic until the
  nightly build. Why ``--full-refresh``: a changed incremental model (the facts, the KPI mart) cannot
  be run incrementally - new columns are ignored or fail the run (``on_schema_change``), and changed
  logic would reach only the rows of this run, leaving every older row computed the old way; the
  same holds for an incremental model downstream of a changed view. dbt's flag is one for the whole
  invocation, and which changed definitions reach an incremental model needs the project's graph,
  which ``funnelhouse build`` does not have without a ``dbt parse`` (1-3 s on every hourly run). So
  the one run after such a deploy rebuilds every incremental model it selects whole (as the nightly
  build does). Views are not excluded in that run (dbt's ``--exclude`` wins over ``--select`` and
  has no "except the changed ones"), so the views downstream of the changed tables are recreated
  with it, which is cheap. Both paths (``funnelhouse build``, Dagster) select the same models. A
  complete build applies every definition.

Which definitions changed is model_definitions.py's to decide, the build date build_date.py's, and
what reads what dbt_graph.py's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from orchestration.defs.warehouse.build_date import BuildDateMove, build_date, held_build_date, refresh_mark
from orchestration.defs.warehouse.dbt_graph import SOURCE, models_downstream_of
from orchestration.defs.warehouse.model_definitions import DefinitionChanges

INCREMENTAL_EXCLUDE = "config.materialized:view"
# dbt's warning for a --select that matches no node, raised as an error for explicit selections.
SELECTION_MUST_MATCH = ("--warn-error-options", '{"error": ["NoNodesForSelectionCriteria"]}')
# What a ``dbt build`` that stands for an hourly run builds: no data or unit tests.
SEEDS_AND_MODELS = ("--resource-type", "seed", "--resource-type", "model")


@dataclass(frozen=True)
class DbtPlan:
    arguments: tuple[str, ...]  # the dbt command line; empty when there is nothing to run
    reason: str
    # A successful run covers every change so far, so the refresh mark may move to its start, and
    # the definitions it applied (``definitions.to_record()``) are recorded.
    covers_all_changes: bool = True
    definitions: DefinitionChanges = field(default_factory=DefinitionChanges)
    # The build date the date-relative models hold after a successful run of the plan, when not the
    # build's (None): a plan running nothing leaves them as of the date they were built as of, which
    # may be later than a day the caller gave (:func:`refresh_mark`).
    built_as_of: dt.date | None = None

    @property
    def skip(self) -> bool:
        return not self.arguments

    @property
    def full_refresh(self) -> bool:
        return "--full-refresh" in self.arguments

    def of_some_models(self) -> DbtPlan:
        """The plan as a run of only some of the models it was made for runs it (a Dagster run of
        some of its op's assets: dagster-dbt narrows the dbt selection to them): such a run covers no
        change, so it records neither the refresh mark nor a definition (``refresh_state.record_run``).
        A changed model it left out would stay as the old definition built it, and so would the
        models downstream of one it ran; recorded, the next build would skip them."""
        return replace(
            self,
            covers_all_changes=False,
            reason=f"{self.reason} (a run of some of the models: no refresh mark or definition recorded)",
        )

    def refresh_mark(self, moment: dt.datetime, dbt_vars: str | None = None) -> dt.datetime:
        """The mark a successful run of the plan records (:func:`refresh_mark`), with the build's date
        read as dbt read it (``dbt_vars``, the environment: call it while the build's date is pinned)."""
        return refresh_mark(moment, self.built_as_of or build_date(dbt_vars))


def with_vars(arguments: list[str], dbt_vars: str | None) -> tuple[str, ...]:
    return tuple(arguments + (["--vars", dbt_vars] if dbt_vars else []))


def complete_plan(
    *,
    full_refresh: bool = False,
    select: Sequence[str] = (),
    dbt_vars: str | None = None,
    reason: str = "",
    definitions: DefinitionChanges = DefinitionChanges(),  # noqa: B008 - frozen (immutable)
) -> DbtPlan:
    arguments = [
        "build",
        *(["--full-refresh"] if full_refresh else []),
        *(["--select", *select, *SELECTION_MUST_MATCH] if select else []),
    ]
    return DbtPlan(
        with_vars(arguments, dbt_vars),
        reason or ("full refresh" if full_refresh else "selected models" if select else "complete build"),
        covers_all_changes=not select,
        definitions=definitions,
    )


def changed_source_selectors(tables: Iterable[str]) -> list[str]:
    return [f"source:{SOURCE}.{table}+" for table in sorted(tables)]


def _given(manifest: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if manifest is None:
        raise ValueError("the build date moved: which models are date-relative needs the project's manifest")
    return manifest


def incremental_plan(
    changed_tables: Sequence[str] | None,
    dbt_vars: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    *,
    with_tests: bool = False,
    definitions: DefinitionChanges = DefinitionChanges(),  # noqa: B008 - frozen (immutable)
    refreshed_through: dt.datetime | None = None,
    project_manifest: Callable[[], Mapping[str, Any]] | None = None,
) -> DbtPlan:
    """``changed_tables`` None means the models were never built: build everything, tests included.
    Models whose definition changed (``definitions.changed``) are selected with their downstream,
    views included, and the run is a ``--full-refresh`` (see the module's doc). When the build date
    moved since the models' refresh mark ``refreshed_through``, the date-relative models are selected
    with their downstream too (:class:`BuildDateMove`), read from ``project_manifest()`` (by default
    ``manifest``).

    With a ``manifest`` (Dagster) the selection is written as an ``--exclude`` of the unaffected
    models instead of ``--select source:crm.<table>+ <model>+`` (see :func:`unaffected_models`)."""
    if changed_tables is None:
        # No refresh mark, yet definitions recorded and since changed (the mark's insert failed
        # after the definitions', or the mark was removed): the incremental models may exist, and a
        # plain build would run the changed ones incrementally and record them as applied. Such a
        # build is a --full-refresh (as the nightly one).
        reason = "first build of these models"
        if definitions.changed:
            reason += f"; definitions changed: {definitions.describe()}"
        return complete_plan(
            full_refresh=bool(definitions.changed), dbt_vars=dbt_vars, reason=reason, definitions=definitions
        )
    changed_models = definitions.changed
    date_move = BuildDateMove.since(
        refreshed_through, project_manifest or (lambda: _given(manifest)), dbt_vars
    )
    date_relative = date_move.models if date_move else ()
    if not changed_tables and not changed_models and not date_relative:
        return DbtPlan(
            (),
            "no raw table or model definition changed, nor the build date, since the last build",
            definitions=definitions,
            built_as_of=held_build_date(refreshed_through, dbt_vars),
        )
    views = [] if changed_models else [INCREMENTAL_EXCLUDE]
    # One argument per flag (dbt splits it on spaces): dagster-dbt moves only the first value after
    # --select/--exclude and would leave the others behind as stray positional arguments.
    if manifest is None and definitions.every_model_changed:
        selection = []  # (a project-wide change) no selection: every model
    elif manifest is None:
        selectors = [
            *changed_source_selectors(changed_tables),
            *(f"{model}+" for model in sorted({*changed_models, *date_relative})),
        ]
        selection = ["--select", " ".join(selectors), *(["--exclude", *views] if views else [])]
    else:
        excluded = [*unaffected_models(manifest, changed_tables, [*changed_models, *date_relative]), *views]
        selection = ["--exclude", " ".join(excluded)] if excluded else []
    # A changed seed makes it a build (a run loads no seed), of seeds and models only unless the tests
    # were asked for.
    loads_seeds = bool(definitions.changed_seeds)
    command = [
        "build" if with_tests or loads_seeds else "run",
        *(["--full-refresh"] if changed_models else []),
    ]
    resource_types = list(SEEDS_AND_MODELS) if loads_seeds and not with_tests else []
    reasons = [
        *([f"changed: {', '.join(sorted(changed_tables))}"] if changed_tables else []),
        *([f"definitions changed: {definitions.describe()}"] if changed_models else []),
        *([date_move.describe()] if date_relative else []),
    ]
    arguments = [*command, *selection, *resource_types]
    return DbtPlan(with_vars(arguments, dbt_vars), "; ".join(reasons), definitions=definitions)


def unaffected_models(
    manifest: Mapping[str, Any], changed_tables: Iterable[str], changed_models: Iterable[str] = ()
) -> list[str]:
    """The complement of :func:`models_downstream_of` and of the changed seeds: what an incremental
    run may leave alone (the unchanged seeds too: a build loading the changed ones would load them all).

    Dagster's dbt integration adds its own ``--select`` for the op's assets and dbt unions repeated
    ``--select`` flags, so inside Dagster the incremental selection is expressed as ``--exclude``."""
    changed_models = set(changed_models)
    affected = models_downstream_of(manifest, changed_tables, changed_models) | changed_models
    every_node = {
        node["name"] for node in manifest["nodes"].values() if node["resource_type"] in ("model", "seed")
    }
    return sorted(every_node - affected)
