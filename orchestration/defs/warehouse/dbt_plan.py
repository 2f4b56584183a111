"""What dbt runs for a build, decided from what replication changed and what a deploy changed.

* Complete build (nightly ``--full-refresh``, the first build of a set of models): ``dbt build`` of
  every model, data test and unit test.
* Explicit ``--select``: ``dbt build`` of that selection, tests included. A selector that matches
  nothing fails the build (dbt only warns, and would "succeed" having built nothing - a typo).
* Incremental (hourly): ``dbt run`` of the models downstream of the raw tables changed since the
  last successful build (``source:crm.<table>+``), once the UTC day rolled over also the
  date-relative models (see the end), and nothing at all when none of these. Data
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

What "a definition changed" means is decided in one place (:class:`DefinitionChanges`): a model's
definition is dbt's checksum of its file (the manifest's ``checksum.checksum``: sha256 of the file's
stripped text) and the folder the file is in (dbt_project.yml configures models by folder: schema,
materialization, contract; a file moved unchanged to another folder has changed), computed here from
the files (:func:`current_definitions`) so that no dbt process is needed. A model is named as dbt
names it: by its file, but a versioned model by its YAML, one definition for the files of all its
versions (``<model>_v<v>`` or ``defined_in``; ``<model>+`` selects every version). Seeds are
definitions too (their folder and CSV file): a changed or new seed is loaded by the next incremental
build, which is then a ``dbt build`` of the seeds and models selected (``dbt run`` loads no seed;
still no tests unless asked), the seed with ``<seed>+``. Files dbt does not read (``.dbtignore``,
names beginning with ``.``, ``#`` or ``~``) define nothing. The definitions a successful build
applied are recorded in ClickHouse (refresh_state.py), for every process and machine building the
same schemas. A model whose definition differs from the recorded one, or that has none (added by the
deploy), has changed. They are recorded (with the refresh mark) after a
successful build that covered every change - an incremental plan selects each changed model with its
downstream, a complete build all of them - and never after a ``--select`` build or a Dagster run of
some of the assets: those may have rebuilt a changed model and left what reads it as the old
definition built it.

What no model's file holds - ``dbt_project.yml``, ``.dbtignore``, the macros and functions, the YAML
dbt reads (under every resource path: the models' contracts, columns and configs, and the sources,
unit tests and exposures beside them), the doc blocks (``.md``: persisted as ClickHouse comments),
the packages, and the settings of the profile's target in use (``custom_settings`` such as
``join_use_nulls`` change what models compute; its connection keys and secrets are left out) - is
one project-wide definition (:func:`project_checksum`, under the reserved name :data:`PROJECT`),
recorded beside the models'. When it changed, every model (and seed) has changed: the next
incremental build is one ``--full-refresh`` run of every model (a build, with seeds; no finer rule
says which models a macro or a config reached, and a wrong guess would leave a model built the old
way until the nightly build). A Dagster op that builds its models apart from the others (the KPI
mart's, which the hourly op leaves out) keeps its own project-wide record (:func:`own_project_row`),
so that no build claims to have applied it to models it did not build; a build that applied a
definition such a model reads, without building it, records it as stale (:data:`STALE`), and the
model's own build then rebuilds it whole.

First record: with nothing recorded yet for the models a build covers (a warehouse built before
this existed, a test's bare ``dbt run``, the KPI mart before its own job recorded it), no model
counts as changed and the current definitions are recorded as built after the next successful build:
treating every model as changed would turn the first hourly run into a full rebuild of every
incremental model for no known change. A deploy made just before that first run is applied by the
nightly build, as it was before. The same holds for a project-wide record missing beside recorded
models (a warehouse whose models were recorded before it existed). The other way round - definitions
recorded but no refresh mark (its insert failed after theirs, or it was removed) - the complete build
that follows is a ``--full-refresh`` when a definition changed: the models may exist, and a plain
build would run a changed incremental model incrementally and record it as applied.

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
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pathspec
import yaml

from orchestration.defs.warehouse.dbt_environment import PROFILES_DIR, dbt_target

SOURCE = "crm"
INCREMENTAL_EXCLUDE = "config.materialized:view"
# dbt's warning for a --select that matches no node, raised as an error for explicit selections.
SELECTION_MUST_MATCH = ("--warn-error-options", '{"error": ["NoNodesForSelectionCriteria"]}')
# Matched without regard to case, as dbt matches ``*.sql``, ``*.yml`` ... (``X.SQL`` is a model too).
MODEL_SUFFIXES = (".sql", ".py")
SEED_SUFFIXES = (".csv",)
YAML_SUFFIXES = (".yml", ".yaml")
# Doc blocks: descriptions may take their text from them, and dbt_project.yml persists descriptions
# as ClickHouse comments on every model's table and columns (``persist_docs``), so they are built data.
DOC_SUFFIXES = (".md",)
# dbt_project.yml's paths to what dbt reads, with dbt's defaults. YAML under any of them may configure
# a model (dbt reads schema files from every one), and functions (UDFs) are called by models as
# macros are: both are project-wide.
RESOURCE_PATHS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "analysis-paths": ["analyses"],
    "macro-paths": ["macros"],
    "test-paths": ["tests"],
    "function-paths": ["functions"],
}
PACKAGE_FILES = ("packages.yml", "dependencies.yml", "package-lock.yml")
# Beside dbt_project.yml: .dbtignore decides which files under the paths dbt reads at all.
DBT_IGNORE = ".dbtignore"
PROJECT_FILES = ("dbt_project.yml", DBT_IGNORE, *PACKAGE_FILES)
# dbt reads no file whose name begins with one of these (editors' lock and backup files).
UNREAD_PREFIXES = (".", "#", "~")
# The keys of a profile's target that only say how to reach the server (the secrets among them):
# what the models compute does not depend on them, so they are left out of the project-wide
# definition (a rotated password or a moved server is no deploy, and no secret is ever hashed).
# Every other key counts: ``custom_settings`` (``join_use_nulls``, ``session_timezone``), ``schema``...
CONNECTION_KEYS = frozenset(
    {
        "driver",
        "host",
        "port",
        "user",
        "password",
        "secure",
        "verify",
        "client_cert",
        "client_cert_key",
        "server_host_name",
        "retries",
        "connect_timeout",
        "send_receive_timeout",
        "sync_request_timeout",
        "compress_block_size",
        "compression",
        "tcp_keepalive",
        "reuse_connections",
        "threads",
    }
)
# The project-wide definition's name among the models': a "/" is in no file name, so in no model's.
PROJECT = "/project"
# A seed's definition begins with this: a changed seed must be loaded (``dbt run`` loads none).
SEED = "seed:"
# Recorded for a model that a build left out although it applied a definition the model reads.
STALE = ""
# What a ``dbt build`` that stands for an hourly run builds: no data or unit tests.
SEEDS_AND_MODELS = ("--resource-type", "seed", "--resource-type", "model")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The project's macro giving the build date (dbt_project/macros/as_of_date.sql), and its inputs.
BUILD_DATE_MACRO = "as_of_date"
BUILD_DATE_VAR = "as_of_date"
BUILD_DATE_ENV = "FUNNELHOUSE_AS_OF_DATE"


def own_project_row(model: str) -> str:
    """The project-wide definition as ``model``, built by a job of its own, was last built under."""
    return f"{PROJECT}/{model}"


@dataclass(frozen=True)
class _ProjectFiles:
    """The files dbt reads of the project in ``root``: under the paths its dbt_project.yml names,
    without those its .dbtignore ignores (matched as dbt matches them: by the path relative to the
    project's root)."""

    root: Path
    config: Mapping[str, Any]
    ignored: pathspec.PathSpec | None

    @classmethod
    def of(cls, project_dir: Path) -> _ProjectFiles:
        ignore_file = project_dir / DBT_IGNORE
        ignored = (
            pathspec.PathSpec.from_lines("gitwildmatch", ignore_file.read_text().splitlines())
            if ignore_file.is_file()
            else None
        )
        config = yaml.load((project_dir / "dbt_project.yml").read_text(), Loader=_YAML_LOADER)
        return cls(project_dir, config, ignored)

    def paths(self, key: str) -> list[str]:
        if key == "docs-paths":  # dbt's default: every resource path
            return self.config.get(key) or [path for name in RESOURCE_PATHS for path in self.paths(name)]
        return self.config.get(key, RESOURCE_PATHS[key])

    def under(self, paths: Iterable[str], suffixes: tuple[str, ...] | None = None) -> set[Path]:
        return {
            path
            for folder in paths
            for path in (self.root / folder).rglob("*")
            if path.is_file()
            and not path.name.startswith(UNREAD_PREFIXES)
            and (suffixes is None or path.suffix.lower() in suffixes)
            and not (self.ignored and self.ignored.match_file(path.relative_to(self.root).as_posix()))
        }

    def nodes(
        self, key: str, suffixes: tuple[str, ...], named: Mapping[str, str] | None = None
    ) -> dict[str, list[tuple[str, Path]]]:
        """The files of the nodes under the ``key`` paths by node name, each with its folder under its
        path (``staging/crm``; ``.`` at the top). A node is named by its file's stem, unless ``named``
        names it otherwise (a versioned model: one name, a file per version)."""
        files: dict[str, list[tuple[str, Path]]] = {}
        for folder in self.paths(key):
            for path in sorted(self.under([folder], suffixes)):
                name = (named or {}).get(path.stem, path.stem)
                relative = path.parent.relative_to(self.root / folder).as_posix()
                files.setdefault(name, []).append((relative, path))
        return files

    def models(self) -> dict[str, list[tuple[str, Path]]]:
        return self.nodes("model-paths", MODEL_SUFFIXES, self.versioned_models())

    def versioned_models(self) -> dict[str, str]:
        """The model name of each versioned model's file (by the file's stem): dbt names the model by
        its YAML, and looks for version ``v`` in ``<model>_v<v>`` unless ``defined_in`` names the file
        (the latest version may also be in ``<model>``, named so anyway). Only the YAML files that
        mention versions are parsed: parsing them all would cost the hourly check several times what
        the rest of it costs."""
        names: dict[str, str] = {}
        for path in self.under([p for key in RESOURCE_PATHS for p in self.paths(key)], YAML_SUFFIXES):
            text = path.read_bytes()
            if b"versions" not in text:
                continue
            document = yaml.load(text, Loader=_YAML_LOADER)
            models = document.get("models") if isinstance(document, dict) else None
            for model in models if isinstance(models, list) else []:
                versions = model.get("versions") if isinstance(model, dict) else None
                for version in versions if isinstance(versions, list) else []:
                    file = version.get("defined_in") or f"{model['name']}_v{version['v']}"
                    names[file] = model["name"]
        return names


def _dbt_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes().decode("utf-8").strip().encode("utf-8")).hexdigest()


