"""``funnelhouse build`` without Dagster: replication, then dbt (see dbt_plan.py for what runs: the
changes to raw since the last build and the model definitions a deploy changed since then), with
``dbt source freshness`` as a report beside it, and a summary; ``funnelhouse docs`` (dbt's
documentation site); ``funnelhouse dbt ARGS`` (any dbt command against this stack).

dbt runs as a child process (the venv's ``dbt``, forked warm where a server is named: warm_dbt.py) so
its logs stream to the terminal and a dbt crash cannot take the caller down; the ClickHouse address
reaches it through the environment only.

Freshness reads only what replication wrote (``raw._replication_state``), so it starts as soon as
replication is done and runs while the models build, in a target directory of its own (neither
command overwrites the other's artifacts); its output is shown after the build's. As a second dbt
process after the build it added 3.6-6.5 s to every build (bench/results/warehouse.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack import state
from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import TableResult, replicate_tables, utc_now
from orchestration import environment, processes, warm_dbt
from orchestration.defs.warehouse import refresh_state, writers
from orchestration.defs.warehouse.build_date import BuildDateMove, pinned_build_date
from orchestration.defs.warehouse.dbt_environment import (
    REPO_ROOT,
    archive_run_results,
    dbt_env,
    dbt_executable,
    scoped_environment,
)
from orchestration.defs.warehouse.dbt_plan import DbtPlan, complete_plan, incremental_plan, with_vars
from orchestration.defs.warehouse.freshness import FreshnessReport, read_sources_json

MARTS = (
    "mart_customer_overview",
    "mart_employee_performance",
    "mart_manager_performance",
    "mart_kpi_employee_daily",
    "mart_funnel_daily",
    "mart_funnel_cohorts",
    "mart_script_performance",
    "mart_material_engagement",
    "mart_training_completion",
)


def marts_schema() -> str:
    return os.environ.get("FUNNELHOUSE_SCHEMA_PREFIX", "") + "marts"


def run_dbt(arguments: Sequence[str], log: Callable[[str], None] = print, env: dict | None = None) -> int:
    """Run one dbt command from the repository root, streaming its output to ``log``.

    dbt never outlives the caller: on Ctrl-C, on SIGTERM (``kill``, a supervisor stopping
    ``funnelhouse docs --serve``) or any other way out of here it is terminated first; a SIGTERM then
    goes on to whatever handled it before (by default: the caller ends, as it would have). A caller
    killed outright (SIGKILL, the OOM killer) takes dbt with it, on Linux (_dbt_process)."""
    with _dbt_process(arguments, env or dbt_env(), subprocess.PIPE) as process:
        for line in process.stdout:
            log(line.rstrip())
        return process.wait()


@contextlib.contextmanager
def _dbt_process(arguments: Sequence[str], env: dict[str, str], output) -> Iterator[subprocess.Popen]:
    """One dbt command started, its output (with its errors) to ``output``: every dbt process here
    starts so. It never outlives the ``with`` (stopped on any way out, SIGTERM included); its run
    results are then archived, or the next dbt command would replace them (archive_run_results).
    Its build date is pinned to the day it starts unless given (``build`` pins one for all of its
    commands before it plans them). A caller killed outright (SIGKILL, the OOM killer) takes dbt with
    it (processes.start_bound); the thread that starts dbt here stays in the ``with`` until dbt ends."""
    env = _with_build_date(arguments, env)
    process = processes.start_bound(
        warm_dbt.command(dbt_executable(), arguments, env),
        cwd=REPO_ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with _terminating_on_sigterm(process):
            yield process
    finally:
        state.end_started_process(process)
        if process.stdout is not None:
            process.stdout.close()
        archive_run_results()


def _with_build_date(arguments: Sequence[str], env: dict[str, str]) -> dict[str, str]:
    """``env`` with the build date pinned (``pinned_build_date``), unless the command's ``--vars`` or
    ``env`` give it."""
    try:
        return {**env, **pinned_build_date(_vars_argument(arguments), env)}
    except yaml.YAMLError:  # vars dbt cannot read either: it says so
        return env


def _vars_argument(arguments: Sequence[str]) -> str | None:
    for i, argument in enumerate(arguments):
        if argument.startswith("--vars="):
            return argument.removeprefix("--vars=")
        if argument == "--vars" and i + 1 < len(arguments):
            return arguments[i + 1]
    return None


@contextlib.contextmanager
def _terminating_on_sigterm(process: subprocess.Popen):
    """While inside, a SIGTERM stops ``process`` before the previous SIGTERM handler runs.

    Python's default for SIGTERM ends the interpreter at once, with no ``finally``, which would
    leave dbt running as an orphan. Signal handlers can only be set from the main thread; elsewhere
    (a Dagster worker thread) this does nothing and the ``finally`` of run_dbt still applies."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        yield
        return
    if previous is None:  # set outside Python: treat as the default
        previous = signal.SIG_DFL

    def on_sigterm(signum, frame):
        state.end_started_process(process)
        signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            previous(signum, frame)
        else:  # SIG_DFL: end as the signal would have
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class BuildSummary:
    replication: list[TableResult] = field(default_factory=list)
    replication_seconds: float = 0.0
    dbt_plan: DbtPlan | None = None
    dbt_seconds: float = 0.0
    dbt_exit_code: int = 0
    freshness: FreshnessReport | None = None
    freshness_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.dbt_exit_code == 0

    @property
    def rows_copied(self) -> int:
        return sum(result.rows_copied for result in self.replication)

    @property
    def changed_tables(self) -> list[str]:
        """Tables this run's replication changed (the dbt plan also covers earlier, unbuilt changes)."""
        return [result.table for result in self.replication if result.changed]


