"""The build date: the day the date-relative models are built as of, the refresh mark that
records it, and the models to rebuild when it moved. Apart from the plan (dbt_plan.py), which
only asks whether it moved.

Date-relative models (last 7/30 days, days in stage, this month, the KPI date spine) compute their
columns as of the build date (the ``as_of_date`` macro: the UTC day, or ``FUNNELHOUSE_AS_OF_DATE``;
:func:`build_date`). The nightly build runs at night in ``FUNNELHOUSE_TIMEZONE``, which may be before
the UTC day changes, and an hourly run rebuilds only what a change reached: after midnight UTC one
row would mix two build dates (``mart_customer_overview``'s days since the last contact as of today,
``int_customers__conversation_summary``'s last 7 days as of yesterday). So when the UTC date of the
models' refresh mark (the start of the last build of every change) is before the build date, the
incremental plan also selects every date-relative model with its downstream, views still left out
(:class:`BuildDateMove`); the build records a mark of its build date (:func:`refresh_mark`), so
this happens once a day, also when nothing else changed. A ``--select`` build then adds to its
selection the date-relative models its models read (:meth:`BuildDateMove.upstream_of`). Which
models are date-relative is read from dbt's manifest, not kept by hand: those whose macros include
``as_of_date``, directly or through the project's macros that call it (``by_build_date``,
``in_period`` ...; :func:`date_relative_models`). dbt records the macros a model calls as it
renders the model at parse time, so a call only inside ``is_incremental()`` (the KPI mart's
lookback) is not recorded; the KPI mart is downstream of the date spine anyway, and a test checks
that every model whose SQL calls one of these macros is reached. In Dagster the KPI mart is not the
hourly op's: its daily partitions rebuild the current days.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from orchestration.defs.warehouse.dbt_graph import models_downstream_of, models_upstream_of
from orchestration.defs.warehouse.model_definitions import YAML_LOADER

# The project's macro giving the build date (dbt_project/macros/as_of_date.sql), and its inputs.
BUILD_DATE_MACRO = "as_of_date"
BUILD_DATE_VAR = "as_of_date"
BUILD_DATE_ENV = "FUNNELHOUSE_AS_OF_DATE"


def utc_today() -> dt.date:
    """The clock of the build date when none is given (one function, so that tests can set it)."""
    return dt.datetime.now(dt.UTC).date()


def _given_build_date(dbt_vars: str | None, environ: Mapping[str, str]) -> object:
    """The build date the caller gave (var ``as_of_date``, else ``FUNNELHOUSE_AS_OF_DATE``), or None."""
    given = (yaml.load(dbt_vars, Loader=YAML_LOADER) or {}) if dbt_vars else {}
    return (given.get(BUILD_DATE_VAR) if isinstance(given, dict) else None) or environ.get(BUILD_DATE_ENV)


def build_date(dbt_vars: str | None = None, environ: Mapping[str, str] | None = None) -> dt.date:
    """The day the models are built as of, decided as the ``as_of_date`` macro decides it: var
    ``as_of_date`` (in ``dbt_vars``, dbt's ``--vars`` YAML), else ``FUNNELHOUSE_AS_OF_DATE`` (in
    ``environ``, by default this process's: dbt inherits the caller's environment), else the UTC day."""
    day = _given_build_date(dbt_vars, os.environ if environ is None else environ)
    if isinstance(day, dt.date):  # YAML reads an unquoted 2026-03-31 as a date
        return day
    return dt.date.fromisoformat(str(day)) if day else utc_today()


def pinned_build_date(
    dbt_vars: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``FUNNELHOUSE_AS_OF_DATE`` as :func:`build_date` reads it now, for the environment of every dbt
    process of one build (and of this process while it plans the build), or nothing when the caller
    gave the date (var ``as_of_date`` or the variable). Without it each model's SQL reads the UTC day
    when it runs: a build crossing midnight UTC would build some models, and test them, as of the next
    day, and the plan (:class:`BuildDateMove`) would have decided as of the first."""
    environ = os.environ if environ is None else environ
    if _given_build_date(dbt_vars, environ):
        return {}
    return {BUILD_DATE_ENV: build_date(dbt_vars, environ).isoformat()}


