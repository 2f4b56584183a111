"""What dbt runs for a build, decided from what replication changed.

* Complete build (nightly ``--full-refresh``, the first build of a set of models): ``dbt build`` of
  every model, data test and unit test.
* Explicit ``--select``: ``dbt build`` of that selection, tests included. A selector that matches
  nothing fails the build (dbt only warns, and would "succeed" having built nothing - a typo).
* Incremental (hourly): ``dbt run`` of the models downstream of the raw tables changed since the
  last successful build (``source:crm.<table>+``), and nothing at all when no table changed. Data
  tests run nightly, not hourly: with 1% new rows nearly every source changes, and their ~200 tests
  would cost more than the models. ``with_tests`` (``funnelhouse build --test``) makes it a ``dbt
  build`` of the same selection: the selected models' and sources' tests run too. Contracts are
  still enforced, since they are checked when a model is built. Views are left out: a staging
  view reads raw at query time, so new rows reach it without a rebuild; a changed view definition
  arrives with a deploy, which the nightly full build (or ``funnelhouse build --full-refresh``)
  applies.

Date-relative columns (last 7 days, days in stage) move with the build date; when nothing changes
for hours they roll over with the nightly build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SOURCE = "crm"
INCREMENTAL_EXCLUDE = "config.materialized:view"
# dbt's warning for a --select that matches no node, raised as an error for explicit selections.
SELECTION_MUST_MATCH = ("--warn-error-options", '{"error": ["NoNodesForSelectionCriteria"]}')


@dataclass(frozen=True)
class DbtPlan:
    arguments: tuple[str, ...]  # the dbt command line; empty when there is nothing to run
    reason: str
    # A successful run covers every change so far, so the refresh mark may move to its start.
    covers_all_changes: bool = True

    @property
    def skip(self) -> bool:
        return not self.arguments


def _with_vars(arguments: list[str], dbt_vars: str | None) -> tuple[str, ...]:
    return tuple(arguments + (["--vars", dbt_vars] if dbt_vars else []))


def complete_plan(
    *, full_refresh: bool = False, select: Sequence[str] = (), dbt_vars: str | None = None, reason: str = ""
) -> DbtPlan:
    arguments = [
        "build",
        *(["--full-refresh"] if full_refresh else []),
        *(["--select", *select, *SELECTION_MUST_MATCH] if select else []),
    ]
    return DbtPlan(
        _with_vars(arguments, dbt_vars),
        reason or ("full refresh" if full_refresh else "selected models" if select else "complete build"),
        covers_all_changes=not select,
    )


def changed_source_selectors(tables: Iterable[str]) -> list[str]:
    return [f"source:{SOURCE}.{table}+" for table in sorted(tables)]


def incremental_plan(
    changed_tables: Sequence[str] | None,
    dbt_vars: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    *,
    with_tests: bool = False,
) -> DbtPlan:
    """``changed_tables`` None means the models were never built: build everything, tests included.

    With a ``manifest`` (Dagster) the selection is written as an ``--exclude`` of the unaffected
    models instead of ``--select source:crm.<table>+`` (see :func:`unaffected_models`)."""
    if changed_tables is None:
        return complete_plan(dbt_vars=dbt_vars, reason="first build of these models")
    if not changed_tables:
        return DbtPlan((), "no raw table changed since the last build")
    # One argument per flag (dbt splits it on spaces): dagster-dbt moves only the first value after
    # --select/--exclude and would leave the others behind as stray positional arguments.
    if manifest is None:
        selection = [
            "--select",
            " ".join(changed_source_selectors(changed_tables)),
            "--exclude",
            INCREMENTAL_EXCLUDE,
        ]
    else:
        selection = [
            "--exclude",
            " ".join([*unaffected_models(manifest, changed_tables), INCREMENTAL_EXCLUDE]),
        ]
    command = "build" if with_tests else "run"
    return DbtPlan(
        _with_vars([command, *selection], dbt_vars), f"changed: {', '.join(sorted(changed_tables))}"
    )


def models_downstream_of(manifest: Mapping[str, Any], tables: Iterable[str]) -> set[str]:
    """Names of the models that read (directly or not) any of the crm source ``tables``."""
    children = manifest["child_map"]
    pending = [f"source.{manifest['metadata']['project_name']}.{SOURCE}.{table}" for table in tables]
    reached: set[str] = set()
    while pending:
        for child in children.get(pending.pop(), ()):
            if child.startswith("model.") and child not in reached:
                reached.add(child)
                pending.append(child)
    return {manifest["nodes"][unique_id]["name"] for unique_id in reached}


def unaffected_models(manifest: Mapping[str, Any], changed_tables: Iterable[str]) -> list[str]:
    """The complement of :func:`models_downstream_of`: what an incremental run may leave alone.

    Dagster's dbt integration adds its own ``--select`` for the op's assets and dbt unions repeated
    ``--select`` flags, so inside Dagster the incremental selection is expressed as ``--exclude``."""
    affected = models_downstream_of(manifest, changed_tables)
    every_model = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "model"}
    return sorted(every_model - affected)