def _dbt_step(
    plan: DbtPlan,
    summary: BuildSummary,
    client,
    log: Callable[[str], None],
    planned_at: dt.datetime,
    lock: writers.HeldLock,
    dbt_vars: str | None,
) -> None:
    """Run the plan; on success move the refresh mark to when it started (no later than the end of the
    build date its models were built as of, pinned or given: ``DbtPlan.refresh_mark``), with the data
    bound of the raw it read (refresh_state.py), and record the model definitions it applied (if it
    covered every change).
    Nothing to run (no raw table, no model definition and not the build date changed since
    the mark): the models hold every change made before the plan was made, so the mark moves to
    ``planned_at``, and the data bound to raw's as it is (the writer lock keeps replication out since
    the plan was made). The mark moves only while the writer lock is still held: a writer that lost
    it may have raced another one."""
    summary.dbt_plan = plan
    log(f"dbt: {' '.join(plan.arguments) or 'nothing to run'} ({plan.reason})")
    raw_database = schema.raw_database()
    if plan.skip:
        lock.ensure_held()
        refresh_state.record_run(
            client,
            raw_database,
            marts_schema(),
            plan,
            plan.refresh_mark(planned_at, dbt_vars),
            data_through=refresh_state.raw_bounds(client, raw_database).data_through,
        )
        return
    started_at, started = utc_now(), time.perf_counter()
    # Read after started_at: a table committed in between is both built now and marked changed.
    raw = refresh_state.raw_bounds(client, raw_database)
    summary.dbt_exit_code = run_dbt(plan.arguments, log=log, env={**dbt_env(), **raw.environment()})
    summary.dbt_seconds = time.perf_counter() - started
    if summary.ok and plan.covers_all_changes:  # (a --select build records nothing: record_run)
        lock.ensure_held()
        refresh_state.record_run(
            client,
            raw_database,
            marts_schema(),
            plan,
            plan.refresh_mark(started_at, dbt_vars),
            data_through=raw.data_through,
        )


def parsed_manifest(dbt_vars: str | None, log: Callable[[str], None] = print) -> dict:
    """The manifest of the project as its files are now (``dbt parse``, with the build's vars so that
    the run after it reuses the parse). Asked for by the plan only when the build date moved since
    the last build (once a day, 1-3 s with the partial parse): the manifest a previous dbt command
    left may be of other files (a deploy since), and says which models are date-relative (build_date.py)."""
    log("dbt parse: the build date moved, the date-relative models are read from the manifest")
    exit_code = run_dbt(with_vars(["parse"], dbt_vars), log=log)
    if exit_code != 0:
        raise RuntimeError(f"dbt parse failed with exit {exit_code} (its output is above)")
    return json.loads((environment.dbt_target_dir() / "manifest.json").read_text())


def selected_models(
    select: Sequence[str], dbt_vars: str | None, log: Callable[[str], None] = print
) -> list[str]:
    """Names of the models ``--select select`` picks, as dbt reads the selection (``dbt ls``)."""
    output: list[str] = []
    arguments = ["--quiet", *with_vars(["ls", "--resource-type", "model", "--output", "name"], dbt_vars)]
    exit_code = run_dbt([*arguments, "--select", *select], log=output.append)
    if exit_code != 0:
        log("\n".join(output))
        raise RuntimeError(f"dbt ls failed with exit {exit_code} (its output is above)")
    return [line.strip() for line in output if line.strip()]


