"""The environment dbt runs in: where the project is, and the ClickHouse address for profiles.yml.

profiles.yml reads only environment variables, so the same file serves the embedded server and a
production one. For local/ci this exports the embedded server's address (from services.json via
orchestration.environment) into the child process environment, never into a file. No Dagster
imports: ``funnelhouse build`` uses it without loading the code location.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path

from devstack import state
from orchestration import bound_dbt, environment

REPO_ROOT = Path(__file__).resolve().parents[3]
PROFILES_DIR = REPO_ROOT / "dbt_project"
# Artifacts and logs live under dbt_project/. dbt deprecated target-path/log-path in dbt_project.yml,
# so every dbt process gets them as DBT_TARGET_PATH/DBT_LOG_PATH (dbt's own variables), which a
# caller may set to move them, e.g. for test builds; the Makefile exports the same defaults.
DEFAULT_TARGET_DIR = REPO_ROOT / "dbt_project" / "target"
DEFAULT_LOG_DIR = REPO_ROOT / "dbt_project" / "logs"
TARGET_DIR = environment.dbt_target_dir()
MANIFEST = TARGET_DIR / "manifest.json"

# Every dbt command of the CLI (build.py starts them) but docs and freshness (folders of their own)
# writes the target's one run_results.json, replacing the previous command's: a `dbt run` after a
# `dbt build` would leave no test outcome. So each is also copied into a folder of its own under
# run_results_archive(), as Dagster's dbt steps keep theirs (dagster_dbt_runs()), for the reports
# (ingestion/reports/trust.py) to find every test's latest outcome (run_results_files). Both are the
# stack's (under its state home), not the target's: dbt_project/target is one for every
# FUNNELHOUSE_HOME of a checkout, and two stacks side by side would read each other's results. As many
# of each are kept as the reports read: an older one, behind that many newer, is never read.
RUN_RESULTS_ARCHIVE = "dbt-run-results"
DAGSTER_DBT_RUNS = "dagster-dbt-runs"
RUN_RESULTS_KEPT = 50
# <generated_at as 20261130T203743565515Z>-<dbt's invocation id>: names sort in time order.
_ARCHIVED_NAME = re.compile(r"\d{8}T\d{12}Z-[\w-]+")
# The folder of each dbt invocation of a Dagster step (dagster_dbt_folder), named as dagster-dbt names
# them: <op>-<run id[:7]>-<uuid[:7]>. Never removed by dagster-dbt.
_DAGSTER_RUN_NAME = re.compile(r"\w+-[0-9a-f]{7}-[0-9a-f]{7}")
# Where earlier versions kept both, under dbt's target (see remove_old_layout): the CLI's archive in
# <target>/run-results (same names as now), and each Dagster dbt step's folder, dagster-dbt's default
# <target>/<op>-<run id[:7]>-<uuid[:7]>, of the two dbt ops the code location ever had (dbt_assets.py).
OLD_RUN_RESULTS_ARCHIVE = "run-results"
_OLD_DAGSTER_RUN_NAME = re.compile(
    r"(?:warehouse_dbt_models|warehouse_dbt_kpi_daily)-[0-9a-f]{7}-[0-9a-f]{7}"
)


def dbt_executable() -> str:
    """dbt itself: the one installed beside this Python, else the one on PATH. (Dagster's dbt steps run
    it through funnelhouse-bound-dbt, which looks beside itself first.)"""
    return bound_dbt.find_dbt(Path(sys.executable).parent)


def dbt_target() -> str:
    return os.environ.get("DBT_TARGET") or environment.env_name()


def dbt_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a dbt process: the caller's, plus the ClickHouse address unless configured,
    without backfill months or KPI dates this process did not set (drop_inherited_windows)."""
    env = dict(os.environ if base is None else base)
    drop_inherited_windows(env)
    env.setdefault("DBT_TARGET", dbt_target())
    env.setdefault("DBT_PROFILES_DIR", str(PROFILES_DIR))
    env.setdefault("DBT_TARGET_PATH", str(DEFAULT_TARGET_DIR))
    env.setdefault("DBT_LOG_PATH", str(DEFAULT_LOG_DIR))
    # No phoning home, and no dbt_project/.user.yml left in the work tree.
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # dbt gets the server replication writes to: the embedded one (local/ci), or the one of
    # FUNNELHOUSE_CLICKHOUSE_URL (+ _USER/_PASSWORD), the variable README's production setup sets;
    # only explicit FUNNELHOUSE_CLICKHOUSE_HOST/_PORT/_SECURE (prod's profile) point dbt elsewhere.
    # In production with neither, clickhouse_settings() refuses with the message every other command
    # gives (the URL is needed), not dbt's "Env var required" for a variable README never names.
    if "FUNNELHOUSE_CLICKHOUSE_HOST" not in env and (
        env["DBT_TARGET"] != "prod"
        or env.get("FUNNELHOUSE_CLICKHOUSE_URL")
        or environment.env_name() == "prod"
    ):
        settings = environment.clickhouse_settings()
        env.update(
            FUNNELHOUSE_CLICKHOUSE_HOST=settings.host,
            FUNNELHOUSE_CLICKHOUSE_PORT=str(settings.port),
            FUNNELHOUSE_CLICKHOUSE_USER=settings.username,
            FUNNELHOUSE_CLICKHOUSE_PASSWORD=settings.password,
            FUNNELHOUSE_CLICKHOUSE_SECURE="true" if settings.secure else "false",
        )
    return env


