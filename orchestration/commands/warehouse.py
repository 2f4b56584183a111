"""``funnelhouse build | dbt | manifest | marts | docs``: the warehouse from the command line (replication +
dbt, any dbt command, the dbt manifest, a peek at the marts, dbt's documentation site)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestration.console import command_error, make_console
from orchestration.output import print_line

console = make_console()
_PREVIEW_COLUMNS = 8


@contextlib.contextmanager
def busy_is_an_error():
    """Another writer kept the warehouse past the wait, or took it while this one's lock was lost:
    one line saying so, exit 1 (no traceback)."""
    from orchestration.defs.warehouse.writers import WarehouseBusy, WarehouseLockLost

    try:
        yield
    except (WarehouseBusy, WarehouseLockLost) as contention:
        typer.echo(f"Error: {contention}", err=True)
        raise typer.Exit(1) from None


def dbt_arguments(arguments: list[str]) -> list[str]:
    """The arguments ``funnelhouse dbt`` passes to dbt: the user's, and for ``show`` no tests.

    dbt's indirect selection adds the tests of a selected model to ``show --select`` and shows their
    results too; dbt-clickhouse's relationships test ends in ``settings join_use_nulls = 1``, after
    which the ``limit`` dbt appends is a syntax error, so `show --select dim_customers` would fail.
    ``--indirect-selection empty`` shows the models alone, unless the user chose a mode (option or
    ``DBT_INDIRECT_SELECTION``). The command is the first word that is no option: one put after a
    global option's value (`--log-level debug show`) is left as it is."""
    command = next((argument for argument in arguments if not argument.startswith("-")), None)
    chosen = "DBT_INDIRECT_SELECTION" in os.environ or any(
        argument.startswith("--indirect-selection") for argument in arguments
    )
    if command == "show" and not chosen:
        return [*arguments, "--indirect-selection", "empty"]
    return list(arguments)


# What ``dbt docs serve`` serves: the page and the two files it loads.
DOCS_SITE_FILES = ("index.html", "manifest.json", "catalog.json")


def docs_out_of_date(site: Path, manifest: Path) -> str | None:
    """Why the docs site in ``site`` has to be generated before it is served, or None if it can be
    served as it is: each of its files is newer than ``manifest``, the one builds and dbt commands
    write. A site older than that may lack a model, column or table the warehouse has now."""
    files = [site / name for name in DOCS_SITE_FILES]
    if not all(path.is_file() for path in files):
        return f"none in {site} yet"
    if not manifest.is_file():
        return f"no {manifest} to tell whether the ones there are current"
    if min(path.stat().st_mtime for path in files) <= manifest.stat().st_mtime:
        return "the ones there were older than the last dbt command's manifest"
    return None


