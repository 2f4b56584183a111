"""``funnelhouse up | down | status | migrate``: the embedded stack and the operational schema."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from devstack import stack, state
from devstack.search.launcher import FLAVOURS, START_ERRORS
from ingestion.schema import migrate as schema_migrate
from orchestration import environment
from orchestration.console import make_console

console = make_console()

# The engines the launcher knows, and "none": typer validates the choice and lists it in --help.
SearchChoice = StrEnum("SearchChoice", {name: name for name in (*FLAVOURS, "none")})


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        search: Annotated[
            SearchChoice, typer.Option(help="Search engine to start.")
        ] = SearchChoice.elasticsearch,
    ) -> None:
        """Start the embedded services (those not replaced by a configured URL/DSN)."""
        missing = environment.unconfigured_in_production()
        if missing:  # production never runs on embedded services (environment._embedded)
            typer.echo(
                f"Error: FUNNELHOUSE_ENV=prod starts no embedded service: set {', '.join(missing)} "
                "(see README, 'Pointing at real servers')",
                err=True,
            )
            raise typer.Exit(1)
        try:
            for line in stack.up(search=search.value):
                console.print(line)
        except START_ERRORS as exc:
            # One line on what is missing and how to fix it (the launcher's messages lead with that);
            # Maven's output or the engine's log is where the message's first line points.
            reason = str(exc).splitlines()[0].rstrip(". ")
            typer.echo(
                f"Error: search did not start: {reason}; or start the stack without search: "
                "`funnelhouse up --search none`",
                err=True,
            )
            raise typer.Exit(1) from exc
        _print_status()

    @app.command()
    def down() -> None:
        """Stop the embedded services of this stack (data stays in the state directory)."""
        try:
            for line in stack.down():
                console.print(line)
        except stack.NotAllStopped as error:  # the others were stopped; each left one has its line
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(1) from None

    @app.command()
    def status() -> None:
        """Each service with its address, and how far the marts are built."""
        _print_status()

    @app.command()
    def migrate() -> None:
        """Apply pending schema migrations to PostgreSQL (safe to repeat)."""
        applied = schema_migrate.apply(environment.pg_dsn(), log=console.print)
        console.print(f"schema up to date ({len(applied)} migration(s) applied now)")


def _print_status() -> None:
    table = Table("service", "state")
    table.add_column("address", overflow="fold")  # a DSN is copied from here: never cut it short
    services = stack.status()
    for name, running, address in services:
        table.add_row(name, "[green]running[/]" if running else "[red]stopped[/]", address)
    console.print(table)
    if search := _search_check(services):
        console.print(search, highlight=False)
    console.print(f"passwords of the embedded services: {state.home() / 'secrets'} (never printed)")
    if os.environ.get("FUNNELHOUSE_PG_DSN"):
        console.print("PostgreSQL from FUNNELHOUSE_PG_DSN (not embedded)")
    if _running(services, "clickhouse"):
        _print_refresh_marks()


def _running(services: list[tuple[str, bool, str]], service: str) -> bool:
    """Whether ``stack.status`` found ``service`` running (or configured): only a running ClickHouse
    is asked for refresh marks, as its driver warns on stderr of every refused connection."""
    return any(name == service and running for name, running, _ in services)


def _search_check(services: list[tuple[str, bool, str]]) -> str | None:
    """What to open or curl to see the running embedded search engine answer. Its address is the
    base URL its clients take, a REST API with nothing to show at ``/``: the Elasticsearch
    distribution the stack runs answers a GET there with 405. Its cluster health answers both
    engines (the launcher's own check). None without a running one of this stack's."""
    for name, running, address in services:
        if name == "search" and running and address.startswith("http"):
            health = f"{address.rstrip('/')}/_cluster/health?pretty"
            return f"search: a REST API for the indexer; check it with `curl {health}`"
    return None


def _print_refresh_marks() -> None:
    """How far the marts are built: what a scheduled report waits for (every model's and the KPI
    mart's, past its period's end: the time up to which each holds every change, the earlier of its
    refresh mark and the replicated data it was built from). Nothing when ClickHouse is not there to
    ask."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from ingestion.replication import schema
    from ingestion.replication.connections import clickhouse_client
    from orchestration.defs.warehouse import refresh_state
    from orchestration.defs.warehouse.build import marts_schema

    try:
        models, kpi = refresh_state.recorded_refreshes(
            clickhouse_client(), schema.raw_database(), marts_schema()
        )
    except (environment.ServiceNotRunning, ClickHouseError, OSError):
        return
    if models is None:
        console.print("marts: no build recorded yet (`funnelhouse build`)")
        return
    kpi_text = (
        f"KPI mart through {kpi.complete_through:%Y-%m-%d %H:%M} UTC"
        if kpi
        else "KPI mart: no build recorded yet"
    )
    console.print(
        f"marts: refreshed through {models.complete_through:%Y-%m-%d %H:%M} UTC; {kpi_text}", highlight=False
    )