def parse_environment() -> dict[str, str]:
    """The environment a dbt parse runs in: ``funnelhouse manifest``'s, and dagster-dbt's preparation
    under ``dagster dev`` (resources.py). Every dbt command's (dbt_env), so README's production
    variables give the prod profile the host and port it reads (derived from
    FUNNELHOUSE_CLICKHOUSE_URL), and the next build on this stack reuses the parse. A parse connects to
    no server: with none to take an address from (local or ci, no stack up: `make demo` parses before
    `funnelhouse up`), the local profile's default host does. A FUNNELHOUSE_CLICKHOUSE_URL that cannot
    be read is not passed over (ConfigurationError, naming it): it is a mistake, which a parse with
    defaults would only hide until the first dbt step that connects."""
    try:
        return dbt_env()
    except environment.ServiceNotRunning:
        # dbt_env() keeps a host the caller gives instead of asking for the embedded server's: the
        # local profile's own default, for a parse that never uses it.
        return dbt_env({**os.environ, "FUNNELHOUSE_CLICKHOUSE_HOST": "127.0.0.1"})


# Which tests a Dagster dbt step runs besides those of its own models. dbt's default ("eager") takes
# every test touching a selected model, so a subset picked in the UI (dim_employees alone) would also
# run, and fail on, tests of models it leaves out: the relationships tests of every fact and mart
# reading dim_employees and the KPI mart's date-spine test, against tables as an older build left
# them (or missing), their verdicts reported as checks of assets the run did not build. "buildable"
# takes a test only when each model it reads is selected or upstream of a selected one. (A run of
# every model of a definition selects the same tests either way; dagster-dbt passes "empty" when it
# names the tests itself.)
# Set around each Dagster dbt invocation (``scoped_environment``): dagster-dbt reads it when it builds
# its selection, the dbt child process inherits it, and a `funnelhouse build` later in the same
# process keeps dbt's default.
DAGSTER_INDIRECT_SELECTION = {"DBT_INDIRECT_SELECTION": "buildable"}


def export_dbt_env() -> None:
    """Put the dbt environment into this process (for in-process runners such as dagster-dbt, whose
    dbt inherits this process's environment: inherited backfill months are removed from it first)."""
    drop_inherited_windows(os.environ)
    os.environ.update(dbt_env())


# The environment variables macros/kpi_window.sql reads a KPI run's dates from. Only
# ``kpi_window_environment`` (a Dagster KPI partition run) may give them to dbt: exported in a shell or
# a deployment, every build would rebuild those days of the KPI mart instead of the changed ones.
KPI_WINDOW_ENVIRONMENT = {
    "kpi_start_date": "FUNNELHOUSE_KPI_START_DATE",
    "kpi_end_date": "FUNNELHOUSE_KPI_END_DATE",
}
# The environment variables macros/fact_backfill.sql reads a fact backfill's months from (YYYY-MM).
# Only ``backfill_environment`` (the `funnelhouse backfill` command) may give them to dbt: exported in a
# shell or a deployment, every build, `funnelhouse dbt` command and Dagster dbt step would silently
# rebuild those months instead of the changes.
FACT_BACKFILL_ENVIRONMENT = {
    "from_month": "FUNNELHOUSE_BACKFILL_FROM_MONTH",
    "to_month": "FUNNELHOUSE_BACKFILL_TO_MONTH",
}
_BACKFILL_PREFIX = "FUNNELHOUSE_BACKFILL_"
# What sets each kind of window, for the warning about an inherited one (drop_inherited_windows).
_WINDOW_OWNERS = {
    "backfill": "only `funnelhouse backfill --from YYYY-MM [--to YYYY-MM]` rebuilds months of the facts",
    "kpi": "only a Dagster KPI partition run (or dbt's --vars kpi_start_date/kpi_end_date) rebuilds given"
    " days of the KPI mart",
}
# The window variables this process set for the dbt commands it starts (inside backfill_environment /
# kpi_window_environment): name -> value. Any other value of them is inherited, and dropped.
_granted: dict[str, str] = {}
# The inherited (name, value) sets already warned about: one warning per process, not one per dbt command.
_warned_inherited: set[frozenset[tuple[str, str]]] = set()
_log = logging.getLogger(__name__)