def register(app: typer.Typer) -> None:
    @app.command()
    def build(
        full_refresh: bool = typer.Option(
            False, "--full-refresh", help="Reload raw tables and rebuild every model."
        ),
        select: Annotated[
            list[str] | None, typer.Option("--select", "-s", help="dbt selector(s); default: everything.")
        ] = None,
        skip_replication: bool = typer.Option(False, help="Run dbt only, on what raw already holds."),
        freshness: bool = typer.Option(True, help="Report `dbt source freshness` afterwards (never fails)."),
        test: bool = typer.Option(
            False,
            "--test",
            help="Incremental build: `dbt build`, also running the tests of what it rebuilds.",
        ),
    ) -> None:
        """Replicate PostgreSQL into ClickHouse raw, then dbt, then report source freshness.

        Default (incremental): `dbt run` of the models downstream of the raw tables changed since the
        last build (`dbt build` with --test), nothing if none changed. --full-refresh / --select / the
        first build: `dbt build`, tests included."""
        from orchestration.defs.warehouse import build as warehouse_build  # keeps `funnelhouse --help` fast

        with busy_is_an_error():
            summary = warehouse_build.build(
                full_refresh=full_refresh,
                select=select or (),
                skip_replication=skip_replication,
                freshness=freshness,
                with_tests=test,
                log=print_line,  # plain lines, not rich's: dbt lines carry their own colours
            )
        plan = summary.dbt_plan
        dbt_step = (
            f"dbt {plan.arguments[0]}: exit {summary.dbt_exit_code} in {summary.dbt_seconds:.1f}s"
            if plan and not plan.skip
            else "dbt: skipped"
        )
        console.print(
            f"replication: {len(summary.replication)} table(s), {summary.rows_copied} row(s) copied, "
            f"{len(summary.changed_tables)} changed in {summary.replication_seconds:.1f}s; {dbt_step}"
            + (f" ({plan.reason})" if plan else ""),
            highlight=False,
        )
        if not summary.ok:
            raise typer.Exit(summary.dbt_exit_code)

    @app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    def dbt(context: typer.Context) -> None:
        """Any dbt command against this stack's warehouse (`funnelhouse dbt --help`: dbt's own help).

        E.g. `funnelhouse dbt build --select mart_funnel_daily+`. A command that writes (run, build,
        seed, ...) waits for the warehouse's other writers; a bare `dbt` would need the environment
        set by hand."""
        from orchestration.defs.warehouse.build import dbt_command

        with busy_is_an_error():
            raise typer.Exit(dbt_command(dbt_arguments(context.args), log=print_line))

    @app.command()
    def manifest() -> None:
        """Parse the dbt project into dbt's target: the manifest Dagster builds its dbt assets from
        (`make manifest` runs this when a file of the project changed). Needs no server running."""
        from orchestration.defs.warehouse.build import run_dbt
        from orchestration.defs.warehouse.dbt_environment import parse_environment

        raise typer.Exit(run_dbt(["parse", "--quiet"], log=print_line, env=parse_environment()))

    @app.command()
    def marts(rows: int = typer.Option(3, min=1, help="Rows to show per mart.")) -> None:
        """Print the first rows (and first columns) of each mart."""
        from orchestration.defs.reports.runner import NoMarts, connect_to_marts
        from orchestration.defs.warehouse.build import MARTS, marts_schema

        try:
            client = connect_to_marts(marts_schema())
        except NoMarts as exc:
            raise command_error(str(exc)) from None
        for mart in MARTS:
            result = client.query(f"select * from `{marts_schema()}`.`{mart}` limit {int(rows)}")
            total = client.query(f"select count() from `{marts_schema()}`.`{mart}`").result_rows[0][0]
            columns = result.column_names[:_PREVIEW_COLUMNS]
            table = Table(*columns, title=f"{mart} ({total} rows, {len(result.column_names)} columns)")
            for row in result.result_rows:
                table.add_row(*(str(value) for value in row[:_PREVIEW_COLUMNS]))
            console.print(table)

    @app.command()
    def docs(
        serve: bool = typer.Option(False, "--serve", help="Then serve the site until interrupted."),
        host: str = typer.Option("127.0.0.1", help="With --serve: the address to listen on."),
        port: int = typer.Option(8080, help="With --serve: the port."),
    ) -> None:
        """dbt docs: every model's grain and columns, lineage, and the warehouse's catalog."""
        from orchestration import environment
        from orchestration.defs.warehouse.build import docs_dir, generate_docs, serve_docs

        # Generating is a dbt run of its own that reads every table's columns from ClickHouse: docs
        # still current are served as they are.
        stale = (
            docs_out_of_date(docs_dir(), environment.dbt_target_dir() / "manifest.json") if serve else None
        )
        if serve and stale is None:
            console.print(
                f"dbt docs: {docs_dir() / 'index.html'} (not generated again: newer than the last dbt "
                "command's manifest; `funnelhouse docs` generates them)",
                highlight=False,
            )
        else:
            site = generate_docs(log=print_line)
            console.print(
                f"dbt docs: {site} "
                + (f"(generated: {stale})" if serve else "(browse it with `funnelhouse docs --serve`)"),
                highlight=False,
            )
        if serve:
            console.print(f"serving on http://{host}:{port} (Ctrl-C stops)", highlight=False)
            raise typer.Exit(serve_docs(host, port, log=print_line))
