"""Which model definitions a deploy changed: the checksums of the dbt project's files, computed
without a dbt process, and their comparison with those the builds applied. Apart from the plan
(dbt_plan.py), which only asks what changed.

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
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pathspec
import yaml

from orchestration.defs.warehouse.dbt_environment import PROFILES_DIR, dbt_target

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
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        config = yaml.load((project_dir / "dbt_project.yml").read_text(), Loader=YAML_LOADER)
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
            document = yaml.load(text, Loader=YAML_LOADER)
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
    profiles = yaml.load(path.read_text(), Loader=YAML_LOADER) or {}
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