def _window_kind(name: str) -> str | None:
    if name.startswith(_BACKFILL_PREFIX):
        return "backfill"
    return "kpi" if name in KPI_WINDOW_ENVIRONMENT.values() else None


@contextlib.contextmanager
def scoped_environment(names: dict[str, str]):
    """These variables in this process's environment while inside (the dbt subprocess of
    DbtCliResource.cli inherits it; it takes no environment of its own), as they were afterwards: an
    in-process run must not leave them to the next dbt command of the process."""
    before = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _granted_window(names: dict[str, str]) -> Iterator[None]:
    """``names`` (window variables) in this process's environment while inside (``scoped_environment``),
    as values a dbt command started here keeps (drop_inherited_windows)."""
    global _granted
    previous = _granted
    with scoped_environment(names):
        _granted = {**previous, **names}
        try:
            yield
        finally:
            _granted = previous


def backfill_environment(from_month: str, to_month: str):
    """The backfill's months in this process's environment while inside, as the only values of
    FACT_BACKFILL_ENVIRONMENT a dbt command started here gets (drop_inherited_windows)."""
    return _granted_window(
        {
            FACT_BACKFILL_ENVIRONMENT["from_month"]: from_month,
            FACT_BACKFILL_ENVIRONMENT["to_month"]: to_month,
        }
    )


def kpi_window_environment(kpi_vars: dict[str, str]):
    """The KPI run's dates in this process's environment while inside, as the only values of
    KPI_WINDOW_ENVIRONMENT a dbt command started here gets (drop_inherited_windows)."""
    return _granted_window({KPI_WINDOW_ENVIRONMENT[key]: value for key, value in kpi_vars.items()})


def drop_inherited_windows(env: MutableMapping[str, str]) -> None:
    """Remove from ``env`` (a dbt process's environment, or this process's) every FUNNELHOUSE_BACKFILL_*
    and KPI date variable but those this process set (``backfill_environment``,
    ``kpi_window_environment``), and say once which were ignored: set outside funnelhouse, they would
    turn an ordinary dbt run into a rebuild of those months or days instead of the changes."""
    ignored = {
        name: value for name, value in env.items() if _window_kind(name) and _granted.get(name) != value
    }
    for name in ignored:
        del env[name]
    if ignored and frozenset(ignored.items()) not in _warned_inherited:
        _warned_inherited.add(frozenset(ignored.items()))
        owners = sorted({_WINDOW_OWNERS[kind] for name in ignored if (kind := _window_kind(name))})
        _log.warning(
            "Ignoring %s from the environment: %s; this dbt run is an ordinary one. `unset %s` silences"
            " this warning.",
            ", ".join(f"{name}={value}" for name, value in sorted(ignored.items())),
            "; ".join(owners),
            " ".join(sorted(ignored)),
        )


def run_results_archive() -> Path:
    """Where this stack's CLI dbt commands' run results are copied (archive_run_results)."""
    return state.home() / RUN_RESULTS_ARCHIVE


def dagster_dbt_runs() -> Path:
    """Where this stack's Dagster dbt steps keep their dbt invocations' folders (dagster_dbt_folder)."""
    return state.home() / DAGSTER_DBT_RUNS


def dagster_dbt_folder(op: str, run_id: str) -> Path:
    """A new folder for one dbt invocation of a Dagster step (its artifacts, compiled SQL and log):
    dagster-dbt's name for it, under dagster_dbt_runs() instead of the target that every stack of the
    checkout shares. dagster-dbt still seeds it with the target's partial parse (DBT_TARGET_PATH)."""
    return dagster_dbt_runs() / f"{op}-{run_id[:7]}-{uuid.uuid4().hex[:7]}"