def _date_relative_upstream(
    client, select: Sequence[str], dbt_vars: str | None, log: Callable[[str], None]
) -> tuple[tuple[str, ...], str]:
    """The models a ``--select`` build adds, with the plan's reason: when the build date moved since
    the models' refresh mark, those that the selected models read still holding the previous date
    (``BuildDateMove.upstream_of``); nothing when it did not, or they read none."""
    manifest = functools.cache(lambda: parsed_manifest(dbt_vars, log))
    date_move = BuildDateMove.since(
        refresh_state.last_refresh(client, schema.raw_database(), marts_schema()), manifest, dbt_vars
    )
    if date_move is None:
        return (), ""
    added = date_move.upstream_of(manifest(), selected_models(select, dbt_vars, log))
    if not added:
        return (), ""
    return added, f"selected models; {date_move.describe_upstream(added)}"


def dbt_project_dir() -> Path:
    """The dbt project ``run_dbt`` builds: the repository, unless dbt's own ``DBT_PROJECT_DIR`` says
    otherwise (its model files are the definitions a build applies)."""
    return Path(os.environ.get("DBT_PROJECT_DIR") or REPO_ROOT)


# dbt commands that write to the warehouse (``run-operation`` and ``retry`` may: a macro, the last
# command again). The others (compile, show, test, ls, docs ...) only read.
WRITING_DBT_COMMANDS = frozenset({"build", "run", "seed", "snapshot", "clone", "run-operation", "retry"})


def dbt_command(arguments: Sequence[str], log: Callable[[str], None] = print) -> int:
    """``funnelhouse dbt ARGS``: any dbt command with this stack's environment (profile, ClickHouse
    address, target and log paths), its exit code returned. One that writes holds the writer lock and
    reads up to the committed watermarks, as a build does; it moves no refresh mark (only a build of
    every change does), so the next ``funnelhouse build`` still carries every change."""
    # Any argument naming a writing command makes it a writer: the first known command word is not
    # always the command (`--log-level debug run`: "debug" is the option's value). A reading command
    # with such a word in it (`ls --select build`) waits for the lock for nothing, and that is all.
    command = next((argument for argument in arguments if argument in WRITING_DBT_COMMANDS), None)
    if command is None:
        return run_dbt(arguments, log=log)
    with writers.for_command(log, command=f"funnelhouse dbt {command}"):
        client = clickhouse_client()
        env = {**dbt_env(), **refresh_state.watermark_environment(client, schema.raw_database())}
        return run_dbt(arguments, log=log, env=env)


class BackgroundDbt:
    """A dbt command started without waiting for it: its output is kept apart (not interleaved with
    the command in the foreground) and shown by ``wait``."""

    def __init__(self, process: subprocess.Popen, output):
        self._process = process
        self._output = output

    def wait(self, log: Callable[[str], None]) -> int:
        exit_code = self._process.wait()
        self._output.seek(0)
        for line in self._output:
            log(line.rstrip())
        return exit_code


@contextlib.contextmanager
def dbt_in_background(arguments: Sequence[str], env: dict[str, str]) -> Iterator[BackgroundDbt]:
    """Start one dbt command and go on; it never outlives the ``with`` (stopped as ``run_dbt`` stops
    its command, SIGTERM included: a ``run_dbt`` inside passes a SIGTERM on to this one's handler)."""
    with tempfile.TemporaryFile("w+") as output, _dbt_process(arguments, env, output) as process:
        yield BackgroundDbt(process, output)


def freshness_dir() -> Path:
    """Where ``dbt source freshness`` writes: its own folder under dbt's target, so it can run beside a
    build's dbt (both would write manifest.json, and dbt.log under its log path)."""
    return environment.dbt_target_dir() / "freshness"


@contextlib.contextmanager
def source_freshness_started() -> Iterator[Callable[[Callable[[str], None]], FreshnessReport]]:
    """Start ``dbt source freshness``; what it yields waits for the report (read back from the
    sources.json dbt writes) and shows dbt's output."""
    target = freshness_dir()
    _reuse_partial_parse(target)
    (target / "sources.json").unlink(missing_ok=True)  # never report a previous run's result
    base = dbt_env()
    env = {
        **base,
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(Path(base["DBT_LOG_PATH"]) / "freshness"),
    }
    with dbt_in_background(["source", "freshness"], env) as freshness:
        yield lambda log: read_sources_json(target, freshness.wait(log))