def _file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _definition(files: list[tuple[str, Path]]) -> str:
    """``<folder>/<checksum>`` of a model's file (of each version's file, in order of their paths)."""
    return " ".join(f"{folder}/{_dbt_checksum(path)}" for folder, path in files)


def model_checksums(project_dir: Path) -> dict[str, str]:
    """Each model's checksum as dbt computes it (sha256 of the file's text, stripped), by model name
    (a versioned model's: those of its versions' files)."""
    models = _ProjectFiles.of(project_dir).models()
    return {name: " ".join(_dbt_checksum(path) for _folder, path in files) for name, files in models.items()}


def profile_in_use() -> tuple[Path, str]:
    """(profiles directory, target) of the dbt processes of the builds (dbt_environment.py)."""
    return Path(os.environ.get("DBT_PROFILES_DIR") or PROFILES_DIR), dbt_target()


def profile_checksum(profiles_dir: Path, profile: str | None, target: str) -> str:
    """A checksum of ``target`` of ``profile`` in ``profiles_dir``/profiles.yml as written (its
    ``env_var()`` calls, never their values), without its :data:`CONNECTION_KEYS`; empty when the
    project names no profile or the file has no such target (dbt then fails by itself)."""
    path = profiles_dir / "profiles.yml"
    if profile is None or not path.is_file():
        return ""
    profiles = yaml.load(path.read_text(), Loader=_YAML_LOADER) or {}
    output = ((profiles.get(profile) or {}).get("outputs") or {}).get(target)
    if not isinstance(output, dict):
        return ""
    settings = {key: value for key, value in output.items() if key not in CONNECTION_KEYS}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def project_checksum(project_dir: Path, profile: tuple[Path, str] | None = None) -> str:
    """One checksum over what defines every model beside its own file: ``dbt_project.yml``,
    ``.dbtignore`` and the package files (if any), every file under the macro and function paths,
    every YAML file under the paths dbt reads (:data:`RESOURCE_PATHS`) and every doc block under its
    docs paths, each by its path relative to ``project_dir`` (in that order, so it is stable); and
    the settings of the profile's target (``profile``: its directory and target, by default those of
    the builds: :func:`profile_in_use`)."""
    project = _ProjectFiles.of(project_dir)
    files = {project_dir / name for name in PROJECT_FILES}
    for key in ("macro-paths", "function-paths"):
        files |= project.under(project.paths(key))
    files |= project.under([path for key in RESOURCE_PATHS for path in project.paths(key)], YAML_SUFFIXES)
    files |= project.under(project.paths("docs-paths"), DOC_SUFFIXES)
    digest = hashlib.sha256()
    for relative, path in sorted((path.relative_to(project_dir).as_posix(), path) for path in files):
        if path.is_file():
            digest.update(f"{relative}\0{_file_checksum(path)}\n".encode())
    profiles_dir, target = profile or profile_in_use()
    digest.update(
        f"profile\0{profile_checksum(profiles_dir, project.config.get('profile'), target)}\n".encode()
    )
    return digest.hexdigest()