def run_results_files(folders: Sequence[Path] = ()) -> list[Path]:
    """The newest RUN_RESULTS_KEPT ``run_results.json`` files of the folders' subfolders, newest last
    (by when dbt wrote them). By default this stack's: those of its Dagster dbt steps and its archive of
    the CLI's; not the target's own file, the last CLI command's of whichever stack ran one (it is in
    the archive of the stack that ran it)."""
    found = []
    for folder in folders or (dagster_dbt_runs(), run_results_archive()):
        for path in folder.glob("*/run_results.json"):
            try:
                found.append((path.stat().st_mtime, path))
            except OSError:  # a run folder cleaned up meanwhile
                continue
    return [path for _, path in sorted(found)[-RUN_RESULTS_KEPT:]]


def archive_run_results(target: Path | None = None) -> Path | None:
    """Copy the target's run_results.json (the last dbt command's) into run_results_archive(), once
    per dbt invocation, and prune (prune_run_results); returns the copy, or None when there is no
    readable one. Never raises: an unreadable file (dbt still writing it) is left to the next call,
    and a report-side record must not fail the dbt command behind it."""
    target = target or environment.dbt_target_dir()
    try:
        archive = run_results_archive()
        with open(target / "run_results.json", "rb") as live:
            written = os.fstat(live.fileno())
            contents = live.read()
        metadata = json.loads(contents)["metadata"]
        generated = dt.datetime.fromisoformat(metadata["generated_at"].replace("Z", "+00:00"))
        name = f"{generated.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}-{metadata['invocation_id']}"
        if not _ARCHIVED_NAME.fullmatch(name):
            return None
        copy = archive / name / "run_results.json"
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed: a report never reads half a copy. Its mtime is the original's,
            # as the reports order the files by when dbt wrote them.
            partial = copy.with_name(f".run_results.json.{os.getpid()}")
            partial.write_bytes(contents)
            os.utime(partial, ns=(written.st_atime_ns, written.st_mtime_ns))
            os.replace(partial, copy)
        prune_run_results()
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None
    return copy


def prune_run_results() -> None:
    """Keep the newest RUN_RESULTS_KEPT of this stack's archive copies (by name: the time dbt wrote
    them) and of its Dagster dbt folders (by when they last changed; a running step's is among the
    newest), and remove those an earlier version left under the target (remove_old_layout). Only
    folders named as these are ever removed, nothing else of the stack's home or the target. Never
    raises: it only bounds the disk the reports' record takes."""
    with contextlib.suppress(OSError):
        _remove_oldest(_folders(run_results_archive(), _ARCHIVED_NAME, key=lambda path: path.name))
        _remove_oldest(_folders(dagster_dbt_runs(), _DAGSTER_RUN_NAME, key=lambda path: path.stat().st_mtime))
    remove_old_layout()


def remove_old_layout(target: Path | None = None) -> None:
    """Remove what earlier versions left under dbt's target (by default this process's) and nothing
    reads or prunes any more: the CLI's archive copies in ``run-results/`` (the folder too, once
    empty) and Dagster's dbt step folders (each with its own artifacts, compiled SQL and log). Only folders named as those versions named them go: dbt's own files
    (manifest.json, partial_parse.msgpack, compiled/, run/), freshness/ and docs/, and anything else
    put there, stay. Once removed nothing of the kind comes back (both now live under the stack's
    home), so after the first call this only lists the target. Never raises."""
    with contextlib.suppress(OSError):
        target = target or environment.dbt_target_dir()
        old_archive = target / OLD_RUN_RESULTS_ARCHIVE
        old = _folders(old_archive, _ARCHIVED_NAME, key=lambda path: path.name)
        old += _folders(target, _OLD_DAGSTER_RUN_NAME, key=lambda path: path.name)
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)  # (another command may be removing it too)
        if old_archive.is_dir() and not old_archive.is_symlink() and not any(old_archive.iterdir()):
            old_archive.rmdir()


def _folders(parent: Path, name: re.Pattern, key) -> list[Path]:
    """The folders of ``parent`` named as ``name``, oldest first by ``key``."""
    found = []
    for path in parent.glob("*"):
        try:
            if name.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
                found.append((key(path), path))
        except OSError:  # removed meanwhile
            continue
    return [path for _, path in sorted(found)]


def _remove_oldest(folders: list[Path]) -> None:
    for old in folders[: max(len(folders) - RUN_RESULTS_KEPT, 0)]:
        shutil.rmtree(old, ignore_errors=True)  # (another command may be removing it too)