def refresh_mark(moment: dt.datetime, built_as_of: dt.date) -> dt.datetime:
    """The refresh mark a build records: ``moment`` (naive UTC: when its dbt run started, or when its
    plan was made if it had nothing to run), but no later than the last instant of ``built_as_of``,
    the build date its date-relative models hold (:attr:`DbtPlan.built_as_of`, else the build's
    :func:`build_date`, pinned or given). The mark's UTC date is what the next build compares its
    build date with (:class:`BuildDateMove`), so it must be that date, or earlier:

    * a build that pinned its date before midnight UTC and started dbt after it (planning, the daily
      ``dbt parse``) built them as of the earlier day;
    * a rebuild as of a day in the past (``FUNNELHOUSE_AS_OF_DATE``): a mark of today told every build
      of the day that the marts held today, and they kept the past day until the nightly build. The
      mark of that day makes the next build rebuild them as of its own, and it is truthful: the marts
      leave out every row stamped after it (macros/as_of_date.sql). The next build also carries again
      the changes made since (run incrementally, they cost what they changed);
    * a rebuild as of a day after today: no mark can be of that day (the changes made until then would
      count as built), so it is the last instant of the day before ``moment``'s, whose date is before
      any build date of today's: the next build rebuilds them, as of its own day.

    An earlier mark only claims less: the changes of the time between it and ``moment`` are carried
    again by the next build."""
    if built_as_of > moment.date():
        return dt.datetime.combine(moment.date(), dt.time.min) - dt.timedelta(microseconds=1)
    return min(moment, dt.datetime.combine(built_as_of, dt.time.max))


def _called_macros(node: Mapping[str, Any]) -> Sequence[str]:
    return node.get("depends_on", {}).get("macros", ())


def build_date_macros(manifest: Mapping[str, Any]) -> set[str]:
    """The unique ids of the macros that give the build date: the project's :data:`BUILD_DATE_MACRO`
    and every macro calling it, directly or not (the manifest's ``depends_on.macros`` of macros)."""
    project = manifest["metadata"]["project_name"]
    macros = manifest.get("macros", {})
    reaching: dict[str, bool] = {f"macro.{project}.{BUILD_DATE_MACRO}": True}

    def reaches(macro: str) -> bool:
        if macro not in reaching:
            reaching[macro] = False  # (a cycle reaches nothing new)
            reaching[macro] = any(reaches(other) for other in _called_macros(macros.get(macro) or {}))
        return reaching[macro]

    for macro in macros:
        reaches(macro)
    return {macro for macro, reached in reaching.items() if reached}


def date_relative_models(manifest: Mapping[str, Any]) -> set[str]:
    """Names of the models that call one of the :func:`build_date_macros` (as the manifest records
    them: the macros called while dbt rendered the model at parse time), without their downstream."""
    dated = build_date_macros(manifest)
    return {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and dated.intersection(_called_macros(node))
    }


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` (naive UTC, or aware) as naive UTC."""
    return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class BuildDateMove:
    """The build date moved since the models' last refresh: the date-relative models (``models``,
    to be selected with their downstream) hold the previous one."""

    previous: dt.date
    current: dt.date
    models: tuple[str, ...]

    @classmethod
    def since(
        cls,
        refreshed_through: dt.datetime | None,
        manifest: Callable[[], Mapping[str, Any]],
        dbt_vars: str | None = None,
    ) -> BuildDateMove | None:
        """The move since the refresh mark ``refreshed_through`` (naive UTC, or aware), None when the
        build date is still that of the mark (or nothing was built). ``manifest`` is asked only when
        the date moved (``funnelhouse build`` parses the project for it)."""
        if refreshed_through is None:
            return None
        previous, current = _utc(refreshed_through).date(), build_date(dbt_vars)
        if previous >= current:
            return None
        return cls(previous, current, tuple(sorted(date_relative_models(manifest()))))

    def describe(self) -> str:
        return f"build date moved from {self.previous} to {self.current}: date-relative models"

    def upstream_of(self, manifest: Mapping[str, Any], models: Iterable[str]) -> tuple[str, ...]:
        """The models that ``models`` read, directly or not, still holding the previous date: the
        date-relative ones (``self.models``) and those between them and ``models`` (not ``models``
        themselves). A ``--select`` build of ``models`` adds them (``funnelhouse build``), or a
        selected model would mix the two dates (its own as of today, its last 7 days read as of
        yesterday)."""
        models = set(models)
        holding = models_upstream_of(manifest, models) & models_downstream_of(manifest, (), self.models)
        return tuple(sorted(holding - models))

    def describe_upstream(self, added: Iterable[str]) -> str:
        return (
            f"build date moved from {self.previous} to {self.current}: also the models they read "
            f"built as of {self.previous}: {', '.join(added)}"
        )


def held_build_date(refreshed_through: dt.datetime | None, dbt_vars: str | None) -> dt.date | None:
    """The build date the models hold when a plan runs nothing, if later than the build's (a rebuild
    as of an earlier day that found nothing to rebuild: :class:`BuildDateMove` rolls only forward):
    the date of their mark. None (the build's) otherwise."""
    held = _utc(refreshed_through).date() if refreshed_through is not None else None
    return held if held is not None and held > build_date(dbt_vars) else None