def source_freshness(log: Callable[[str], None] = print) -> FreshnessReport:
    """``dbt source freshness``, waited for."""
    with source_freshness_started() as report:
        return report(log)


PARTIAL_PARSE = "partial_parse.msgpack"


def docs_dir() -> Path:
    """Where the documentation site goes: its own folder under dbt's target, so generating it never
    replaces the artifacts of the last build (its run_results.json holds the tests the reports cite)."""
    return environment.dbt_target_dir() / "docs"


def _docs_env() -> dict[str, str]:
    return {**dbt_env(), "DBT_TARGET_PATH": str(docs_dir())}


def _reuse_partial_parse(target: Path) -> None:
    """Give a dbt command with a target directory of its own the builds' partial parse, as dagster-dbt
    does for its runs: without it dbt parses the whole project again (~6 s). dbt checks that it still
    holds (files, vars, profile, environment) and parses afresh if not."""
    built = environment.dbt_target_dir() / PARTIAL_PARSE
    own = target / PARTIAL_PARSE
    if built.exists() and (not own.exists() or own.stat().st_mtime < built.stat().st_mtime):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, own)


def generate_docs(log: Callable[[str], None] = print) -> Path:
    """``dbt docs generate``: the models' documentation with the warehouse's catalog (each table's
    real columns, types and size, read from ClickHouse); returns the site's ``index.html``."""
    _reuse_partial_parse(docs_dir())
    exit_code = run_dbt(["docs", "generate"], log=log, env=_docs_env())
    if exit_code != 0:
        raise RuntimeError(f"dbt docs generate failed with exit {exit_code} (its output is above)")
    return docs_dir() / "index.html"


def serve_docs(host: str, port: int, log: Callable[[str], None] = print) -> int:
    """``dbt docs serve`` of what ``generate_docs`` wrote (the site loads its JSON over HTTP)."""
    return run_dbt(
        ["docs", "serve", "--host", host, "--port", str(port), "--no-browser"], log=log, env=_docs_env()
    )


def build(
    *,
    full_refresh: bool = False,
    select: Sequence[str] = (),
    skip_replication: bool = False,
    dbt_vars: str | None = None,
    freshness: bool = True,
    with_tests: bool = False,
    log: Callable[[str], None] = print,
) -> BuildSummary:
    summary = BuildSummary()
    client = clickhouse_client()
    with contextlib.ExitStack() as beside_the_build:
        freshness_report = None
        with writers.for_command(log) as lock:
            if not skip_replication:
                started = time.perf_counter()
                # (its own connections: tables are replicated several at a time)
                summary.replication = replicate_tables(
                    environment.pg_dsn(), full_refresh=full_refresh, log=log
                )
                summary.replication_seconds = time.perf_counter() - started
            if freshness:
                freshness_started = time.perf_counter()
                freshness_report = beside_the_build.enter_context(source_freshness_started())
            # One build date for the plan and every dbt command after it (dbt inherits it), read as
            # the dbt part starts, not before replication. The refresh mark (when dbt starts) must not
            # fall on a later day than the date the models are built as of (BuildDateMove): midnight
            # may still pass before dbt starts, so the mark is held to the build's day (refresh_mark).
            beside_the_build.enter_context(scoped_environment(pinned_build_date(dbt_vars)))
            planned_at = utc_now()  # before reading what changed: see _dbt_step
            definitions = refresh_state.definition_changes(
                client, schema.raw_database(), marts_schema(), dbt_project_dir()
            )
            if full_refresh or select:
                added, reason = _date_relative_upstream(client, select, dbt_vars, log) if select else ((), "")
                plan = complete_plan(
                    full_refresh=full_refresh,
                    select=(*select, *added),
                    dbt_vars=dbt_vars,
                    reason=reason,
                    definitions=definitions,
                )
            else:
                changed = refresh_state.tables_changed_since_refresh(
                    client, schema.raw_database(), marts_schema(), kpi_mart=True
                )
                plan = incremental_plan(
                    changed,
                    dbt_vars,
                    with_tests=with_tests,
                    definitions=definitions,
                    refreshed_through=refresh_state.last_refresh(
                        client, schema.raw_database(), marts_schema()
                    ),
                    project_manifest=lambda: parsed_manifest(dbt_vars, log),
                )
            _dbt_step(plan, summary, client, log, planned_at, lock, dbt_vars)
        if freshness_report is not None:
            summary.freshness = freshness_report(log)
            summary.freshness_seconds = time.perf_counter() - freshness_started
            log(summary.freshness.summary())
    return summary
