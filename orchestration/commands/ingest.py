"""``funnelhouse ingest [PATH...]``: load landing files into PostgreSQL outside (or through) Dagster.

It runs :func:`ingestion.load.pipeline.ingest`, exactly what the ``crm/*`` assets run. Named
files and folders are all attempted (content already loaded is recognised by checksum and
recorded as a duplicate; a failed file is retried); with no PATH, the pending files of the
landing zone are loaded, as the sensor would. ``--via-dagster`` instead materialises the
``crm/*`` assets in-process with the folder as their landing zone - what ``make demo`` uses, so
the demo goes through the same assets as production. Those load the folder's pending files, and
retry files that failed before when the folder is named (as plain ``ingest DIR`` does); content
loaded before is left alone rather than recorded again as a duplicate. A failed file is reported
by its table's failed ``landing_contract`` check and does not keep the dependent tables from
loading; a step that fails otherwise does, and the tables it kept from running are named.

Files of a folder that are no landing file by their name are listed in a warning, each with why,
and skipped: data files of no known table (``notatable__a.csv``), and any name of a known table
that is not ``<table>__<batch>.<csv|jsonl|parquet>`` (``tags__b1.CSV``, ``tags__2026 11 03.csv``,
``customers__b1.xlsx``, ``tags__b31.csv.gz``); they do not change the exit status. Names starting
with ``_`` or ``.`` (files being written, to be renamed) are skipped silently.

On a terminal a progress bar shows the run. Anywhere else (cron, CI, ``| tee``, ``docker logs``),
where a bar is only drawn once, at the end, a plain line says when each file starts, its rows read
every ``--progress-seconds`` while it loads, and how it ended, each flushed as it is printed
(:mod:`orchestration.ingest_log`, the lines the ``crm/*`` assets log).

Exit status: 0 when every file loaded (rows rejected are reported, and are not a failure: they
are quarantined in ``funnelhouse.ingest_rejects``); 1 when any file failed or, with no PATH, a
pending file could not be read (it is held, named in the summary), or PostgreSQL ended the run (the
connection lost, or a statement stopped: a lock timeout, a deadlock; the file loading then is named,
rolled back whole unless its commit got through; run the command again); 2 when a PATH
does not exist or a file named explicitly is not a landing file.
"""

from __future__ import annotations

import os
import shlex
from typing import Annotated

import psycopg
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestion.load.failures import describe_reasons
from ingestion.load.interrupted import stopped_message
from ingestion.load.landing import LandingFile, Skipped, default_landing_url, survey
from ingestion.load.ledger import SUPERSEDED
from ingestion.load.loader import FileResult
from ingestion.load.messages import waiting_words
from ingestion.load.pipeline import Observer, ingest
from ingestion.load.readers import CHUNK_BYTES
from orchestration import environment
from orchestration.console import make_console
from orchestration.ingest_log import PROGRESS_EVERY_SECONDS, LogObserver
from orchestration.output import print_line

console = make_console()
err_console = make_console(stderr=True)
_STATUS_STYLE = {"loaded": "green", "duplicate": "cyan", "failed": "red"}


class _Run(Observer):
    """What the command keeps of a run, however it is shown: the files held unreadable (not loaded, and
    not recorded either), and what a run PostgreSQL cut short can still report: the files done, the
    one that was loading (see :func:`_stopped`). Each hook is passed on to ``shown``."""

    def __init__(self, shown: Observer):
        self.shown = shown
        self.unreadable: list[LandingFile] = []
        self.finished: list[FileResult] = []
        self.current: LandingFile | None = None

    def file_started(self, file, index, total):
        self.current = file
        self.shown.file_started(file, index, total)

    def rows_read(self, count):
        self.shown.rows_read(count)

    def step_started(self, message):
        self.shown.step_started(message)

    def file_finished(self, result):
        self.current = None
        self.finished.append(result)
        self.shown.file_finished(result)

    def file_unreadable(self, file, error):
        self.unreadable.append(file)
        self.shown.file_unreadable(file, error)