def current_definitions(project_dir: Path, profile: tuple[Path, str] | None = None) -> dict[str, str]:
    """Every model's definition, ``<folder>/<checksum>``: dbt's checksum of its file
    (:func:`model_checksums`) and the folder it is in, whose configs in dbt_project.yml (schema,
    materialization, contract) apply to it, so that a file moved unchanged to another folder has
    changed; every seed's (:data:`SEED`, its folder and the checksum of its CSV file); and the
    project-wide definition (:data:`PROJECT`)."""
    project = _ProjectFiles.of(project_dir)
    models = {name: _definition(files) for name, files in project.models().items()}
    seeds = {
        name: SEED + " ".join(f"{folder}/{_file_checksum(path)}" for folder, path in files)
        for name, files in project.nodes("seed-paths", SEED_SUFFIXES).items()
    }
    return {**seeds, **models, PROJECT: project_checksum(project_dir, profile)}


@dataclass(frozen=True)
class DefinitionChanges:
    """The definitions now (``current``: model -> checksum, and :data:`PROJECT`) against those the
    builds applied (``recorded``): the one decision of what a deploy changed, for every build path."""

    current: Mapping[str, str] = field(default_factory=dict)
    recorded: Mapping[str, str] = field(default_factory=dict)
    # Models built by a job of their own (the KPI mart): each has its own project-wide record.
    apart: frozenset[str] = frozenset()
    # Models that read a changed definition but that this build leaves to their own job: recorded
    # as :data:`STALE`, so that their job rebuilds them whole.
    left_out: frozenset[str] = frozenset()

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted(name for name in self.current if name != PROJECT))

    def _project_row(self, model: str) -> str:
        return own_project_row(model) if model in self.apart else PROJECT

    def _project_changed(self, model: str) -> bool:
        """The project-wide definition differs from the one recorded for ``model`` (none recorded:
        taken as built, see the module's doc)."""
        row = self._project_row(model)
        return (
            PROJECT in self.current and row in self.recorded and self.recorded[row] != self.current[PROJECT]
        )

    @property
    def first_record(self) -> bool:
        """Nothing recorded yet for these models: the current definitions are taken as built."""
        return not any(name in self.recorded for name in self.models)

    @property
    def project_changed(self) -> bool:
        """The project-wide definition changed since these models were built: all of them changed."""
        return not self.first_record and any(self._project_changed(name) for name in self.models)

    @property
    def changed(self) -> tuple[str, ...]:
        """Models whose definition (or the project-wide one) differs from the recorded one, or that
        have none (new)."""
        if self.first_record:
            return ()
        return tuple(
            name
            for name in self.models
            if self.recorded.get(name) != self.current[name] or self._project_changed(name)
        )

    @property
    def every_model_changed(self) -> bool:
        return bool(self.models) and len(self.changed) == len(self.models)

    def describe(self) -> str:
        names = "every model" if self.every_model_changed else ", ".join(self.changed)
        if self.project_changed:
            return f"project-wide (dbt_project.yml, macros, YAML, docs, packages or profile): {names}"
        return names

    @property
    def seeds(self) -> frozenset[str]:
        return frozenset(name for name, definition in self.current.items() if definition.startswith(SEED))

    @property
    def changed_seeds(self) -> tuple[str, ...]:
        """Changed seeds: to be loaded (``dbt run`` loads none), with the models reading them."""
        return tuple(name for name in self.changed if name in self.seeds)

    def within(self, models: Iterable[str]) -> DefinitionChanges:
        """Only these models count (a Dagster op builds some of the project's models), and the seeds
        unless they are models built apart alone (the KPI op: the other op loads the seeds)."""
        models = set(models)
        kept = models | {PROJECT} | (self.seeds if models - self.apart else set())
        return replace(self, current={name: c for name, c in self.current.items() if name in kept})

    def leaving_out(self, models: Iterable[str]) -> DefinitionChanges:
        """This build leaves out these models, which read definitions it applies (see ``left_out``)."""
        return replace(self, left_out=frozenset(models))

    def to_record(self) -> dict[str, str]:
        """What a successful build of every change (every changed model and its downstream) records:
        the changed models' definitions (all of them on the first record), the project-wide one
        as these models' record of it, and :data:`STALE` for the models it left out."""
        names = self.models if self.first_record else self.changed
        rows = {name: self.current[name] for name in names}
        if PROJECT in self.current:
            for row in {self._project_row(name) for name in self.models}:
                if self.recorded.get(row) != self.current[PROJECT]:
                    rows[row] = self.current[PROJECT]
        return {**rows, **dict.fromkeys(self.left_out, STALE)}


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
    definitions: DefinitionChanges = DefinitionChanges(),
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