class _ProgressObserver(Observer):
    """On a terminal: a bar over files, and a live count of the current file's rows, then of all
    the files' rows once it is done (the bar's last state counts the whole run)."""

    def __init__(self, progress: Progress, total: int):
        self.progress = progress
        self.task = progress.add_task("files", total=total)
        self.name, self.rows, self.total_rows = "", 0, 0

    def file_started(self, file, index, total):
        self.name, self.rows = file.name, 0
        self.progress.update(self.task, total=total, description=f"{file.name}")

    def rows_read(self, count):
        self.rows += count
        self.total_rows += count
        self.progress.update(self.task, description=f"{self.name}: {self.rows:,} rows read")

    def step_started(self, message):
        self.progress.console.print(escape(message), highlight=False)

    def file_finished(self, result):
        self.progress.update(self.task, description=f"rows read: {self.total_rows:,}", advance=1)


class _PrintLog:
    """Where the run's lines (orchestration.ingest_log) go when the output is no terminal: stdout,
    each line flushed as it is printed."""

    def info(self, line: str) -> None:
        print_line(line)

    def warning(self, line: str) -> None:
        print_line(f"warning: {line}")


def summary_table(results: list[FileResult]) -> Table:
    table = Table(title="ingestion summary")
    table.add_column("file", overflow="fold")
    table.add_column("status", no_wrap=True)
    for name in ("in", "loaded", "rejected", "superseded", "changed", "s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.file.name,
            f"[{style}]{r.status}[/]",
            f"{r.rows_in:,}",
            f"{r.rows_loaded:,}",
            f"{r.rows_rejected:,}",
            f"{r.rows_superseded:,}",
            f"{r.rows_changed:,}",
            f"{r.seconds:.1f}",
        )
    return table


def print_notes(results: list[FileResult]) -> None:
    """Why rows were rejected, and why files failed, below the table (too long for a cell)."""
    for r in results:
        if r.error:
            console.print(f"[red]failed[/] {r.error}")
        elif r.duplicate_of:
            console.print(
                f"[cyan]duplicate[/] {r.file.name}: same content as {r.duplicate_of} (nothing done)"
            )
        else:
            if r.rows_rejected:
                console.print(f"[yellow]rejected[/] {r.file.name}: {describe_reasons(r.reasons)}")
                if r.rejected_for_parents:
                    console.print(f"[yellow]waiting[/] {escape(waiting_note(r))}", highlight=False)
            if r.rows_superseded:
                console.print(f"[yellow]superseded[/] {r.file.name}: {superseded_note(r)}")


def waiting_note(result: FileResult) -> str:
    """How many of a loaded file's rejected rows name keys of files the run could not load, and what
    to run once those have loaded (a failed file's error says so itself)."""
    return (
        f"{result.file.name}: {result.rejected_for_parents:,} rejected row(s) name keys missing because "
        f"{waiting_words(result.waiting_for, result.file.url)}"
    )


def superseded_note(result: FileResult) -> str:
    """Why ``loaded`` counts rows the table does not hold as such, and where they are."""
    return (
        f"{result.rows_superseded:,} of the rows loaded gave a key again later in the file; the later "
        f"row stands, the earlier one(s) are kept in {SUPERSEDED}"
    )


def _survey(locations: list[str]) -> list[LandingFile]:
    """The landing files at ``locations``, warning about skipped ones; a clean exit 2 when a PATH
    is missing or a named file is not a landing file."""
    try:
        files, skipped = survey(locations)
    except (FileNotFoundError, ValueError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    warn_skipped(skipped)
    return files


def warn_skipped(skipped: list[Skipped]) -> None:
    if not skipped:
        return
    err_console.print(
        f"[yellow]warning:[/] {len(skipped)} file(s) skipped, not landing files "
        "(expected <table>__<batch>.<csv|jsonl|parquet>):",
        highlight=False,
    )
    for entry in skipped:
        err_console.print(f"  {escape(entry.name)}: {escape(entry.reason)}", highlight=False)


def _run_direct(
    locations: list[str],
    files: list[LandingFile],
    only_pending: bool,
    chunk_bytes: int,
    again: str,
    progress_seconds: float = PROGRESS_EVERY_SECONDS,
) -> tuple[list[FileResult], list[LandingFile]]:
    """The results of the files loaded, and the pending candidates that could not be read.

    On a terminal a bar shows the run; anywhere else a line says when each file starts and how it
    ended, and a long file's rows read every ``progress_seconds`` (orchestration.ingest_log).

    A lost connection to PostgreSQL (the server restarted, the backend terminated, the network), or
    PostgreSQL stopping a statement (a lock timeout, a deadlock, a full disk), ends the run with exit
    status 1 and what is known (:func:`_stopped`), not a traceback; ``again`` is the command to run
    again."""
    if not files:
        console.print(f"no landing files in {', '.join(locations)}")
        return [], []

    def load(observer: _Run) -> list[FileResult]:
        return ingest(
            environment.pg_dsn(), files, only_pending=only_pending, observer=observer, chunk_bytes=chunk_bytes
        )

    observer = None
    try:
        if console.is_terminal:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=False) as progress:
                observer = _Run(_ProgressObserver(progress, len(files)))
                results = load(observer)
        else:
            # A bar away from a terminal is drawn once, at the end: a log (cron, CI, `| tee`) would show
            # nothing until then, and nothing at all of a run killed on the way.
            observer = _Run(LogObserver(_PrintLog(), every_seconds=progress_seconds))
            results = load(observer)
    except psycopg.OperationalError as error:
        _stopped(error, observer.finished if observer else [], observer and observer.current, again)
        raise typer.Exit(1) from None
    return results, observer.unreadable


def _stopped(
    error: psycopg.OperationalError, done: list[FileResult], loading: LandingFile | None, again: str
) -> None:
    """The files done before PostgreSQL ended the run, then what became of the one loading and what
    to do (:func:`ingestion.load.interrupted.stopped_message`: a lost connection, or PostgreSQL up
    but stopping the statement - a lock timeout, a deadlock - are told apart).

    A file is one transaction (ingestion.load.loader): the one loading left no rows, no rejects and
    no ledger row, unless its commit got through; the files done are committed, and running the
    same command again changes nothing of them (their content is recognised)."""
    if done:
        console.print(summary_table(done))
        print_notes(done)
    message = stopped_message(
        error, loading.name if loading else None, len(done), f"run the same command again: {again}"
    )
    console.print(f"[red]failed:[/] {escape(message)}", highlight=False)


def _same_command(paths: list[str] | None, landing: str, chunk_bytes: int) -> str:
    """This ``funnelhouse ingest`` command as typed again (without ``--via-dagster``)."""
    words = ["funnelhouse", "ingest", *(paths or [])]
    if landing and not paths:
        words += ["--landing", landing]
    if chunk_bytes != CHUNK_BYTES:
        words += ["--chunk-bytes", str(chunk_bytes)]
    return shlex.join(words)


def materialise_via_dagster(landing: str, retry_failed: bool = True) -> bool:
    """Materialise every ``crm/*`` asset in-process, ``landing`` as the landing zone; True on success.

    ``retry_failed``: files that failed before are attempted again, as ``funnelhouse ingest DIR``
    does (without it, as for the sensor, a failed file waits until its content changes)."""
    import dagster as dg

    from ingestion.contracts import load_order
    from orchestration.defs.ingestion.assets import CRM_ASSETS, op_name
    from orchestration.defs.ingestion.resources import LandingZone, ingestion_resources

    # With DAGSTER_HOME set (as `make ui` sets it) the run is recorded where the UI shows it.
    dagster_home = os.environ.get("DAGSTER_HOME")
    persistent = bool(dagster_home) and os.path.isdir(dagster_home)
    instance = dg.DagsterInstance.get() if persistent else dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        CRM_ASSETS,
        resources={**ingestion_resources(), "landing_zone": LandingZone(url=landing)},
        instance=instance,
        raise_on_error=False,
        run_config={
            "ops": {op_name(table): {"config": {"retry_failed": retry_failed}} for table in load_order()},
            # The console shows each file loaded and any error, not a DEBUG line per Dagster event
            # (the run's record keeps every event, for the UI).
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        },
    )
    attempted = 0
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        meta = materialization.metadata
        attempted += meta["files"].value if "files" in meta else 0
        console.print(
            f"{materialization.asset_key.to_user_string()}: "
            + ", ".join(
                f"{k} {meta[k].value}"
                for k in ("files", "rows_in", "rows_loaded", "rows_rejected", "rows_superseded")
                if k in meta
            )
        )
    # A failed file fails its table's check (severity ERROR), not the step: the dependants still load.
    failed_files = [
        check
        for check in result.get_asset_check_evaluations()
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    ]
    for check in failed_files:
        console.print(
            f"[red]{check.asset_key.to_user_string()} failed[/]: {escape(check.description or '')}",
            highlight=False,
        )
    # A failed step (an error outside the files: PostgreSQL down, a bug) is one Dagster skips the
    # dependants of, with no event of theirs in the result: they are named here.
    failures = [event for event in result.all_events if event.is_step_failure]
    for event in failures:
        failure = event.step_failure_data
        error = failure.error
        # Dagster wraps what the asset raised: the cause is what says what went wrong.
        if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
            error = error.cause
        # A dg.Failure the asset raised (PostgreSQL ended the load) says it all in its description.
        said = failure.user_failure_data.description if failure.user_failure_data else None
        console.print(
            f"[red]{event.step_key} failed[/]: {escape(said or error.message.strip())}", highlight=False
        )
    for line in not_attempted(result):
        console.print(f"[red]{line}[/]", highlight=False)
    if not attempted and not failures and not failed_files:
        console.print(
            f"no file attempted: nothing pending in {landing} (content loaded before is not loaded again"
            + (")" if retry_failed else "; a file that failed waits for new content or `ingest PATH`)"),
            highlight=False,
        )
    return result.success and not failed_files