def utc_today() -> dt.date:
    """The clock of the build date when none is given (one function, so that tests can set it)."""
    return dt.datetime.now(dt.UTC).date()


def _given_build_date(dbt_vars: str | None, environ: Mapping[str, str]) -> object:
    """The build date the caller gave (var ``as_of_date``, else ``FUNNELHOUSE_AS_OF_DATE``), or None."""
    given = (yaml.load(dbt_vars, Loader=_YAML_LOADER) or {}) if dbt_vars else {}
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


def _held_build_date(refreshed_through: dt.datetime | None, dbt_vars: str | None) -> dt.date | None:
    """The build date the models hold when a plan runs nothing, if later than the build's (a rebuild
    as of an earlier day that found nothing to rebuild: :class:`BuildDateMove` rolls only forward):
    the date of their mark. None (the build's) otherwise."""
    held = _utc(refreshed_through).date() if refreshed_through is not None else None
    return held if held is not None and held > build_date(dbt_vars) else None


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
    definitions: DefinitionChanges = DefinitionChanges(),
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
            built_as_of=_held_build_date(refreshed_through, dbt_vars),
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


def models_downstream_of(
    manifest: Mapping[str, Any], tables: Iterable[str], models: Iterable[str] = ()
) -> set[str]:
    """Names of the models that read (directly or not) any of the crm source ``tables``, and of the
    ``models`` (every version of a versioned one; a seed among them only counts by the models reading
    it) with every model reading them."""
    project = manifest["metadata"]["project_name"]
    children = manifest["child_map"]
    names = set(models)
    starting = {
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed") and node["name"] in names
    }
    sources = [f"source.{project}.{SOURCE}.{table}" for table in tables]
    reached = _models_reached(children, [*sources, *sorted(starting)])
    reached |= {unique_id for unique_id in starting if unique_id.startswith("model.")}
    return {manifest["nodes"][unique_id]["name"] for unique_id in reached}


def _models_reached(edges: Mapping[str, list[str]], starting: Iterable[str]) -> set[str]:
    """The models reached from ``starting`` (node ids) along ``edges`` (dbt's child_map or
    parent_map), directly or not, through models only; ``starting`` itself not included."""
    pending, reached = list(starting), set()
    while pending:
        for node in edges.get(pending.pop(), ()):
            if node.startswith("model.") and node not in reached:
                reached.add(node)
                pending.append(node)
    return reached


def models_upstream_of(manifest: Mapping[str, Any], models: Iterable[str]) -> set[str]:
    """Names of the models that the ``models`` (every version of a versioned one) read, directly or not."""
    names = set(models)
    starting = [
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["name"] in names
    ]
    reached = _models_reached(manifest["parent_map"], starting)
    return {manifest["nodes"][unique_id]["name"] for unique_id in reached}


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