def not_attempted(result) -> list[str]:
    """``<table>: not attempted: upstream <asset> failed`` for each ``crm/*`` step of the run that
    never started because a step it depends on failed (Dagster only logs those)."""
    from ingestion.contracts import load_order
    from orchestration.defs.ingestion.assets import asset_key, op_name
    from orchestration.defs.ingestion.sensors import upstream

    started = {event.step_key for event in result.all_events if event.is_step_start}
    failed = {event.step_key for event in result.all_events if event.is_step_failure}
    lines = []
    for table in load_order():
        if op_name(table) in started:
            continue
        culprits = [
            asset_key(t).to_user_string()
            for t in load_order()
            if t in upstream(table) and op_name(t) in failed
        ]
        lines.append(
            f"{table}: not attempted" + (f": upstream {', '.join(culprits)} failed" if culprits else "")
        )
    return lines


def register(app: typer.Typer) -> None:
    @app.command(name="ingest")
    def ingest_command(
        paths: Annotated[
            list[str] | None, typer.Argument(help="Landing files or folders (local or fsspec URLs).")
        ] = None,
        landing: Annotated[
            str,
            typer.Option(
                help="Landing zone when no PATH is given "
                "(default: $FUNNELHOUSE_LANDING or <state dir>/landing)."
            ),
        ] = "",
        via_dagster: Annotated[
            bool,
            typer.Option("--via-dagster", help="Materialise the crm/* Dagster assets on the folder instead."),
        ] = False,
        chunk_bytes: Annotated[
            int, typer.Option(min=1, help="Bytes of file per validated chunk (memory vs. overhead).")
        ] = CHUNK_BYTES,
        progress_seconds: Annotated[
            float,
            typer.Option(
                min=0,
                help="When the output is no terminal (a log, a pipe): print a long file's rows read this often.",
            ),
        ] = PROGRESS_EVERY_SECONDS,
    ) -> None:
        """Validate landing files and merge them into PostgreSQL, each file exactly once."""
        locations = paths or [landing or default_landing_url()]
        if via_dagster and len(locations) != 1:
            raise typer.BadParameter("--via-dagster takes one landing folder")
        files = _survey(locations)
        if via_dagster:
            # A named folder retries failed files, like plain `ingest DIR`; the landing zone (no PATH)
            # is left to its pending files, as the sensor and plain `ingest` do.
            raise typer.Exit(0 if materialise_via_dagster(locations[0], retry_failed=bool(paths)) else 1)
        results, unreadable = _run_direct(
            locations,
            files,
            only_pending=not paths,
            chunk_bytes=chunk_bytes,
            again=_same_command(paths, landing, chunk_bytes),
            progress_seconds=progress_seconds,
        )
        if results:
            console.print(summary_table(results))
            print_notes(results)
        failed = [r for r in results if not r.ok]
        rejected = sum(r.rows_rejected for r in results)
        # A landing file that could not be read was not loaded, nor recorded: as much a failure.
        names = escape(", ".join(file.name for file in unreadable))
        held = f", {len(unreadable)} file(s) held unreadable: {names}" if unreadable else ""
        superseded = sum(r.rows_superseded for r in results)
        replaced = f" ({superseded:,} of them superseded, see {SUPERSEDED})" if superseded else ""
        console.print(
            f"{len(results)} file(s): {sum(r.rows_loaded for r in results):,} rows loaded{replaced}, "
            f"{rejected:,} rejected (see funnelhouse.ingest_rejects), {len(failed)} file(s) failed{held}"
        )
        raise typer.Exit(1 if failed or unreadable else 0)
